-- What /dream was asked with besides the preset (overrides, gallery, animate), kept for
-- the preset dropdown it answers with, so picking a preset does not drop them.
ALTER TABLE image_sources ADD COLUMN options TEXT;  -- JSON object, NULL: nothing asked
