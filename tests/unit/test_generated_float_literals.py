"""Large and small floats in generated code are written as `ruff format` writes them.

Python's `repr(1e16)` is `1e+16`, which `ruff format` rewrites to `1e16`: a workflow with
`x: float (<= 1e20)` or a default of `1e16` compiled into a `_models.py` that failed
`ruff format --check`, which the generated code promises to pass.
"""

from __future__ import annotations

from pathlib import Path

from tests.ruff_runs import ruff
from wfc.compiler.driver import compile_path


def test_floats_with_an_exponent_are_ruff_formatted(tmp_path: Path) -> None:
    source = tmp_path / "floats.wf"
    source.write_text(
        "workflow floats {\n"
        "  input { big: float (<= 1e20) = 1e16, small: float (>= 1e-05) = 0.5 }\n"
        "  output { y: str }\n"
        "  stage s { input none output { y: str } config { c: float = 1.5e300 } }\n"
        "  flow s\n"
        "}\n",
        encoding="utf-8",
    )
    out = tmp_path / "floats"
    assert compile_path(source, out).ok
    models = (out / "_models.py").read_text(encoding="utf-8")
    assert "default=1e16, le=1e20" in models and "c: float = 1.5e300" in models, models
    fmt = ruff("format", "--isolated", "--check", str(out))
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
