"""The octave loop on real architectures: sizes, early stop, progress, cancel, tracing."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
from PIL import Image

from dream_engine import DreamCancelled, DreamParams, ImageError, ParamError, load_preset
from dream_engine.core.engine import Progress, octave_shapes

FAST = DreamParams(
    layers={"mixed3": 1.0, "mixed5": 0.5},
    step=0.01,
    octaves=3,
    octave_scale=1.4,
    iterations=4,
    max_loss=1e6,
)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def test_output_and_octaves_have_the_right_sizes(inception_engine, noise_image):
    result = inception_engine.dream(noise_image, FAST)
    assert result.image.size == noise_image.size
    assert len(result.octaves) == 3
    assert result.octaves[-1].size == noise_image.size
    widths = [octave.width for octave in result.octaves]
    for smaller, larger in itertools.pairwise(widths):
        assert larger / smaller == pytest.approx(1.4, rel=0.03)
    assert [len(history) for history in result.losses] == [4, 4, 4]
    assert result.notes == []


def test_octave_shapes_drop_octaves_below_the_model_minimum():
    shapes, dropped = octave_shapes((200, 300), octaves=5, scale=1.6, min_side=75)
    assert shapes == [(78, 117), (125, 188), (200, 300)]  # 200 / 1.6**3 = 49 < 75
    assert dropped == 2


def test_small_image_runs_fewer_octaves_and_says_so(inception_engine, noise_image):
    small = noise_image.resize((130, 110))
    result = inception_engine.dream(small, FAST.replace(octaves=5, iterations=1))
    assert len(result.octaves) == 2  # 110 and 110/1.4=79 fit above 75 px; 56 does not
    assert any("ran 2 of 5 octaves" in note for note in result.notes)


def test_image_under_the_minimum_is_upscaled_first(inception_engine, noise_image):
    result = inception_engine.dream(noise_image.resize((60, 40)), FAST.replace(iterations=1))
    assert min(result.image.size) == 75
    assert result.image.size == (112, 75)
    assert any("upscaled from 60x40" in note for note in result.notes)


def test_a_strip_is_resized_once_so_its_detail_survives(inception_engine):
    # 800x40 at max side 160 would be 160x8, under the model's 75 px: resize the upload
    # straight to 1500x75 instead of rebuilding it from 8 rows.
    rows = (np.arange(40) // 4) % 2 * 255  # stripes 8 px apart
    strip = Image.fromarray(np.repeat(rows[:, None], 800, axis=1).astype(np.uint8))
    result = inception_engine.dream(
        strip.convert("RGB"), FAST.replace(iterations=1, step=0.0001), max_side=160
    )
    assert result.image.size == (1500, 75)
    assert any("upscaled from 800x40 to 1500x75" in note for note in result.notes)
    profile = np.asarray(result.image.convert("L"), np.float32).mean(axis=1)
    assert profile.std() > 40  # the stripes, not a grey smear


@pytest.mark.parametrize("size", [(1, 1), (4000, 8)])
def test_absurd_images_are_refused_clearly(inception_engine, size):
    with pytest.raises(ImageError, match="too"):
        inception_engine.dream(Image.new("RGB", size), FAST)


def test_max_side_scales_the_input_down(inception_engine, noise_image):
    result = inception_engine.dream(
        noise_image, FAST.replace(iterations=1, octaves=1), max_side=110
    )
    assert max(result.image.size) == 110
    assert any("scaled down" in note for note in result.notes)


def test_max_loss_stops_an_octave_early(dogs_engine, cat_photo):
    params = load_preset("dogs-dream").replace(octaves=1, iterations=30, max_loss=1e6)
    free_run = dogs_engine.dream(cat_photo, params).losses[0]
    threshold = (free_run[0] + free_run[-1]) / 2  # passed somewhere in the middle
    stopped = dogs_engine.dream(cat_photo, params.replace(max_loss=threshold)).losses[0]
    assert len(stopped) < 30
    assert stopped[-1] > threshold
    assert all(loss <= threshold for loss in stopped[:-1])


def test_progress_events_are_complete_and_ordered(inception_engine, noise_image):
    events: list[Progress] = []
    inception_engine.dream(noise_image, FAST.replace(iterations=7), on_progress=events.append)
    positions = [(event.octave, event.step) for event in events]
    assert positions == sorted(positions)
    for octave in (1, 2, 3):
        steps = [event.step for event in events if event.octave == octave]
        assert steps[-1] == 7
        assert steps[0] <= inception_engine.progress_every  # reported that often at least
    assert events[-1].fraction == 1.0
    assert all(event.octaves == 3 and event.steps == 7 for event in events)


def test_cancel_stops_the_dream(inception_engine, noise_image):
    cancel = threading.Event()
    events: list[Progress] = []

    def on_progress(event: Progress) -> None:
        events.append(event)
        cancel.set()

    with pytest.raises(DreamCancelled):
        inception_engine.dream(
            noise_image, FAST.replace(iterations=50), on_progress=on_progress, cancel=cancel
        )
    assert len(events) == 1


def test_same_seed_same_dream_and_seed_drives_jitter(inception_engine, noise_image):
    params = FAST.replace(jitter=8, seed=3)
    first = pixels(inception_engine.dream(noise_image, params).image)
    again = pixels(inception_engine.dream(noise_image, params).image)
    other = pixels(inception_engine.dream(noise_image, params.replace(seed=4)).image)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_new_image_sizes_do_not_retrace(inception_engine, noise_image):
    params = FAST.replace(iterations=2, layers={"mixed2": 1.0})
    inception_engine.dream(noise_image, params)
    traces = inception_engine.trace_count
    for size in [(171, 203), (233, 160), (199, 199)]:
        inception_engine.dream(noise_image.resize(size), params)
    assert inception_engine.trace_count == traces


def test_parameters_for_another_model_are_refused(inception_engine, noise_image):
    with pytest.raises(ParamError, match="dogs"):
        inception_engine.dream(noise_image, load_preset("dogs-dream"))


def test_dogs_dream_of_a_real_photo_really_dreams(dogs_engine, cat_photo):
    result = dogs_engine.dream(cat_photo, load_preset("dogs-dream").replace(iterations=10))
    for history in result.losses:
        assert history[-1] > 1.5 * history[0]  # gradient ascent climbs
    change = np.abs(pixels(result.image) - pixels(cat_photo)).mean()
    assert change > 12  # of 255: a visible dream, not a rounding difference


@pytest.mark.slow  # an engine of its own
def test_warm_up_traces_once_so_the_first_dream_does_not(noise_image):
    from dream_engine import DreamEngine

    engine = DreamEngine(model="inceptionv3", weights="random")
    params = load_preset("balanced").replace(iterations=1)
    engine.warm_up(params)
    assert engine.trace_count == 1
    engine.dream(noise_image, params)
    assert engine.trace_count == 1
