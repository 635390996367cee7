"""Signals, durable sleeps and signal waits for the Python builder, checked as the compiler checks them.

```python
approve = define_signal("approve", ApprovePayload)        # a pydantic model of the payload
cool_off = sleep_stage("cool_off", duration_ms=3_600_000)  # or until="input.publish_at"
approval = wait_stage("approval", approve, timeout_ms=2 * 86_400_000, on_timeout="continue")
publish = define_stage(id="publish", output=Published, execute=publish_it,
                       needs=["draft"], optional_needs=["approval"])
WorkflowBuilder("docs", "Documents", input=Doc, signals=[approve]) \\
    .pipe(draft).pipe(cool_off).pipe(approval).pipe(publish).build()
```

A sleep or a wait is a built-in stage: the runtime runs it, so it has no
`execute` and no class, and none of the settings of user code (input, config,
retry, async, map, limits). A wait's output is the signal's payload (None when it
timed out with `on_timeout="continue"`, so the stages that need it list it in
`optional_needs`, as the plan requires); a sleep's is `SleepOutput`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

from wfc.plan import (
    SIGNAL_IMPLEMENTATION,
    SLEEP_IMPLEMENTATION,
    Condition,
    InputSource,
    PlanStage,
    SignalSpec,
    SignalTimeout,
    SignalWait,
    SleepSpec,
)
from wfc.plan_waits import signal_problem
from wfc.runtime.model_schemas import json_schema

_PATH_PART = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class SleepOutput(BaseModel):
    """What a sleep hands on: the instant it woke."""

    woke_at: datetime.datetime


def define_signal(name: str, payload: type[BaseModel] | None = None) -> SignalSpec:
    """A signal the workflow declares (`WorkflowBuilder(signals=[…])`), with the model its
    payload must fit (none: an empty object). A payload that does not fit is refused
    when it is sent, every failing field named."""
    if not _PATH_PART.fullmatch(name):
        raise ValueError(f"signal name {name!r}: letters, digits and _, starting with a letter")
    if payload is None:
        return SignalSpec(name=name)
    return SignalSpec(name=name, payload_schema=json_schema(payload))


def sleep_stage(
    id: str,
    *,
    duration_ms: int | None = None,
    until: str | Sequence[str] | None = None,
    name: str | None = None,
    description: str | None = None,
    needs: Iterable[str] = (),
    optional_needs: Iterable[str] = (),
    when: Condition | None = None,
    priority: int | None = None,
    queue: str | None = None,
) -> PlanStage:
    """A stage that waits `duration_ms` after it opens, or until the ISO-8601 instant at
    `until` (`"input.publish_at"`, `"draft.ready_at"`: a stage added before it); exactly one."""
    if (duration_ms is None) == (until is None):
        raise ValueError(f'Stage "{id}": give sleep_stage duration_ms= or until=, not both')
    if duration_ms is not None and (isinstance(duration_ms, bool) or duration_ms <= 0):
        raise ValueError(f'Stage "{id}": duration_ms must be more than 0, not {duration_ms!r}')
    path = None
    if until is not None:
        path = tuple(until.split(".")) if isinstance(until, str) else tuple(until)
        if len(path) < 2 or not all(_PATH_PART.fullmatch(p) for p in path):
            raise ValueError(
                f'Stage "{id}": until must be a path such as "input.publish_at", not {until!r}'
            )
    return _builtin(
        id,
        name=name,
        description=description,
        needs=needs,
        optional_needs=optional_needs,
        when=when,
        priority=priority,
        queue=queue,
        output_schema=json_schema(SleepOutput),
        sleep=SleepSpec(duration_ms=duration_ms, until=path),
        implementation=SLEEP_IMPLEMENTATION,
    )


def wait_stage(
    id: str,
    signal: SignalSpec,
    *,
    timeout_ms: int | None = None,
    on_timeout: SignalTimeout | str = SignalTimeout.FAIL,
    name: str | None = None,
    description: str | None = None,
    needs: Iterable[str] = (),
    optional_needs: Iterable[str] = (),
    when: Condition | None = None,
    priority: int | None = None,
    queue: str | None = None,
) -> PlanStage:
    """A stage that waits for `signal` (from `define_signal`) and outputs its payload; with
    `timeout_ms`, for at most that long, then fails (`on_timeout="fail"`) or outputs None
    (`"continue"`)."""
    try:
        policy = SignalTimeout(on_timeout)
    except ValueError:
        raise ValueError(
            f'Stage "{id}": on_timeout must be "fail" or "continue", not {on_timeout!r}'
        ) from None
    if timeout_ms is not None and (isinstance(timeout_ms, bool) or timeout_ms <= 0):
        raise ValueError(f'Stage "{id}": timeout_ms must be more than 0, not {timeout_ms!r}')
    if timeout_ms is None and policy is SignalTimeout.CONTINUE:
        raise ValueError(f'Stage "{id}": on_timeout="continue" needs timeout_ms= too')
    output: dict[str, Any] = dict(signal.payload_schema)
    if policy is SignalTimeout.CONTINUE:
        defs = output.pop("$defs", None)
        output = {"anyOf": [output, {"type": "null"}], **({"$defs": defs} if defs else {})}
    return _builtin(
        id,
        name=name,
        description=description,
        needs=needs,
        optional_needs=optional_needs,
        when=when,
        priority=priority,
        queue=queue,
        output_schema=output,
        wait_for=SignalWait(signal=signal.name, timeout_ms=timeout_ms, on_timeout=policy),
        implementation=SIGNAL_IMPLEMENTATION,
    )


def _builtin(
    id: str,
    *,
    name: str | None,
    description: str | None,
    needs: Iterable[str],
    optional_needs: Iterable[str],
    **fields: Any,
) -> PlanStage:
    required, optional = tuple(needs), tuple(optional_needs)
    return PlanStage(
        id=id,
        name=name or id,
        description=description,
        input_source=InputSource.NONE,
        needs=(*required, *(dep for dep in optional if dep not in required)),
        optional_needs=optional,
        **fields,
    )


def check_signals(signals: Sequence[SignalSpec], stages: Sequence[PlanStage]) -> None:
    """Signal names are unique, every wait names a declared one, and the stages that need a
    wait that may time out into None list it in `optional_needs`."""
    problem = signal_problem(signals, stages)
    if problem is not None:
        raise ValueError(problem)
