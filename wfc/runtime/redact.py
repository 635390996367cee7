"""Keeping secrets out of what wfc stores and prints.

A stage that fails with `ValueError(f"bad key {key}")`, or logs the URL it
connected to, would otherwise put an API key or a database password into the
stage row, the job's last error, the run's error, the logs, the outbox (and so
every plugin) and the terminal. `redact` masks, in any text:

- the value of every environment variable whose name says it holds a secret:
  one ending in `API_KEY`, `TOKEN`, `SECRET`, `PASSWORD` or `PASSWD`, or with
  one of those between underscores (`OPENAI_API_KEY`, `GITHUB_TOKEN`,
  `PGPASSWORD`, `AWS_SECRET_ACCESS_KEY`). That covers every provider key the
  AI helper reads (`wfc.runtime.ai.secrets.KEY_VARIABLES`, which needs the
  optional `ai` extra to import; a test pins it). Values shorter than
  `MIN_SECRET_LENGTH` are left alone, since masking "dev" or "1" everywhere
  would garble messages and protect nothing;
- the password of a URL: `postgresql://app:hunter2@db/x` becomes
  `postgresql://app:***@db/x`, whatever its length, since it is a password
  by position.

It is applied where text enters storage or output: a stage's error and its
log lines and progress (`wfc.runtime.kernel.invoke`), `wfc runs show` and the
live view of `wfc run`, and the CLI's log handler (`RedactingFilter`). The
environment is read at each call, so a variable set after start-up is
covered; the list of secret values is rebuilt only when the environment
changed (comparing its items costs about a microsecond, scanning it about
fifty).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
MIN_SECRET_LENGTH = 6

# A word that says a variable holds a secret, ending its name (`MY_API_KEY`, `HF_TOKEN`,
# `PGPASSWORD`) or as a part of it between underscores (`AWS_SECRET_ACCESS_KEY`).
_SECRET_WORD = "(?:API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD)"
_SECRET_NAME = re.compile(rf"{_SECRET_WORD}$|(?:^|_){_SECRET_WORD}_")
# `scheme://user:password@`: the user part has no `:/?#@`, the password runs to the `@`.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*:)[^\s/?#@]+@")

_cache_key: object = None
_cache_values: tuple[str, ...] = ()


def is_secret_name(name: str) -> bool:
    """Whether an environment variable of this name holds a secret to keep out of text."""
    return _SECRET_NAME.search(name.upper()) is not None


def secret_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The values to mask: those of secret-named variables in `environ` (default: the
    process environment), long enough to be worth it, longest first so a secret that
    contains another is masked whole."""
    if environ is not None:
        return _scan(environ)
    global _cache_key, _cache_values
    key = _fingerprint()
    if key != _cache_key:
        _cache_values, _cache_key = _scan(os.environ), key
    return _cache_values


def _fingerprint() -> object:
    # CPython keeps the environment in `os.environ._data`; a tuple of its items is built
    # without decoding a single value, and compares equal exactly when nothing changed.
    data = getattr(os.environ, "_data", None)
    return tuple(data.items()) if isinstance(data, dict) else tuple(os.environ.items())


def _scan(environ: Mapping[str, str]) -> tuple[str, ...]:
    found = {
        value
        for name, value in environ.items()
        if len(value) >= MIN_SECRET_LENGTH and is_secret_name(name)
    }
    return tuple(sorted(found, key=len, reverse=True))


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with secret values and URL passwords replaced by `***`."""
    for value in secret_values(environ):
        if value in text:
            text = text.replace(value, MASK)
    if "://" in text:
        text = _URL_PASSWORD.sub(_mask_password, text)
    return text


def _mask_password(match: re.Match[str]) -> str:
    # A function, not a `\g<head>` template: the template is parsed again on each call.
    return f"{match['head']}{MASK}@"


def redact_data(value: Any) -> Any:
    """JSON data with every string in it (keys too) redacted; other values as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(k) if isinstance(k, str) else k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(item) for item in value]
    return value


_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class RedactingFilter(logging.Filter):
    """Redacts a log record before any handler formats it: its message (with its
    arguments merged in), the string `extra` fields and a logged exception's traceback.

    Install it on a handler, not a logger: a logger's filters see only the records
    logged on it, not those its children propagate.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRIBUTES and isinstance(value, str | Mapping | list):
                setattr(record, name, redact_data(value))
        if record.exc_info and not record.exc_text:
            # Formatters print `exc_text` when it is set rather than formatting again.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
