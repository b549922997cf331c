"""Moving dreams out: MP4 (H.264, which Discord plays inline) or GIF, within a byte limit.

Every frame is kept, at the clip's own rate: a zoom or a dreamed video is judged by
its motion, so what gives way to the limit is quality, then size. MP4 raises its
constant-rate factor (x264's CRF: 23 looks like the source, 35 is visibly soft)
before the frames shrink; a GIF halves its colours down to 64 before they do.

PyAV (FFmpeg's libx264) encodes the video; Pillow the GIF. No TensorFlow.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import Image

from dream_engine.media.animation import encode_gif

__all__ = ["CLIP_FORMATS", "EncodedClip", "encode_clip", "encode_clip_to_fit"]

CLIP_FORMATS = ("mp4", "gif")
CRFS = (23, 28, 33, 38)  # x264 quality, best first
GIF_COLOURS = (256, 128, 64)
SHRINK = 0.8  # each size down is this much of the one before
MIN_SIDE = 64


@dataclass(frozen=True)
class EncodedClip:
    """An encoded clip, ready to upload."""

    data: bytes
    format: str  # "mp4" or "gif"
    size: tuple[int, int]
    frames: int
    scaled_down: bool  # it had to shrink to fit the byte limit

    def filename(self, stem: str) -> str:
        return f"{stem}.{self.format}"


def encode_clip(
    frames: Sequence[Image.Image], fps: float, fmt: str, *, side: int | None = None, level: int = 0
) -> bytes:
    """All `frames` at `fps`, scaled to fit `side`, at quality `level` (0 = best): an
    index into `CRFS` for MP4, into `GIF_COLOURS` for GIF."""
    if not frames:
        raise ValueError("no frames to encode")
    size = _fit(frames[0].size, side, even=fmt == "mp4")
    shown = [f.convert("RGB") if f.size == size else f.convert("RGB").resize(size) for f in frames]
    if fmt == "mp4":
        return _mp4(shown, fps, CRFS[level])
    if fmt == "gif":
        return _gif(shown, fps, GIF_COLOURS[level])
    raise ValueError(f"format must be one of {CLIP_FORMATS}, got {fmt!r}")


def encode_clip_to_fit(
    frames: Sequence[Image.Image], fps: float, fmt: str, limit_bytes: int
) -> EncodedClip:
    """The clip in at most `limit_bytes`: lower quality first, then smaller frames (each
    size from the originals, so blur does not pile up); `ValueError` if even `MIN_SIDE`
    px at the lowest quality does not fit."""
    levels = len(CRFS) if fmt == "mp4" else len(GIF_COLOURS)
    side = max(frames[0].size)
    while True:
        for level in range(levels):
            data = encode_clip(frames, fps, fmt, side=side, level=level)
            if len(data) <= limit_bytes:
                size = _fit(frames[0].size, side, even=fmt == "mp4")
                scaled = side < max(frames[0].size)
                return EncodedClip(data, fmt, size, len(frames), scaled)
        if side <= MIN_SIDE:
            raise ValueError(
                f"the clip does not fit in {limit_bytes} bytes, even at {MIN_SIDE} px"
            )
        side = max(MIN_SIDE, int(side * SHRINK))


def _mp4(frames: list[Image.Image], fps: float, crf: int) -> bytes:
    # faststart: the index first, so Discord's player starts before the download ends.
    # FFmpeg moves it in a second pass over a real file, so the clip is written to one.
    with tempfile.TemporaryDirectory(prefix="dream-clip-") as folder:
        path = Path(folder) / "clip.mp4"
        _write_mp4(path, frames, fps, crf)
        return path.read_bytes()


def _write_mp4(path: Path, frames: list[Image.Image], fps: float, crf: int) -> None:
    import av

    with av.open(str(path), mode="w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"  # what every player (and Discord's) decodes
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _gif(frames: list[Image.Image], fps: float, colours: int) -> bytes:
    # GIF counts in 10 ms; browsers show anything shorter than 20 ms as 100.
    return encode_gif(frames, colours=colours, frame_ms=max(20, round(1000 / fps)))


def _fit(size: tuple[int, int], side: int | None, *, even: bool) -> tuple[int, int]:
    width, height = size
    if side is not None and max(width, height) > side:
        scale = side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    if even:  # H.264 in 4:2:0 needs even sides
        width, height = max(2, width - width % 2), max(2, height - height % 2)
    return width, height
