"""`Pinning` for adapters that have no connections to share."""

from __future__ import annotations


class _Nothing:
    """An async context that does nothing. A class, not an `asynccontextmanager`: the
    kernel enters about five pins per stage, and an async generator each was a cost."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        return None


_NOTHING = _Nothing()


class NoPinning:
    """Pins nothing: every block runs as it would without a pin."""

    def pinned(self) -> _Nothing:
        return _NOTHING

    def released(self) -> _Nothing:
        return _NOTHING
