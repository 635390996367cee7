"""`wfc runs migrate`: move runs in flight onto a new plan, or say why they cannot move.

Workers adopt the runs a compatible change leaves safe on their own; this is
for the rest, and for operators who will not wait for a tick. Each run is
checked with `wfc diff`'s rules for the stages it has started (or, with
--from, the stages it keeps): moved, or refused with the changes that break
it. Exit 1 when any run was refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from wfc.cli.session import db_read_option, json_option, load_workflows, print_json

if TYPE_CHECKING:
    from wfc.runtime.adapters.sql import SqlStorage
    from wfc.runtime.kernel import Kernel
    from wfc.runtime.workflow import Workflow

MIGRATE_ALL_LIMIT = 10_000


@click.command("migrate")
@click.argument("run_ids", nargs=-1)
@click.option(
    "--to",
    "to_source",
    required=True,
    metavar="PLAN",
    help="The new plan: a compiled package, its plan.json, or a .wf file.",
)
@click.option(
    "--workflow", "workflow_id", help="The workflow to migrate (when PLAN holds several)."
)
@click.option(
    "--all",
    "every_run",
    is_flag=True,
    help="Every unfinished run of the workflow on another plan (instead of RUN_IDS).",
)
@click.option(
    "--from",
    "from_stage",
    help="Keep the stages before this stage's group and run on from it on the new plan.",
)
@db_read_option
@json_option
def migrate_command(
    run_ids: tuple[str, ...],
    to_source: str,
    workflow_id: str | None,
    every_run: bool,
    from_stage: str | None,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Move unfinished runs onto the plan in --to when `wfc diff` finds the change safe for
    the stages each has started; refuse the others, saying which changes break them (add
    --from STAGE to run them again from a stage before those)."""
    from wfc.cli.runs_commands import _with_kernel

    if bool(run_ids) == every_run:
        raise click.UsageError("name the runs to migrate, or pass --all (not both)")
    registry = load_workflows([to_source])
    workflow = _the_workflow(registry.workflows(), workflow_id, to_source)

    async def migrate(kernel: Kernel, _s: SqlStorage) -> list[dict[str, Any]]:
        return await _migrate_each(kernel, workflow, run_ids, from_stage)

    results = _with_kernel(db_url, migrate, registry)
    if as_json:
        print_json(results)
    else:
        _print(results, workflow)
    if any(result["status"] == "refused" for result in results):
        raise SystemExit(1)


def _the_workflow(workflows: list[Workflow], workflow_id: str | None, source: str) -> Workflow:
    ids = sorted(workflow.id for workflow in workflows)
    if workflow_id is not None:
        for workflow in workflows:
            if workflow.id == workflow_id:
                return workflow
        raise click.BadParameter(f"{source} has no workflow {workflow_id!r} (it has {ids})")
    if len(workflows) != 1:
        raise click.UsageError(f"{source} holds workflows {ids}: pick one with --workflow")
    return workflows[0]


async def _migrate_each(
    kernel: Kernel, workflow: Workflow, run_ids: tuple[str, ...], from_stage: str | None
) -> list[dict[str, Any]]:
    from wfc.errors import MigrationRefusedError, RecordNotFoundError, StageNotFoundError
    from wfc.runtime.kernel.migrate import migrate_run
    from wfc.runtime.kernel.plans import keep_plan
    from wfc.runtime.run_ids import resolve_run_id

    deps = kernel.deps
    # Every id (or unique prefix) resolved before anything moves: a typo refuses it all.
    run_ids = tuple([await resolve_run_id(deps.persistence, typed) for typed in run_ids])
    await keep_plan(deps, workflow.id)  # the new plan is stored, so workers and diffs know it
    if not run_ids:
        found = await deps.persistence.runs_to_adopt(
            [workflow.id], [workflow.plan.fingerprint], MIGRATE_ALL_LIMIT
        )
        run_ids = tuple(run.id for run in found)
    results: list[dict[str, Any]] = []
    for run_id in run_ids:
        try:
            dropped = await migrate_run(deps, run_id, workflow, from_stage)
        except (MigrationRefusedError, RecordNotFoundError) as error:
            reason = error.reason if isinstance(error, MigrationRefusedError) else str(error)
            results.append({"run_id": run_id, "status": "refused", "reason": reason})
        except StageNotFoundError as error:
            raise click.BadParameter(str(error), param_hint="--from") from None
        else:
            results.append({"run_id": run_id, "status": "migrated", "dropped_stages": dropped})
    return results


def _print(results: list[dict[str, Any]], workflow: Workflow) -> None:
    if not results:
        click.echo(f"no unfinished run of {workflow.id} is on another plan")
        return
    for result in results:
        if result["status"] == "migrated":
            dropped = result["dropped_stages"]
            rerun = f" (running again: {', '.join(dropped)})" if dropped else ""
            click.echo(f"migrated {result['run_id']} to {workflow.plan.fingerprint}{rerun}")
        else:
            click.echo(f"refused {result['run_id']}: {result['reason']}", err=True)
