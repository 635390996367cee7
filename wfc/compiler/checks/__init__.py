"""The checker: passes run in `PASSES` order over one workflow, then the checked model is built.

Each pass reports everything it finds and marks what it found broken, so the
later passes skip those nodes and one mistake yields one diagnostic.
"""

from __future__ import annotations

from collections.abc import Callable

from wfc.compiler import ast, model
from wfc.compiler.checks.children import check_child_inputs, resolve_children
from wfc.compiler.checks.conditions import check_conditions
from wfc.compiler.checks.context import Analysis
from wfc.compiler.checks.generated_names import check_generated_names
from wfc.compiler.checks.graph import check_graph
from wfc.compiler.checks.limits import check_limits
from wfc.compiler.checks.mapping import check_map_settings, check_maps
from wfc.compiler.checks.names import check_names
from wfc.compiler.checks.schedules import check_schedules
from wfc.compiler.checks.skipping import check_skipping
from wfc.compiler.checks.types import check_types
from wfc.compiler.checks.wait_reads import check_wait_reads
from wfc.compiler.checks.waits import check_builtins
from wfc.compiler.checks.yaml_help import spell_for_file
from wfc.compiler.diagnostics import Diagnostic, Label
from wfc.compiler.loader import Program
from wfc.compiler.names import class_name

PASSES: tuple[Callable[[Analysis], None], ...] = (
    check_names,
    check_builtins,
    lambda an: resolve_children(an, check_program),
    check_types,
    check_limits,
    check_schedules,
    check_map_settings,
    check_graph,
    check_child_inputs,
    check_maps,
    check_conditions,
    check_skipping,
    check_wait_reads,
)


def check_program(program: Program) -> tuple[model.WorkflowModel | None, list[Diagnostic]]:
    """Check the root file's workflow (if it has one) and the types it can see.

    Returns the checked workflow, or None when there is none or it has errors. Help lines
    are in the spelling of the file each diagnostic is about (`.wf` or `.wf.yaml`).
    """
    checked, diagnostics = _check_root(program)
    return checked, spell_for_file(diagnostics)


def _check_root(program: Program) -> tuple[model.WorkflowModel | None, list[Diagnostic]]:
    root = program.root
    if root is None:
        return None, []
    workflows = root.module.workflows
    an = Analysis(program=program, workflow=workflows[0] if workflows else None)
    for extra in workflows[1:]:
        an.error(
            "WF221",
            "a file holds one workflow",
            extra.id.span,
            label=f"second workflow `{extra.id.value}`",
            labels=(Label(span=workflows[0].id.span, message="first workflow"),),
            help="move it into its own `.wf` file; share types through `import`",
        )
    for run in PASSES:
        run(an)
    if an.workflow is not None:
        _check_repeats(an, an.workflow)
    if an.workflow is None or an.has_errors:
        return None, an.diagnostics
    checked = _build_model(an, an.workflow, root.file.path.name)
    check_generated_names(an, checked)  # on the model: the very names codegen will use
    if an.has_errors:
        return None, an.diagnostics
    return checked, an.diagnostics


def _check_repeats(an: Analysis, wf: ast.Workflow) -> None:
    for items, what in ((wf.names, "name"), (wf.descriptions, "description")):
        for extra in items[1:]:
            an.error(
                "WF208",
                f"`{what}` is given more than once",
                extra.span,
                labels=(Label(span=items[0].span, message="first given here"),),
            )


def _first_text(items: tuple[ast.Literal_, ...]) -> str | None:
    return str(items[0].value) if items else None


def _build_model(an: Analysis, wf: ast.Workflow, source_name: str) -> model.WorkflowModel:
    stages = []
    for sid, facts in an.stages.items():
        node = facts.node
        s = facts.settings
        assert facts.output is not None and facts.config is not None
        stage_input: model.Record | model.RootInput | None = facts.input
        mapped = None
        if facts.map is not None:
            assert facts.map.item is not None
            mapped = model.MapModel(
                over=tuple(p.value for p in facts.map.node.over.parts),
                at_most=facts.map.at_most,
                on_item_failure=facts.map.on_item_failure,
                item=facts.map.item,
            )
            if facts.input is None:  # items that are not records
                declared = facts.map.declared
                name = f"{class_name(sid)}Input"
                stage_input = model.RootInput(
                    name=name + "Item" if name in an.declared_at else name,
                    item=declared if declared is not None else facts.map.item,
                )
        assert stage_input is not None
        stages.append(
            model.StageModel(
                id=sid,
                title=node.title or sid.replace("_", " ").title(),
                description=_first_text(node.descriptions) or node.doc,
                is_async=node.is_async,
                input_source=facts.input_source,
                input_from=facts.input_from,
                input=stage_input,
                output=facts.output,
                config=facts.config,
                needs=tuple(n.value for n in node.needs),
                optional_needs=tuple(dict.fromkeys(n.value for n in node.optional_needs)),
                when=facts.when,
                map=mapped,
                retry_max_attempts=s.max_attempts,
                backoff_initial_ms=s.backoff_initial_ms,
                backoff_multiplier=s.backoff_multiplier,
                backoff_max_ms=s.backoff_max_ms,
                non_retryable=s.non_retryable,
                timeout_ms=s.timeout_ms,
                poll_interval_ms=s.poll_interval_ms,
                poll_max_wait_ms=s.poll_max_wait_ms,
                priority=s.priority,
                queue=s.queue,
                concurrency=s.concurrency,
                rate=s.rate,
                sleep=facts.sleep,
                wait_for=facts.wait_for,
                child=facts.child,
                node=node,
            )
        )
    assert an.workflow_input is not None and an.workflow_output is not None
    return model.WorkflowModel(
        id=wf.id.value,
        name=_first_text(wf.names) or wf.id.value.replace("_", " ").title(),
        description=_first_text(wf.descriptions) or wf.doc,
        source_name=source_name,
        input=an.workflow_input,
        output=an.workflow_output,
        stages=tuple(stages),
        groups=tuple(an.groups),
        enums=tuple(an.enums.values()),
        records=tuple(an.records.values()),
        queue=an.workflow_queue,
        schedules=tuple(an.schedules),
        signals=tuple(an.signals.values()),
    )
