"""The maintenance tick makes its commands once per settings, and a setting no command
accepts still fails its own step on every tick while the others run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from tests.kernel.conftest import Script, build_workflows
from wfc.runtime.commands import OutboxFlush, StagePollSuspended
from wfc.runtime.hosts import MaintenanceSettings, maintenance_tick
from wfc.testing import TestKernel, make_test_kernel


def _recording(tk: TestKernel, monkeypatch: pytest.MonkeyPatch) -> list[BaseModel]:
    seen: list[BaseModel] = []
    dispatch = tk.kernel.dispatch

    async def recording(command: Any) -> Any:
        seen.append(command)
        return await dispatch(command)

    monkeypatch.setattr(tk.kernel, "dispatch", recording)
    return seen


async def test_two_ticks_with_the_same_settings_dispatch_the_same_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tk = make_test_kernel(*build_workflows(Script()))
    seen = _recording(tk, monkeypatch)
    settings = MaintenanceSettings(worker_id="tick-commands")
    await maintenance_tick(tk.kernel, settings)
    first = list(seen)
    seen.clear()
    await maintenance_tick(tk.kernel, MaintenanceSettings(worker_id="tick-commands"))
    assert [type(c).__name__ for c in seen] == [type(c).__name__ for c in first]
    assert all(again is before for again, before in zip(seen, first, strict=True))
    assert any(isinstance(c, OutboxFlush) for c in first)


async def test_a_setting_no_command_takes_fails_its_step_on_every_tick() -> None:
    tk = make_test_kernel(*build_workflows(Script()))
    settings = MaintenanceSettings(
        worker_id="tick-commands", max_suspended_checks=0, stale_lease_threshold=timedelta(0)
    )
    for _ in range(2):
        tick = await maintenance_tick(tk.kernel, settings, quiet=True)
        assert tick.errors == ["poll"]  # `max_checks` must be at least 1
    assert StagePollSuspended.model_fields["max_checks"].default == 50
