"""What makes a dream move, validated in one place like `DreamParams`.

Two kinds: a **zoom** (google/deepdream's frame-by-frame zoom: each frame is the
last one scaled up about the centre, maybe turned a little, and dreamed again)
and a **clip** (a video or animation dreamed frame by frame, the previous dream
carried into the next along the optical flow, DeepDreamVideo's way, so the
patterns stay on the things that move instead of flickering). The first frame is
dreamed with the dream's own parameters, every later one with
`frame_iterations` steps an octave, at the same size, so the compiled steps are
reused for the whole sequence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from dream_engine.core.params import DreamParams, check_range
from dream_engine.errors import ParamError

__all__ = ["FORMATS", "MAX_ZOOM_FRAMES", "MotionSpec"]

MAX_ZOOM_FRAMES = 120
FORMATS = ("mp4", "gif")
MotionKind = Literal["zoom", "clip"]

# name -> (low, high, low inclusive, high inclusive, whole number)
_RANGES: dict[str, tuple[float, float, bool, bool, bool]] = {
    "frames": (2, MAX_ZOOM_FRAMES, True, True, True),
    "zoom": (1.0, 1.5, True, True, False),
    "rotate": (-15.0, 15.0, True, True, False),
    "blend": (0.0, 1.0, True, True, False),
    "fps": (1.0, 60.0, True, True, False),
}


@dataclass(frozen=True)
class MotionSpec:
    """A zoom or a clip: how many frames, how they move, how they are shown."""

    kind: MotionKind
    frames: int = 24  # a zoom's frames, the first included; a clip's come from its input
    zoom: float = 1.05  # a zoom: each frame is the last scaled up by this (1: turn only)
    rotate: float = 0.0  # a zoom: and turned by this many degrees (anticlockwise)
    blend: float = 0.8  # a clip: how much of the last dream is carried along the flow
    frame_iterations: int | None = None  # steps an octave after the first frame; None: auto
    fps: float = 12.0  # the rate it plays at (a clip keeps its input's)
    format: str = "mp4"  # what the result is delivered as: mp4 (H.264) or gif

    def validate(self) -> MotionSpec:
        """Raise `ParamError` naming the first bad field; return self when all is well."""
        if self.kind not in ("zoom", "clip"):
            raise ParamError(f"motion: '{self.kind}' is neither zoom nor clip.")
        for name, (low, high, low_incl, high_incl, whole) in _RANGES.items():
            if name == "frames" and self.kind == "clip":
                check_range(name, self.frames, 2, 10_000, True, True, integer=True)
                continue
            check_range(name, getattr(self, name), low, high, low_incl, high_incl, integer=whole)
        if self.kind == "zoom" and self.zoom == 1.0 and self.rotate == 0.0:
            raise ParamError("zoom: at 1 with no rotate, every frame would stand still.")
        if self.frame_iterations is not None:
            check_range("frame_iterations", self.frame_iterations, 1, 1000, True, True,
                        integer=True)  # fmt: skip
        if self.format not in FORMATS:
            raise ParamError(f"format: '{self.format}' is not one of {', '.join(FORMATS)}.")
        return self

    def replace(self, **changes: Any) -> MotionSpec:
        """A copy with `changes` applied (None values ignored), validated."""
        given = {key: value for key, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given).validate()

    def iterations_after_first(self, params: DreamParams) -> int:
        """Steps an octave for every frame after the first: `frame_iterations`, or a
        quarter of the dream's own (at least 2), which the carried dream makes enough."""
        if self.frame_iterations is not None:
            return self.frame_iterations
        return max(2, params.iterations // 4)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, for job records and the wire."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MotionSpec:
        return cls(**data).validate()
