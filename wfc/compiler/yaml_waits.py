"""The YAML form of signals and built-in stages → the same AST as the `.wf` text.

```yaml
workflow:
  signals:
    approve: {approved: bool, by: str, note: "str?"}   # the payload's fields
    decided: Decision                                   # or a declared type
    ping: ~                                             # or no payload
  stages:
    cool_off: {sleep: 1h}                               # or: sleep: until input.publish_at
    approval:
      wait_for: approve, timeout 2d, on timeout continue
      # or: {signal: approve, timeout: 2d, on_timeout: continue}
```

Each takes the `.wf` text or, for a wait, a mapping of its parts, as `map` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yaml.nodes import Node, ScalarNode

from wfc.compiler import ast
from wfc.compiler.yaml_fleet import FleetReader

_NONE = ("", "~", "null")


class WaitReader(FleetReader):
    """Readers for `signals`, `sleep` and `wait_for`."""

    def record_spec(self, node: Node, what: str) -> ast.RecordSpec:
        """A record or a type name (the YAML front end's own reader)."""
        raise NotImplementedError

    def signals(self, node: Node) -> tuple[ast.Signal, ...]:
        """`signals: {name: payload}`: the payload's fields, a type name, or `~` for none."""
        found = []
        for key, value in self.mapping(node, "`signals`"):
            empty = isinstance(value, ScalarNode) and value.value in _NONE and not value.style
            payload = None if empty else self.record_spec(value, f"signal `{key.value}`")
            found.append(
                ast.Signal(
                    name=self.name(key, "a signal name"), payload=payload, span=self.span(key)
                )
            )
        return tuple(found)

    def stage_waits(self, get: Callable[[str], Node | None]) -> dict[str, Any]:
        """A stage's `sleep` and `wait_for`, as keyword arguments of `ast.Stage`."""
        settings: dict[str, Any] = {}
        if (v := get("sleep")) is not None:
            sleep = self.fragment(self.scalar(v, "`sleep`"), "sleep_spec")
            assert isinstance(sleep, ast.Sleep)
            settings["sleeps"] = (sleep,)
        if (v := get("wait_for")) is not None:
            settings["waits"] = (self.wait(v),)
        return settings

    def wait(self, node: Node) -> ast.Wait:
        """`wait_for: approve, timeout 2d, on timeout continue` or
        `{signal: approve, timeout: 2d, on_timeout: continue}`."""
        if isinstance(node, ScalarNode):
            result = self.fragment(node, "wait_spec")
            assert isinstance(result, ast.Wait)
            return result
        keys = self.keys(node, {"signal", "timeout", "on_timeout"}, "`wait_for`")
        if "signal" not in keys:
            raise self.fail(
                node, "`wait_for` needs `signal`, the signal's name", "add `signal: approve`"
            )
        timeouts: tuple[ast.Duration, ...] = ()
        if "timeout" in keys:
            duration = self.fragment(self.scalar(keys["timeout"][1], "`timeout`"), "duration_spec")
            assert isinstance(duration, ast.Duration)
            timeouts = (duration,)
        policy = (self.name(keys["on_timeout"][1], "`on_timeout`"),) if "on_timeout" in keys else ()
        return ast.Wait(
            signal=self.name(keys["signal"][1], "`signal`"),
            timeouts=timeouts,
            on_timeout=policy,
            span=self.span(node),
        )
