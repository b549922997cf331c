"""Clips in and out (`media/clips.py`, `media/clip_encoding.py`): real MP4, WebM and GIF
files made with PyAV and Pillow, probed, refused and decoded as uploads are."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from dream_engine.media.clip_encoding import encode_clip, encode_clip_to_fit
from dream_engine.media.clips import (
    ClipLimits,
    ClipTooLongError,
    decode_clip,
    is_clip,
    probe_clip,
)
from dream_engine.media.images import DamagedImageError, TooManyPixelsError


def moving(count: int = 12, size: tuple[int, int] = (160, 120)) -> list[Image.Image]:
    """A smooth random picture panning 4 px a frame: something codecs must really encode."""
    rng = np.random.default_rng(5)
    coarse = rng.integers(0, 256, (size[1] // 8, (size[0] + 4 * count) // 8, 3), dtype=np.uint8)
    wide = np.asarray(Image.fromarray(coarse).resize((size[0] + 4 * count, size[1]), Image.BICUBIC))
    return [Image.fromarray(wide[:, 4 * i : 4 * i + size[0]].copy()) for i in range(count)]


def webm(frames: list[Image.Image], fps: int = 10) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="webm") as out:
        stream = out.add_stream("libvpx-vp9", rate=Fraction(fps))
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_image(frame)))
        out.mux(stream.encode())
    return buffer.getvalue()


def gif(frames: list[Image.Image], ms: int = 80) -> bytes:
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=ms, loop=0)
    return buffer.getvalue()


def test_an_mp4_keeps_every_frame_and_its_rate_there_and_back():
    frames = moving(12)
    data = encode_clip(frames, 8.0, "mp4")
    assert is_clip(data)
    info = probe_clip(data, ClipLimits())
    assert (info.kind, info.frames, info.fps, info.size) == ("MP4", 12, 8.0, (160, 120))
    assert info.seconds == pytest.approx(1.5, abs=0.01)
    with av.open(io.BytesIO(data)) as container:  # what Discord plays inline
        assert container.streams.video[0].codec_context.name == "h264"
    clip = decode_clip(data, ClipLimits(), max_side=100)
    assert len(clip.frames) == 12 and clip.fps == 8.0
    assert clip.size == (100, 74)  # within max_side, sides even
    first = np.asarray(clip.frames[0].resize((160, 120)), np.float32)
    assert np.abs(first - np.asarray(frames[0], np.float32)).mean() < 8  # the same picture


def test_webm_and_gif_are_clips_and_a_still_is_not():
    frames = moving(6)
    info = probe_clip(webm(frames), ClipLimits())
    assert (info.kind, info.frames, info.fps) == ("WebM", 6, 10.0)  # counted: WebM keeps no count
    animated = gif(frames, ms=80)
    assert is_clip(animated)
    info = probe_clip(animated, ClipLimits())
    assert (info.kind, info.frames, info.fps) == ("GIF", 6, 12.5)
    assert len(decode_clip(animated, ClipLimits()).frames) == 6
    webp = io.BytesIO()
    frames[0].save(webp, "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0)
    info = probe_clip(webp.getvalue(), ClipLimits())
    assert (info.kind, info.frames, info.fps) == ("WebP", 6, 10.0)
    still = io.BytesIO()
    frames[0].save(still, "GIF")
    assert not is_clip(still.getvalue())
    assert not is_clip(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)


@pytest.mark.parametrize(
    ("limits", "error", "words"),
    [
        (ClipLimits(max_frames=10), ClipTooLongError, "has 12 frames; the limit here is 10"),
        (ClipLimits(max_seconds=1.0), ClipTooLongError, "lasts 1.5 s; the limit here is 1 s"),
    ],
)
def test_a_clip_over_a_limit_is_refused_before_decoding(limits, error, words):
    with pytest.raises(error, match=words):
        probe_clip(encode_clip(moving(12), 8.0, "mp4"), limits)


def test_a_clip_over_the_pixel_budget_is_dreamed_smaller_down_to_the_least():
    data = encode_clip(moving(12), 8.0, "mp4")  # 12 frames of 160x120: 230,400 pixels
    clip = decode_clip(data, ClipLimits(max_pixels=100_000), max_side=1024)
    width, height = clip.size
    assert len(clip.frames) == 12 and width < 160 and 12 * width * height <= 100_000
    assert width % 2 == height % 2 == 0  # H.264's even sides
    with pytest.raises(TooManyPixelsError, match="12 frames would have to be dreamed at"):
        decode_clip(data, ClipLimits(max_pixels=50_000))  # under 96 px: refused


def test_a_damaged_clip_is_refused_with_one_line():
    data = encode_clip(moving(12), 8.0, "mp4")
    for broken, words in [
        (data[: len(data) // 3], "cut off: "),
        (data[: len(data) - 3000], "cut off"),
        (b"\x00\x00\x00\x18ftypmp42" + b"\x07" * 500, "damaged or cut off"),
        (gif(moving(4))[:300], "damaged or cut off"),
    ]:
        with pytest.raises(DamagedImageError, match=words) as caught:
            decode_clip(broken, ClipLimits())
        assert "\n" not in str(caught.value)


def test_encoding_to_fit_lowers_quality_then_size_and_keeps_every_frame():
    frames = moving(12)
    best = encode_clip(frames, 8.0, "mp4")
    fitted = encode_clip_to_fit(frames, 8.0, "mp4", len(best) // 2)
    assert len(fitted.data) <= len(best) // 2 and fitted.frames == 12
    assert probe_clip(fitted.data, ClipLimits()).frames == 12
    least = len(encode_clip(frames, 8.0, "mp4", level=3))  # the lowest quality, full size
    tiny = encode_clip_to_fit(frames, 8.0, "mp4", least * 3 // 4)
    assert tiny.scaled_down and max(tiny.size) < 160 and len(tiny.data) <= least * 3 // 4
    as_gif = encode_clip_to_fit(frames, 8.0, "gif", 10 << 20)
    with Image.open(io.BytesIO(as_gif.data)) as shown:
        assert shown.n_frames == 12 and abs(shown.info["duration"] - 125) <= 5  # 10 ms units
    with pytest.raises(ValueError, match="does not fit"):
        encode_clip_to_fit(frames, 8.0, "gif", 500)
