-- Comparisons (/compare, /layers) and animations (/dream animate:true) are jobs too,
-- and must survive a restart like any other.
ALTER TABLE jobs ADD COLUMN variants TEXT NOT NULL DEFAULT '[]';  -- [[caption, params], ...]
ALTER TABLE jobs ADD COLUMN title    TEXT;                        -- a comparison's grid title
ALTER TABLE jobs ADD COLUMN animate  INTEGER NOT NULL DEFAULT 0;  -- also post a progression GIF
