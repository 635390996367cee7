"""`Given`: an `async with` that gives a value already there, and does nothing else.

Both stores hand one out where a port's call opens a context but nothing is to be
begun: a nested `transaction()` joins the transaction it is called on, and a
transaction's `outbox_flusher()` is that transaction. A class rather than an
`asynccontextmanager`: the kernel opens about ten contexts per stage, and an async
generator with its wrapper per context was a measured cost.
"""

from __future__ import annotations

from typing import Generic, TypeVar

GivenT = TypeVar("GivenT")


class Given(Generic[GivenT]):
    """`async with Given(value) as same:` gives `value`; entering and leaving do nothing."""

    __slots__ = ("_value",)

    def __init__(self, value: GivenT) -> None:
        self._value = value

    async def __aenter__(self) -> GivenT:
        return self._value

    async def __aexit__(self, *_exc: object) -> None:
        return None
