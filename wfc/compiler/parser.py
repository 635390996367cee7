"""Text → AST. Loads the grammar once and turns lark's errors into diagnostics.

Lark's own messages name terminals (`Expected one of: RBRACE, NAME`); users
never see those. Each terminal has words in `TERMINAL_WORDS`, and common
mistakes get a specific message and hint from `_EXAMPLES`, matched with
`UnexpectedInput.match_examples`; slips in `map` from `_MAP_EXAMPLES`, matched by
parser state alone, so at any depth.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from functools import cache, partial
from pathlib import Path
from typing import Any

from lark import Lark, Token, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lark import PostLex

from wfc.compiler import ast
from wfc.compiler.diagnostics import Diagnostic
from wfc.compiler.source import SourceFile, Span
from wfc.compiler.transformer import AstBuilder

TERMINAL_WORDS: dict[str, str] = {
    "NAME": "a name",
    "STRING": 'a string in double quotes ("…")',
    "NUMBER": "a number",
    "DURATION": "a duration such as `30s`, `5m` or `1h30m`",
    "DOC": "a `##` doc comment",
    "COMPARATOR": "a comparison (`>=`, `>`, `<=`, `<`)",
    "OPTIONAL": "`?`",
    "ASYNC": "`async`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "COLON": "`:`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "$END": "the end of the file",
}

FRAGMENT_RULES = (
    "field_spec",
    "retry_body",
    "poll_body",
    "flow_body",
    "duration_spec",
    "stage_ref",
    "need",
    "condition_spec",
    "map_spec",
    "map_path",
    "concurrency_spec",
    "rate_spec",
    "limit_path_spec",
    "sleep_spec",
    "wait_spec",
)
"""Grammar rules the YAML front end parses on their own, out of YAML scalars."""

# Bad inputs that stand for a class of mistakes, with the message and hint for it.
_EXAMPLES: dict[Any, list[str]] = {
    ("expected `:` between the field name and its type", "write fields as `name: type`"): [
        "workflow w { input { a str } }",
        "type T { a str }",
        "workflow w { stage s { output { a int } } }",
    ],
    ("expected a type after `:`", "give the field a type, e.g. `name: str`"): [
        "workflow w { input { a: } }",
        "type T { a: }",
        "type T { a: , b: int }",
    ],
    (
        "stage settings must be inside the stage's braces",
        "put `input`, `output`, `config`, `needs`, `when`, `map`, `retry`, `timeout`, `poll` "
        "and `priority` inside `stage name { … }`",
    ): [
        "workflow w { stage s output { a: int } }",
        "workflow w { stage s needs a }",
        "workflow w { stage s when a.b }",
        "workflow w { stage s map a.b }",
    ],
    (
        "`flow` needs at least one stage",
        "write the order of stages, e.g. `flow a -> [b, c] -> d`",
    ): [
        "workflow w { flow }",
        "workflow w { flow -> a }",
    ],
    ("a flow step is missing after `->`", "remove the trailing `->` or name the next stage"): [
        "workflow w { flow a -> }",
        "workflow w { flow a -> -> b }",
    ],
    (
        "`input` needs a record, a type name, `from <stage>` or `none`",
        "e.g. `input { url: url }`",
    ): [
        "workflow w { stage s { input } }",
        "workflow w { stage s { input output { a: int } } }",
    ],
    (
        "`retry` needs a count: `retry 3 times`",
        "e.g. `retry 3 times, backoff exponential 1s x2 max 1m`",
    ): [
        "workflow w { stage s { retry } }",
        "workflow w { stage s { retry times } }",
        "workflow w { stage s { retry 3 } }",
    ],
}

# Slips in `map`, matched by the parser state they fail in, at any depth: lark's
# `match_examples` also compares the depth of the parse stack, so an example only
# matches a stage that sits where it sits (first in its workflow, with no title).
_MAP_EXAMPLES: dict[tuple[str, str], list[str]] = {
    (
        "`map` needs the path of a list",
        "e.g. `map split.pages` or `map input.urls, at most 16 at once`",
    ): [
        "workflow w { stage s { map } }",
        "workflow w { stage s { map , at most 3 at once } }",
        "workflow w { stage s { map 3 } }",
        # `map` then the next setting: its keyword is read as the path.
        "workflow w { stage s { map output { } } }",
        "workflow w { stage s { map needs a } }",
        'workflow w { stage s { map description "x" } }',
    ],
    (
        "separate the options of `map` with commas",
        "e.g. `map split.pages, at most 16 at once, on failure continue`",
    ): [
        "workflow w { stage s { map a.b at most 3 at once } }",
        "workflow w { stage s { map a on failure continue } }",
    ],
    (
        "a `,` after the path of `map` starts an option",
        "the options are `at most <n> at once` and `on failure continue` (or `fail`)",
    ): [
        "workflow w { stage s { map a.b, } }",
        "workflow w { stage s { map a.b, output { } } }",
    ],
    (
        "write the limit as `at most <n> at once`",
        "e.g. `map split.pages, at most 16 at once`",
    ): [
        "workflow w { stage s { map a.b, at most 3 } }",
        "workflow w { stage s { map a.b, at most 3 at } }",
        "workflow w { stage s { map a.b, at most } }",
        "workflow w { stage s { map a.b, at 3 } }",
    ],
    (
        "`on failure` takes `fail` or `continue`",
        "e.g. `map split.pages, on failure continue`",
    ): [
        "workflow w { stage s { map a.b, on failure } }",
        "workflow w { stage s { map a.b, on continue } }",
        # the next setting's keyword read as the policy
        "workflow w { stage s { map a.b, on failure output { } } }",
    ],
}


# Slips in `sleep` and `wait for`, matched by parser state as `map`'s are.
_WAIT_EXAMPLES: dict[tuple[str, str], list[str]] = {
    (
        "`sleep` takes a duration, or `until` and the path of a datetime",
        "e.g. `sleep 1h30m` or `sleep until input.publish_at`; a duration is positive",
    ): [
        "workflow w { stage s { sleep -1h } }",
        "workflow w { stage s { sleep } }",
        "workflow w { stage s { sleep 5 } }",
        "workflow w { stage s { sleep until } }",
        "workflow w { stage s { sleep until 3 } }",
    ],
    (
        "`wait for` names the signal to wait for",
        "e.g. `wait for approve, timeout 7d, on timeout continue`",
    ): [
        "workflow w { stage s { wait approve } }",
        "workflow w { stage s { wait } }",
        "workflow w { stage s { wait for } }",
        "workflow w { stage s { wait for 3 } }",
    ],
    (
        "a `,` after the signal of `wait for` starts an option",
        "the options are `timeout <duration>` and `on timeout fail` (or `continue`), "
        "e.g. `wait for approve, timeout 7d, on timeout continue`",
    ): [
        "workflow w { stage s { wait for a, } }",
        "workflow w { stage s { wait for a, timeout } }",
        "workflow w { stage s { wait for a, timeout -1d } }",
        "workflow w { stage s { wait for a, on } }",
        "workflow w { stage s { wait for a, on timeout } }",
        "workflow w { stage s { wait for a, on failure continue } }",
    ],
}


@cache
def _map_slips() -> dict[int, tuple[str, str]]:
    """The parser state each example of `_MAP_EXAMPLES` and `_WAIT_EXAMPLES` fails in → its
    message and help."""
    found: dict[int, tuple[str, str]] = {}
    for label, examples in (*_MAP_EXAMPLES.items(), *_WAIT_EXAMPLES.items()):
        for text in examples:
            try:
                _parser().parse(text, start="start")
            except (UnexpectedToken, UnexpectedEOF) as error:
                found.setdefault(error.state.position, label)
    return found


def _condition_slip(token: Token, expected: set[str]) -> tuple[str, str] | None:
    """A named message for two slips in a `when`, wherever in a condition they happen.

    (`match_examples` only matches a parser state at the depth of its example,
    and a condition can be nested to any depth.)
    """
    words = _anonymous_to_text(expected)
    if token.type == "EQUAL" and "==" in words:
        return (
            "a condition compares with `==`",
            "write `==`; a single `=` gives a field its default",
        )
    comparisons = {"==", "!=", "COMPARATOR"}
    if _anonymous_to_text({token.type}) & comparisons and "and" in words:
        if not words & comparisons:
            return "comparisons do not chain", "write `0 < x and x < 1`"
    return None


class _WholeWords(PostLex):
    """Keywords are whole words: `length` is one name, never `len` and then `gth`.

    Lark's contextual lexer only tries the terminals the parser state accepts, so where
    `len` is expected and a name is not, it matched `len` at the front of `length`.
    Accepting NAME in every state makes each word one NAME token, which lark turns
    into the keyword's token when the whole word is one. The one place a keyword is
    glued to what follows is a backoff's multiplier (`1s x2`): a NAME `x2` straight
    after a duration is split back into `x` and the number.
    """

    always_accept = ("NAME",)
    _MULTIPLIER = re.compile(r"x([0-9]+(?:\.[0-9]+)?)")

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        previous = ""
        for token in stream:
            glued = self._MULTIPLIER.fullmatch(token) if token.type == "NAME" else None
            if glued and previous == "DURATION":
                yield Token.new_borrow_pos(_keyword_type("x"), "x", token)
                number = Token.new_borrow_pos("NUMBER", glued.group(1), token)
                assert token.start_pos is not None and token.column is not None
                number.start_pos, number.column = token.start_pos + 1, token.column + 1
                yield number
            else:
                yield token
            previous = token.type


@cache
def _keyword_type(word: str) -> str:
    """Lark's name for the terminal of a keyword (`X` for `x`, `STAGE` for `stage`)."""
    return next(
        t.name for t in _parser().terminals if t.pattern.type == "str" and t.pattern.value == word
    )


@cache
def _parser() -> Lark:
    """The one LALR parser. Built once per process, and its tables kept between processes
    (`_tables_cache`): building them took 0.25 s of every `wfc check`, loading them 0.01 s."""
    return Lark.open_from_package(
        "wfc",
        "workflow.lark",
        ("grammar",),
        parser="lalr",
        strict=True,
        propagate_positions=True,
        maybe_placeholders=False,
        start=["start", *FRAGMENT_RULES],
        postlex=_WholeWords(),
        cache=_tables_cache(),
        cache_grammar=True,  # a parser loaded from the cache still has `.grammar` (for tools)
    )


def _tables_cache() -> str | bool:
    """Where lark keeps the built parser: a file of this user's own cache directory, not
    lark's default in the shared temporary directory (whose predictable name another user
    could fill first). Lark stores a hash of the grammar, its options and its version with
    the tables and rebuilds on a mismatch, so one file serves every version; without a
    writable directory the parser is simply built each time."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "wfc"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return str(folder / "grammar-tables.lark")


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "the end of the file"
    text = str(token)
    return f"`{text}`" if len(text) <= 30 else f"`{text[:27]}…`"


def _expected_words(expected: set[str]) -> str:
    words = sorted({TERMINAL_WORDS.get(t, f"`{t.lower()}`") for t in expected if t not in ("WS",)})
    if not words:
        return "something else"
    if len(words) > 6:
        return ", ".join(words[:6]) + " or another item"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _anonymous_to_text(expected: set[str]) -> set[str]:
    """Map lark's names for keyword terminals (`STAGE`, `NEEDS`) back to their text."""
    parser = _parser()
    by_name = {t.name: t for t in parser.terminals}
    out = set()
    for name in expected:
        term = by_name.get(name)
        if name in TERMINAL_WORDS or term is None:
            out.add(name)
        elif term.pattern.type == "str":
            out.add(term.pattern.value)
        else:
            out.add(name)
    return out


def _expected_text(expected: set[str]) -> str:
    mapped = _anonymous_to_text(expected)
    return _expected_words(mapped).replace("``", "`")


def _syntax_diagnostic(file: SourceFile, error: UnexpectedInput, rule: str) -> Diagnostic:
    pos = error.pos_in_stream if error.pos_in_stream is not None else len(file.text)
    matched = None
    if rule == "start":
        parse = partial(_parser().parse, start="start")
        matched = error.match_examples(parse, _EXAMPLES, use_accepts=True)
    if isinstance(error, UnexpectedCharacters):
        char = file.text[pos] if pos < len(file.text) else ""
        span = Span(file=file, start=pos, end=pos + 1)
        if char == '"':
            return Diagnostic(
                code="WF102",
                message="unterminated string",
                span=span,
                label='this string has no closing `"` on its line',
                help='close the string with `"`; strings cannot span lines',
            )
        expected = _expected_text(set(error.allowed or ()))
        return Diagnostic(
            code="WF103",
            message=f"unexpected character `{char}`",
            span=span,
            label=f"expected {expected}",
            help=matched[1] if matched else None,
        )
    if isinstance(error, UnexpectedEOF):
        end = len(file.text)
        return Diagnostic(
            code="WF104",
            message="unexpected end of file",
            span=Span(file=file, start=max(end - 1, 0), end=end),
            label=f"expected {_expected_text(set(error.expected))}",
            help="a `{` was probably left without its `}`",
        )
    assert isinstance(error, UnexpectedToken)
    token = error.token
    start = token.start_pos if token.start_pos is not None else pos
    end = token.end_pos if token.end_pos is not None else start + max(len(token), 1)
    if token.type == "$END":
        start, end = max(len(file.text) - 1, 0), len(file.text)
        return Diagnostic(
            code="WF104",
            message="unexpected end of file",
            span=Span(file=file, start=start, end=end),
            label=f"expected {_expected_text(set(error.expected))}",
            help=matched[1] if matched else "a `{` was probably left without its `}`",
        )
    found = _describe_token(token)
    slips = ("start", "map_spec", "sleep_spec", "wait_spec")
    if matched is None and rule in slips and error.state is not None:
        matched = _map_slips().get(error.state.position)
    if matched is None and rule in ("start", "condition_spec"):
        matched = _condition_slip(token, set(error.expected))
    message = matched[0] if matched else f"unexpected {found}"
    return Diagnostic(
        code="WF101",
        message=message,
        span=Span(file=file, start=start, end=max(end, start + 1)),
        label=f"found {found}, expected {_expected_text(set(error.expected))}",
        help=matched[1] if matched else None,
    )


def parse_source(file: SourceFile) -> ast.Module | Diagnostic:
    """The AST of a file, or the diagnostic of its first syntax error.

    Parsing stops at the first syntax error: guessing how to resynchronise
    LALR produces follow-on errors that are not really there.
    """
    module = parse_rule(file, "start")
    assert isinstance(module, ast.Module | Diagnostic)
    return module


def parse_rule(file: SourceFile, rule: str, text: str | None = None) -> object:
    """Parse `text` (default: the whole file) as grammar rule `rule`: an AST node or a diagnostic.

    The YAML front end passes the file's text with everything but one scalar
    blanked out, so that positions in the result are positions in the file.
    """
    try:
        tree = _parser().parse(file.text if text is None else text, start=rule)
    except UnexpectedInput as error:
        return _syntax_diagnostic(file, error, rule)
    return AstBuilder(file).transform(tree)
