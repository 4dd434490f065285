-- goscaler schema, PostgreSQL. Times are unix milliseconds UTC (0: unset).

CREATE TABLE clusters (
    name       TEXT PRIMARY KEY,
    min_size   INTEGER NOT NULL,
    max_size   INTEGER NOT NULL,
    desired    INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE nodes (
    id              TEXT PRIMARY KEY,
    cluster         TEXT NOT NULL,
    state           TEXT NOT NULL,
    machine_id      TEXT NOT NULL DEFAULT '',
    address         TEXT NOT NULL DEFAULT '',
    launch_activity BIGINT NOT NULL DEFAULT 0,
    launch_index    INTEGER NOT NULL DEFAULT 0,
    maintenance     BOOLEAN NOT NULL DEFAULT FALSE,
    reason          TEXT NOT NULL DEFAULT '',
    meta            TEXT NOT NULL DEFAULT '{}',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    in_service_at   BIGINT NOT NULL DEFAULT 0,
    terminated_at   BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX nodes_launch ON nodes (launch_activity, launch_index) WHERE launch_activity <> 0;
CREATE INDEX nodes_cluster ON nodes (cluster, created_at);

CREATE TABLE node_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node_id    TEXT NOT NULL,
    at         BIGINT NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX node_events_node ON node_events (node_id, id);

CREATE TABLE node_seq (
    cluster TEXT PRIMARY KEY,
    seq     BIGINT NOT NULL
);

-- value is NULL for a failed reading (err set), or NaN.
CREATE TABLE samples (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster   TEXT NOT NULL,
    counter   TEXT NOT NULL,
    node      TEXT NOT NULL DEFAULT '',
    at        BIGINT NOT NULL,
    value     DOUBLE PRECISION,
    err       TEXT NOT NULL DEFAULT '',
    reporting INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX samples_cluster_counter_at ON samples (cluster, counter, at);
CREATE INDEX samples_at ON samples (at);

CREATE TABLE trigger_states (
    cluster        TEXT NOT NULL,
    trigger_name   TEXT NOT NULL,
    past_since     BIGINT NOT NULL DEFAULT 0,
    last_value     DOUBLE PRECISION, -- NULL: NaN
    last_fired_at  BIGINT NOT NULL DEFAULT 0,
    cooldown_until BIGINT NOT NULL DEFAULT 0,
    firings        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (cluster, trigger_name)
);

CREATE TABLE activities (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parent_id    BIGINT NOT NULL DEFAULT 0,
    cluster      TEXT NOT NULL DEFAULT '',
    node         TEXT NOT NULL DEFAULT '',
    trigger_name TEXT NOT NULL DEFAULT '',
    kind         TEXT NOT NULL DEFAULT '',
    cause        TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT '',
    step         INTEGER NOT NULL DEFAULT 0,
    params       TEXT NOT NULL DEFAULT '',
    output       TEXT NOT NULL DEFAULT '',
    error        TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    started_at   BIGINT NOT NULL DEFAULT 0,
    finished_at  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX activities_cluster ON activities (cluster, id);
CREATE INDEX activities_parent ON activities (parent_id);

CREATE TABLE servers (
    id           TEXT PRIMARY KEY,
    hostname     TEXT NOT NULL DEFAULT '',
    pid          INTEGER NOT NULL DEFAULT 0,
    started_at   BIGINT NOT NULL DEFAULT 0,
    heartbeat_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE leader_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    elected_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
