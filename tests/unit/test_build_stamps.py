"""A compiled `.wf` file is compiled again exactly when something it read or wrote moved."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wfc import build_stamps
from wfc.build_stamps import stamp_path, up_to_date
from wfc.compiler import compile_path, driver

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "invoices"


@pytest.fixture
def compiled(tmp_path: Path) -> Path:
    """The invoice example (a file importing another) copied and compiled once."""
    for name in ("invoice.wf", "common.wf"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    source = tmp_path / "invoice.wf"
    result = compile_path(source)
    assert result.ok and result.out_dir == tmp_path / "invoice"
    return source


def test_an_unchanged_file_needs_no_compile(compiled: Path) -> None:
    assert up_to_date(compiled) == compiled.parent / "invoice"
    assert stamp_path(compiled).parent.name == "__pycache__"


def _append(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")


CHANGES: dict[str, Callable[[Path], object]] = {
    "the file": lambda source: _append(source),
    "a file it imports": lambda source: _append(source.parent / "common.wf"),
    "a generated file": lambda source: _append(source.parent / "invoice" / "_models.py"),
    "a generated file deleted": lambda source: (source.parent / "invoice" / "plan.json").unlink(),
    "a stage's code": lambda source: _append(source.parent / "invoice" / "stages" / "tax.py"),
    "a stage's file deleted": lambda source: (
        source.parent / "invoice" / "stages" / "tax.py"
    ).unlink(),
    "the stamp unreadable": lambda source: stamp_path(source).write_text("{", encoding="utf-8"),
    "the stamp from another format": lambda source: stamp_path(source).write_text(
        json.dumps({**json.loads(stamp_path(source).read_text()), "format": 0}),
        encoding="utf-8",
    ),
}


@pytest.mark.parametrize("change", CHANGES)
def test_anything_moved_means_compile_again(compiled: Path, change: str) -> None:
    CHANGES[change](compiled)
    assert up_to_date(compiled) is None
    assert compile_path(compiled).ok
    assert up_to_date(compiled) == compiled.parent / "invoice"  # stamped again


def test_another_wfc_compiles_again(compiled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_stamps, "wfc_fingerprint", lambda: "another wfc")
    assert up_to_date(compiled) is None


def test_a_failed_compile_leaves_no_stamp(compiled: Path) -> None:
    source = compiled.read_text()
    compiled.write_text(source.replace("stage tax", "stage"), encoding="utf-8")
    assert not compile_path(compiled).ok
    assert not stamp_path(compiled).exists()
    compiled.write_text(source, encoding="utf-8")  # back as it was stamped: still compiled
    assert up_to_date(compiled) is None


def test_a_file_saved_during_the_compile_is_compiled_again(
    compiled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saved after the compiler read it, before the stamp: the stamp holds what was read."""
    checked_stubs = driver.check_stubs

    def then_saved(*args: Any, **kwargs: Any) -> Any:
        found = checked_stubs(*args, **kwargs)
        _append(compiled)
        _append(compiled.parent / "invoice" / "stages" / "tax.py")
        return found

    monkeypatch.setattr(driver, "check_stubs", then_saved)
    assert compile_path(compiled).ok
    assert up_to_date(compiled) is None


def test_an_import_through_a_link_pointed_elsewhere_is_compiled_again(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(EXAMPLE / "common.wf", tmp_path / name / "common.wf")
    _append(tmp_path / "b" / "common.wf")
    (tmp_path / "lib").symlink_to(tmp_path / "a")
    source = tmp_path / "invoice.wf"
    text = (EXAMPLE / "invoice.wf").read_text().replace('"common.wf"', '"lib/common.wf"')
    source.write_text(text, encoding="utf-8")
    assert compile_path(source).ok and up_to_date(source) is not None
    (tmp_path / "lib").unlink()
    (tmp_path / "lib").symlink_to(tmp_path / "b")
    assert up_to_date(source) is None


def test_a_check_writes_no_stamp(tmp_path: Path) -> None:
    source = tmp_path / "invoice.wf"
    for name in ("invoice.wf", "common.wf"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    compile_path(source, check=True)
    assert not stamp_path(source).exists()
    assert up_to_date(source) is None


def test_a_package_made_elsewhere_is_not_the_one_a_run_loads(tmp_path: Path) -> None:
    for name in ("invoice.wf", "common.wf"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    source = tmp_path / "invoice.wf"
    assert compile_path(source, tmp_path / "elsewhere").ok
    assert up_to_date(source) is None  # `wfc run` compiles into (and runs) ./invoice
