"""`python -m dream_engine zoom` and the main command on a clip, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from PIL import Image

from dream_engine.cli.main import main
from dream_engine.media.clip_encoding import encode_clip
from tests.media.test_clips import moving

QUICK = ["--weights", "random", "--iterations", "2", "--octaves", "1", "--max-side", "120"]


@pytest.fixture
def photo(tmp_path: Path, cat_photo: Image.Image) -> Path:
    path = tmp_path / "cat.jpg"
    cat_photo.save(path, quality=92)
    return path


@pytest.mark.slow  # builds an engine and dreams
def test_a_zoom_and_a_dreamed_clip_come_out_with_every_frame(tmp_path, photo, capsys):
    zoom = tmp_path / "out" / "zoom.mp4"
    # `python -m dream_engine` itself starts in tests/cli/test_main.py; here main() is
    # called as it calls it, without another process to start and build in.
    assert (
        main(["zoom", str(photo), "--frames", "5", "--rotate", "2", "-o", str(zoom), *QUICK]) == 0
    )
    assert "5 frames of 120x80 at 12 fps" in capsys.readouterr().out
    with av.open(str(zoom)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == 12.0
        assert sum(1 for _ in container.decode(stream)) == 5
    clip = tmp_path / "walk.mp4"
    clip.write_bytes(encode_clip(moving(6), 8.0, "mp4"))
    dreamed = tmp_path / "walk-dream.gif"
    assert main([str(clip), "-o", str(dreamed), "--blend", "0.7", *QUICK]) == 0
    with Image.open(dreamed) as shown:
        assert shown.n_frames == 6 and shown.size == (120, 90)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["zoom", "{photo}", "--zoom", "3"], "zoom must be in [1, 1.5]"),
        (["zoom", "{photo}", "--frames", "500"], "frames must be in [2, 120]"),
        (["zoom", "{photo}", "-o", "{tmp}/zoom.avi"], "end the name in .mp4 (H.264) or .gif"),
        (["zoom", "{photo}", "--blend", "0.5"], "a zoom has none"),
        (["zoom", "{tmp}/missing.png"], "no such file"),
        (["{photo}", "--blend", "0.5"], "blend: it is for a clip"),
        (["{clip}", "--gallery", "{tmp}/g"], "leave out --gallery"),
        (["{clip}", "--blend", "2"], "blend must be in [0, 1]"),
        (["{clip}", "-o", "{tmp}/x.png"], "end the name in .mp4 (H.264) or .gif"),
        (["{cut}"], "cut off"),
    ],
)
def test_motion_user_errors_are_one_line(tmp_path, photo, capsys, args, words):
    clip = tmp_path / "walk.mp4"
    clip.write_bytes(encode_clip(moving(6), 8.0, "mp4"))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    given = [arg.format(photo=photo, tmp=tmp_path, clip=clip, cut=cut) for arg in args]
    code = main([*given, "--weights", "random"])  # each fails before TensorFlow is needed
    stderr = capsys.readouterr().err
    assert code == 2 and stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert words in stderr


def test_a_still_gif_is_dreamed_as_a_picture_not_a_clip(tmp_path, capsys):
    still = tmp_path / "still.gif"
    moving(1)[0].save(still)
    assert main([str(still), "--blend", "0.5", "--weights", "random"]) == 2
    assert "it is for a clip" in capsys.readouterr().err
