"""The runtime's public API: what stage code and generated code import."""

from __future__ import annotations

from wfc.runtime.stage import (
    AsyncStage,
    BlobAccess,
    CheckContext,
    Completion,
    Failed,
    MemoryBlobs,
    NotReady,
    Ready,
    RecordingServices,
    Stage,
    StageContext,
    StageServices,
    Suspend,
)
from wfc.runtime.types import BlobRef, Email, Url
from wfc.runtime.workflow import Workflow, bind_plan, load_workflow

__all__ = [
    "AsyncStage",
    "BlobAccess",
    "BlobRef",
    "CheckContext",
    "Completion",
    "Email",
    "Failed",
    "MemoryBlobs",
    "NotReady",
    "Ready",
    "RecordingServices",
    "Stage",
    "StageContext",
    "StageServices",
    "Suspend",
    "Url",
    "Workflow",
    "bind_plan",
    "load_workflow",
]
