"""The public API is exactly what `__all__` lists, and the compiler and kernel stay apart."""

from __future__ import annotations

import importlib
import subprocess
import sys
from types import ModuleType

import pytest


def public_names(module: ModuleType) -> set[str]:
    return {
        name
        for name in vars(module)
        if not name.startswith("_")
        and name != "annotations"
        and not isinstance(getattr(module, name), ModuleType)
    }


@pytest.mark.parametrize("name", ["wfc.runtime", "wfc.testing", "wfc.runtime.adapters.memory"])
def test_all_lists_every_public_name(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == public_names(module)


@pytest.mark.parametrize(
    ("imported", "forbidden"),
    [
        ("wfc.runtime.kernel", "wfc.compiler"),
        ("wfc.testing", "wfc.compiler"),
        ("wfc.compiler.driver", "wfc.runtime.kernel"),
    ],
)
def test_the_compiler_and_the_kernel_do_not_import_each_other(
    imported: str, forbidden: str
) -> None:
    code = f"import sys, {imported}; print(any(m.startswith('{forbidden}') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
