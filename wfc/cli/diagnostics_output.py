"""Printing the compiler's diagnostics, for every command that shows them (`wfc compile`,
`check`, `diff`, and the runtime commands that compile a `.wf` on the way)."""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from wfc.compiler.diagnostics import Diagnostic

Format = Literal["text", "json", "github"]


def _use_colour(stream: IO[str]) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def emit(diagnostics: list[Diagnostic], fmt: Format, stream: IO[str]) -> None:
    """Write diagnostics in the chosen format."""
    from wfc.compiler.diagnostics import render_text, to_github, to_json

    if fmt == "json":
        stream.write(to_json(diagnostics))
    elif fmt == "github":
        stream.write(to_github(diagnostics))
    elif diagnostics:
        stream.write(render_text(diagnostics, colour=_use_colour(stream)))
