"""`wfc diff` output: text for people, JSON for tools, GitHub annotations for pull requests."""

from __future__ import annotations

import json
from typing import Any

from wfc.compiler.diff.model import SEVERITY, Change, PlanDiff, Verdict
from wfc.compiler.diff.sources import Loaded

_TITLES = {
    Verdict.BREAKING: "breaking: harms every run in flight",
    Verdict.BREAKING_IF_STARTED: "breaking if started: harms the runs that started the stages named",
    Verdict.COMPATIBLE: "compatible",
}


def summary(diff: PlanDiff) -> str:
    """One line: how many changes of each verdict, and what that means for the runs."""
    if diff.identical:
        return "the plans are identical: every run in flight can move to the new one"
    counts = [
        f"{len(diff.by_verdict(v))} {v.value.replace('_', ' ')}"
        for v in SEVERITY
        if diff.by_verdict(v)
    ]
    total = len(diff.changes)
    verdict = (
        "safe for every run in flight" if diff.compatible else "not safe for every run in flight"
    )
    return f"{total} change{'s' if total != 1 else ''} ({', '.join(counts)}): {verdict}"


def to_text(diff: PlanDiff, old: Loaded, new: Loaded) -> str:
    """The changes grouped by verdict, worst first, one line each, then a summary:
    `breaking  pipeline.wf:12:5  stage-removed  message  [runs that started …]`."""
    lines = [f"wfc diff {old.origin} → {new.origin} (workflow {diff.workflow_id})"]
    rows = [
        (change.verdict.value, str(change.location or "-"), change.code, change)
        for verdict in SEVERITY
        for change in diff.by_verdict(verdict)
    ]
    width_place = max((len(place) for _, place, _, _ in rows), default=0)
    width_code = max((len(code) for _, _, code, _ in rows), default=0)
    current = None
    for verdict, place, code, change in rows:
        if verdict != current:
            current = verdict
            lines += ["", _TITLES[change.verdict]]
        when = (
            f"  [{change.condition}]"
            if change.verdict is Verdict.BREAKING_IF_STARTED or change.unless_started
            else ""
        )
        lines.append(
            f"  {verdict:<19}  {place:<{width_place}}  {code:<{width_code}}  {change.message}{when}"
        )
    lines += ["", summary(diff)]
    return "\n".join(lines) + "\n"


def to_json(diff: PlanDiff, old: Loaded, new: Loaded) -> str:
    """The diff as a JSON object: where each side came from, then `PlanDiff.to_json()`."""
    data: dict[str, Any] = {
        "old": {"origin": old.origin, "kind": old.kind},
        "new": {"origin": new.origin, "kind": new.kind},
        **diff.to_json(),
        "summary": summary(diff),
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _escape(value: str, *, property_value: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def _annotation(change: Change) -> str:
    level = "notice" if change.verdict is Verdict.COMPATIBLE else "error"
    props = {"title": f"wfc diff: {change.code} ({change.verdict.value})"}
    if change.location is not None:
        loc = change.location
        props |= {"file": loc.file, "line": str(loc.line), "col": str(loc.column)}
        props |= {"endLine": str(loc.end_line), "endColumn": str(loc.end_column)}
    message = change.message
    if change.verdict is not Verdict.COMPATIBLE:
        message += f"\nbreaks: {change.condition}"
    rendered = ",".join(f"{k}={_escape(v, property_value=True)}" for k, v in props.items())
    return f"::{level} {rendered}::{_escape(message)}"


def to_github(diff: PlanDiff) -> str:
    """GitHub Actions workflow commands: an error per breaking change, a notice per
    compatible one, on the line of the new source where each is (when known)."""
    lines = [_annotation(c) for verdict in SEVERITY for c in diff.by_verdict(verdict)]
    return "\n".join(lines) + ("\n" if lines else "")
