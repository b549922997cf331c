"""`python -m dream_engine` end to end, as a user runs it: files in, files out, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dream_engine.cli.main import main
from tests.conftest import REPO


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dream_engine", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )


@pytest.fixture
def photo(tmp_path: Path, cat_photo: Image.Image) -> Path:
    path = tmp_path / "cat.jpg"
    cat_photo.save(path, quality=92)
    return path


@pytest.mark.slow  # a CLI process builds and dreams
def test_dream_with_gallery_and_overrides(tmp_path, photo):
    output, gallery = tmp_path / "out" / "dream.png", tmp_path / "octaves"
    result = run_cli(
        str(photo), "-o", str(output), "--preset", "upper-layers", "--weights", "random",
        "--iterations", "2", "--octaves", "3", "--octave-scale", "1.3", "--max-side", "200",
        "--gallery", str(gallery), "--tile-size", "160", "--precision", "mixed_bfloat16",
        "--guide", str(photo), "--guide-weight", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "Traceback" not in result.stderr
    with Image.open(output) as dream:
        assert dream.size == (200, 133)
        assert np.abs(np.asarray(dream, np.float32) - 0).mean() > 0
    names = sorted(path.name for path in gallery.iterdir())
    assert names == [
        "octave-1-of-3-118x79.png",
        "octave-2-of-3-154x102.png",
        "octave-3-of-3-200x133.png",
    ]


@pytest.mark.slow  # builds the dogs model and dreams (in-process: one process start less)
def test_a_targeted_channel_dream_with_a_progress_gif(tmp_path, photo, capsys):
    output, gif = tmp_path / "dream.png", tmp_path / "anim" / "dream.gif"
    code = main([
        str(photo), "-o", str(output), "--model", "dogs", "--target", "PUG", "--target-weight",
        "2", "--channels", "block_9_add:5,block_12_add:7=0.5", "--iterations", "4",
        "--octaves", "2", "--max-side", "120", "--gif", str(gif),
    ])  # fmt: skip
    stdout = capsys.readouterr().out
    assert code == 0
    assert "towards Pug (14)" in stdout and f"wrote {gif}" in stdout
    with Image.open(gif) as animation:
        assert animation.is_animated and animation.n_frames > 2
        assert animation.size == (120, 80)


def test_list_presets_prints_names_models_and_descriptions():
    result = run_cli("--list-presets")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert any(line.startswith("balanced") and "[inceptionv3]" in line for line in lines)
    assert any(line.startswith("dogs-dream") and "[dogs]" in line for line in lines)
    assert len(lines) == len(list((REPO / "presets").glob("*.toml")))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["missing.png"], "missing.png"),
        (["{text}"], "image"),
        (["{photo}", "--preset", "nope"], "no preset named 'nope'"),
        (["{photo}", "--preset", "../../etc/passwd"], "not a preset name"),
        (["{photo}", "--layers", "mixed99=1"], "'mixed99' is not a layer of inceptionv3"),
        (["{photo}", "--step", "5"], "step must be in (0, 1]"),
        (["{photo}", "--octaves", "0"], "octaves must be in [1, 10]"),
        (["{photo}", "--lap-levels", "9"], "lap_levels must be in [0, 8]"),
        (["{photo}", "--guide", "{text}"], "guide: "),
        (["{photo}", "--guide", "{tmp}/missing.png"], "guide: Can't read"),
        (["{photo}", "--guide-weight", "2"], "give one with --guide"),
        (["{photo}", "--max-loss", "nan"], "max_loss"),
        (["{photo}", "--model", "vgg19", "--preset", "balanced"], "give --layers"),
        (["{photo}", "--weights", "/nowhere/w.h5"], "Weights file not found"),
        (["{photo}", "--target", "golden retreiver"], "did you mean golden retriever"),
        (["{photo}", "--target", "x" * 500], "target: at most 100 characters"),
        (["{photo}", "--target", "tench", "--target-weight", "nan"], "target_weight must be"),
        (["{photo}", "--model", "vgg19", "--target", "tench"], "vgg19 has no class head"),
        (["{photo}", "--channels", "mixed4:900"], "mixed4 has 768 channels (0-767); got 900"),
        (["{photo}", "--channels", "mixed4"], "'mixed4' is not layer:channel"),
        (["{photo}", "--layers", "none"], "at least one layer"),
        # Where the results go is checked before the dream, so a typo does not lose it.
        (["{photo}", "-o", "{tmp}/result"], "end the name in .png, .jpg or .webp"),
        (["{photo}", "-o", "{tmp}/result.xyz"], "Can't write an image named result.xyz"),
        (["{photo}", "--gallery", "{text}"], "Could not make the folder"),
        (["{photo}", "-o", "{photo}/dream.png"], "is a file, not a folder"),
        (["{photo}", "-o", "{tmp}/dream.xbm"], "Can't write an image named dream.xbm"),
        (["{photo}", "--gif", "{tmp}"], "end the name in .gif"),
        (["{photo}", "--gif", "{photo}/forming.gif"], "is a file, not a folder"),
        (["compare", "{photo}", "--vary", "step=0.01,0.02", "-o", "{tmp}/grid"], "end the name"),
        (["kinds", "-o", "{tmp}/sheet.txt"], "Can't write an image named sheet.txt"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, photo, args, words):
    text = tmp_path / "notes.png"
    text.write_text("these are my notes, not a picture")
    args = [arg.format(photo=photo, text=text, tmp=tmp_path) for arg in args]
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert words in result.stderr


def test_list_presets_with_no_valid_preset_says_where_it_looked(tmp_path):
    (tmp_path / "broken.toml").write_text("step = -1\n")
    result = run_cli("--list-presets", env={"DREAM_PRESETS": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr == f"error: There are no valid presets in {tmp_path}.\n"


@pytest.mark.slow  # a CLI process loads TensorFlow
def test_offline_without_weights_exits_2_with_where_to_put_them(tmp_path, photo):
    proxy = "http://127.0.0.1:9"  # refuses connections: offline for sure
    env = {"KERAS_HOME": str(tmp_path), "HTTPS_PROXY": proxy, "https_proxy": proxy, "NO_PROXY": ""}
    result = run_cli(str(photo), "--weights", "imagenet", env=env)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]  # TensorFlow's own start-up lines come first
    assert last.startswith("error: Could not load the ImageNet weights of inceptionv3")
    assert (
        str(tmp_path / "models" / "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")
        in last
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["photo.png", "--octaves", "abc"],
        ["photo.png", "--model", "resnet"],
        ["compare", "photo.png", "--step", "big"],
    ],
)
def test_a_bad_flag_value_is_one_line_too(argv, capsys):
    with pytest.raises(SystemExit) as exited:  # argparse's own errors, not the usage block
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: argument "), err


def test_a_flag_is_never_taken_for_a_longer_one_it_begins(capsys):
    """argparse would read `--guide-w` as `--guide-weight`: a typo or a flag another
    command has must be refused, never quietly taken for a longer flag."""
    with pytest.raises(SystemExit) as exited:
        main(["photo.png", "--guide-w", "2"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("error: unrecognized arguments: --guide-w 2"), err
