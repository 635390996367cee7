"""wfc: a workflow compiler and durable runtime for AI and data pipelines.

The public API is what this module re-exports; everything else is internal.
"""

from __future__ import annotations

from wfc.plan import PLAN_VERSION, InputSource, Plan, PlanStage, PollPolicy, RetryPolicy, StageKind

__all__ = [
    "PLAN_VERSION",
    "InputSource",
    "Plan",
    "PlanStage",
    "PollPolicy",
    "RetryPolicy",
    "StageKind",
]
__version__ = "0.1.0"
