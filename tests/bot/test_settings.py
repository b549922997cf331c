"""`Settings.from_env`: the bot's configuration contract (documented in .env.example)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bot import ConfigError, Settings
from tests.conftest import REPO


def test_defaults_apply_when_only_the_token_is_set():
    settings = Settings.from_env({"DISCORD_TOKEN": "abc"})
    assert settings.token == "abc" and settings.model == "inceptionv3"
    assert settings.weights == "imagenet" and settings.max_side == 1024
    assert "abc" not in repr(settings)  # the token never reaches logs through repr


def test_every_variable_is_read():
    settings = Settings.from_env(
        {
            "DISCORD_TOKEN": "abc", "DREAM_MODEL": "dogs", "DREAM_WEIGHTS": "random",
            "DREAM_DB": "/tmp/x.db", "DREAM_MAX_SIDE": "512", "DREAM_DEV_GUILD": "42",
            "DREAM_MAX_QUEUE": "7", "DREAM_GUILD_QUEUE_SIZE": "3", "DREAM_USER_LIMIT": "1",
            "DREAM_MAX_UPLOAD_MB": "8", "DREAM_INTERACTION_LIFETIME": "60",
            "DREAM_PRECISION": "mixed_bfloat16", "DREAM_TILE_SIZE": "0",
            "DREAM_EXECUTOR": "thread", "DREAM_JOB_TIMEOUT": "300", "DREAM_WORKER_RECYCLE": "7",
        }
    )  # fmt: skip
    assert (settings.model, settings.weights, settings.db_path) == ("dogs", "random", "/tmp/x.db")
    assert (settings.max_side, settings.dev_guild, settings.max_queue) == (512, 42, 7)
    assert settings.guild_defaults.queue_size == 3 and settings.default_limits.user_limit == 1
    assert settings.max_upload_bytes == 8 * 1024 * 1024 and settings.interaction_lifetime == 60
    assert settings.precision == "mixed_bfloat16" and settings.tile_size is None
    assert settings.executor == "thread" and settings.job_timeout == 300
    assert settings.worker_recycle == 7
    assert Settings.from_env({"DISCORD_TOKEN": "abc"}).executor == "process"  # crash-isolated


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({}, "DISCORD_TOKEN is not set"),
        (
            {"DISCORD_TOKEN": "a", "DREAM_MAX_SIDE": "big"},
            "DREAM_MAX_SIDE='big' is not a whole number",
        ),
        ({"DISCORD_TOKEN": "a", "DREAM_USER_LIMIT": "-1"}, "DREAM_USER_LIMIT must be positive"),
        ({"DISCORD_TOKEN": "a", "DREAM_PRECISION": "int8"}, "DREAM_PRECISION must be one of"),
        ({"DISCORD_TOKEN": "a", "DREAM_EXECUTOR": "gpu"}, "DREAM_EXECUTOR must be one of"),
        ({"DISCORD_TOKEN": "a", "DREAM_TILE_SIZE": "big"}, "DREAM_TILE_SIZE must be a whole"),
        ({"DISCORD_TOKEN": "a", "DREAM_TILE_SIZE": "99999999999"}, "pixels up to 32768"),
        # Defaults are what a server gets until its admins choose: within the same ranges.
        (
            {"DISCORD_TOKEN": "a", "DREAM_MAX_SIDE": "8192"},
            "DREAM_MAX_SIDE must be from 64 to 4096",
        ),
        ({"DISCORD_TOKEN": "a", "DREAM_MAX_SIDE": "32"}, "DREAM_MAX_SIDE must be from 64 to 4096"),
        ({"DISCORD_TOKEN": "a", "DREAM_USER_LIMIT": "25"}, "DREAM_USER_LIMIT must be from 1 to 20"),
        (
            {"DISCORD_TOKEN": "a", "DREAM_GUILD_QUEUE_SIZE": "200"},
            "DREAM_GUILD_QUEUE_SIZE must be from 1 to 100",
        ),
        # 1 would refuse every /compare: a comparison has at least 2 tiles.
        ({"DISCORD_TOKEN": "a", "DREAM_MAX_VARIANTS": "1"}, "DREAM_MAX_VARIANTS must be from 2"),
        ({"DISCORD_TOKEN": "a", "DREAM_DEV_GUILD": "my-test-server"}, "is not a server id"),
        ({"DISCORD_TOKEN": "a", "DREAM_MODEL": "inceptionv4"}, "DREAM_MODEL must be one of"),
    ],
)
def test_bad_configuration_names_the_variable(env, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        Settings.from_env(env)


def test_every_setting_is_documented_in_env_example():
    documented = set(re.findall(r"^(\w+)=", (REPO / ".env.example").read_text(), re.M))
    sources = [REPO / "bot.py", *(REPO / "dream_engine").rglob("*.py")]  # presets_dir() too
    read = {
        name
        for source in sources
        for name in re.findall(r'"((?:DISCORD|DREAM)_\w+)"', source.read_text())
    }
    assert "DREAM_PRESETS" in read and read <= documented, read - documented


def test_bot_without_a_token_exits_2_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "bot.py")], cwd=tmp_path, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin"}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: DISCORD_TOKEN is not set: put the bot token in .env or the environment."
    )
