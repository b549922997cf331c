-- The member's Discord locale ("de", "fr", "ja"...), kept with the job: a job outlives
-- the interaction that asked for it (it is resumed after a restart), and its messages
-- along the way (queued, dreaming, the result) are in the member's language.
ALTER TABLE jobs ADD COLUMN locale TEXT NOT NULL DEFAULT 'en-US';
