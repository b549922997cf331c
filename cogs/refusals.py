"""What the dream service refuses or reports, in the member's language.

The service layer knows nothing of Discord or of languages (DESIGN.md: layers point
down). Its refusals a member meets most, the daily limit and cooldown
(`QuotaExceeded`) and a full line (`QueueRefused`), carry typed fields beside
their English `str()`; the scheduler's own final words on a job are module
constants, and so is its answer to a cancel (`CancelOutcome`, or `ALREADY_POSTING`).
Here they all become the member's sentence with `tr`. In English the
result is exactly the service's text (tests/bot/test_localisation.py checks every
case), so nothing changes for an English member; a text this module does not
know (an engine's refusal, a parameter error) is shown as the service said it.
"""

from __future__ import annotations

from functools import singledispatch

from cogs.i18n import LocaleLike, tr
from dream_engine.errors import UserError
from dream_engine.service.queue import (
    CancelOutcome,
    GuildQueueFull,
    QueueClosed,
    QueueFull,
    UserLimitReached,
)
from dream_engine.service.quotas import QuotaExceeded
from dream_engine.service.scheduler import (
    ALREADY_POSTING,
    CANCELLED_RUNNING,
    CANCELLED_WAITING,
    NOT_SAVED,
    POSTING_FAILED,
    SAVED_IMAGE_MISSING,
)

__all__ = ["WARNING", "cancel_reply", "cancel_text", "refusal_text", "service_message"]

#: Kept out of the catalogues: translators need not copy an emoji's invisible selector.
WARNING = "⚠️ "


def refusal_text(error: UserError, locale: LocaleLike) -> str:
    """The refusal `error` as its member reads it: in their language where its type is
    known here, else `str(error)` as the service wrote it."""
    return _refusal(error, locale)


def service_message(message: str, locale: LocaleLike) -> str:
    """A final word the scheduler gave a job (one of its constants) in the member's
    language; any other text, such as an engine's refusal or one already translated,
    as it is."""
    known = {
        NOT_SAVED: WARNING
        + tr(locale, "I could not save this dream, so it was not queued. Please try again."),
        WARNING + SAVED_IMAGE_MISSING: WARNING
        + tr(locale, "This dream's saved image is missing, so it was not started."),
        CANCELLED_RUNNING: tr(locale, "Cancelled. Nothing was posted."),
        CANCELLED_WAITING: tr(locale, "Cancelled before it started. Nothing was posted."),
        POSTING_FAILED: WARNING
        + tr(locale, "Something went wrong while posting this dream. Please try again."),
    }
    return known.get(message, message)


def cancel_text(outcome: CancelOutcome, locale: LocaleLike) -> str:
    """What a cancel did, as the member who asked reads it (`outcome.message` in English)."""
    known = {
        CancelOutcome.CANCELLED: tr(
            locale, "Cancelled. That dream was still waiting, so it never ran."
        ),
        CancelOutcome.STOPPING: tr(
            locale, "Stopping that dream; it will end after the current step."
        ),
        CancelOutcome.NOT_FOUND: tr(locale, "There is no dream with that id. /queue shows yours."),
        CancelOutcome.NOT_ALLOWED: tr(
            locale,
            "That dream isn't yours. Only the member who asked for it, or an admin of its "
            "server, can cancel it.",
        ),
        CancelOutcome.ALREADY_FINISHED: tr(locale, "That dream has already finished."),
    }
    return known[outcome]


def cancel_reply(message: str, locale: LocaleLike) -> str:
    """The scheduler's answer to a cancel (a `CancelOutcome`'s message, or `ALREADY_POSTING`)
    in the member's language; the scheduler hands its `respond` only the English."""
    if message == ALREADY_POSTING:
        return tr(locale, "That dream has already finished; it is being posted.")
    for outcome in CancelOutcome:
        if outcome.message == message:
            return cancel_text(outcome, locale)
    return message


@singledispatch
def _refusal(error: UserError, locale: LocaleLike) -> str:
    return str(error)


@_refusal.register
def _quota(error: QuotaExceeded, locale: LocaleLike) -> str:
    when = error.starts_at  # shown by Discord in the member's own time and language
    if error.kind == "cooldown":
        return tr(
            locale,
            "Not so fast: dreams here are {seconds} s apart; your next one can start "
            "<t:{when}:R>.",
            seconds=error.limit,
            when=when,
        )
    if error.limit == 1:
        return tr(
            locale,
            "You have had your 1 dream for today here; your next one can start <t:{when}:R>.",
            when=when,
        )
    return tr(
        locale,
        "You have had your {limit} dreams for today here; your next one can start "
        "<t:{when}:R>.",
        limit=error.limit,
        when=when,
    )


@_refusal.register
def _queue_full(error: QueueFull, locale: LocaleLike) -> str:
    return tr(
        locale,
        "The dream queue is full right now ({dreams} waiting across all servers). "
        "Try again in a few minutes.",
        dreams=_dreams(locale, error.waiting),
    )


@_refusal.register
def _guild_queue_full(error: GuildQueueFull, locale: LocaleLike) -> str:
    if error.limit == 0 and error.in_dm:
        return tr(locale, "Dreams are switched off in direct messages (the queue size is 0).")
    if error.limit == 0:
        return tr(
            locale,
            "Dreams are switched off in this server (the queue size is 0). "
            "A server admin can change that.",
        )
    if error.in_dm:
        return tr(
            locale,
            "The dream queue in direct messages is full ({waiting} waiting). "
            "Try again in a few minutes.",
            waiting=error.waiting,
        )
    return tr(
        locale,
        "The dream queue in this server is full ({waiting} waiting). Try again in a few minutes.",
        waiting=error.waiting,
    )


@_refusal.register
def _user_limit(error: UserLimitReached, locale: LocaleLike) -> str:
    if error.limit == 0:
        if error.in_dm:
            return tr(
                locale, "Dreams are switched off for members in direct messages (the limit is 0)."
            )
        return tr(locale, "Dreams are switched off for members in this server (the limit is 0).")
    values = {"dreams": _dreams(locale, error.held), "limit": error.limit}
    if error.held == error.limit and error.in_dm:
        return tr(
            locale,
            "You already have {dreams} queued or running, the most allowed in DMs. "
            "Wait for one to finish or /cancel one.",
            **values,
        )
    if error.held == error.limit:
        return tr(
            locale,
            "You already have {dreams} queued or running, the most this server allows. "
            "Wait for one to finish or /cancel one.",
            **values,
        )
    # An admin lowered the limit below what the member already holds.
    if error.in_dm:
        return tr(
            locale,
            "You already have {dreams} queued or running, and only {limit} are allowed in DMs. "
            "Wait for one to finish or /cancel one.",
            **values,
        )
    return tr(
        locale,
        "You already have {dreams} queued or running, and this server allows {limit}. "
        "Wait for one to finish or /cancel one.",
        **values,
    )


@_refusal.register
def _closed(error: QueueClosed, locale: LocaleLike) -> str:
    return tr(
        locale, "The dream bot is shutting down and not taking new dreams. Try again in a minute."
    )


def _dreams(locale: LocaleLike, n: int) -> str:
    """A count of dreams ("1 dream", "3 dreams") as one phrase to put in a sentence."""
    return tr(locale, "1 dream") if n == 1 else tr(locale, "{n} dreams", n=n)
