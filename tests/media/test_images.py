"""Behaviour of `dream_engine.media.images`: every upload in, every result out.

All fixtures are generated here with Pillow and numpy; no binary files.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, ImageOps

from dream_engine.errors import ImageError, UserError
from dream_engine.media.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    SUPPORTED_FORMATS,
    DamagedImageError,
    EmptyFileError,
    EncodedImage,
    FileTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TooManyPixelsError,
    UnreadableFileError,
    UnsupportedFormatError,
    check_upload,
    decode_image,
    encode_to_fit,
    fit_within,
    load_image_file,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
MB = 1024 * 1024


# --------------------------------------------------------------------------
# Fixture builders
# --------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def quadrants(width: int = 64, height: int = 48) -> Image.Image:
    """Red, green / blue, white quadrants: catches flips, swaps and colour errors."""
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[: height // 2, : width // 2] = RED
    pixels[: height // 2, width // 2 :] = GREEN
    pixels[height // 2 :, : width // 2] = BLUE
    pixels[height // 2 :, width // 2 :] = WHITE
    return Image.fromarray(pixels)


def quadrant_centres(image: Image.Image) -> list[tuple[int, ...]]:
    width, height = image.size
    xs, ys = (width // 4, 3 * width // 4), (height // 4, 3 * height // 4)
    return [image.getpixel((x, y)) for y in ys for x in xs]


def assert_close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 0) -> None:
    assert len(actual) == len(expected), (actual, expected)
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (
        actual,
        expected,
    )


def noisy_photo(size: int = 512, seed: int = 0) -> Image.Image:
    """Gradients plus noise: PNG compresses it poorly, JPEG well (like a dream)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] * (512 / size)
    base = np.stack([x / 2, y / 2, (x + y) / 4], axis=-1)
    pixels = (base + rng.normal(0, 20, base.shape)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def png_header_only(width: int, height: int) -> bytes:
    """A valid-looking PNG claiming width x height but holding ~10 bytes of pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + png_chunk(b"IEND", b"")
    )


def decode_or_image_error(data: bytes, **limits: int) -> None:
    """Decoding either succeeds with RGB or raises an ImageError; nothing else."""
    try:
        image = decode_image(data, **limits)
    except ImageError as error:
        assert str(error)
    else:
        assert image.mode == "RGB"


# --------------------------------------------------------------------------
# Supported formats
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options", "tolerance"),
    [
        ("PNG", {}, 0),
        ("JPEG", {"quality": 95}, 12),
        ("WEBP", {"quality": 95}, 12),
        ("WEBP", {"lossless": True}, 0),
        ("GIF", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
        ("TIFF", {"compression": "tiff_lzw"}, 0),
    ],
)
def test_each_format_decodes_to_rgb_with_its_size_and_colours(fmt, options, tolerance):
    data = encode(quadrants(), fmt, **options)

    image = decode_image(data)

    assert image.mode == "RGB"
    assert image.size == (64, 48)
    for actual, expected in zip(quadrant_centres(image), [RED, GREEN, BLUE, WHITE], strict=True):
        assert_close(actual, expected, tolerance)


def test_result_is_detached_and_carries_no_metadata():
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    data = encode(quadrants(), "JPEG", exif=exif, icc_profile=b"not really a profile")

    image = decode_image(data)

    assert image.info == {}
    assert not image.getexif()
    image.load()  # no file handle behind it


def test_exif_orientation_is_applied():
    # Stored landscape with a red marker top-left; orientation 6 means "rotate
    # 90 degrees clockwise to display", so the marker ends up top-right.
    stored = Image.new("RGB", (80, 40), (128, 128, 128))
    stored.paste(RED, (0, 0, 12, 12))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", exif=exif, quality=95)

    image = decode_image(data)

    assert image.size == (40, 80)
    assert_close(image.getpixel((40 - 6, 6)), RED, 30)
    assert_close(image.getpixel((6, 6)), (128, 128, 128), 30)
    assert_close(image.getpixel((6, 80 - 6)), (128, 128, 128), 30)


def test_broken_exif_keeps_the_picture_unrotated():
    # An ImageWidth tag holding a fraction: Pillow reads it, but exif_transpose
    # fails writing the EXIF back. The pixels are fine, so they are kept as stored.
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate
    exif[0x011A] = 72.0  # XResolution, a RATIONAL...
    data = encode(quadrants(), "JPEG", exif=exif, quality=95)
    data = data.replace(b"\x01\x1a\x00\x05", b"\x01\x00\x00\x05", 1)  # ...now ImageWidth
    with pytest.raises(Exception):  # noqa: B017 - whatever Pillow raises
        ImageOps.exif_transpose(Image.open(io.BytesIO(data)))

    image = decode_image(data)

    assert image.size == (64, 48)
    for actual, expected in zip(quadrant_centres(image), [RED, GREEN, BLUE, WHITE], strict=True):
        assert_close(actual, expected, 12)


# --------------------------------------------------------------------------
# Colour modes
# --------------------------------------------------------------------------


def test_grayscale_becomes_gray_rgb():
    image = decode_image(encode(Image.new("L", (32, 32), 77), "PNG"))

    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == (77, 77, 77)


def test_one_bit_becomes_black_and_white():
    bilevel = Image.new("1", (32, 32), 0)
    bilevel.paste(1, (16, 0, 32, 32))

    image = decode_image(encode(bilevel, "PNG"))

    assert image.getpixel((4, 4)) == (0, 0, 0)
    assert image.getpixel((28, 4)) == WHITE


def test_palette_becomes_rgb():
    palette_image = quadrants().quantize(colors=4)
    assert palette_image.mode == "P"

    image = decode_image(encode(palette_image, "PNG"))

    assert image.mode == "RGB"
    for actual, expected in zip(quadrant_centres(image), [RED, GREEN, BLUE, WHITE], strict=True):
        assert_close(actual, expected, 0)


def _palette_with_transparent_garbage() -> Image.Image:
    """Left half: index 0, a bright green marked transparent; right half red."""
    palette_image = Image.new("P", (32, 32), 0)
    palette_image.putpalette([*GREEN, *RED] + [0, 0, 0] * 254)
    palette_image.paste(1, (16, 0, 32, 32))
    return palette_image


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_is_composited_on_white(fmt):
    data = encode(_palette_with_transparent_garbage(), fmt, transparency=0)

    image = decode_image(data)

    assert image.getpixel((4, 4)) == WHITE  # not the green hiding underneath
    assert image.getpixel((28, 4)) == RED


def test_rgb_colour_key_transparency_is_composited_on_white():
    rgb = Image.new("RGB", (32, 32), GREEN)
    rgb.paste(RED, (16, 0, 32, 32))

    image = decode_image(encode(rgb, "PNG", transparency=GREEN))

    assert image.getpixel((4, 4)) == WHITE
    assert image.getpixel((28, 4)) == RED


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_becomes_rgb(fmt):
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red ink
    cmyk.paste((255, 255, 0, 0), (16, 0, 32, 32))  # blue

    image = decode_image(encode(cmyk, fmt))

    assert image.mode == "RGB"
    assert_close(image.getpixel((4, 4)), RED, 12)
    assert_close(image.getpixel((28, 4)), BLUE, 12)


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    # Pillow's own convert() clips 16-bit at 255, turning all of this white.
    values = np.zeros((32, 48), np.uint16)
    values[:, 16:32] = 32896
    values[:, 32:] = 65535
    sixteen = Image.fromarray(values)
    assert sixteen.mode == "I;16"

    image = decode_image(encode(sixteen, "PNG"))

    assert image.mode == "RGB"
    assert image.getpixel((4, 4)) == (0, 0, 0)
    assert_close(image.getpixel((20, 4)), (128, 128, 128), 1)
    assert image.getpixel((40, 4)) == WHITE


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("I", (0, 32896, 65535), (0, 128, 255)),  # 16-bit range in 32-bit ints
        ("I", (0, 100, 200), (0, 100, 200)),  # already 8-bit range
        ("I", (-1000, 0, 1000), (0, 128, 255)),  # anything else: stretched
        ("F", (0.0, 0.5, 1.0), (0, 128, 255)),  # 0..1 floats
    ],
)
def test_wide_integer_and_float_tiffs_are_scaled(mode, values, expected):
    wide = Image.new(mode, (48, 32), values[0])
    wide.paste(values[1], (16, 0, 32, 32))
    wide.paste(values[2], (32, 0, 48, 32))

    image = decode_image(encode(wide, "TIFF"))

    for x, level in zip((4, 20, 40), expected, strict=True):
        assert_close(image.getpixel((x, 4)), (level,) * 3, 1)


def test_gray_with_alpha_is_composited_on_white():
    la = Image.new("LA", (32, 32), (0, 0))  # transparent black garbage
    la.paste((50, 255), (16, 0, 32, 32))

    image = decode_image(encode(la, "PNG"))

    assert image.getpixel((4, 4)) == WHITE
    assert image.getpixel((28, 4)) == (50, 50, 50)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_rgba_transparent_pixels_become_white_not_their_hidden_colour(fmt):
    rgba = Image.new("RGBA", (48, 32), (0, 255, 0, 0))  # invisible green garbage
    rgba.paste((255, 0, 0, 255), (16, 0, 32, 32))
    rgba.paste((0, 0, 0, 128), (32, 0, 48, 32))
    options = {"lossless": True} if fmt == "WEBP" else {}

    image = decode_image(encode(rgba, fmt, **options))

    assert image.mode == "RGB"
    assert image.getpixel((4, 4)) == WHITE
    assert image.getpixel((24, 4)) == RED
    assert_close(image.getpixel((40, 4)), (127, 127, 127), 1)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animation_gives_its_first_frame(fmt):
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, BLUE, GREEN)]
    options = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(
        frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **options
    )
    assert Image.open(io.BytesIO(data)).n_frames == 3

    image = decode_image(data)

    assert image.size == (32, 32)
    assert image.getpixel((16, 16)) == RED


def test_first_page_of_a_multipage_tiff():
    pages = [Image.new("RGB", (32, 32), colour) for colour in (BLUE, RED)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])

    assert decode_image(data).getpixel((16, 16)) == BLUE


# --------------------------------------------------------------------------
# Refusals: each kind its own error type and a sentence that helps
# --------------------------------------------------------------------------


def test_every_refusal_is_a_user_error():
    for error_type in (
        EmptyFileError,
        NotAnImageError,
        UnsupportedFormatError,
        DamagedImageError,
        TooManyPixelsError,
        FileTooLargeError,
        ImageTooSmallError,
        UnreadableFileError,
    ):
        assert issubclass(error_type, ImageError)
        assert issubclass(error_type, UserError)


def test_empty_bytes():
    with pytest.raises(EmptyFileError) as caught:
        decode_image(b"")

    assert str(caught.value) == (
        "This file is empty (0 bytes). Attach a PNG, JPEG, WebP or GIF image."
    )


@pytest.mark.parametrize(
    ("data", "error_type", "words"),
    [
        (b"just some notes, saved as cat.png\n", NotAnImageError, ["text", ".png", "PNG"]),
        (
            b"<!DOCTYPE html>\n<html><head><title>cat</title></head><body></body></html>",
            NotAnImageError,
            ["web page", "HTML", "image itself"],
        ),
        (
            b"\xef\xbb\xbf\n  <html lang='en'><head></head></html>",
            NotAnImageError,
            ["web page"],
        ),
        (
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
            b'width="10" height="10"><rect width="10" height="10"/></svg>',
            UnsupportedFormatError,
            ["SVG", "PNG", "JPEG"],
        ),
        (b"<svg width='10' height='10'></svg>", UnsupportedFormatError, ["SVG"]),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", NotAnImageError, ["PDF", "PNG"]),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", UnsupportedFormatError, ["HEIC"]),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", UnsupportedFormatError, ["AVIF"]),
        (bytes(range(256)) * 4, NotAnImageError, ["PNG", "JPEG", "WebP"]),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", NotAnImageError, ["PNG"]),
    ],
    ids=["text", "html", "html-bom", "svg-xml", "svg", "pdf", "heic", "avif", "binary", "zip"],
)
def test_things_that_are_not_supported_images(data, error_type, words):
    with pytest.raises(error_type) as caught:
        decode_image(data)

    for word in words:
        assert word in str(caught.value)


def test_a_format_pillow_knows_but_we_do_not_accept():
    data = encode(quadrants(), "ICO")

    with pytest.raises(NotAnImageError, match="PNG, JPEG, WebP, GIF, BMP, TIFF"):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("load_truncated", [False, True])
@pytest.mark.parametrize("keep", ["half", "all but the end marker"])
def test_truncated_files_are_refused_not_half_decoded(fmt, load_truncated, keep, monkeypatch):
    # Whatever another library set Pillow's process-wide switch to, a cut-off
    # file is refused rather than padded with grey.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", load_truncated)
    data = encode(noisy_photo(128), fmt)
    end_marker = 2 if fmt == "JPEG" else 12  # EOI marker / IEND chunk
    cut = len(data) // 2 if keep == "half" else len(data) - end_marker

    with pytest.raises(DamagedImageError) as caught:
        decode_image(data[:cut])

    assert f"This {fmt} file is damaged or incomplete" in str(caught.value)
    assert "again" in str(caught.value)


def test_truncated_jpeg_is_refused_despite_an_embedded_thumbnail(monkeypatch):
    # A complete little JPEG (SOS ... EOI) inside a segment before the main scan
    # must not pass for the end of the cut-off main image.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    thumbnail = encode(quadrants(16, 16), "JPEG")
    data = encode(noisy_photo(128), "JPEG", comment=thumbnail)
    assert data.index(b"\xff\xd9") < len(data) // 2

    with pytest.raises(DamagedImageError):
        decode_image(data[: len(data) // 2])
    assert decode_image(data).size == (128, 128)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP", "TIFF"])
def test_truncated_other_formats_are_refused(fmt):
    data = encode(noisy_photo(128), fmt)

    with pytest.raises(DamagedImageError, match="damaged or incomplete"):
        decode_image(data[: len(data) // 2])


def test_trailing_bytes_after_the_end_are_fine():
    for fmt in ("JPEG", "PNG"):
        data = encode(quadrants(), fmt) + b"appended by some phone app"
        assert decode_image(data).size == (64, 48)


def test_png_with_a_broken_header_is_damaged_not_unknown():
    data = bytearray(encode(quadrants(), "PNG"))
    data[29] ^= 0xFF  # inside the IHDR CRC

    with pytest.raises(DamagedImageError, match="This PNG file is damaged"):
        decode_image(bytes(data))


@pytest.mark.parametrize("size", [(1, 1), (4000, 8), (8, 4000), (15, 300)])
def test_too_small_images(size):
    data = encode(Image.new("RGB", size, RED), "PNG")

    with pytest.raises(ImageTooSmallError) as caught:
        decode_image(data)

    message = str(caught.value)
    assert f"{size[0]}×{size[1]}" in message
    assert f"at least {DEFAULT_MIN_SIDE} pixels" in message
    assert "larger image" in message


def test_minimum_side_is_configurable():
    data = encode(Image.new("RGB", (20, 20), RED), "PNG")

    assert decode_image(data, min_side=20).size == (20, 20)
    with pytest.raises(ImageTooSmallError, match="at least 21 pixels"):
        decode_image(data, min_side=21)


def test_decompression_bomb_header_is_refused_before_decoding():
    # The file claims 60000x60000 (3.6 gigapixels, ~10 GB as RGB) in 68 bytes.
    # Were it decoded, the ten bytes of pixel data would raise DamagedImageError;
    # TooManyPixelsError shows it was refused from the header alone.
    data = png_header_only(60000, 60000)
    assert len(data) < 100

    with pytest.raises(TooManyPixelsError) as caught:
        decode_image(data)

    assert "40 megapixels" in str(caught.value)
    assert "Resize" in str(caught.value)


def test_header_over_our_limit_but_under_pillows_is_refused_with_its_size():
    data = png_header_only(7000, 7000)  # 49 MP: under Pillow's global guard

    with pytest.raises(TooManyPixelsError) as caught:
        decode_image(data)

    message = str(caught.value)
    assert "7000×7000" in message
    assert "49 megapixels" in message
    assert "the limit is 40 megapixels" in message
    assert "about 6324×6324" in message


def test_pixel_limit_is_configurable_and_inclusive():
    data = encode(quadrants(100, 50), "PNG")

    assert decode_image(data, max_pixels=5000).size == (100, 50)
    with pytest.raises(TooManyPixelsError) as caught:
        decode_image(data, max_pixels=4999)
    assert "100×50" in str(caught.value)
    assert "4,999 pixels" in str(caught.value)


def test_default_limits():
    assert DEFAULT_MAX_PIXELS == 40_000_000
    assert DEFAULT_MIN_SIDE == 16
    assert SUPPORTED_FORMATS == ("PNG", "JPEG", "WebP", "GIF", "BMP", "TIFF")


def test_a_colour_mode_pillow_cannot_convert_is_unsupported():
    # No decoder yields such a mode today; the guard keeps a future one typed.
    with pytest.raises(UnsupportedFormatError, match="La colour mode"):
        encode_to_fit(Image.new("La", (32, 32)), 8 * MB)


# --------------------------------------------------------------------------
# check_upload: before downloading, from Discord's metadata
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "filename"),
    [
        ("image/png", "cat.png"),
        ("image/jpeg", "notes.txt"),  # the extension is not trusted either way
        ("image/webp; charset=binary", "x"),
        ("IMAGE/GIF", "x.gif"),
        ("image/heic", "IMG_0001.HEIC"),  # an image type: decoding decides
        (None, "photo"),
        ("", "photo"),
        ("application/octet-stream", "photo.bin"),
    ],
)
def test_check_upload_lets_possible_images_through(content_type, filename):
    check_upload(123_456, content_type, filename, max_bytes=8 * MB)


def test_check_upload_refuses_empty():
    with pytest.raises(EmptyFileError, match=r"“cat\.png” is empty"):
        check_upload(0, "image/png", "cat.png", max_bytes=8 * MB)


def test_check_upload_refuses_too_many_bytes_naming_both_sizes():
    with pytest.raises(FileTooLargeError) as caught:
        check_upload(12 * MB, "image/png", "big.png", max_bytes=8 * MB)

    message = str(caught.value)
    assert "12.0 MB" in message
    assert "8.0 MB" in message
    assert "big.png" in message


def test_check_upload_sizes_never_read_the_same():
    with pytest.raises(FileTooLargeError) as caught:
        check_upload(8 * MB + 20_000, None, "x", max_bytes=8 * MB)

    assert "8.02 MB; the limit is 8.00 MB" in str(caught.value)


def test_check_upload_byte_limit_is_inclusive():
    check_upload(8 * MB, "image/png", "x.png", max_bytes=8 * MB)


@pytest.mark.parametrize(
    ("content_type", "words"),
    [
        ("text/html; charset=utf-8", "a web page (HTML)"),
        ("application/pdf", "a PDF document"),
        ("text/plain", "a text file"),
        ("text/csv", "a text file"),
        ("video/mp4", "a video"),
        ("audio/ogg", "an audio file"),
        ("application/x-msdownload", "a file of type application/x-msdownload"),
    ],
)
def test_check_upload_refuses_clearly_non_image_types(content_type, words):
    # Named .png on purpose: the extension doesn't rescue it.
    with pytest.raises(NotAnImageError) as caught:
        check_upload(1000, content_type, "cat.png", max_bytes=8 * MB)

    assert f"“cat.png” is {words}, not an image" in str(caught.value)
    assert "Attach a PNG, JPEG, WebP or GIF image." in str(caught.value)


def test_check_upload_refuses_svg_as_unsupported():
    with pytest.raises(UnsupportedFormatError, match="SVG"):
        check_upload(1000, "image/svg+xml", "logo.svg", max_bytes=8 * MB)


# --------------------------------------------------------------------------
# fit_within
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((400, 200), 100, (100, 50)),
        ((200, 400), 100, (50, 100)),
        ((1000, 333), 512, (512, 170)),
        ((5000, 1), 100, (100, 1)),  # never collapses to zero
    ],
)
def test_fit_within_scales_the_longest_side_down(size, max_side, expected):
    result = fit_within(Image.new("RGB", size, RED), max_side)

    assert result.size == expected
    assert result.getpixel((0, 0)) == RED


@pytest.mark.parametrize("size", [(50, 30), (100, 100), (100, 20)])
def test_fit_within_never_upscales(size):
    image = Image.new("RGB", size)

    assert fit_within(image, 100) is image


def test_fit_within_rejects_a_nonsense_limit():
    with pytest.raises(ValueError):
        fit_within(Image.new("RGB", (10, 10)), 0)


# --------------------------------------------------------------------------
# encode_to_fit
# --------------------------------------------------------------------------


def assert_decodes_to(encoded: EncodedImage, max_bytes: int) -> None:
    assert len(encoded.data) <= max_bytes
    reopened = Image.open(io.BytesIO(encoded.data))
    assert reopened.format == encoded.format
    assert reopened.size == encoded.size
    reopened.load()


def test_encode_to_fit_uses_png_when_it_fits():
    image = quadrants(256, 256)

    encoded = encode_to_fit(image, 8 * MB)

    assert (encoded.format, encoded.extension) == ("PNG", "png")
    assert encoded.size == (256, 256)
    assert not encoded.scaled_down
    assert_decodes_to(encoded, 8 * MB)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encoded.data))), np.asarray(image))


def test_encode_to_fit_switches_to_jpeg_for_a_noisy_image_under_a_tight_limit():
    image = noisy_photo()
    limit = len(encode(image, "PNG")) // 3

    encoded = encode_to_fit(image, limit)

    assert (encoded.format, encoded.extension) == ("JPEG", "jpg")
    assert encoded.size == (512, 512)
    assert not encoded.scaled_down
    assert_decodes_to(encoded, limit)


def test_encode_to_fit_takes_the_best_jpeg_quality_that_fits():
    image = noisy_photo()
    quality_95 = len(encode(image, "JPEG", quality=95, optimize=True))

    encoded = encode_to_fit(image, quality_95)

    assert encoded.data == encode(image, "JPEG", quality=95, optimize=True)


def test_encode_to_fit_scales_down_when_even_jpeg_is_too_big():
    image = noisy_photo()
    limit = 20_000

    encoded = encode_to_fit(image, limit)

    assert encoded.format == "JPEG"
    assert encoded.scaled_down
    width, height = encoded.size
    assert width < 512 and width == height  # aspect kept
    assert_decodes_to(encoded, limit)


@settings(max_examples=15, deadline=None)
@given(
    limit=st.integers(min_value=400, max_value=800_000),
    prefer=st.sampled_from(["png", "jpeg"]),
)
def test_encode_to_fit_always_fits(limit, prefer):
    encoded = encode_to_fit(noisy_photo(256, seed=limit), limit, prefer=prefer)

    assert_decodes_to(encoded, limit)


def test_encode_to_fit_prefer_jpeg_skips_png():
    encoded = encode_to_fit(quadrants(), 8 * MB, prefer="jpeg")

    assert encoded.format == "JPEG"
    assert encoded.filename("dream") == "dream.jpg"


def test_encode_to_fit_composites_transparency_for_jpeg():
    rgba = Image.new("RGBA", (64, 64), (0, 255, 0, 0))

    encoded = encode_to_fit(rgba, 8 * MB, prefer="jpeg")

    assert_close(Image.open(io.BytesIO(encoded.data)).getpixel((32, 32)), WHITE, 2)


def test_encode_to_fit_does_not_touch_the_callers_image():
    image = noisy_photo(128)
    before = np.asarray(image).copy()

    encode_to_fit(image, 5_000)

    assert image.size == (128, 128)
    assert np.array_equal(np.asarray(image), before)


def test_encoded_image_filename():
    encoded = encode_to_fit(quadrants(), 8 * MB)

    assert encoded.filename("dream-42") == "dream-42.png"


@pytest.mark.parametrize(("max_bytes", "prefer"), [(0, "png"), (-5, "png"), (1000, "webp")])
def test_encode_to_fit_rejects_nonsense_arguments(max_bytes, prefer):
    with pytest.raises(ValueError):
        encode_to_fit(quadrants(), max_bytes, prefer=prefer)


def test_encode_to_fit_gives_up_only_when_nothing_could_fit():
    with pytest.raises(ValueError, match="1x1"):
        encode_to_fit(quadrants(), 10)


# --------------------------------------------------------------------------
# load_image_file (the CLI)
# --------------------------------------------------------------------------


def test_load_image_file_decodes_like_an_upload(tmp_path):
    path = tmp_path / "input.webp"
    path.write_bytes(encode(quadrants(), "PNG"))  # wrong extension: bytes decide

    image = load_image_file(path)

    assert image.mode == "RGB"
    assert image.size == (64, 48)
    with pytest.raises(TooManyPixelsError):
        load_image_file(str(path), max_pixels=100)


def test_load_image_file_missing(tmp_path):
    path = tmp_path / "nope.png"

    with pytest.raises(UnreadableFileError) as caught:
        load_image_file(path)

    assert str(caught.value) == f"Can't read {path}: there is no such file."


def test_load_image_file_directory(tmp_path):
    with pytest.raises(UnreadableFileError, match="folder"):
        load_image_file(tmp_path)


def test_load_image_file_applies_the_same_rules(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")

    with pytest.raises(EmptyFileError):
        load_image_file(path)


# --------------------------------------------------------------------------
# Fuzz: untrusted bytes only ever produce an image or an ImageError
# --------------------------------------------------------------------------

FUZZ_LIMITS = {"max_pixels": 1_000_000, "min_side": 4}  # keep claimed sizes cheap
FUZZ_SEEDS = {
    fmt: encode(noisy_photo(24, seed=1).convert(mode), fmt)
    for fmt, mode in [
        ("PNG", "RGB"),
        ("JPEG", "RGB"),
        ("GIF", "P"),
        ("WEBP", "RGB"),
        ("BMP", "RGB"),
        ("TIFF", "RGB"),
    ]
}


# Pillow warns about some corrupt files (e.g. TIFF tags) before refusing them.
@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1024))
def test_random_bytes_never_raise_anything_but_image_errors(data):
    decode_or_image_error(data, **FUZZ_LIMITS)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("fmt", sorted(FUZZ_SEEDS))
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_mutated_images_never_raise_anything_but_image_errors(fmt, data):
    seed = bytearray(FUZZ_SEEDS[fmt])
    edits = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)),
            min_size=1,
            max_size=8,
        )
    )
    for position, value in edits:
        seed[position] = value
    cut = data.draw(st.integers(1, len(seed)))

    decode_or_image_error(bytes(seed[:cut]), **FUZZ_LIMITS)


@pytest.mark.parametrize("size", [(8001, 5000), (7000, 5720)])
def test_an_image_just_over_the_pixel_limit_is_not_said_to_be_at_the_limit(size):
    with pytest.raises(TooManyPixelsError) as refused:
        decode_image(png_header_only(*size))
    assert f"({size[0] * size[1]:,} pixels); the limit is 40,000,000 pixels" in str(refused.value)


def test_a_file_just_over_the_byte_limit_is_not_said_to_be_at_the_limit():
    with pytest.raises(FileTooLargeError) as refused:
        check_upload(25 * MB + 100, "image/png", "cat.png", 25 * MB)
    assert "is 26,214,500 bytes; the limit is 26,214,400 bytes" in str(refused.value)


@pytest.mark.parametrize("junk", [b"\x00", b"\x00\x00", b"\r\n"])
def test_a_jpeg_with_stray_bytes_between_header_segments_is_accepted(junk):
    # libjpeg's "extraneous bytes before marker": some cameras and EXIF editors write them.
    data = encode(Image.effect_noise((64, 48), 40).convert("RGB"), "JPEG")
    end_of_app0 = 4 + int.from_bytes(data[4:6], "big")
    assert data[2:4] == b"\xff\xe0"  # SOI, then APP0 (JFIF)
    assert decode_image(data[:end_of_app0] + junk + data[end_of_app0:]).size == (64, 48)


@pytest.mark.parametrize("size", [(2000, 40), (21, 430), (3000, 149)])
def test_a_strip_over_20_to_1_is_refused_from_its_header(size):
    with pytest.raises(ImageTooSmallError, match="too long and thin"):
        decode_image(png_header_only(*size))
