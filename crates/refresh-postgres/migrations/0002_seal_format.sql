-- Which associated data a row's tokens were sealed with. Format 1 (rows written before this migration) binds the
-- row's kind and credential id; format 2 binds the record's version too (an orphan's: the version it lost to), so
-- that an older ciphertext put back into a row does not open. A row is written in format 2 at its next write.
ALTER TABLE refresh_kit_credentials ADD COLUMN seal_format smallint NOT NULL DEFAULT 1;
ALTER TABLE refresh_kit_orphans ADD COLUMN seal_format smallint NOT NULL DEFAULT 1;
