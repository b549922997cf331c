-- A picture shown by an embed (a link preview, another bot's embed) can be dreamed too,
-- and Discord does not say how big it is: size may be NULL, and the bytes are checked
-- once downloaded. SQLite cannot drop NOT NULL in place, so the table is rebuilt.
CREATE TABLE image_sources_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    url          TEXT    NOT NULL,
    filename     TEXT    NOT NULL,
    size         INTEGER,  -- bytes; NULL: not known before downloading
    content_type TEXT,
    guild_id     INTEGER,
    user_id      INTEGER NOT NULL,
    created_at   REAL    NOT NULL,
    options      TEXT
);
INSERT INTO image_sources_new (id, url, filename, size, content_type, guild_id, user_id,
                               created_at, options)
    SELECT id, url, filename, size, content_type, guild_id, user_id, created_at, options
    FROM image_sources;
DROP TABLE image_sources;
ALTER TABLE image_sources_new RENAME TO image_sources;
CREATE INDEX image_sources_created ON image_sources (created_at);
