"""`Pinning` for adapters that have no connections to share."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator


class NoPinning:
    """Pins nothing: every block runs as it would without a pin."""

    @contextlib.asynccontextmanager
    async def pinned(self) -> AsyncIterator[None]:
        yield

    @contextlib.asynccontextmanager
    async def released(self) -> AsyncIterator[None]:
        yield
