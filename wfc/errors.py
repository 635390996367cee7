"""Errors wfc raises, one tree rooted at `WfcError`.

```
WfcError
├── WorkflowLoadError        a plan or its stage classes cannot be loaded
├── MissingStageOutputError  ctx.require() on a stage with no output
└── ConfigValidationError    run config fails a stage's config schema (every field listed)
```

Compile problems are not exceptions of this tree: the compiler reports them
as diagnostics (`wfc.compiler.CompileError`). Fields are attributes and the
message is built from them, so handlers never parse strings.
"""

from __future__ import annotations


class WfcError(Exception):
    """Root of every error wfc raises on purpose."""


class WorkflowLoadError(WfcError):
    """A plan file or a stage implementation it names cannot be loaded."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"cannot load {what}: {reason}")

    def __reduce__(self) -> tuple[type[WorkflowLoadError], tuple[str, str]]:
        return (type(self), (self.what, self.reason))


class MissingStageOutputError(WfcError):
    """A stage asked for the output of a stage that has none in this run."""

    def __init__(self, *, stage_id: str, available: list[str]) -> None:
        self.stage_id = stage_id
        self.available = available
        listed = ", ".join(available) if available else "none"
        super().__init__(f'Missing required stage output: "{stage_id}". Available stages: {listed}')

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_missing, (self.stage_id, self.available))


def _rebuild_missing(stage_id: str, available: list[str]) -> MissingStageOutputError:
    return MissingStageOutputError(stage_id=stage_id, available=available)


class ConfigValidationError(WfcError):
    """Run config that fails the config schema of one or more stages."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        self.problems = problems
        parts = [f"{sid}: {'; '.join(msgs)}" for sid, msgs in problems.items()]
        super().__init__("Invalid workflow config: " + ", ".join(parts))

    def __reduce__(self) -> tuple[type[ConfigValidationError], tuple[dict[str, list[str]]]]:
        return (type(self), (self.problems,))
