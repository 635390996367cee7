"""AST → `.wf` text. Used to convert YAML workflows and to prove that parsing and printing agree.

The output is canonical (one layout for one tree), so `parse(print(tree)) == tree`
for every tree the parser can produce; the property tests check exactly that.
"""

from __future__ import annotations

import json

from wfc.compiler import ast


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _number(value: object) -> str:
    return repr(value)


def print_value(value: ast.Value) -> str:
    """A default value as source."""
    match value:
        case ast.Literal_(value=None):
            return "null"
        case ast.Literal_(value=bool() as b):
            return "true" if b else "false"
        case ast.Literal_(value=str() as text):
            return _string(text)
        case ast.Literal_(value=v):
            return _number(v)
        case ast.EnumRef(name=name):
            return name
        case ast.ListValue(items=items):
            return "[" + ", ".join(print_value(i) for i in items) + "]"
        case ast.ObjectValue(entries=entries):
            return "{" + ", ".join(f"{_string(k)}: {print_value(v)}" for k, v in entries) + "}"


def print_type(t: ast.TypeExpr) -> str:
    """A type expression as source."""
    match t:
        case ast.NamedType(name=name):
            return name
        case ast.ListType(item=item):
            return f"list[{print_type(item)}]"
        case ast.MapType(value=value):
            return f"map[{print_type(value)}]"
        case ast.OptionalType(inner=inner):
            return f"{print_type(inner)}?"


_COMPARE = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_LEN_COMPARE = {"min_len": ">=", "len_gt": ">", "max_len": "<=", "len_lt": "<"}


def print_constraint(c: ast.Constraint) -> str:
    """One constraint; ranges come back as two comparisons, which parse to the same nodes."""
    if c.kind == "pattern":
        return f"matches {_string(str(c.value))}"
    if c.kind in _COMPARE:
        return f"{_COMPARE[c.kind]} {_number(c.value)}"
    return f"len {_LEN_COMPARE[c.kind]} {_number(c.value)}"


# How tightly each kind of condition binds: an operand that binds looser than
# its place allows is parenthesised. A run of `and` inside `and` (or `or` in
# `or`) is parenthesised too: the parser flattens runs, so the nesting written
# is only kept by the parentheses.
_ATOM, _COMPARE_LEVEL, _NOT, _AND, _OR = 0, 1, 2, 3, 4


def _level(expr: ast.Expr) -> int:
    match expr:
        case ast.Logical(op="or"):
            return _OR
        case ast.Logical():
            return _AND
        case ast.Not():
            return _NOT
        case ast.Compare():
            return _COMPARE_LEVEL
    return _ATOM


def _operand(expr: ast.Expr, limit: int) -> str:
    """`expr` as an operand of a place that takes levels below `limit` bare."""
    text = print_condition(expr)
    return text if _level(expr) < limit else f"({text})"


def print_condition(expr: ast.Expr) -> str:
    """A `when` condition as source, parenthesised only where the tree needs it."""
    match expr:
        case ast.DottedName():
            return expr.text
        case ast.Literal_():
            return print_value(expr)
        case ast.ListExpr(items=items):
            # The items of a list are atoms: anything looser is written in parentheses.
            return "[" + ", ".join(_operand(i, _COMPARE_LEVEL) for i in items) + "]"
        case ast.Len(operand=operand):
            return f"len({print_condition(operand)})"
        case ast.Not(operand=operand):
            return "not " + _operand(operand, _AND)
        case ast.Logical(op=op, operands=operands):
            limit = _AND if op == "and" else _OR
            return f" {op} ".join(_operand(o, limit) for o in operands)
        case ast.Compare(op=op, left=left, right=right):
            return f"{_operand(left, _COMPARE_LEVEL)} {op} {_operand(right, _COMPARE_LEVEL)}"


def _needs(s: ast.Stage) -> str:
    """`needs a, b?`: each `?` goes on the first need of its name not yet marked."""
    marks = [o.value for o in s.optional_needs]
    written = []
    for name in s.needs:
        optional = name.value in marks
        if optional:
            marks.remove(name.value)
        written.append(name.value + ("?" if optional else ""))
    return "needs " + ", ".join(written)


def _doc(doc: str | None, indent: str) -> list[str]:
    return [f"{indent}## {line}" for line in doc.splitlines()] if doc else []


def print_field(f: ast.Field, indent: str) -> list[str]:
    """A field with its doc comment."""
    text = f"{indent}{f.name.value}: {print_type(f.type)}"
    if f.constraints:
        text += " (" + ", ".join(print_constraint(c) for c in f.constraints) + ")"
    if f.default is not None:
        text += f" = {print_value(f.default)}"
    return [*_doc(f.doc, indent), text]


def print_record(spec: ast.RecordSpec | ast.InputFrom | ast.InputNone, indent: str) -> str:
    """`{ … }` across lines, a type name, `from x` or `none`."""
    match spec:
        case ast.TypeRef(name=name):
            return name
        case ast.InputFrom(stage=stage):
            return f"from {stage.value}"
        case ast.InputNone():
            return "none"
        case ast.RecordBody(fields=fields):
            if not fields:
                return "{}"
            inner = [line for f in fields for line in print_field(f, indent + "  ")]
            return "{\n" + "\n".join(inner) + f"\n{indent}}}"


def _retry(r: ast.Retry) -> str:
    text = f"retry {_number(r.times.value)} times"
    if r.backoff is not None:
        b = r.backoff
        text += f", backoff {b.kind.value} {b.initial.text}"
        if b.multiplier is not None:
            text += f" x {_number(b.multiplier.value)}"
        if b.max is not None:
            text += f" max {b.max.text}"
    if r.never_on:
        text += ", never on " + ", ".join(n.value for n in r.never_on)
    return text


def print_stage(s: ast.Stage, indent: str) -> list[str]:
    """A stage block."""
    inner = indent + "  "
    head = f"{indent}{'async ' if s.is_async else ''}stage {s.name.value}"
    if s.title is not None:
        head += f" {_string(s.title)}"
    if s.runs is not None:
        head += f" runs {s.runs.value}"
    lines = [*_doc(s.doc, indent), head + " {"]
    lines += [f"{inner}description {_string(str(d.value))}" for d in s.descriptions]
    lines += [f"{inner}{print_map(m)}" for m in s.maps]
    lines += [f"{inner}input {print_record(i, inner)}" for i in s.inputs]
    lines += [f"{inner}output {print_record(o, inner)}" for o in s.outputs]
    lines += [f"{inner}config {print_record(c, inner)}" for c in s.configs]
    if s.needs:
        lines.append(inner + _needs(s))
    lines += [f"{inner}when {print_condition(c)}" for c in s.conditions]
    lines += [f"{inner}{_retry(r)}" for r in s.retries]
    lines += [f"{inner}timeout {t.text}" for t in s.timeouts]
    for p in s.polls:
        text = f"{inner}poll every {p.every.text}"
        lines.append(text + (f", give up after {p.give_up_after.text}" if p.give_up_after else ""))
    lines += [f"{inner}priority {_number(p.value)}" for p in s.priorities]
    lines += [f"{inner}{_ai(a)}" for a in s.ai_presets]
    lines += [f"{inner}queue {_string(str(q.value))}" for q in s.queues]
    lines += [f"{inner}{print_concurrency(c)}" for c in s.concurrencies]
    lines += [f"{inner}{print_rate(r)}" for r in s.rates]
    lines += [f"{inner}{print_sleep(z)}" for z in s.sleeps]
    lines += [f"{inner}{print_wait(w)}" for w in s.waits]
    return [*lines, indent + "}"]


def print_sleep(z: ast.Sleep) -> str:
    """`sleep 1h` or `sleep until input.publish_at`."""
    if z.until is not None:
        return f"sleep until {z.until.text}"
    assert z.duration is not None
    return f"sleep {z.duration.text}"


def print_wait(w: ast.Wait) -> str:
    """`wait for approve, timeout 2d, on timeout continue` (the timeouts first)."""
    text = f"wait for {w.signal.value}"
    text += "".join(f", timeout {t.text}" for t in w.timeouts)
    return text + "".join(f", on timeout {p.value}" for p in w.on_timeout)


def print_signal(s: ast.Signal, indent: str) -> list[str]:
    """`signal approve { … }`, or `signal ping` with no payload."""
    head = f"{indent}signal {s.name.value}"
    if s.payload is not None:
        head += f" {print_record(s.payload, indent)}"
    return [*_doc(s.doc, indent), head]


def print_concurrency(c: ast.Concurrency) -> str:
    """`concurrency 2` or `concurrency 2 per input.customer_id`."""
    text = f"concurrency {_number(c.max.value)}"
    return text + (f" per {c.per.text}" if c.per is not None else "")


def print_rate(r: ast.Rate) -> str:
    """`rate 50 per minute` with `shared "name"` when it draws from a shared budget."""
    text = f"rate {_number(r.max.value)} per {r.unit.value}"
    return text + (f" shared {_string(str(r.shared.value))}" if r.shared is not None else "")


def print_schedule(s: ast.Schedule, indent: str) -> list[str]:
    """`schedule name "cron" in "zone"`, with a block when it has lines."""
    head = f"{indent}schedule {s.name.value} {_string(str(s.cron.value))}"
    if s.timezone is not None:
        head += f" in {_string(str(s.timezone.value))}"
    inner = indent + "  "
    lines = [f"{inner}input {print_value(i)}" for i in s.inputs]
    lines += [f"{inner}catch up {c.value}" for c in s.catch_ups]
    lines += [f"{inner}overlap {o.value}" for o in s.overlaps]
    if not lines:
        return [head]
    return [head + " {", *lines, indent + "}"]


def print_map(m: ast.Map) -> str:
    """`map split.pages, at most 16 at once, on failure continue` (the limits first)."""
    text = f"map {m.over.text}"
    text += "".join(f", at most {_number(a.value)} at once" for a in m.at_most)
    return text + "".join(f", on failure {p.value}" for p in m.on_failure)


def _ai(a: ast.AiPreset) -> str:
    text = f"ai {_string(str(a.model.value))}"
    if a.temperature is not None:
        text += f", temperature {_number(a.temperature.value)}"
    if a.max_tokens is not None:
        text += f", max tokens {_number(a.max_tokens.value)}"
    return text


def _types_and_enums(
    types: tuple[ast.TypeDecl, ...], enums: tuple[ast.EnumDecl, ...], indent: str
) -> list[str]:
    lines: list[str] = []
    for e in enums:
        members = []
        for m in e.members:
            members += [*_doc(m.doc, indent + "  "), f"{indent}  {m.name.value},"]
        lines += [*_doc(e.doc, indent), f"{indent}enum {e.name.value} {{", *members, indent + "}"]
    for t in types:
        lines += [
            *_doc(t.doc, indent),
            f"{indent}type {t.name.value} {print_record(t.body, indent)}",
        ]
    return lines


def print_module(module: ast.Module) -> str:
    """A whole file."""
    lines = [f"import {_string(i.path)}" for i in module.imports]
    lines += _types_and_enums(module.types, module.enums, "")
    for wf in module.workflows:
        body = [f"  name {_string(str(n.value))}" for n in wf.names]
        body += [f"  description {_string(str(d.value))}" for d in wf.descriptions]
        body += _types_and_enums(wf.types, wf.enums, "  ")
        body += [f"  input {print_record(i, '  ')}" for i in wf.inputs]
        body += [f"  output {print_record(o, '  ')}" for o in wf.outputs]
        body += [f"  queue {_string(str(q.value))}" for q in wf.queues]
        for schedule in wf.schedules:
            body += print_schedule(schedule, "  ")
        for signal in wf.signals:
            body += print_signal(signal, "  ")
        for stage in wf.stages:
            body += print_stage(stage, "  ")
        for flow in wf.flows:
            steps = [
                "[" + ", ".join(n.value for n in step.stages) + "]"
                if step.parallel
                else step.stages[0].value
                for step in flow.steps
            ]
            body.append("  flow " + " -> ".join(steps))
        lines += [*_doc(wf.doc, ""), f"workflow {wf.id.value} {{", *body, "}"]
    return "\n".join(lines) + "\n"
