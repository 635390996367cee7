"""Help lines in the spelling of the file they are about: `.wf` or `.wf.yaml`.

The check passes see one tree for both forms and write their help in `.wf`
syntax (`needs a`, `async stage s`, `flow a -> b`). A `.wf.yaml` author would
have to translate that back into keys, so once the passes are done, the help of
each diagnostic in a YAML file has its backquoted `.wf` snippets rewritten into
the YAML ones here. One table, in one place, rather than a second help string
at every call site: a check keeps saying its fix once, and a new check with
`needs x` in its help is spelt right in YAML without knowing YAML exists.
Snippets that read the same in both forms (`30s`, `x > 0`, the text inside a
`retry:` value) are left as they are.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from wfc.compiler.diagnostics import Diagnostic
from wfc.compiler.loader import YAML_SUFFIXES

# Whole snippets with a YAML shape of their own, tried before the keyword rule below.
_WHOLE: tuple[tuple[re.Pattern[str], str], ...] = (
    # Quoted in a list: a bare `a?` ends a YAML flow mapping (`{needs: a?}`) with an error.
    (re.compile(r"needs (\w+)\?"), r'needs: ["\1?"]'),
    (re.compile(r"async stage (\w+)"), r"async: true` on stage `\1"),
    (re.compile(r"stage (\w+) \{ output \{ … \} \}"), r"stages: {\1: {output: {…}}}"),
    (re.compile(r"enum (\w+) \{ ([^}]*?) \}"), r"enums: {\1: [\2]}"),
    (re.compile(r"type"), r"types: {Name: {…}}"),
    (re.compile(r"enum"), r"enums: {Name: [a, b]}"),
    (re.compile(r"import"), r"imports: [file.wf]"),
    (re.compile(r'import "([^"]*)"'), r"imports: [\1]"),
    (
        re.compile(r'ai "([^"]*)", temperature (\S+), max tokens (\d+)'),
        r"ai: {model: \1, temperature: \2, max_tokens: \3}",
    ),
    (re.compile(r"at most (\d+) at once"), r"at_most: \1` under `map:"),
    (re.compile(r"wait for (.*)"), r"wait_for: \1"),
)

# A stage or workflow key followed by its `.wf` value: `needs a` -> `needs: a`. The value is
# the `.wf` text in both forms (see docs/language.md, "The YAML keys at a glance").
_KEYWORD = re.compile(
    r"(flow|needs|input|output|config|retry|timeout|poll|priority|queue|concurrency|rate"
    r"|map|sleep|when) (.+)"
)

_SNIPPET = re.compile(r"`([^`]+)`")


def yaml_snippet(wf: str) -> str:
    """The YAML spelling of one backquoted `.wf` snippet (unchanged when it reads the same)."""
    for pattern, yaml in _WHOLE:
        if pattern.fullmatch(wf):
            return pattern.sub(yaml, wf)
    found = _KEYWORD.fullmatch(wf)
    if found is None:
        return wf
    return f"{found[1]}: {found[2]}"


def is_yaml_diagnostic(diag: Diagnostic) -> bool:
    """Is this diagnostic about a `.wf.yaml` file (by the file its span, or else its path, names)?"""
    name = diag.span.file.path.name if diag.span is not None else diag.path
    return name is not None and name.endswith(YAML_SUFFIXES)


def in_yaml_spelling(diag: Diagnostic) -> Diagnostic:
    """The diagnostic with the `.wf` snippets of its help in YAML spelling."""
    if not diag.help:
        return diag
    return dataclasses.replace(
        diag, help=_SNIPPET.sub(lambda m: f"`{yaml_snippet(m[1])}`", diag.help)
    )


def spell_for_file(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """The diagnostics, with the help of those in YAML files in YAML spelling."""
    return [in_yaml_spelling(d) if is_yaml_diagnostic(d) else d for d in diagnostics]


def spell_for_source(source_name: str, diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics about a file generated from `source_name` (a stage stub, whose fix is made
    in the source: `async: true`, not `async stage s`), spelt as that source is written."""
    if not source_name.endswith(YAML_SUFFIXES):
        return list(diagnostics)
    return [in_yaml_spelling(d) for d in diagnostics]
