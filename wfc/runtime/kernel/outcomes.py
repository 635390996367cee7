"""How a call into stage code ended: an output, a suspension, a "not yet" or a failure.

`wfc.runtime.kernel.invoke` runs stage code and says how it went in these
terms; the command handlers persist them. Kept apart so the pieces that call
stage code (`calling`) and those that persist what it did share them without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from wfc.runtime.record_builders import quick_init
from wfc.runtime.stage import Suspend


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """One `ctx.progress` call (message and details redacted)."""

    fraction: float
    message: str | None
    details: dict[str, Any] | None = None


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Produced:
    """The stage returned a valid output (JSON data); `text`, its JSON text to store, when it
    is known that every database can store it (`json_output.json_output` proved it), else
    the output is checked, and encoded when it is stored."""

    output: Any
    text: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Suspended:
    """The stage suspended; `check_completion` will be polled."""

    request: Suspend


@dataclass(frozen=True, slots=True, kw_only=True)
class NotYet:
    """`check_completion` said not ready; check again after `next_check_in`."""

    next_check_in: timedelta | None


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """The stage failed; `retryable` is False when trying again cannot help."""

    error: str
    retryable: bool = True
    retry_delay: timedelta | None = None
    # Where stage code raised it: the formatted traceback, its last `TRACEBACK_CHARS`.
    traceback: str | None = None


Outcome = Produced | Suspended | NotYet | Failure


@dataclass(slots=True)
class Report:
    """An outcome with what the stage reported along the way."""

    outcome: Outcome
    progress: list[Progress] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
