"""Moving dreams (`dream_engine/motion`): the warps, the spec's checks, and zooms and
clips on the session's InceptionV3 (random weights, tiny frames)."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
from PIL import Image

from dream_engine import DreamParams, ParamError
from dream_engine.errors import DreamCancelled
from dream_engine.motion.sequences import run_motion
from dream_engine.motion.spec import MotionSpec
from dream_engine.motion.warps import carry_dream, to_array, zoom_into

QUICK = DreamParams(layers={"mixed3": 1.0}, octaves=1, iterations=4, step=0.02)


def textured(width: int = 160, height: int = 120, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    return to_array(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))


def test_the_carried_dream_moves_with_the_picture():
    wide = textured(200, 120)
    previous, frame = wide[:, 20:180], wide[:, 26:186]  # the view pans 6 px right
    dream = previous.copy()
    dream[50:70, 80:100] += 60  # a pattern the last dream grew on the picture
    start = carry_dream(frame, previous, np.clip(dream, 0, 255), blend=1.0)
    added = np.abs(start - frame).mean(axis=2)
    assert added[55:65, 78:90].mean() > 30  # 6 px to the left, where that spot now is
    assert added[55:65, 94:100].mean() < 10  # not where it was in the frame
    assert carry_dream(frame, previous, dream, blend=0.0) is frame  # alone: the frame itself


def test_zooming_in_scales_about_the_centre_and_turning_keeps_the_size():
    square = np.zeros((100, 100, 3), np.float32)
    square[40:60, 40:60] = 255
    zoomed = zoom_into(square, 2.0, 0.0)
    assert zoomed.shape == square.shape
    lit = np.argwhere(zoomed[..., 0] > 128)
    assert lit.min(axis=0).tolist() == [30, 30] and lit.max(axis=0).tolist() == [69, 69]
    assert zoom_into(square, 1.0, 10.0).shape == square.shape


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"kind": "zoom", "frames": 1}, "frames must be in [2, 120]"),
        ({"kind": "zoom", "zoom": 2.0}, "zoom must be in [1, 1.5]"),
        ({"kind": "zoom", "zoom": 1.0}, "every frame would stand still"),
        ({"kind": "clip", "blend": 1.5}, "blend must be in [0, 1]"),
        ({"kind": "clip", "frame_iterations": 0}, "frame_iterations must be in [1, 1000]"),
        ({"kind": "zoom", "format": "avi"}, "format: 'avi' is not one of mp4, gif"),
        ({"kind": "spin"}, "neither zoom nor clip"),
    ],
)
def test_a_bad_motion_setting_is_one_line_naming_it(changes, words):
    with pytest.raises(ParamError) as caught:
        MotionSpec(**changes).validate()
    assert words in str(caught.value)


@pytest.mark.slow  # dreams on the session's InceptionV3
def test_a_zoom_dreams_every_frame_at_one_size_with_one_bar(inception_engine, cat_photo):
    spec = MotionSpec("zoom", frames=4, zoom=1.1, rotate=3.0)
    events = []
    result = run_motion(
        inception_engine, spec, QUICK, [cat_photo], on_progress=events.append, max_side=160
    )
    traced = inception_engine.trace_count
    assert len(result.frames) == result.planned_frames == 4 and result.fps == spec.fps
    assert {frame.size for frame in result.frames} == {(160, 107)}
    finished = [event for event in events if event.finished_frame is not None]
    assert [event.frame for event in finished] == [1, 2, 3, 4]
    assert finished[-1].finished_frame is result.frames[-1]
    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    pixels = [to_array(frame) for frame in result.frames]
    assert all(np.abs(a - b).mean() > 1 for a, b in itertools.pairwise(pixels))
    run_motion(inception_engine, spec.replace(frames=6), QUICK, [cat_photo], max_side=160)
    assert inception_engine.trace_count == traced  # more frames, the same compiled steps


@pytest.mark.slow
def test_a_zoom_resumed_after_two_frames_ends_as_if_never_stopped(inception_engine, cat_photo):
    spec = MotionSpec("zoom", frames=4, zoom=1.08)
    whole = run_motion(inception_engine, spec, QUICK, [cat_photo], max_side=160)
    resumed = run_motion(
        inception_engine, spec, QUICK, [cat_photo], max_side=160, done=whole.frames[:2]
    )
    assert "resumed after 2 frames" in resumed.notes[0]
    for ours, theirs in zip(resumed.frames, whole.frames, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    # Frames of another size (an out-of-memory retry's) are not taken: it starts over.
    small = run_motion(
        inception_engine, spec, QUICK, [cat_photo], max_side=120, done=whole.frames[:2]
    )
    assert small.frames[0].size == (120, 80)
    assert not any("resumed" in note for note in small.notes)


@pytest.mark.slow
def test_cancel_keeps_the_frames_done_and_before_any_raises(inception_engine, cat_photo):
    cancel = threading.Event()
    spec = MotionSpec("zoom", frames=5)

    def stop_after_frame_two(progress) -> None:
        if progress.frame == 2 and progress.finished_frame is not None:
            cancel.set()

    result = run_motion(
        inception_engine, spec, QUICK, [cat_photo], on_progress=stop_after_frame_two,
        cancel=cancel, max_side=160,
    )  # fmt: skip
    assert len(result.frames) == 2 and result.planned_frames == 5
    assert "cancelled after 2 of 5 frames" in result.notes
    with pytest.raises(DreamCancelled):
        run_motion(inception_engine, spec, QUICK, [cat_photo], cancel=cancel, max_side=160)


@pytest.mark.slow
def test_a_clip_is_dreamed_frame_by_frame_and_blending_carries_the_dream(
    inception_engine,
):
    wide = textured(220, 120)
    clip = [Image.fromarray(wide[:, 6 * i : 6 * i + 160].astype(np.uint8)) for i in range(4)]
    alone = run_motion(inception_engine, MotionSpec("clip", blend=0.0), QUICK, clip)
    carried = run_motion(inception_engine, MotionSpec("clip", blend=0.8), QUICK, clip)
    assert len(alone.frames) == len(carried.frames) == 4
    np.testing.assert_array_equal(np.asarray(alone.frames[0]), np.asarray(carried.frames[0]))
    later = [np.abs(to_array(a) - to_array(b)).mean() for a, b in zip(alone.frames[1:],
             carried.frames[1:], strict=True)]  # fmt: skip
    assert min(later) > 0.5  # the last dream's change, carried in
