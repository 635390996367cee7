"""Pass 2: values and settings. Constraints, defaults, durations, retry and poll settings.

Every default is checked against its field's type and constraints here, at
compile time, so a bad default never reaches a run. Durations become
milliseconds and are stored in the stage's facts for lowering.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime

from wfc.compiler import ast, model
from wfc.compiler.checks.context import Analysis, StageFacts
from wfc.compiler.checks.values import LARGEST_INT32
from wfc.compiler.diagnostics import Label, did_you_mean
from wfc.compiler.source import Span
from wfc.formats import check_email, check_url

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_PART = re.compile(r"([0-9]+)([A-Za-z]+)")
_NUMERIC = ("int", "float")
_SIZED = ("str", "url", "email")
_BACKOFF_KINDS = ("exponential", "fixed")


def check_types(an: Analysis) -> None:
    """Check every record's constraints and defaults, then every stage's settings."""
    for record in _all_records(an):
        for f in record.fields:  # fields that failed to resolve are not in the record
            _check_field(an, f)
    for facts in an.stages.values():
        _check_settings(an, facts)


def _all_records(an: Analysis) -> Iterator[model.Record]:
    seen: set[int] = set()
    candidates: list[model.Record | None] = [
        *an.records.values(),
        an.workflow_input,
        an.workflow_output,
    ]
    for facts in an.stages.values():
        candidates.extend([facts.input, facts.output, facts.config])
    candidates.extend(signal.payload for signal in an.signals.values())
    for record in candidates:
        if record is not None and id(record) not in seen:
            seen.add(id(record))
            yield record


# -- constraints and defaults --------------------------------------------------


def _check_field(an: Analysis, f: model.RecordField) -> None:
    node = f.node
    if node is None:
        return
    base = f.type.inner if isinstance(f.type, model.Optional) else f.type
    ok = _check_constraints(an, node, base)
    if node.default is not None and ok:
        problem = default_problem(node.default, f.type, dict(f.constraints) if ok else {})
        if problem is not None:
            code, message = problem
            an.error(
                code,
                f"default of `{f.name}` {message}",
                node.default.span,
                label=f"`{f.name}` is `{model.describe(f.type)}`",
                help=_default_help(f.type),
            )


def _default_help(t: model.Type) -> str:
    if isinstance(t, model.EnumType):
        return "use one of: " + ", ".join(t.members)
    return f"give a value of type `{model.describe(t)}` that meets the field's constraints"


def _check_constraints(an: Analysis, node: ast.Field, base: model.Type) -> bool:
    ok = True
    bounds: dict[str, float | int | str] = {}
    for c in node.constraints:
        if c.kind == "pattern":
            applies = isinstance(base, model.Primitive) and base.name in _SIZED
            if applies:
                try:
                    re.compile(str(c.value))
                except re.error as error:
                    an.error(
                        "WF306",
                        f"invalid pattern: {error}",
                        c.span,
                        help="write a Python regular expression",
                    )
                    ok = False
        elif c.kind in ("ge", "gt", "le", "lt"):
            applies = isinstance(base, model.Primitive) and base.name in _NUMERIC
        else:
            applies = isinstance(base, model.ListOf | model.MapOf) or (
                isinstance(base, model.Primitive) and base.name in _SIZED
            )
        if not applies:
            what = (
                "a pattern"
                if c.kind == "pattern"
                else "a length bound"
                if "len" in c.kind
                else "a numeric bound"
            )
            an.error(
                "WF303",
                f"{what} does not apply to `{model.describe(base)}`",
                c.span,
                label=f"`{node.name.value}` is `{model.describe(base)}`",
                help=_constraint_help(c.kind),
            )
            ok = False
            continue
        bounds[c.kind] = c.value
    low = bounds.get("ge", bounds.get("gt"))
    high = bounds.get("le", bounds.get("lt"))
    low_len = bounds.get("min_len", bounds.get("len_gt"))
    high_len = bounds.get("max_len", bounds.get("len_lt"))
    for lo, hi in ((low, high), (low_len, high_len)):
        if isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
            an.error(
                "WF303",
                f"constraints of `{node.name.value}` admit no value ({lo} is above {hi})",
                node.constraints[0].span.to(node.constraints[-1].span),
                help="swap the bounds",
            )
            ok = False
    return ok


def _constraint_help(kind: str) -> str:
    if kind == "pattern":
        return "patterns apply to `str`, `url` and `email`"
    if "len" in kind:
        return "length bounds apply to `str`, `url`, `email`, `list[…]` and `map[…]`"
    return "numeric bounds apply to `int` and `float`; for a length write `len >= 1`"


def default_problem(
    value: ast.Value, t: model.Type, constraints: dict[str, float | int | str]
) -> tuple[str, str] | None:
    """Why `value` is not a valid default for `t`: (code, message), or None when it is."""
    if isinstance(value, ast.Literal_) and value.value is None:
        return (
            None
            if isinstance(t, model.Optional | model.Primitive)
            and (isinstance(t, model.Optional) or t.name == "json")
            else ("WF301", "is null, but the field is not optional (`T?`)")
        )
    if isinstance(t, model.Optional):
        return default_problem(value, t.inner, constraints)
    problem = _type_problem(value, t)
    if problem is not None:
        return problem
    return _constraint_problem(value, constraints)


def _type_problem(value: ast.Value, t: model.Type) -> tuple[str, str] | None:
    wrong = ("WF301", f"does not have type `{model.describe(t)}`")
    match t:
        case model.EnumType(members=members):
            if not isinstance(value, ast.EnumRef):
                return wrong
            if value.name not in members:
                hint = did_you_mean(value.name, members)
                return (
                    "WF301",
                    f"names `{value.name}`, which is not a member of `{t.name}`"
                    + (f" ({hint})" if hint else ""),
                )
            return None
        case model.ListOf(item=item):
            if not isinstance(value, ast.ListValue):
                return wrong
            return next(
                (p for v in value.items if (p := default_problem(v, item, {})) is not None), None
            )
        case model.MapOf(value=vt):
            if not isinstance(value, ast.ObjectValue):
                return wrong
            return next(
                (p for _, v in value.entries if (p := default_problem(v, vt, {})) is not None), None
            )
        case model.Record():
            if not isinstance(value, ast.ObjectValue):
                return wrong
            return _record_default_problem(value, t)
        case model.Primitive(name=name):
            return None if _primitive_ok(value, name) else wrong
    return wrong


def _record_default_problem(value: ast.ObjectValue, t: model.Record) -> tuple[str, str] | None:
    given = dict(value.entries)
    for key in given:
        if t.field_named(key) is None:
            return ("WF301", f"has field `{key}`, which `{t.name}` does not declare")
    for f in t.fields:
        if f.name in given:
            problem = default_problem(given[f.name], f.type, dict(f.constraints))
            if problem is not None:
                return problem
        elif f.required:
            return ("WF301", f"is missing required field `{f.name}` of `{t.name}`")
    return None


def _primitive_ok(value: ast.Value, name: str) -> bool:
    if name == "json":
        return True
    if not isinstance(value, ast.Literal_):
        return False
    v = value.value
    if name in ("int", "float", "bool"):
        is_number = isinstance(v, int | float) and not isinstance(v, bool)
        return {
            "int": isinstance(v, int) and is_number,
            "float": is_number,
            "bool": isinstance(v, bool),
        }[name]
    if not isinstance(v, str):
        return False
    validators: dict[str, Callable[[str], object]] = {
        "str": str,
        "url": check_url,
        "email": check_email,
        "date": date.fromisoformat,
        "datetime": datetime.fromisoformat,
    }
    return name in validators and _parses(validators[name], v)


def _parses(parse: Callable[[str], object], text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _constraint_problem(
    value: ast.Value, constraints: dict[str, float | int | str]
) -> tuple[str, str] | None:
    # Numbers as written, not as floats: Python compares an int with a float exactly, and
    # past 2**53 a float would lose the difference (`1e16 - 1 == 1e16`).
    numeric = {k: v for k, v in constraints.items() if not isinstance(v, str)}
    if (
        isinstance(value, ast.Literal_)
        and isinstance(value.value, int | float)
        and not isinstance(value.value, bool)
    ):
        v = value.value
        inside = (
            ("ge" not in numeric or v >= numeric["ge"])
            and ("gt" not in numeric or v > numeric["gt"])
            and ("le" not in numeric or v <= numeric["le"])
            and ("lt" not in numeric or v < numeric["lt"])
        )
        if not inside:
            return ("WF302", f"is {value.value}, outside the field's bounds")
    size = _size(value)
    if size is not None:
        inside = (
            size >= numeric.get("min_len", 0)
            and size > numeric.get("len_gt", -1)
            and size <= numeric.get("max_len", float("inf"))
            and size < numeric.get("len_lt", float("inf"))
        )
        if not inside:
            return ("WF302", f"has length {size}, outside the field's length bounds")
    pattern = constraints.get("pattern")
    if (
        isinstance(pattern, str)
        and isinstance(value, ast.Literal_)
        and isinstance(value.value, str)
    ):
        if re.search(pattern, value.value) is None:
            return ("WF302", f"does not match the pattern `{pattern}`")
    return None


def _size(value: ast.Value) -> int | None:
    if isinstance(value, ast.Literal_) and isinstance(value.value, str):
        return len(value.value)
    if isinstance(value, ast.ListValue):
        return len(value.items)
    if isinstance(value, ast.ObjectValue):
        return len(value.entries)
    return None


# -- stage settings ------------------------------------------------------------


_MAX_DURATION_MS = 100 * 365 * 86_400_000
"""No duration past 100 years: `now + timeout` must stay a date the runtime can hold."""


def duration_ms(an: Analysis, d: ast.Duration, *, what: str) -> int | None:
    """Milliseconds of a duration such as `1h30m`, or None after reporting a bad one."""
    total = 0
    for number, unit in _DURATION_PART.findall(d.text):
        if unit not in _UNIT_MS:
            hint = did_you_mean(unit, _UNIT_MS)
            an.error(
                "WF307",
                f"unknown unit `{unit}` in {what} `{d.text}`",
                d.span,
                label="not a duration unit",
                help=(hint + " " if hint else "")
                + "units are ms, s, m, h and d, e.g. `90s` or `1h30m`",
            )
            return None
        # A 5,000-digit count would make int() raise; anything past the cap is refused below.
        total += (int(number) if len(number) < 20 else _MAX_DURATION_MS) * _UNIT_MS[unit]
    if total > _MAX_DURATION_MS:
        an.error(
            "WF307",
            f"{what} `{d.text}` is longer than 100 years",
            d.span,
            label="out of range",
            help="a deadline past 100 years overflows the runtime's clock arithmetic",
        )
        return None
    if total <= 0:
        an.error(
            "WF307",
            f"{what} must be longer than zero",
            d.span,
            label="zero duration",
            help="e.g. `30s`",
        )
        return None
    return total


def _repeated(
    an: Analysis, items: Sequence[ast.Literal_ | ast.Retry | ast.Duration | ast.Poll], what: str
) -> None:
    spans: list[Span] = [i.span for i in items]
    for span in spans[1:]:
        an.error(
            "WF208",
            f"`{what}` is given more than once",
            span,
            label="repeated here",
            labels=(Label(span=spans[0], message="first given here"),),
            help=f"keep one `{what}`",
        )


def _check_settings(an: Analysis, facts: StageFacts) -> None:
    stage = facts.node
    for items, what in (
        (stage.descriptions, "description"),
        (stage.retries, "retry"),
        (stage.timeouts, "timeout"),
        (stage.polls, "poll"),
        (stage.priorities, "priority"),
    ):
        _repeated(an, items, what)
    if stage.retries:
        _check_retry(an, facts, stage.retries[0])
    if stage.timeouts:
        facts.settings.timeout_ms = duration_ms(an, stage.timeouts[0], what="timeout")
    if stage.priorities:
        value = stage.priorities[0].value
        if not isinstance(value, int) or isinstance(value, bool):
            an.error(
                "WF310",
                "priority must be a whole number",
                stage.priorities[0].span,
                help="e.g. `priority 10`",
            )
        elif not -LARGEST_INT32 - 1 <= value <= LARGEST_INT32:
            an.error(
                "WF310",
                f"priority must be from {-LARGEST_INT32 - 1} to {LARGEST_INT32}",
                stage.priorities[0].span,
                help="e.g. `priority 10`",
            )
        else:
            facts.settings.priority = value
    if stage.polls:
        _check_poll(an, facts, stage.polls[0])


def _check_poll(an: Analysis, facts: StageFacts, poll: ast.Poll) -> None:
    stage = facts.node
    if not stage.is_async:
        an.error(
            "WF309",
            f"`poll` is set on `{stage.name.value}`, which is not an async stage",
            poll.span,
            label="only async stages suspend and are polled",
            labels=(Label(span=stage.name.span, message="declared as a sync stage"),),
            help=f"write `async stage {stage.name.value}` or remove `poll`",
        )
        return
    facts.settings.poll_interval_ms = duration_ms(an, poll.every, what="poll interval")
    if poll.give_up_after is not None:
        facts.settings.poll_max_wait_ms = duration_ms(an, poll.give_up_after, what="maximum wait")


def _check_retry(an: Analysis, facts: StageFacts, retry: ast.Retry) -> None:
    times = retry.times.value
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        an.error(
            "WF310",
            "retry count must be a whole number of at least 1",
            retry.times.span,
            help="e.g. `retry 3 times`; `retry 1 times` means no retry",
        )
    elif times > LARGEST_INT32:
        an.error(
            "WF310",
            f"retry count must be at most {LARGEST_INT32}",
            retry.times.span,
            help="e.g. `retry 3 times`; `retry 1 times` means no retry",
        )
    else:
        facts.settings.max_attempts = times
    facts.settings.non_retryable = tuple(n.value for n in retry.never_on)
    backoff = retry.backoff
    if backoff is None:
        return
    kind = backoff.kind.value
    if kind not in _BACKOFF_KINDS:
        hint = did_you_mean(kind, _BACKOFF_KINDS)
        an.error(
            "WF310",
            f"unknown backoff `{kind}`",
            backoff.kind.span,
            help=(hint + " " if hint else "") + "backoff is `exponential` or `fixed`",
        )
        return
    initial = duration_ms(an, backoff.initial, what="backoff")
    if initial is not None:
        facts.settings.backoff_initial_ms = initial
    multiplier = (
        backoff.multiplier.value if backoff.multiplier else (2.0 if kind == "exponential" else 1.0)
    )
    if kind == "fixed" and backoff.multiplier is not None:
        an.error(
            "WF310",
            "a fixed backoff has no multiplier",
            backoff.multiplier.span,
            help="remove `x…` or use `backoff exponential`",
        )
    elif not isinstance(multiplier, int | float) or isinstance(multiplier, bool) or multiplier < 1:
        span = backoff.multiplier.span if backoff.multiplier else backoff.span
        an.error("WF310", "backoff multiplier must be at least 1", span, help="e.g. `x2`")
    else:
        facts.settings.backoff_multiplier = float(multiplier)
    if backoff.max is not None:
        maximum = duration_ms(an, backoff.max, what="maximum backoff")
        if maximum is not None and initial is not None and maximum < initial:
            an.error(
                "WF310",
                "maximum backoff is shorter than the initial delay",
                backoff.max.span,
                labels=(Label(span=backoff.initial.span, message="initial delay"),),
                help="raise `max` or lower the initial delay",
            )
        if maximum is not None:
            facts.settings.backoff_max_ms = maximum
    elif initial is not None:
        facts.settings.backoff_max_ms = max(initial, 60_000) if kind == "exponential" else initial
