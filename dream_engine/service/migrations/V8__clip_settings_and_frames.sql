-- Moving dreams (zooms, clips). A server's limits on one of them (NULL: the default)...
ALTER TABLE guild_settings ADD COLUMN clip_frames     INTEGER;  -- frames of a clip or zoom
ALTER TABLE guild_settings ADD COLUMN clip_seconds    INTEGER;  -- seconds of a clip uploaded
ALTER TABLE guild_settings ADD COLUMN clip_megapixels INTEGER;  -- million pixels, all frames

-- ...a job's motion (a MotionSpec as JSON; NULL: a still dream)...
ALTER TABLE jobs ADD COLUMN motion TEXT;

-- ...and the frames it has finished, so a restart goes on after them. Dropped with the
-- job's upload when it ends.
CREATE TABLE job_frames (
    job_id TEXT    NOT NULL,
    number INTEGER NOT NULL,  -- 1-based
    png    BLOB    NOT NULL,
    PRIMARY KEY (job_id, number)
) WITHOUT ROWID;
