"""No input a user types into `wfc runs create` ends in a traceback: random JSON values (any
strings, NUL and lone surrogates included, huge and non-finite numbers, deep nesting) and
random text are each created (exit 0) or refused with exit 2 and an `Error:` line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import EXAMPLES
from wfc.cli import cli

PACKAGE = EXAMPLES / "documents" / "document_processor"

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
documents = st.dictionaries(
    st.sampled_from(["document", "title", "language", "extra", "\x00", "\ud800"]),
    values,
    max_size=3,
)
configs = st.dictionaries(
    st.sampled_from(["keywords", "statistics", "summarize", "nosuch"]),
    values | st.dictionaries(st.sampled_from(["top", "words_per_minute", "x"]), values, max_size=2),
    max_size=2,
)
texts = (
    documents.map(lambda value: json.dumps(value, allow_nan=True))
    | st.text(max_size=40)
    | st.integers(min_value=1, max_value=1500).map(lambda depth: "[" * depth + "]" * depth)
)
priorities = st.none() | st.integers(min_value=-(2**40), max_value=2**40).map(str)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(input_text=texts, config=configs.map(json.dumps), priority=priorities)
def test_random_input_to_runs_create_is_created_or_refused_without_a_traceback(
    tmp_path: Path, input_text: str, config: str, priority: str | None
) -> None:
    args = ["runs", "create", "document_processor", "--plan", str(PACKAGE)]
    args += ["--input", input_text, "--config", config, "--db", str(tmp_path / "wfc.db")]
    if priority is not None:
        args += ["--priority", priority]
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert "Error:" in result.output or "error: invalid input" in result.output, result.output
