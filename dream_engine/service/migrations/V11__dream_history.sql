-- History: one row per delivered dream, metadata only (no images), for /dreams, the Info
-- and Reroll buttons and /dreamadmin stats; pruned after DREAM_HISTORY_DAYS.
CREATE TABLE dreams (
    job_id          TEXT    PRIMARY KEY,
    guild_id        INTEGER,             -- NULL: a direct message or a user-installed use
    channel_id      INTEGER NOT NULL,
    message_id      INTEGER,             -- the posted result, for its jump link
    user_id         INTEGER NOT NULL,
    preset          TEXT    NOT NULL,
    params          TEXT    NOT NULL,    -- DreamParams as JSON: every value it ran with
    changed         TEXT    NOT NULL,    -- what differed from the preset, as JSON
    source_id       INTEGER,             -- the remembered image (image_sources), for Reroll
    guide_source_id INTEGER,             -- the remembered guide image, if it had one
    guide_name      TEXT,
    motion          TEXT,                -- MotionSpec as JSON for a zoom or a clip
    variants        INTEGER NOT NULL DEFAULT 0,  -- a comparison's tile count (0: one dream)
    gallery         INTEGER NOT NULL DEFAULT 0,
    animate         INTEGER NOT NULL DEFAULT 0,
    spoiler         INTEGER NOT NULL DEFAULT 0,
    max_side        INTEGER NOT NULL,
    precision       TEXT    NOT NULL DEFAULT '',
    width           INTEGER NOT NULL,
    height          INTEGER NOT NULL,
    accepted_at     REAL    NOT NULL,    -- wall clock, when the member asked
    started_at      REAL    NOT NULL,    -- wall clock, when a worker took it
    finished_at     REAL    NOT NULL,
    run_seconds     REAL    NOT NULL     -- what the engine took
);
CREATE INDEX dreams_by_member ON dreams (guild_id, user_id, finished_at);
CREATE INDEX dreams_by_guild ON dreams (guild_id, finished_at);

-- A guide image is remembered like the image it steers, so Reroll can use it again.
ALTER TABLE jobs ADD COLUMN guide_source_id INTEGER;
-- 1: asked through the app installed to a member's account where the bot is not in the
-- server (or in a DM): it answers through the interaction, else in the member's DMs.
ALTER TABLE jobs ADD COLUMN interaction_only INTEGER NOT NULL DEFAULT 0;
