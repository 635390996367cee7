"""Every `wfc …` line of the shell blocks of README.md and docs/*.md is a real command line.

Each line is parsed by the CLI's own click parser, without running it: every subcommand and
option it names must exist (and not be a hidden, deprecated spelling), with no argument too
many and none missing. Then the lines of every `sh`/`console` block run for real, in order, on
SQLite, in process, in a copy of `examples/documents` (`pipeline.wf`) holding the page's
`file:` blocks and an upgraded database, and must exit 0, except in a block marked `<!-- not run: REASON -->` (a worker or the
dashboard that run until stopped, PostgreSQL, a run id from earlier output, …) or
`<!-- runnable -->` (docs/cli.md's, which `test_cli_doc.py` runs). The marks are described
in `tests/doc_blocks.py`.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.conftest import EXAMPLES
from tests.doc_blocks import PAGES, Block, blocks
from wfc.cli import cli

_SHELL = ("sh", "console")
_SEPARATORS = {"|", "||", "&", "&&", ";"}


def command_lines(block: Block) -> list[list[str]]:
    """The arguments after `wfc` of each `wfc` command in the block (a `$ ` prompt, a trailing
    comment, `VAR=value` before it and what follows a pipe or `&` left out)."""
    found = []
    for line in block.body.replace("\\\n", " ").splitlines():
        words = shlex.shlex(line.strip().removeprefix("$ "), posix=True, punctuation_chars=True)
        words.whitespace_split = True
        tokens = list(words)
        while tokens and "=" in tokens[0] and not tokens[0].startswith("-"):
            tokens.pop(0)  # an environment variable set for the command
        if not tokens or tokens[0] != "wfc":
            continue
        end = next((i for i, t in enumerate(tokens) if t in _SEPARATORS), len(tokens))
        found.append(tokens[1:end])
    return found


def _shell_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.language in _SHELL and command_lines(b)]


def _hidden_options(command: click.Command, args: list[str]) -> list[str]:
    hidden = {
        opt for p in command.params if isinstance(p, click.Option) and p.hidden for opt in p.opts
    }
    return [arg for arg in args if arg.split("=", 1)[0] in hidden]


def parse_only(
    command: click.Command, args: list[str], parent: click.Context | None = None
) -> None:
    """Parse `args` as click would for `command`, down to the subcommand, running nothing:
    a `click.UsageError` for an unknown command or option, a hidden option, an argument too
    many or a required one missing."""
    ctx = click.Context(command, info_name=command.name, parent=parent)
    values, rest, _ = command.make_parser(ctx).parse_args(args=list(args))
    hidden = _hidden_options(command, args[: len(args) - len(rest)])
    if hidden:
        raise click.UsageError(f"{hidden[0]} is hidden (a deprecated spelling)")
    if isinstance(command, click.Group):
        if not rest:
            return
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            raise click.UsageError(f"no command {rest[0]!r} in `{command.name}`")
        parse_only(sub, rest[1:], ctx)
        return
    if rest:
        raise click.UsageError(f"unexpected extra arguments {rest}")
    for param in command.params:
        given = values.get(param.name)  # a str or a tuple when given, else None or click's UNSET
        if (
            isinstance(param, click.Argument)
            and param.required
            and not isinstance(given, str | tuple)
        ):
            raise click.UsageError(f"missing argument {param.human_readable_name}")


@pytest.mark.parametrize("block", _shell_blocks(), ids=lambda b: b.where)
def test_every_command_line_of_the_docs_parses(block: Block) -> None:
    for args in command_lines(block):
        try:
            parse_only(cli, args)
        except click.UsageError as error:
            pytest.fail(f"{block.where}: `wfc {shlex.join(args)}`: {error.format_message()}")


def test_the_parser_check_refuses_what_click_refuses() -> None:
    good = ["runs", "show", "RUN_ID", "--logs"]
    parse_only(cli, good)
    for bad in (
        ["runs", "show", "RUN_ID", "--log"],  # no such option
        ["runz", "list"],  # no such command
        ["diff", "a", "b", "c"],  # an argument too many
        ["check", "--format", "json"],  # PATHS missing
        ["db", "upgrade", "--url", "x"],  # hidden: the old spelling of --db
    ):
        with pytest.raises(click.UsageError):
            parse_only(cli, bad)


def _project(page: Path, tmp_path: Path) -> Path:
    project = tmp_path / page.stem
    shutil.copytree(EXAMPLES / "documents", project)
    for block in blocks(page):
        if block.file_name is not None:
            (project / block.file_name).write_text(block.body, encoding="utf-8")
    return project


def _runnable(block: Block) -> bool:
    return block.mark is None or not block.mark.startswith(("not run:", "runnable"))


def test_every_runnable_command_line_of_the_docs_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In process (click's runner), not a subprocess per line: a second each on a busy machine.
    monkeypatch.delenv("WFC_DATABASE_URL", raising=False)
    runner = CliRunner()
    ran = 0
    for page in PAGES:
        runnable = [b for b in blocks(page) if b.language in _SHELL and _runnable(b)]
        lines = [args for block in runnable for args in command_lines(block)]
        if not lines:
            continue
        monkeypatch.chdir(_project(page, tmp_path))
        # The pages after the quickstart speak of a project whose database exists.
        for args in [["db", "upgrade"], *lines]:
            result = runner.invoke(cli, args, env={"NO_COLOR": "1"})
            shown = f"{page.name}: wfc {shlex.join(args)}\n{result.output}"
            assert result.exception is None or isinstance(result.exception, SystemExit), shown
            assert result.exit_code == 0, shown
            ran += 1
    assert ran >= 10
