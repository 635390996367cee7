"""What stage code sees and returns: contexts, base classes, `Suspend` and completions.

Generated `_stages.py` files subclass these with concrete types, so a user's
`execute(self, ctx: ExtractContext) -> ExtractOutput` is checked by mypy
against the workflow's schemas. The kernel supplies a `StageServices`
implementation (logging, progress, artifacts, blobs); `RecordingServices`
keeps them in memory, which is what unit tests of a single stage want.

Progress details and JSON artifacts are checked to be JSON data when the stage
passes them, so a mistake fails at the line that made it, not later in the
kernel where the call is long gone.

"async" in `AsyncStage` means the stage may suspend and be polled later
(the seed's async-batch mode). Either kind may implement `execute` as a plain
`def` (run in a worker thread) or an `async def` (awaited).
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

from wfc.errors import MissingStageOutputError, NonRetryableError, WfcError
from wfc.runtime.json_text import validated_from_text
from wfc.runtime.ports import BlobAccess as BlobAccess  # re-exported: stage code imports it here
from wfc.runtime.stage_outputs import StageOutputs

if TYPE_CHECKING:  # the AI helper needs the optional `ai` extra (pydantic-ai)
    from wfc.runtime.ai import AIHelper

InputT = TypeVar("InputT", bound=BaseModel)
ConfigT = TypeVar("ConfigT", bound=BaseModel)
OutputT = TypeVar("OutputT", bound=BaseModel)
StageIdT = TypeVar("StageIdT", bound=str)
ModelT = TypeVar("ModelT", bound=BaseModel)
CtxT = TypeVar("CtxT", bound="StageContext[Any, Any, Any]")

LogLevel = Literal["DEBUG", "INFO", "WARN", "ERROR"]
JsonData = dict[str, Any] | list[Any] | str | int | float | bool | None

ARTIFACT_NAME_MAX = 128
_ARTIFACT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class StageUsageError(NonRetryableError, ValueError):
    """Stage code called its context wrongly: an artifact name that is not a plain file
    name, progress details or an artifact that are not JSON data.

    It fails the stage at once, since trying again would run the same code.
    """


def json_data(value: Any, what: str) -> Any:
    """A copy of `value` made only of JSON data (dicts with str keys, lists, str, int,
    finite floats, bools, None; tuples become lists), so later changes the stage makes
    to its own objects do not reach what was reported; `StageUsageError` naming the
    first part that is not, and where it is."""
    return _json_copy(value, what)


def _json_copy(value: Any, path: str) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StageUsageError(f"{path} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, dict):
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise StageUsageError(
                    f"{path} has the key {key!r} ({type(key).__name__}); JSON keys are str"
                )
            copied[key] = _json_copy(item, f"{path}[{key!r}]")
        return copied
    if isinstance(value, list | tuple):
        return [_json_copy(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise StageUsageError(
        f"{path} is a {type(value).__name__}, which is not JSON data "
        "(use dicts, lists, str, int, float, bool or None; convert it, e.g. to a str)"
    )


def check_artifact_name(name: str) -> str:
    """`name` if it can name an artifact: a plain file name of letters, digits, `.`, `_`
    and `-`, starting with a letter or digit, without `..`, at most `ARTIFACT_NAME_MAX`
    characters. It becomes the last part of a blob key, so a separator or `..` could
    reach another stage's keys, or out of a file-system store's directory."""
    if not isinstance(name, str) or not name:
        raise StageUsageError(f"an artifact name must be a non-empty str, not {name!r}")
    if len(name) > ARTIFACT_NAME_MAX:
        raise StageUsageError(
            f"artifact name {name[:20]!r}… is {len(name)} characters; "
            f"at most {ARTIFACT_NAME_MAX} are allowed"
        )
    if _ARTIFACT_NAME.fullmatch(name) is None or ".." in name:
        raise StageUsageError(
            f"artifact name {name!r} is not a plain file name: use letters, digits, '.', '_' "
            "and '-', start with a letter or digit, no '/', '\\' or '..' (e.g. 'report.html')"
        )
    return name


def artifact_bytes(name: str, data: bytes | JsonData) -> bytes:
    """What is stored for an artifact: bytes as they are, a str as UTF-8, any other
    value as compact JSON (checked to be JSON data)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode()
    copied = json_data(data, f"artifact {name!r}")
    return json.dumps(copied, separators=(",", ":"), ensure_ascii=False).encode()


class StageServices(Protocol):
    """What the kernel provides to a running stage besides its data."""

    def log(self, level: LogLevel, message: str, fields: Mapping[str, Any]) -> None:
        """Persist one log line for this stage."""

    def progress(
        self, fraction: float, message: str | None, details: dict[str, Any] | None
    ) -> None:
        """Report progress between 0 and 1, with JSON `details` (already checked)."""

    def artifact(self, name: str, data: bytes) -> None:
        """Keep a named artifact of this attempt (name already checked); a later call with
        the same name replaces it."""

    def metric(self, name: str, value: float) -> None:
        """Record a custom metric (e.g. `total_cost`, `total_tokens`)."""

    @property
    def blobs(self) -> BlobAccess:
        """The blob store."""

    @property
    def ai(self) -> AIHelper:
        """The AI helper bound to this stage's topic."""
        ...


def new_ai_helper(topic: str, logger: Any) -> AIHelper:
    """An `AIHelper`, or one clear error when the `ai` extra is not installed."""
    try:
        from wfc.runtime.ai import AIHelper
    except ImportError as error:
        raise WfcError(
            f"the AI helper needs pydantic-ai ({error.name} is missing): pip install 'wfc[ai]'"
        ) from error
    return AIHelper(topic, logger)


def stage_topic(run_id: str, stage_id: str) -> str:
    """The ledger topic of one stage of one run."""
    return f"workflow.{run_id}.stage.{stage_id}"


class MemoryBlobs:
    """A dict-backed `BlobAccess`, for tests of single stages."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def put(self, key: str, data: bytes) -> None:
        self.data[key] = bytes(data)

    async def get(self, key: str) -> bytes:
        try:
            return self.data[key]
        except KeyError:
            raise KeyError(f"Blob not found: {key}") from None

    async def exists(self, key: str) -> bool:
        return key in self.data

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)


@dataclass(slots=True)
class RecordingServices:
    """`StageServices` that keep everything in lists, so a test can assert on it."""

    logs: list[tuple[LogLevel, str, dict[str, Any]]] = field(default_factory=list)
    progress_reports: list[tuple[float, str | None]] = field(default_factory=list)
    progress_details: list[dict[str, Any] | None] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    store: MemoryBlobs = field(default_factory=MemoryBlobs)
    helper: AIHelper | None = None

    def log(self, level: LogLevel, message: str, fields: Mapping[str, Any]) -> None:
        self.logs.append((level, message, dict(fields)))

    def progress(
        self, fraction: float, message: str | None, details: dict[str, Any] | None
    ) -> None:
        self.progress_reports.append((fraction, message))
        self.progress_details.append(details)

    def artifact(self, name: str, data: bytes) -> None:
        self.artifacts[name] = data

    def metric(self, name: str, value: float) -> None:
        self.metrics[name] = value

    @property
    def blobs(self) -> BlobAccess:
        return self.store

    @property
    def ai(self) -> AIHelper:
        """A helper logging to an in-memory ledger (`helper.stats()` to assert on cost)."""
        if self.helper is None:
            from wfc.runtime.adapters.memory.ai_calls import MemoryAICallLogger

            self.helper = new_ai_helper("test", MemoryAICallLogger())
        return self.helper


class _Reporting:
    """What the contexts of both stage callbacks offer, `execute`'s (`StageContext`) and
    `check_completion`'s (`CheckContext`): log lines, progress, the blob store and the AI
    helper, each handed to the kernel's services for the attempt or the check. One class,
    so that the two cannot drift apart."""

    _services: StageServices

    def log(self, level: LogLevel, message: str, **fields: Any) -> None:
        """Write a log line attached to this stage of this run."""
        self._services.log(level, message, fields)

    def progress(
        self,
        fraction: float,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Report progress (0–1), shown live by `wfc run` and stored as a `stage:progress`
        event with the attempt's outcome (a check's too, its "not yet" included, so a batch
        or a review can say "40% done" while it waits); `details` (JSON data, e.g.
        `{"done": 3, "total": 10}`) ride on the event for plugins and tools. An attempt or
        check whose outcome is not written (a ghost: another worker took the stage, the
        run stopped) stores none, and an item of a mapped stage reports none of its own
        (`docs/stages.md`). Raises `StageUsageError` when `details` is not JSON data."""
        if details is not None and not isinstance(details, dict):
            raise StageUsageError(f"progress details must be a dict, not {type(details).__name__}")
        copied = None if details is None else json_data(details, "progress details")
        self._services.progress(min(max(fraction, 0.0), 1.0), message, copied)

    @property
    def blobs(self) -> BlobAccess:
        """The blob store, for payloads too large to be outputs."""
        return self._services.blobs

    @property
    def ai(self) -> AIHelper:
        """Model calls logged under `workflow.<run>.stage.<stage>`; their cost and tokens
        become the stage's and the run's totals (a check may use it to fetch a batch). Its
        methods are async."""
        return self._services.ai


class StageContext(_Reporting, Generic[InputT, ConfigT, StageIdT]):
    """The typed view of a run that one stage execution gets.

    `outputs` maps stage ids to the outputs of the run's completed stages;
    `require`/`optional` read them by id, and the generated subclasses add one
    typed property per `needs` dependency. The kernel passes a `StageOutputs`,
    which parses or copies an output only when the stage reads it, so a stage pays
    for the earlier outputs it uses, not for every one.
    """

    def __init__(
        self,
        *,
        run_id: str,
        stage_id: str,
        input: InputT,
        config: ConfigT,
        outputs: Mapping[str, Any] | None = None,
        attempt: int = 1,
        resume_state: dict[str, Any] | None = None,
        services: StageServices | None = None,
        item_index: int | None = None,
        item_count: int | None = None,
    ) -> None:
        self.run_id = run_id
        self.stage_id = stage_id
        self.input = input
        self.config = config
        self.attempt = attempt
        self.resume_state = resume_state
        # A mapped stage runs once per item: which item this is (0-based), of how many.
        self.item_index = item_index
        self.item_count = item_count
        # A dict is copied (its maker may change it later); any other mapping is read-only
        # and kept as it is, so the kernel's `StageOutputs` parses only what is read.
        self._outputs: Mapping[str, Any] = (
            dict(outputs) if isinstance(outputs, dict) else outputs if outputs is not None else {}
        )
        self._services: StageServices = services if services is not None else RecordingServices()

    def require(self, stage_id: StageIdT) -> Any:
        """The output of a completed stage; raises when it has none (falsy outputs are fine).
        Each read of one stage's output gives the same object, the execution's own."""
        value = self._outputs.get(stage_id)
        if value is None:
            raise MissingStageOutputError(stage_id=stage_id, available=sorted(self._outputs))
        return value

    def optional(self, stage_id: StageIdT) -> Any | None:
        """The output of a completed stage, or None."""
        return self._outputs.get(stage_id)

    def dependency(self, stage_id: StageIdT, model: type[ModelT]) -> ModelT:
        """A required dependency's output parsed into its model (what generated properties call).

        An output the kernel's context holds as its stored JSON text, not read yet, is
        validated from the text (as a stage's input is): no dict is parsed only to be
        copied into the model. What the text's validation refuses, or might validate
        otherwise (`wfc.runtime.json_text`), is validated as the parsed value."""
        outputs = self._outputs
        if isinstance(outputs, StageOutputs):
            text = outputs.unread_text(stage_id)
            parsed = None if text is None else validated_from_text(model, text)
            if parsed is not None:
                return parsed
        value = self.require(stage_id)
        return value if isinstance(value, model) else model.model_validate(value)

    def dependency_list(self, stage_id: StageIdT, model: type[ModelT]) -> list[ModelT]:
        """A mapped dependency's outputs, one per item in item order, parsed into its model."""
        return [_parsed(model, value) for value in self.require(stage_id)]

    def item_results(self, stage_id: StageIdT, model: type[ModelT]) -> list[ItemResult[ModelT]]:
        """A mapped dependency's results with `on failure continue`: per item, in item order,
        its output or its error."""
        return [
            ItemResult[model].model_validate(value)  # type: ignore[valid-type]
            for value in self.require(stage_id)
        ]

    def artifact(self, name: str, data: bytes | JsonData) -> None:
        """Keep a named result of this attempt besides its output: a report, a CSV, a
        model's raw answer. `data` is bytes, a str (stored as UTF-8) or other JSON data
        (stored as JSON). Naming one twice keeps the last.

        Artifacts are stored in the blob store when the attempt succeeds (or suspends),
        before its outcome is recorded, and `wfc runs show` lists those of the attempt
        that committed; an attempt that fails stores none. They are held in memory
        until then, so write payloads too large for that to `ctx.blobs` instead.
        Raises `StageUsageError` for a name that is not a plain file name
        (`check_artifact_name`) or data that is not JSON.
        """
        self._services.artifact(check_artifact_name(name), artifact_bytes(name, data))

    def metric(self, name: str, value: float) -> None:
        """Record a custom metric on the stage; `total_cost`/`total_tokens` add up into the run."""
        self._services.metric(name, value)


def _parsed(model: type[ModelT], value: Any) -> ModelT:
    return value if isinstance(value, model) else model.model_validate(value)


class ItemResult(BaseModel, Generic[OutputT]):
    """One item of a mapped stage that continues past failed items: the item's `output`
    when it completed, else the `error` it failed with after its retries."""

    index: int
    output: OutputT | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the item completed."""
        return self.error is None


class CheckContext(_Reporting, Generic[ConfigT]):
    """What `check_completion` sees: ids, the stage's config, logging, progress and blobs
    (no input, no artifacts: see `docs/stages.md`)."""

    def __init__(
        self,
        *,
        run_id: str,
        stage_id: str,
        config: ConfigT,
        services: StageServices | None = None,
    ) -> None:
        self.run_id = run_id
        self.stage_id = stage_id
        self.config = config
        self._services: StageServices = services if services is not None else RecordingServices()


@dataclass(frozen=True, slots=True, kw_only=True)
class Suspend:
    """Returned by an async stage to wait for outside work (a provider batch, a human).

    `state` is stored and handed to `check_completion`; it must be JSON data.
    `poll_interval` and `max_wait` override the stage's `poll` settings.
    """

    state: dict[str, Any]
    poll_interval: timedelta | None = None
    max_wait: timedelta | None = None
    next_poll_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready(Generic[OutputT]):
    """The outside work is done; `output` becomes the stage's output."""

    output: OutputT


@dataclass(frozen=True, slots=True, kw_only=True)
class NotReady:
    """Not done yet; check again after `next_check_in` (default: the stage's poll interval)."""

    next_check_in: timedelta | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """The outside work failed for good; the stage and its run fail with `error`."""

    error: str


Completion = Ready[OutputT] | NotReady | Failed


class _StageBase(ABC):
    """Class-level facts every stage implementation carries, set by generated code."""

    stage_id: ClassVar[str]
    input_model: ClassVar[type[BaseModel]]
    output_model: ClassVar[type[BaseModel]]
    config_model: ClassVar[type[BaseModel]]
    context_type: ClassVar[type[StageContext[Any, Any, Any]]]
    suspends: ClassVar[bool] = False


class Stage(_StageBase, Generic[CtxT, OutputT]):
    """A sync stage: `execute` returns the output (a model, or a dict that validates as one)."""

    @abstractmethod
    def execute(self, ctx: CtxT) -> OutputT | Awaitable[OutputT]:
        """Do the stage's work."""


class AsyncStage(_StageBase, Generic[CtxT, ConfigT, OutputT]):
    """A stage that may `Suspend`; `check_completion` is then polled until it is `Ready`."""

    suspends: ClassVar[bool] = True

    @abstractmethod
    def execute(self, ctx: CtxT) -> OutputT | Suspend | Awaitable[OutputT | Suspend]:
        """Start the work; return the output now, or `Suspend` to be polled."""

    @abstractmethod
    def check_completion(
        self, state: dict[str, Any], ctx: CheckContext[ConfigT]
    ) -> Completion[OutputT] | Awaitable[Completion[OutputT]]:
        """Check on suspended work: `Ready(output)`, `NotReady(...)` or `Failed(error)`."""
