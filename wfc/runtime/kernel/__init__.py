"""The kernel and the handlers of its eleven commands."""

from __future__ import annotations

from wfc.runtime.kernel.kernel import Kernel

__all__ = ["Kernel"]
