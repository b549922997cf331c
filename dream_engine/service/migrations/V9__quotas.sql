-- Daily limits and cooldowns (/dreamadmin daily-limit, cooldown, exempt).
ALTER TABLE guild_settings ADD COLUMN daily_limit INTEGER;  -- dreams a member may start a day
ALTER TABLE guild_settings ADD COLUMN cooldown    INTEGER;  -- seconds between a member's dreams

-- Roles whose members skip both (admins always do). A row per role, like channels.
CREATE TABLE guild_exempt_roles (
    guild_id INTEGER NOT NULL REFERENCES guild_settings (guild_id) ON DELETE CASCADE,
    role_id  INTEGER NOT NULL,
    PRIMARY KEY (guild_id, role_id)
) WITHOUT ROWID;

-- When each member started a dream, per server (0: direct messages); the last day only.
CREATE TABLE dream_starts (
    id       INTEGER PRIMARY KEY,
    guild_id INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    at       REAL    NOT NULL
);
CREATE INDEX dream_starts_by_member ON dream_starts (guild_id, user_id, at);
