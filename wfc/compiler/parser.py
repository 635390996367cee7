"""Text → AST. Loads the grammar once and turns lark's errors into diagnostics.

Lark's own messages name terminals (`Expected one of: RBRACE, NAME`); users
never see those. Each terminal has words in `TERMINAL_WORDS`, and common
mistakes get a specific message and hint from `EXAMPLES`, matched with
`UnexpectedInput.match_examples`; slips in `map` from `MAP_EXAMPLES`, matched by
parser state alone, so at any depth (the tables are in `syntax_examples`). Any
other error gets a help line too (`syntax_words`), and every independent syntax
error of a file is reported in one run (`parse_source_all`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from functools import cache, partial
from pathlib import Path

from lark import Lark, Token, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lark import PostLex

from wfc.compiler import ast, syntax_words
from wfc.compiler.diagnostics import Diagnostic, did_you_mean
from wfc.compiler.reduce_actions import parse_to_ast
from wfc.compiler.source import SourceFile, Span
from wfc.compiler.syntax_examples import EXAMPLES, MAP_EXAMPLES, WAIT_EXAMPLES
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


@cache
def _map_slips() -> dict[int, tuple[str, str]]:
    """The parser state each example of `MAP_EXAMPLES` and `WAIT_EXAMPLES` fails in → its
    message and help."""
    found: dict[int, tuple[str, str]] = {}
    for label, examples in (*MAP_EXAMPLES.items(), *WAIT_EXAMPLES.items()):
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
    split_after = "DURATION"
    _MULTIPLIER = re.compile(r"x([0-9]+(?:\.[0-9]+)?)")

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        previous = ""
        for token in stream:
            parts = self.split(token) if previous == self.split_after else None
            if parts is None:
                yield token
            else:
                yield from parts
            previous = token.type

    def split(self, token: Token) -> tuple[Token, Token] | None:
        """The token after a duration as `x` and a number when it is a glued multiplier
        (`x2`), else None. (`lalr_loop` calls this too, as its post-lexer.)"""
        glued = self._MULTIPLIER.fullmatch(token) if token.type == "NAME" else None
        if glued is None:
            return None
        number = Token.new_borrow_pos("NUMBER", glued.group(1), token)
        assert token.start_pos is not None and token.column is not None
        number.start_pos, number.column = token.start_pos + 1, token.column + 1
        return Token.new_borrow_pos(_keyword_type("x"), "x", token), number


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
    cache = _tables_cache()
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
        cache=cache,
        # A parser loaded from the cache still has `.grammar` (for tools). Lark refuses
        # the option without a cache: with no writable cache directory, building the
        # parser failed.
        cache_grammar=bool(cache),
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


def _syntax_diagnostic(
    file: SourceFile, error: UnexpectedInput, rule: str, text_end: int
) -> Diagnostic:
    """The diagnostic of a syntax error; `text_end` is where the parsed text ends (the file's
    end, or the end of the YAML scalar that was parsed)."""
    pos = error.pos_in_stream if error.pos_in_stream is not None else text_end
    matched = None
    if rule == "start":
        parse = partial(_parser().parse, start="start")
        matched = error.match_examples(parse, EXAMPLES, use_accepts=True)
    if isinstance(error, UnexpectedCharacters):
        return _character_diagnostic(file, error, pos, matched)
    if isinstance(error, UnexpectedEOF) or (
        isinstance(error, UnexpectedToken) and error.token.type == "$END"
    ):
        expected = _state_expects(error) or set(error.expected)
        if rule != "start":  # the end of a YAML value, not of the file
            return Diagnostic(
                code="WF101",
                message=f"missing {_expected_text(expected)} at the end of the value",
                span=Span(file=file, start=text_end, end=text_end + 1),
                label=f"expected {_expected_text(expected)} here",
            )
        end = len(file.text)
        return Diagnostic(
            code="WF104",
            message="unexpected end of file",
            span=Span(file=file, start=max(end - 1, 0), end=end),
            label=f"expected {_expected_text(expected)}",
            help=matched[1] if matched else "a `{` was probably left without its `}`",
        )
    assert isinstance(error, UnexpectedToken)
    return _token_diagnostic(file, error, rule, pos, matched)


def _character_diagnostic(
    file: SourceFile, error: UnexpectedCharacters, pos: int, matched: tuple[str, str] | None
) -> Diagnostic:
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
    expected = _expected_text(_state_expects(error) or set(error.allowed or ()))
    plain = char.isascii() and char not in "';"
    return Diagnostic(
        code="WF103",
        message=f"unexpected {syntax_words.describe_character(char)}",
        span=span,
        label=f"expected {expected}",
        help=matched[1] if matched and plain else syntax_words.character_help(char),
    )


def _state_expects(error: UnexpectedInput) -> set[str]:
    """The terminals the parser state accepts (the lexer's own list also holds NAME, which
    `_WholeWords` lets it match everywhere)."""
    state = getattr(error, "state", None)
    if state is None:
        return set()
    actions = state.parse_conf.parse_table.states[state.position]
    return {name for name in actions if name.isupper() or name.startswith("$")}


def _token_diagnostic(
    file: SourceFile, error: UnexpectedToken, rule: str, pos: int, matched: tuple[str, str] | None
) -> Diagnostic:
    token = error.token
    expected = _state_expects(error) or set(error.expected)
    start = token.start_pos if token.start_pos is not None else pos
    end = token.end_pos if token.end_pos is not None else start + max(len(token), 1)
    found = _describe_token(token)
    slips = ("start", "map_spec", "sleep_spec", "wait_spec")
    if matched is None and rule in slips and error.state is not None:
        matched = _map_slips().get(error.state.position)
    if matched is None and rule in ("start", "condition_spec"):
        matched = _condition_slip(token, expected)
    typo = _misspelled_keyword(token, expected)
    if rule == "start" and (cut := _item_word_before(file, start)) is not None:
        token, expected = cut
        start = token.start_pos or 0
        found = _describe_token(token)
    if "$END" in expected and str(token) in _WORKFLOW_ITEMS and matched is None:
        return Diagnostic(
            code="WF101",
            message=f"{found} is outside the workflow",
            span=Span(file=file, start=start, end=start + len(token)),
            label=f"found {found}, expected {_expected_text(expected)}",
            help="a `}` before it closes the workflow too early: remove the extra `}`",
        )
    missing = None if typo or rule != "start" else _missing_after(file, token, start)
    if missing is not None:
        after, before = missing
        what = _expected_text(expected)
        help = matched[1] if matched else _token_help(file, before, token, expected)
        if len(expected) > 3 and "RBRACE" in expected and str(token) in syntax_words.ITEM_WORDS:
            what, help = "`}`", f"close the block with `}}` before {found} starts the next item"
        return Diagnostic(
            code="WF101",
            message=matched[0] if matched else f"missing {what} after {after}",
            span=Span(file=file, start=before, end=before + 1),
            label=f"expected {what} here",
            notes=(f"the next line starts with {found}",),
            help=help,
        )
    return Diagnostic(
        code="WF101",
        message=matched[0] if matched else f"unexpected {found}",
        span=Span(file=file, start=start, end=max(end, start + 1)),
        label=f"found {found}, expected {_expected_text(expected)}",
        help=matched[1] if matched else typo or _token_help(file, start, token, expected),
    )


_WORKFLOW_ITEMS = frozenset(
    {"stage", "async", "flow", "input", "output", "signal", "schedule", "queue", "name"}
)
"""Words that start an item only inside a workflow: found at the top level, the workflow was
closed before them."""


def _misspelled_keyword(token: Token, expected: set[str]) -> str | None:
    """`did you mean `stage`?` when the word found is one letter or two from a keyword that
    fits here (`stge`, `flwo`, `length` where `len` goes)."""
    text = str(token)
    if not text.isidentifier() or text in _keywords():
        return None
    keywords = {
        w for w in _anonymous_to_text(expected) if w.isidentifier() and w not in TERMINAL_WORDS
    }
    keywords.discard(text)
    return did_you_mean(text, keywords) or (
        f"did you mean `{min(keywords, key=len)}`?"
        if any(text.startswith(k) for k in keywords) and len(text) > 2
        else None
    )


def _item_word_before(file: SourceFile, start: int) -> tuple[Token, set[str]] | None:
    """When the token before the error is a word that starts an item (`stage`, `flow` …) at
    the start of its own line, the item before it was left unfinished (`flow a ->` and then
    `stage b`, read as a flow step named `stage`): that word, and what the parser expected
    in its place."""
    previous = syntax_words.previous_token(file.text, start)
    if previous is None or previous[1] not in syntax_words.ITEM_WORDS:
        return None
    end, word = previous
    begin = end - len(word)
    if file.text[file.text.rfind("\n", 0, begin) + 1 : begin].strip(" \t"):
        return None
    try:
        _parser().parse(file.text[:begin], start="start")
    except (UnexpectedToken, UnexpectedEOF) as cut:
        token = Token("NAME", word, start_pos=begin, end_pos=end)
        return token, set(cut.expected)
    except UnexpectedInput:
        return None
    return None


def _missing_after(file: SourceFile, token: Token, start: int) -> tuple[str, int] | None:
    """When the word found starts a later line than the token before it, something is missing
    at the end of that earlier line: (`the token before`, the offset just after it).

    A name on the later line is more likely the mistake itself, so it is reported in place.
    """
    if token.type == "NAME" and str(token) not in _keywords():
        return None
    previous = syntax_words.previous_token(file.text, start)
    if previous is None:
        return None
    before, text = previous
    if file.line_col(before)[0] >= file.line_col(start)[0]:
        return None
    return f"`{text}`", before


@cache
def _keywords() -> frozenset[str]:
    """Every word the language reserves (`stage`, `timeout`, `times` …). Where a keyword does not
    fit, the lexer hands it over as a NAME."""
    return frozenset(
        t.pattern.value
        for t in _parser().terminals
        if t.pattern.type == "str" and t.pattern.value.isidentifier()
    )


def _token_help(file: SourceFile, pos: int, token: Token, expected: set[str]) -> str:
    """The help of a syntax error with no specific one: a stray closing bracket, else how the
    statement it is in is written, else what may come here."""
    if syntax_words.closes_nothing(file.text, pos, str(token)):
        return f"this `{token}` closes nothing: remove it, or add the `{{`, `[` or `(` it closes"
    example = syntax_words.statement_help(file.text, pos)
    if example is not None:
        return example
    return f"write {_expected_text(expected)} here"


MAX_SYNTAX_ERRORS = 20
"""More syntax errors than this in one file are not looked for: the first ones are enough to go on."""


def parse_source(file: SourceFile) -> ast.Module | Diagnostic:
    """The AST of a file, or the diagnostic of its first syntax error."""
    module = parse_source_all(file)
    return module[0] if isinstance(module, list) else module


def parse_source_all(file: SourceFile) -> ast.Module | list[Diagnostic]:
    """The AST of a file, or the diagnostics of its syntax errors, each independent one.

    After an error, the item it is in (a stage, the flow, a type …, from the line that
    starts it to the line that starts the next) is blanked out and the file parsed again,
    so that a second mistake in another stage is found in the same run. Resynchronising
    LALR inside an item would invent follow-on errors; an error found again at or before
    the item just blanked is one of those, and ends the search, as do brackets that do not
    balance once the item is gone (the mistake is in the file's structure, not the item).
    """
    module = parse_rule(file, "start")
    if not isinstance(module, Diagnostic):
        assert isinstance(module, ast.Module)
        return module
    found = [module]
    text = file.text
    while len(found) < MAX_SYNTAX_ERRORS:
        last = found[-1]
        assert last.span is not None
        region = syntax_words.spoiled_item(text, last.span.start)
        if region is None:
            break
        text = syntax_words.blank(text, region)
        if not syntax_words.balanced(text):
            break  # a bracket too many or too few outside the item: what follows would cascade
        again = parse_rule(file, "start", text)
        if not isinstance(again, Diagnostic) or again.span is None:
            break
        if again.span.start < region.end or again.code == "WF104":
            break
        found.append(again)
    return found


def parse_rule(file: SourceFile, rule: str, text: str | None = None) -> object:
    """Parse `text` (default: the whole file) as grammar rule `rule`: an AST node or a diagnostic.

    The YAML front end passes the file's text with everything but one scalar
    blanked out, so that positions in the result are positions in the file.
    """
    source = file.text if text is None else text
    try:
        return parse_to_ast(_parser(), source, rule, AstBuilder(file))
    except UnexpectedInput as error:
        found = _syntax_diagnostic(file, error, rule, len(source))
        if rule == "start":
            return found
        # A YAML value: the help shows how the value is written in YAML, not in `.wf`.
        typo = found.help if found.help and found.help.startswith("did you mean") else None
        example = syntax_words.YAML_EXAMPLES.get(rule)
        return replace(found, help=" ".join(h for h in (typo, example) if h) or found.help)
