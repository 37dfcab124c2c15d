-- Each shift remembers the last stream event applied to it, so that a replayed event (an
-- offset reset, a restore) is recognised and changes nothing.
ALTER TABLE shifts ADD COLUMN last_event_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE shifts ADD COLUMN last_event_seq BIGINT NOT NULL DEFAULT 0;

-- Events the database refused (a constraint), kept for an operator instead of stalling the
-- ledger: the writer records them here and goes on.
CREATE TABLE ledger_rejects (
    namespace    TEXT        NOT NULL,
    event_ms     BIGINT      NOT NULL,
    event_seq    BIGINT      NOT NULL,
    event        JSONB       NOT NULL,
    error        TEXT        NOT NULL,
    rejected_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, event_ms, event_seq)
);
