"""Checked model + Plan → generated files, through Jinja2 templates.

Templates get plain view models (strings and lists, decided here) and hold only
loops and ifs. Output is deterministic: declaration order from the source,
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


# -- view models ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldView:
    """One model attribute: `name: annotation = default`, or `= Field(*field_args)`."""

    name: str
    annotation: str
    default: str | None
    field_args: list[str]


@dataclass(frozen=True, slots=True)
class ModelView:
    """One pydantic model class: a record, or with `root` a `RootModel` of that annotation
    (the input of a mapped stage whose items are not records)."""

    name: str
    doc: str
    fields: list[FieldView]
    forbid_extra: bool
    root: str | None = None

    @property
    def header(self) -> str:
        """`class Name(BaseModel):` or `class Name(RootModel[T]):`, wrapped as ruff would."""
        base = f"RootModel[{self.root}]" if self.root is not None else "BaseModel"
        return wrap_call(f"class {self.name}", [base], ":", indent=0)


@dataclass(frozen=True, slots=True)
class EnumView:
    """One StrEnum class."""

    name: str
    doc: str
    members: list[str]


@dataclass(frozen=True, slots=True)
class DependencyView:
    """A typed property on a stage context for one `needs` entry.

    An optional need (`needs review?`) may have been skipped: its property is
    `Model | None`, None when the run holds no output for it. A mapped need
    (`gathered`) gives a list, one entry per item in item order: `list[Model]`
    (`list`), or `list[ItemResult[Model]]` with `on failure continue` (`results`).
    """

    stage_id: str
    output_model: str
    optional: bool = False
    gathered: Literal["one", "list", "results"] = "one"
    # A wait with `on timeout continue`: None when it timed out, too.
    may_time_out: bool = False

    @property
    def def_line(self) -> str:
        """`    def x(self) -> T:`, wrapped as ruff would when it is too long."""
        returns = {
            "one": self.output_model,
            "list": f"list[{self.output_model}]",
            "results": f"list[ItemResult[{self.output_model}]]",
        }[self.gathered] + (" | None" if self.optional else "")
        line = f"    def {self.stage_id}(self) -> {returns}:"
        if len(line) <= 88:
            return line
        return f"    def {self.stage_id}(\n        self,\n    ) -> {returns}:"

    @property
    def doc(self) -> str:
        """The property's docstring."""
        what = {
            "one": f"The output of `{self.stage_id}`",
            "list": f"The outputs of `{self.stage_id}` in item order",
            "results": f"The results of `{self.stage_id}` in item order",
        }[self.gathered]
        if self.may_time_out:
            return f"{what}, or None when `{self.stage_id}` timed out or was skipped."
        if self.optional and self.gathered == "one":
            return f"{what}, or None when `{self.stage_id}` was skipped."
        if self.optional:
            return f"{what}, or None if it was skipped."
        if self.gathered == "results":
            return f"{what}: each an output or an error."
        return f"{what}, which this stage needs."

    @property
    def return_line(self) -> str:
        """The line that reads the dependency through `StageContext`."""
        method = {"one": "dependency", "list": "dependency_list", "results": "item_results"}
        return wrap_call(
            f"        return self.{method[self.gathered]}",
            [f'"{self.stage_id}"', self.output_model],
            "",
            indent=8,
        )


@dataclass(frozen=True, slots=True)
class ItemView:
    """The `item` property of a mapped stage's context: the path it maps over, the
    item's annotation, and whether the input is a `RootModel` (read through `.root`)."""

    over: str
    annotation: str
    root: bool


@dataclass(frozen=True, slots=True)
class StageView:
    """Everything the stage templates need about one stage."""

    id: str
    title: str
    class_name: str
    is_async: bool
    input_model: str
    output_model: str
    config_model: str
    dependencies: list[DependencyView]
    item: ItemView | None = None

    @property
    def context_header(self) -> str:
        """`class XContext(StageContext[...]):`, wrapped as ruff would."""
        generic = f"StageContext[{self.input_model}, {self.config_model}, StageId]"
        return wrap_call(f"class {self.class_name}Context", [generic], ":", indent=0)

    @property
    def base_header(self) -> str:
        """`class XStage(Stage[...]):` or the `AsyncStage` form."""
        if self.is_async:
            args = [f"{self.class_name}Context", self.config_model, self.output_model]
            base = wrap_call("AsyncStage", args, "", indent=4, bracket="[]")
        else:
            base = wrap_call(
                "Stage",
                [f"{self.class_name}Context", self.output_model],
                "",
                indent=4,
                bracket="[]",
            )
        return wrap_call(f"class {self.class_name}Stage", [base], ":", indent=0)

    @property
    def execute_signature(self) -> str:
        """The stub's `def execute(...)` line(s)."""
        returns = f"{self.output_model} | Suspend" if self.is_async else self.output_model
        return wrap_call(
            "    def execute",
            ["self", f"ctx: {self.class_name}Context"],
            f" -> {returns}:",
            indent=4,
        )

    @property
    def check_signature(self) -> str:
        """The stub's `def check_completion(...)` line(s)."""
        params = ["self", "state: dict[str, Any]", f"ctx: {self.class_name}CheckContext"]
        returns = f" -> Completion[{self.output_model}]:"
        return wrap_call("    def check_completion", params, returns, indent=4)

    @property
    def stub_import(self) -> str:
        """The stub's import from `.._stages`."""
        names = [f"{self.class_name}Context", f"{self.class_name}Stage"]
        if self.is_async:
            names.insert(0, f"{self.class_name}CheckContext")
        return wrap_call("from .._stages import ", names, "", indent=0, bracket="()", call=False)


def wrap_call(
    head: str,
    args: list[str],
    tail: str,
    *,
    indent: int,
    bracket: str = "()",
    call: bool = True,
    width: int = 88,
) -> str:
    """`head(args)tail` on one line when it fits in `width`, else the way ruff format wraps it.

    Ruff first tries the arguments on one indented line, then one per line
    with a trailing comma. Imports (`call=False`) have no parentheses when
    they fit on one line.
    """
    opening, closing = bracket[0], bracket[1]
    joined = ", ".join(args)
    one_line = f"{head}{opening}{joined}{closing}{tail}" if call else f"{head}{joined}{tail}"
    if len(one_line.split("\n")[-1]) <= width and "\n" not in joined:
        return one_line
    pad = " " * (indent + 4)
    close = " " * indent + closing + tail
    if "\n" not in joined and len(pad) + len(joined) <= width and call:
        return f"{head}{opening}\n{pad}{joined}\n{close}"
    body = "".join(f"{pad}{a.replace(chr(10), chr(10) + '    ')},\n" for a in args)
    return f"{head}{opening}\n{body}{close}"


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
    if isinstance(value, int | float):
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


def _collect_records(
    wf: model.WorkflowModel,
) -> list[tuple[model.Record | model.RootInput, str]]:
    """Every model the package defines, each once, referenced records first."""
    ordered: list[tuple[model.Record | model.RootInput, str]] = []
    seen: set[str] = set()

    def visit_type(t: model.Type) -> None:
        match t:
            case model.ListOf(item=inner) | model.MapOf(value=inner) | model.Optional(inner=inner):
                visit_type(inner)
            case model.Record():
                add(t, t.doc or f"The `{t.name}` type.")

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

    def visit(t: model.Type) -> None:
        match t:
            case model.ListOf(item=inner) | model.MapOf(value=inner) | model.Optional(inner=inner):
                visit(inner)
            case model.EnumType(name=name):
                used.add(name)

    for record, _ in records:
        if isinstance(record, model.RootInput):
            visit(record.item)
            continue
        for f in record.fields:
            visit(f.type)
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
    match t:
        case model.ListOf(item=inner) | model.MapOf(value=inner) | model.Optional(inner=inner):
            return _named_types(inner)
        case model.EnumType(name=name) | model.Record(name=name):
            return {name}
    return set()


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
