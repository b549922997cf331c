"""The wire format (`runtime/wire.py`): what crosses a process or Ray boundary comes back
the same: a job, a result, and each kind of failure as the same typed error.

Every message is pickled here, as a `multiprocessing` pipe and Ray would pickle it, so a
message that only works in-process fails here rather than in a worker.
"""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
from PIL import Image

from dream_engine.core.results import DreamResult
from dream_engine.errors import DreamCancelled, ImageError, ParamError, UserError
from dream_engine.media.images import TooManyPixelsError
from dream_engine.runtime.executor import (
    DreamFailed,
    DreamOutOfMemory,
    DreamRequest,
    DreamTimedOut,
    WorkerCrashed,
)
from dream_engine.runtime.wire import (
    Done,
    Failed,
    ProgressEvent,
    decode_job,
    decode_result,
    encode_job,
    encode_result,
    failure_of,
    from_png,
    main_module_hidden,
    raise_failure,
    run_job,
    to_png,
    user_error_class,
)
from dream_engine.study.sweeps import Variant
from tests.runtime.test_retry import QUICK, RunsOutAbove, photo


def crossed(message: object) -> object:
    """`message` after a trip through a pipe."""
    return pickle.loads(pickle.dumps(message))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def test_a_job_crosses_and_comes_back_as_the_same_request():
    variants = (Variant("step 0.01", QUICK.replace(step=0.01)), Variant("step 0.02", QUICK))
    request = DreamRequest(
        photo(), QUICK, max_side=200, frame_every=2, variants=variants, title="steps", label="x"
    )

    again = decode_job(crossed(encode_job(request)))

    assert np.array_equal(pixels(again.image), pixels(request.image))  # lossless
    assert (again.params, again.max_side, again.frame_every, again.title) == (
        QUICK,
        200,
        2,
        "steps",
    )
    assert again.variants == variants
    assert again.label == ""  # the label is the parent's, for its own worker list


def test_a_guide_crosses_with_the_job_pixel_for_pixel():
    guide = photo().resize((90, 70)).convert("RGBA")
    again = decode_job(crossed(encode_job(DreamRequest(photo(), QUICK, guide=guide))))
    assert again.guide is not None and again.guide.mode == "RGB"
    assert np.array_equal(pixels(again.guide), pixels(guide.convert("RGB")))
    assert decode_job(crossed(encode_job(DreamRequest(photo(), QUICK)))).guide is None


def test_a_moving_job_crosses_with_its_spec_clip_and_frames_done():
    from dream_engine.motion.spec import MotionSpec

    frames = (photo(), photo().rotate(180))
    spec = MotionSpec("clip", blend=0.3, frame_iterations=2, fps=8.0, format="gif")
    request = DreamRequest(photo(), QUICK, motion=spec, clip=frames, done=frames[:1])
    job = crossed(encode_job(request))
    again = decode_job(job)
    assert again.motion == spec
    assert [pixels(f).tolist() for f in again.clip] == [pixels(f).tolist() for f in frames]
    assert len(again.done) == 1 and np.array_equal(pixels(again.done[0]), pixels(frames[0]))
    # The first frame in full, the other at 2 of QUICK's 3 steps: the time of 1.67 dreams.
    assert job.work == pytest.approx(1 + 2 / 3) and job.time_limit(60) == pytest.approx(100)


def test_a_finished_frame_crosses_with_its_progress_as_png():
    from dream_engine.core.results import Progress
    from dream_engine.runtime.wire import decode_progress, encode_progress

    progress = Progress(1, 1, 3, 3, 0.5, 1.0, True, frame=2, frames=5, finished_frame=photo())
    event = crossed(encode_progress(progress))
    assert isinstance(event.fields["finished_frame"], bytes)
    again = decode_progress(event.fields)
    assert np.array_equal(pixels(again.finished_frame), pixels(photo()))
    assert (again.frame, again.frames, again.fraction) == (2, 5, pytest.approx(0.4))
    plain = decode_progress(crossed(encode_progress(Progress(1, 2, 1, 3, 0.1, 0.1))).fields)
    assert plain.finished_frame is None


def test_a_job_with_alpha_crosses_as_rgb():
    image = photo().convert("RGBA")
    again = decode_job(encode_job(DreamRequest(image, QUICK)))
    assert again.image.mode == "RGB"
    assert np.array_equal(pixels(again.image), pixels(image.convert("RGB")))


def test_a_result_crosses_and_comes_back_the_same():
    grey = Image.new("RGB", (64, 48), (120, 130, 140))
    result = DreamResult(
        image=photo(),
        octaves=[photo(120, 80), photo()],
        losses=[[1.0, 2.0], [3.5]],
        params=QUICK,
        seconds=1.25,
        notes=["ran at 168x112 px: the first try ran out of memory"],
        frames=[grey, photo(64, 48)],
        panels=[("a", grey), ("b", photo(64, 48))],
        precision="mixed_bfloat16",
    )

    done = crossed(encode_result(result))
    assert isinstance(done, Done) and isinstance(done.image, bytes)
    again = decode_result(done, QUICK)

    assert (again.losses, again.params, again.seconds, again.notes, again.precision) == (
        result.losses,
        QUICK,
        1.25,
        result.notes,
        "mixed_bfloat16",
    )
    for sent, received in [
        (result.image, again.image),
        *zip(result.octaves, again.octaves, strict=True),
        *zip(result.frames, again.frames, strict=True),
        *((a[1], b[1]) for a, b in zip(result.panels, again.panels, strict=True)),
    ]:
        assert np.array_equal(pixels(sent), pixels(received))
    assert [caption for caption, _ in again.panels] == ["a", "b"]


def test_png_keeps_every_pixel():
    image = photo(33, 17)
    assert np.array_equal(pixels(from_png(to_png(image))), pixels(image))


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (DreamCancelled(), "cancelled"),
        (ParamError("step: from 0.001 to 0.5."), "user"),
        (ImageError("not an image"), "user"),
        (TooManyPixelsError("too many pixels"), "user"),  # a subclass from media.images
        (DreamOutOfMemory("ran out of memory even at 168x112 px"), "oom"),
        (DreamTimedOut.after(3), "timed_out"),
        (WorkerCrashed("crashed the dream engine twice"), "crashed"),
        (DreamFailed("The dream engine was shut down; try again."), "failed"),
    ],
)
def test_each_failure_crosses_and_is_raised_again_as_the_same_error(error, kind):
    failure = crossed(failure_of(error))

    assert isinstance(failure, Failed) and failure.kind == kind
    with pytest.raises(type(error)) as raised:
        raise_failure(failure)
    assert type(raised.value) is type(error)
    assert str(raised.value) == str(error)


def test_a_bug_crosses_with_its_traceback_and_reaches_the_user_as_a_failure(caplog):
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as error:
        failure = crossed(failure_of(error))

    assert failure.kind == "bug" and "ZeroDivisionError" in failure.details
    assert "Traceback" in failure.details  # for the parent's log
    with pytest.raises(DreamFailed, match=r"failed \(ZeroDivisionError\)") as raised:
        raise_failure(failure)
    assert type(raised.value) is DreamFailed
    assert "Traceback" in caplog.text  # logged where the bot's log is


def test_an_unknown_user_error_class_is_still_a_user_error():
    assert user_error_class("ImageError") is ImageError
    assert user_error_class("TooManyPixelsError") is TooManyPixelsError
    assert user_error_class("NoSuchError") is UserError
    assert user_error_class("DreamEngine") is UserError  # not a UserError: never raised
    with pytest.raises(UserError, match="yours"):
        raise_failure(Failed("user", "SomethingNew", "yours"))


def test_run_job_dreams_and_sends_progress_before_its_outcome(inception_engine):
    sent: list[object] = []
    job = encode_job(DreamRequest(photo(), QUICK, max_side=200))

    outcome = crossed(run_job(inception_engine, job, lambda: False, sent.append))

    assert isinstance(outcome, Done)
    assert sent and all(isinstance(crossed(event), ProgressEvent) for event in sent)
    assert decode_result(outcome, QUICK).image.size == (200, 133)


def ignore(message: object) -> None:
    pass


def test_run_job_returns_failures_instead_of_raising(inception_engine):
    job = encode_job(DreamRequest(photo(), QUICK))
    cancelled = run_job(inception_engine, job, lambda: True, ignore)
    assert isinstance(cancelled, Failed) and cancelled.kind == "cancelled"

    refused = encode_job(DreamRequest(photo(), QUICK, frame_every=0))
    bad = run_job(inception_engine, refused, None, ignore)
    assert isinstance(bad, Failed) and bad.kind == "user" and bad.error_type == "ParamError"

    out_of_memory = run_job(RunsOutAbove(inception_engine, limit=100), job, None, ignore)
    assert isinstance(out_of_memory, Failed) and out_of_memory.kind == "oom"
    with pytest.raises(DreamOutOfMemory, match="even at 168x112 px"):
        raise_failure(out_of_memory)


def test_the_main_module_is_hidden_only_while_a_child_starts():
    real = sys.modules["__main__"]
    with pytest.raises(RuntimeError), main_module_hidden():
        assert sys.modules["__main__"] is not real
        assert not hasattr(sys.modules["__main__"], "__file__")
        raise RuntimeError("a start that failed")
    assert sys.modules["__main__"] is real
