"""Parser callbacks for child-workflow stages (`stage enrich runs enrich_customer { … }`).

`AstBuilder` (in `transformer`) inherits these, as it does the fleet callbacks. The
name after `runs` is kept as written; the checker resolves it to a workflow.
"""

from __future__ import annotations

from lark import Token

from wfc.compiler import ast
from wfc.compiler.reduce_actions import Reduced
from wfc.compiler.transformer_fleet import FleetCallbacks


class ChildCallbacks(FleetCallbacks):
    """The `stage_runs` callback."""

    def stage_runs(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Name]:
        return ("runs", self._name(items[0]))
