"""Pass for `schedule`: each one's cron expression, time zone, input and policies.

A schedule fires on its own, with nobody watching, so everything that could make
a tick fail is decided here at compile time instead: the cron expression parses
as the scheduler reads it (cronsim), the time zone is one the IANA database
knows, and the input is a valid input of the workflow (the same rules as a
field's default, so a schedule cannot start a run that `run.create` would
refuse). An enum member may be written bare (`language: fr`) or as a string
(`language: "fr"`), as the YAML form writes it: both are its name in JSON.
"""

from __future__ import annotations

from wfc.compiler import ast, model
from wfc.compiler.checks.context import Analysis
from wfc.compiler.checks.names import value_to_json
from wfc.compiler.checks.types import default_problem
from wfc.compiler.checks.values import check_nesting
from wfc.compiler.diagnostics import Label, did_you_mean
from wfc.fleet_rules import cron_problem, nearest_timezone, timezone_problem
from wfc.plan import CatchUp, Overlap, ScheduleSpec

_CATCH_UP = tuple(str(c) for c in CatchUp)
_OVERLAP = tuple(str(o) for o in Overlap)


def check_schedules(an: Analysis) -> None:
    """Every schedule of the workflow; the valid ones go to `an.schedules`, in order."""
    wf = an.workflow
    if wf is None:
        return
    seen: dict[str, ast.Name] = {}
    for node in wf.schedules:
        first = seen.setdefault(node.name.value, node.name)
        if first is not node.name:
            an.error(
                "WF203",
                f"duplicate schedule `{node.name.value}`",
                node.name.span,
                label=f"`{node.name.value}` is declared again here",
                labels=(Label(span=first.span, message="first declared here"),),
                help="rename or remove one of the two schedules",
            )
            continue
        spec = _schedule(an, node)
        if spec is not None:
            an.schedules.append(spec)


def _schedule(an: Analysis, node: ast.Schedule) -> ScheduleSpec | None:
    for items, what in (
        (node.inputs, "input"),
        (node.catch_ups, "catch up"),
        (node.overlaps, "overlap"),
    ):
        for extra in items[1:]:
            an.error(
                "WF208",
                f"`{what}` is given more than once in schedule `{node.name.value}`",
                extra.span,
                label="repeated here",
                labels=(Label(span=items[0].span, message="first given here"),),
                help=f"keep one `{what}`",
            )
    ok = _cron_ok(an, node) & _zone_ok(an, node)
    catch_up = _policy(an, node.catch_ups, _CATCH_UP, "catch up", str(CatchUp.LATEST))
    overlap = _policy(an, node.overlaps, _OVERLAP, "overlap", str(Overlap.SKIP))
    given = node.inputs[0] if node.inputs else ast.ObjectValue(entries=(), span=node.name.span)
    data = _input(an, node, given) if check_nesting(an, given, "input", given.span) else None
    if not ok or catch_up is None or overlap is None or data is None:
        return None
    return ScheduleSpec(
        name=node.name.value,
        cron=str(node.cron.value),
        timezone=str(node.timezone.value) if node.timezone is not None else "UTC",
        input=data,
        catch_up=CatchUp(catch_up),
        overlap=Overlap(overlap),
    )


def _cron_ok(an: Analysis, node: ast.Schedule) -> bool:
    problem = cron_problem(str(node.cron.value))
    if problem is None:
        return True
    an.error(
        "WF370",
        f"invalid cron expression `{node.cron.value}` in schedule `{node.name.value}`: {problem}",
        node.cron.span,
        label=problem.lower(),
        help="five fields: minute hour day-of-month month day-of-week, "
        'e.g. "0 6 * * *" (06:00 every day) or "*/15 * * * MON-FRI"',
    )
    return False


def _zone_ok(an: Analysis, node: ast.Schedule) -> bool:
    if node.timezone is None:
        return True
    name = str(node.timezone.value)
    problem = timezone_problem(name)
    if problem is None:
        return True
    nearest = nearest_timezone(name)
    an.error(
        "WF371",
        f"{problem} in schedule `{node.name.value}`",
        node.timezone.span,
        label="not in the IANA time zone database",
        help=f'did you mean "{nearest}"?'
        if nearest is not None
        else 'name an IANA time zone, e.g. "Europe/Paris" or "America/New_York"; '
        "without `in`, a schedule runs in UTC",
    )
    return False


def _policy(
    an: Analysis, given: tuple[ast.Name, ...], allowed: tuple[str, ...], what: str, default: str
) -> str | None:
    if not given:
        return default
    name = given[0]
    if name.value in allowed:
        return name.value
    hint = did_you_mean(name.value, allowed)
    an.error(
        "WF373",
        f"unknown `{what}` policy `{name.value}`",
        name.span,
        label=f"`{what}` takes "
        + ", ".join(f"`{a}`" for a in allowed[:-1])
        + f" or `{allowed[-1]}`",
        help=(hint + " " if hint else "")
        + (
            "`skip` fires none of the ticks missed while the fleet was down, `latest` the "
            "most recent, `all` each of them"
            if what == "catch up"
            else "`skip` starts nothing while the previous tick's run is still active, "
            "`allow` starts a run anyway"
        ),
    )
    return None


# -- the input ----------------------------------------------------------------------


def _input(an: Analysis, node: ast.Schedule, given: ast.ObjectValue) -> dict[str, object] | None:
    """The run's input as JSON once it is a valid workflow input; None after reporting."""
    record = an.workflow_input
    if record is None or record.name in an.broken:
        return None  # the workflow input has errors of its own
    where = f"the input of schedule `{node.name.value}`"
    entries = dict(given.entries)
    for key, value in given.entries:
        f = record.field_named(key)
        if f is None:
            names = [field.name for field in record.fields]
            an.error(
                "WF372",
                f"{where} has field `{key}`, which the workflow input does not declare",
                value.span,
                label=f"no field `{key}` in `{record.name}`",
                help=did_you_mean(key, names)
                or "its fields: " + (", ".join(f"`{n}`" for n in names) or "none"),
            )
            return None
        problem = default_problem(_enums_by_name(value, f.type), f.type, dict(f.constraints))
        if problem is not None:
            an.error(
                "WF372",
                f"{where}: field `{key}` {problem[1]}",
                value.span,
                label=f"`{key}` is `{model.describe(f.type)}`",
                help="give a value the workflow input accepts, as for a default",
            )
            return None
    missing = [f.name for f in record.fields if f.required and f.name not in entries]
    if missing:
        an.error(
            "WF372",
            f"{where} is missing required field `{missing[0]}`"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            given.span,
            label="a run needs every field without a default",
            labels=_declared(record),
            help=("add " if given.entries else "give it ")
            + "`input { "
            + ", ".join(f"{m}: …" for m in missing)
            + " }`"
            + (" (with the fields it has)" if given.entries else ""),
        )
        return None
    data = value_to_json(given)
    assert isinstance(data, dict)
    return data


def _declared(record: model.Record) -> tuple[Label, ...]:
    if record.node is None:
        return ()
    return (Label(span=record.node.span, message="the workflow input is declared here"),)


def _enums_by_name(value: ast.Value, t: model.Type) -> ast.Value:
    """`value` with the strings that stand where an enum is expected read as its members."""
    base = t.inner if isinstance(t, model.Optional) else t
    match value, base:
        case ast.Literal_(value=str() as text), model.EnumType():
            return ast.EnumRef(name=text, span=value.span)
        case ast.ListValue(items=items), model.ListOf(item=item):
            return ast.ListValue(
                items=tuple(_enums_by_name(i, item) for i in items), span=value.span
            )
        case ast.ObjectValue(entries=entries), model.MapOf(value=inner):
            return ast.ObjectValue(
                entries=tuple((k, _enums_by_name(v, inner)) for k, v in entries), span=value.span
            )
        case ast.ObjectValue(entries=entries), model.Record():
            fields = {f.name: f.type for f in base.fields}
            return ast.ObjectValue(
                entries=tuple(
                    (k, _enums_by_name(v, fields[k]) if k in fields else v) for k, v in entries
                ),
                span=value.span,
            )
    return value
