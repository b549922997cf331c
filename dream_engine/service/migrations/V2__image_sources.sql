-- Images a preset dropdown refers to ("Dream again with...", "Dream this image",
-- /dream without a preset). A dropdown's custom_id carries only the row id, so
-- it keeps working after a restart.
CREATE TABLE image_sources (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    url          TEXT    NOT NULL,
    filename     TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    content_type TEXT,
    guild_id     INTEGER,
    user_id      INTEGER NOT NULL,
    created_at   REAL    NOT NULL
);
CREATE INDEX image_sources_created ON image_sources (created_at);
