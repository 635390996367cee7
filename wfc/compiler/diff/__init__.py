"""`wfc diff`: is a change of plan safe for the runs in flight?

`diff_plans(old, new)` lists what changed between two plans of a workflow,
each change with a stable code, a one-line message, a verdict for the runs
in flight (`compatible`, `breaking`, or `breaking_if_started` some stages)
and, when a side was a `.wf` source, where it is. `PlanDiff.safe_for(started)`
says whether one run, by the stages it has started, can move to the new plan.
`load_side` turns what a user names (a source, a package, a plan.json) into a
plan with its source map. The rules and their reasons are in `docs/upgrades.md`.
"""

from __future__ import annotations

from wfc.compiler.diff.context import SourceMap
from wfc.compiler.diff.model import SEVERITY, Change, Location, PlanDiff, Verdict
from wfc.compiler.diff.rules import diff_plans
from wfc.compiler.diff.schemas import is_subschema
from wfc.compiler.diff.sources import FingerprintLookup, Loaded, LoadError, load_side

__all__ = [
    "SEVERITY",
    "Change",
    "FingerprintLookup",
    "LoadError",
    "Loaded",
    "Location",
    "PlanDiff",
    "SourceMap",
    "Verdict",
    "diff_plans",
    "is_subschema",
    "load_side",
]
