"""Pass 4: `when` conditions. What a condition reads, its types, and its `Condition` tree.

A condition reads the workflow input (`input.language`) and the outputs of
stages of earlier groups (`classify.label`), compares them with literals and
enum members (`Label.spam`), and combines the comparisons with `and`, `or`,
`not`, `in` and `len`. Each name and each operation is checked here against
the declared schemas, so a compiled plan's condition never fails at run time
for a reason the compiler could see; a condition without errors is lowered
into `StageFacts.when`.

Values read through an optional field or from a stage that may be skipped may
be null at run time. Comparisons, `in`, `len`, `and`, `or` and `not` all give
an answer for null (see `wfc.plan.Condition`), so null is accepted wherever a
value is; only a condition that is a bare field is compared with `true` when
lowered, so that its null means false too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, assert_never

from wfc.compiler import ast, model
from wfc.compiler.checks.condition_types import (
    ANY,
    BOOL,
    INT,
    NULL,
    TEXT_TYPES,
    equatable,
    kind,
    literal_type,
    truth_help,
    without_optional,
)
from wfc.compiler.checks.context import Analysis, StageFacts
from wfc.compiler.checks.values import check_nesting
from wfc.compiler.diagnostics import Label, did_you_mean
from wfc.compiler.source import Span
from wfc.plan import Condition, ConditionOp

_COMPARE_OPS: dict[str, ConditionOp] = {
    "==": "eq",
    "!=": "ne",
    "<": "lt",
    "<=": "le",
    ">": "gt",
    ">=": "ge",
}


@dataclass(frozen=True, slots=True)
class _Typed:
    """A checked sub-expression: its type and its lowered form."""

    type: model.Type
    condition: Condition


def check_conditions(an: Analysis) -> None:
    """Check each stage's `when` and lower it into the stage's facts."""
    for facts in an.stages.values():
        conditions = facts.node.conditions
        for extra in conditions[1:]:
            an.error(
                "WF208",
                "`when` is given more than once",
                extra.span,
                label="repeated here",
                labels=(Label(span=conditions[0].span, message="first given here"),),
                help="join the two with `and`",
            )
        if conditions and check_nesting(an, conditions[0], "condition", conditions[0].span):
            facts.when = _ConditionChecker(an, facts).check(conditions[0])


class _ConditionChecker:
    """Checks one stage's condition; every method returns None once it has reported."""

    def __init__(self, an: Analysis, facts: StageFacts) -> None:
        self.an = an
        self.facts = facts
        self.sid = facts.node.name.value

    def check(self, expr: ast.Expr) -> Condition | None:
        typed = self.infer(expr)
        if typed is None:
            return None
        if kind(typed.type) not in ("bool", "any"):
            self.an.error(
                "WF320",
                f"a `when` condition must be true or false, but this is "
                f"`{model.describe(typed.type)}`",
                expr.span,
                label=f"`{model.describe(typed.type)}`",
                help=truth_help(typed.type),
            )
            return None
        condition = typed.condition
        if condition.op == "field" and (
            isinstance(typed.type, model.Optional) or typed.type == ANY
        ):
            # A bare field that may be null (or anything, for `json`) holds only when true.
            condition = Condition(op="eq", args=(condition, Condition(op="literal", value=True)))
        return condition

    def infer(self, expr: ast.Expr) -> _Typed | None:
        match expr:
            case ast.DottedName():
                return self.dotted_name(expr)
            case ast.Literal_():
                return _Typed(literal_type(expr.value), Condition(op="literal", value=expr.value))
            case ast.ListExpr():
                return self.list_literal(expr)
            case ast.Not():
                operand = self.truth(expr.operand, "not")
                if operand is None:
                    return None
                return _Typed(BOOL, Condition(op="not", args=(operand,)))
            case ast.Logical():
                operands = [self.truth(o, expr.op) for o in expr.operands]
                if any(o is None for o in operands):
                    return None
                args = tuple(o for o in operands if o is not None)
                return _Typed(BOOL, Condition(op=expr.op, args=args))
            case ast.Compare():
                return self.compare(expr)
            case ast.Len():
                return self.length(expr)
        assert_never(expr)

    # -- names -------------------------------------------------------------------

    def dotted_name(self, name: ast.DottedName) -> _Typed | None:
        root = name.parts[0]
        if root.value == "input":
            record = self.an.workflow_input
            start_type: model.Type | None = record
        elif root.value in self.an.stages:
            if not self.reads_earlier(root):
                return None
            # A mapped stage's output is the list of its items' outputs.
            start_type = self.an.stages[root.value].gathered()
            source = self.an.stages[root.value]
            missing = root.value in self.an.skippable or source.may_be_null
            if missing and start_type is not None:
                start_type = model.Optional(inner=start_type)
        elif root.value in self.an.enums:
            return self.enum_member(name, self.an.enums[root.value])
        else:
            known = ["input", *self.an.stages, *self.an.enums]
            help = did_you_mean(root.value, known)
            if root.value == "item" and self.facts.map is not None:
                help = (
                    "a `when` on a mapped stage is decided once for the whole stage, before "
                    "any item runs, so it cannot read an item"
                )
            self.an.error(
                "WF230",
                f"unknown name `{root.value}` in the condition of `{self.sid}`",
                root.span,
                label="not `input`, a stage or an enum",
                help=help
                or "a condition reads `input.<field>`, `<stage>.<field>` or `Enum.member`",
            )
            return None
        if start_type is None or self.is_broken(start_type):
            return None  # the record has errors of its own, already reported
        field_type = self.walk(name, start_type)
        if field_type is None:
            return None
        path = tuple(p.value for p in name.parts)
        return _Typed(field_type, Condition(op="field", path=path))

    def walk(self, name: ast.DottedName, start: model.Type) -> model.Type | None:
        """The type at the end of `name`'s field path; optional if any step may be null."""
        current, nullable = start, isinstance(start, model.Optional)
        for index, part in enumerate(name.parts[1:], start=1):
            base = without_optional(current)
            read_so_far = ".".join(p.value for p in name.parts[:index])
            match base:
                case model.Record():
                    found = base.field_named(part.value)
                    if found is None:
                        if not self.is_broken(base):
                            self.unknown_field(part, read_so_far, base)
                        return None
                    current = found.type
                case model.MapOf(value=value):
                    current, nullable = value, True  # the key may be absent
                case model.Primitive(name="json"):
                    return model.Optional(inner=ANY)
                case _:
                    self.an.error(
                        "WF231",
                        f"`{read_so_far}` is `{model.describe(current)}`, which has no fields",
                        part.span,
                        label=f"no field `{part.value}`",
                        help=f"compare `{read_so_far}` itself, e.g. `{read_so_far} == …`",
                    )
                    return None
            nullable = nullable or isinstance(current, model.Optional)
        if nullable and not isinstance(current, model.Optional):
            return model.Optional(inner=current)
        return current

    def is_broken(self, t: model.Type) -> bool:
        """A record left incomplete by an error already reported: its fields are not all known."""
        base = without_optional(t)
        return isinstance(base, model.Record) and base.name in self.an.broken

    def unknown_field(self, part: ast.Name, read_so_far: str, record: model.Record) -> None:
        names = [f.name for f in record.fields]
        declared = record.node.span if record.node is not None else None
        labels = (
            (Label(span=declared, message=f"`{record.name}` is declared here"),)
            if declared is not None
            else ()
        )
        self.an.error(
            "WF231",
            f"`{read_so_far}` has no field `{part.value}`",
            part.span,
            label=f"not a field of `{record.name}`",
            labels=labels,
            help=did_you_mean(part.value, names)
            or ("its fields: " + ", ".join(f"`{n}`" for n in names) if names else None)
            or f"`{record.name}` has no fields",
        )

    def reads_earlier(self, root: ast.Name) -> bool:
        """Whether the stage `root` names runs before this one; reports WF410 if not."""
        other = self.an.stages[root.value]
        here = self.facts.group
        if other.group is None or here is None:
            return False  # not in the flow: already reported
        if other.group < here:
            return True
        if root.value == self.sid:
            message = f"the condition of `{self.sid}` reads its own output"
            label = "decided before the stage runs"
        else:
            where = "in the same parallel group as" if other.group == here else "after"
            message = f"the condition of `{self.sid}` reads `{root.value}`, which runs {where} it"
            label = f"`{root.value}` runs in group {other.group}, `{self.sid}` in group {here}"
        self.an.error(
            "WF410",
            message,
            root.span,
            label=label,
            labels=(Label(span=other.node.name.span, message=f"`{root.value}` is declared here"),),
            help=f"a condition reads stages of earlier groups: move `{root.value}` before "
            f"`{self.sid}` in the flow",
        )
        return False

    def enum_member(self, name: ast.DottedName, enum: model.EnumType) -> _Typed | None:
        parts = name.parts
        if len(parts) == 2 and parts[1].value in enum.members:
            return _Typed(enum, Condition(op="literal", value=parts[1].value))
        if len(parts) == 1:
            message, span = f"`{enum.name}` is an enum, not a value", parts[0].span
            label = "name one of its members"
            hint = f"e.g. `{enum.name}.{enum.members[0]}`" if enum.members else None
        elif len(parts) > 2:
            message, span = f"`{name.text}`: enum members have no fields", parts[2].span
            label, hint = "not a field", f"write `{enum.name}.{parts[1].value}`"
        else:
            message = f"`{enum.name}` has no member `{parts[1].value}`"
            span, label = parts[1].span, "not a member"
            hint = did_you_mean(parts[1].value, enum.members)
        declared = enum.decl.name.span if enum.decl is not None else None
        self.an.error(
            "WF232",
            message,
            span,
            label=label,
            labels=(Label(span=declared, message=f"`{enum.name}` is declared here"),)
            if declared is not None
            else (),
            help=hint or "its members: " + ", ".join(f"`{m}`" for m in enum.members),
        )
        return None

    # -- operations ----------------------------------------------------------------

    def truth(self, expr: ast.Expr, op: str) -> Condition | None:
        """An operand of `and`, `or` or `not`, which takes true or false (null reads false)."""
        typed = self.infer(expr)
        if typed is None:
            return None
        if kind(typed.type) in ("bool", "any", "null"):
            return typed.condition
        self.an.error(
            "WF321",
            f"`{op}` takes true or false, but this is `{model.describe(typed.type)}`",
            expr.span,
            label=f"`{model.describe(typed.type)}`",
            help=truth_help(typed.type),
        )
        return None

    def compare(self, expr: ast.Compare) -> _Typed | None:
        left, right = self.infer(expr.left), self.infer(expr.right)
        if left is None or right is None:
            return None
        args = (left.condition, right.condition)
        if expr.op in ("in", "not in"):
            if not self.check_in(expr, left, right):
                return None
            contains = Condition(op="in", args=args)
            negated = Condition(op="not", args=(contains,))
            return _Typed(BOOL, contains if expr.op == "in" else negated)
        ok = (
            self.check_equality(expr, left, right)
            if expr.op in ("==", "!=")
            else self.check_order(expr, left, right)
        )
        if not ok:
            return None
        return _Typed(BOOL, Condition(op=_COMPARE_OPS[expr.op], args=args))

    def check_equality(self, expr: ast.Compare, left: _Typed, right: _Typed) -> bool:
        if equatable(left.type, right.type):
            return True
        help = "compare values of the same type"
        enum, text = _enum_and_string(expr, left, right)
        if enum is not None:
            member = f"`{enum.name}.{text}`" if text in enum.members else f"`{enum.name}.<member>`"
            help = f"compare an enum with its members: write {member}"
        self.mismatch("WF322", f"`{expr.op}` compares", expr, left, right, help)
        return False

    def check_order(self, expr: ast.Compare, left: _Typed, right: _Typed) -> bool:
        kinds = {kind(left.type), kind(right.type)} - {"any"}
        if kinds <= {"number"} or kinds <= {"text"}:
            return True
        sides = [s for s in (left, right) if kind(s.type) not in ("number", "text", "any")]
        if sides:
            unordered = kind(sides[0].type)
            what = model.describe(sides[0].type)
            help = {
                "bool": "test it with `==`, or use it directly: `when flag`",
                "enum": "enum members have no order: test membership, e.g. "
                "`x in [Level.high, Level.top]`",
                "null": "an order comparison with null is always false: use `==` or `!=`",
            }.get(unordered, "order compares numbers or strings; compare a field of it instead")
            self.an.error(
                "WF323",
                f"`{expr.op}` cannot order `{what}`",
                expr.span,
                label=f"`{what}` has no order",
                help=help,
            )
            return False
        self.mismatch(
            "WF323",
            f"`{expr.op}` orders",
            expr,
            left,
            right,
            "order numbers with numbers, strings with strings",
        )
        return False

    def check_in(self, expr: ast.Compare, left: _Typed, right: _Typed) -> bool:
        container = without_optional(right.type)
        match container:
            case model.ListOf(item=item):
                if equatable(left.type, item):
                    return True
                problem = f"`{expr.op}` looks for `{model.describe(left.type)}` in `{model.describe(right.type)}`"
            case model.MapOf():
                if kind(left.type) in ("text", "any", "null"):
                    return True
                problem = (
                    f"`{expr.op}` a map looks for a string key, not `{model.describe(left.type)}`"
                )
            case model.Primitive(name=name) if name in TEXT_TYPES or name == "json":
                if kind(left.type) in ("text", "any", "null") or name == "json":
                    return True
                problem = (
                    f"`{expr.op}` a string looks for a string, not `{model.describe(left.type)}`"
                )
            case _:
                self.an.error(
                    "WF324",
                    f"`{expr.op}` needs a list, a map or a string on its right, but this is "
                    f"`{model.describe(right.type)}`",
                    expr.right.span,
                    label=f"`{model.describe(right.type)}`",
                    help="e.g. `x in [Label.a, Label.b]`, or `==` to compare two values",
                )
                return False
        self.an.error(
            "WF324",
            problem,
            expr.span,
            label="these can never match",
            help="make the two sides agree: `x in [...]` takes items of `x`'s type",
        )
        return False

    def mismatch(
        self, code: str, verb: str, expr: ast.Compare, left: _Typed, right: _Typed, help: str
    ) -> None:
        lt, rt = model.describe(left.type), model.describe(right.type)
        self.an.error(
            code,
            f"{verb} `{lt}` with `{rt}`",
            expr.span,
            label=f"`{lt}` {expr.op} `{rt}`",
            help=help,
        )

    def length(self, expr: ast.Len) -> _Typed | None:
        operand = self.infer(expr.operand)
        if operand is None:
            return None
        if kind(operand.type) in ("list", "map", "text", "any", "null"):
            return _Typed(INT, Condition(op="len", args=(operand.condition,)))
        what = model.describe(operand.type)
        self.an.error(
            "WF325",
            f"`len` takes a list, a map or a string, but this is `{what}`",
            expr.operand.span,
            label=f"`{what}`",
            help="compare the value itself, e.g. `x > 0`",
        )
        return None

    def list_literal(self, expr: ast.ListExpr) -> _Typed | None:
        values: list[Any] = []
        types: list[tuple[model.Type, Span]] = []
        for item in expr.items:
            if not isinstance(item, ast.Literal_ | ast.DottedName | ast.ListExpr):
                self.list_item_error(item)
                return None
            typed = self.infer(item)
            if typed is None:
                return None
            if typed.condition.op != "literal":
                self.list_item_error(item)
                return None
            values.append(typed.condition.value)
            types.append((typed.type, item.span))
        item_type = self.common_type(types)
        if item_type is None:
            return None
        return _Typed(model.ListOf(item=item_type), Condition(op="literal", value=values))

    def list_item_error(self, item: ast.Expr) -> None:
        self.an.error(
            "WF326",
            "a list in a condition holds literals and enum members only",
            item.span,
            label="not a literal",
            help="compare it on its own, e.g. `x == a.b or x in [...]`",
        )

    def common_type(self, types: list[tuple[model.Type, Span]]) -> model.Type | None:
        """The type of a list's items: all alike (ints with floats are floats), nulls optional."""
        present = [(t, s) for t, s in types if t != NULL]
        if not present:
            return ANY
        first, _ = present[0]
        for t, span in present[1:]:
            if not equatable(first, t) or kind(first) != kind(t):
                self.an.error(
                    "WF326",
                    f"the items of a list have different types: `{model.describe(first)}` "
                    f"and `{model.describe(t)}`",
                    span,
                    label=f"`{model.describe(t)}`",
                    help="a list in a condition holds items of one type",
                )
                return None
            if t == model.Primitive(name="float"):
                first = t
        return model.Optional(inner=first) if len(present) < len(types) else first


def _enum_and_string(
    expr: ast.Compare, left: _Typed, right: _Typed
) -> tuple[model.EnumType | None, str | None]:
    """An enum compared with a string literal (`label == "spam"`): the enum and the text."""
    for a, b, node in ((left, right, expr.right), (right, left, expr.left)):
        enum = without_optional(a.type)
        if isinstance(enum, model.EnumType) and isinstance(node, ast.Literal_):
            return enum, str(node.value) if isinstance(b.condition.value, str) else None
    return None, None
