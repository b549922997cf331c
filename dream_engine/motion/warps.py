"""How one frame becomes the start of the next: OpenCV's dense optical flow and warps.

- `carry_dream`: DeepDreamVideo's frame blending. The optical flow (Farnebäck)
  from the new input frame back to the last one says where each new pixel was;
  the last dream's *change* (dream minus its input) is fetched from there and
  added to the new frame, `blend` of it. The patterns move with the objects and
  the next dream starts from them, so a few steps refresh them instead of
  growing new ones in new places (the flicker of frames dreamed alone).
- `zoom_into`: google/deepdream's zoom: the frame scaled up about its centre by
  `zoom`, turned by `rotate` degrees, cropped back to its size.

Arrays here are float32 RGB in [0, 255], height x width x 3.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

__all__ = ["carry_dream", "flow_between", "follow_flow", "to_array", "to_image", "zoom_into"]


def to_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def to_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "RGB")


def flow_between(frame: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Per pixel of `frame`, the (dx, dy) to where it was in `previous` (height x width x 2)."""
    now = cv2.cvtColor(frame.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    before = cv2.cvtColor(previous.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    # OpenCV's suggested parameters for video: a 3-level pyramid halving each time,
    # 15 px windows, 3 iterations, a 5-pixel polynomial neighbourhood.
    return cv2.calcOpticalFlowFarneback(now, before, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def carry_dream(
    frame: np.ndarray,
    previous_frame: np.ndarray,
    previous_dream: np.ndarray,
    blend: float,
) -> np.ndarray:
    """The start of the next dream: `frame` plus `blend` of the last dream's change,
    moved along the flow from `frame` back to `previous_frame`."""
    if blend == 0:
        return frame
    moved = follow_flow(previous_dream - previous_frame, flow_between(frame, previous_frame))
    return np.clip(frame + blend * moved, 0, 255)


def follow_flow(array: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`array` (of the frame before) moved to where `flow` (from `flow_between`) says each
    pixel of the new frame came from."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(
        np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    )
    return cv2.remap(
        array, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )  # fmt: skip


def zoom_into(image: np.ndarray, zoom: float, rotate: float) -> np.ndarray:
    """`image` scaled up by `zoom` about its centre and turned `rotate` degrees
    (anticlockwise), at its own size; edges a turn uncovers are mirrored in."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), rotate, zoom)
    return cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
