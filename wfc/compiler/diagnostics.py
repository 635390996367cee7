"""Diagnostics: what the compiler says about a source, as data, rendered in one place.

Every problem the compiler finds in user input is a `Diagnostic` with a stable
code (`WF1xx` syntax, `WF2xx` names, `WF3xx` types and stubs, `WF4xx` graph,
`WF9xx` internal), a primary span saying what is wrong *here*, secondary labels
saying where the other half was declared, and a `help` line giving the fix.
Rendering (`render_text`, `to_json`, `to_github`) never decides anything.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from wfc.compiler.source import SourceFile, Span


class Severity(StrEnum):
    """Errors fail `wfc check`; warnings are shown but exit 0."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class Label:
    """A secondary span with a short note, e.g. "`fetch` produces `Page` here"."""

    span: Span
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    """One problem in one place. `span` is None only for problems with no source (a missing file)."""

    code: str
    message: str
    span: Span | None = None
    path: str | None = None
    severity: Severity = Severity.ERROR
    label: str = ""
    labels: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    help: str | None = None

    @property
    def location(self) -> str:
        """`file:line:col`, or just the file when there is no span."""
        if self.span is not None:
            return self.span.location
        return self.path or "<input>"

    def sort_key(self) -> tuple[str, int, str]:
        """Order by file, then position, then code, so output is stable."""
        if self.span is None:
            return (self.path or "", -1, self.code)
        return (self.span.file.display_name, self.span.start, self.code)


class CompileError(Exception):
    """Raised when a source has errors; carries every diagnostic found, not just the first."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        first = self.diagnostics[0] if self.diagnostics else None
        summary = f"{first.location}: {first.message}" if first else "compilation failed"
        more = len(self.diagnostics) - 1
        super().__init__(summary + (f" (and {more} more)" if more > 0 else ""))


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by place and deduplicated: the same code at the same span is said once."""
    seen: set[tuple[str, int, str, str]] = set()
    unique: list[Diagnostic] = []
    for diag in sorted(diagnostics, key=Diagnostic.sort_key):
        key = (*diag.sort_key(), diag.message)
        if key not in seen:
            seen.add(key)
            unique.append(diag)
    return unique


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """`did you mean `x`?` for the nearest candidate, or None when nothing is close.

    Here rather than with the check passes because the front ends (the YAML
    one names unknown keys) need it too, and they sit below the passes.
    """
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


# -- text ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Style:
    """ANSI styles, empty when colour is off."""

    error: str = ""
    warning: str = ""
    note: str = ""
    bold: str = ""
    reset: str = ""


_COLOUR = _Style("\x1b[1;31m", "\x1b[1;33m", "\x1b[1;34m", "\x1b[1m", "\x1b[0m")
_PLAIN = _Style()


@dataclass(frozen=True, slots=True)
class _Mark:
    """One underline: the primary span (`^`) or a label (`-`), with its message."""

    span: Span
    marker: str
    message: str


def _underline(mark: _Mark, text: str) -> str:
    """The underline row of `mark` under its line `text` (tabs expanded as the line is)."""
    line, col = mark.span.file.line_col(mark.span.start)
    end_line, end_col = mark.span.file.line_col(mark.span.end)
    width = (end_col - col) if end_line == line else (len(text) - col + 1)
    prefix = text[: col - 1].expandtabs(4)
    tail = f" {mark.message}" if mark.message else ""
    return " " * len(prefix) + mark.marker * max(width, 1) + tail


def _excerpts(marks: list[_Mark], gutter: int) -> list[str]:
    """The source lines of `marks` (all in one file) in file order, each shown once with the
    underline of every mark on it below, leftmost first.

    Multi-line spans are shown by their first line only, underlined to its end:
    the caret says where the problem starts, which is what an editor jumps to.
    """
    pad = " " * gutter
    lines: list[str] = []
    file = marks[0].span.file
    for line in sorted({file.line_col(m.span.start)[0] for m in marks}):
        on_line = sorted(
            (m for m in marks if file.line_col(m.span.start)[0] == line),
            key=lambda m: m.span.start,
        )
        text = file.line_text(line) if file.text else ""
        lines.append(f"{str(line).rjust(gutter)} | {text.expandtabs(4)}".rstrip())
        lines.extend(f"{pad} | {_underline(m, text)}".rstrip() for m in on_line)
    return lines


def render_one(diag: Diagnostic, *, colour: bool = False) -> str:
    """One diagnostic in the rustc style: header, location, excerpts in file order, help."""
    style = _COLOUR if colour else _PLAIN
    level_style = style.error if diag.severity is Severity.ERROR else style.warning
    lines = [
        f"{level_style}{diag.severity}[{diag.code}]{style.reset}{style.bold}: {diag.message}{style.reset}"
    ]
    marks = [_Mark(lab.span, "-", lab.message) for lab in diag.labels]
    if diag.span is not None:
        marks.insert(0, _Mark(diag.span, "^", diag.label))
    gutter = max((len(str(m.span.file.line_col(m.span.start)[0])) for m in marks), default=1)
    pad = " " * gutter
    lines.append(f"{pad}{style.note}-->{style.reset} {diag.location}")
    files: list[SourceFile] = []
    for mark in marks:
        if not any(mark.span.file is f for f in files):
            files.append(mark.span.file)
    for index, file in enumerate(files):
        in_file = [m for m in marks if m.span.file is file]
        if index == 0 and diag.span is not None:
            lines.append(f"{pad} |")
        else:
            lines.append(f"{pad}{style.note}::{style.reset} {in_file[0].span.location}")
        lines.extend(_excerpts(in_file, gutter))
    if marks:
        lines.append(f"{pad} |")
    for note in diag.notes:
        lines.append(f"{pad} = note: {note}")
    if diag.help:
        lines.append(f"{pad} = {style.note}help{style.reset}: {diag.help}")
    return "\n".join(lines)


def render_text(diagnostics: Sequence[Diagnostic], *, colour: bool = False, limit: int = 50) -> str:
    """All diagnostics, capped at `limit` with an `… and N more` line, then a summary."""
    shown = [render_one(d, colour=colour) for d in diagnostics[:limit]]
    if len(diagnostics) > limit:
        shown.append(f"… and {len(diagnostics) - limit} more")
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    warnings = len(diagnostics) - errors
    if diagnostics:
        shown.append(_summary(errors, warnings))
    return "\n\n".join(shown) + ("\n" if shown else "")


def _summary(errors: int, warnings: int) -> str:
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return "found " + " and ".join(parts)


# -- machine formats ---------------------------------------------------------


def _span_json(span: Span) -> dict[str, Any]:
    line, col = span.file.line_col(span.start)
    end_line, end_col = span.file.line_col(span.end)
    return {
        "file": span.file.display_name,
        "line": line,
        "column": col,
        "end_line": end_line,
        "end_column": end_col,
    }


def to_json(diagnostics: Sequence[Diagnostic]) -> str:
    """The same data as the text form, for tools: a JSON list, one object per diagnostic."""
    items = []
    for diag in diagnostics:
        items.append(
            {
                "code": diag.code,
                "severity": str(diag.severity),
                "message": diag.message,
                "location": _span_json(diag.span) if diag.span else {"file": diag.path},
                "label": diag.label or None,
                "labels": [{**_span_json(lab.span), "message": lab.message} for lab in diag.labels],
                "notes": list(diag.notes),
                "help": diag.help,
            }
        )
    return json.dumps(items, indent=2, ensure_ascii=False) + "\n"


def _escape_github(value: str, *, property_value: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def to_github(diagnostics: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands, so errors appear inline on the pull request."""
    lines = []
    for diag in diagnostics:
        props = {"title": f"{diag.code}"}
        if diag.span is not None:
            loc = _span_json(diag.span)
            props |= {"file": loc["file"], "line": str(loc["line"]), "col": str(loc["column"])}
            props |= {"endLine": str(loc["end_line"]), "endColumn": str(loc["end_column"])}
        elif diag.path:  # a whole file: annotated at its start, where GitHub can show it
            props |= {"file": diag.path, "line": "1", "col": "1"}
        message = diag.message + (f"\nhelp: {diag.help}" if diag.help else "")
        rendered = ",".join(
            f"{k}={_escape_github(v, property_value=True)}" for k, v in props.items()
        )
        lines.append(f"::{diag.severity} {rendered}::{_escape_github(message)}")
    return "\n".join(lines) + ("\n" if lines else "")
