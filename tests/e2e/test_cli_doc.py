"""`docs/cli.md` stays true: its runnable blocks run, and it names every command and option.

A block marked `<!-- runnable -->` is a list of `wfc …` lines, run in order in a copy of
`examples/documents`; `<!-- runnable: NAME -->` marks a file written there first.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import click

from tests.conftest import EXAMPLES
from tests.e2e.workers import environment, wfc
from wfc.cli import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
BLOCK = re.compile(r"<!-- runnable(?:: (?P<file>\S+))? -->\n```\w*\n(?P<body>.*?)```", re.S)


def runnable_blocks() -> list[tuple[str | None, str]]:
    return [(found["file"], found["body"]) for found in BLOCK.finditer(DOC.read_text())]


def test_every_runnable_command_line_of_the_cli_doc_succeeds(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLES / "documents", project)
    env = environment("", tmp_path / "ledger")
    env.pop("WFC_DATABASE_URL")
    lines = 0
    for file, body in runnable_blocks():
        if file is not None:
            (project / file).write_text(body)
            continue
        for line in body.splitlines():
            if not line.startswith("wfc "):
                continue
            result = wfc(*shlex.split(line)[1:], env=env, cwd=project)
            assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
            assert "Traceback" not in result.stderr
            lines += 1
    assert lines >= 5 and (project / ".wfc" / "wfc.db").is_file()


def _commands(command: click.Command, path: tuple[str, ...]) -> list[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        return [
            found
            for name, sub in sorted(command.commands.items())
            for found in _commands(sub, (*path, name))
        ]
    return [(" ".join(path), command)]


def _mentions(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_the_cli_doc_names_every_command_and_option() -> None:
    text = DOC.read_text()
    missing = []
    for path, command in _commands(cli, ("wfc",)):
        last = path.split()[-1]
        if f"`{path}" not in text and not re.search(rf"`{last}\b", text):
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                names = [name for name in param.opts if name.startswith("--")]
                if names and not any(_mentions(text, name) for name in names):
                    missing.append(f"{path} {names[0]}")
    assert missing == []
