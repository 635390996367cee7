"""The compiler: `.wf` source → AST → checked model → Plan + generated files.

Phases live in their own modules and run in this order: `loader` with
`parser`/`yaml_front` (text → AST, imports followed), `checks` (names, types,
graph), `lower` (→ Plan), `codegen` (→ files), `stubs` (user code still fits).
`driver` strings them together. The compiler never imports the runtime kernel.
"""

from __future__ import annotations

from wfc.compiler.diagnostics import CompileError, Diagnostic, Severity
from wfc.compiler.driver import CheckResult, CompileResult, check_paths, compile_path

__all__ = [
    "CheckResult",
    "CompileError",
    "CompileResult",
    "Diagnostic",
    "Severity",
    "check_paths",
    "compile_path",
]
