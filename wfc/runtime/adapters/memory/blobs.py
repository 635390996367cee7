"""A `BlobStore` in a dict."""

from __future__ import annotations

from collections.abc import Sequence

from wfc.runtime.stage import MemoryBlobs


class MemoryBlobStore(MemoryBlobs):
    """`MemoryBlobs` plus prefix listing, the full `BlobStore` port."""

    async def list(self, prefix: str) -> list[str]:
        return sorted(key for key in self.data if key.startswith(prefix))

    async def delete_prefixes(self, prefixes: Sequence[str]) -> int:
        chosen = tuple(prefixes)
        doomed = [key for key in self.data if chosen and key.startswith(chosen)]
        for key in doomed:
            del self.data[key]
        return len(doomed)

    def size(self) -> int:
        """How many blobs are stored."""
        return len(self.data)

    def clear(self) -> None:
        """Forget every blob."""
        self.data.clear()
