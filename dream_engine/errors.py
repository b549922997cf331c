"""Typed failures whose message is a sentence a user can act on.

Everything the bot or the CLI shows a person derives from `UserError`: the
message is written for them, so callers print `str(error)` as is and never a
traceback. Anything else escaping the engine is a bug, reported as such.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with what the user supplied (image, parameters, preset)."""


class ImageError(UserError):
    """The upload cannot be dreamed: not an image, damaged, too big, too small."""


class ParamError(UserError):
    """A parameter or preset is invalid; the message names the field and the allowed range."""


class ModelUnavailableError(UserError):
    """The model or its weights cannot be loaded (offline, missing file, missing extra)."""


class DreamCancelled(Exception):
    """Raised out of `DreamEngine.dream` when the caller's cancel flag was set."""
