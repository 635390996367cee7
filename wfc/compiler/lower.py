"""Checked model → Plan. Pure data conversion; every decision was made by the checker."""

from __future__ import annotations

from wfc.compiler import model
from wfc.compiler.lower_children import lower_child_stage
from wfc.compiler.names import class_name
from wfc.compiler.schema import input_json_schema, record_json_schema
from wfc.plan import (
    SIGNAL_IMPLEMENTATION,
    SLEEP_IMPLEMENTATION,
    InputSource,
    ItemFailure,
    MapSpec,
    Plan,
    PlanStage,
    PollPolicy,
    RetryPolicy,
    SignalSpec,
    StageKind,
)


def lower(wf: model.WorkflowModel) -> Plan:
    """The Plan of a checked workflow, fingerprinted."""
    stages = tuple(_lower_stage(stage) for stage in wf.stages)
    plan = Plan(
        workflow_id=wf.id,
        name=wf.name,
        description=wf.description,
        input_schema=record_json_schema(wf.input),
        output_schema=record_json_schema(wf.output),
        stages=stages,
        groups=wf.groups,
        queue=wf.queue,
        schedules=wf.schedules,
        signals=tuple(_lower_signal(signal) for signal in wf.signals),
    )
    return plan.with_fingerprint()


def _lower_signal(signal: model.SignalModel) -> SignalSpec:
    """A payload refuses fields it does not declare: a typo in a field a caller sends is
    an error naming it, not a field silently dropped."""
    return SignalSpec(name=signal.name, payload_schema=_closed(record_json_schema(signal.payload)))


def _closed(schema: dict[str, object]) -> dict[str, object]:
    return {**schema, "additionalProperties": False}


def _lower_builtin(stage: model.StageModel) -> PlanStage:
    """A sleep or a wait: no class, no input, config or policies of its own; its output is
    `{woke_at}` or the signal's payload (or null, for a wait that times out with `continue`)."""
    output = record_json_schema(stage.output)
    if stage.may_be_null:
        defs = output.pop("$defs", None)
        output = {"anyOf": [output, {"type": "null"}], **({"$defs": defs} if defs else {})}
    return PlanStage(
        id=stage.id,
        name=stage.title,
        description=stage.description,
        input_source=InputSource.NONE,
        output_schema=output,
        needs=stage.needs,
        optional_needs=stage.optional_needs,
        when=stage.when,
        priority=stage.priority,
        queue=stage.queue,
        sleep=stage.sleep,
        wait_for=stage.wait_for,
        implementation=SLEEP_IMPLEMENTATION if stage.sleep is not None else SIGNAL_IMPLEMENTATION,
    )


def _lower_stage(stage: model.StageModel) -> PlanStage:
    if stage.builtin:
        return _lower_builtin(stage)
    if stage.child is not None:
        return lower_child_stage(_lower_code_stage(stage), stage.child)
    return _lower_code_stage(stage)


def _lower_code_stage(stage: model.StageModel) -> PlanStage:
    poll = None
    if stage.is_async:
        poll = PollPolicy(
            interval_ms=stage.poll_interval_ms or PollPolicy().interval_ms,
            max_wait_ms=stage.poll_max_wait_ms or PollPolicy().max_wait_ms,
        )
    return PlanStage(
        id=stage.id,
        name=stage.title,
        description=stage.description,
        kind=StageKind.ASYNC if stage.is_async else StageKind.SYNC,
        input_source=InputSource(stage.input_source),
        input_from=stage.input_from,
        input_schema=input_json_schema(stage.input),
        output_schema=record_json_schema(stage.output),
        config_schema=record_json_schema(stage.config),
        config_defaults={f.name: f.default for f in stage.config.fields if f.has_default},
        needs=stage.needs,
        optional_needs=stage.optional_needs,
        when=stage.when,
        map=_lower_map(stage.map),
        retry=RetryPolicy(
            max_attempts=stage.retry_max_attempts,
            backoff_initial_ms=stage.backoff_initial_ms,
            backoff_multiplier=stage.backoff_multiplier,
            backoff_max_ms=stage.backoff_max_ms,
            non_retryable=stage.non_retryable,
        ),
        timeout_ms=stage.timeout_ms,
        poll=poll,
        priority=stage.priority,
        queue=stage.queue,
        concurrency=stage.concurrency,
        rate=stage.rate,
        implementation=f".stages.{stage.id}:{class_name(stage.id)}",
    )


def _lower_map(mapped: model.MapModel | None) -> MapSpec | None:
    if mapped is None:
        return None
    return MapSpec(
        over=mapped.over,
        at_most=mapped.at_most,
        on_item_failure=ItemFailure(mapped.on_item_failure),
    )
