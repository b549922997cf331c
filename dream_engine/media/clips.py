"""Moving pictures in: animated GIF and WebP (Pillow), MP4, WebM and MOV (PyAV).

A clip is checked before anything is dreamed, from what is cheap to learn: the
container's header and a count of its packets (no frame is decoded for that), so
an upload over a server's limits is refused in a moment with a message that says
which limit and by how much. `decode_clip` then decodes it to RGB frames at the
size they will be dreamed at, and refuses a damaged stream with one line.

`is_clip` says whether bytes are a clip at all (a still GIF or WebP is an image,
not a clip of one frame), so every caller takes one path for a still and one for
a clip. No TensorFlow here: the bot checks uploads with it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image, ImageSequence

from dream_engine.errors import ImageError
from dream_engine.media.images import DamagedImageError, TooManyPixelsError

__all__ = [
    "Clip",
    "ClipInfo",
    "ClipLimits",
    "ClipTooLongError",
    "decode_clip",
    "is_clip",
    "probe_clip",
    "side_within_budget",
]

#: Containers PyAV reads for us, by the bytes they start with (ISO BMFF, Matroska/WebM).
_ISO_BMFF = b"ftyp"  # at offset 4: MP4, MOV, M4V
_MATROSKA = b"\x1a\x45\xdf\xa3"  # WebM, MKV
MIN_FPS, MAX_FPS = 1.0, 60.0  # a clip's rate is kept within these (a GIF's 0 ms frames...)
MIN_CLIP_SIDE = 96  # a moving dream is made smaller to fit a pixel budget, but not below this


class ClipTooLongError(ImageError):
    """More frames, seconds or pixels than the limits allow (checked before decoding)."""


@dataclass(frozen=True)
class ClipLimits:
    """What one clip may hold. The defaults keep a job to about a minute on one GPU and
    its result well within Discord's 10 MiB: 2 seconds at 24 fps fit with room."""

    max_frames: int = 48
    max_seconds: float = 10.0
    # Every frame's pixels, summed, at the size they are dreamed at (after max_side).
    max_pixels: int = 6_000_000


@dataclass(frozen=True)
class ClipInfo:
    """What the container says, before any frame is decoded."""

    kind: str  # "GIF", "WebP", "MP4", "WebM"...
    frames: int
    fps: float
    seconds: float
    size: tuple[int, int]  # (width, height) as uploaded


@dataclass(frozen=True)
class Clip:
    """Decoded frames, RGB, all of one size, and the rate they play at."""

    frames: tuple[Image.Image, ...]
    fps: float

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size


def is_clip(data: bytes) -> bool:
    """Whether `data` is a moving picture: a video container, or a GIF or WebP with more
    than one frame."""
    head = bytes(data[:64])
    if head[4:8] == _ISO_BMFF or head.startswith(_MATROSKA):
        return True
    if head.startswith(b"GIF8") or (head.startswith(b"RIFF") and head[8:12] == b"WEBP"):
        try:
            with Image.open(io.BytesIO(data)) as image:
                return getattr(image, "n_frames", 1) > 1
        except Exception:  # a damaged still: `decode_image` explains it
            return False
    return False


def probe_clip(data: bytes, limits: ClipLimits) -> ClipInfo:
    """The clip's frames, rate, length and size, refused (`ClipTooLongError`,
    `DamagedImageError`) when it has more frames or seconds than `limits` allow, or is
    unreadable; nothing is decoded. (The pixels are fitted, not refused: `decode_clip`.)"""
    info = _probe_animation(data) if _is_animation(data) else _probe_video(data)
    if info.frames < 2:
        raise DamagedImageError(
            f"This {info.kind} has {info.frames} readable frame(s); a clip needs at least 2. "
            "Attach it as a still image, or export the clip again."
        )
    if info.frames > limits.max_frames:
        raise ClipTooLongError(
            f"This clip has {info.frames} frames; the limit here is {limits.max_frames}. "
            f"Trim it (for example to {limits.max_frames / info.fps:.1f} s at its "
            f"{info.fps:g} fps) and try again."
        )
    if info.seconds > limits.max_seconds:
        raise ClipTooLongError(
            f"This clip lasts {info.seconds:.1f} s; the limit here is {limits.max_seconds:g} s. "
            "Trim it and try again."
        )
    return info


def decode_clip(data: bytes, limits: ClipLimits, max_side: int | None = None) -> Clip:
    """Every frame as RGB at the size it is dreamed at: within `max_side`, and smaller
    still where every frame's pixels, summed, would pass `limits.max_pixels`
    (`side_within_budget`, which refuses below `MIN_CLIP_SIDE`). Checked by `probe_clip`
    first; a stream that breaks while decoding is a `DamagedImageError`."""
    info = probe_clip(data, limits)
    side = side_within_budget(info.size, info.frames, limits, max_side)
    size = _dreamed_size(info.size, side)
    # Each frame is brought to that size as it is decoded: a 4K clip never holds more
    # than one full-size frame in memory.
    read = _animation_frames if _is_animation(data) else _video_frames
    return Clip(tuple(read(data, info, size)), info.fps)


def side_within_budget(
    size: tuple[int, int], frames: int, limits: ClipLimits, max_side: int | None
) -> int:
    """The longest side a moving dream of `frames` frames is dreamed at: `max_side`, or
    smaller until every frame's pixels, summed, fit `limits.max_pixels`. Refused
    (`TooManyPixelsError`) when that would be under `MIN_CLIP_SIDE`."""
    width, height = size
    longest = max(width, height) if max_side is None else min(max(width, height), max_side)
    area_at_longest = width * height * (longest / max(width, height)) ** 2
    fits = math.floor(longest * math.sqrt(limits.max_pixels / (frames * area_at_longest)))
    side = min(longest, fits)
    if side < MIN_CLIP_SIDE:
        raise TooManyPixelsError(
            f"{frames} frames would have to be dreamed at {max(side, 1)} px to fit the "
            f"{limits.max_pixels / 1e6:g} million pixels allowed here; the least is "
            f"{MIN_CLIP_SIDE} px. Send fewer frames."
        )
    return side


# -- animations: Pillow -------------------------------------------------------------------------


def _is_animation(data: bytes) -> bool:
    head = bytes(data[:16])
    return head.startswith(b"GIF8") or (head.startswith(b"RIFF") and head[8:12] == b"WEBP")


def _probe_animation(data: bytes) -> ClipInfo:
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = "GIF" if image.format == "GIF" else "WebP"
            frames = getattr(image, "n_frames", 1)
            total_ms = 0
            for frame in ImageSequence.Iterator(image):
                total_ms += frame.info.get("duration") or 100  # browsers show 0 ms as ~100
            size = image.size
    except Exception as error:
        raise DamagedImageError(_damaged("animation")) from error
    seconds = total_ms / 1000
    return ClipInfo(kind, frames, _rate(frames / seconds if seconds else 10.0), seconds, size)


def _animation_frames(data: bytes, info: ClipInfo, size: tuple[int, int]) -> list[Image.Image]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return [_sized(frame.convert("RGB"), size) for frame in ImageSequence.Iterator(image)]
    except Exception as error:
        raise DamagedImageError(_damaged(info.kind)) from error


def _sized(frame: Image.Image, size: tuple[int, int]) -> Image.Image:
    return frame if frame.size == size else frame.resize(size, Image.Resampling.LANCZOS)


# -- video: PyAV (FFmpeg) -----------------------------------------------------------------------


def _probe_video(data: bytes) -> ClipInfo:
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise DamagedImageError(
                    "This file has no video in it (sound only?). Attach a clip or an image."
                )
            stream = container.streams.video[0]
            kind = _container_kind(container.format.name)
            size = (stream.codec_context.width, stream.codec_context.height)
            # Counting packets reads the file but decodes nothing: the true frame count,
            # where headers (WebM's especially) often say 0.
            frames = sum(1 for packet in container.demux(stream) if packet.size)
            promised = stream.frames  # the header's count, where it keeps one (MP4 does)
            rate = stream.average_rate or stream.guessed_rate
            seconds = float(container.duration / av.time_base) if container.duration else 0.0
    except DamagedImageError:
        raise
    except Exception as error:  # av.error.InvalidDataError and kin: not a stream FFmpeg reads
        raise DamagedImageError(_damaged("video")) from error
    if promised and frames < promised:
        raise DamagedImageError(
            f"This {kind} is cut off: {frames} of its {promised} frames are there. "
            "Export it again and re-attach it."
        )
    fps = _rate(float(rate) if rate else (frames / seconds if seconds else 24.0))
    if not seconds:
        seconds = frames / fps
    if min(size) < 1:
        raise DamagedImageError(_damaged(kind))
    return ClipInfo(kind, frames, fps, seconds, size)


def _video_frames(data: bytes, info: ClipInfo, size: tuple[int, int]) -> list[Image.Image]:
    import av

    frames: list[Image.Image] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                frames.append(_sized(frame.to_image().convert("RGB"), size))
                if len(frames) >= info.frames:
                    break
    except Exception as error:
        raise DamagedImageError(_damaged(info.kind)) from error
    if len(frames) < info.frames:
        raise DamagedImageError(_damaged(info.kind))
    return frames


def _container_kind(name: str) -> str:
    if "webm" in name or "matroska" in name:
        return "WebM"
    return "MP4" if "mp4" in name else name.split(",")[0].upper()


# -- shared -------------------------------------------------------------------------------------


def _rate(fps: float) -> float:
    return min(MAX_FPS, max(MIN_FPS, round(fps, 3)))


def _dreamed_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """The size frames are dreamed at: within `max_side`, sides even (H.264 needs them)."""
    width, height = size
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = round(width * scale), round(height * scale)
    return max(2, width - width % 2), max(2, height - height % 2)


def _damaged(kind: str) -> str:
    return (
        f"This {kind} is damaged or cut off, so its frames can't be read. "
        "Export it again and re-attach it."
    )
