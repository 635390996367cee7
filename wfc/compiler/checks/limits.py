"""Pass for queues and fleet limits: `queue "gpu"`, `concurrency 2 per input.customer_id`,
`rate 50 per minute shared "openai"`.

These settings govern where and when a stage's jobs run, across every worker
sharing the database, so what they name must be there for every run: a
`per` path is read from the workflow input (the only value every execution of
every stage has when its job is queued), and must end at one scalar, whose
value is the key the bound holds for. A `shared` rate is one budget wherever
it is named, so two stages of one file that describe it differently would make
the budget depend on which of them ran last; that is refused here rather than
resolved silently at run time.
"""

from __future__ import annotations

from collections.abc import Sequence

from wfc.compiler import ast, model
from wfc.compiler.checks.context import Analysis, StageFacts
from wfc.compiler.checks.mapping import unknown_field
from wfc.compiler.checks.values import LARGEST_INT32
from wfc.compiler.diagnostics import Label, did_you_mean
from wfc.compiler.source import Span
from wfc.fleet_rules import RATE_UNITS_MS, SCALAR_PER_TYPES, name_problem
from wfc.plan import ConcurrencyLimit, RateLimit

_Spanned = ast.Literal_ | ast.Concurrency | ast.Rate


def check_limits(an: Analysis) -> None:
    """The workflow's queue, then each stage's queue, concurrency and rate."""
    wf = an.workflow
    if wf is None:
        return
    _repeated(an, wf.queues, "queue")
    if wf.queues:
        an.workflow_queue = _queue(an, wf.queues[0])
    shared: dict[str, tuple[RateLimit, ast.Rate]] = {}
    for facts in an.stages.values():
        node = facts.node
        for items, what in (
            (node.queues, "queue"),
            (node.concurrencies, "concurrency"),
            (node.rates, "rate"),
        ):
            _repeated(an, items, what)
        if node.queues:
            facts.settings.queue = _queue(an, node.queues[0])
        if node.concurrencies:
            facts.settings.concurrency = _concurrency(an, facts, node.concurrencies[0])
        if node.rates:
            facts.settings.rate = _rate(an, node.rates[0], shared)


def _repeated(an: Analysis, items: Sequence[_Spanned], what: str) -> None:
    for extra in items[1:]:
        an.error(
            "WF208",
            f"`{what}` is given more than once",
            extra.span,
            label="repeated here",
            labels=(Label(span=items[0].span, message="first given here"),),
            help=f"keep one `{what}`",
        )


def _queue(an: Analysis, given: ast.Literal_) -> str | None:
    name = str(given.value)
    problem = name_problem(name, "the queue name")
    if problem is None:
        return name
    an.error(
        "WF344",
        problem,
        given.span,
        label="not a queue name",
        help='a queue name is 1 to 100 letters, digits, `_`, `.` or `-`, e.g. `queue "gpu"`',
    )
    return None


def _count(an: Analysis, given: ast.Literal_, what: str, example: str) -> int | None:
    """A limit's bound: a whole number of at least 1 (0 would never run the stage)."""
    value = given.value
    if isinstance(value, int) and not isinstance(value, bool) and value > LARGEST_INT32:
        an.error(
            "WF340",
            f"`{what}` must be at most {LARGEST_INT32}, not `{value}`",
            given.span,
            label="more than the database stores",
            help=f"e.g. `{example}`; remove `{what}` to leave the stage unlimited",
        )
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    an.error(
        "WF340",
        f"`{what}` must be a whole number of at least 1, not `{value}`",
        given.span,
        label="a stage limited to 0 would never run" if value == 0 else "not a count",
        help=f"e.g. `{example}`; remove `{what}` to leave the stage unlimited",
    )
    return None


# -- concurrency ------------------------------------------------------------------


def _concurrency(an: Analysis, facts: StageFacts, node: ast.Concurrency) -> ConcurrencyLimit | None:
    bound = _count(an, node.max, "concurrency", "concurrency 2 per input.customer_id")
    per: tuple[str, ...] = ()
    if node.per is not None:
        found = _per_path(an, facts, node.per)
        if found is None:
            return None
        per = found
    return ConcurrencyLimit(max=bound, per=per) if bound is not None else None


def _per_path(an: Analysis, facts: StageFacts, path: ast.DottedName) -> tuple[str, ...] | None:
    """The path as names, once it leads from `input` to a scalar field; None after reporting."""
    root = path.parts[0]
    sid = facts.node.name.value
    if root.value != "input":
        hint = did_you_mean(root.value, ["input"])
        an.error(
            "WF242",
            f"`concurrency … per` reads the workflow input, not `{root.value}`",
            root.span,
            label="not `input`",
            help=(hint + " " if hint else "")
            + f"the key must be known when a job of `{sid}` is queued, so it is a field "
            "of the workflow input: `per input.customer_id`",
        )
        return None
    if len(path.parts) == 1:
        _not_scalar(an, path, an.workflow_input)
        return None
    current: model.Type | None = an.workflow_input
    for index, part in enumerate(path.parts[1:], start=1):
        base = current.inner if isinstance(current, model.Optional) else current
        read = ".".join(p.value for p in path.parts[:index])
        if base is None or (isinstance(base, model.Record) and base.name in an.broken):
            return None  # reported where the record is declared
        if not isinstance(base, model.Record):
            an.error(
                "WF242",
                f"`{read}` is `{model.describe(base)}`, which has no fields",
                part.span,
                label=f"no field `{part.value}`",
                help=f"end the path at `{read}`, or name a field of a record",
            )
            return None
        found = base.field_named(part.value)
        if found is None:
            unknown_field(an, "WF242", part, read, base)
            return None
        current = found.type
    if not _is_scalar(current):
        _not_scalar(an, path, current)
        return None
    return tuple(p.value for p in path.parts)


def _is_scalar(t: model.Type | None) -> bool:
    base = t.inner if isinstance(t, model.Optional) else t
    if isinstance(base, model.EnumType):
        return True
    return isinstance(base, model.Primitive) and base.name in (*SCALAR_PER_TYPES, "url", "email")


def _not_scalar(an: Analysis, path: ast.DottedName, t: model.Type | None) -> None:
    shown = model.describe(t) if t is not None else "a record"
    an.error(
        "WF341",
        f"`concurrency … per {path.text}` needs one value to key the limit by, but "
        f"`{path.text}` is `{shown}`",
        path.span,
        label=f"`{shown}`",
        help="name a field of type `str`, `int`, `bool` or an enum, e.g. `per input.customer_id`",
    )


# -- rate ---------------------------------------------------------------------------


def _rate(
    an: Analysis, node: ast.Rate, shared: dict[str, tuple[RateLimit, ast.Rate]]
) -> RateLimit | None:
    bound = _count(an, node.max, "rate", "rate 50 per minute")
    window = RATE_UNITS_MS.get(node.unit.value)
    if window is None:
        hint = did_you_mean(node.unit.value.rstrip("s"), RATE_UNITS_MS)
        an.error(
            "WF342",
            f"unknown rate unit `{node.unit.value}`",
            node.unit.span,
            label="not a unit of time",
            help=(hint + " " if hint else "")
            + "a rate counts per `second`, `minute`, `hour` or `day`, e.g. `rate 50 per minute`",
        )
    name = None
    if node.shared is not None:
        name = str(node.shared.value)
        problem = name_problem(name, "the shared limit's name")
        if problem is not None:
            an.error(
                "WF344",
                problem,
                node.shared.span,
                label="not a limit name",
                help="a shared limit's name is 1 to 100 letters, digits, `_`, `.` or `-`, "
                'e.g. `shared "openai"`',
            )
            return None
    if bound is None or window is None:
        return None
    limit = RateLimit(max=bound, window_ms=window, shared=name)
    if name is not None:
        _same_budget(an, limit, node, shared)
    return limit


def _same_budget(
    an: Analysis,
    limit: RateLimit,
    node: ast.Rate,
    shared: dict[str, tuple[RateLimit, ast.Rate]],
) -> None:
    """A shared budget is one budget: every stage that names it must describe it alike."""
    assert limit.shared is not None and node.shared is not None
    first = shared.setdefault(limit.shared, (limit, node))
    if first[0] == limit:
        return
    other = first[1]
    an.error(
        "WF343",
        f"the shared rate `{limit.shared}` is {_per(node)} here, but {_per(other)} elsewhere",
        _whole(node),
        label="one budget, described twice",
        labels=(Label(span=_whole(other), message=f"`{limit.shared}` is {_per(other)} here"),),
        help=f'give every `shared "{limit.shared}"` the same rate, or name another budget',
    )


def _per(node: ast.Rate) -> str:
    return f"{node.max.value} per {node.unit.value}"


def _whole(node: ast.Rate) -> Span:
    return node.max.span.to(node.shared.span) if node.shared is not None else node.span
