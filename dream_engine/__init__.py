"""DeepDream engine: a library first, with a CLI (`python -m dream_engine`).

`DreamEngine` is exported lazily so that importing the package (for presets,
parameters or the job queue, as the bot does) never loads TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dream_engine.core.params import DreamParams, parse_layers
from dream_engine.core.presets import get_preset, list_presets, load_preset
from dream_engine.core.results import DreamResult, Progress
from dream_engine.errors import (
    DreamCancelled,
    ImageError,
    ModelUnavailableError,
    ParamError,
    UserError,
)

if TYPE_CHECKING:
    from dream_engine.core.engine import DreamEngine

__all__ = [
    "DreamCancelled",
    "DreamEngine",
    "DreamParams",
    "DreamResult",
    "ImageError",
    "ModelUnavailableError",
    "ParamError",
    "Progress",
    "UserError",
    "get_preset",
    "list_presets",
    "load_preset",
    "parse_layers",
]


def __getattr__(name: str) -> Any:
    if name == "DreamEngine":
        from dream_engine.core.engine import DreamEngine

        return DreamEngine
    raise AttributeError(f"module 'dream_engine' has no attribute {name!r}")
