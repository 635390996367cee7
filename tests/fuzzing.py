"""Random mutations of real workflow files, for the checker's no-traceback fuzzing.

Shared by `tests/property/test_checker_fuzz.py` (a few thousand cases per CI run)
and `benchmarks/fuzz_checker.py` (as many as you like). Mutations start from the
example `.wf` files and a `.wf.yaml` form and delete, duplicate and swap characters
and tokens, and insert characters the language never uses (NUL, a BOM, right-to-left
marks, astral-plane letters), so most cases are near-misses of valid files: the
inputs a user with a typo actually has.
"""

from __future__ import annotations

import random
import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wfc.compiler.codegen import render_package
from wfc.compiler.driver import check_paths, compile_path

ROOT = Path(__file__).resolve().parent.parent

YAML_SEED = """\
workflow:
  id: reviews
  name: Reviews
  enums: {Mood: [happy, sad]}
  types: {Score: {value: "float (0.0 .. 1.0)", label: "str?"}}
  input: {text: "str (len >= 1)", language: 'str = "en"'}
  output: {mood: Mood, score: Score}
  stages:
    clean:
      name: Clean
      input: {text: str, language: str}
      output: {text: str}
      retry: 3 times, backoff exponential 1s x2 max 1m
      timeout: 2m
    judge:
      name: Judge
      async: true
      input: from clean
      output: {mood: Mood, score: Score}
      config: {threshold: "float = 0.5"}
      poll: every 1m, give up after 24h
      priority: 7
    tally: {input: none, needs: [clean, judge], output: {mood: Mood, score: Score}}
  flow: clean -> judge -> tally
"""

ODD_CHARACTERS = [
    "\x00", "\ufeff", "\u202e", "\u200b", "\r", "\t", "\x0b", "é", "ß", "\U0001d518", "😀",
    "{", "}", "[", "]", "(", ")", '"', "'", "#", "##", ":", ",", "?", "->", "..", "\\", "\n",
    "-", "1e999", "9" * 40, "9" * 5000, "&a", "*a", "!!python/object", "---", "%YAML 1.2",
]  # fmt: skip
"""Characters the language does not expect where they land."""

DEEP = ["[" * 3000, "{a: " * 1000, "(" * 3000, "not " * 1500, "- " * 1000, "list[" * 500]
"""Runs that nest past any recursion limit: a recursive reader fails on them."""

_TOKEN = re.compile(r"\s+|[A-Za-z_][A-Za-z0-9_]*|[0-9.eE+-]+|\"[^\"\n]*\"|.")


def seeds() -> list[tuple[str, str]]:
    """(file name, text) of every example `.wf` and of the YAML form."""
    found = [(p.name, p.read_text(encoding="utf-8")) for p in sorted(ROOT.glob("examples/*/*.wf"))]
    return [*found, ("reviews.wf.yaml", YAML_SEED)]


def mutate(text: str, rng: random.Random) -> str:
    """One to four random edits of characters or tokens."""
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.5:
            text = _edit_chars(text, rng)
        else:
            tokens = _TOKEN.findall(text)
            text = "".join(_edit_tokens(tokens, rng)) if tokens else text
    return text


def _edit_chars(text: str, rng: random.Random) -> str:
    if not text:
        return rng.choice(ODD_CHARACTERS)
    i = rng.randrange(len(text))
    j = min(len(text), i + rng.choice([1, 1, 2, 5, 20]))
    match rng.randrange(5):
        case 0:
            return text[:i] + text[j:]
        case 1:
            return text[:j] + text[i:j] * rng.choice([1, 2, 50]) + text[j:]
        case 2:
            k = rng.randrange(len(text))
            chars = list(text)
            chars[i], chars[k] = chars[k], chars[i]
            return "".join(chars)
        case 3:
            odd = rng.choice([*ODD_CHARACTERS, chr(rng.randrange(0x20, 0xD7FF))])
            return text[:i] + odd + text[i:]
        case _:
            return text[:i] + rng.choice(DEEP) + text[i:]


def _edit_tokens(tokens: list[str], rng: random.Random) -> list[str]:
    i, k = rng.randrange(len(tokens)), rng.randrange(len(tokens))
    match rng.randrange(3):
        case 0:
            del tokens[i]
        case 1:
            tokens.insert(i, tokens[k])
        case _:
            tokens[i], tokens[k] = tokens[k], tokens[i]
    return tokens


@dataclass(slots=True)
class Crash:
    """A case that raised: its source and the traceback, to paste into a test."""

    name: str
    source: str
    error: str


def run_cases(cases: int, seed: int, workdir: Path) -> Iterator[Crash]:
    """Check `cases` mutants in-process as `wfc check` would, and compile the ones it
    accepts; yield every case that raised instead of returning diagnostics."""
    rng = random.Random(seed)
    sources = seeds()
    for n in range(cases):
        name, text = rng.choice(sources)
        source = mutate(text, rng)
        case_dir = workdir / f"case{n % 50}"
        case_dir.mkdir(parents=True, exist_ok=True)
        for old in case_dir.iterdir():
            if old.is_file():
                old.unlink()
        path = case_dir / name
        path.write_text(source, encoding="utf-8", errors="surrogatepass")
        try:
            result = check_paths([path])
            if result.ok:
                compiled = compile_path(path, case_dir / "out", check=True)
                if compiled.workflow is not None and compiled.plan is not None:
                    render_package(compiled.workflow, compiled.plan)
        except Exception:
            yield Crash(name=name, source=source, error=traceback.format_exc(limit=-6))
