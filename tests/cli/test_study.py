"""`python -m dream_engine compare|layers|kinds` as a user runs them: a grid out, or exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dream_engine.cli.main import main
from tests.cli.test_main import run_cli

QUICK = ["--weights", "random", "--iterations", "1", "--octaves", "1", "--max-side", "120"]


@pytest.fixture
def photo(tmp_path: Path, cat_photo: Image.Image) -> Path:
    path = tmp_path / "cat.jpg"
    cat_photo.save(path, quality=92)
    return path


def grid_of(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image, dtype=np.float32)


@pytest.mark.slow  # builds an engine and dreams (in-process: one process start less)
def test_compare_vary_twice_writes_one_grid_of_every_combination(tmp_path, photo, capsys):
    output = tmp_path / "grids" / "steps.png"
    code = main([
        "compare", str(photo), "--vary", "step=0.005,0.05", "--vary", "layers=mixed0,mixed2",
        "-o", str(output), *QUICK,
    ])  # fmt: skip
    stdout = capsys.readouterr().out
    assert code == 0
    assert "wrote" in stdout and "4 dreams" in stdout
    assert "scaled down from 240x160 to 120x80" in stdout  # said once, not per variant
    grid = grid_of(output)
    assert grid.shape[1] > 3 * 120 and grid.std() > 20  # 5 tiles, not a blank sheet


@pytest.mark.slow  # builds an engine and dreams
def test_compare_presets_default_output_next_to_the_input(photo, capsys):
    # In-process (main() as the entry point calls it): one process start less for the suite.
    assert main(["compare", str(photo), "--presets", "lower-layers,upper-layers", *QUICK]) == 0
    output = photo.with_name("cat-compare.png")
    stdout = capsys.readouterr().out
    assert f"wrote {output}" in stdout and "2 dreams" in stdout
    assert grid_of(output).shape[1] > 2 * 120


@pytest.mark.slow  # builds an engine and dreams (in-process: one process start less)
def test_layers_sheet_of_chosen_layers(tmp_path, photo, capsys):
    output = tmp_path / "sheet.png"
    argv = ["layers", str(photo), "--layers", "mixed0,mixed3,mixed5", "-o", str(output)]
    assert main([*argv, "--guide", str(photo), *QUICK]) == 0
    assert "3 dreams" in capsys.readouterr().out
    assert grid_of(output).shape[1] > 3 * 120


@pytest.mark.slow  # builds an engine and dreams
def test_kinds_needs_no_input(tmp_path, capsys):
    output = tmp_path / "kinds.png"
    assert main(["kinds", "-o", str(output), "--seed", "3", *QUICK]) == 0
    assert "5 dreams" in capsys.readouterr().out
    grid = grid_of(output)
    assert grid.shape[1] > 5 * 100 and grid.shape[1] > grid.shape[0]  # inputs over dreams


def test_a_subcommand_user_error_exits_2_with_one_line(photo):
    result = run_cli("compare", str(photo), "--vary", "colour=1,2", *QUICK)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: vary: 'colour'")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["compare", "{photo}"], "say what to compare"),
        (["compare", "{photo}", "--vary", "step=0.1,0.2", "--presets", "a,b"], "not both"),
        (["compare", "{photo}", "--vary", "step=0.1"], "at least 2"),
        (["compare", "{photo}", "--vary", "step=0.1,0.2", "--max-variants", "1"], "max-variants"),
        (["compare", "{photo}", "--vary", "seed=1,2,3", "--max-variants", "2"], "at most 2"),
        (["compare", "{photo}", "--presets", "lower-layers,dogs-fur"], "is for dogs"),
        (["compare", "{photo}", "--presets", "a,b", "--preset", "balanced"], "leave out --preset"),
        (["compare", "{photo}", "--vary", "layers=mixed3,mixed99"], "'mixed99' is not a layer"),
        (["compare", "missing.png", "--vary", "step=0.1,0.2"], "missing.png"),
        (["compare", "{photo}", "--vary", "step=0.1,0.2", "--weights", "/nowhere.h5"], "not found"),
        (["layers", "{photo}", "--layers", "mixed99"], "'mixed99' is not a layer of inceptionv3"),
        (["layers", "{photo}", "--model", "vgg19", "--preset", "balanced"], "is for inceptionv3"),
        (["layers", "{photo}", "--max-side", "4"], "max-side must be at least 16"),
        (["layers", "{photo}", "--layers", "none"], "name the layers to show"),  # not all 11
        (["layers", "{photo}", "--layers", "mixed3,mixed3"], "a layer is listed twice"),
        (["kinds", "--step", "5"], "step must be in (0, 1]"),
        (["kinds", "--photo", "{text}"], "contains text, not an image"),
        (["kinds", "--preset", "nope"], "no preset named 'nope'"),
        (["compare", "{photo}", "--vary", "step=0.1,0.2", "--guide", "{text}"], "guide: "),
        (["layers", "{photo}", "--guide-weight", "3"], "give one with --guide"),
        (["compare", "{photo}", "--vary", "guide_weight=1,5"], "attach one as guide (the CLI"),
    ],
)
def test_subcommand_user_errors(tmp_path, photo, capsys, args, words):
    text = tmp_path / "notes.png"
    text.write_text("these are my notes, not a picture")
    # In-process: every one of these fails before TensorFlow is needed.
    command, *rest = (arg.format(photo=photo, text=text) for arg in args)
    code = main([command, "--weights", "random", *rest])  # a --weights in `rest` wins
    stderr = capsys.readouterr().err
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert words in stderr
