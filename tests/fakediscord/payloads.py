"""Wire JSON for composite objects: members, guilds, READY, interactions.

Shapes follow the Discord API docs and what discord.py 2.7 actually reads
(``state.py``, ``guild.py``, ``member.py``, ``interactions.py``): every key
discord.py indexes with ``data[...]`` is present, so parsing never KeyErrors.
"""

from __future__ import annotations

from typing import Any

from .models import FakeChannel, FakeGuild, FakeMember, FakeUser, iso_now


def member_payload(
    guild: FakeGuild, member: FakeMember, *, with_permissions: bool = False
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "user": member.user.to_payload(),
        "roles": [str(r) for r in member.role_ids],
        "nick": member.nick,
        "avatar": None,
        "banner": None,
        "joined_at": member.joined_at,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if with_permissions:
        payload["permissions"] = str(guild.permissions_of(member))
    return payload


def guild_payload(guild: FakeGuild) -> dict[str, Any]:
    """The guild object (REST ``GET /guilds/{id}``), without the gateway-only lists."""
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(guild.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": guild.locale,
        "features": [],
        "roles": [r.to_payload() for r in guild.roles],
        "emojis": [],
        "stickers": [],
        "system_channel_id": str(guild.text_channel.id),
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "vanity_url_code": None,
        "application_id": None,
        "max_members": 500000,
    }


def guild_create_payload(guild: FakeGuild) -> dict[str, Any]:
    """GUILD_CREATE: the guild plus members and channels.

    ``member_count`` equals the members sent, so discord.py considers the guild
    already chunked and does not need to ask for members.
    """
    payload = guild_payload(guild)
    payload.update(
        unavailable=False,
        large=False,
        joined_at=iso_now(),
        member_count=len(guild.members),
        members=[member_payload(guild, m) for m in guild.members.values()],
        channels=[c.to_payload() for c in guild.channels],
        threads=[],
        presences=[],
        voice_states=[],
        stage_instances=[],
        guild_scheduled_events=[],
        soundboard_sounds=[],
    )
    return payload


def application_payload(app_id: int, bot: FakeUser, owner: FakeUser) -> dict[str, Any]:
    """``GET /oauth2/applications/@me``: discord.py reads the app id from here at login."""
    return {
        "id": str(app_id),
        "name": bot.name,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "flags": 0,
        "owner": owner.to_payload(),
        "team": None,
        "bot": bot.to_payload(),
        "tags": [],
        "redirect_uris": [],
        "interactions_endpoint_url": None,
    }


def ready_payload(
    *,
    bot: FakeUser,
    app_id: int,
    guilds: list[FakeGuild],
    session_id: str,
    resume_url: str,
    shard: list[int] | None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "v": 10,
        "user": bot.to_payload() | {"verified": True, "mfa_enabled": False, "flags": 0},
        "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": resume_url,
        "application": {"id": str(app_id), "flags": 0},
        "private_channels": [],
        "presences": [],
        "relationships": [],
        "user_settings": {},
        "geo_ordered_rtc_regions": [],
        "guild_join_requests": [],
        "auth": {},
        "_trace": ['["fakediscord"]'],
    }
    if shard is not None:
        payload["shard"] = shard
    return payload


def interaction_payload(
    *,
    interaction_id: int,
    app_id: int,
    type: int,
    token: str,
    data: dict[str, Any],
    guild: FakeGuild | None,
    channel: FakeChannel,
    user: FakeMember | FakeUser,
    app_permissions: int,
    locale: str,
    attachment_size_limit: int,
    message: dict[str, Any] | None = None,
    user_installed: bool = False,
) -> dict[str, Any]:
    """The INTERACTION_CREATE envelope shared by every interaction type.

    ``locale`` is the user's client language where the test gave them one, else ``locale``.
    ``user_installed``: the app is installed to the member's account, not to this server,
    so the integration that authorises it is the user's (owner key "1"), not the guild's.
    """
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(app_id),
        "type": type,
        "data": data,
        "token": token,
        "version": 1,
        "locale": user.locale or locale,
        "app_permissions": str(app_permissions),
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": attachment_size_limit,
    }
    if guild is not None:
        assert isinstance(user, FakeMember), "a guild interaction needs a member"
        member = member_payload(guild, user, with_permissions=True)
        payload.update(
            guild_id=str(guild.id),
            guild={"id": str(guild.id), "locale": guild.locale, "features": []},
            guild_locale=guild.locale,
            member=member,
            context=0,
            authorizing_integration_owners=(
                {"1": str(user.id)} if user_installed else {"0": str(guild.id)}
            ),
        )
        channel_perms = int(member["permissions"])
    else:
        plain = user.user if isinstance(user, FakeMember) else user
        payload.update(
            user=plain.to_payload(), context=1, authorizing_integration_owners={"0": "0"}
        )
        channel_perms = 0
    payload["channel_id"] = str(channel.id)
    payload["channel"] = channel.to_payload(permissions=channel_perms)
    if message is not None:
        payload["message"] = message
    return payload
