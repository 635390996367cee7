"""The runtime's public API: what stage code and generated code import."""

from __future__ import annotations

from wfc.errors import NonRetryableError, RetryStage
from wfc.runtime.ai_config import AIConfig
from wfc.runtime.builder import StageDefinition, WorkflowBuilder, define_stage
from wfc.runtime.builder_children import child_stage
from wfc.runtime.builder_waits import SleepOutput, define_signal, sleep_stage, wait_stage
from wfc.runtime.commands import (
    JobExecute,
    LeaseReapStale,
    OutboxFlush,
    PluginReplayDLQ,
    RunCancel,
    RunClaimPending,
    RunCreate,
    RunReapStuck,
    RunRerunFrom,
    RunSignal,
    RunSignalResult,
    RunTransition,
    StagePollSuspended,
    parse_command,
)
from wfc.runtime.conditions import all_of, any_of, negate, when
from wfc.runtime.hosts import (
    JobMessage,
    RunSnapshot,
    ServerlessHost,
    WorkerHost,
    run_and_wait,
    signal_run,
)
from wfc.runtime.kernel import Kernel
from wfc.runtime.plugins import Plugin, PluginRunner, define_plugin
from wfc.runtime.records import RunRecord, StageRecord, Status
from wfc.runtime.registry import WorkflowMap, load_registry
from wfc.runtime.stage import (
    AsyncStage,
    BlobAccess,
    CheckContext,
    Completion,
    Failed,
    ItemResult,
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
    "AIConfig",
    "AsyncStage",
    "BlobAccess",
    "BlobRef",
    "CheckContext",
    "Completion",
    "Email",
    "Failed",
    "ItemResult",
    "JobExecute",
    "JobMessage",
    "Kernel",
    "LeaseReapStale",
    "MemoryBlobs",
    "NonRetryableError",
    "NotReady",
    "OutboxFlush",
    "Plugin",
    "PluginReplayDLQ",
    "PluginRunner",
    "Ready",
    "RecordingServices",
    "RetryStage",
    "RunCancel",
    "RunClaimPending",
    "RunCreate",
    "RunReapStuck",
    "RunRecord",
    "RunRerunFrom",
    "RunSignal",
    "RunSignalResult",
    "RunSnapshot",
    "RunTransition",
    "ServerlessHost",
    "SleepOutput",
    "Stage",
    "StageContext",
    "StageDefinition",
    "StagePollSuspended",
    "StageRecord",
    "StageServices",
    "Status",
    "Suspend",
    "Url",
    "WorkerHost",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowMap",
    "all_of",
    "any_of",
    "bind_plan",
    "child_stage",
    "define_plugin",
    "define_signal",
    "define_stage",
    "load_registry",
    "load_workflow",
    "negate",
    "parse_command",
    "run_and_wait",
    "signal_run",
    "sleep_stage",
    "wait_stage",
    "when",
]
