"""`lalr_loop` parses what lark parses the way lark does: the same tokens (type, text, and
all six positions), the same reductions in the same order, and at a syntax error it
gives up (`Fallback`) exactly where lark raises, so lark's error is the one reported."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lark import Token, UnexpectedInput

from tests.fuzzing import mutate, seeds
from wfc.compiler.lalr_loop import Fallback, LalrLoop, lalr_loop
from wfc.compiler.parser import FRAGMENT_RULES, _parser
from wfc.compiler.reduce_actions import _lark_parse, _table_rules

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "examples").rglob("*.wf")) + sorted(
    (ROOT / "tests" / "golden" / "cases").rglob("*.wf")
)
GLUED = """workflow w {
  stage a {
    retry 3 times, backoff exponential 1s x2 max 1m
    retry 2 times, backoff exponential 1s x 1.5, never on Timeout
    timeout 1e5
    poll every 30s, give up after 1h30m
    when input.n >= 1e5 and length == "length" # a comment
    ## a doc
  }
}
"""


def _loop() -> LalrLoop:
    loop = lalr_loop(_parser())
    assert loop is not None
    return loop


def _token(token: Token) -> tuple[Any, ...]:
    return (
        token.type,
        str(token),
        token.value,
        token.start_pos,
        token.line,
        token.column,
        token.end_line,
        token.end_column,
        token.end_pos,
    )


def _recording(rules: list[Any], seen: list[Any]) -> dict[int, Any]:
    """A callback per rule that notes the rule and its children (tokens in full)."""

    def action(index: int) -> Any:
        def reduce(children: list[Any]) -> Any:
            kids = [_token(c) if isinstance(c, Token) else c for c in children]
            seen.append((index, kids))
            return len(seen)

        return reduce

    return {id(rule): action(i) for i, rule in enumerate(rules)}


def _both(text: str, start: str = "start") -> tuple[Any, Any]:
    """What the loop and lark each did with `text`: the reductions, or that it raised."""
    loop, rules = _loop(), _table_rules(_parser())
    fast: list[Any] = []
    by_id = _recording(rules, fast)
    try:
        loop.parse(text, start, [by_id[id(rule)] for rule in loop.rules])
    except Fallback:
        fast.append("error")
    slow: list[Any] = []
    by_id = _recording(rules, slow)
    try:
        _lark_parse(_parser(), text, start, {rule: by_id[id(rule)] for rule in rules})
    except UnexpectedInput:
        slow.append("error")
    return fast, slow


@pytest.mark.parametrize(
    "text",
    [GLUED, *(path.read_text(encoding="utf-8") for path in SOURCES)],
    ids=["glued", *(path.name for path in SOURCES)],
)
def test_the_loop_reduces_as_lark_does(text: str) -> None:
    fast, slow = _both(text)
    assert fast == slow
    assert len(fast) > 5


def test_words_are_keywords_only_where_the_parser_takes_them() -> None:
    """`stage stage`: the second is a name; `length` is one name, not `len` + `gth`."""
    fast, slow = _both("workflow stage { stage stage { when length == 1 } }")
    assert fast == slow
    tokens = sorted((kid[3], kid[:2]) for _, kids in fast for kid in kids if type(kid) is tuple)
    words = [token for _, token in tokens if token[1] in ("stage", "length")]
    assert words == [("NAME", "stage"), ("STAGE", "stage"), ("NAME", "stage"), ("NAME", "length")]


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ("retry_body", "3 times, backoff exponential 1s x2"),
        ("duration_spec", "1h30m"),
        ("condition_spec", "not (a.b in [1, 2]) or c != null"),
        ("wait_spec", "approve, timeout 2d, on timeout continue"),
        ("map_spec", "split.pages, at most 16 at once"),
    ],
)
def test_fragments_reduce_as_lark_does(rule: str, text: str) -> None:
    assert rule in FRAGMENT_RULES
    fast, slow = _both(text, rule)
    assert fast == slow
    assert "error" not in fast


def test_mutated_files_reduce_or_fail_as_lark_does() -> None:
    """Near-misses of real files: where lark fails the loop fails, up to the same point."""
    rng = random.Random(26)
    texts = [text for _, text in seeds() if not text.lstrip().startswith("workflow:")]
    failed = 0
    for _ in range(300):
        fast, slow = _both(mutate(rng.choice(texts), rng))
        assert fast == slow
        failed += fast[-1:] == ["error"]
    assert 0 < failed < 300


def test_the_parser_builds_without_a_writable_cache_directory(tmp_path: Path) -> None:
    """A read-only home (no cache directory can be made): the parser is built in memory,
    and files still parse through the loop."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    script = (
        "from pathlib import Path\n"
        "from wfc.compiler import ast\n"
        "from wfc.compiler.parser import _tables_cache, parse_source\n"
        "from wfc.compiler.reduce_actions import _loop\n"
        "from wfc.compiler.parser import _parser\n"
        "from wfc.compiler.source import SourceFile\n"
        "assert _tables_cache() is False\n"
        "assert _loop(_parser()) is not None\n"
        "text = 'workflow w { stage a { timeout 30s } flow a }'\n"
        "assert isinstance(parse_source(SourceFile(path=Path('w.wf'), text=text)), ast.Module)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(blocker / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_a_lark_release_the_loop_was_not_checked_against_parses_with_lark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lark

    monkeypatch.setattr(lark, "__version__", "1.9.0")
    assert lalr_loop(_parser()) is None
    monkeypatch.setattr(lark, "__version__", "1.3.7")
    assert lalr_loop(_parser()) is not None


def test_tables_of_another_shape_make_the_loop_step_aside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Reshaped:  # a release whose parse table no longer has `start_states`
        states: dict[Any, Any] = {}

    parser = _parser()
    monkeypatch.setattr(parser.parser.parser.parser, "parse_table", Reshaped())
    assert lalr_loop(parser) is None
