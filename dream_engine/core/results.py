"""What a dream reports and returns: plain data, no TensorFlow.

Kept apart from the engine so the bot process (and the worker process's
parent) can build and read them without importing TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from dream_engine.core.params import DreamParams


@dataclass(frozen=True)
class Progress:
    """One progress event: where the dream is and how it is going."""

    octave: int  # 1-based
    octaves: int
    step: int  # steps done in this octave
    steps: int  # iterations allowed per octave
    loss: float
    elapsed: float  # seconds since the dream (or the whole sweep) started
    octave_done: bool = False
    # A sweep (several dreams shown side by side) reports one bar for all of them:
    # this event belongs to dream `variant` of `variants` (1-based). One dream is 1 of 1.
    variant: int = 1
    variants: int = 1
    # A moving dream (zoom, clip) reports one bar for all its frames: this event is of
    # frame `frame` of `frames` (1-based; 0 of 0: not a moving dream). The event that
    # ends a frame carries it, so a front end can keep what is done (a restart resumes).
    frame: int = 0
    frames: int = 0
    finished_frame: Image.Image | None = None

    @property
    def fraction(self) -> float:
        """Share of the work done, for bars and ETAs (an early stop jumps ahead).

        Over a sweep each variant counts as an equal share, so the bar runs once
        from 0 to 1 across all of them instead of restarting per dream.
        """
        within = 1.0 if self.octave_done else self.step / self.steps
        dream = min(1.0, (self.octave - 1 + within) / self.octaves)
        if self.frames:
            dream = min(1.0, (self.frame - 1 + dream) / self.frames)
        return min(1.0, (self.variant - 1 + dream) / self.variants)


@dataclass
class DreamResult:
    image: Image.Image
    octaves: list[Image.Image]  # the image after each octave, smallest first
    losses: list[list[float]]  # loss at every step, per octave
    params: DreamParams
    seconds: float
    notes: list[str] = field(default_factory=list)  # what the engine changed and why
    # Animation frames, all at the final size, the photo first and the dream last: only
    # when asked for (`DreamEngine.dream(frame_every=...)`); see animation.py to encode.
    frames: list[Image.Image] = field(default_factory=list)
    # A comparison (`DreamRequest.variants`): each variant's dream, captioned, at full size;
    # `image` is then their labelled grid and `octaves`/`losses` are empty.
    panels: list[tuple[str, Image.Image]] = field(default_factory=list)
    # A moving dream (`DreamRequest.motion`): `frames` are the clip, played at `fps`;
    # fewer than `planned_frames` when it was cancelled part way (what is done is kept).
    fps: float | None = None
    planned_frames: int = 0
    precision: str = ""  # what the engine computed in (mixed_bfloat16, float32, ...)

    @property
    def stopped_early(self) -> list[bool]:
        return [len(history) < self.params.iterations for history in self.losses]
