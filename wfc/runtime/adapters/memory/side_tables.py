"""The memory persistence's signals, children, plans, workers and logs.

Each is a table of its own beside the runs and stages, written through the same
journal (so a failed transaction puts them back) and read by one run's id or one
key: they share no logic with the run and stage tables, so they live here and
`persistence._MemoryStore` inherits them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from wfc.runtime.adapters.memory.tables import TableWriter
from wfc.runtime.copies import changed
from wfc.runtime.records import LogRecord, PlanRecord, RunRecord, SignalRecord, WorkerRecord


class SignalsPlansAndLogs(TableWriter):
    """The signals', children's, plans', workers' and logs' `Persistence` methods."""

    # -- signals -------------------------------------------------------------
    async def add_signal(self, signal: SignalRecord) -> SignalRecord:
        mine = self._signals_of(signal.run_id)
        same = next((s for s in mine if s.idempotency_key == signal.idempotency_key), None)
        if same is not None:
            return same
        kept = replace(signal, sequence=max((s.sequence for s in mine), default=0) + 1)
        self._write_signal(kept, self._t.signals.get(kept.id))
        return kept

    def _signals_of(self, run_id: str) -> list[SignalRecord]:
        signals = self._t.signals
        return [signals[k] for k in self._t.signals_of.get(run_id, ())]

    async def take_signal(
        self, run_id: str, name: str, consumer: str, at: datetime
    ) -> SignalRecord | None:
        waiting = [s for s in self._signals_of(run_id) if s.name == name and s.consumed_at is None]
        if not waiting:
            return None
        first = min(waiting, key=lambda s: s.sequence)
        taken = replace(first, consumed_at=at, consumed_by=consumer)
        self._write_signal(taken, first)
        return taken

    async def signals_of_run(self, run_id: str) -> list[SignalRecord]:
        return sorted(self._signals_of(run_id), key=lambda s: s.sequence)

    async def children_of(self, run_id: str) -> list[RunRecord]:
        mine = [self._t.runs[child] for child in self._t.children.get(run_id, ())]
        return sorted(mine, key=lambda r: (r.created_at, r.id))

    # -- plans and workers -------------------------------------------------
    async def record_plans(self, plans: Sequence[PlanRecord]) -> None:
        for plan in plans:
            if plan.fingerprint not in self._t.plans:
                self._set(self._t.plans, plan.fingerprint, plan)

    async def get_plan(self, fingerprint: str) -> PlanRecord | None:
        return self._t.plans.get(fingerprint)

    async def list_plans(self, limit: int = 500) -> list[PlanRecord]:
        plans = sorted(self._t.plans.values(), key=lambda p: (p.recorded_at, p.fingerprint))
        return plans[::-1][:limit]

    async def announce_worker(self, worker: WorkerRecord) -> None:
        known = self._t.workers.get(worker.worker_id)
        if known is not None and known.started_at != worker.started_at:  # kept from its first
            worker = changed(worker, {"started_at": known.started_at})
        self._set(self._t.workers, worker.worker_id, worker)

    async def retire_worker(self, worker_id: str) -> None:
        self._pop(self._t.workers, worker_id)

    async def live_workers(self, now: datetime) -> list[WorkerRecord]:
        return [w for _, w in sorted(self._t.workers.items()) if w.expires_at > now]

    # -- logs ------------------------------------------------------------
    async def add_log(self, log: LogRecord) -> None:
        self._write_log(log)

    async def logs_of_run(self, run_id: str) -> list[LogRecord]:
        logs = self._t.logs
        return [logs[n] for n in sorted(self._t.logs_of.get(run_id, ()))]
