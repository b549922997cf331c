-- Every accepted dream, written before the member is told "queued", so a restart
-- (or a crash) loses nothing: at start-up the bot resumes the rows still queued or
-- running, in accept order (seq).
--
-- The upload itself is kept (image) so a resumed job does not depend on Discord's
-- expiring CDN links; it and the interaction token are cleared once the job ends.
CREATE TABLE jobs (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,  -- accept order
    id                TEXT    NOT NULL UNIQUE,            -- the queue's job id (Cancel buttons)
    guild_id          INTEGER,                            -- NULL: a direct message
    channel_id        INTEGER NOT NULL,
    user_id           INTEGER NOT NULL,
    user_name         TEXT    NOT NULL,
    application_id    INTEGER NOT NULL,
    token             TEXT,                               -- the interaction token, while useful
    token_expires_at  REAL    NOT NULL,                   -- wall clock, seconds
    upload_limit      INTEGER NOT NULL,                   -- bytes Discord takes in this channel
    preset            TEXT    NOT NULL,
    params            TEXT    NOT NULL,                   -- DreamParams.to_dict() as JSON
    changed           TEXT    NOT NULL,                   -- what the member changed, JSON
    gallery           INTEGER NOT NULL,
    source_id         INTEGER,                            -- image_sources row, "Dream again"
    max_side          INTEGER NOT NULL,
    image             BLOB,                               -- the upload as downloaded
    state             TEXT    NOT NULL DEFAULT 'queued',  -- queued|running|done|failed|
                                                          -- cancelled|undeliverable
    interruptions     INTEGER NOT NULL DEFAULT 0,         -- restarts that caught it running
    note              TEXT,                               -- why it failed / was undeliverable
    accepted_at       REAL    NOT NULL,
    updated_at        REAL    NOT NULL
);
CREATE INDEX jobs_unfinished ON jobs (state) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_updated ON jobs (updated_at);
