"""The project configuration, and which database a command uses.

A project keeps its settings in `[tool.wfc]` of its `pyproject.toml`, or at the
top level of a `wfc.toml`, found by walking up from the working directory; the
walk stops at the filesystem root or at a directory holding `.git`, `.hg` or
`.svn` (the repository's root is still read). In one directory `wfc.toml` wins,
and a `pyproject.toml` without `[tool.wfc]` is passed over::

    [tool.wfc]
    database = ".wfc/wfc.db"          # a URL, or a plain path: a SQLite file
    plans = ["workflows/orders.wf"]   # the default --plan

    [tool.wfc.worker]
    concurrency = 4
    queues = ["default", "bulk"]

Paths in the file (a plain database path, a SQLite URL's relative file, plans)
are relative to the file's directory, not the working directory. A value comes
from the command line first, then the environment (`WFC_DATABASE_URL`), then
the file, then the built-in default.

This module imports only click and the standard library at its top (SQLAlchemy's
URL parser is imported when a URL is checked), so `wfc --help` stays light.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from wfc.cli.number_options import BIGINT_MAX

CONFIG_FILE = "wfc.toml"
PYPROJECT = "pyproject.toml"
VCS_MARKERS = (".git", ".hg", ".svn")
DATABASE_VARIABLE = "WFC_DATABASE_URL"
DEFAULT_DATABASE_PATH = Path(".wfc") / "wfc.db"
"""`wfc.runtime.adapters.sql.engine.DEFAULT_SQLITE_PATH`, copied so that option parsing
needs no SQLAlchemy (tests/unit/test_cli_imports.py keeps them equal)."""
EXIT_USAGE = 2
_KEYS = ("database", "plans", "worker")
_WORKER_KEYS = ("concurrency", "queues")
_DRIVERS = {"sqlite": ("", "aiosqlite", "pysqlite"), "postgresql": ("", "asyncpg", "psycopg2")}
_SCHEMES = ("postgres", "postgresql", "sqlite")
URL_FORMS = (
    "sqlite+aiosqlite:///path/to/wfc.db, a plain file path, or postgresql+asyncpg://user@host/db"
)


class ProjectError(click.ClickException):
    """A configuration file, or a database URL, that cannot be used: one line, exit 2."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    """What a project file says, its paths made absolute."""

    file: Path
    database: str | None = None
    plans: tuple[str, ...] = ()
    concurrency: int | None = None
    queues: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class Database:
    """The database a command uses and where that choice came from."""

    url: str
    origin: str  # "--db", "WFC_DATABASE_URL", the project file's path, or "default"


def find_project(start: Path | None = None) -> Project | None:
    """The project file that applies in `start` (the working directory), or None."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        found = _project_in(directory)
        if found is not None:
            return found
        if any((directory / marker).exists() for marker in VCS_MARKERS):
            return None
    return None


def _project_in(directory: Path) -> Project | None:
    config = directory / CONFIG_FILE
    if config.is_file():
        return _parse(config, _read(config), "")
    pyproject = directory / PYPROJECT
    if pyproject.is_file():
        tool = _read(pyproject).get("tool", {})
        section = tool.get("wfc") if isinstance(tool, dict) else None
        if section is not None:
            if not isinstance(section, dict):
                raise ProjectError(f"{pyproject}: [tool.wfc] must be a table")
            return _parse(pyproject, section, "tool.wfc")
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ProjectError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except tomllib.TOMLDecodeError as error:
        raise ProjectError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise ProjectError(f"{path}: cannot read it: {error.strerror}") from None


def _parse(file: Path, table: dict[str, Any], section: str) -> Project:
    where = f"{file}: [{section}]" if section else f"{file}:"
    _known(table, _KEYS, where)
    database = table.get("database")
    if database is not None and not isinstance(database, str):
        raise ProjectError(f"{where} database must be a string (a URL or a SQLite file path)")
    worker = table.get("worker", {})
    in_worker = f"{file}: [{section + '.' if section else ''}worker]"
    if not isinstance(worker, dict):
        raise ProjectError(f"{in_worker} must be a table")
    _known(worker, _WORKER_KEYS, in_worker)
    concurrency = worker.get("concurrency")
    if concurrency is not None and (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= BIGINT_MAX  # past it, no database takes it as a LIMIT
    ):
        raise ProjectError(
            f"{in_worker} concurrency must be a whole number of at least 1 "
            f"(and at most {BIGINT_MAX})"
        )
    base = file.parent
    return Project(
        file=file,
        database=None if database is None else database_url(database, base, f"{file} database"),
        plans=tuple(str(_under(base, plan)) for plan in _strings(table, "plans", where)),
        concurrency=concurrency,
        queues=_strings(worker, "queues", in_worker),
    )


def _known(table: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ProjectError(f"{where} unknown key {unknown[0]!r} (known: {', '.join(keys)})")


def _strings(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ProjectError(f"{where} {key} must be a list of strings")
    return tuple(value)


def _under(base: Path, path: str) -> Path:
    given = Path(path).expanduser()
    return given if given.is_absolute() else base / given


def database_url(value: str, base: Path | None = None, what: str = "--db") -> str:
    """`value` as a database URL wfc can open: a plain path is a SQLite file; a relative
    SQLite file is taken relative to `base` when given. A URL of another database, or one
    that does not parse, is a `ProjectError` naming `what` and the forms wfc takes."""
    if "://" not in value:
        if not value.strip() or "\x00" in value:
            raise ProjectError(f"{what}: an empty path; use {URL_FORMS}")
        path = _under(base, value) if base is not None else Path(value).expanduser()
        return f"sqlite+aiosqlite:///{path}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    scheme = value.split("://", 1)[0]
    backend, _, driver = scheme.partition("+")
    backend = "postgresql" if backend == "postgres" else backend
    if backend not in _DRIVERS or driver not in _DRIVERS[backend]:
        raise ProjectError(f"{what}: wfc cannot use a {scheme!r} database; use {URL_FORMS}")
    try:
        parsed = make_url(value)
        if parsed.port is not None and not 0 < parsed.port < 2**16:
            raise ValueError(f"port {parsed.port} is out of range")
        if backend == "sqlite":
            from wfc.runtime.adapters.sql.engine import sqlite_synchronous

            sqlite_synchronous(parsed)  # a durability it does not know is refused here
    except (ArgumentError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ProjectError(f"{what}: not a database URL ({reason}); use {URL_FORMS}") from None
    database = parsed.database
    if backend == "sqlite" and base is not None and database and database != ":memory:":
        parsed = parsed.set(database=str(_under(base, database)))
        return parsed.render_as_string(hide_password=False)
    return value


def resolve_database(given: str | None, source: str | None) -> Database:
    """The database of a command: `given` (from --db, or `source` "environment" when it came
    from WFC_DATABASE_URL), else the project file's, else `.wfc/wfc.db` here."""
    if given is not None:
        from_env = source == "environment"
        origin = DATABASE_VARIABLE if from_env else "--db"
        return Database(url=database_url(given, None, origin), origin=origin)
    project = find_project()
    if project is not None and project.database is not None:
        return Database(url=project.database, origin=str(project.file))
    return Database(url=f"sqlite+aiosqlite:///{DEFAULT_DATABASE_PATH}", origin="default")


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL or an in-memory database), without
    SQLAlchemy: the URLs here have been through `database_url`."""
    scheme, _, rest = url.partition("://")
    if not scheme.startswith("sqlite"):
        return None
    path = rest[1:].split("?", 1)[0] if rest.startswith("/") else ""
    return None if path in ("", ":memory:") else Path(path)


def shown(url: str) -> str:
    """`url` for people: a SQLite file as its absolute path, another URL without password."""
    path = sqlite_path(url)
    if path is not None:
        return str(path.resolve() if not path.is_absolute() else path)
    from wfc.runtime.adapters.sql import redact

    return redact(url)


def plans_or_project(given: tuple[str, ...], *, required: bool) -> tuple[str, ...]:
    """`--plan` as given, else the project's `plans`; none at all is a usage error when
    `required`."""
    if given:
        return given
    project = find_project()
    if project is not None and project.plans:
        return project.plans
    if required:
        raise click.UsageError(
            "Missing option '--plan' (or list them as `plans` in [tool.wfc] of pyproject.toml, "
            "or in wfc.toml)"
        )
    return ()
