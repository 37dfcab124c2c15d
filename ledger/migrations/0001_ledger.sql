-- The shift ledger: what each agent worked, kept for years.
-- Every table is keyed by namespace so deployments sharing a database never mix.

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE shifts (
    namespace          TEXT        NOT NULL,
    shift_id           TEXT        NOT NULL,
    agent_id           TEXT        NOT NULL,
    started_at         TIMESTAMPTZ NOT NULL,
    -- NULL while the shift runs.
    ended_at           TIMESTAMPTZ,
    -- requested, disconnected, removed, recovered (closed after every instance crashed).
    end_reason         TEXT,
    recovered          BOOLEAN     NOT NULL DEFAULT FALSE,
    hourly_rate_cents  BIGINT      NOT NULL CHECK (hourly_rate_cents >= 0),
    currency           TEXT        NOT NULL,
    timezone           TEXT        NOT NULL,
    last_seen_at       TIMESTAMPTZ NOT NULL,
    -- What the agent is doing now, to derive segments from the next event.
    status             TEXT        NOT NULL,
    active_tickets     INTEGER     NOT NULL DEFAULT 0 CHECK (active_tickets >= 0),
    PRIMARY KEY (namespace, shift_id),
    CHECK (ended_at IS NULL OR ended_at >= started_at),
    -- Two shifts of one agent can never overlap (an open shift runs to infinity).
    CONSTRAINT shifts_no_overlap EXCLUDE USING gist (
        namespace WITH =,
        agent_id WITH =,
        tstzrange(started_at, ended_at, '[)') WITH &&
    )
);

CREATE INDEX shifts_by_time ON shifts (namespace, started_at);
CREATE INDEX shifts_open ON shifts (namespace, agent_id) WHERE ended_at IS NULL;

CREATE TABLE shift_segments (
    namespace   TEXT        NOT NULL,
    shift_id    TEXT        NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    ended_at    TIMESTAMPTZ,
    kind        TEXT        NOT NULL CHECK (kind IN ('available', 'engaged', 'break')),
    PRIMARY KEY (namespace, shift_id, started_at),
    FOREIGN KEY (namespace, shift_id) REFERENCES shifts (namespace, shift_id) ON DELETE CASCADE,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);

CREATE TABLE ticket_completions (
    namespace     TEXT        NOT NULL,
    ticket_id     TEXT        NOT NULL,
    agent_id      TEXT        NOT NULL,
    shift_id      TEXT        NOT NULL,
    completed_at  TIMESTAMPTZ NOT NULL,
    outcome       TEXT        NOT NULL,
    PRIMARY KEY (namespace, ticket_id),
    FOREIGN KEY (namespace, shift_id) REFERENCES shifts (namespace, shift_id) ON DELETE CASCADE
);

CREATE INDEX completions_by_shift ON ticket_completions (namespace, shift_id, completed_at);

-- How far the event stream of each namespace has been applied: events at or before this id are
-- skipped, so replaying events changes nothing.
CREATE TABLE ledger_offsets (
    namespace  TEXT   PRIMARY KEY,
    last_ms    BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL
);
