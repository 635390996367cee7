"""Grammar rules → AST. Builds nodes and spans; never validates, never raises.

`AstBuilder`'s methods are named after the grammar's rules; `reduce_actions` calls
each as the LALR parser reduces its rule, without building a parse tree first, and
with no recursion, so deeply nested types cannot blow the Python stack here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lark import Token

from wfc.compiler import ast
from wfc.compiler.reduce_actions import Reduced
from wfc.compiler.transformer_children import ChildCallbacks
from wfc.compiler.transformer_fleet import parse_number, unquote
from wfc.compiler.transformer_waits import WaitCallbacks


def _doc_text(tokens: list[Token]) -> str | None:
    lines = [str(tok)[2:].strip() for tok in tokens]
    text = "\n".join(lines).strip("\n")
    return text if text.strip() else None


class _Docs:
    """The result of the `docs` rule: the doc comment tokens before a declaration."""

    __slots__ = ("tokens",)

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens

    @property
    def text(self) -> str | None:
        return _doc_text(self.tokens)


class AstBuilder(WaitCallbacks, ChildCallbacks):
    """Callbacks named after grammar rules; each returns one AST node."""

    # -- module ------------------------------------------------------------------

    def start(self, meta: Reduced, items: list[Any]) -> ast.Module:
        return ast.Module(
            imports=tuple(i for i in items if isinstance(i, ast.Import)),
            types=tuple(i for i in items if isinstance(i, ast.TypeDecl)),
            enums=tuple(i for i in items if isinstance(i, ast.EnumDecl)),
            workflows=tuple(i for i in items if isinstance(i, ast.Workflow)),
            span=self._span(meta),
        )

    def import_decl(self, meta: Reduced, items: list[Token]) -> ast.Import:
        return ast.Import(path=unquote(items[0]), span=self._span(meta))

    def docs(self, meta: Reduced, items: list[Token]) -> _Docs:
        return _Docs(items)

    def workflow(self, meta: Reduced, items: list[Any]) -> ast.Workflow:
        docs, name, *body = items
        pairs = [i for i in body if isinstance(i, tuple)]
        return ast.Workflow(
            id=self._name(name),
            doc=docs.text,
            names=tuple(v for t, v in pairs if t == "name"),
            descriptions=tuple(v for t, v in pairs if t == "description"),
            types=tuple(i for i in body if isinstance(i, ast.TypeDecl)),
            enums=tuple(i for i in body if isinstance(i, ast.EnumDecl)),
            inputs=tuple(v for t, v in pairs if t == "input"),
            outputs=tuple(v for t, v in pairs if t == "output"),
            stages=tuple(i for i in body if isinstance(i, ast.Stage)),
            flows=tuple(i for i in body if isinstance(i, ast.Flow)),
            queues=tuple(v for t, v in pairs if t == "queue"),
            schedules=tuple(i for i in body if isinstance(i, ast.Schedule)),
            signals=tuple(i for i in body if isinstance(i, ast.Signal)),
            span=self._span(meta),
        )

    def wf_name(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Literal_]:
        return ("name", self._string_literal(items[0]))

    def wf_description(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Literal_]:
        return ("description", self._string_literal(items[0]))

    def wf_input(self, meta: Reduced, items: list[ast.RecordSpec]) -> tuple[str, ast.RecordSpec]:
        return ("input", items[0])

    def wf_output(self, meta: Reduced, items: list[ast.RecordSpec]) -> tuple[str, ast.RecordSpec]:
        return ("output", items[0])

    # -- types -------------------------------------------------------------------

    def type_decl(self, meta: Reduced, items: list[Any]) -> ast.TypeDecl:
        docs, name, body = items
        return ast.TypeDecl(name=self._name(name), body=body, doc=docs.text, span=self._span(meta))

    def enum_decl(self, meta: Reduced, items: list[Any]) -> ast.EnumDecl:
        docs, name, members = items
        return ast.EnumDecl(
            name=self._name(name), members=members, doc=docs.text, span=self._span(meta)
        )

    def enum_members(
        self, meta: Reduced, items: list[ast.EnumMember]
    ) -> tuple[ast.EnumMember, ...]:
        return tuple(items)

    def enum_member(self, meta: Reduced, items: list[Any]) -> ast.EnumMember:
        docs, name = items
        return ast.EnumMember(name=self._name(name), doc=docs.text, span=self._span(meta))

    def type_ref(self, meta: Reduced, items: list[Token]) -> ast.TypeRef:
        return ast.TypeRef(name=str(items[0]), span=self._span(meta))

    def record_body(self, meta: Reduced, items: list[ast.Field]) -> ast.RecordBody:
        return ast.RecordBody(fields=tuple(items), span=self._span(meta))

    def field(self, meta: Reduced, items: list[Any]) -> ast.Field:
        docs, name, spec = items
        return ast.Field(
            name=self._name(name),
            type=spec.type,
            constraints=spec.constraints,
            default=spec.default,
            doc=docs.text,
            span=self._span(meta),
        )

    def field_spec(self, meta: Reduced, items: list[Any]) -> ast.Field:
        """A field without its name (the YAML form gives the name as a key)."""
        type_expr, *rest = items
        constraints: tuple[ast.Constraint, ...] = ()
        default: ast.Value | None = None
        for item in rest:
            if isinstance(item, tuple):
                constraints = item
            else:
                default = item
        return ast.Field(
            name=ast.Name(value="", span=self._span(meta)),
            type=type_expr,
            constraints=constraints,
            default=default,
            span=self._span(meta),
        )

    def type_expr(self, meta: Reduced, items: list[Any]) -> ast.TypeExpr:
        base = items[0]
        if len(items) > 1:
            return ast.OptionalType(inner=base, span=self._span(meta))
        return base  # type: ignore[no-any-return]

    def named_type(self, meta: Reduced, items: list[Token]) -> ast.NamedType:
        return ast.NamedType(name=str(items[0]), span=self._span(meta))

    def list_type(self, meta: Reduced, items: list[ast.TypeExpr]) -> ast.ListType:
        return ast.ListType(item=items[0], span=self._span(meta))

    def map_type(self, meta: Reduced, items: list[ast.TypeExpr]) -> ast.MapType:
        return ast.MapType(value=items[0], span=self._span(meta))

    def constraints(self, meta: Reduced, items: list[Any]) -> tuple[ast.Constraint, ...]:
        flat: list[ast.Constraint] = []
        for item in items:
            flat.extend(item if isinstance(item, tuple) else (item,))
        return tuple(flat)

    def range(self, meta: Reduced, items: list[Token]) -> tuple[ast.Constraint, ...]:
        span = self._span(meta)
        low, high = parse_number(items[0]), parse_number(items[1])
        return (
            ast.Constraint(kind="ge", value=low, span=span),
            ast.Constraint(kind="le", value=high, span=span),
        )

    _COMPARE = {">=": "ge", ">": "gt", "<=": "le", "<": "lt"}
    _LEN_COMPARE = {">=": "min_len", ">": "len_gt", "<=": "max_len", "<": "len_lt"}

    def compare(self, meta: Reduced, items: list[Token]) -> ast.Constraint:
        kind = self._COMPARE[str(items[0])]
        return ast.Constraint(kind=kind, value=parse_number(items[1]), span=self._span(meta))  # type: ignore[arg-type]

    def length_range(self, meta: Reduced, items: list[Token]) -> tuple[ast.Constraint, ...]:
        span = self._span(meta)
        return (
            ast.Constraint(kind="min_len", value=parse_number(items[0]), span=span),
            ast.Constraint(kind="max_len", value=parse_number(items[1]), span=span),
        )

    def length_compare(self, meta: Reduced, items: list[Token]) -> ast.Constraint:
        kind = self._LEN_COMPARE[str(items[0])]
        return ast.Constraint(kind=kind, value=parse_number(items[1]), span=self._span(meta))  # type: ignore[arg-type]

    def pattern(self, meta: Reduced, items: list[Token]) -> ast.Constraint:
        return ast.Constraint(kind="pattern", value=unquote(items[0]), span=self._span(meta))

    def default(self, meta: Reduced, items: list[ast.Value]) -> ast.Value:
        return items[0]

    # -- values ------------------------------------------------------------------

    def string_value(self, meta: Reduced, items: list[Token]) -> ast.Literal_:
        return self._string_literal(items[0])

    def number_value(self, meta: Reduced, items: list[Token]) -> ast.Literal_:
        return ast.Literal_(value=parse_number(items[0]), span=self._tok_span(items[0]))

    def true_value(self, meta: Reduced, items: list[Token]) -> ast.Literal_:
        return ast.Literal_(value=True, span=self._span(meta))

    def false_value(self, meta: Reduced, items: list[Token]) -> ast.Literal_:
        return ast.Literal_(value=False, span=self._span(meta))

    def null_value(self, meta: Reduced, items: list[Token]) -> ast.Literal_:
        return ast.Literal_(value=None, span=self._span(meta))

    def name_value(self, meta: Reduced, items: list[Token]) -> ast.EnumRef:
        return ast.EnumRef(name=str(items[0]), span=self._tok_span(items[0]))

    def list_value(self, meta: Reduced, items: list[ast.Value]) -> ast.ListValue:
        return ast.ListValue(items=tuple(items), span=self._span(meta))

    def object_value(self, meta: Reduced, items: list[tuple[str, ast.Value]]) -> ast.ObjectValue:
        return ast.ObjectValue(entries=tuple(items), span=self._span(meta))

    def object_entry(self, meta: Reduced, items: list[Any]) -> tuple[str, ast.Value]:
        key, value = items
        return (unquote(key) if key.type == "STRING" else str(key), value)

    # -- stages ------------------------------------------------------------------

    def stage(self, meta: Reduced, items: list[Any]) -> ast.Stage:
        docs, *rest = items
        async_tok = None
        if isinstance(rest[0], Token) and rest[0].type == "ASYNC":
            async_tok = rest.pop(0)
        name = rest.pop(0)
        title = None
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            title = unquote(rest.pop(0))
        settings: dict[str, list[Any]] = {}
        for tag, value in rest:
            settings.setdefault(tag, []).append(value)
        needs = tuple(n for group in settings.get("needs", []) for n, _ in group)
        optional = tuple(mark for group in settings.get("needs", []) for _, mark in group if mark)
        return ast.Stage(
            name=self._name(name),
            is_async=async_tok is not None,
            title=title,
            doc=docs.text,
            descriptions=tuple(settings.get("description", [])),
            inputs=tuple(settings.get("input", [])),
            outputs=tuple(settings.get("output", [])),
            configs=tuple(settings.get("config", [])),
            needs=needs,
            optional_needs=optional,
            conditions=tuple(settings.get("when", [])),
            maps=tuple(settings.get("map", [])),
            retries=tuple(settings.get("retry", [])),
            timeouts=tuple(settings.get("timeout", [])),
            polls=tuple(settings.get("poll", [])),
            priorities=tuple(settings.get("priority", [])),
            ai_presets=tuple(settings.get("ai", [])),
            queues=tuple(settings.get("queue", [])),
            concurrencies=tuple(settings.get("concurrency", [])),
            rates=tuple(settings.get("rate", [])),
            sleeps=tuple(settings.get("sleep", [])),
            waits=tuple(settings.get("wait", [])),
            runs=next(iter(settings.get("runs", [])), None),
            async_keyword=self._tok_span(async_tok) if async_tok is not None else None,
            span=self._span(meta),
        )

    def stage_description(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Literal_]:
        return ("description", self._string_literal(items[0]))

    def stage_input(self, meta: Reduced, items: list[ast.StageInput]) -> tuple[str, ast.StageInput]:
        return ("input", items[0])

    def input_from(self, meta: Reduced, items: list[Token]) -> ast.InputFrom:
        return ast.InputFrom(stage=self._name(items[0]), span=self._span(meta))

    def input_none(self, meta: Reduced, items: list[Token]) -> ast.InputNone:
        return ast.InputNone(span=self._span(meta))

    def stage_output(
        self, meta: Reduced, items: list[ast.RecordSpec]
    ) -> tuple[str, ast.RecordSpec]:
        return ("output", items[0])

    def stage_config(
        self, meta: Reduced, items: list[ast.RecordSpec]
    ) -> tuple[str, ast.RecordSpec]:
        return ("config", items[0])

    def needs(
        self, meta: Reduced, items: list[tuple[ast.Name, ast.Name | None]]
    ) -> tuple[str, tuple[tuple[ast.Name, ast.Name | None], ...]]:
        return ("needs", tuple(items))

    def need(self, meta: Reduced, items: list[Token]) -> tuple[ast.Name, ast.Name | None]:
        """The stage named, and, for `name?`, the same name spanning the `?` as well."""
        name = self._name(items[0])
        if len(items) == 1:
            return name, None
        return name, ast.Name(value=name.value, span=self._span(meta))

    # -- conditions ------------------------------------------------------------

    def when(self, meta: Reduced, items: list[ast.Expr]) -> tuple[str, ast.Expr]:
        return ("when", items[0])

    def condition_spec(self, meta: Reduced, items: list[ast.Expr]) -> ast.Expr:
        return items[0]

    def cond_or(self, meta: Reduced, items: list[ast.Expr]) -> ast.Logical:
        return ast.Logical(op="or", operands=tuple(items), span=self._span(meta))

    def cond_and(self, meta: Reduced, items: list[ast.Expr]) -> ast.Logical:
        return ast.Logical(op="and", operands=tuple(items), span=self._span(meta))

    def cond_negation(self, meta: Reduced, items: list[ast.Expr]) -> ast.Not:
        return ast.Not(operand=items[0], span=self._span(meta))

    def cond_comparison(self, meta: Reduced, items: list[Any]) -> ast.Compare:
        left, op, right = items
        return ast.Compare(op=op, left=left, right=right, span=self._span(meta))

    def cond_op(self, meta: Reduced, items: list[Token]) -> str:
        return " ".join(str(t) for t in items)

    def cond_list(self, meta: Reduced, items: list[ast.Expr]) -> ast.ListExpr:
        return ast.ListExpr(items=tuple(items), span=self._span(meta))

    def cond_len(self, meta: Reduced, items: list[ast.Expr]) -> ast.Len:
        return ast.Len(operand=items[0], span=self._span(meta))

    def dotted_name(self, meta: Reduced, items: list[Token]) -> ast.DottedName:
        return ast.DottedName(parts=tuple(self._name(t) for t in items), span=self._span(meta))

    # -- map -----------------------------------------------------------------

    def stage_map(self, meta: Reduced, items: list[ast.Map]) -> tuple[str, ast.Map]:
        return ("map", replace(items[0], span=self._span(meta)))

    def map_spec(self, meta: Reduced, items: list[Any]) -> ast.Map:
        over, *options = items
        return ast.Map(
            over=over,
            at_most=tuple(v for k, v in options if k == "at_most"),
            on_failure=tuple(v for k, v in options if k == "on_failure"),
            span=self._span(meta),
        )

    def map_at_most(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Literal_]:
        return (
            "at_most",
            ast.Literal_(value=parse_number(items[0]), span=self._tok_span(items[0])),
        )

    def map_on_failure(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Name]:
        return ("on_failure", self._name(items[0]))

    def map_over(self, meta: Reduced, items: list[Any]) -> ast.DottedName:
        """`a.b.c`, built left to right (the rule is left-recursive)."""
        *head, last = items
        parts = head[0].parts if head else ()
        return ast.DottedName(parts=(*parts, self._name(last)), span=self._span(meta))

    def map_path(self, meta: Reduced, items: list[ast.DottedName]) -> ast.DottedName:
        return items[0]

    def _duration(self, token: Token) -> ast.Duration:
        return ast.Duration(text=str(token), span=self._tok_span(token))

    def retry(self, meta: Reduced, items: list[ast.Retry]) -> tuple[str, ast.Retry]:
        return ("retry", replace(items[0], span=self._span(meta)))

    def retry_body(self, meta: Reduced, items: list[Any]) -> ast.Retry:
        times, *rest = items
        backoff = next((i for i in rest if isinstance(i, ast.Backoff)), None)
        never = next((i for i in rest if isinstance(i, tuple)), ())
        node = ast.Retry(
            times=ast.Literal_(value=parse_number(times), span=self._tok_span(times)),
            backoff=backoff,
            never_on=never,
            span=self._span(meta),
        )
        return node

    def backoff(self, meta: Reduced, items: list[Any]) -> ast.Backoff:
        kind, initial, *rest = items
        multiplier = next((i for i in rest if isinstance(i, ast.Literal_)), None)
        maximum = next((i for i in rest if isinstance(i, ast.Duration)), None)
        return ast.Backoff(
            kind=self._name(kind),
            initial=self._duration(initial),
            multiplier=multiplier,
            max=maximum,
            span=self._span(meta),
        )

    def multiplier(self, meta: Reduced, items: list[Token]) -> ast.Literal_:
        return ast.Literal_(value=parse_number(items[0]), span=self._tok_span(items[0]))

    def backoff_max(self, meta: Reduced, items: list[Token]) -> ast.Duration:
        return self._duration(items[0])

    def never_retry(self, meta: Reduced, items: list[Token]) -> tuple[ast.Name, ...]:
        return tuple(self._name(t) for t in items)

    def timeout(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Duration]:
        return ("timeout", self._duration(items[0]))

    def poll(self, meta: Reduced, items: list[ast.Poll]) -> tuple[str, ast.Poll]:
        return ("poll", replace(items[0], span=self._span(meta)))

    def poll_body(self, meta: Reduced, items: list[Token]) -> ast.Poll:
        every = self._duration(items[0])
        give_up = self._duration(items[1]) if len(items) > 1 else None
        return ast.Poll(every=every, give_up_after=give_up, span=self._span(meta))

    def priority(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Literal_]:
        value = ast.Literal_(value=parse_number(items[0]), span=self._tok_span(items[0]))
        return ("priority", value)

    def ai_preset(self, meta: Reduced, items: list[Any]) -> tuple[str, ast.AiPreset]:
        model, *options = items
        found = dict(options)
        preset = ast.AiPreset(
            model=self._string_literal(model),
            temperature=found.get("temperature"),
            max_tokens=found.get("max_tokens"),
            span=self._span(meta),
        )
        return ("ai", preset)

    def ai_temperature(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Literal_]:
        return (
            "temperature",
            ast.Literal_(value=parse_number(items[0]), span=self._tok_span(items[0])),
        )

    def ai_max_tokens(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Literal_]:
        return (
            "max_tokens",
            ast.Literal_(value=parse_number(items[0]), span=self._tok_span(items[0])),
        )

    # -- flow ----------------------------------------------------------------

    def flow(self, meta: Reduced, items: list[ast.Flow]) -> ast.Flow:
        return ast.Flow(steps=items[0].steps, span=self._span(meta))

    def flow_body(self, meta: Reduced, items: list[ast.FlowStep]) -> ast.Flow:
        return ast.Flow(steps=tuple(items), span=self._span(meta))

    def duration_spec(self, meta: Reduced, items: list[Token]) -> ast.Duration:
        return self._duration(items[0])

    def stage_ref(self, meta: Reduced, items: list[Token]) -> ast.Name:
        return self._name(items[0])

    def flow_single(self, meta: Reduced, items: list[Token]) -> ast.FlowStep:
        return ast.FlowStep(stages=(self._name(items[0]),), span=self._span(meta))

    def flow_parallel(self, meta: Reduced, items: list[Token]) -> ast.FlowStep:
        names = tuple(self._name(t) for t in items)
        return ast.FlowStep(stages=names, parallel=True, span=self._span(meta))
