"""The project file: found walking up, its paths relative to it, and the precedence
--db > WFC_DATABASE_URL > project file > `.wfc/wfc.db`; read commands never create a database."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import EXAMPLES
from wfc.cli import cli
from wfc.cli.project import ProjectError, database_url, find_project, resolve_database

PACKAGE = EXAMPLES / "documents" / "document_processor"
DOC = '{"document": "Great product."}'


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A repository root (`.git`) holding a copy of the package; the tests work in
    `repo/sub/deeper`."""
    monkeypatch.delenv("WFC_DATABASE_URL", raising=False)
    (tmp_path / ".git").mkdir()
    shutil.copytree(PACKAGE, tmp_path / "document_processor")
    deeper = tmp_path / "sub" / "deeper"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    yield tmp_path


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


PYPROJECT = """
[project]
name = "orders"

[tool.wfc]
database = "state/wfc.db"
plans = ["document_processor"]

[tool.wfc.worker]
concurrency = 3
queues = ["default", "bulk"]
"""


def test_pyproject_is_found_walking_up_and_its_paths_are_relative_to_it(repo: Path) -> None:
    (repo / "pyproject.toml").write_text(PYPROJECT)
    project = find_project()
    assert project is not None and project.file == repo / "pyproject.toml"
    assert project.database == f"sqlite+aiosqlite:///{repo / 'state' / 'wfc.db'}"
    assert project.plans == (str(repo / "document_processor"),)
    assert (project.concurrency, project.queues) == (3, ("default", "bulk"))

    missing = invoke("runs", "list")  # a read: the file's database is not created
    assert missing.exit_code == 1
    assert f"no wfc database at {repo / 'state' / 'wfc.db'}; run `wfc db upgrade`" in missing.output
    assert not (repo / "state").exists()
    assert invoke("db", "upgrade").exit_code == 0
    created = invoke("runs", "create", "document_processor", "--input", DOC)  # plans from the file
    assert created.exit_code == 0, created.output
    listed = invoke("runs", "list")
    assert f"database {repo / 'state' / 'wfc.db'} (from {repo / 'pyproject.toml'})" in listed.output
    assert created.output.strip() in listed.output
    assert not (repo / "sub" / "deeper" / ".wfc").exists()
    as_json = invoke("runs", "list", "--json")  # JSON stays a list of runs
    assert [run["run_id"] for run in json.loads(as_json.output)] == [created.output.strip()]


def test_precedence_is_flag_then_environment_then_file_then_default(repo: Path) -> None:
    (repo / "wfc.toml").write_text('database = "from-file.db"\n')
    file_url = f"sqlite+aiosqlite:///{repo / 'from-file.db'}"
    assert resolve_database(None, None).url == file_url
    assert resolve_database("env.db", "environment").url == "sqlite+aiosqlite:///env.db"
    assert resolve_database("env.db", "environment").origin == "WFC_DATABASE_URL"
    assert resolve_database("flag.db", None).origin == "--db"
    (repo / "wfc.toml").unlink()
    assert resolve_database(None, None).url == "sqlite+aiosqlite:///.wfc/wfc.db"

    (repo / "wfc.toml").write_text('database = "from-file.db"\n')
    for db in ("from-file.db", "env.db", "flag.db"):
        assert invoke("db", "upgrade", "--db", str(repo / db)).exit_code == 0
    env = {"WFC_DATABASE_URL": str(repo / "env.db")}
    assert "(from WFC_DATABASE_URL)" in invoke("runs", "list", env=env).output
    flag = invoke("runs", "list", "--db", str(repo / "flag.db"), env=env)
    assert f"database {repo / 'flag.db'} (from --db)" in flag.output
    assert f"(from {repo / 'wfc.toml'})" in invoke("runs", "list").output


def test_wfc_toml_wins_over_pyproject_and_the_walk_stops_at_the_repository(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (repo / "pyproject.toml").write_text(PYPROJECT)
    (repo / "sub" / "wfc.toml").write_text('plans = ["../document_processor"]\n')
    project = find_project()
    assert project is not None and project.file == repo / "sub" / "wfc.toml"
    assert project.database is None  # the nearer file says nothing of it: the default
    assert project.plans == (str(repo / "sub" / ".." / "document_processor"),)
    (repo / "pyproject.toml").write_text('[project]\nname = "no wfc here"\n')
    (repo / "sub" / "wfc.toml").unlink()
    assert find_project() is None
    outside = tmp_path_factory.mktemp("outer")
    (outside / "wfc.toml").write_text('database = "x.db"\n')
    (outside / "repo" / ".git").mkdir(parents=True)
    assert find_project(outside / "repo") is None  # not above the repository's root


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            '[tool.wfc]\ndatabse = "x.db"\n',
            "unknown key 'databse' (known: database, plans, worker)",
        ),
        ("[tool.wfc]\ndatabase = 5\n", "database must be a string"),
        ('[tool.wfc]\nplans = "a.wf"\n', "plans must be a list of strings"),
        ("[tool.wfc]\nworker = 1\n", "[tool.wfc.worker] must be a table"),
        ("[tool.wfc.worker]\nconcurrency = 0\n", "concurrency must be a whole number"),
        ("[tool.wfc.worker]\nconcurency = 2\n", "[tool.wfc.worker] unknown key 'concurency'"),
        ('[tool.wfc]\ndatabase = "mysql://h/db"\n', "wfc cannot use a 'mysql' database"),
        ("[tool.wfc\n", "not valid TOML"),
    ],
)
def test_a_bad_project_file_is_one_line_naming_it_and_exit_2(
    repo: Path, text: str, says: str
) -> None:
    (repo / "pyproject.toml").write_text(text)
    with pytest.raises(ProjectError, match=None) as raised:
        find_project()
    assert says in raised.value.message and str(repo / "pyproject.toml") in raised.value.message
    result = invoke("runs", "list")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and says in result.output


def test_plans_and_worker_defaults_come_from_the_file_unless_given(repo: Path) -> None:
    (repo / "wfc.toml").write_text('[worker]\nconcurrency = 3\nqueues = ["bulk"]\n')
    from wfc.cli.worker_command import concurrency, queue_names

    ctx = param = None
    assert concurrency(ctx, param, None) == 3  # type: ignore[arg-type]
    assert concurrency(ctx, param, 7) == 7  # type: ignore[arg-type]
    assert queue_names(ctx, param, ()) == ("bulk",)  # type: ignore[arg-type]
    assert queue_names(ctx, param, ("x",)) == ("x",)  # type: ignore[arg-type]
    missing = invoke("runs", "create", "document_processor", "--input", DOC)
    assert missing.exit_code == 2 and "Missing option '--plan'" in missing.output


def test_database_urls_and_plain_paths() -> None:
    base = Path("/srv/app")
    assert database_url("wfc.db") == "sqlite+aiosqlite:///wfc.db"
    assert database_url("/data/wfc.db") == "sqlite+aiosqlite:////data/wfc.db"
    assert database_url("data/wfc.db", base) == "sqlite+aiosqlite:////srv/app/data/wfc.db"
    assert database_url("sqlite:///rel.db", base) == "sqlite:////srv/app/rel.db"
    assert database_url("sqlite+aiosqlite:////abs.db", base) == "sqlite+aiosqlite:////abs.db"
    pg = "postgresql+asyncpg://app:pw@db.internal:5432/wfc"
    assert database_url(pg, base) == pg
    assert database_url("postgres://h/db") == "postgres://h/db"


def test_wfc_db_takes_db_and_still_the_hidden_url(repo: Path) -> None:
    url = f"sqlite+aiosqlite:///{repo / 'a.db'}"
    assert invoke("db", "upgrade", "--db", url).exit_code == 0
    assert "(up to date)" in invoke("db", "current", "--url", url).output
    assert "--url" not in invoke("db", "upgrade", "--help").output
    assert "--db" in invoke("db", "current", "--help").output
