"""The view models the code templates get, each spelling its generated lines as ruff would.

`codegen` decides *what* the generated package holds (which records, which
fields, which stages and what each needs) from the checked model; these
classes decide *how* each line is written: the annotation a dependency
returns, its docstring, a class header or a signature wrapped at 88 columns
the way `ruff format` wraps it, so the output passes the user's formatter
unchanged. They are apart from `codegen` because they need nothing of the
model, Jinja or the plan: plain strings in, strings out, so the stub checker
(`stubs`) can name `StageView` without bringing in the generator, and the
wrapping rules can change without reading the model walk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
