"""Registered application commands, and turning a test's call into interaction data.

Discord builds ``data.options`` from the *registered* command, so the fake
does too: a test says ``options={"image": att, "steps": 20}`` and the synced
schema decides that ``image`` is an attachment (value = id, plus
``resolved.attachments``) and ``steps`` an integer. With ``strict=True`` it
also plays the Discord client's part and refuses what a user could not send
(unknown or missing options, a value outside the choices or range, a command
hidden by ``default_member_permissions``).

Localisations (``name_localizations``, ``description_localizations`` on commands,
options and choices) are kept as registered, after Discord's checks on them: known
locales only, localised names by the name rules, and no two options of a command
with the same name in any one language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .models import ADMINISTRATOR, Snowflakes
from .validation import COMMAND_NAME, FormErrors

# Discord's locales (https://discord.com/developers/docs/reference#locales).
LOCALES = frozenset(
    {
        "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu",
        "nl", "no", "pl", "pt-BR", "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru",
        "uk", "hi", "th", "zh-CN", "ja", "zh-TW", "ko",
    }
)  # fmt: skip

OPTION_TYPES = {
    1: "subcommand",
    2: "subcommand group",
    3: "string",
    4: "integer",
    5: "boolean",
    6: "user",
    7: "channel",
    8: "role",
    9: "mentionable",
    10: "number",
    11: "attachment",
}
RESOLVED_TYPES = (6, 7, 8, 9, 11)

# (value, option type, resolved dict to fill) -> the option's wire value (an id string)
Resolver = Callable[[Any, int, dict[str, Any]], str]


class CommandRegistry:
    """What ``PUT /applications/{app}/commands`` (and the guild variant) stored."""

    def __init__(self, ids: Snowflakes, application_id: int) -> None:
        self._ids = ids
        self._app_id = application_id
        self._scopes: dict[int | None, dict[tuple[str, int], dict[str, Any]]] = {None: {}}

    def list(self, guild_id: int | None) -> list[dict[str, Any]]:
        return list(self._scopes.get(guild_id, {}).values())

    def overwrite(
        self, guild_id: int | None, payloads: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Bulk overwrite: like Discord, a command keeps its id when its name and type stay."""
        check_localizations(payloads)
        old = self._scopes.get(guild_id, {})
        new: dict[tuple[str, int], dict[str, Any]] = {}
        for payload in payloads:
            key = (payload["name"], payload.get("type", 1))
            new[key] = self._normalise(guild_id, payload, old.get(key))
        self._scopes[guild_id] = new
        return list(new.values())

    def upsert(self, guild_id: int | None, payload: dict[str, Any]) -> dict[str, Any]:
        check_localizations([payload])
        scope = self._scopes.setdefault(guild_id, {})
        key = (payload["name"], payload.get("type", 1))
        scope[key] = self._normalise(guild_id, payload, scope.get(key))
        return scope[key]

    def get(self, guild_id: int | None, command_id: int) -> dict[str, Any] | None:
        return next((c for c in self.list(guild_id) if int(c["id"]) == command_id), None)

    def delete(self, guild_id: int | None, command_id: int) -> bool:
        scope = self._scopes.get(guild_id, {})
        for key, cmd in list(scope.items()):
            if int(cmd["id"]) == command_id:
                del scope[key]
                return True
        return False

    def edit(
        self, guild_id: int | None, command_id: int, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        cmd = self.get(guild_id, command_id)
        if cmd is None:
            return None
        edited = {**cmd, **changes}
        check_localizations([edited])  # refused: the command stays as it was
        self.delete(guild_id, command_id)
        return self.upsert(guild_id, edited)

    def find(self, name: str, guild_id: int | None, type: int) -> dict[str, Any]:
        """Guild commands shadow global ones, as in the Discord client."""
        for scope in (guild_id, None):
            cmd = self._scopes.get(scope, {}).get((name, type))
            if cmd is not None:
                return cmd
        known = sorted(
            n for scope in (guild_id, None) for (n, t) in self._scopes.get(scope, {}) if t == type
        )
        raise AssertionError(
            f"no command {name!r} (type {type}) is registered for guild {guild_id}; "
            f"registered: {known}. Did the bot sync its tree (tree.sync) before the test used it?"
        )

    def _normalise(
        self, guild_id: int | None, payload: dict[str, Any], old: dict[str, Any] | None
    ) -> dict[str, Any]:
        cmd = {
            "type": 1,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            **payload,
            "id": old["id"] if old else str(self._ids.next()),
            "application_id": str(self._app_id),
            "version": str(self._ids.next()),
        }
        if guild_id is not None:
            cmd["guild_id"] = str(guild_id)
        return cmd


def check_localizations(payloads: list[dict[str, Any]]) -> None:
    """Discord's checks on localised names and descriptions; 400 Invalid Form Body if one fails."""
    errors = FormErrors()
    for i, cmd in enumerate(payloads):
        chat_input = cmd.get("type", 1) == 1
        _check_localized(errors, str(i), cmd, chat_input=chat_input, limit=32)
        _check_unique_per_locale(errors, f"{i}.options", cmd.get("options") or [])
    errors.raise_if_any()


def _check_localized(
    errors: FormErrors, path: str, node: dict[str, Any], *, chat_input: bool, limit: int
) -> None:
    """One command, option or choice, then what it holds. ``chat_input``: its names follow
    the slash command rule; ``limit``: the longest a name may be (a choice's: 100)."""
    names = node.get("name_localizations") or {}
    for locale, name in names.items():
        where = f"{path}.name_localizations.{locale}"
        if locale not in LOCALES:
            errors.add(where, "LOCALE_INVALID", f"{locale!r} is not a Discord locale")
        elif chat_input and not (COMMAND_NAME.match(name) and name == name.lower()):
            errors.add(where, "APPLICATION_COMMAND_INVALID_NAME", f"Name is invalid ({name!r})")
        elif not 1 <= len(name) <= limit:
            errors.add(where, "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {limit} in length.")
    for locale, text in (node.get("description_localizations") or {}).items():
        where = f"{path}.description_localizations.{locale}"
        if locale not in LOCALES:
            errors.add(where, "LOCALE_INVALID", f"{locale!r} is not a Discord locale")
        elif not 1 <= len(text) <= 100:
            errors.add(where, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    for j, opt in enumerate(node.get("options") or []):
        _check_localized(errors, f"{path}.options.{j}", opt, chat_input=True, limit=32)
    for j, choice in enumerate(node.get("choices") or []):
        _check_localized(errors, f"{path}.choices.{j}", choice, chat_input=False, limit=100)


def _check_unique_per_locale(errors: FormErrors, path: str, options: list[dict[str, Any]]) -> None:
    """In every language, the options of one command (or subcommands of a group) differ."""
    locales = {loc for opt in options for loc in opt.get("name_localizations") or {}}
    for locale in sorted(locales):
        seen: set[str] = set()
        for opt in options:
            name = (opt.get("name_localizations") or {}).get(locale, opt["name"])
            if name in seen:
                errors.add(
                    f"{path}.name_localizations.{locale}",
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    f"Option names must be unique in {locale} ({name!r})",
                )
            seen.add(name)
    for j, opt in enumerate(options):
        if opt.get("type") in (1, 2):
            _check_unique_per_locale(errors, f"{path}.{j}.options", opt.get("options") or [])


def check_visible(
    cmd: dict[str, Any], permissions: int, *, in_guild: bool, bot_there: bool = True
) -> None:
    """Refuse what the Discord client would not even offer the user; ``bot_there=False``:
    a server the bot is not in, where only a command installed to the user's account shows."""
    if not bot_there and (
        1 not in (cmd.get("integration_types") or [0]) or 0 not in (cmd.get("contexts") or [0])
    ):
        raise AssertionError(
            f"/{cmd['name']} is not installable to a user account (integration_types "
            f"{cmd.get('integration_types')}): the Discord client would not offer it in a "
            "server the bot is not in"
        )
    required = cmd.get("default_member_permissions")
    hidden = required is not None and (
        int(required) == 0 or permissions & int(required) != int(required)
    )
    if in_guild and hidden and not permissions & ADMINISTRATOR:
        raise AssertionError(
            f"/{cmd['name']} needs default_member_permissions={required}, the member has "
            f"{permissions:#x}: the Discord client would hide it. strict=False sends it anyway."
        )
    contexts = cmd.get("contexts") or [0, 1, 2]
    if not in_guild and (
        cmd.get("dm_permission") is False or 1 not in contexts or "guild_id" in cmd
    ):
        raise AssertionError(f"/{cmd['name']} is not usable in DMs")


def chat_input_data(
    cmd: dict[str, Any],
    path: list[str],
    values: Mapping[str, Any],
    resolve: Resolver,
    *,
    strict: bool,
    focused: str | None = None,
) -> dict[str, Any]:
    """``data`` for a slash command (type 2) or its autocomplete (type 4).

    ``path`` names the subcommand group/subcommand ("queue-size" in
    "dreamadmin queue-size"); ``values`` are the leaf options by name.
    """
    schema: list[dict[str, Any]] = cmd.get("options", [])
    chain: list[dict[str, Any]] = []
    for name in path:
        sub = next((o for o in schema if o["name"] == name and o["type"] in (1, 2)), None)
        if sub is None:
            subs = [o["name"] for o in schema if o["type"] in (1, 2)]
            raise AssertionError(f"/{cmd['name']} has no subcommand {name!r}; it has {subs}")
        chain.append(sub)
        schema = sub.get("options", [])
    where = " ".join([cmd["name"], *path])
    subs = [o["name"] for o in schema if o["type"] in (1, 2)]
    if subs:
        raise AssertionError(
            f"/{where} has subcommands {subs}; name one, e.g. {where + ' ' + subs[0]!r}"
        )
    resolved: dict[str, Any] = {}
    options = _leaf_options(
        schema, values, resolve, resolved, strict=strict, focused=focused, where=where
    )
    for sub in reversed(chain):
        options = [{"name": sub["name"], "type": sub["type"], "options": options}]
    data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 1, "options": options}
    if resolved:
        data["resolved"] = resolved
    if "guild_id" in cmd:
        data["guild_id"] = cmd["guild_id"]
    return data


def _leaf_options(
    schema: list[dict[str, Any]],
    values: Mapping[str, Any],
    resolve: Resolver,
    resolved: dict[str, Any],
    *,
    strict: bool,
    focused: str | None,
    where: str,
) -> list[dict[str, Any]]:
    by_name = {o["name"]: o for o in schema}
    unknown = set(values) - set(by_name) - ({focused} if focused else set())
    if unknown:
        raise AssertionError(
            f"/{where} has no option(s) {sorted(unknown)}; it has {sorted(by_name)}"
        )
    if focused is not None:
        if focused not in by_name:
            raise AssertionError(
                f"/{where} has no option {focused!r} to autocomplete; it has {sorted(by_name)}"
            )
        if strict and not by_name[focused].get("autocomplete"):
            raise AssertionError(
                f"option {focused!r} of /{where} is not registered with autocomplete=True"
            )
    out: list[dict[str, Any]] = []
    for opt in schema:
        name = opt["name"]
        if name == focused:
            out.append(
                {
                    "name": name,
                    "type": opt["type"],
                    "value": str(values.get(name, "")),
                    "focused": True,
                }
            )
            continue
        if name not in values:
            if strict and opt.get("required") and focused is None:
                raise AssertionError(
                    f"/{where} requires option {name!r} ({OPTION_TYPES[opt['type']]})"
                )
            continue
        value = _convert(opt, values[name], resolve, resolved, where=where)
        if strict and focused is None:
            _check_value(opt, value, where=where)
        out.append({"name": name, "type": opt["type"], "value": value})
    return out


def _convert(
    opt: dict[str, Any], value: Any, resolve: Resolver, resolved: dict[str, Any], *, where: str
) -> Any:
    kind = opt["type"]
    if kind in RESOLVED_TYPES:
        return resolve(value, kind, resolved)
    expected = {3: str, 4: int, 5: bool, 10: (int, float)}[kind]
    if not isinstance(value, expected) or (kind in (4, 10) and isinstance(value, bool)):
        raise AssertionError(
            f"option {opt['name']!r} of /{where} is a {OPTION_TYPES[kind]}, got {value!r}"
        )
    return value


def _check_value(opt: dict[str, Any], value: Any, *, where: str) -> None:
    name = opt["name"]
    choices = [c["value"] for c in opt.get("choices") or []]
    if choices and value not in choices:
        raise AssertionError(f"option {name!r} of /{where} only accepts {choices}, got {value!r}")
    low, high = opt.get("min_value", float("-inf")), opt.get("max_value", float("inf"))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not low <= value <= high:
        raise AssertionError(f"option {name!r} of /{where} must be in [{low}, {high}], got {value}")
    shortest, longest = opt.get("min_length", 0), opt.get("max_length", 6000)
    if isinstance(value, str) and opt["type"] == 3 and not shortest <= len(value) <= longest:
        raise AssertionError(
            f"option {name!r} of /{where} takes {shortest}-{longest} characters, got {len(value)}"
        )
