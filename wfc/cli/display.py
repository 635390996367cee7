"""The live view of a run in the terminal: one line per stage event, as it happens.

It reads the run's own events from the outbox (they commit with the state
they describe), so what it shows is what happened, including retries,
suspensions and the progress messages stages report. Error and progress text
is redacted again before it is printed (`wfc.runtime.redact`), as `wfc runs
show` does: events stored before the kernel redacted them must not leak.
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.status import Status as Spinner

from wfc.runtime.hosts import RunSnapshot
from wfc.runtime.kernel import Kernel
from wfc.runtime.records import OutboxRecord, Status
from wfc.runtime.redact import redact


def _clock(value: object) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%H:%M:%S") if isinstance(value, datetime) else str(value)


def _ms(value: object) -> str:
    return f"{value} ms" if isinstance(value, int) else "?"


def describe(event: OutboxRecord) -> str | None:
    """One line of rich markup for an event, or None for events not worth a line."""
    p = event.payload
    stage = escape(str(p.get("stage_id", "")))
    kind = event.event_type
    if kind == "stage:started":
        attempt = p.get("attempt", 1)
        again = f" [yellow](attempt {attempt})[/]" if attempt and attempt > 1 else ""
        return f"[cyan]▶[/] {stage} started{again}"
    if kind == "stage:progress":
        message = escape(redact(str(p.get("message") or "")))
        return f"  {stage} [dim]{round(float(p.get('progress', 0)) * 100)}%[/] {message}".rstrip()
    if kind == "stage:completed":
        return f"[green]✔[/] {stage} completed in {_ms(p.get('duration_ms'))}"
    if kind == "stage:suspended":
        return f"[blue]⏸[/] {stage} suspended; next check at {_clock(p.get('next_poll_at'))}"
    if kind == "stage:failed":
        error = escape(redact(str(p.get("error", ""))))
        if p.get("retry_at"):
            return f"[yellow]↻[/] {stage} failed: {error} — retrying at {_clock(p['retry_at'])}"
        return f"[red]✖[/] {stage} failed: {error}"
    if kind == "stage:skipped":
        return f"[dim]⤼ {stage} skipped: {escape(str(p.get('reason', '')))}[/]"
    if kind == "workflow:cancelled":
        return f"[red]■[/] run cancelled {escape(redact(str(p.get('reason') or '')))}".rstrip()
    return None


class RunDisplay:
    """Prints a run's new events on each change and keeps a spinner line while it runs."""

    def __init__(self, kernel: Kernel, console: Console, total_stages: int) -> None:
        self._kernel = kernel
        self._console = console
        self._total = total_stages
        self._last_sequence = 0
        self._spinner: Spinner | None = None

    def __enter__(self) -> RunDisplay:
        if self._console.is_terminal:
            self._spinner = self._console.status("starting…")
            self._spinner.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._spinner is not None:
            self._spinner.stop()

    async def on_change(self, snapshot: RunSnapshot) -> None:
        events = await self._kernel.deps.persistence.outbox_of_run(snapshot.run_id)
        for event in events:
            if event.sequence <= self._last_sequence:
                continue
            self._last_sequence = event.sequence
            line = describe(event)
            if line is not None:
                self._console.print(line, highlight=False)
        if self._spinner is not None:
            done = sum(1 for s in snapshot.stages if s.status in (Status.COMPLETED, Status.SKIPPED))
            self._spinner.update(
                f"{snapshot.run.workflow_id}: {snapshot.status.value.lower()}, "
                f"{done}/{self._total} stages done"
            )
