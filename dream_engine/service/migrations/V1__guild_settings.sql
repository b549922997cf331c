-- Per-server settings that admins change with /dreamadmin.
--
-- NULL means "not set": the bot's configured default applies, so a default changed
-- in configuration later reaches every server that never chose its own value.
-- Ranges are checked in Python (dream_engine/guild_settings.py), not with CHECK
-- constraints here: SQLite can only change a CHECK by rebuilding the table.

CREATE TABLE guild_settings (
    guild_id   INTEGER PRIMARY KEY,
    queue_size INTEGER,            -- jobs that may wait in this server
    user_limit INTEGER,            -- jobs one member may hold, waiting + running
    max_side   INTEGER,            -- longest image side processed, px
    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Channels where /dream may be used; a server with no rows here allows every channel.
-- A row per channel (not a list in one column) makes adding or removing one channel
-- a single statement, so concurrent admin commands cannot overwrite each other.
CREATE TABLE guild_channels (
    guild_id   INTEGER NOT NULL REFERENCES guild_settings (guild_id) ON DELETE CASCADE,
    channel_id INTEGER NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
) WITHOUT ROWID;
