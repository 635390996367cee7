"""wfc: a workflow compiler and durable runtime for AI and data pipelines.

The public API is what this module re-exports; everything else is internal.

The re-exports are loaded on first use (PEP 562 `__getattr__`): importing any
`wfc.*` module imports this one first, and the Plan IR costs pydantic's start-up
(about 0.2 s), which `wfc --help` has no use for. `from wfc import Plan` works
as before, and type checkers read the imports under `TYPE_CHECKING`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wfc.plan import (
        PLAN_VERSION,
        InputSource,
        Plan,
        PlanStage,
        PollPolicy,
        RetryPolicy,
        StageKind,
    )

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

_LAZY = {name: "wfc.plan" for name in __all__}


def __getattr__(name: str) -> Any:
    """Import a re-exported name from its module the first time it is asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module 'wfc' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
