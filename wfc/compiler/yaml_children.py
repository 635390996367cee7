"""The YAML form of a child-workflow stage: `enrich: {runs: enrich_customer, retry: 3 times}`.

`_Builder` (in `yaml_front`) inherits this reader, as it does the fleet readers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yaml.nodes import Node

from wfc.compiler.yaml_fleet import FleetReader


class ChildReader(FleetReader):
    """The reader of a stage's `runs`."""

    def stage_child(self, get: Callable[[str], Node | None]) -> dict[str, Any]:
        """A stage's `runs: <workflow>`, as keyword arguments of `ast.Stage`."""
        node = get("runs")
        if node is None:
            return {}
        return {"runs": self.name(node, "the id of the workflow the stage runs")}
