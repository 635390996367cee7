"""Pass for signals and built-in stages: `signal`, `sleep 1h`, `wait for approve, …`.

A built-in stage runs no code of the user's: the runtime opens it suspended and
a timer (or a signal) completes it, holding no worker meanwhile. So it has none
of what configures user code — no `input` record, `output`, `config`, `ai`,
`retry`, stage `timeout`, `async`/`poll`, `map`, `concurrency` or `rate` — and
each one written is refused here, with where the setting belongs instead (the
plan validator `wfc.plan_waits.builtin_problems` refuses the same plans at load
time; this says it at the line). What it outputs is fixed: `{woke_at: datetime}`
for a sleep, the signal's payload for a wait; the later passes type the stages
that read it from that, as for any stage.

`check_builtins` runs right after the names pass, so the graph pass already
sees each built-in stage's output; the `until` paths, which need the groups,
and who may read a wait that times out into null, are `wfc.compiler.checks.wait_reads`.
"""

from __future__ import annotations

from collections.abc import Sequence

from wfc.compiler import ast, model
from wfc.compiler.checks.context import Analysis, StageFacts
from wfc.compiler.checks.names import record_from_spec
from wfc.compiler.checks.types import duration_ms
from wfc.compiler.diagnostics import Label, did_you_mean
from wfc.compiler.names import class_name as pascal
from wfc.compiler.source import Span
from wfc.plan import SignalTimeout, SignalWait, SleepSpec

_POLICIES = tuple(str(p) for p in SignalTimeout)

WOKE_AT = model.RecordField(name="woke_at", type=model.Primitive(name="datetime"))
"""The one field a sleep outputs: the instant it woke."""


def check_builtins(an: Analysis) -> None:
    """The workflow's signals, then each built-in stage's shape, sleep or wait."""
    wf = an.workflow
    if wf is None:
        return
    _collect_signals(an, wf)
    for sid, facts in an.stages.items():
        node = facts.node
        if not node.sleeps and not node.waits:
            continue
        facts.builtin = True
        _repeated(an, node.sleeps, "sleep")
        _repeated(an, node.waits, "wait for")
        if node.sleeps and node.waits:
            first, second = sorted((node.sleeps[0].span, node.waits[0].span), key=_start)
            an.error(
                "WF382",
                f"stage `{sid}` both sleeps and waits for a signal",
                second,
                label="a built-in stage does one of the two",
                labels=(Label(span=first, message="given here too"),),
                help="split it into two stages, one after the other in the flow",
            )
            an.broken.add(f"stage:{sid}")
        _refuse_settings(an, sid, facts)
        base = pascal(sid)
        facts.input_source, facts.input_from, facts.map = "none", None, None
        facts.input = model.Record(name=f"{base}Input", fields=())
        facts.config = model.Record(name=f"{base}Config", fields=())
        if node.sleeps:
            facts.output = model.Record(name=f"{base}Output", fields=(WOKE_AT,))
            duration = node.sleeps[0].duration
            if duration is not None:
                ms = duration_ms(an, duration, what="sleep")
                facts.sleep = SleepSpec(duration_ms=ms) if ms is not None else None
        else:
            facts.output = model.Record(name=f"{base}Output", fields=())
            _wait(an, sid, facts, node.waits[0])


def _start(span: Span) -> int:
    return span.start


def _repeated(
    an: Analysis, items: Sequence[ast.Sleep | ast.Wait | ast.Duration | ast.Name], what: str
) -> None:
    for extra in items[1:]:
        an.error(
            "WF208",
            f"`{what}` is given more than once",
            extra.span,
            label="repeated here",
            labels=(Label(span=items[0].span, message="first given here"),),
            help=f"keep one `{what}`"
            + ("; to wait twice, use two stages" if what in ("sleep", "wait for") else ""),
        )


# -- signals ------------------------------------------------------------------------


def _collect_signals(an: Analysis, wf: ast.Workflow) -> None:
    """Each declared signal, once, with its payload's record (`ApprovePayload`)."""
    seen: dict[str, ast.Name] = {}
    for node in wf.signals:
        name = node.name.value
        first = seen.setdefault(name, node.name)
        if first is not node.name:
            an.error(
                "WF203",
                f"duplicate signal `{name}`",
                node.name.span,
                label=f"`{name}` is declared again here",
                labels=(Label(span=first.span, message="first declared here"),),
                help="rename or remove one of the two signals; a run tells them apart by name",
            )
            continue
        synth = f"{pascal(name)}Payload"
        payload = (
            record_from_spec(an, node.payload, synth)
            if node.payload is not None
            else model.Record(name=synth, fields=())
        )
        if payload is None:
            continue  # an unknown type, reported
        an.signals[name] = model.SignalModel(name=name, payload=payload, doc=node.doc, node=node)


# -- what a built-in stage cannot have ------------------------------------------------


def _refusals(facts: StageFacts) -> list[tuple[Span, str, str]]:
    """Each setting written that a built-in stage cannot have: (where, what, the help)."""
    node = facts.node
    kind = "sleep" if node.sleeps else "wait"
    found: list[tuple[Span, str, str]] = []
    spec = node.inputs[0] if node.inputs else None
    if spec is not None and not isinstance(spec, ast.InputNone):
        found.append(
            (
                spec.span,
                "an `input`",
                "it reads no input: remove it (it reads `needs` like "
                "any stage, and `sleep until` reads its path)",
            )
        )
    if node.outputs:
        found.append(
            (
                node.outputs[0].span,
                "an `output`",
                "a sleep outputs `{ woke_at: datetime }`"
                if kind == "sleep"
                else "a wait outputs the signal's payload: declare its fields on the `signal`",
            )
        )
    if node.configs:
        found.append((node.configs[0].span, "a `config`", "it runs no code to configure"))
    if node.ai_presets:
        found.append((node.ai_presets[0].span, "an `ai` preset", "it calls no model"))
    if node.retries:
        found.append(
            (
                node.retries[0].span,
                "a `retry`",
                "it runs no code of yours, so nothing fails "
                "to retry; its timer is redelivered after a lost worker on its own",
            )
        )
    if node.timeouts:
        found.append(
            (
                node.timeouts[0].span,
                "a stage `timeout`",
                "give the wait its timeout: `wait for …, timeout 2d`"
                if kind == "wait"
                else "a sleep ends when it wakes; for a shorter one, sleep less",
            )
        )
    found += _kind_refusals(node)
    return found


def _kind_refusals(node: ast.Stage) -> list[tuple[Span, str, str]]:
    found: list[tuple[Span, str, str]] = []
    if node.async_keyword is not None:
        found.append(
            (
                node.async_keyword,
                "`async`",
                f"it already waits without holding a worker: write `stage {node.name.value}`",
            )
        )
    if node.polls:
        found.append(
            (node.polls[0].span, "a `poll`", "nothing polls it: a timer or a signal ends it")
        )
    if node.maps:
        found.append(
            (
                node.maps[0].span,
                "a `map`",
                "it waits once per run; to wait per item, wait before or after the mapped stage",
            )
        )
    if node.concurrencies:
        found.append(
            (
                node.concurrencies[0].span,
                "a `concurrency` limit",
                "it holds no worker while it waits, so there is nothing to limit",
            )
        )
    if node.rates:
        found.append(
            (
                node.rates[0].span,
                "a `rate` limit",
                "it holds no worker while it waits, so there is nothing to limit",
            )
        )
    return found


def _refuse_settings(an: Analysis, sid: str, facts: StageFacts) -> None:
    what = "sleeps" if facts.node.sleeps else "waits for a signal"
    builtin = facts.node.sleeps[0].span if facts.node.sleeps else facts.node.waits[0].span
    for span, setting, help in _refusals(facts):
        an.error(
            "WF381",
            f"stage `{sid}` {what}, so it cannot have {setting}",
            span,
            label="not for a built-in stage",
            labels=(Label(span=builtin, message="the runtime runs this stage itself"),),
            help=help,
        )


# -- a wait ---------------------------------------------------------------------------


def _wait(an: Analysis, sid: str, facts: StageFacts, node: ast.Wait) -> None:
    _repeated(an, node.timeouts, "timeout")
    _repeated(an, node.on_timeout, "on timeout")
    signal = an.signals.get(node.signal.value)
    if signal is None:
        _unknown_signal(an, node.signal)
    timeout = duration_ms(an, node.timeouts[0], what="timeout") if node.timeouts else None
    policy = _policy(an, node)
    if not node.timeouts and not node.on_timeout:  # with `on timeout`, WF383 says it
        an.warning(
            "WF384",
            f"stage `{sid}` waits for `{node.signal.value}` with no timeout",
            node.span,
            label="a run may wait here for ever",
            help="add one: `wait for "
            f"{node.signal.value}, timeout 7d` (with `on timeout continue` to go on "
            "without it); until the signal comes only `wfc runs cancel` ends the run",
        )
    if signal is None or policy is None or (node.timeouts and timeout is None):
        return
    facts.output = signal.payload
    facts.wait_for = SignalWait(
        signal=signal.name, timeout_ms=timeout, on_timeout=SignalTimeout(policy)
    )


def _unknown_signal(an: Analysis, name: ast.Name) -> None:
    declared = sorted(an.signals)
    an.error(
        "WF250",
        f"unknown signal `{name.value}`",
        name.span,
        label="the workflow declares no signal by this name",
        help=did_you_mean(name.value, declared)
        or (
            "declare it: `signal "
            + name.value
            + " { … }` in the workflow"
            + (" (its signals: " + ", ".join(f"`{d}`" for d in declared) + ")" if declared else "")
        ),
    )


def _policy(an: Analysis, node: ast.Wait) -> str | None:
    """The timeout policy (`fail` by default), or None after reporting."""
    if not node.on_timeout:
        return str(SignalTimeout.FAIL)
    given = node.on_timeout[0]
    if given.value not in _POLICIES:
        hint = did_you_mean(given.value, _POLICIES)
        an.error(
            "WF383",
            f"unknown timeout policy `{given.value}`",
            given.span,
            label="`on timeout` takes `fail` or `continue`",
            help=(hint + " " if hint else "")
            + "`fail` fails the run when the timeout passes first; `continue` goes on with "
            "the stage's output null",
        )
        return None
    if not node.timeouts:
        an.error(
            "WF383",
            f"`on timeout {given.value}` on a wait that has no timeout",
            given.span,
            label="this wait never times out",
            help=f"give it one: `wait for {node.signal.value}, timeout 7d, on timeout "
            f"{given.value}`, or remove `on timeout`",
        )
        return None
    return given.value
