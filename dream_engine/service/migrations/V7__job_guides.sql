-- /dream guide:<attachment>: a second image steers the dream. Kept with the job like the
-- upload (Discord's links expire), and dropped with it when the job ends.
ALTER TABLE jobs ADD COLUMN guide      BLOB;  -- the guide's bytes as uploaded; NULL: none
ALTER TABLE jobs ADD COLUMN guide_name TEXT;  -- its file name, for the result's embed
