"""Structured logs for long-running commands: one JSON object per line, or readable text.

Fields a log call passes in `extra` (worker_id, job_id, run_id, stage_id,
outcome, duration_ms …) become keys of the JSON object, so log pipelines can
filter on them without parsing messages. Every record is redacted first
(`RedactingFilter`): a worker logs errors and tracebacks that may quote an API
key or a database URL's password, and log pipelines keep what they are sent.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

from wfc.runtime.redact import RedactingFilter

LogFormat = Literal["json", "text"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line: time, level, logger, message, then its extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        exception = _exception_text(self, record)
        if exception:
            entry["exc"] = exception
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Time, level and message, then the extra fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(
            f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and v is not None
        )
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{when} {record.levelname:<7} {record.getMessage()} {extra}".rstrip()
        exception = _exception_text(self, record)
        if exception:
            line += "\n" + exception
        return line


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    """The record's traceback: `exc_text` when a filter set it (redacted), else formatted."""
    if record.exc_text:
        return record.exc_text
    return formatter.formatException(record.exc_info) if record.exc_info else None


def configure(fmt: LogFormat, level: int = logging.INFO) -> None:
    """Send the `wfc` loggers to stderr in `fmt`, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("wfc")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
