"""Calling stage code: awaited or run in a thread, under the stage's timeout, and what it
raises turned into the attempt's `Failure`."""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Callable
from types import FunctionType
from typing import Any
from weakref import WeakKeyDictionary

from wfc.errors import NonRetryableError, RetryStage
from wfc.plan import PlanStage
from wfc.runtime.kernel.outcomes import Failure


def describe_error(error: BaseException) -> str:
    """`ClassName: message`, or just the message for a bare `Exception` (not redacted yet:
    `run_execute` and `run_check` redact every failure they return, whatever made it)."""
    text = str(error) or repr(error)
    return text if type(error) is Exception else f"{type(error).__name__}: {text}"


# Weakly: a test suite may define stage classes by the thousand, each with its function.
_COROUTINE_FUNCTIONS: WeakKeyDictionary[FunctionType, bool] = WeakKeyDictionary()


def _is_coroutine_function(method: Callable[..., Any]) -> bool:
    """`inspect.iscoroutinefunction`, remembered per function: it unwraps and inspects the
    method on every call, and a stage's method is called once per stage, from a bound
    method made anew each time around the same function. Anything but a plain function
    or a method of one is asked every time."""
    function = getattr(method, "__func__", method)
    if type(function) is not FunctionType:
        return inspect.iscoroutinefunction(method)
    answer = _COROUTINE_FUNCTIONS.get(function)
    if answer is None:
        answer = _COROUTINE_FUNCTIONS[function] = inspect.iscoroutinefunction(method)
    return answer


async def call(method: Callable[..., Any], *args: Any) -> Any:
    """Call stage code: awaited when it is a coroutine function, else in a worker thread
    (so it never blocks the event loop), and its result awaited if it is awaitable."""
    if _is_coroutine_function(method):
        return await method(*args)
    result = await asyncio.to_thread(method, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def guarded(stage: PlanStage, call: Callable[[], Any]) -> tuple[Any, Failure | None]:
    """Run stage code under the stage's timeout, turning what it raises into a `Failure`."""
    if not stage.timeout_ms:  # no scope to enter: a `timeout(None)` scope cost 2 µs a stage
        try:
            return await call(), None
        except Exception as error:
            return None, failure_from(stage, error)
    seconds = stage.timeout_ms / 1000
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await call(), None
    except TimeoutError as error:
        if scope.expired():
            return None, Failure(
                error=f"StageTimeoutError: Stage {stage.id} timed out after {stage.timeout_ms} ms"
            )
        return None, failure_from(stage, error)
    except Exception as error:
        return None, failure_from(stage, error)


TRACEBACK_CHARS = 8_000
"""How much of a stage's traceback is kept: its end, where the frames that raised are."""


def failure_from(stage: PlanStage, error: Exception) -> Failure:
    """What stage code raised, as the attempt's failure (retryable as the stage allows)."""
    if isinstance(error, RetryStage):
        return Failure(error=str(error), retry_delay=error.delay)
    where = "".join(traceback.format_exception(error))[-TRACEBACK_CHARS:]
    if isinstance(error, NonRetryableError | NotImplementedError):
        # Code not written yet (a generated stub's `execute`) fails the same way at every
        # attempt: retrying only makes a new project's first `wfc run` wait for its backoff.
        return Failure(error=describe_error(error), retryable=False, traceback=where)
    retryable = type(error).__name__ not in stage.retry.non_retryable
    return Failure(error=describe_error(error), retryable=retryable, traceback=where)
