-- Performance data: each series (a counter of a node, or the cluster
-- aggregate when node is '') gets an id; raw samples refer to it, and older
-- history is kept as rollups (count, errors, avg, min, max per bucket).
-- Agent reports hold each node agent's latest heartbeat and pushed counters.

CREATE TABLE series (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster TEXT NOT NULL,
    counter TEXT NOT NULL,
    node    TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX series_key ON series (cluster, counter, node);

DROP INDEX samples_cluster_counter_at;
DROP INDEX samples_at;
ALTER TABLE samples RENAME TO samples_0001;

-- value is NULL for a failed reading (err set), or NaN.
CREATE TABLE samples (
    id        INTEGER PRIMARY KEY,
    series_id BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    value     REAL,
    err       TEXT NOT NULL DEFAULT '',
    reporting INTEGER NOT NULL DEFAULT 0,
    expected  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX samples_series_at ON samples (series_id, at);
CREATE INDEX samples_at ON samples (at);

INSERT INTO series (cluster, counter, node)
    SELECT DISTINCT cluster, counter, node FROM samples_0001 ORDER BY cluster, counter, node;
INSERT INTO samples (series_id, at, value, err, reporting)
    SELECT se.id, o.at, o.value, o.err, o.reporting
    FROM samples_0001 o JOIN series se ON se.cluster = o.cluster AND se.counter = o.counter AND se.node = o.node
    ORDER BY o.id;
DROP TABLE samples_0001;

-- at is the bucket start, a multiple of step_ms; v_* are NULL when n is 0.
CREATE TABLE rollups (
    series_id BIGINT NOT NULL,
    step_ms   BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    n         INTEGER NOT NULL DEFAULT 0,
    errs      INTEGER NOT NULL DEFAULT 0,
    v_avg     REAL,
    v_min     REAL,
    v_max     REAL,
    last_err  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (series_id, step_ms, at)
) WITHOUT ROWID;
CREATE INDEX rollups_step_at ON rollups (step_ms, at);

CREATE TABLE agent_reports (
    node_id     TEXT PRIMARY KEY,
    cluster     TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    counters    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX agent_reports_received ON agent_reports (received_at);
