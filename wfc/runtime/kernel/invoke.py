"""Running stage code: `execute` and `check_completion`, with validation, threads and timeouts.

Nothing here touches a transaction: it turns a call into stage code into an
outcome the command handlers persist. Plain `def` stage methods run in a
worker thread so they never block the event loop; `async def` ones are
awaited. A timeout abandons a thread-run method (Python cannot kill a thread)
but the attempt counts as failed at once. Outputs are validated against the
stage's output model on every path.

A 1.7 MB output used to be dumped to a tree, validated, dumped again, walked and
encoded, and the next stage parsed the stored text into a tree to validate; each
tree was made only to be copied, and its containers fed the cyclic collector,
whose full collections were half of such a run. Now JSON text is what is handed
around: a returned model is validated from its own text (`_model_text`), the
validated model's text is what is stored (`json_output`), and an input that is
one earlier output held as text is validated from the text (`_input_text`). What
the JSON mode refuses is validated again as a value, for that path's own error.

What leaves here for storage is redacted (`wfc.runtime.redact`): a failure's
error, log lines and progress reports. Stage code quotes whatever it was
handed, and an API key in an exception message would otherwise reach the
stage row, the job, the run's error, the logs and every outbox subscriber.

Artifacts (`ctx.artifact`) are kept per attempt, under
`<stage prefix>artifacts/<generation>.<attempt>/<name>`: an attempt writes
them only once its body succeeded or suspended, before its outcome is
recorded, and never under another attempt's key. So a failed attempt leaves
none, and an attempt that turns out to be a ghost (its run stopped, or a later
delivery took the stage over and committed) cannot overwrite the committed
attempt's: `stage_artifacts` lists those of the attempt the stage row names,
which is the one whose outcome the row holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from wfc.errors import WfcError, validation_problems
from wfc.plan import InputSource, PlanStage
from wfc.runtime.events import Event, StageProgress
from wfc.runtime.json_text import validated_from_text
from wfc.runtime.kernel.calling import call, describe_error, guarded
from wfc.runtime.kernel.deps import Deps
from wfc.runtime.kernel.json_output import json_output
from wfc.runtime.kernel.outcomes import (
    Failure,
    NotYet,
    Outcome,
    Produced,
    Progress,
    Report,
    Suspended,
)
from wfc.runtime.kernel.rows import stage_prefix, write_log
from wfc.runtime.ports import BlobAccess
from wfc.runtime.records import LogLevel, RunRecord, StageRecord, Status
from wfc.runtime.redact import redact, redact_data
from wfc.runtime.stage import (
    AsyncStage,
    CheckContext,
    Failed,
    NotReady,
    Ready,
    Suspend,
    _StageBase,
    new_ai_helper,
    stage_topic,
)
from wfc.runtime.stage_outputs import StageOutputs
from wfc.runtime.workflow import Workflow

__all__ = [  # the outcomes are imported from here by the command handlers, as they were
    "FALLBACK_POLL",
    "Failure",
    "MapItem",
    "NotYet",
    "Outcome",
    "Produced",
    "Progress",
    "Report",
    "Suspended",
    "artifact_prefix",
    "describe_error",
    "progress_events",
    "resolve_input",
    "run_check",
    "run_execute",
    "stage_artifacts",
    "store_artifacts",
    "suspend_times",
]

if TYPE_CHECKING:
    from wfc.runtime.ai import AIHelper
    from wfc.runtime.ports import BlobStore


_MODEL_DUMP = BaseModel.model_dump


class _InputUnavailable(Exception):
    """The output this stage takes as input does not exist."""


class _Services:
    """`StageServices` for one execution: logs are written as they happen, from any thread;
    artifacts are held until the outcome is known (`store_artifacts`)."""

    def __init__(self, deps: Deps, run_id: str, stage_record_id: str, topic: str) -> None:
        self._deps = deps
        self._run_id = run_id
        self._record_id = stage_record_id
        self.topic = topic
        self.helper: AIHelper | None = None
        self._loop = asyncio.get_running_loop()
        self._pending: set[asyncio.Task[None]] = set()
        self.progress_reports: list[Progress] = []
        self.metrics: dict[str, float] = {}
        self.artifacts: dict[str, bytes] = {}

    def log(self, level: LogLevel, message: str, fields: Mapping[str, Any]) -> None:
        record = write_log(
            self._deps,
            self._run_id,
            level,
            redact(message),
            stage_record_id=self._record_id,
            fields=redact_data(dict(fields)),
        )
        if _on_loop(self._loop):
            self._pending.add(self._loop.create_task(record))
        else:  # a stage running in a worker thread: wait until the line is written
            asyncio.run_coroutine_threadsafe(record, self._loop).result()

    def progress(
        self, fraction: float, message: str | None, details: dict[str, Any] | None
    ) -> None:
        self.progress_reports.append(
            Progress(
                fraction=fraction,
                message=None if message is None else redact(message),
                details=None if details is None else redact_data(details),
            )
        )

    def artifact(self, name: str, data: bytes) -> None:
        self.artifacts[name] = data

    def metric(self, name: str, value: float) -> None:
        self.metrics[name] = value

    @property
    def blobs(self) -> BlobAccess:
        return self._deps.blobs

    @property
    def ai(self) -> AIHelper:
        if self.helper is None:
            logger = self._deps.ai_calls
            if logger is None:
                raise WfcError("this kernel has no AI call logger (pass ai_calls= to Kernel)")
            self.helper = new_ai_helper(self.topic, logger)
        return self.helper

    async def drain(self) -> None:
        """Wait for log writes still in flight."""
        if self._pending:
            await asyncio.gather(*self._pending)
            self._pending.clear()

    async def finish(self) -> dict[str, float]:
        """Wait for logs; the metrics, with the stage's AI cost and tokens if it used the helper.

        The ledger is read rather than this attempt's calls summed, so spending of
        earlier attempts of the same stage counts too.
        """
        await self.drain()
        if self.helper is not None and self._deps.ai_calls is not None:
            stats = await self._deps.ai_calls.stats(self.topic)
            self.metrics.setdefault("total_cost", stats.total_cost)
            self.metrics.setdefault(
                "total_tokens", stats.total_input_tokens + stats.total_output_tokens
            )
        return self.metrics


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _redacted(outcome: Outcome) -> Outcome:
    """The outcome with its error redacted: every failure passes here, whether stage code
    raised it, returned `Failed(error)` or returned an output that quotes its input."""
    if not isinstance(outcome, Failure):
        return outcome
    where = None if outcome.traceback is None else redact(outcome.traceback)
    return replace(outcome, error=redact(outcome.error), traceback=where)


def artifact_prefix(run: RunRecord, stage_id: str, generation: int, attempt: int) -> str:
    """Where one attempt of one stage keeps its artifacts. The generation is part of it
    because a rerun numbers attempts from 1 again, while a ghost of the previous
    generation may still be writing."""
    return f"{stage_prefix(run, stage_id)}artifacts/{generation}.{attempt}/"


async def stage_artifacts(blobs: BlobStore, run: RunRecord, row: StageRecord) -> dict[str, str]:
    """`{name: blob key}` of the artifacts of the attempt a stage committed, sorted by name:
    a COMPLETED stage's, or a SUSPENDED one's `execute` (its artifacts stay listed once
    it completes). Other stages have committed no attempt, so none."""
    if row.status not in (Status.COMPLETED, Status.SUSPENDED):
        return {}
    prefix = artifact_prefix(run, row.stage_id, row.generation, row.attempt)
    return {key.removeprefix(prefix): key for key in sorted(await blobs.list(prefix))}


async def store_artifacts(
    deps: Deps, prefix: str, artifacts: Mapping[str, bytes]
) -> Failure | None:
    """Write an attempt's artifacts under `prefix`; the failure of the attempt when one
    cannot be stored (retryable: the blob store's trouble is likely passing)."""
    for name, data in artifacts.items():
        try:
            await deps.blobs.put(prefix + name, data)
        except Exception as error:
            return Failure(error=f"could not store artifact {name!r}: {describe_error(error)}")
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class MapItem:
    """The item one execution of a mapped stage works on, and where its artifacts go."""

    index: int
    count: int
    value: Any
    artifact_prefix: str


def resolve_input(
    workflow: Workflow,
    stage: PlanStage,
    run: RunRecord,
    outputs: Mapping[str, Any],
    item: MapItem | None = None,
) -> Any:
    """The value a stage takes as input (spec §3.6, plus `from <stage>`, `none` and the
    item of a mapped stage)."""
    if stage.input_source is InputSource.ITEM:
        if item is None:
            raise _InputUnavailable(f"Stage {stage.id} is mapped: it runs once per item")
        return item.value
    if stage.input_source is InputSource.NONE:
        return {}
    if stage.input_source is InputSource.STAGE:
        source = stage.input_from or ""
        if source not in outputs:
            raise _InputUnavailable(
                f"Stage {stage.id} takes its input from {source}, which has no output"
            )
        return outputs[source]
    group = workflow.group_of(stage.id)
    if group == 1:
        return run.input
    previous = workflow.group(group - 1)
    if len(previous) == 1:
        if previous[0] not in outputs:
            raise _InputUnavailable(
                f"Stage {stage.id} (execution group {group}) is missing the output of "
                f"execution group {group - 1} — cannot resolve input"
            )
        return outputs[previous[0]]
    return {sid: outputs[sid] for sid in previous if sid in outputs}


def _parse(model: type[BaseModel], value: Any, what: str, stage_id: str) -> BaseModel | Failure:
    """`value` parsed by `model`, or the failure "Invalid <what> for stage <id>: …"."""
    try:
        return model.model_validate(value)
    except ValidationError as error:
        problems = "; ".join(validation_problems(error))
        return Failure(error=f"Invalid {what} for stage {stage_id}: {problems}", retryable=False)


def _input_text(workflow: Workflow, stage: PlanStage, outputs: Mapping[str, Any]) -> bytes | None:
    """The stored JSON text of the one output `stage` takes as its input (`from <stage>`, or
    the previous group's when it is one stage), when the context holds it unread
    (`StageOutputs.unread_text`); else None, and the input is resolved as a value."""
    if not isinstance(outputs, StageOutputs):
        return None
    if stage.input_source is InputSource.STAGE:
        return outputs.unread_text(stage.input_from or "")
    if stage.input_source is not InputSource.FLOW:
        return None
    group = workflow.group_of(stage.id)
    previous = workflow.group(group - 1) if group > 1 else []
    return outputs.unread_text(previous[0]) if len(previous) == 1 else None


def _coerce_output(stage_cls: type[_StageBase], stage_id: str, result: Any) -> Produced | Failure:
    """The output `result` as its stage's output model validates it (a model's own is
    checked again: it may have been changed since it was built), as JSON data and text."""
    model = stage_cls.output_model
    if isinstance(result, BaseModel):
        text = _model_text(result)
        parsed = None if text is None else validated_from_text(model, text)
        if parsed is not None:
            data, stored = json_output(parsed)
            return Produced(output=data, text=stored)
    value = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    if not isinstance(value, dict):
        return Failure(
            error=f"Stage {stage_id} returned {type(result).__name__}, expected {model.__name__}"
        )
    try:
        parsed = model.model_validate(value)
    except ValidationError as error:
        problems = "; ".join(validation_problems(error))
        return Failure(error=f"Stage {stage_id} returned an invalid output: {problems}")
    data, stored = json_output(parsed)
    return Produced(output=data, text=stored)


def _model_text(result: BaseModel) -> bytes | None:
    """The JSON text of the model a stage returned, to be validated as its output: the
    values its `model_dump(mode="json")` would hold, written as the text (both serialize in
    JSON mode), so the model is validated without a tree of dicts and lists dumped from it
    and dropped. None when the text cannot be written (a lone surrogate, a type JSON has
    none for) or is not an object (a root model's), or when the model's class writes its
    own `model_dump`: the dump's path then, with its errors."""
    if type(result).model_dump is not _MODEL_DUMP:
        return None
    try:
        text: bytes = result.__pydantic_serializer__.to_json(result)
    except Exception:
        return None
    return text if text[:1] == b"{" else None


async def run_execute(
    deps: Deps,
    workflow: Workflow,
    run: RunRecord,
    row: StageRecord,
    outputs: Mapping[str, Any],
    config_map: Mapping[str, Any],
    attempt: int,
    item: MapItem | None = None,
) -> Report:
    """Resolve input and config, call `execute`, and say how it went (a failure redacted)."""
    report = await _execute(deps, workflow, run, row, outputs, config_map, attempt, item)
    report.outcome = _redacted(report.outcome)
    return report


async def _execute(
    deps: Deps,
    workflow: Workflow,
    run: RunRecord,
    row: StageRecord,
    outputs: Mapping[str, Any],
    config_map: Mapping[str, Any],
    attempt: int,
    item: MapItem | None,
) -> Report:
    # Read once: a plan's stage is a pydantic model, whose attributes cost several times a
    # plain object's to read (its `__getattr__` keeps the interpreter from caching them).
    stage_id = row.stage_id
    stage = workflow.stage(stage_id)
    assert stage is not None
    cls = workflow.implementations[stage_id]
    text = None if item is not None else _input_text(workflow, stage, outputs)
    parsed_input: BaseModel | Failure | None
    parsed_input = None if text is None else validated_from_text(cls.input_model, text)
    if parsed_input is None:  # not held as text, or refused: as a value, for its error
        try:
            raw_input = resolve_input(workflow, stage, run, outputs, item)
        except _InputUnavailable as error:
            return Report(outcome=Failure(error=str(error)))
        parsed_input = _parse(cls.input_model, raw_input, "input", stage_id)
    if isinstance(parsed_input, Failure):
        return Report(outcome=parsed_input)
    config_slice = config_map.get(stage_id, {})
    parsed_config = _parse(cls.config_model, config_slice, "config", stage_id)
    if isinstance(parsed_config, Failure):
        return Report(outcome=parsed_config)

    services = _Services(
        deps, run.id, row.id, _topic(run, row, None if item is None else item.index)
    )
    ctx = cls.context_type(
        run_id=run.id,
        stage_id=stage_id,
        input=parsed_input,
        config=parsed_config,
        outputs=outputs,
        attempt=attempt,
        resume_state=row.suspended_state,
        services=services,
        item_index=None if item is None else item.index,
        item_count=None if item is None else item.count,
    )
    instance: Any = cls()
    result, failure = await guarded(stage, lambda: call(instance.execute, ctx))
    metrics = await services.finish()
    outcome: Outcome
    if failure is not None:
        outcome = failure
    elif isinstance(result, Suspend):
        outcome = (
            Suspended(request=result)
            if cls.suspends
            else Failure(
                error=f"Stage {stage_id} returned Suspend but is not an async stage",
                retryable=False,
            )
        )
    else:
        outcome = _coerce_output(cls, stage_id, result)
    if isinstance(outcome, Produced | Suspended) and services.artifacts:
        prefix = (
            artifact_prefix(run, stage_id, row.generation, attempt)
            if item is None
            else item.artifact_prefix
        )
        outcome = await store_artifacts(deps, prefix, services.artifacts) or outcome
    return Report(outcome=outcome, progress=services.progress_reports, metrics=metrics)


def _topic(run: RunRecord, row: StageRecord, item_index: int | None) -> str:
    """The AI ledger topic of a stage, or of one item of a mapped stage (under the stage's,
    so the stage's stats add its items up, and each item's cost is its own)."""
    topic = stage_topic(run.id, row.stage_id)
    return topic if item_index is None else f"{topic}.item.{item_index}"


async def run_check(
    deps: Deps,
    workflow: Workflow,
    run: RunRecord,
    row: StageRecord,
    state: dict[str, Any],
    item_index: int | None = None,
) -> Report:
    """Call `check_completion` on a suspended stage and say how it went (a failure redacted).

    `state` is passed by reference: changes the method makes to it are kept
    when it reports not-ready, so it can count polls or remember cursors.
    """
    report = await _check(deps, workflow, run, row, state, item_index)
    report.outcome = _redacted(report.outcome)
    return report


async def _check(
    deps: Deps,
    workflow: Workflow,
    run: RunRecord,
    row: StageRecord,
    state: dict[str, Any],
    item_index: int | None,
) -> Report:
    stage = workflow.stage(row.stage_id)
    cls = workflow.implementations.get(row.stage_id)
    if stage is None or cls is None:
        return Report(
            outcome=Failure(error=f"Stage {row.stage_id} not found in workflow {run.workflow_id}")
        )
    if not issubclass(cls, AsyncStage):
        return Report(
            outcome=Failure(error=f"Stage {row.stage_id} does not support check_completion")
        )
    parsed_config = _parse(cls.config_model, row.config, "config", stage.id)
    if isinstance(parsed_config, Failure):
        return Report(outcome=parsed_config)
    services = _Services(deps, run.id, row.id, _topic(run, row, item_index))
    ctx = CheckContext(run_id=run.id, stage_id=stage.id, config=parsed_config, services=services)
    instance: Any = cls()
    result, failure = await guarded(stage, lambda: call(instance.check_completion, state, ctx))
    metrics = await services.finish()
    outcome: Outcome
    match result:
        case _ if failure is not None:
            outcome = failure
        case Ready(output=output):
            outcome = _coerce_output(cls, stage.id, output)
        case NotReady(next_check_in=delay):
            outcome = NotYet(next_check_in=delay)
        case Failed(error=error):
            outcome = Failure(error=error or "check_completion failed", retryable=False)
        case _:
            outcome = Failure(
                error=f"Stage {stage.id}: check_completion returned {type(result).__name__}, "
                "expected Ready, NotReady or Failed",
                retryable=False,
            )
    return Report(outcome=outcome, progress=services.progress_reports, metrics=metrics)


FALLBACK_POLL = timedelta(seconds=60)
"""How long a suspended stage waits between checks when nothing says otherwise."""


def suspend_times(
    stage: PlanStage, request: Suspend, now: datetime
) -> tuple[datetime, int, datetime]:
    """`(next_poll_at, poll_interval_ms, max_wait_until)` for a stage that just suspended."""
    interval = (
        request.poll_interval
        if request.poll_interval is not None
        else timedelta(milliseconds=stage.poll.interval_ms if stage.poll else 30_000)
    )
    max_wait = (
        request.max_wait
        if request.max_wait is not None
        else timedelta(milliseconds=stage.poll.max_wait_ms if stage.poll else 24 * 3_600_000)
    )
    next_poll_at = request.next_poll_at or now + interval
    return next_poll_at, int(interval / timedelta(milliseconds=1)), now + max_wait


def progress_events(run_id: str, stage_id: str, report: Report, now: datetime) -> list[Event]:
    """The `stage:progress` events a stage reported, in call order."""
    return [
        StageProgress(
            timestamp=now,
            workflow_run_id=run_id,
            stage_id=stage_id,
            progress=p.fraction,
            message=p.message,
            details=p.details,
        )
        for p in report.progress
    ]
