"""Uploads in, results out: every image the bot accepts becomes an 8-bit RGB
PIL image, and every result is encoded small enough for Discord.

Uploads are untrusted bytes, so decoding is one pipeline with a guard at each
step (`decode_image`):

1. refuse empty input;
2. *open* lazily (header only) with Pillow restricted to the formats we support;
3. refuse too many pixels, a too-short side or a too-thin strip from the header,
   before a single pixel buffer is allocated: a 60000x60000 PNG can be a 100-byte file;
4. decode, and refuse a damaged or truncated file instead of dreaming on the
   half-grey picture Pillow could produce;
5. apply the EXIF orientation, so phone photos come out upright;
6. convert whatever mode the file had (palette, grayscale, CMYK, 16-bit,
   alpha...) to plain RGB, compositing transparency on white.

Every refusal is an `ImageError` subclass whose message is a sentence the user
can act on; callers show `str(error)` as is. Nothing here touches Pillow's
process-wide settings (`Image.MAX_IMAGE_PIXELS`, `ImageFile.LOAD_TRUNCATED_IMAGES`):
the limits are arguments, and truncation is checked here whatever those say.

No Discord and no TensorFlow here: the bot, the worker and the CLI all use it.
"""

from __future__ import annotations

import io
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from dream_engine.core.tiling import DEFAULT_MIN_SIDE, MAX_ASPECT_RATIO
from dream_engine.errors import ImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_SIDE",
    "MAX_ASPECT_RATIO",
    "SUPPORTED_FORMATS",
    "DamagedImageError",
    "EmptyFileError",
    "EncodedImage",
    "FileTooLargeError",
    "ImageTooSmallError",
    "NotAnImageError",
    "TooManyPixelsError",
    "UnreadableFileError",
    "UnsupportedFormatError",
    "check_upload",
    "decode_image",
    "encode_to_fit",
    "fit_within",
    "load_image_file",
]

DEFAULT_MAX_PIXELS = 40_000_000
"""Largest image decoded (width x height). 40 MP covers any phone photo, while
the RGB buffer (120 MB) stays far from what would hurt the bot."""


SUPPORTED_FORMATS = ("PNG", "JPEG", "WebP", "GIF", "BMP", "TIFF")
"""Formats we decode, spelled for people (messages, help text)."""

# Pillow's format ids for the same formats. Opening with only these keeps every
# other Pillow plugin (and its parser) away from untrusted bytes.
_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
# Pillow ids as people know them; MPO is what a multi-picture (phone) JPEG opens as.
_FORMAT_NAMES = {
    "PNG": "PNG",
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "WEBP": "WebP",
    "GIF": "GIF",
    "BMP": "BMP",
    "TIFF": "TIFF",
}
_ATTACH_HINT = "Attach a PNG, JPEG, WebP or GIF image."
_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

# encode_to_fit: the JPEG qualities tried, best first, before shrinking the
# picture; below ~80 JPEG artefacts show more than a slightly smaller image.
_JPEG_QUALITIES = (95, 90, 85, 80)
_SCALE_STEP = 0.8
_MEGABYTE = 1024 * 1024  # Discord's "MB" are MiB


class EmptyFileError(ImageError):
    """The upload has no bytes at all."""


class NotAnImageError(ImageError):
    """The bytes are not an image: text, HTML, PDF or unrecognisable data."""


class UnsupportedFormatError(ImageError):
    """An image, but in a format or colour mode we don't decode (SVG, HEIC, AVIF...)."""


class DamagedImageError(ImageError):
    """A supported format whose data is corrupt or cut short."""


class TooManyPixelsError(ImageError):
    """More pixels than the limit: refused from the header, before decoding."""


class FileTooLargeError(ImageError):
    """More bytes than the upload limit (checked before downloading)."""


class ImageTooSmallError(ImageError):
    """A side is shorter than the minimum the engine can work with, or far shorter than
    the other (a strip the engine will not dream)."""


class UnreadableFileError(ImageError):
    """A local file (CLI input) is missing or can't be read."""


# --------------------------------------------------------------------------
# Before downloading: metadata only
# --------------------------------------------------------------------------

# Content types that tell us nothing; the bytes decide.
_UNKNOWN_CONTENT_TYPES = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "application/unknown"}
)
_CONTENT_TYPE_NAMES = {
    "text/html": "a web page (HTML)",
    "application/xhtml+xml": "a web page (HTML)",
    "application/pdf": "a PDF document",
    "application/zip": "a ZIP archive",
    "application/json": "a JSON file",
    "text/plain": "a text file",
}
_CONTENT_FAMILY_NAMES = {
    "text": "a text file",
    "video": "a video",
    "audio": "an audio file",
}


#: Video types a clip may come as (`check_upload(clips=True)`); the bytes decide the rest.
CLIP_CONTENT_TYPES = frozenset({"video/mp4", "video/webm", "video/quicktime", "video/x-m4v"})


def check_upload(
    size_bytes: int | None,
    content_type: str | None,
    filename: str,
    max_bytes: int,
    *,
    clips: bool = False,
) -> None:
    """Refuse an attachment from its metadata alone, before downloading it.

    Catches what is certain without the bytes: empty, over `max_bytes`, or a
    content type that is plainly not an image (nor, with `clips`, a video that
    `media/clips.py` reads). An unknown size (None: an embed's picture) or type
    (missing, or `application/octet-stream`) passes, and the file name's extension
    is not trusted either way: the decoders have the final word.
    """
    if size_bytes is not None and size_bytes <= 0:
        raise EmptyFileError(f"“{filename}” is empty (0 bytes). {_ATTACH_HINT}")
    if size_bytes is not None and size_bytes > max_bytes:
        size_text, limit_text = _megabytes(size_bytes, max_bytes)
        raise FileTooLargeError(
            f"“{filename}” is {size_text}; the limit is {limit_text}. "
            "Shrink it (a smaller size, or saved as JPEG) and try again."
        )
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in _UNKNOWN_CONTENT_TYPES:
        return
    if media_type == "image/svg+xml":
        raise UnsupportedFormatError(_SVG_MESSAGE)
    if media_type.startswith("image/") or (clips and media_type in CLIP_CONTENT_TYPES):
        return
    family = media_type.split("/", 1)[0]
    if clips and family == "video":
        raise UnsupportedFormatError(
            f"“{filename}” is a video of a kind I don't read ({media_type}). "
            "Send it as MP4, WebM or MOV, or as an animated GIF."
        )
    kind = _CONTENT_TYPE_NAMES.get(media_type) or _CONTENT_FAMILY_NAMES.get(
        family, f"a file of type {media_type}"
    )
    raise NotAnImageError(f"“{filename}” is {kind}, not an image. {_ATTACH_HINT}")


def _megabytes(size: int, limit: int) -> tuple[str, str]:
    """Both sizes in MB, with just enough decimals that they read differently (in bytes
    when even three decimals agree)."""
    for decimals in (1, 2, 3):
        size_text = f"{size / _MEGABYTE:.{decimals}f} MB"
        limit_text = f"{limit / _MEGABYTE:.{decimals}f} MB"
        if size_text != limit_text:
            return size_text, limit_text
    return f"{size:,} bytes", f"{limit:,} bytes"


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> Image.Image:
    """Turn uploaded bytes into an 8-bit RGB image, or raise an `ImageError`.

    The size limits are checked from the header before anything is decoded,
    so a decompression bomb costs a few bytes of reading. Only the first frame
    of an animation (GIF, WebP, APNG) or the first page of a TIFF is used.
    Metadata (EXIF, ICC profile) is dropped: pixels are taken as sRGB, and a
    result never carries the uploader's EXIF (GPS and all) back out.
    """
    data = bytes(data)
    if not data:
        raise EmptyFileError(f"This file is empty (0 bytes). {_ATTACH_HINT}")
    with _open(data, max_pixels) as image:
        _check_dimensions(image.size, max_pixels=max_pixels, min_side=min_side)
        _load(image, data)
        upright = _apply_orientation(image)
    rgb = _to_rgb(upright)
    rgb.info = {}
    return rgb


def load_image_file(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> Image.Image:
    """Read a local file (the CLI's input) and decode it like an upload."""
    return decode_image(read_file(path), max_pixels=max_pixels, min_side=min_side)


def read_file(path: str | os.PathLike[str]) -> bytes:
    """A local file's bytes (the CLI's input, an image or a clip), or one line saying why not."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UnreadableFileError(f"Can't read {path}: there is no such file.") from None
    except IsADirectoryError:
        raise UnreadableFileError(
            f"Can't read {path}: it is a folder, not an image file."
        ) from None
    except PermissionError:
        raise UnreadableFileError(
            f"Can't read {path}: permission denied. Check the file's permissions."
        ) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise UnreadableFileError(f"Can't read {path}: {reason}.") from None


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Identify the format and read the header; no pixel is decoded yet."""
    try:
        return Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # Pillow's own, process-wide guard fired first (the image is beyond
        # even its limit), so the header's size is not at hand.
        raise TooManyPixelsError(
            "This image has far too many pixels to process safely (the limit is "
            f"{_pixel_count(max_pixels)}). Resize it and try again."
        ) from error
    except Image.UnidentifiedImageError as error:
        raise _explain_unidentified(data) from error
    except MemoryError:
        raise
    except Exception as error:  # plugins raise all sorts on a malformed header
        raise DamagedImageError(_damaged_message(_sniff_supported(data))) from error


def _check_dimensions(size: tuple[int, int], *, max_pixels: int, min_side: int) -> None:
    """Refuse from the header's size alone; the caller has decoded nothing yet."""
    width, height = size
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        fit_width = max(1, math.floor(width * scale))
        fit_height = max(1, math.floor(height * scale))
        count, limit = _pixel_count(width * height), _pixel_count(max_pixels)
        if count == limit:  # "40 megapixels; the limit is 40 megapixels" explains nothing
            count, limit = f"{width * height:,} pixels", f"{max_pixels:,} pixels"
        raise TooManyPixelsError(
            f"This image is {width}×{height} pixels ({count}); "
            f"the limit is {limit}. Resize it to about "
            f"{fit_width}×{fit_height} or smaller and try again."
        )
    if min(width, height) < min_side:
        raise ImageTooSmallError(
            f"This image is only {width}×{height} pixels; each side needs at least "
            f"{min_side} pixels. Attach a larger image."
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageTooSmallError(
            f"This image is {width}×{height} pixels, too long and thin to dream (more than "
            f"{MAX_ASPECT_RATIO}:1); crop it closer to a square."
        )


def _load(image: Image.Image, data: bytes) -> None:
    """Decode the pixels, refusing corrupt or truncated data.

    Pillow raises on truncation unless `ImageFile.LOAD_TRUNCATED_IMAGES` is
    set, a process-wide switch any other library may flip; so for JPEG and
    PNG, whose ends are marked, completeness is also checked here directly.
    """
    name = _FORMAT_NAMES.get(image.format or "", image.format)
    try:
        image.load()
    except MemoryError:
        raise
    except Exception as error:  # decoders raise OSError, SyntaxError, ValueError...
        raise DamagedImageError(_damaged_message(name)) from error
    if not _is_complete(data, image.format):
        raise DamagedImageError(_damaged_message(name))


def _is_complete(data: bytes, pil_format: str | None) -> bool:
    """Whether a JPEG or PNG file reaches its end marker (others: trusted)."""
    if pil_format in ("JPEG", "MPO"):
        # An end-of-image marker after the main image's start-of-scan. Scan data
        # never holds 0xFFD9 (0xFF is byte-stuffed); thumbnails sit in segments
        # before the scan, so their markers are skipped.
        start_of_scan = _jpeg_start_of_scan(data)
        return start_of_scan != -1 and data.rfind(b"\xff\xd9") > start_of_scan
    if pil_format == "PNG":
        offset = 8  # after the signature: chunks of length, type, data, CRC
        while offset + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[offset : offset + 8])
            if kind == b"IEND":
                return True
            offset += 12 + length
        return False
    return True


def _jpeg_start_of_scan(data: bytes) -> int:
    """Offset of the first SOS marker, walking segment by segment; -1 if none."""
    offset = 2  # after SOI
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:  # stray bytes between segments: decoders skip them too
            offset += 1
            continue
        marker = data[offset + 1]
        if marker == 0xDA:
            return offset
        if marker == 0xFF:  # fill byte
            offset += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length field
            offset += 2
        else:
            offset += 2 + int.from_bytes(data[offset + 2 : offset + 4], "big")
    return -1


def _apply_orientation(image: Image.Image) -> Image.Image:
    """A copy turned upright per its EXIF orientation (phone photos)."""
    try:
        upright = ImageOps.exif_transpose(image)
    except MemoryError:
        raise
    except Exception:  # EXIF parsing and rewriting raise many types
        # A mangled EXIF block shouldn't cost the user their picture: the
        # pixels decoded fine, so keep them as stored.
        upright = None
    return upright if upright is not None else image.copy()


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is composited on white.

    Alpha isn't just dropped: fully transparent pixels often hold garbage
    (black, or leftovers of an edit) that would suddenly show.
    """
    mode = image.mode
    try:
        if mode in ("I", "F") or mode.startswith("I;16"):
            image = _to_8bit_gray(image)
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, _WHITE)
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image if image.mode == "RGB" else image.convert("RGB")
    except ValueError as error:  # a mode Pillow can't convert (e.g. La)
        raise UnsupportedFormatError(
            f"This image uses the {mode} colour mode, which isn't supported. "
            "Save it as an ordinary RGB PNG or JPEG and try again."
        ) from error


def _to_8bit_gray(image: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit integer or float grayscale down to 8 bits.

    Pillow's own conversion clips at 255, turning most 16-bit images white.
    `I;16` is 16-bit by definition. `I` and `F` don't say their range, so it is
    inferred: values within 0..1 (float), 0..255 or 0..65535 are taken as that
    range; anything else is stretched from its minimum to its maximum.
    """
    if image.mode.startswith("I;16"):
        return Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
    values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if image.mode == "F" and low >= 0 and high <= 1:
        values = values * 255
    elif low >= 0 and high <= 255:
        pass
    elif low >= 0 and high <= 65535:
        values = values / 257
    else:
        values = (values - low) * (255 / ((high - low) or 1))
    return Image.fromarray(np.rint(values).clip(0, 255).astype(np.uint8))


# --------------------------------------------------------------------------
# Explaining what an unreadable upload is
# --------------------------------------------------------------------------

_SVG_MESSAGE = "SVG (vector) images aren't supported. Export it as PNG or JPEG and attach that."
_HEIF_BRANDS = frozenset(
    {
        b"heic",
        b"heix",
        b"heim",
        b"heis",
        b"hevc",
        b"hevx",
        b"hevm",
        b"hevs",
        b"mif1",
        b"msf1",
    }
)


def _sniff_supported(data: bytes) -> str | None:
    """The supported format these bytes start like, if any (for messages)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if data.startswith(b"BM"):
        return "BMP"
    return None


def _damaged_message(format_name: str | None) -> str:
    what = f"This {format_name} file" if format_name else "This image"
    return (
        f"{what} is damaged or incomplete (it may have been cut off while saving "
        "or uploading). Save or export it again and re-attach it."
    )


def _explain_unidentified(data: bytes) -> ImageError:
    """The most helpful error for bytes no supported decoder recognised."""
    supported = _sniff_supported(data)
    if supported:  # right signature, header too broken to open
        return DamagedImageError(_damaged_message(supported))
    if data[4:8] == b"ftyp":  # ISO media: HEIC/AVIF photos, or a video
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return UnsupportedFormatError(
                "AVIF images aren't supported. Convert it to PNG or JPEG and try again."
            )
        if brand in _HEIF_BRANDS:
            return UnsupportedFormatError(
                "HEIC/HEIF photos (the iPhone default) aren't supported. Convert it "
                "to JPEG or PNG (or share it as JPEG from the Photos app) and try again."
            )
    if data.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL ")):
        return UnsupportedFormatError(
            "JPEG XL images aren't supported. Convert it to PNG or JPEG and try again."
        )
    if data.startswith(b"%PDF"):
        return NotAnImageError(
            "This file is a PDF document, not an image. Export the page as PNG or "
            "JPEG and attach that."
        )
    text = _as_text(data[:4096])
    if text is not None:
        start = text.lstrip("\ufeff \t\r\n").lower()
        if start.startswith(("<!doctype html", "<html")) or "<head" in start[:1024]:
            return NotAnImageError(
                "This file is a web page (HTML), not an image: the link probably led "
                "to a page around the picture. Save the image itself and attach it."
            )
        if "<svg" in start:
            return UnsupportedFormatError(_SVG_MESSAGE)
        return NotAnImageError(
            "This file contains text, not an image (renaming a file to .png doesn't "
            f"convert it). {_ATTACH_HINT}"
        )
    return NotAnImageError(
        "This file isn't an image I can read. Supported formats: "
        f"{', '.join(SUPPORTED_FORMATS)}; save or export it as one of those and try again."
    )


def _as_text(sample: bytes) -> str | None:
    """`sample` decoded if it looks like text (no control bytes), else None."""
    if any(byte < 9 or 13 < byte < 32 for byte in sample):
        return None
    return sample.decode("utf-8", errors="replace")


def _pixel_count(pixels: int) -> str:
    if pixels >= 100_000:
        return f"{round(pixels / 1_000_000, 1):g} megapixels"
    return f"{pixels:,} pixels"


# --------------------------------------------------------------------------
# Resizing and encoding results
# --------------------------------------------------------------------------


def fit_within(image: Image.Image, max_side: int) -> Image.Image:
    """Scale down (LANCZOS, aspect kept) so the longest side is at most `max_side`.

    Never upscales: an image that already fits is returned as is (the same
    object), since enlarging adds pixels to dream on but no detail.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    width, height = image.size
    longest = max(width, height)
    if longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


@dataclass(frozen=True)
class EncodedImage:
    """An encoded result, ready to upload."""

    data: bytes
    format: str  # "PNG" or "JPEG"
    extension: str  # "png" or "jpg"
    size: tuple[int, int]  # (width, height) of the encoded picture
    scaled_down: bool  # True when it had to shrink to fit the byte limit

    def filename(self, stem: str) -> str:
        """`stem` with this encoding's extension, e.g. ``dream.png``."""
        return f"{stem}.{self.extension}"


def encode_to_fit(image: Image.Image, max_bytes: int, *, prefer: str = "png") -> EncodedImage:
    """Encode `image` in at most `max_bytes`, losing as little as possible.

    Tries, at full size: lossless PNG (unless `prefer="jpeg"`), then JPEG from
    quality 95 down to 80. If none fits, the same at 0.8, 0.64... of the size,
    each scaled from the original so blur doesn't accumulate. Transparency is
    composited on white (JPEG has none). Raises ValueError only for a limit
    too small for even a 1x1 image, a configuration error.
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    if prefer not in ("png", "jpeg"):
        raise ValueError(f"prefer must be 'png' or 'jpeg', got {prefer!r}")
    original = _to_rgb(image)
    attempts: list[tuple[str, dict[str, object]]] = [
        ("JPEG", {"quality": quality, "optimize": True}) for quality in _JPEG_QUALITIES
    ]
    if prefer == "png":
        attempts.insert(0, ("PNG", {}))
    width, height = original.size
    scale = 1.0
    while True:
        size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
        current = original if scale == 1.0 else original.resize(size, Image.Resampling.LANCZOS)
        for pil_format, options in attempts:
            buffer = io.BytesIO()
            current.save(buffer, pil_format, **options)
            if buffer.tell() <= max_bytes:
                return EncodedImage(
                    data=buffer.getvalue(),
                    format=pil_format,
                    extension="png" if pil_format == "PNG" else "jpg",
                    size=current.size,
                    scaled_down=scale < 1.0,
                )
        if size == (1, 1):
            raise ValueError(f"max_bytes={max_bytes} cannot hold even a 1x1 image")
        scale *= _SCALE_STEP
