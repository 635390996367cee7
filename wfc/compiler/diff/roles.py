"""Rules over the schemas: what a run in flight stored against the old ones, and who reads it.

A run stores its input (parsed by the old workflow input model), its config
(parsed by each old stage's config model, with the old defaults filled in)
and each finished stage's output (validated against the old output schema).
Under the new plan those stored values are read again: stage inputs are
parsed from them, conditions and maps look into them, stages read their
config. So each schema's differences (`field_deltas`) are judged by who
reads the stored values and when; see `docs/upgrades.md` for the table.
"""

from __future__ import annotations

from typing import Any

from wfc.compiler.diff.context import Ctx, Key, names
from wfc.compiler.diff.fields import FieldDelta, field_deltas
from wfc.compiler.diff.model import Verdict
from wfc.compiler.diff.values import Side
from wfc.plan import Condition, InputSource, Plan

_SUFFIX = {
    ("added", True): "field-added-optional",
    ("added", False): "field-added-required",
    ("removed", True): "field-removed",
    ("removed", False): "field-removed",
}


def _suffix(delta: FieldDelta, *, ok: bool) -> str:
    """`field-added-optional`, `type-narrowed`, `default-changed`, … (`ok`: the side of the
    delta that matters holds, for an added field: it need not be given)."""
    if delta.kind == "default":
        return "default-changed"
    if delta.kind == "changed":
        return f"type-{delta.direction if delta.direction != 'same' else 'changed'}"
    if delta.kind == "added":
        return _SUFFIX[("added", not delta.required)]
    return _SUFFIX[("removed", ok)]


def _anchors(prefix: Key, delta: FieldDelta) -> list[Key]:
    found: list[Key] = []
    if delta.record is not None and delta.field is not None:
        found.append(("type", delta.record, delta.field))
    top = next((part for part in delta.path if part not in ("[]", "{}")), None)
    if top is not None:
        found.append((*prefix, top))
    found.append(prefix)
    return found


def workflow_input(ctx: Ctx) -> None:
    """The run's stored input must still be valid: it is what every run in flight has."""
    for delta in field_deltas(ctx.old.input_schema, ctx.new.input_schema):
        verdict = Verdict.COMPATIBLE if delta.forward else Verdict.BREAKING
        why = _input_reason(delta)
        ctx.add(
            "input-" + _suffix(delta, ok=delta.forward),
            f"workflow input: {delta.describe()}{why}",
            verdict,
            path=("input", *delta.path),
            anchors=_anchors(("input",), delta),
        )


def _input_reason(delta: FieldDelta) -> str:
    if delta.kind == "default":
        return "; runs in flight keep the value they were created with"
    if not delta.forward:
        return "; the input stored with each run in flight may not be valid for it"
    if delta.kind == "removed":
        return "; runs in flight still hold it, and the new plan ignores it"
    return ""


def workflow_output(ctx: Ctx) -> None:
    """The run's output is made from its last group when it completes: a stored output
    of that group must fit the new output, and whoever created a run in flight reads
    the output with the old types."""
    last = [sid for sid in ctx.new.groups[-1] if sid in ctx.old_ids]
    for delta in field_deltas(ctx.old.output_schema, ctx.new.output_schema):
        path = ("output", *delta.path)
        anchors = _anchors(("output",), delta)
        code = "output-" + _suffix(delta, ok=delta.backward)
        if not delta.backward:
            ctx.add(
                code,
                f"workflow output: {delta.describe()}; a caller that created a run in flight "
                "reads its output with the old types",
                Verdict.BREAKING,
                path=path,
                anchors=anchors,
            )
        elif not delta.forward:
            ctx.add(
                code,
                f"workflow output: {delta.describe()}; the output made from "
                f"{names(last, 'or')} stored under the old plan may not fit",
                Verdict.BREAKING_IF_STARTED,
                affects=last,
                path=path,
                anchors=anchors,
            )
        else:
            ctx.add(
                code,
                f"workflow output: {delta.describe()}",
                Verdict.COMPATIBLE,
                path=path,
                anchors=anchors,
            )


def readers(plan: Plan, stage_id: str, groups: dict[str, int]) -> list[str]:
    """The stages of `plan` that read `stage_id`'s output, in plan order (`groups`: each
    stage's group in `plan`)."""
    group = groups[stage_id]
    found = []
    for stage in plan.stages:
        roots = stage.when.roots() if stage.when is not None else set()
        if stage.map is not None:
            roots.add(stage.map.over[0])
        if stage.sleep is not None and stage.sleep.until is not None:
            roots.add(stage.sleep.until[0])
        flow = stage.input_source is InputSource.FLOW and groups[stage.id] == group + 1
        if stage_id in stage.needs or stage.input_from == stage_id or flow or stage_id in roots:
            found.append(stage.id)
    return found


def stage_output(ctx: Ctx, stage_id: str) -> None:
    """A started stage's stored output is read again by the new plan's readers."""
    old, new = ctx.old_stage(stage_id), ctx.new_stage(stage_id)
    reading = readers(ctx.new, stage_id, ctx.new_group)
    in_last = stage_id in ctx.new.groups[-1]
    each = " (of each item)" if new.map is not None else ""
    for delta in field_deltas(old.output_schema, new.output_schema):
        prefix: Key = ("stage", stage_id, "output")
        what = f"output{each} of `{stage_id}`: {delta.describe()}"
        verdict = Verdict.COMPATIBLE
        if delta.forward:
            tail = ""
        elif reading or in_last:
            verdict = Verdict.BREAKING_IF_STARTED
            who = [f"read by {names(reading)}"] if reading else []
            who += ["made into the run's output"] if in_last else []
            tail = f"; the output a run in flight stored may not fit ({' and '.join(who)})"
        else:
            tail = "; no stage of the new plan reads it"
        ctx.add(
            "stage-output-" + _suffix(delta, ok=delta.forward),
            what + tail,
            verdict,
            stage_id=stage_id,
            affects=[stage_id],
            path=(*prefix, *delta.path),
            anchors=_anchors(prefix, delta),
        )


def stage_input(ctx: Ctx, stage_id: str) -> None:
    """A started stage consumed an input of the old shape: what it produced came from that."""
    old, new = ctx.old_stage(stage_id), ctx.new_stage(stage_id)
    each = " (each item)" if new.map is not None else ""
    for delta in field_deltas(old.input_schema, new.input_schema):
        prefix: Key = ("stage", stage_id, "input")
        ctx.add(
            "stage-input-" + _suffix(delta, ok=delta.forward),
            f"input{each} of `{stage_id}`: {delta.describe()}; a run that started it "
            "ran it with the old input",
            Verdict.BREAKING_IF_STARTED,
            stage_id=stage_id,
            affects=[stage_id],
            path=(*prefix, *delta.path),
            anchors=_anchors(prefix, delta),
        )


def stage_config(ctx: Ctx, stage_id: str) -> None:
    """Each run stored every stage's config when it was created, parsed by the old config
    model; the stage reads it again when it runs, retries or is polled. The config model
    refuses fields it does not declare."""
    old, new = ctx.old_stage(stage_id), ctx.new_stage(stage_id)
    for delta in field_deltas(old.config_schema, new.config_schema, closed=True):
        prefix: Key = ("stage", stage_id, "config")
        if delta.kind == "default":
            tail = "; runs in flight keep the config they were created with (the old default)"
        elif delta.forward:
            tail = ""
        elif delta.kind == "removed":
            tail = "; the config stored with each run in flight still has it, and the config model refuses it"
        else:
            tail = "; the config stored with each run in flight may not be valid for it"
        ctx.add(
            "stage-config-" + _suffix(delta, ok=delta.forward),
            f"config of `{stage_id}`: {delta.describe()}{tail}",
            Verdict.COMPATIBLE if delta.forward else Verdict.BREAKING,
            stage_id=stage_id,
            path=(*prefix, *delta.path),
            anchors=_anchors(prefix, delta),
        )


def required_config(schema: dict[str, Any]) -> list[str]:
    """The config fields a stage cannot run without (no default, not optional)."""
    return list(schema.get("required", []))


# -- conditions and maps that look into stored values -------------------------


def new_field_reads(ctx: Ctx, stage_id: str) -> None:
    """A `when` or `map` of the new plan that reads a field the old one did not have, one
    with a default: a run in flight stored its input or that stage's output without it, so
    it reads null there where a new run reads the default."""
    stage = ctx.new_stage(stage_id)
    paths: list[tuple[str, tuple[str, ...]]] = []
    if stage.when is not None:
        paths += [("when", path) for path in _field_paths(stage.when)]
    if stage.map is not None:
        paths.append(("map", stage.map.over))
    seen: set[tuple[str, ...]] = set()
    for kind, path in paths:
        if path in seen or len(path) < 2:
            continue
        seen.add(path)
        found = _new_field(ctx, path, empty_ok=kind == "map")
        if found is None:
            continue
        root, default = path[0], found
        shown = ".".join(path)
        holder = "input" if root == "input" else f"output of `{root}`"
        ctx.add(
            f"{kind}-reads-new-field",
            f"`{stage_id}` {'maps over' if kind == 'map' else 'tests'} `{shown}`, new in the "
            f"{holder} with default {default}: a run in flight that stored it without the "
            "field reads null there",
            Verdict.BREAKING if root == "input" else Verdict.BREAKING_IF_STARTED,
            stage_id=stage_id,
            affects=[] if root == "input" else [root],
            unless_started=[stage_id],
            path=("stage", stage_id, kind),
        )


def _field_paths(condition: Condition) -> list[tuple[str, ...]]:
    if condition.op == "field":
        return [condition.path]
    return [path for arg in condition.args for path in _field_paths(arg)]


def _new_field(ctx: Ctx, path: tuple[str, ...], *, empty_ok: bool) -> str | None:
    """The default (as JSON text) of the first field on `path` that is new, when reading
    null there differs from reading that default; else None."""
    import json

    root = path[0]
    if root == "input":
        old_schema, new_schema = ctx.old.input_schema, ctx.new.input_schema
    elif root in ctx.old_ids and root in ctx.new_ids:
        if ctx.old_stage(root).map is not None or ctx.new_stage(root).map is not None:
            return None
        old_schema = ctx.old_stage(root).output_schema
        new_schema = ctx.new_stage(root).output_schema
    else:
        return None
    old_side, new_side = Side(old_schema), Side(new_schema)
    old_node: Any = old_schema
    new_node: Any = new_schema
    for name in path[1:]:
        old_props = _properties(old_side, old_node)
        new_props = _properties(new_side, new_node)
        if name not in new_props:
            return None
        if name not in old_props:
            default = new_props[name].get("default") if isinstance(new_props[name], dict) else None
            if default is None or (empty_ok and default == []):
                return None
            return json.dumps(default, ensure_ascii=False)
        old_node, new_node = old_props[name], new_props[name]
    return None


def _properties(side: Side, node: Any) -> dict[str, Any]:
    schema, _ = side.resolve(node)
    if isinstance(schema, dict) and isinstance(schema.get("anyOf"), list):
        branches = [b for b in schema["anyOf"] if b != {"type": "null"}]
        schema = side.resolve(branches[0])[0] if len(branches) == 1 else {}
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties", {})
    return props if isinstance(props, dict) else {}
