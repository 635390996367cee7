"""Pass 1: names. Declarations, duplicates, reserved words, and type references.

Builds the symbol tables (enums and record types from imports, the file and
the workflow) and resolves every type expression to a `model.Type`. Unknown
names get the nearest known name as a hint.
"""

from __future__ import annotations

import keyword

from pydantic import BaseModel

from wfc.compiler import ast, model
from wfc.compiler.checks.ai_preset import apply_ai_preset
from wfc.compiler.checks.context import Analysis, MapFacts, StageFacts
from wfc.compiler.checks.values import check_default_value
from wfc.compiler.diagnostics import Label, did_you_mean
from wfc.compiler.names import class_name as pascal
from wfc.compiler.reserved import (
    ENUM_MEMBER_RESERVED,
    GENERATED_BUILTINS,
    GENERATED_MODULE_NAMES,
    RESERVED_CLASS_NAMES,
    module_clash,
)
from wfc.compiler.source import Span

MAX_TYPE_DEPTH = 32
"""Deeper nesting than this is refused: no real payload needs it, and generated code stays readable."""

RESERVED_FIELD_NAMES = frozenset(
    {n for n in dir(BaseModel) if not n.startswith("_")}
    | set(keyword.kwlist)
    | {"self"}
    | GENERATED_MODULE_NAMES
    | GENERATED_BUILTINS
)
"""Field names that would clash with Python keywords or pydantic's own attributes, or hide
a name the model classes read (`datetime: datetime, d: date` makes `d: datetime.date`
read the field)."""

RESERVED_STAGE_IDS = frozenset(
    set(keyword.kwlist)
    | {"input", "config", "run_id", "stage_id", "attempt", "resume_state", "log", "progress"}
    | {"require", "optional", "blobs", "ai", "dependency", "metrics", "workflow_id", "self"}
    | {"item", "item_index", "item_count", "dependency_list", "item_results"}
    | {"metric", "artifact"}
    | GENERATED_BUILTINS
)
"""Stage ids that would clash with the members of the generated stage context (a need
becomes a property of it) or hide a builtin its class body reads (`@property`, `list[…]`).
`tests/unit/test_reserved_names.py` checks that every public member of `StageContext` is here."""


def check_names(an: Analysis) -> None:
    """Collect declarations, then resolve the workflow's records and stages."""
    _collect_declarations(an)
    wf = an.workflow
    if wf is None:
        return
    if _check_identifier(an, wf.id, "workflow", RESERVED_STAGE_IDS & set(keyword.kwlist)):
        _check_package_name(an, wf.id)
    an.workflow_input = _single_record(an, wf.inputs, "WorkflowInput", "input")
    an.workflow_output = _single_record(an, wf.outputs, "WorkflowOutput", "output")
    for stage in wf.stages:
        _collect_stage(an, stage)
    for stage in wf.stages:
        _resolve_stage(an, stage)


# -- declarations --------------------------------------------------------------


def _collect_declarations(an: Analysis) -> None:
    modules = [m.module for m in an.program.imported_modules()]
    if an.program.root is not None:
        modules.append(an.program.root.module)
    decls: list[ast.TypeDecl | ast.EnumDecl] = []
    # In file order, so that of two declarations of one name the first is "first declared".
    holders: list[ast.Module | ast.Workflow] = [*modules]
    if an.workflow is not None:
        holders.append(an.workflow)
    for holder in holders:
        in_file: list[ast.TypeDecl | ast.EnumDecl] = [*holder.enums, *holder.types]
        decls.extend(sorted(in_file, key=lambda d: d.span.start))
    for decl in decls:
        name = decl.name.value
        if name in model.PRIMITIVES or name in ("list", "map"):
            an.error(
                "WF205",
                f"`{name}` is a built-in type and cannot be redeclared",
                decl.name.span,
                label="reserved name",
                help=f"rename the {'enum' if isinstance(decl, ast.EnumDecl) else 'type'}",
            )
            continue
        if name in an.declared_at:
            _duplicate(an, "type", name, decl.name, an.declared_at[name])
            continue
        if name in RESERVED_CLASS_NAMES:
            what = "enum" if isinstance(decl, ast.EnumDecl) else "type"
            an.error(
                "WF205",
                f"`{name}` cannot be {'an' if what == 'enum' else 'a'} {what} name: the generated code uses it",
                decl.name.span,
                label="reserved name",
                help=f"rename the {what}, e.g. `{name}Value`",
            )
            continue
        an.declared_at[name] = decl.name.span
        if isinstance(decl, ast.EnumDecl):
            an.enums[name] = _build_enum(an, decl)
        else:
            an.type_decls[name] = decl
    for name in list(an.type_decls):
        resolve_declared(an, name, stack=[])


def _duplicate(an: Analysis, what: str, name: str, node: ast.Name, first: Span) -> None:
    labels = (Label(span=first, message="first declared here"),)
    an.error(
        "WF203",
        f"duplicate {what} `{name}`",
        node.span,
        label=f"`{name}` is declared again here",
        labels=labels,
        help=f"rename or remove one of the two {what}s",
    )


def _build_enum(an: Analysis, decl: ast.EnumDecl) -> model.EnumType:
    seen: dict[str, ast.Name] = {}
    for member in decl.members:
        value = member.name.value
        if value in seen:
            _duplicate(an, "enum member", value, member.name, seen[value].span)
        elif value in ENUM_MEMBER_RESERVED:
            an.error(
                "WF205",
                f"`{value}` cannot be an enum member",
                member.name.span,
                label="a Python keyword or a method of `str`, which enums are",
                help=f"rename it, e.g. `{value}_value`",
            )
        else:
            seen[value] = member.name
    if not decl.members:
        an.error(
            "WF206",
            f"enum `{decl.name.value}` has no members",
            decl.span,
            help="list its values: `enum Level { low, high }`",
        )
    return model.EnumType(name=decl.name.value, members=tuple(seen), doc=decl.doc, decl=decl)


def resolve_declared(an: Analysis, name: str, stack: list[str]) -> model.Record | None:
    """The record for a declared `type`, resolving the types it refers to first."""
    if name in an.records:
        return an.records[name]
    decl = an.type_decls.get(name)
    if decl is None or name in an.broken:
        return None
    if name in stack:
        path = " -> ".join([*stack[stack.index(name) :], name])
        an.error(
            "WF207",
            f"type `{name}` contains itself: {path}",
            decl.name.span,
            label="recursive type",
            help="break the cycle with a `json` field or a separate lookup by id",
        )
        an.broken.update(stack[stack.index(name) :])
        return None
    record = build_record(an, decl.body, name, stack=[*stack, name], doc=decl.doc, declared=True)
    if record is not None:
        an.records[name] = record
    return record


def build_record(
    an: Analysis,
    body: ast.RecordBody,
    name: str,
    *,
    stack: list[str] | None = None,
    doc: str | None = None,
    declared: bool = False,
) -> model.Record | None:
    """Resolve a `{ … }` record body; fields with unknown types are left out and reported."""
    fields: list[model.RecordField] = []
    seen: dict[str, ast.Name] = {}
    ok = True
    for f in body.fields:
        fname = f.name.value
        if fname in seen:
            _duplicate(an, "field", fname, f.name, seen[fname].span)
            continue
        seen[fname] = f.name
        if fname in RESERVED_FIELD_NAMES:
            an.error(
                "WF205",
                f"`{fname}` cannot be a field name",
                f.name.span,
                label="reserved in Python or by pydantic models",
                help=f"rename it, e.g. `{fname}_value`",
            )
            ok = False
            continue
        ftype = resolve_type(an, f.type, stack or [], depth=0)
        if ftype is None or not check_default_value(an, f):
            ok = False
            continue
        fields.append(
            model.RecordField(
                name=fname,
                type=ftype,
                constraints=tuple((c.kind, c.value) for c in f.constraints),
                has_default=f.default is not None,
                default=value_to_json(f.default) if f.default is not None else None,
                doc=f.doc,
                node=f,
            )
        )
    record = model.Record(name=name, fields=tuple(fields), doc=doc, declared=declared, node=body)
    if not ok:
        an.broken.add(name)
    return record


def resolve_type(
    an: Analysis, expr: ast.TypeExpr, stack: list[str], depth: int
) -> model.Type | None:
    """`ast.TypeExpr` → `model.Type`, or None after reporting why it cannot be resolved."""
    if depth > MAX_TYPE_DEPTH:
        an.error(
            "WF304",
            f"type is nested more than {MAX_TYPE_DEPTH} levels deep",
            expr.span,
            help="declare the inner part as a named `type`",
        )
        return None
    match expr:
        case ast.OptionalType(inner=inner):
            resolved = resolve_type(an, inner, stack, depth + 1)
            return model.Optional(inner=resolved) if resolved is not None else None
        case ast.ListType(item=item):
            resolved = resolve_type(an, item, stack, depth + 1)
            return model.ListOf(item=resolved) if resolved is not None else None
        case ast.MapType(value=value):
            resolved = resolve_type(an, value, stack, depth + 1)
            return model.MapOf(value=resolved) if resolved is not None else None
        case ast.NamedType(name=name):
            return _resolve_named(an, name, expr, stack)


def _resolve_named(
    an: Analysis, name: str, expr: ast.NamedType, stack: list[str]
) -> model.Type | None:
    if name in model.PRIMITIVES:
        return model.Primitive(name=name)
    if name in an.enums:
        return an.enums[name]
    if name in an.type_decls:
        return resolve_declared(an, name, stack)
    known = [*model.PRIMITIVES, *an.enums, *an.type_decls]
    an.error(
        "WF201",
        f"unknown type `{name}`",
        expr.span,
        label="not a built-in type or a declared `type`/`enum`",
        help=did_you_mean(name, known)
        or "declare it with `type` or `enum`, or `import` the file that does",
    )
    return None


def value_to_json(value: ast.Value) -> object:
    """A default as written → plain JSON data (enum members as their names)."""
    match value:
        case ast.Literal_(value=v):
            return v
        case ast.EnumRef(name=name):
            return name
        case ast.ListValue(items=items):
            return [value_to_json(i) for i in items]
        case ast.ObjectValue(entries=entries):
            return {k: value_to_json(v) for k, v in entries}


# -- workflow and stages -------------------------------------------------------


def _single_record(
    an: Analysis, specs: tuple[ast.RecordSpec, ...], synth_name: str, what: str
) -> model.Record | None:
    """The one record given for a one-off item (workflow input/output, stage output/config)."""
    for extra in specs[1:]:
        an.error(
            "WF208",
            f"`{what}` is given more than once",
            extra.span,
            label="repeated here",
            labels=(Label(span=specs[0].span, message="first given here"),),
            help=f"merge the two `{what}` blocks",
        )
    if not specs:
        return model.Record(name=synth_name, fields=())
    return record_from_spec(an, specs[0], synth_name)


def record_from_spec(an: Analysis, spec: ast.RecordSpec, synth_name: str) -> model.Record | None:
    """Inline body → a record with a synthesised name; a type name → the declared record."""
    if isinstance(spec, ast.RecordBody):
        name = synth_name if synth_name not in an.declared_at else synth_name + "Record"
        return build_record(an, spec, name)
    if spec.name in an.type_decls:
        return resolve_declared(an, spec.name, [])
    hint = did_you_mean(spec.name, an.type_decls)
    if spec.name in an.enums or spec.name in model.PRIMITIVES:
        hint = "give a record: `{ value: " + spec.name + " }`"
    an.error(
        "WF201",
        f"unknown record type `{spec.name}`",
        spec.span,
        label="expected a declared `type` or `{ … }`",
        help=hint or "declare it with `type`",
    )
    return None


def _check_identifier(
    an: Analysis, name: ast.Name, what: str, reserved: frozenset[str] | set[str]
) -> bool:
    if name.value in reserved:
        an.error(
            "WF205",
            f"`{name.value}` cannot be a {what} id",
            name.span,
            label="reserved name",
            help=f"rename the {what}, e.g. `{name.value}_step`",
        )
        return False
    return True


def _check_package_name(an: Analysis, name: ast.Name) -> None:
    """The workflow id names its package; a module Python already knows would win the import."""
    clash = module_clash(name.value)
    if clash is not None:
        an.error(
            "WF205",
            f"`{name.value}` cannot be a workflow id: its package would clash with {clash}",
            name.span,
            label="a module of this name already exists",
            help=f"rename the workflow, e.g. `{name.value}_flow`",
        )


def _collect_stage(an: Analysis, stage: ast.Stage) -> None:
    sid = stage.name.value
    if sid in an.stages:
        _duplicate(an, "stage", sid, stage.name, an.stages[sid].node.name.span)
        return
    if not _check_identifier(an, stage.name, "stage", RESERVED_STAGE_IDS):
        an.broken.add(f"stage:{sid}")
    an.stages[sid] = StageFacts(node=stage)


def _resolve_stage(an: Analysis, stage: ast.Stage) -> None:
    facts = an.stages.get(stage.name.value)
    if facts is None or facts.node is not stage:
        return
    base = pascal(stage.name.value)
    facts.output = _single_record(an, stage.outputs, f"{base}Output", "output")
    facts.config = apply_ai_preset(
        an, stage, _single_record(an, stage.configs, f"{base}Config", "config")
    )
    for extra in stage.inputs[1:]:
        an.error(
            "WF208",
            "`input` is given more than once",
            extra.span,
            label="repeated here",
            labels=(Label(span=stage.inputs[0].span, message="first given here"),),
        )
    spec = stage.inputs[0] if stage.inputs else ast.InputNone(span=stage.name.span)
    if stage.maps:
        # A mapped stage's input is one item; `input from`/`input none` on it are reported
        # by the mapping pass, which also finds the item type.
        facts.input_source = "item"
        facts.map = MapFacts(node=stage.maps[0])
        if stage.inputs and isinstance(spec, ast.RecordBody | ast.TypeRef):
            declared = _item_type(an, spec, f"{base}Input")
            facts.map.declared = declared
            facts.input = declared if isinstance(declared, model.Record) else None
        _check_stage_refs(an, stage)
        return
    match spec:
        case ast.InputNone():
            facts.input_source = "none"
            facts.input = model.Record(name=f"{base}Input", fields=())
        case ast.InputFrom(stage=source):
            facts.input_source = "stage"
            facts.input_from = source.value
        case ast.RecordBody() | ast.TypeRef():
            facts.input_source = "flow"
            facts.input = record_from_spec(an, spec, f"{base}Input")
    _check_stage_refs(an, stage)


def _item_type(an: Analysis, spec: ast.RecordSpec, synth_name: str) -> model.Type | None:
    """What a mapped stage declares it takes: a record, or (`input str`, `input Label`) a
    primitive or an enum, for items that are not records."""
    if isinstance(spec, ast.TypeRef) and spec.name in model.PRIMITIVES:
        return model.Primitive(name=spec.name)
    if isinstance(spec, ast.TypeRef) and spec.name in an.enums:
        return an.enums[spec.name]
    return record_from_spec(an, spec, synth_name)


def _check_stage_refs(an: Analysis, stage: ast.Stage) -> None:
    refs = list(stage.needs)
    if stage.inputs and isinstance(stage.inputs[0], ast.InputFrom) and not stage.maps:
        refs.append(stage.inputs[0].stage)
    for ref in refs:
        if ref.value not in an.stages:
            unknown_stage(an, ref)
            an.broken.add(f"stage:{stage.name.value}")


def unknown_stage(an: Analysis, ref: ast.Name) -> None:
    """Report a reference to a stage that is not declared."""
    an.error(
        "WF202",
        f"unknown stage `{ref.value}`",
        ref.span,
        label="no stage has this id",
        help=did_you_mean(ref.value, an.stages)
        or "declare it with `stage " + ref.value + " { … }`",
    )
