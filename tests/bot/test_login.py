"""Starting the bot where Discord says no: one line on stderr and an exit status, never a
traceback (the real discord.py client, against the fake Discord or a closed port)."""

from __future__ import annotations

import socket

import pytest
from discord.http import Route

import bot as bot_module
from tests.bot.test_dream import settings_for
from tests.fakediscord import FakeDiscord

pytestmark = pytest.mark.e2e


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe closes


@pytest.fixture
def no_engine(monkeypatch):
    """For the tests of logging in: the bot's executor starts at once and builds no engine
    (`IdleExecutor`), so a test spends its time on Discord, not on TensorFlow."""
    monkeypatch.setattr(bot_module, "build_executor", lambda settings: IdleExecutor())


@pytest.mark.asyncio
async def test_a_token_discord_refuses_is_one_line_and_exit_2(tmp_path, capsys, no_engine):
    async with FakeDiscord(bot_token="the-real-one"):
        settings = settings_for(tmp_path, token="an-old-one", executor="thread")
        status = await bot_module._run(settings)
    err = capsys.readouterr().err
    assert status == 2
    assert "error: Discord refused DISCORD_TOKEN" in err and "Reset Token" in err
    assert "Traceback" not in err


@pytest.mark.asyncio
async def test_the_right_token_is_let_in_by_the_fake(tmp_path):
    """The check above is real: the same fake takes its own token."""
    async with FakeDiscord(bot_token="the-real-one") as fake:
        dreambot = bot_module.create_bot(settings_for(tmp_path), IdleExecutor())
        await fake.start_bot(dreambot, token="the-real-one")
        assert dreambot.user is not None and dreambot.user.id == fake.bot_user.id


@pytest.mark.asyncio
async def test_discord_out_of_reach_is_one_line_and_exit_3(
    tmp_path, capsys, monkeypatch, no_engine
):
    monkeypatch.setattr(Route, "BASE", f"http://127.0.0.1:{closed_port()}/api/v10")
    status = await bot_module._run(settings_for(tmp_path, executor="thread"))
    err = capsys.readouterr().err
    assert status == 3
    assert "error: could not reach Discord" in err and "Traceback" not in err


class IdleExecutor:
    """Starts at once and never dreams: these tests are about what happens before that."""

    model_name = "inceptionv3"
    capacity = 1
    on_capacity_change = None

    def workers(self):
        return []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, request, on_progress, cancel):  # pragma: no cover
        raise AssertionError("no dream expected")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"weights": "/nonexistent/weights.h5"}, "Weights file not found"),
        ({"model": "inceptionv4"}, "not available"),
    ],
)
async def test_a_model_or_weights_that_cannot_load_is_one_line_and_exit_2(
    tmp_path, capsys, changes, words
):
    """DREAM_WEIGHTS naming a missing file, or a model the engine does not know."""
    settings = settings_for(tmp_path, executor="thread", **changes)
    status = await bot_module._run(settings)
    err = capsys.readouterr().err
    assert status == 2
    assert words in err and "Traceback" not in err


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["not-a-database", "a-directory"])
async def test_a_database_that_cannot_be_opened_is_one_line_naming_it(
    tmp_path, capsys, monkeypatch, kind
):
    """DREAM_DB pointing at a damaged file (or a directory): the line names the setting."""
    db = tmp_path / "bot.sqlite3"
    if kind == "not-a-database":
        db.write_bytes(b"this is not an SQLite database, it is a text file" * 100)
    else:
        db.mkdir()
    monkeypatch.setattr(bot_module, "build_executor", lambda settings: IdleExecutor())
    async with FakeDiscord():
        settings = settings_for(tmp_path, db_path=str(db))
        status = await bot_module._run(settings)
    err = capsys.readouterr().err
    assert status == 2
    assert f"DREAM_DB={db}" in err and "Traceback" not in err
