"""The memory store's tables, the indexes over them, and the undo journal that rolls them back.

A transaction must leave no trace when it fails. Copying every table when a
transaction began did that, but made each transaction cost as much as the
store held: a test suite's kernel slowed down with every run it made. Instead
each write made inside a transaction journals what it replaced (the old value,
or that the key was new), and a rollback puts those back in reverse order:
the work is per row written, whatever the store holds.

The lookups the kernel makes on every run (pending runs, a run's stages, due
suspended stages, unpublished events) read indexes kept beside the tables by
the same journaled writes, so they cost what they find, not what is stored.
Indexes are dicts used as sets (or as maps to a sort key): their own order is
never relied on, since undoing a removal puts a key back at the end.

The tables themselves keep their insertion order exactly, because inspection
(`all_runs`, `all_outbox`…) returns rows in it: an update replaces a value in
place, and the rare deletions from them (rerun and retention) swap in a
filtered copy of the table, journaled as a whole, rather than reinserting at
the end on rollback.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wfc.runtime.records import (
    ItemRecord,
    JsonObject,
    LogRecord,
    NewOutboxEvent,
    OutboxRecord,
    PlanRecord,
    RunRecord,
    SignalRecord,
    StageRecord,
    Status,
    WorkerRecord,
)

MISSING: Any = object()  # "there was no value": undoing the write removes the key
NEW_EVENT: Any = object()  # "the event was appended": undoing it removes it from the outbox

# (container, key, what it held before): a dict entry to put back, or a table attribute
# of `Tables` (container `Tables`, key its name) swapped back as a whole, or an event
# appended to the outbox (container `Tables`, key the event's, `NEW_EVENT`): one entry
# for the event's row and its place in `unpublished` (`TableWriter._append_events`).
UndoEntry = tuple[Any, Any, Any]
Journal = list[UndoEntry]

ClaimKey = tuple[int, datetime, int]  # (-priority, created_at, creation order)
EventKey = tuple[str, int]  # an outbox event: (run id, sequence)


@dataclass(frozen=True, slots=True)
class IdempotencyEntry:
    """Replaced, never changed in place, so a journal can hold the old one."""

    started_at: datetime
    result: JsonObject | None = None


def _index() -> dict[str, dict[str, None]]:
    return {}


@dataclass(slots=True)
class Tables:
    """Every table and index of one store; rows are frozen records, replaced on write."""

    runs: dict[str, RunRecord] = field(default_factory=dict)
    stages: dict[str, StageRecord] = field(default_factory=dict)
    stage_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    logs: dict[int, LogRecord] = field(default_factory=dict)  # by write number
    outbox: dict[EventKey, OutboxRecord] = field(default_factory=dict)
    # A run's events are numbered 1, 2, … and only ever deleted with their run: its
    # events are those of sequences 1 to its last (no index of them per run is kept).
    last_sequence: dict[str, int] = field(default_factory=dict)
    keys: dict[tuple[str, str], IdempotencyEntry] = field(default_factory=dict)
    plans: dict[str, PlanRecord] = field(default_factory=dict)
    workers: dict[str, WorkerRecord] = field(default_factory=dict)
    items: dict[tuple[str, str], dict[int, ItemRecord]] = field(default_factory=dict)
    item_at: dict[str, tuple[tuple[str, str], int]] = field(default_factory=dict)  # by id
    signals: dict[str, SignalRecord] = field(default_factory=dict)  # by id, in sent order

    # -- indexes -----------------------------------------------------------------------
    run_order: dict[str, int] = field(default_factory=dict)  # creation number of each run
    pending_runs: dict[str, ClaimKey] = field(default_factory=dict)
    running_runs: dict[str, None] = field(default_factory=dict)
    children: dict[str, dict[str, None]] = field(default_factory=_index)  # by parent run
    stages_of: dict[str, dict[str, None]] = field(default_factory=_index)  # record ids by run
    suspended_stages: dict[str, None] = field(default_factory=dict)
    item_stages_of: dict[str, dict[str, None]] = field(default_factory=_index)  # by run
    suspended_items: dict[str, None] = field(default_factory=dict)
    logs_of: dict[str, dict[int, None]] = field(default_factory=dict)
    signals_of: dict[str, dict[str, None]] = field(default_factory=_index)
    unpublished: dict[EventKey, int] = field(default_factory=dict)  # → its position
    # When each event was published, kept apart from its record (`OutboxAndKeys.mark_published`):
    # a reader is given a copy of the record that carries it (`_event`).
    published: dict[EventKey, datetime] = field(default_factory=dict)
    parked: dict[EventKey, int] = field(default_factory=dict)  # in the DLQ, likewise
    numbers: itertools.count[int] = field(default_factory=itertools.count)  # never rolled back


def rollback(journal: Journal) -> None:
    """Undo every journaled write, newest first: the tables are as they were before."""
    for container, key, old in reversed(journal):
        if isinstance(container, Tables):
            if old is NEW_EVENT:
                container.outbox.pop(key, None)
                container.unpublished.pop(key, None)
            else:
                setattr(container, key, old)
        elif old is MISSING:
            container.pop(key, None)
        else:
            container[key] = old
    journal.clear()


class TableWriter:
    """Journaled writes to the tables, each keeping the indexes in step with the rows.

    `journal` is None outside a transaction: writes then apply at once, for good.
    """

    def __init__(self, tables: Tables, journal: Journal | None = None) -> None:
        self._t = tables
        self._journal = journal

    # -- primitive writes ----------------------------------------------------------------
    def _set(self, container: dict[Any, Any], key: Any, value: Any) -> None:
        if self._journal is not None:
            self._journal.append((container, key, container.get(key, MISSING)))
        container[key] = value

    def _pop(self, container: dict[Any, Any], key: Any) -> None:
        if key in container:
            if self._journal is not None:
                self._journal.append((container, key, container[key]))
            del container[key]

    def _swap(self, name: str, table: dict[Any, Any]) -> None:
        """Replace a whole table (a deletion that must keep the others' order on rollback)."""
        if self._journal is not None:
            self._journal.append((self._t, name, getattr(self._t, name)))
        setattr(self._t, name, table)

    def _add_to(self, index: dict[str, dict[Any, None]], owner: str, key: Any) -> None:
        # `_set`'s journaling written out: every row added to a run passes here.
        journal, members = self._journal, index.get(owner)
        if members is None:
            members = index[owner] = {}
            if journal is not None:
                journal.append((index, owner, MISSING))
        if journal is not None:
            journal.append((members, key, members.get(key, MISSING)))
        members[key] = None

    def _remove_from(self, index: dict[str, dict[Any, None]], owner: str, key: Any) -> None:
        members = index.get(owner)
        if members is not None:
            self._pop(members, key)

    # -- rows ----------------------------------------------------------------------------
    def _write_run(self, run: RunRecord, old: RunRecord | None) -> None:
        """`run` written over `old`, the row stored under its id (None: no row)."""
        t, journal, runs = self._t, self._journal, self._t.runs
        # `_set`'s journaling written out (every run write passes here), `old` being what
        # the row held: the callers read it, or made sure that there was none.
        if journal is not None:
            journal.append((runs, run.id, MISSING if old is None else old))
        runs[run.id] = run
        if old is None:
            self._set(t.run_order, run.id, next(t.numbers))
            if run.parent_run_id is not None:
                self._add_to(t.children, run.parent_run_id, run.id)
        if old is None or old.status is not run.status or old.priority != run.priority:
            if run.status is Status.PENDING:
                key = (-run.priority, run.created_at, t.run_order[run.id])
                self._set(t.pending_runs, run.id, key)
            elif run.id in t.pending_runs:
                self._pop(t.pending_runs, run.id)
            if run.status is Status.RUNNING:
                self._set(t.running_runs, run.id, None)
            elif run.id in t.running_runs:
                self._pop(t.running_runs, run.id)

    def _write_stage(self, stage: StageRecord, old: StageRecord | None) -> None:
        """`stage` written over `old`, the row stored under its id (None: no row)."""
        t, journal, stages = self._t, self._journal, self._t.stages
        if journal is not None:  # as in `_write_run`: every stage write passes here
            journal.append((stages, stage.id, MISSING if old is None else old))
        stages[stage.id] = stage
        if old is None or (old.run_id, old.stage_id) != (stage.run_id, stage.stage_id):
            self._set(t.stage_ids, (stage.run_id, stage.stage_id), stage.id)
            self._add_to(t.stages_of, stage.run_id, stage.id)
        suspended = stage.status is Status.SUSPENDED
        if old is None or (old.status is Status.SUSPENDED) != suspended:
            if suspended:
                self._set(t.suspended_stages, stage.id, None)
            elif stage.id in t.suspended_stages:
                self._pop(t.suspended_stages, stage.id)

    def _write_item(self, item: ItemRecord, old: ItemRecord | None) -> None:
        t = self._t
        key = (item.run_id, item.stage_id)
        items = t.items.get(key)
        if items is None:
            items = {}
            self._set(t.items, key, items)
            self._add_to(t.item_stages_of, item.run_id, item.stage_id)
        self._set(items, item.item_index, item)
        if old is not None and old.id != item.id:
            self._pop(t.item_at, old.id)
            self._pop(t.suspended_items, old.id)
        if old is None or old.id != item.id:
            self._set(t.item_at, item.id, (key, item.item_index))
        if item.status is Status.SUSPENDED:
            self._set(t.suspended_items, item.id, None)
        elif old is not None and old.status is Status.SUSPENDED:
            self._pop(t.suspended_items, item.id)

    def _delete_item(self, item: ItemRecord) -> None:
        t = self._t
        self._pop(t.items[(item.run_id, item.stage_id)], item.item_index)
        self._pop(t.item_at, item.id)
        self._pop(t.suspended_items, item.id)

    def _write_event(self, event: OutboxRecord) -> None:
        """An event already in the outbox (by its run and sequence) changed."""
        t = self._t
        key, order = (event.run_id, event.sequence), event.position
        assert order is not None, "a stored event has its position"
        self._set(t.outbox, key, event)
        if event.published_at is None and event.dlq_at is None:
            self._set(t.unpublished, key, order)
        elif key in t.unpublished:  # (asked first: a call saved per event published)
            self._pop(t.unpublished, key)
        if event.dlq_at is not None:
            self._set(t.parked, key, order)
        elif key in t.parked:
            self._pop(t.parked, key)

    def _append_events(self, events: Sequence[NewOutboxEvent]) -> list[OutboxRecord]:
        """`events` appended to the outbox, each numbered next in its run and placed after
        every event stored: unpublished and not parked.

        Every event of every run passes here, so the writes are written out, one journal
        entry per event (`NEW_EVENT`) for its row and its place in `unpublished`: a new
        event's key held nothing before (its sequence is past its run's last), so there
        is nothing to put back, only the event to take out. Each run's last sequence is
        written once per call."""
        t, journal = self._t, self._journal
        outbox, unpublished, numbers, last = t.outbox, t.unpublished, t.numbers, t.last_sequence
        sequences: dict[str, int] = {}
        appended = []
        for event in events:
            run_id = event.run_id
            sequence = sequences.get(run_id) or last.get(run_id, 0)
            sequences[run_id] = sequence = sequence + 1
            position = next(numbers)
            record = event.numbered(sequence, position)
            key = (run_id, sequence)
            if journal is not None:
                journal.append((t, key, NEW_EVENT))
            outbox[key] = record
            unpublished[key] = position
            appended.append(record)
        for run_id, sequence in sequences.items():
            self._set(last, run_id, sequence)
        return appended

    def _write_log(self, log: LogRecord) -> None:
        number = next(self._t.numbers)
        self._set(self._t.logs, number, log)
        self._add_to(self._t.logs_of, log.run_id, number)

    def _write_signal(self, signal: SignalRecord, old: SignalRecord | None) -> None:
        self._set(self._t.signals, signal.id, signal)
        if old is None:
            self._add_to(self._t.signals_of, signal.run_id, signal.id)

    # -- deletions -------------------------------------------------------------------------
    def _delete_stages(self, doomed: list[StageRecord]) -> None:
        if not doomed:
            return
        t = self._t
        gone = {stage.id for stage in doomed}
        self._swap("stages", {k: s for k, s in t.stages.items() if k not in gone})
        for stage in doomed:
            self._pop(t.stage_ids, (stage.run_id, stage.stage_id))
            self._remove_from(t.stages_of, stage.run_id, stage.id)
            self._pop(t.suspended_stages, stage.id)

    def _delete_runs(self, doomed: set[str]) -> None:
        """Every row of the `doomed` runs (retention)."""
        t = self._t
        parents = {t.runs[run_id].parent_run_id for run_id in doomed} - {None}
        stages = [t.stages[k] for run_id in doomed for k in t.stages_of.get(run_id, {})]
        self._delete_stages(stages)
        for run_id in doomed:
            for stage_id in list(t.item_stages_of.get(run_id, {})):
                for item in list(t.items.get((run_id, stage_id), {}).values()):
                    self._delete_item(item)
                self._pop(t.items, (run_id, stage_id))
        self._swap("runs", {k: r for k, r in t.runs.items() if k not in doomed})
        self._swap("logs", {n: log for n, log in t.logs.items() if log.run_id not in doomed})
        self._swap("signals", {k: s for k, s in t.signals.items() if s.run_id not in doomed})
        self._swap("outbox", {k: e for k, e in t.outbox.items() if e.run_id not in doomed})
        for run_id in doomed:
            for sequence in range(1, t.last_sequence.get(run_id, 0) + 1):
                self._pop(t.unpublished, (run_id, sequence))
                self._pop(t.parked, (run_id, sequence))
                self._pop(t.published, (run_id, sequence))
            for index in (t.stages_of, t.item_stages_of, t.logs_of, t.signals_of):
                self._pop(index, run_id)
            for one in (t.last_sequence, t.run_order, t.pending_runs, t.running_runs):
                self._pop(one, run_id)
        # A pruned parent's index entry stays: its children that are kept are still its
        # children (`children_of` reads them by `parent_run_id`, as a database would).
        for parent in parents:
            for run_id in doomed & t.children.get(str(parent), {}).keys():
                self._remove_from(t.children, str(parent), run_id)
