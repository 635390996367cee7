"""Errors wfc raises, one tree rooted at `WfcError`.

```
WfcError
├── WorkflowLoadError            a plan or its stage classes cannot be loaded
├── MissingStageOutputError      ctx.require() on a stage with no output
├── ConfigValidationError        run config fails a stage's config schema (every field listed)
├── InvalidRunInputError         run input fails the workflow's input model (every field listed)
├── UnknownCommandError          a command message with an unknown `type`
├── WorkflowNotFoundError        no workflow with that id in the registry
├── StageNotFoundError           no stage with that id in the workflow
├── RecordNotFoundError          no run / stage / job with that id
├── StaleVersionError            optimistic-lock conflict on a run or stage row
├── IdempotencyInProgressError   the same command + key is being executed elsewhere
├── RerunRefusedError            run.rerunFrom on a run that cannot be rerun
├── MigrationRefusedError        wfc runs migrate on a run the change would break
└── StageControl                 raised by stage code to steer retries
    ├── RetryStage               retry this attempt (optionally after a given delay)
    └── NonRetryableError        fail the stage now, whatever the retry policy says
```

Compile problems are not exceptions of this tree: the compiler reports them
as diagnostics (`wfc.compiler.CompileError`). Fields are attributes and the
message is built from them, so handlers never parse strings.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


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


def validation_problems(error: ValidationError) -> list[str]:
    """One `path: message` line per failing field of a pydantic validation error."""
    return [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in error.errors()]


class InvalidRunInputError(WfcError):
    """Run input that fails the workflow's input model; nothing was created."""

    def __init__(self, workflow_id: str, problems: list[str]) -> None:
        self.workflow_id = workflow_id
        self.problems = problems
        super().__init__(f"Invalid workflow input for {workflow_id}: " + "; ".join(problems))

    def __reduce__(self) -> tuple[type[InvalidRunInputError], tuple[str, list[str]]]:
        return (type(self), (self.workflow_id, self.problems))


class UnknownCommandError(WfcError):
    """A command message whose `type` names no command."""

    def __init__(self, command_type: str) -> None:
        self.command_type = command_type
        super().__init__(f"Unknown command type: {command_type}")


class WorkflowNotFoundError(WfcError):
    """The registry has no workflow with this id."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"Workflow {workflow_id} not found in registry")


class StageNotFoundError(WfcError):
    """The workflow has no stage with this id."""

    def __init__(self, stage_id: str, workflow_id: str) -> None:
        self.stage_id = stage_id
        self.workflow_id = workflow_id
        super().__init__(f"Stage {stage_id} not found in workflow {workflow_id}")

    def __reduce__(self) -> tuple[type[StageNotFoundError], tuple[str, str]]:
        return (type(self), (self.stage_id, self.workflow_id))


class RecordNotFoundError(WfcError):
    """No row of this kind with this id."""

    def __init__(self, entity: str, record_id: str) -> None:
        self.entity = entity
        self.record_id = record_id
        super().__init__(f"{entity} {record_id} not found")

    def __reduce__(self) -> tuple[type[RecordNotFoundError], tuple[str, str]]:
        return (type(self), (self.entity, self.record_id))


class StaleVersionError(WfcError):
    """Someone else updated the row since it was read; this update changed nothing."""

    def __init__(self, entity: str, record_id: str, expected: int, actual: int) -> None:
        self.entity = entity
        self.record_id = record_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"{entity} {record_id}: expected version {expected}, found {actual}")

    def __reduce__(self) -> tuple[type[StaleVersionError], tuple[str, str, int, int]]:
        return (type(self), (self.entity, self.record_id, self.expected, self.actual))


class ExpectationFailed(WfcError):
    """A transaction that took what it last read as still true (the `expect` of
    `Persistence.lock_run_and_update_stage`) found otherwise, and wrote nothing: the caller
    does it again, reading."""


class IdempotencyKeyReusedError(WfcError):
    """A run was created with this idempotency key from another request: answering with
    that run would silently drop this one's input."""

    def __init__(self, key: str, run_id: str, what: str) -> None:
        self.key = key
        self.run_id = run_id
        self.what = what
        super().__init__(
            f'idempotency key "{key}" already created run {run_id} with a different {what}; '
            "use a new key for a new run, or send the same request to get that run back"
        )

    def __reduce__(self) -> tuple[type[IdempotencyKeyReusedError], tuple[str, str, str]]:
        return (type(self), (self.key, self.run_id, self.what))


class IdempotencyInProgressError(WfcError):
    """The same command with the same key is running now (or crashed less than the TTL ago)."""

    def __init__(self, key: str, command_type: str) -> None:
        self.key = key
        self.command_type = command_type
        super().__init__(
            f'Command "{command_type}" with idempotency key "{key}" is already in progress'
        )

    def __reduce__(self) -> tuple[type[IdempotencyInProgressError], tuple[str, str]]:
        return (type(self), (self.key, self.command_type))


class RerunRefusedError(WfcError):
    """`run.rerunFrom` cannot rerun this run from this stage."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"Cannot rerun run {run_id}: {reason}")

    def __reduce__(self) -> tuple[type[RerunRefusedError], tuple[str, str]]:
        return (type(self), (self.run_id, self.reason))


class SignalRefusedError(WfcError):
    """`run.signal` cannot send this signal to this run (no such run, it finished, its
    workflow declares no such signal, or the key was used for another signal); nothing
    was kept."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"Cannot signal run {run_id}: {reason}")

    def __reduce__(self) -> tuple[type[SignalRefusedError], tuple[str, str]]:
        return (type(self), (self.run_id, self.reason))


class InvalidSignalPayloadError(WfcError):
    """A signal's payload does not fit the schema its workflow declares; nothing was kept."""

    def __init__(self, name: str, problems: list[str]) -> None:
        self.name = name
        self.problems = problems
        super().__init__(f"Invalid payload for signal {name}: " + "; ".join(problems))

    def __reduce__(self) -> tuple[type[InvalidSignalPayloadError], tuple[str, list[str]]]:
        return (type(self), (self.name, self.problems))


class MigrationRefusedError(WfcError):
    """`wfc runs migrate` cannot move this run onto the new plan."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"Cannot migrate run {run_id}: {reason}")

    def __reduce__(self) -> tuple[type[MigrationRefusedError], tuple[str, str]]:
        return (type(self), (self.run_id, self.reason))


class StageControl(WfcError):
    """Raised by stage code to tell the kernel how to treat this failure."""


class RetryStage(StageControl):
    """Fail this attempt and retry it (after `delay`, else the policy's backoff) if attempts remain."""

    def __init__(self, message: str, *, delay: timedelta | None = None) -> None:
        self.delay = delay
        super().__init__(message)


class NonRetryableError(StageControl):
    """Fail the stage at once: retrying cannot help (bad data, a rejected request)."""
