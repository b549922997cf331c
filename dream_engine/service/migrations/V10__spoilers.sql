-- Spoilers: a server may post every result as a spoiler (/dreamadmin spoiler on), and a
-- member one dream (/dream spoiler:true); the gallery and animations follow.
ALTER TABLE guild_settings ADD COLUMN spoiler INTEGER;        -- 1: on, 0: off, NULL: default
ALTER TABLE jobs ADD COLUMN spoiler INTEGER NOT NULL DEFAULT 0;  -- this job's files are spoilers
