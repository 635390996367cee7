"""What every rule shares: the two plans, where things are in their sources, and the changes
found so far."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wfc.compiler.diff.model import Change, Location, Verdict
from wfc.plan import Plan, PlanStage

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SourceMap:
    """Where each part of a workflow is in its source, by key.

    Keys: `("workflow",)`, `("input",)` / `("input", field)`, `("output",)` /
    `("output", field)`, `("type", Name)` / `("type", Name, field)`,
    `("stage", id)` and `("stage", id, part)` with part `input`, `output`,
    `config` (and a field after it), `when`, `map`, `needs` (and a need after
    it), `retry`, `timeout`, `poll`, `priority`, `queue`, `concurrency`, `rate`,
    `description`, `kind`, `sleep`, `wait`; `("flow",)` / `("flow", stage id)` for the
    flow and a stage's place in it; `("queue",)` for the workflow's queue,
    `("schedule", name)` and `("signal", name)`.
    """

    entries: dict[Key, Location] = field(default_factory=dict)

    def get(self, key: Key) -> Location | None:
        """The location of exactly this key, if the source has it."""
        return self.entries.get(key)


@dataclass
class Ctx:
    """The state of one diff: the plans, their source maps and what was found."""

    old: Plan
    new: Plan
    old_map: SourceMap | None = None
    new_map: SourceMap | None = None
    changes: list[Change] = field(default_factory=list)
    old_ids: set[str] = field(init=False)
    new_ids: set[str] = field(init=False)
    common: list[str] = field(init=False)  # stages of both plans, in the new plan's order
    old_group: dict[str, int] = field(init=False)  # stage id → its 1-based group
    new_group: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.old_ids = set(self.old.stage_ids())
        self.new_ids = set(self.new.stage_ids())
        self.common = [sid for sid in self.new.stage_ids() if sid in self.old_ids]
        self.old_group = groups_of(self.old)
        self.new_group = groups_of(self.new)

    def old_stage(self, stage_id: str) -> PlanStage:
        """The stage in the old plan."""
        return self.old.stage(stage_id)

    def new_stage(self, stage_id: str) -> PlanStage:
        """The stage in the new plan."""
        return self.new.stage(stage_id)

    def add(
        self,
        code: str,
        message: str,
        verdict: Verdict,
        *,
        stage_id: str | None = None,
        affects: Iterable[str] = (),
        unless_started: Iterable[str] = (),
        path: Key = (),
        anchors: Sequence[Key] = (),
    ) -> None:
        """Record a change. A `breaking_if_started` change whose `affects` is empty harms no
        run, so it is recorded as compatible. `anchors` are the keys to locate it by, most
        precise first (`path` when none are given)."""
        hit = frozenset(affects)
        if verdict is Verdict.BREAKING_IF_STARTED and not hit:
            verdict = Verdict.COMPATIBLE
        unless = frozenset(unless_started)
        self.changes.append(
            Change(
                code=code,
                message=message,
                verdict=verdict,
                stage_id=stage_id,
                affects=hit if verdict is not Verdict.COMPATIBLE else frozenset(),
                unless_started=unless if verdict is not Verdict.COMPATIBLE else frozenset(),
                path=path,
                location=self.locate(anchors or [path]),
            )
        )

    def locate(self, anchors: Sequence[Key]) -> Location | None:
        """The first of `anchors` (then their shorter prefixes) that a source knows, in
        the new source before the old one."""
        keys: list[Key] = list(anchors)
        for anchor in anchors:
            keys += [anchor[:cut] for cut in range(len(anchor) - 1, 0, -1)]
        for key in dict.fromkeys(keys):
            for source in (self.new_map, self.old_map):
                found = source.get(key) if source is not None else None
                if found is not None:
                    return found
        return None

    def holding_rows(self, stage_ids: Iterable[str]) -> tuple[Verdict, frozenset[str]]:
        """How to name the runs that may hold a row for one of these (old plan) stages, from
        the stages a run has started (rows in any status but PENDING).

        A group's rows are all created, PENDING, when the group before it finishes, so
        a run may hold a PENDING row of a stage while it has started nothing of that
        stage's group, only the group before. A run that has started some stage of
        either group is named (`breaking_if_started`); for a stage of the first group,
        whose rows a run gets when it is claimed, no started stage tells, so every run
        is (`breaking`).
        """
        found: set[str] = set()
        first = False
        for stage_id in stage_ids:
            group = self.old_group[stage_id]
            first = first or group == 1
            found |= set(self.old.groups[group - 1])
            if group > 1:
                found |= set(self.old.groups[group - 2])
        verdict = Verdict.BREAKING if first else Verdict.BREAKING_IF_STARTED
        return verdict, frozenset(found)


def groups_of(plan: Plan) -> dict[str, int]:
    """Each stage's 1-based execution group."""
    return {sid: index + 1 for index, group in enumerate(plan.groups) for sid in group}


def names(ids: Iterable[str], joiner: str = "and", *, limit: int = 6) -> str:
    """`a`, `a` and `b`, `a`, `b` and `c` (sorted), for messages; past `limit` names, the
    first few and how many more."""
    ordered = [f"`{i}`" for i in sorted(ids)]
    if len(ordered) > limit:
        return ", ".join(ordered[: limit - 1]) + f" {joiner} {len(ordered) - limit + 1} more"
    if len(ordered) <= 1:
        return "".join(ordered)
    return ", ".join(ordered[:-1]) + f" {joiner} " + ordered[-1]
