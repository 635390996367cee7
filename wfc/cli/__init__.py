"""The `wfc` command line. Each command group lives in its own module.

Start-up is kept short by one rule: a module that defines commands imports at
its top only click, the standard library and other such modules; everything
heavy (the compiler, the runtime and its hosts, SQLAlchemy and Alembic, rich)
is imported inside the command function, or the helper, that uses it, and
names needed only in annotations are imported under `TYPE_CHECKING`. So
`wfc --help` loads click alone, and `wfc check` loads the compiler but not the
database stack. Modules that only command functions import (`display`,
`logs`) import what they need at the top. `tests/unit/test_cli_imports.py`
keeps the rule, and `benchmarks/cli_startup.py` measures it.
"""

from __future__ import annotations

import click

from wfc import __version__
from wfc.cli.compiler_commands import check_command, compile_command, diff_command, graph_command
from wfc.cli.db_commands import db_group
from wfc.cli.fleet import workers_group
from wfc.cli.limits_command import limits_group
from wfc.cli.migrate_command import migrate_command
from wfc.cli.retention_command import prune_command
from wfc.cli.run_command import run_command
from wfc.cli.runs_commands import maintenance_group, runs_group
from wfc.cli.schedules_command import schedules_group
from wfc.cli.signal_command import signal_command
from wfc.cli.ui_command import ui_command
from wfc.cli.watch_commands import logs_command, watch_command
from wfc.cli.worker_command import worker_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wfc")
def cli() -> None:
    """wfc: compile workflow definitions and run them durably."""


cli.add_command(compile_command)
cli.add_command(check_command)
cli.add_command(graph_command)
cli.add_command(diff_command)
cli.add_command(db_group)
cli.add_command(run_command)
runs_group.add_command(prune_command)
runs_group.add_command(migrate_command)
runs_group.add_command(signal_command)
runs_group.add_command(watch_command)
runs_group.add_command(logs_command)
cli.add_command(runs_group)
cli.add_command(maintenance_group)
cli.add_command(worker_command)
cli.add_command(workers_group)
cli.add_command(limits_group)
cli.add_command(schedules_group)
cli.add_command(ui_command)


def main() -> None:
    """Console-script entry point."""
    cli()
