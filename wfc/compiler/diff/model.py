"""What `diff_plans` answers: the changes between two plans, and for which runs each breaks.

A run in flight is judged by the stages it has *started*: the stage ids whose
row in the run is in any status but PENDING (running, suspended, finished or
skipped). A group's rows are all created, PENDING, when the group before it
finishes, so the rules that turn on whether a run holds a row at all (a stage
removed, added or moved) name the stages of that group and of the group before
it. See `docs/upgrades.md` for every rule and the reason for it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """What a change means for the runs in flight.

    `compatible`: no run in flight is harmed. `breaking`: every run in flight
    may be harmed. `breaking_if_started`: only runs that have started one of
    the change's `affects` stages may be. Either breaking verdict spares the
    runs that have started every stage of the change's `unless_started`, when
    it names any.
    """

    COMPATIBLE = "compatible"
    BREAKING = "breaking"
    BREAKING_IF_STARTED = "breaking_if_started"


SEVERITY = (Verdict.BREAKING, Verdict.BREAKING_IF_STARTED, Verdict.COMPATIBLE)
"""The verdicts, worst first (the order reports list them in)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """Where a change is, in a `.wf` (or `.wf.yaml`) source: 1-based, like diagnostics."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def to_json(self) -> dict[str, Any]:
        """The location as the `wfc check --format json` locations are."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One difference between the old and the new plan, judged for the runs in flight.

    `code` is stable (`stage-removed`, `input-field-added-optional`, …) and
    `message` one line for people. `path` says what the change is about, as
    keys into the workflow: `("stage", "extract", "output", "text")`,
    `("input", "language")`, `("flow", "review")`. `location` is where that
    is in the new source, else in the old one, when a side was a source.
    """

    code: str
    message: str
    verdict: Verdict
    stage_id: str | None = None
    affects: frozenset[str] = frozenset()
    unless_started: frozenset[str] = frozenset()
    path: tuple[str, ...] = ()
    location: Location | None = None

    def breaks(self, started: Collection[str]) -> bool:
        """Whether this change harms a run that has started exactly these stages."""
        if self.verdict is Verdict.COMPATIBLE:
            return False
        have = set(started)
        if self.verdict is Verdict.BREAKING_IF_STARTED and not self.affects & have:
            return False
        return not (self.unless_started and self.unless_started <= have)

    @property
    def condition(self) -> str:
        """For which runs it breaks, in words: `runs that started extract`, or ``."""
        parts = []
        if self.verdict is Verdict.BREAKING_IF_STARTED:
            parts.append("runs that started " + _names(self.affects, "or"))
        elif self.verdict is Verdict.BREAKING:
            parts.append("every run in flight")
        if self.unless_started and self.verdict is not Verdict.COMPATIBLE:
            parts.append("unless they started " + _names(self.unless_started, "and"))
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The change as plain data (`wfc diff --format json`)."""
        return {
            "code": self.code,
            "verdict": str(self.verdict),
            "message": self.message,
            "stage_id": self.stage_id,
            "affects": sorted(self.affects),
            "unless_started": sorted(self.unless_started),
            "path": list(self.path),
            "location": self.location.to_json() if self.location else None,
        }


def _names(ids: frozenset[str], joiner: str, limit: int = 6) -> str:
    ordered = sorted(ids)
    if len(ordered) > limit:  # the JSON form lists them all
        return ", ".join(ordered[: limit - 1]) + f" {joiner} {len(ordered) - limit + 1} more"
    if len(ordered) <= 1:
        return "".join(ordered)
    return ", ".join(ordered[:-1]) + f" {joiner} " + ordered[-1]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanDiff:
    """The changes from one plan of a workflow to another, in the order found (the
    workflow's own, then each stage's in the new plan's order, then removed stages)."""

    workflow_id: str
    old_fingerprint: str
    new_fingerprint: str
    changes: list[Change] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """The two plans are the same plan (equal fingerprints): every run can move."""
        return self.old_fingerprint == self.new_fingerprint

    @property
    def compatible(self) -> bool:
        """No change is breaking for any run (what `wfc diff` exits 0 on)."""
        return all(change.verdict is Verdict.COMPATIBLE for change in self.changes)

    def by_verdict(self, verdict: Verdict) -> list[Change]:
        """The changes with this verdict, in order."""
        return [change for change in self.changes if change.verdict is verdict]

    def breaking_for(self, started: Collection[str]) -> list[Change]:
        """The changes that harm a run which has started these stages: the ids of its
        rows in any status but PENDING (passing PENDING ones too is safe, and only
        stricter)."""
        have = set(started)
        return [change for change in self.changes if change.breaks(have)]

    def safe_for(self, started: Collection[str]) -> bool:
        """Whether a run which has started these stages (its rows in any status but
        PENDING) can move to the new plan."""
        return not self.breaking_for(started)

    def to_json(self) -> dict[str, Any]:
        """The diff as plain data (`wfc diff --format json` adds where each side came from)."""
        counts = {str(v): len(self.by_verdict(v)) for v in SEVERITY}
        return {
            "workflow_id": self.workflow_id,
            "old_fingerprint": self.old_fingerprint,
            "new_fingerprint": self.new_fingerprint,
            "identical": self.identical,
            "compatible": self.compatible,
            "counts": counts,
            "changes": [change.to_json() for change in self.changes],
        }
