"""Checked model + Plan → generated files, through Jinja2 templates.

Templates get plain view models (strings and lists, filled in here from the
model; `codegen_views` holds their classes, which spell each line) and hold
only loops and ifs. Output is deterministic: declaration order from the source,
no timestamps, so recompiling gives byte-identical files.

`render_package` returns the files that are always regenerated; `render_stubs`
the stage stubs, which the writer creates once and never overwrites.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import jinja2

from wfc.compiler import model
from wfc.compiler.codegen_views import (
    DependencyView,
    EnumView,
    FieldView,
    ItemView,
    ModelView,
    StageView,
)
from wfc.compiler.names import class_name
from wfc.plan import Plan

_PY_PRIMITIVES = {
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "datetime": "datetime.datetime",
    "date": "datetime.date",
    "url": "Url",
    "email": "Email",
    "json": "JsonValue",
    "blob": "BlobRef",
}
_RUNTIME_TYPES = ("Url", "Email", "BlobRef")
_PLAIN_DEFAULT_TYPES = ("str", "int", "float", "bool")


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("wfc", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship in the package: no stat of the file at each render
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def _render(template: str, **context: object) -> str:
    return _environment().get_template(template).render(**context)


@dataclass(slots=True)
class _Imports:
    typing: set[str] = field(default_factory=set)
    pydantic: set[str] = field(default_factory=lambda: {"BaseModel"})
    runtime: set[str] = field(default_factory=set)
    datetime: bool = False
    enum: bool = False


# -- types and defaults --------------------------------------------------------


def _annotation(t: model.Type, imports: _Imports) -> str:
    match t:
        case model.Primitive(name=name):
            py = _PY_PRIMITIVES[name]
            if py in _RUNTIME_TYPES:
                imports.runtime.add(py)
            elif py == "JsonValue":
                imports.pydantic.add("JsonValue")
            elif py.startswith("datetime."):
                imports.datetime = True
            return py
        case model.ListOf(item=item):
            return f"list[{_annotation(item, imports)}]"
        case model.MapOf(value=value):
            return f"dict[str, {_annotation(value, imports)}]"
        case model.Optional(inner=inner):
            return f"{_annotation(inner, imports)} | None"
        case model.EnumType(name=name) | model.Record(name=name):
            return name


def _python_string(text: str) -> str:
    """A string literal quoted as `ruff format` would: double quotes, unless that means
    escaping double quotes and single ones would need no escapes."""
    if '"' in text and "'" not in text:
        return repr(text)
    return json.dumps(text, ensure_ascii=False)


def _python_literal(value: Any) -> str:
    """JSON data as Python source (`true` → `True`), deterministic and ruff-formatted."""
    if isinstance(value, str):
        return _python_string(value)
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, float):
        return repr(value).replace("e+", "e")  # `ruff format` writes 1e16, `repr` 1e+16
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_python_literal(v) for v in value) + "]"
    items = ", ".join(f"{_python_string(k)}: {_python_literal(v)}" for k, v in value.items())
    return "{" + items + "}"


_FIELD_ARGS = {
    "ge": "ge",
    "gt": "gt",
    "le": "le",
    "lt": "lt",
    "min_len": "min_length",
    "max_len": "max_length",
    "pattern": "pattern",
}


def _field_view(f: model.RecordField, imports: _Imports) -> FieldView:
    annotation = _annotation(f.type, imports)
    args: list[str] = []
    base = f.type.inner if isinstance(f.type, model.Optional) else f.type
    plain_default: str | None = None
    if f.has_default:
        if f.default is None:
            plain_default = "None"
        elif isinstance(base, model.EnumType):
            plain_default = f"{base.name}.{f.default}"
        elif isinstance(base, model.Primitive) and base.name in _PLAIN_DEFAULT_TYPES:
            plain_default = _python_literal(f.default)
            if base.name == "float" and isinstance(f.default, int):
                plain_default = _python_literal(float(f.default))
        else:
            args += [f"default={_python_literal(f.default)}", "validate_default=True"]
    elif isinstance(f.type, model.Optional):
        plain_default = "None"
    for kind, value in f.constraints:
        if kind == "len_gt":
            args.append(f"min_length={int(value) + 1}")
        elif kind == "len_lt":
            args.append(f"max_length={int(value) - 1}")
        else:
            args.append(f"{_FIELD_ARGS[kind]}={_python_literal(value)}")
    if f.doc:
        args.append(f"description={_python_literal(f.doc)}")
    if not args:
        return FieldView(f.name, annotation, plain_default, [])
    imports.pydantic.add("Field")
    if plain_default is not None:
        args.insert(0, f"default={plain_default}")
    return FieldView(f.name, annotation, None, args)


# -- records in declaration order ------------------------------------------------


def _element(t: model.Type) -> model.Type:
    """The type under every `list[…]`, `map[…]` and `?` around `t`: the one record, enum or
    primitive it holds (each of those holds exactly one type), which is all the walks
    below look for."""
    match t:
        case model.ListOf(item=inner) | model.MapOf(value=inner) | model.Optional(inner=inner):
            return _element(inner)
    return t


def _collect_records(
    wf: model.WorkflowModel,
) -> list[tuple[model.Record | model.RootInput, str]]:
    """Every model the package defines, each once, referenced records first."""
    ordered: list[tuple[model.Record | model.RootInput, str]] = []
    seen: set[str] = set()

    def visit_type(t: model.Type) -> None:
        named = _element(t)
        if isinstance(named, model.Record):
            add(named, named.doc or f"The `{named.name}` type.")

    def add(record: model.Record, doc: str) -> None:
        if record.name in seen:
            return
        seen.add(record.name)
        for f in record.fields:
            visit_type(f.type)
        ordered.append((record, record.doc or doc))

    for record in wf.records:
        add(record, f"The `{record.name}` type.")
    add(wf.input, f"Input of workflow `{wf.id}`.")
    add(wf.output, f"Output of workflow `{wf.id}`.")
    for signal in wf.signals:
        add(signal.payload, signal.doc or f"Payload of signal `{signal.name}`.")
    for stage in wf.stages:
        if stage.builtin:  # no class: only what it hands on (`woke_at`, or a payload)
            what = "sleep" if stage.sleep is not None else "wait"
            add(stage.output, f"Output of the {what} `{stage.id}`.")
            continue
        if isinstance(stage.input, model.RootInput):
            visit_type(stage.input.item)
            if stage.input.name not in seen:
                seen.add(stage.input.name)
                over = ".".join(stage.map.over) if stage.map else "its list"
                doc = f"Input of stage `{stage.id}`: one item of `{over}`."
                ordered.append((stage.input, doc))
        elif stage.map is not None:
            add(
                stage.input,
                f"Input of stage `{stage.id}`: one item of `{'.'.join(stage.map.over)}`.",
            )
        elif stage.child is not None:  # no class: only its output is read, by later stages
            add(
                stage.output,
                f"Output of stage `{stage.id}`: workflow `{stage.child.workflow_id}`'s.",
            )
            continue
        else:
            add(stage.input, f"Input of stage `{stage.id}`.")
        add(stage.output, f"Output of stage `{stage.id}`.")
        add(stage.config, f"Config of stage `{stage.id}`.")
    return ordered


def _used_enums(
    wf: model.WorkflowModel, records: list[tuple[model.Record | model.RootInput, str]]
) -> list[model.EnumType]:
    used: set[str] = set()
    for record, _ in records:
        if isinstance(record, model.RootInput):
            types = [record.item]
        else:
            types = [f.type for f in record.fields]
        for t in types:
            named = _element(t)
            if isinstance(named, model.EnumType):
                used.add(named.name)
    return [e for e in wf.enums if e.name in used]


# -- rendering -----------------------------------------------------------------


def docstring_text(text: str, indent: int = 4) -> str:
    """User text made safe inside a triple-quoted docstring, continuation lines indented."""
    safe = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()
    if safe.endswith('"'):
        safe += " "
    return ("\n" + " " * indent).join(line.rstrip() for line in safe.splitlines())


def _header(wf: model.WorkflowModel) -> str:
    return f"# Generated by wfc from {wf.source_name}; edit that file instead."


def render_models(wf: model.WorkflowModel) -> str:
    """`_models.py`: enums and pydantic models of every record the workflow uses."""
    imports = _Imports()
    records = _collect_records(wf)
    # Configs and payloads refuse fields they do not declare (a payload's schema is closed).
    config_names = {s.config.name for s in wf.stages} | {p.payload.name for p in wf.signals}
    views = [
        ModelView(
            name=record.name,
            doc=docstring_text(doc),
            fields=[_field_view(f, imports) for f in record.fields],
            forbid_extra=record.name in config_names,
        )
        if isinstance(record, model.Record)
        else ModelView(
            name=record.name,
            doc=docstring_text(doc),
            fields=[],
            forbid_extra=False,
            root=_annotation(record.item, imports),
        )
        for record, doc in records
    ]
    if any(v.root is not None for v in views):
        imports.pydantic.add("RootModel")
    if any(v.forbid_extra for v in views):
        imports.pydantic.add("ConfigDict")
    enums = [
        EnumView(
            name=e.name,
            doc=docstring_text(e.doc or f"The `{e.name}` enum."),
            members=list(e.members),
        )
        for e in _used_enums(wf, records)
    ]
    return _render(
        "models.py.j2",
        header=_header(wf),
        workflow=wf,
        enums=enums,
        models=views,
        import_datetime=imports.datetime,
        pydantic_imports=sorted(imports.pydantic),
        runtime_imports=sorted(imports.runtime),
    )


def _gathered(stage: model.StageModel) -> Literal["one", "list", "results"]:
    """How a stage's output reaches the stages that need it."""
    if stage.map is None:
        return "one"
    return "results" if stage.map.on_item_failure == "continue" else "list"


def _item_view(stage: model.StageModel, imports: _Imports) -> ItemView | None:
    if stage.map is None:
        return None
    over = ".".join(stage.map.over)
    if isinstance(stage.input, model.RootInput):
        return ItemView(over, _annotation(stage.input.item, imports), root=True)
    return ItemView(over, stage.input.name, root=False)


def stage_views(wf: model.WorkflowModel, imports: _Imports | None = None) -> list[StageView]:
    """View models of the workflow's stages that the user implements, in definition order
    (`imports` collects what the annotations of mapped stages' items need). A built-in
    stage (a sleep, a wait) has none: no context, no base class, no stub."""
    by_id = {s.id: s for s in wf.stages}
    found = imports if imports is not None else _Imports()
    return [
        StageView(
            id=s.id,
            title=docstring_text(s.title, indent=0),
            class_name=class_name(s.id),
            is_async=s.is_async,
            input_model=s.input.name,
            output_model=s.output.name,
            config_model=s.config.name,
            dependencies=[
                DependencyView(
                    dep,
                    by_id[dep].output.name,
                    optional=dep in s.optional_needs,
                    gathered=_gathered(by_id[dep]),
                    may_time_out=by_id[dep].may_be_null,
                )
                for dep in dict.fromkeys(s.needs)
            ],
            item=_item_view(s, found),
        )
        for s in wf.stages
        if not s.builtin and s.child is None  # no class, base or stub for a built-in
    ]


def _named_types(t: model.Type) -> set[str]:
    """The records and enums a type refers to (what `_stages.py` imports from `_models`)."""
    named = _element(t)
    return {named.name} if isinstance(named, model.EnumType | model.Record) else set()


def render_stages(wf: model.WorkflowModel) -> str:
    """`_stages.py`: stage ids, typed contexts and abstract base classes."""
    imports = _Imports(pydantic=set())
    stages = stage_views(wf, imports)
    model_names = sorted(
        {n for s in stages for n in (s.input_model, s.output_model, s.config_model)}
        | {d.output_model for s in stages for d in s.dependencies}
        | {
            name
            for s in wf.stages
            if isinstance(s.input, model.RootInput)
            for name in _named_types(s.input.item)
        }
    )
    runtime_imports = ({"StageContext"} if stages else set()) | imports.runtime
    if any(s.is_async for s in stages):
        runtime_imports |= {"AsyncStage", "CheckContext"}
    if any(not s.is_async for s in stages):
        runtime_imports.add("Stage")
    if any(d.gathered == "results" for s in stages for d in s.dependencies):
        runtime_imports.add("ItemResult")
    return _render(
        "stages.py.j2",
        header=_header(wf),
        workflow=wf,
        stages=stages,
        stage_ids=[s.id for s in wf.stages],
        model_names=model_names,
        runtime_imports=sorted(runtime_imports),
        import_datetime=imports.datetime,
        pydantic_imports=sorted(imports.pydantic),
    )


def render_init(wf: model.WorkflowModel) -> str:
    """`__init__.py`: `workflow`, the plan bound to the stage classes."""
    return _render("init.py.j2", header=_header(wf), workflow=wf)


def render_stub(wf: model.WorkflowModel, stage: StageView) -> str:
    """`stages/<id>.py`: the user's starting point for one stage."""
    return _render("stage_stub.py.j2", workflow=wf, stage=stage)


def render_package(wf: model.WorkflowModel, plan: Plan) -> dict[str, str]:
    """Every always-regenerated file, by path relative to the package directory."""
    return {
        "__init__.py": render_init(wf),
        "_models.py": render_models(wf),
        "_stages.py": render_stages(wf),
        "plan.json": plan.to_json(),
        "stages/__init__.py": _render("stages_init.py.j2", header=_header(wf), workflow=wf),
    }


def render_stubs(wf: model.WorkflowModel, views: list[StageView] | None = None) -> dict[str, str]:
    """Every stage stub, by path relative to the package directory (`views`: the workflow's
    `stage_views`, when the caller has them already)."""
    return {f"stages/{s.id}.py": render_stub(wf, s) for s in views or stage_views(wf)}
