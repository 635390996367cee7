"""Host processes (`wfc run`, `wfc worker`) run on uvloop, which a worker's CPU per stage
depends on (see `wfc.runtime.hosts.event_loop`)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from wfc.cli.session import run_leaving_threads

uvloop = pytest.importorskip("uvloop") if sys.platform != "win32" else None


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


@pytest.mark.skipif(uvloop is None, reason="uvloop is not installed on Windows")
def test_cli_hosts_run_on_uvloop() -> None:
    assert uvloop is not None
    assert issubclass(run_leaving_threads(_loop_type()), uvloop.Loop)
