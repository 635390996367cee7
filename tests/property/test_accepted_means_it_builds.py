"""Hypothesis: any workflow the checker accepts compiles to a package that imports, passes
`mypy --strict` and `ruff check`.

The names are drawn where the generated code trips: keywords, builtins, the names
the templates import (`Field`, `Stage`, `StageContext`), context members (`metric`),
case variants that codegen folds into one class name (`load_data`, `loadData`),
standard-library modules (`json`), `str` methods (`upper`) as enum members. A
checker that lets one through fails here with the workflow that broke.

mypy is slow, so one example is a batch of workflows, compiled side by side and
checked by one mypy run. CI runs `WFC_BUILD_BATCHES` batches (default 1) of
`WFC_BUILD_BATCH_SIZE` workflows (default 20, of which about a quarter pass the checker); for a longer hunt:

    WFC_BUILD_BATCHES=20 WFC_BUILD_BATCH_SIZE=40 \\
        .venv/bin/python -m pytest tests/property/test_accepted_means_it_builds.py \\
        -p no:cacheprovider --timeout 0
"""

from __future__ import annotations

import keyword
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wfc.compiler.diagnostics import Severity
from wfc.compiler.driver import compile_path

ROOT = Path(__file__).resolve().parents[2]
BATCHES = int(os.environ.get("WFC_BUILD_BATCHES", "1"))
BATCH_SIZE = int(os.environ.get("WFC_BUILD_BATCH_SIZE", "20"))

TRICKY = [
    *keyword.kwlist,
    *("str", "int", "float", "bool", "list", "dict", "tuple", "type", "object", "property"),
    *("id", "len", "print", "self", "cls", "None", "True"),
    *("Field", "Stage", "StageContext", "BaseModel", "Workflow", "StrEnum", "Literal", "Any"),
    *("CheckContext", "AsyncStage", "ItemResult", "Url", "Email", "BlobRef", "JsonValue"),
    *("metric", "artifact", "log", "ai", "blobs", "input", "config", "item", "check", "run"),
    *("json", "email", "os", "sys", "typing", "pydantic", "wfc", "annotations", "workflow"),
    *("datetime", "date", "time", "load_data", "loadData", "LoadData", "load__data", "a_"),
    *("a", "A", "s", "S", "s_check", "SStage", "SContext", "SInput", "WorkflowInput"),
    *("name", "value", "mro", "upper", "title", "count", "model_config", "model_fields"),
]
_plain = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True) | st.from_regex(
    r"[A-Z][A-Za-z0-9]{0,5}", fullmatch=True
)
# One name in eight is a tricky one: with more, nearly every workflow is refused and the
# batch would hold little for mypy to check.
names = st.one_of(*[_plain] * 7, st.sampled_from(TRICKY))
# Enum members meet `str`'s own methods (`upper`, `title`) and enum's own names: one in
# three is one of those.
_STR_NAMES = sorted({n for n in dir(str) if not n.startswith("_")} | {"name", "value", "mro"})
member_names = st.one_of(_plain, _plain, st.sampled_from(_STR_NAMES), st.sampled_from(TRICKY))
SCALARS = ["int", "str", "float", "bool", "datetime", "date", "url", "email", "json", "blob"]


@st.composite
def field_lists(draw: st.DrawFn, types: list[str]) -> str:
    fields = []
    for _ in range(draw(st.integers(1, 3))):
        ftype = draw(st.sampled_from(types))
        ftype = draw(st.sampled_from([ftype, f"list[{ftype}]", f"{ftype}?", f"map[{ftype}]"]))
        extra = ""
        if ftype == "int":
            extra = draw(st.sampled_from(["", " (>= 0)", " = 3", " (0 .. 9) = 1"]))
        fields.append(f"{draw(names)}: {ftype}{extra}")
    return ", ".join(fields)


@st.composite
def workflows(draw: st.DrawFn) -> str:
    types = list(SCALARS)
    lines = []
    if draw(st.booleans()):
        enum = draw(names)
        members = draw(st.lists(member_names, min_size=1, max_size=3))
        lines.append(f"  enum {enum} {{ {', '.join(members)} }}")
        types.append(enum)
    if draw(st.booleans()):
        record = draw(names)
        lines.append(f"  type {record} {{ {draw(field_lists(list(types)))} }}")
        types.append(record)
    lines.append(f"  input {{ {draw(field_lists(types))} }}")
    stage_ids = draw(st.lists(names, min_size=1, max_size=3))
    for i, sid in enumerate(stage_ids):
        kind = "async stage" if draw(st.booleans()) else "stage"
        poll = " poll every 1m" if kind == "async stage" else ""
        needs = f" input none needs {stage_ids[i - 1]}" if i and draw(st.booleans()) else ""
        lines.append(f"  {kind} {sid} {{{needs} output {{ {draw(field_lists(types))} }}{poll} }}")
    lines.append("  flow " + " -> ".join(stage_ids))
    return f"workflow {draw(names)} {{\n" + "\n".join(lines) + "\n}\n"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)


@settings(
    max_examples=BATCHES,
    deadline=None,
    derandomize=BATCHES == 1,  # CI: the same batch each run, so a red build is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(workflows(), min_size=BATCH_SIZE, max_size=BATCH_SIZE))
def test_what_the_checker_accepts_builds(sources: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out, packages, accepted = Path(tmp), list[str](), dict[str, str]()
        for i, source in enumerate(sources):
            path = out / "sources" / f"w{i}.wf"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source, encoding="utf-8")
            result = compile_path(path, out / "pending")  # never raises, whatever the source
            if not result.ok or result.workflow is None:
                assert any(d.severity is Severity.ERROR for d in result.diagnostics)
                continue
            package = result.workflow.id
            if package.lower() in {p.lower() for p in packages}:
                continue  # two packages of one name cannot sit side by side
            compile_path(path, out / "packages" / package)
            packages.append(package)
            accepted[package] = source
        assume(packages)  # a batch the checker refused whole builds nothing to check
        where = out / "packages"
        imports = "; ".join(f"import {p}" for p in packages)
        imported = _run([sys.executable, "-c", imports], where)
        assert imported.returncode == 0, (imported.stderr[-2000:], accepted)
        mypy_args = ["--strict", "--no-incremental", "--cache-dir", str(out / ".mypy")]
        mypy_args += ["--config-file", str(ROOT / "pyproject.toml"), *packages]
        mypy = _run([sys.executable, "-m", "mypy", *mypy_args], where)
        assert mypy.returncode == 0, (mypy.stdout[-3000:], accepted)
        ruff = _run(
            [
                sys.executable,
                "-m",
                "ruff",
                "check",
                "--no-cache",
                "--config",
                str(ROOT / "examples" / "ruff.toml"),
                *packages,
            ],
            where,
        )
        assert ruff.returncode == 0, (ruff.stdout[-3000:], accepted)
