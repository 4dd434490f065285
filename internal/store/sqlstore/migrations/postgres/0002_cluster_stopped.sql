-- A stopped cluster is kept at zero nodes until it is started again
-- (goscaler cluster stop / destroy / start).
ALTER TABLE clusters ADD COLUMN stopped BOOLEAN NOT NULL DEFAULT FALSE;
