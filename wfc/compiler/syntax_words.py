"""The words of syntax errors: what a character is called, what was missing, how to write it.

Kept apart from `parser` (which turns lark's exceptions into diagnostics) because
these only read the source text: naming an invisible character, finding the end
of the token before an error (where a missing word belongs), the statement an
error sits in (for a help line showing how it is written), and the item a
syntax error spoils (which the parser skips to find the next error).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

STATEMENT_EXAMPLES: dict[str, str] = {
    "import": 'write it as `import "common.wf"`',
    "workflow": "write it as `workflow name { stage … flow … }`",
    "type": "write it as `type Name { field: str, count: int = 0 }`",
    "enum": "write it as `enum Level { low, high }`",
    "name": 'write it as `name "Document processor"`',
    "description": 'write it as `description "What this does"`',
    "signal": "write it as `signal approve { approved: bool }` (the record is optional)",
    "schedule": 'write it as `schedule nightly "0 6 * * *" in "Europe/Paris" { input { … } }`',
    "stage": "write it as `stage name { output { text: str } }`",
    "input": "write it as `input { url: str }`, `input Page`, `input from <stage>` or `input none`",
    "output": "write it as `output { text: str }` or `output Page`",
    "config": "write it as `config { threshold: float = 0.5 }`",
    "needs": "write it as `needs extract, review?` (`?`: that stage may be skipped)",
    "retry": "write it as `retry 3 times`, or `retry 3 times, backoff exponential 1s x2 max 1m`",
    "timeout": "write it as `timeout 30s` (units: ms, s, m, h, d)",
    "poll": "write it as `poll every 1m, give up after 24h`",
    "priority": "write it as `priority 5`",
    "ai": 'write it as `ai "gpt-4o-mini", temperature 0.2, max tokens 500`',
    "when": "write it as `when input.score > 0.5 and classify.label == Label.spam`",
    "queue": 'write it as `queue "gpu"`',
    "concurrency": "write it as `concurrency 2` or `concurrency 2 per input.customer_id`",
    "rate": 'write it as `rate 50 per minute` or `rate 50 per minute shared "openai"`',
    "sleep": "write it as `sleep 1h` or `sleep until input.publish_at`",
    "wait": "write it as `wait for approve, timeout 2d, on timeout continue`",
    "flow": "write it as `flow a -> [b, c] -> d`",
    "runs": "write it as `stage enrich runs enrich_customer { … }`",
}
"""How each statement is written, keyed by the word it starts with: the help of a syntax error
inside it when no more specific one applies."""

YAML_EXAMPLES: dict[str, str] = {
    "field_spec": 'write a field\'s type as in `score: "float (0.0 .. 1.0) = 0.5"` or `tags: list[str]`',
    "retry_body": "write it as `retry: 3 times` or `retry: 3 times, backoff exponential 1s x2 max 1m`",
    "poll_body": "write it as `poll: every 1m, give up after 24h`",
    "flow_body": "write it as `flow: a -> [b, c] -> d`",
    "duration_spec": "write it as `timeout: 30s` (units: ms, s, m, h, d)",
    "stage_ref": "a name is ASCII letters, digits and `_`, starting with a letter: `extract`",
    "need": 'write it as `needs: [extract, "review?"]` (`?`: that stage may be skipped)',
    "condition_spec": "write it as `when: input.score > 0.5` (quote it when it holds `: ` or `#`)",
    "map_spec": "write it as `map: split.pages, at most 16 at once` or "
    "`map: {over: split.pages, at_most: 16, on_item_failure: continue}`",
    "map_path": "write it as `over: split.pages`",
    "concurrency_spec": "write it as `concurrency: 2` or `concurrency: 2 per input.customer_id`",
    "rate_spec": "write it as `rate: 50 per minute` or `rate: '50 per minute shared \"openai\"'`",
    "limit_path_spec": "write it as `per: input.customer_id`",
    "sleep_spec": "write it as `sleep: 1h` or `sleep: until input.publish_at`",
    "wait_spec": 'write it as `wait_for: "approve, timeout 2d, on timeout continue"`',
}
"""How each value the YAML form parses with the `.wf` grammar is written in YAML, by grammar
rule: the help of a syntax error inside such a value."""

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LAST_TOKEN = re.compile(r'(->|\.\.|==|!=|>=|<=|"[^"\n]*"|[A-Za-z0-9_.]+|\S)$')

ITEM_WORDS = frozenset(
    {"import", "workflow", "type", "enum", "signal", "schedule", "stage", "async", "flow"}
)
"""Words that start an item of a file or workflow on their own line: where the parser resumes."""


def code_only(text: str) -> str:
    """The text with comments and the insides of strings blanked (same length, same lines),
    so that scans for words and brackets see only code."""
    out = []
    for line in text.split("\n"):
        chars = list(line)
        in_string = False
        for i, ch in enumerate(chars):
            if in_string:
                if ch == '"':
                    in_string = False
                else:
                    chars[i] = " "
            elif ch == '"':
                in_string = True
            elif ch == "#":
                chars[i:] = " " * (len(chars) - i)
                break
        out.append("".join(chars))
    return "\n".join(out)


def previous_token(text: str, pos: int) -> tuple[int, str] | None:
    """The end offset and text of the last token before `pos` (comments skipped), if any."""
    code = code_only(text[:pos]).rstrip()
    if not code:
        return None
    found = _LAST_TOKEN.search(code)
    last = found.group(1) if found else code[-1]
    if last.startswith('"'):
        last = text[len(code) - len(last) : len(code)]
    return len(code), last


_PAIRS = {"}": "{", "]": "[", ")": "("}


def closes_nothing(text: str, pos: int, closing: str) -> bool:
    """Is the bracket `closing` at `pos` one too many: no bracket before it is left open?"""
    opening = _PAIRS.get(closing)
    if opening is None:
        return False
    code = code_only(text[:pos])
    return code.count(opening) <= code.count(closing)


def balanced(text: str) -> bool:
    """Does every `{`, `[` and `(` of the code have its closing bracket?"""
    code = code_only(text)
    return all(code.count(o) == code.count(c) for c, o in _PAIRS.items())


def statement_help(text: str, pos: int) -> str | None:
    """How the statement around `pos` is written: the nearest statement word before it."""
    window = code_only(text[max(0, pos - 400) : pos])
    for word in reversed(_WORD.findall(window)):
        if word in STATEMENT_EXAMPLES:
            return STATEMENT_EXAMPLES[word]
    return None


def describe_character(char: str) -> str:
    """`$`, or, for anything outside printable ASCII, its code point and Unicode name, so an
    invisible character is named rather than printed as nothing."""
    if char.isascii() and char.isprintable() and not char.isspace():
        return f"character `{char}`"
    name = unicodedata.name(char, "")
    code = f"U+{ord(char):04X}" + (f" {name}" if name else "")
    if not char.isprintable() or char.isspace() or unicodedata.category(char) in ("Cf", "Zs"):
        return f"invisible character {code}"
    return f"character `{char}` ({code})"


_SPECIAL_CHARACTERS: dict[str, str] = {
    "'": 'strings go in double quotes: `"text"`',
    ";": "remove it: statements end at the end of their line, with no `;`",
    "\u201c": 'strings go in plain double quotes `"`, not typographic ones',
    "\u201d": 'strings go in plain double quotes `"`, not typographic ones',
    "\u2018": 'strings go in plain double quotes `"`, not typographic quotes',
    "\u2019": 'strings go in plain double quotes `"`, not typographic quotes',
}


def character_help(char: str) -> str:
    """What to do about a character the language does not use."""
    if special := _SPECIAL_CHARACTERS.get(char):
        return special
    category = unicodedata.category(char) if char else ""
    if category == "Zs" or char.isspace():
        return "replace it with a plain space (it often comes from text copied out of a web page)"
    if category in ("Cf", "Cc"):
        return "delete it: it is invisible, and often comes from text copied out of a web page"
    if not char.isascii() and char.isalnum():
        return (
            "names are ASCII: letters `a`-`z`, `A`-`Z`, digits and `_`, starting with a letter; "
            "other text can go in a string"
        )
    return "remove it; names use ASCII letters, digits and `_`, and strings go in double quotes"


@dataclass(frozen=True, slots=True)
class Region:
    """The item a syntax error spoils: `[start, end)` of the source, whole lines."""

    start: int
    end: int


def spoiled_item(text: str, pos: int) -> Region | None:
    """The item (stage, flow, type, the workflow's input …) around offset `pos`, from the line
    that starts it to the line that starts the next one; None when there is no such pair of
    lines, or when blanking the item would unbalance the file (a `workflow` line, whose `}`
    ends the file).

    A line starts an item when its first word is one only items start with, or when it
    starts with any word at the workflow's top level (depth 1): that is how a misspelt
    `stge` still ends the item before it.
    """
    code = code_only(text)
    starts = [0] + [m.end() for m in re.finditer("\n", code)]
    words = [_first_word(code, s) for s in starts]
    depth = 0
    for i, start in enumerate(starts):
        if i:
            previous = code[starts[i - 1] : start]
            depth += previous.count("{") - previous.count("}")
        if words[i] and depth == 1 and words[i] not in ITEM_WORDS:
            words[i] = "item"
    items = ITEM_WORDS | {"item"}
    line = max(i for i, s in enumerate(starts) if s <= pos)
    begin = next((i for i in range(line, -1, -1) if words[i] in items), None)
    after = next((i for i in range(line + 1, len(starts)) if words[i] in items), None)
    if begin is None or after is None or words[begin] == "workflow":
        return None
    while begin > 0 and text[starts[begin - 1] :].lstrip(" \t").startswith("##"):
        begin -= 1  # the item's doc comments go with it
    return Region(starts[begin], starts[after])


def _first_word(code: str, start: int) -> str:
    found = _WORD.match(code, start + len(code[start:]) - len(code[start:].lstrip(" \t")))
    return found.group(0) if found else ""


def blank(text: str, region: Region) -> str:
    """`text` with the region's characters turned into spaces, its line breaks kept, so that
    every position after it is unchanged."""
    middle = "".join(c if c in "\r\n" else " " for c in text[region.start : region.end])
    return text[: region.start] + middle + text[region.end :]
