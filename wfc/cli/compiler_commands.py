"""`wfc compile`, `wfc check`, `wfc graph` and `wfc diff`.

Exit codes: 0 clean (warnings allowed), 1 errors or stale files (for `wfc diff`:
a change that is not safe for the runs in flight), 2 usage.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from wfc.cli.diagnostics_output import Format, emit

if TYPE_CHECKING:
    from wfc.plan import Plan


_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="How to print diagnostics: for people, for tools, or as GitHub annotations.",
)


@click.command("compile")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Package directory to write.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any file would change.")
@_format_option
def compile_command(source: Path, out: Path | None, check: bool, fmt: Format) -> None:
    """Check SOURCE and generate its package: models, stage contexts, stubs and plan.json."""
    from wfc.compiler import compile_path

    result = compile_path(source, out, check=check)
    if fmt != "text":  # tools get the stale files as diagnostics, in the one format they read
        from wfc.compiler.driver import stale_diagnostic

        stale = [] if not result.ok else [stale_diagnostic(p, source) for p in result.stale]
        emit([*result.diagnostics, *(stale if check else [])], fmt, sys.stdout)
        sys.exit(1 if not result.ok or (check and stale) else 0)
    emit(result.diagnostics, fmt, sys.stderr)
    if not result.ok:
        sys.exit(1)
    if check:
        if result.stale:
            click.echo(
                "these files would change; run `wfc compile " + source.as_posix() + "`:", err=True
            )
            for path in result.stale:
                click.echo(f"  {path.as_posix()}", err=True)
            sys.exit(1)
        return
    if fmt == "text":
        target = result.out_dir.as_posix() if result.out_dir else "?"
        changed = len(result.written)
        click.echo(
            f"compiled {source.as_posix()} → {target}/ ({changed} file(s) written)", err=True
        )
        for stub in result.created_stubs:
            click.echo(f"  new stub: {stub.as_posix()}", err=True)


@click.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_format_option
def check_command(paths: tuple[Path, ...], fmt: Format) -> None:
    """Check workflow files and directories: definitions, generated code, stubs."""
    from wfc.compiler import check_paths

    result = check_paths(paths)
    emit(result.diagnostics, fmt, sys.stdout)
    if fmt == "text" and not result.diagnostics:
        click.echo(f"checked {len(result.files)} file(s): no problems")
    sys.exit(0 if result.ok else 1)


def load_plan_for(source: Path) -> Plan:
    """The plan of a `.wf` source (compiled in memory) or of a `plan.json` file."""
    from pydantic import ValidationError

    from wfc.compiler import compile_path
    from wfc.plan import Plan

    if source.suffix == ".json":
        try:
            return Plan.from_json(source.read_bytes())
        except (OSError, ValidationError) as error:
            raise click.ClickException(
                f"{source.as_posix()} is not a readable plan: {error}"
            ) from error
    result = compile_path(source, check=True)
    if result.plan is None:
        emit(result.diagnostics, "text", sys.stderr)
        sys.exit(1)
    return result.plan


@click.command("graph")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
def graph_command(source: Path, fmt: str) -> None:
    """Print the flow of SOURCE (.wf or plan.json) as Mermaid or DOT."""
    from wfc.compiler.graph_render import to_dot, to_mermaid

    plan = load_plan_for(source)
    click.echo(to_mermaid(plan) if fmt == "mermaid" else to_dot(plan), nl=False)


@click.command("diff")
@click.argument("old")
@click.argument("new")
@click.option(
    "--workflow",
    "workflow_id",
    metavar="ID",
    help="The workflow to compare, where a side holds several (a directory of them).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="How to print the changes: for people, for tools, or as GitHub annotations.",
)
@click.option(
    "--db",
    "db_url",
    envvar="WFC_DATABASE_URL",
    default=None,
    help="Where a side given as a plan fingerprint (sha256:…) is read from: the plans runs "
    "were created with are stored there (default: the embedded SQLite file .wfc/wfc.db).",
)
def diff_command(
    old: str, new: str, workflow_id: str | None, fmt: Format, db_url: str | None
) -> None:
    """Compare two versions of a workflow: is each change safe for the runs in flight?

    Each side is a .wf/.wf.yaml source, a compiled package directory, a plan.json,
    a directory holding sources or packages (pick one with --workflow), or the
    fingerprint of a plan runs were created with (`sha256:…`, from `wfc runs show
    --json`), read from the database. Every
    change is listed with its verdict for the runs created with OLD: compatible,
    breaking, or breaking if started (only for runs that have started the stages
    named), at its file:line:col when a side is a source.

    Exit codes: 0 no breaking change, 1 a breaking change, 2 usage (a path that
    does not exist, a source that does not compile). See docs/upgrades.md.
    """
    from wfc.compiler.diff import LoadError, diff_plans, load_side
    from wfc.compiler.diff.render import to_github, to_json, to_text

    stored = _stored_plans([spec for spec in (old, new) if spec.startswith("sha256:")], db_url)
    sides = []
    for spec in (old, new):
        try:
            sides.append(load_side(spec, workflow_id, stored=stored.get))
        except LoadError as error:
            if error.diagnostics:
                emit(
                    error.diagnostics,
                    "github" if fmt == "github" else "text",
                    sys.stdout if fmt == "github" else sys.stderr,
                )
            click.echo(f"error: {error.message}", err=True)
            sys.exit(2)
    before, after = sides
    diff = diff_plans(
        before.plan, after.plan, old_source=before.locations, new_source=after.locations
    )
    if fmt == "json":
        click.echo(to_json(diff, before, after), nl=False)
    elif fmt == "github":
        click.echo(to_github(diff), nl=False)
    else:
        click.echo(to_text(diff, before, after), nl=False)
    sys.exit(0 if diff.compatible else 1)


def _stored_plans(fingerprints: list[str], db_url: str | None) -> dict[str, Plan]:
    """The stored plans of these fingerprints (none asked: no database is opened)."""
    if not fingerprints:
        return {}
    import asyncio

    from wfc.cli.session import opened_storage
    from wfc.plan import Plan

    async def read() -> dict[str, Plan]:
        found: dict[str, Plan] = {}
        async with opened_storage(db_url) as storage:
            for fingerprint in fingerprints:
                kept = await storage.persistence.get_plan(fingerprint)
                if kept is not None:
                    found[fingerprint] = Plan.from_json(kept.plan)
        return found

    return asyncio.run(read())
