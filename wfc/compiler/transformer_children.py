"""Lark callbacks for child-workflow stages (`stage enrich runs enrich_customer { … }`).

`AstBuilder` (in `transformer`) inherits these, as it does the fleet callbacks. The
name after `runs` is kept as written; the checker resolves it to a workflow.
"""

from __future__ import annotations

from lark import Token, v_args
from lark.tree import Meta

from wfc.compiler import ast
from wfc.compiler.transformer_fleet import FleetCallbacks


@v_args(meta=True)
class ChildCallbacks(FleetCallbacks):
    """The `stage_runs` callback; a transformer itself so that `v_args` wraps it here."""

    def stage_runs(self, meta: Meta, items: list[Token]) -> tuple[str, ast.Name]:
        return ("runs", self._name(items[0]))
