"""What crosses a process or Ray boundary, and how it is encoded: one format for every hop.

A dream crosses up to two boundaries: bot -> worker process (a `multiprocessing`
pipe), or bot -> Ray driver process -> Ray actor. Every hop carries the same plain
data, so either side can change its own classes freely and a message passes a
middle process (the Ray driver) undecoded:

- `Job` down: the image (and a guide, if any) as PNG bytes, the params as a dict;
- `ProgressEvent`s up while it runs, then the outcome: `Done` (images as PNG
  bytes) or `Failed`, a failure as data that `raise_failure` turns back into the
  same typed error (`failure_of` is the other way), whichever hop raised it;
- `Ready`, `StartFailed` and `PipeClosed`: a worker process's start and end.

`run_job` is the far end of the wire, shared by the worker process and the Ray
actor: a `Job` in, progress out through `send`, the outcome returned, with the
retry policy (`retry.py`) applied where the engine runs. Only the parent's side
of a hop (its pipe, its restarts) belongs to each executor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import sys
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from PIL import Image

from dream_engine.core.params import DreamParams
from dream_engine.errors import DreamCancelled, UserError
from dream_engine.motion.spec import MotionSpec
from dream_engine.runtime.executor import (
    DreamFailed,
    DreamOutOfMemory,
    DreamRequest,
    DreamTimedOut,
    WorkerCrashed,
)
from dream_engine.runtime.retry import run_with_oom_retry

if TYPE_CHECKING:
    from dream_engine.core.engine import CancelFlag, DreamEngine
    from dream_engine.core.results import DreamResult, Progress

log = logging.getLogger(__name__)

PNG_LEVEL = 1  # images cross a local pipe or the cluster's network: fast beats small

FailureKind = Literal["user", "cancelled", "oom", "timed_out", "crashed", "failed", "bug"]


# -- the messages: plain data ------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """Down the wire: one dream (or one comparison of variants)."""

    png: bytes
    params: dict[str, Any]
    max_side: int | None
    frame_every: int | None = None
    variants: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    title: str | None = None
    guide_png: bytes | None = None  # the guide image, encoded like the image
    motion: dict[str, Any] | None = None  # a moving dream's `MotionSpec`
    clip_png: list[bytes] = dataclasses.field(default_factory=list)  # a clip's frames
    done_png: list[bytes] = dataclasses.field(default_factory=list)  # frames done before
    work: float = 1.0  # `DreamRequest.work`: how many dreams' time it may take

    def time_limit(self, job_timeout: float | None) -> float | None:
        """Seconds this job may run: `job_timeout` for each dream's worth it holds, so a
        comparison of 11 layers or a zoom of 24 frames is not held to one dream's time."""
        return None if job_timeout is None else job_timeout * self.work


@dataclass(frozen=True)
class Ready:
    """Worker -> parent: the engine is built (and warmed up); send jobs."""

    precision: str = ""  # the precision it chose and why (`precision_text`)


@dataclass(frozen=True)
class StartFailed:
    """Worker -> parent: the engine could not be built; the worker exits."""

    message: str


@dataclass(frozen=True)
class ProgressEvent:
    """Up the wire while a job runs: `Progress` fields."""

    fields: dict[str, Any]


@dataclass(frozen=True)
class Done:
    """Up the wire: a finished dream, images as PNG bytes."""

    image: bytes
    octaves: list[bytes]
    losses: list[list[float]]
    notes: list[str]
    seconds: float
    frames: list[bytes] = dataclasses.field(default_factory=list)  # animation, if asked for
    panels: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)  # a comparison's
    fps: float | None = None  # a moving dream's rate
    planned_frames: int = 0
    precision: str = ""


@dataclass(frozen=True)
class Failed:
    """Up the wire: the job ended without a dream; `kind` says which typed error it was.

    Any hop may raise one: the engine (user, cancelled, oom, bug) or a supervising
    executor between it and the bot (timed_out, crashed, failed: the Ray driver's).
    """

    kind: FailureKind
    error_type: str  # class name; for "user", a UserError subclass the parent re-raises
    message: str
    details: str = ""  # traceback of a bug, for the parent's log


@dataclass(frozen=True)
class PipeClosed:
    """Reader thread -> event loop: the worker is gone (EOF or its process ended)."""


# -- images ------------------------------------------------------------------------------------


def to_png(image: Image.Image) -> bytes:
    """Lossless, so the far side dreams (or shows) exactly these pixels."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()


def from_png(data: bytes) -> Image.Image:
    """A loaded copy, so no file handle on the bytes outlives the call."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.copy()


# -- jobs and results --------------------------------------------------------------------------


def encode_job(request: DreamRequest) -> Job:
    """The request as plain data (RGB: that is what the engine dreams on anyway)."""
    return Job(
        to_png(_rgb(request.image)),
        request.params.to_dict(),
        request.max_side,
        request.frame_every,
        [(variant.caption, variant.params.to_dict()) for variant in request.variants],
        request.title,
        None if request.guide is None else to_png(_rgb(request.guide)),
        None if request.motion is None else request.motion.to_dict(),
        [to_png(_rgb(frame)) for frame in request.clip],
        [to_png(_rgb(frame)) for frame in request.done],
        request.work(),
    )


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def decode_job(job: Job) -> DreamRequest:
    """The request again, on the far side (the label stays with the parent)."""
    from dream_engine.study.sweeps import Variant

    return DreamRequest(
        from_png(job.png),
        DreamParams(**job.params),
        job.max_side,
        job.frame_every,
        tuple(Variant(caption, DreamParams(**params)) for caption, params in job.variants),
        job.title,
        guide=None if job.guide_png is None else from_png(job.guide_png),
        motion=None if job.motion is None else MotionSpec.from_dict(job.motion),
        clip=tuple(from_png(data) for data in job.clip_png),
        done=tuple(from_png(data) for data in job.done_png),
    )


def encode_result(result: DreamResult) -> Done:
    """A finished dream as plain data; its params stay behind (the parent has them)."""
    return Done(
        image=to_png(result.image),
        octaves=[to_png(octave) for octave in result.octaves],
        losses=result.losses,
        notes=result.notes,
        seconds=result.seconds,
        frames=[to_png(frame) for frame in result.frames],
        panels=[(caption, to_png(panel)) for caption, panel in result.panels],
        fps=result.fps,
        planned_frames=result.planned_frames,
        precision=result.precision,
    )


def decode_result(done: Done, params: DreamParams) -> DreamResult:
    """The `DreamResult` the engine returned on the far side, with the request's params."""
    from dream_engine.core.results import DreamResult

    return DreamResult(
        image=from_png(done.image),
        octaves=[from_png(octave) for octave in done.octaves],
        losses=done.losses,
        params=params,
        seconds=done.seconds,
        notes=done.notes,
        frames=[from_png(frame) for frame in done.frames],
        panels=[(caption, from_png(panel)) for caption, panel in done.panels],
        fps=done.fps,
        planned_frames=done.planned_frames,
        precision=done.precision,
    )


def encode_progress(progress: Progress) -> ProgressEvent:
    """A progress event as plain data; a finished frame of a moving dream as PNG bytes."""
    fields = {field.name: getattr(progress, field.name) for field in dataclasses.fields(progress)}
    if progress.finished_frame is not None:
        fields["finished_frame"] = to_png(progress.finished_frame)
    return ProgressEvent(fields)


def decode_progress(fields: dict[str, Any]) -> Progress:
    """The `Progress` that `encode_progress` sent, on the parent's side."""
    from dream_engine.core.results import Progress

    frame = fields.get("finished_frame")
    return Progress(**{**fields, "finished_frame": None if frame is None else from_png(frame)})


# -- failures ----------------------------------------------------------------------------------


def failure_of(error: BaseException) -> Failed:
    """What an engine or executor raised, as data `raise_failure` turns back into the same
    error (subclasses before the classes they refine)."""
    if isinstance(error, DreamCancelled):
        return Failed("cancelled", "DreamCancelled", "")
    if isinstance(error, UserError):
        return Failed("user", type(error).__name__, str(error))
    typed: list[tuple[type[DreamFailed], FailureKind]] = [
        (DreamOutOfMemory, "oom"),
        (DreamTimedOut, "timed_out"),
        (WorkerCrashed, "crashed"),
        (DreamFailed, "failed"),
    ]
    for cls, kind in typed:
        if isinstance(error, cls):
            return Failed(kind, type(error).__name__, str(error))
    details = "".join(traceback.format_exception(error))
    return Failed("bug", type(error).__name__, str(error), details)


def raise_failure(failure: Failed) -> NoReturn:
    """Re-raise a far side's failure as the error it raised there; a bug is logged here and
    reaches the user as a `DreamFailed` that names only its class."""
    if failure.kind == "cancelled":
        raise DreamCancelled()
    if failure.kind == "user":
        raise user_error_class(failure.error_type)(failure.message)
    typed: dict[str, type[DreamFailed]] = {
        "oom": DreamOutOfMemory,
        "timed_out": DreamTimedOut,
        "crashed": WorkerCrashed,
        "failed": DreamFailed,
    }
    if failure.kind in typed:
        raise typed[failure.kind](failure.message)
    log.error("dream failed in the worker: %s", failure.details or failure.message)
    raise DreamFailed(
        f"The dream engine failed ({failure.error_type}). Nothing was lost on your side; "
        "try again, maybe with a smaller image."
    )


def user_error_class(name: str) -> type[UserError]:
    """The `UserError` subclass called `name` (errors or images), else `UserError` itself:
    the user's own mistake keeps its class (and its cog's handling) across the wire."""
    from dream_engine import errors
    from dream_engine.media import images

    for module in (errors, images):
        candidate = getattr(module, name, None)
        if isinstance(candidate, type) and issubclass(candidate, UserError):
            return candidate
    return UserError


# -- the far end -------------------------------------------------------------------------------


def run_job(
    engine: DreamEngine,
    job: Job,
    cancelled: CancelFlag,
    send: Callable[[object], None],
) -> Done | Failed:
    """One job where the engine is (worker process or Ray actor): progress goes out through
    `send`, the outcome is returned, never raised, so the parent always hears how it ended.

    Out of memory is retried once, smaller (`retry.run_with_oom_retry`), here, before
    anything crosses back.
    """

    def report(progress: Progress) -> None:
        send(encode_progress(progress))

    try:
        request = decode_job(job)
        result = run_with_oom_retry(engine, request, report, cancelled, job.max_side)
    except Exception as error:
        return failure_of(error)
    return encode_result(result)


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """Keep a spawned child (worker, Ray driver) from re-running the parent's main script.

    Spawn imports the parent's `__main__` file in the child (so functions defined
    there can be unpickled). The child needs nothing from it, and `bot.py`
    imports discord; a blank stand-in while the child starts keeps it to the
    engine's imports.
    """
    real = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = real


__all__ = [
    "Done",
    "Failed",
    "FailureKind",
    "Job",
    "PipeClosed",
    "ProgressEvent",
    "Ready",
    "StartFailed",
    "decode_job",
    "decode_progress",
    "decode_result",
    "encode_job",
    "encode_progress",
    "encode_result",
    "failure_of",
    "from_png",
    "main_module_hidden",
    "raise_failure",
    "run_job",
    "to_png",
    "user_error_class",
]
