"""Lark's contextual lexer and LALR loop, redone as one loop for text that parses.

For a 5,000-stage file (170,000 tokens, 140,000 runs of blanks between them, 265,000
reductions) lark's lexer took about 40% of the parse and its LALR loop about 20%:
each token went through two generators, three method calls to reach the state's
regular expression, a `Token` built through two constructors, a `LineCounter`, and
a keyword retyping done by a second regular expression. `LalrLoop` reads the same
tables lark built (the parse table, and each parser state's own lexer: the terminals
that state accepts, in lark's order) and does the same steps inline:

- each token is matched with the state's own expression, so the contextual lexer's
  choices stay exactly lark's (`30s` is a duration where a duration is expected, a
  number where only a number is), and a word is retyped as a keyword only where the
  state accepts that keyword, as lark's `UnlessCallback` does;
- line and column are counted as lark's `LineCounter` counts them;
- the post-lexer's one rewrite (a glued backoff multiplier `x2`) is asked of the
  post-lexer itself (`Splitter`).

It handles only text that parses. At the first thing lark would report (a character
no terminal of the state matches, a token the state has no action for) it raises
`Fallback`, and the caller parses the text again with lark, which raises its own
error: every diagnostic is built from lark's exception, as before. A grammar this
loop does not know how to run the same way (a lexer callback of its own, several
regular expressions per state) gets `None` from `lalr_loop` and lark throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import lark
from lark import Lark, Token
from lark.grammar import Rule
from lark.lexer import BasicLexer, ContextualLexer, PatternStr, UnlessCallback
from lark.parser_frontends import PostLexConnector
from lark.parsers.lalr_analysis import Shift

VERIFIED_LARK = frozenset({"1.3"})
"""The lark releases (major.minor) whose tables this loop was checked against."""


class Fallback(Exception):
    """The text has something lark would report: parse it again with lark."""


class Splitter(Protocol):
    """A post-lexer that rewrites only the token after one of type `split_after`: `split`
    returns the tokens it becomes, or None to keep it (and must do what its `process` does)."""

    split_after: str

    def split(self, token: Token) -> Sequence[Token] | None: ...


class _NoSplit:
    """The post-lexer of a grammar that has none."""

    split_after = "$NONE"  # no token has this type

    def split(self, token: Token) -> Sequence[Token] | None:
        return None


_StateLexer = tuple[Callable[[str, int], Any], frozenset[str], dict[str, dict[str, str]]]
"""A parser state's lexer: its expression's `match`, the types it skips, and for a type
whose words may be keywords (NAME) each keyword's text → its terminal."""

_new_str = str.__new__


class LalrLoop:
    """One grammar's tables, read from a built `Lark`; `parse` runs them over a text."""

    def __init__(self, parser: Lark, contextual: ContextualLexer, splitter: Splitter | None):
        table = parser.parser.parser.parser.parse_table
        self.start_states: dict[str, int] = table.start_states
        self.end_states: dict[str, int] = table.end_states
        self.rules: list[Rule] = []
        index: dict[int, int] = {}
        self.actions: dict[int, dict[str, int]] = {}
        """State → token or rule name → the state to shift to (≥ 0), or ~the rule index to
        reduce by (< 0)."""
        for state, actions in table.states.items():
            encoded = {}
            for name, (action, target) in actions.items():
                if action is Shift:
                    encoded[name] = target
                else:
                    if id(target) not in index:
                        index[id(target)] = len(self.rules)
                        self.rules.append(target)
                    encoded[name] = ~index[id(target)]
            self.actions[state] = encoded
        self.sizes = [len(rule.expansion) for rule in self.rules]
        self.origins = [rule.origin.name for rule in self.rules]
        self._contextual = contextual
        self._by_lexer: dict[int, _StateLexer] = {}
        self.lexers: dict[int, _StateLexer] = {}
        root = contextual.root_lexer
        if not isinstance(root, BasicLexer):  # lark's, which counts lines by its types
            raise TypeError("a root lexer the loop does not know")  # `lalr_loop`: None
        self.newline_types = root.newline_types
        self.splitter: Splitter = splitter or _NoSplit()

    def state_lexer(self, state: int) -> _StateLexer:
        """The lexer of a parser state, taken from lark's (built on first use, as lark's
        own expressions are: a small file compiles only the few its states need)."""
        found = self.lexers.get(state)
        if found is not None:
            return found
        basic = self._contextual.lexers[state]
        found = self._by_lexer.get(id(basic))
        if found is None:
            found = _read_lexer(basic)
            self._by_lexer[id(basic)] = found
        self.lexers[state] = found
        return found

    def parse(self, text: str, start: str, callbacks: Sequence[Callable[[list[Any]], Any]]) -> Any:
        """What the start rule's callback returns, `callbacks[i]` reducing `self.rules[i]`;
        raises `Fallback` where lark would raise a syntax error."""
        actions, sizes, origins = self.actions, self.sizes, self.origins
        newline_types, splitter, lexers = self.newline_types, self.splitter, self.lexers
        split_after = splitter.split_after
        state_stack = [self.start_states[start]]
        value_stack: list[Any] = []
        pos, line, line_start, end = 0, 1, 0, len(text)
        previous = ""
        pending: Sequence[Token] = ()
        while True:
            if pending:
                token, pending = pending[0], pending[1:]
            else:
                match, ignore, retype = lexers.get(state_stack[-1]) or self.state_lexer(
                    state_stack[-1]
                )
                while True:  # skip blanks and comments, as lark's `next_token` does
                    if pos >= end:
                        return self._finish(state_stack, value_stack, start, callbacks)
                    found = match(text, pos)
                    if found is None:
                        raise Fallback
                    kind, stop = found.lastgroup, found.end()
                    if kind not in ignore:
                        break
                    if kind in newline_types and (newlines := text.count("\n", pos, stop)):
                        line += newlines
                        line_start = text.rindex("\n", pos, stop) + 1
                    pos = stop
                value = found.group()
                token = _new_str(Token, value)  # `Token(...)` without its two constructors
                token.type = retype[kind].get(value, kind) if kind in retype else kind
                token.start_pos, token.value = pos, value
                token.line, token.column = line, pos - line_start + 1
                if kind in newline_types and (newlines := value.count("\n")):
                    line += newlines
                    line_start = pos + value.rindex("\n") + 1
                token.end_line, token.end_column = line, stop - line_start + 1
                token.end_pos = pos = stop
                lexed = token.type
                if previous == split_after and (parts := splitter.split(token)) is not None:
                    token, pending = parts[0], parts[1:]
                previous = lexed
            kind = token.type
            while True:  # lark's `feed_token`: reduce as long as the state says, then shift
                act = actions[state_stack[-1]].get(kind)
                if act is None:
                    raise Fallback
                if act >= 0:
                    state_stack.append(act)
                    value_stack.append(token)
                    break
                size = sizes[~act]
                children = value_stack[-size:] if size else []
                if size:
                    del state_stack[-size:]
                    del value_stack[-size:]
                value_stack.append(callbacks[~act](children))
                state_stack.append(actions[state_stack[-1]][origins[~act]])

    def _finish(
        self,
        state_stack: list[int],
        value_stack: list[Any],
        start: str,
        callbacks: Sequence[Callable[[list[Any]], Any]],
    ) -> Any:
        """Lark's `$END`: reduce until the start rule is done."""
        end_state = self.end_states[start]
        while True:
            act = self.actions[state_stack[-1]].get("$END")
            if act is None or act >= 0:
                raise Fallback
            rule = ~act
            size = self.sizes[rule]
            if size:
                children = value_stack[-size:]
                del state_stack[-size:]
                del value_stack[-size:]
            else:
                children = []
            value_stack.append(callbacks[rule](children))
            state_stack.append(self.actions[state_stack[-1]][self.origins[rule]])
            if state_stack[-1] == end_state:
                return value_stack[-1]


def lalr_loop(parser: Lark) -> LalrLoop | None:
    """The loop for a parser built with `parser="lalr"` and the contextual lexer, or None
    when it has something the loop does not reproduce (then lark parses every text).

    The loop reads lark's internal tables, which a lark release may reshape: it is used
    only with the lark releases `tests/unit/test_lalr_loop.py` compared it with
    (`VERIFIED_LARK`); any other release parses every text with lark itself.
    """
    if _release(lark.__version__) not in VERIFIED_LARK:
        return None
    try:
        return _built(parser)
    except (AttributeError, TypeError, KeyError):  # tables shaped other than expected
        return None


def _release(version: str) -> str:
    """`1.3.1` → `1.3`: lark changes its internals between minor releases, not patches."""
    return ".".join(version.split(".")[:2])


def _built(parser: Lark) -> LalrLoop | None:
    lexer = parser.parser.lexer
    splitter = None
    if isinstance(lexer, PostLexConnector):
        splitter = lexer.postlexer
        if not (hasattr(splitter, "split") and hasattr(splitter, "split_after")):
            return None
        lexer = lexer.lexer
    if not isinstance(lexer, ContextualLexer) or parser.options.lexer_callbacks:
        return None
    return LalrLoop(parser, lexer, splitter)


def _read_lexer(basic: object) -> _StateLexer:
    """A state's lexer from lark's; `Fallback` if it does what the loop would not (a
    callback of its own, a skipped terminal with a callback, several expressions)."""
    try:
        expressions = basic.scanner._mres  # type: ignore[attr-defined]
    except AttributeError:  # not a lark lexer of the shape this loop reads
        raise Fallback from None
    if not isinstance(basic, BasicLexer) or len(expressions) != 1:
        raise Fallback
    retype = {}
    for name, callback in basic.callback.items():
        if not isinstance(callback, UnlessCallback) or name in basic.ignore_types:
            raise Fallback
        words = callback.scanner.terminals
        if any(not isinstance(t.pattern, PatternStr) or t.pattern.flags for t in words):
            raise Fallback
        retype[name] = {t.pattern.value: t.name for t in words}
    return expressions[0].match, basic.ignore_types, retype
