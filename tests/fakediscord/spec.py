"""Every REST body the bot sends, checked against Discord's own OpenAPI document.

The fake's hand-written limits (``validation.py``) catch what a bot trips over
most; this catches the rest: a field of the wrong type, a misspelt enum, an
embed title sent as a list. The document (``discord_api_spec/openapi.json``,
vendored unchanged) is loaded and patched once per process, on the first body
checked, and one validator is kept per operation, so a check costs about a
millisecond. ``Dispatcher.handle`` calls ``check`` once per request and
answers a violation with Discord's 400 Invalid Form Body; one of the wrong
shape (not just over a limit, see ``LIMITS``) also fails the test.

Two places where the document is stricter than the live API are patched in
memory (``LENIENCIES``): snowflakes sent as JSON integers (discord.py sends
attachment ids so) and channel type 16 (GUILD_MEDIA), missing from
``ChannelTypes``. Paths the document lacks are not failures; they are
collected in ``STATS.unknown`` and listed at the end of the test session.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import relevance
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .validation import ApiError, FormErrors

DOCUMENT = Path(__file__).with_name("discord_api_spec") / "openapi.json"
DOCUMENT_URI = "urn:discord-api-spec:openapi.json"  # refs like "#/components/..." resolve here
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
SNOWFLAKE_SEGMENT = re.compile(r"/\d+(?=/|$)")  # unknown paths are listed with ids as {id}
MESSAGE_LIMIT = 300  # jsonschema quotes the offending value; a whole embed reads badly
# jsonschema's keyword -> the error code Discord gives for the same mistake.
CODES = {
    "type": "BASE_TYPE_BAD_TYPE",
    "required": "BASE_TYPE_REQUIRED",
    "maxLength": "BASE_TYPE_MAX_LENGTH",
    "maxItems": "BASE_TYPE_MAX_LENGTH",
    "minLength": "BASE_TYPE_MIN_LENGTH",
    "minItems": "BASE_TYPE_MIN_LENGTH",
    "enum": "BASE_TYPE_CHOICES",
    "const": "BASE_TYPE_CHOICES",
    "oneOf": "BASE_TYPE_CHOICES",
    "anyOf": "BASE_TYPE_CHOICES",
}
# Limits depend on the data (a user's long prompt), and a bot may rightly catch the 400 and
# say so; any other keyword failing means the body has the wrong shape, always a bug.
LIMITS = frozenset(
    {"maxLength", "minLength", "maxItems", "minItems", "maximum", "minimum"}
    | {"exclusiveMaximum", "exclusiveMinimum"}
)


@dataclass(frozen=True)
class Violation:
    """A body the live API would refuse: where (endpoint, field) and why."""

    method: str
    template: str  # the document's path, e.g. /channels/{channel_id}/messages
    field: str  # dotted, as in Discord's errors tree: embeds.0.title ("" for the whole body)
    message: str
    keyword: str = ""  # the JSON Schema keyword that failed: type, maxLength, required...

    def __str__(self) -> str:
        return f"{self.method} {self.template}: {self.field or '(body)'}: {self.message}"

    @property
    def is_limit(self) -> bool:
        """Too long, too many, too big: Discord refuses it, but the bot may handle that."""
        return self.keyword in LIMITS

    def api_error(self) -> ApiError:
        """Discord's answer to such a body: 400 Invalid Form Body, the field in ``errors``."""
        errors = FormErrors()
        errors.add(self.field, CODES.get(self.keyword, "BASE_TYPE_INVALID"), self.message)
        return ApiError(400, 50035, "Invalid Form Body", errors.tree)


@dataclass
class Stats:
    """What this process checked; tests/conftest.py sums the workers' for the summary."""

    checked: int = 0
    violations: int = 0
    unknown: set[str] = field(default_factory=set)  # "POST /attachments/refresh-urls"
    endpoints: set[str] = field(default_factory=set)  # "POST /channels/{channel_id}/messages"
    load_seconds: float = 0.0

    def snapshot(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "endpoints": sorted(self.endpoints),
            "violations": self.violations,
            "unknown": sorted(self.unknown),
            "load_seconds": self.load_seconds,
        }


STATS = Stats()


@dataclass(frozen=True)
class Operation:
    """One documented endpoint that takes a body, found by method and path."""

    method: str
    template: str
    segments: tuple[str | None, ...]  # literal segments; None where the template has {param}
    pointer: str | None  # JSON pointer to its JSON body schema; None: it takes no JSON body

    def matches(self, parts: list[str]) -> bool:
        return len(parts) == len(self.segments) and all(
            seg is None or seg == part for seg, part in zip(self.segments, parts, strict=True)
        )


def _snowflakes_may_be_integers(schemas: dict[str, Any]) -> None:
    schemas["SnowflakeType"]["type"] = ["string", "integer"]  # the pattern binds strings only
    schemas["SnowflakeType"]["minimum"] = 0


def _guild_media_is_a_channel_type(schemas: dict[str, Any]) -> None:
    choices = schemas["ChannelTypes"]["oneOf"]
    if all(choice.get("const") != 16 for choice in choices):
        choices.append({"title": "GUILD_MEDIA", "const": 16})


LENIENCIES = (_snowflakes_may_be_integers, _guild_media_is_a_channel_type)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _body_pointer(template: str, method: str, operation: dict[str, Any]) -> str | None:
    """The JSON body's schema: ``application/json``'s, else a multipart ``payload_json``'s.

    A multipart request's ``payload_json`` follows the ``application/json`` schema
    (every operation that takes files in this document has one). The multipart-only
    operations (stickers, invite target users, app attachments) take form fields,
    not JSON, and are not checked unless they declare a ``payload_json`` part.
    """
    content = operation.get("requestBody", {}).get("content", {})
    base = f"/paths/{_escape(template)}/{method.lower()}/requestBody/content"
    if "application/json" in content:
        return f"{base}/application~1json/schema"
    multipart = content.get("multipart/form-data", {}).get("schema", {})
    if "payload_json" in multipart.get("properties", {}):
        return f"{base}/multipart~1form-data/schema/properties/payload_json"
    return None


class Spec:
    """The patched document: finds an operation by method and path, validates its body."""

    def __init__(self, document: dict[str, Any]) -> None:
        for lenient in LENIENCIES:
            lenient(document["components"]["schemas"])
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}
        self._operations: dict[str, list[Operation]] = {}
        for template, item in document["paths"].items():
            segments = tuple(
                None if re.fullmatch(r"\{\w+\}", seg) else seg for seg in template.split("/")
            )
            for method, operation in item.items():
                if method.upper() in BODY_METHODS:
                    pointer = _body_pointer(template, method, operation)
                    op = Operation(method.upper(), template, segments, pointer)
                    self._operations.setdefault(op.method, []).append(op)
        for ops in self._operations.values():  # a literal beats a {param}: @original first
            ops.sort(key=lambda op: tuple(seg is None for seg in op.segments))

    def operation(self, method: str, path: str) -> Operation | None:
        """The operation for a concrete path (without ``/api/v10``), or None if undocumented."""
        parts = path.split("/")
        return next((op for op in self._operations.get(method, []) if op.matches(parts)), None)

    def error(self, op: Operation, body: Any) -> ValidationError | None:
        """The most telling thing wrong with ``body``, or None if the document allows it."""
        if op.pointer is None:
            return None
        validator = self._validators.get(op.pointer)
        if validator is None:
            schema = {"$ref": f"{DOCUMENT_URI}#{op.pointer}"}
            validator = Draft202012Validator(schema, registry=self._registry)
            self._validators[op.pointer] = validator
        return _most_telling(validator.iter_errors(body))


def _most_telling(errors: Iterable[ValidationError]) -> ValidationError | None:
    """The shallowest error; inside a union (``anyOf``/``oneOf``), the meant branch's.

    Discord's unions are told apart by a ``type`` enum (interaction callbacks,
    components) or by the JSON type (``null`` or an object). A branch whose
    discriminator or JSON type does not fit is dropped; if one branch is left, its
    own most telling error is the answer, else the union's ("not valid under any
    of the given schemas"). jsonschema's ``best_match`` would guess a branch instead.
    """
    error = max(errors, key=relevance, default=None)
    while error is not None and error.validator in ("anyOf", "oneOf") and error.context:
        depth = len(error.absolute_path)
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        meant = [
            subs
            for subs in branches.values()
            if not any(_rules_out(sub, len(sub.absolute_path) - depth) for sub in subs)
        ]
        if len(meant) != 1:
            return error
        error = max(meant[0], key=relevance)
    return error


def _rules_out(sub: ValidationError, depth: int) -> bool:
    return (depth == 0 and sub.validator == "type") or (
        depth == 1 and sub.validator in ("enum", "const")
    )


@functools.cache
def spec() -> Spec:
    """The document, read and patched once per process (some tens of milliseconds)."""
    started = time.perf_counter()
    loaded = Spec(json.loads(DOCUMENT.read_text(encoding="utf-8")))
    STATS.load_seconds += time.perf_counter() - started
    return loaded


def field_path(error: ValidationError) -> str:
    """The dotted field, as Discord names it; a missing property is named itself."""
    parts = [str(part) for part in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        parts += missing[:1]
    return ".".join(parts)


def check(method: str, path: str, body: Any, stats: Stats = STATS) -> Violation | None:
    """Validate one request body; None if it is fine, undocumented, or there is none."""
    if method not in BODY_METHODS or body is None:
        return None
    op = spec().operation(method, path)
    if op is None:
        stats.unknown.add(f"{method} {SNOWFLAKE_SEGMENT.sub('/{id}', path)}")
        return None
    if op.pointer is None:
        return None
    stats.checked += 1
    stats.endpoints.add(f"{method} {op.template}")
    error = spec().error(op, body)
    if error is None:
        return None
    stats.violations += 1
    return Violation(method, op.template, field_path(error), _message(error), str(error.validator))


def _message(error: ValidationError) -> str:
    """Discord's wording for a length limit; otherwise jsonschema's, cut short."""
    bound = error.validator_value
    if error.validator in ("maxLength", "maxItems"):
        return f"Must be {bound} or fewer in length."
    if error.validator in ("minLength", "minItems"):
        return f"Must be {bound} or more in length."
    return error.message[:MESSAGE_LIMIT]
