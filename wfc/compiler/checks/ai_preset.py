"""The `ai` preset: `ai "gpt-4o-mini", temperature 0.2, max tokens 500` in a stage.

It is shorthand for three config fields every model-calling stage wants —
`model` (a model key), `temperature` (0–2) and `max_tokens` (≥ 1) — with the
given values as defaults, so a run can still override them per stage with
`--config`. The fields join the stage's inline `config { … }` (or make one).
"""

from __future__ import annotations

from wfc.compiler import ast, model
from wfc.compiler.checks.context import Analysis
from wfc.compiler.diagnostics import Label

DEFAULT_TEMPERATURE = 0.7
DEFAULT_MAX_TOKENS = 1024


def apply_ai_preset(
    an: Analysis, stage: ast.Stage, config: model.Record | None
) -> model.Record | None:
    """The stage's config with the preset's fields added (diagnostics on conflicts)."""
    if not stage.ai_presets or config is None:
        return config
    preset = stage.ai_presets[0]
    for extra in stage.ai_presets[1:]:
        an.error(
            "WF208",
            "`ai` is given more than once",
            extra.span,
            label="repeated here",
            labels=(Label(span=preset.span, message="first given here"),),
        )
    if config.declared:
        an.error(
            "WF313",
            f"`ai` cannot add fields to the declared type `{config.name}`",
            preset.span,
            label="this adds model, temperature and max_tokens to the config",
            help="give the stage an inline `config { … }`, or declare the three fields yourself",
        )
        return config
    temperature = _number(an, preset.temperature, DEFAULT_TEMPERATURE, 0.0, 2.0, "temperature")
    max_tokens = _number(an, preset.max_tokens, DEFAULT_MAX_TOKENS, 1, None, "max tokens")
    added = (
        _field("model", "str", str(preset.model.value), (), "Model key (from the `ai` preset)."),
        _field(
            "temperature",
            "float",
            float(temperature),
            (("ge", 0.0), ("le", 2.0)),
            "Sampling temperature (from the `ai` preset).",
        ),
        _field("max_tokens", "int", int(max_tokens), (("ge", 1),), "Most tokens to generate."),
    )
    clashes = [f for f in added if config.field_named(f.name) is not None]
    for clash in clashes:
        declared = config.field_named(clash.name)
        an.error(
            "WF203",
            f"duplicate field `{clash.name}`",
            preset.span,
            label=f"`ai` adds a `{clash.name}` field",
            labels=(
                (Label(span=declared.node.span, message="declared here"),)
                if declared is not None and declared.node is not None
                else ()
            ),
            help=f"remove `{clash.name}` from the config; `ai` declares it",
        )
    if clashes:
        return config
    return model.Record(
        name=config.name,
        fields=config.fields + added,
        doc=config.doc,
        declared=False,
        node=config.node,
    )


def _number(
    an: Analysis,
    literal: ast.Literal_ | None,
    default: float,
    low: float,
    high: float | None,
    what: str,
) -> float:
    if literal is None:
        return default
    value = literal.value
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (what != "max tokens" or isinstance(value, int))
        and value >= low
        and (high is None or value <= high)
    ):
        return float(value)
    bounds = f"at least {low:g}" if high is None else f"between {low:g} and {high:g}"
    kind = "a whole number" if what == "max tokens" else "a number"
    an.error(
        "WF310",
        f"{what} must be {kind} {bounds}",
        literal.span,
        help='e.g. `ai "gpt-4o-mini", temperature 0.2, max tokens 500`',
    )
    return default


def _field(
    name: str,
    type_name: str,
    default: object,
    constraints: tuple[tuple[str, float | int | str], ...],
    doc: str,
) -> model.RecordField:
    return model.RecordField(
        name=name,
        type=model.Primitive(name=type_name),
        constraints=constraints,
        has_default=True,
        default=default,
        doc=doc,
    )
