-- A stopped cluster is kept at zero nodes until it is started again
-- (goscaler cluster stop / destroy / start).
ALTER TABLE clusters ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;
