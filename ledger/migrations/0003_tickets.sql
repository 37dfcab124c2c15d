-- Ended tickets, archived from Redis by the ledger writer (API.md §4): `GET /v1/tickets/{id}`
-- serves a ticket from here once it has left Redis, with the same fields. The customer's
-- context is not kept (only its agent ever saw it); the agent's note is.
CREATE TABLE tickets (
    namespace           TEXT        NOT NULL,
    ticket_id           TEXT        NOT NULL,
    conversation_id     TEXT        NOT NULL,
    status              TEXT        NOT NULL CHECK (status IN ('completed', 'cancelled')),
    priority            SMALLINT    NOT NULL,
    language            TEXT        NOT NULL,
    skills              JSONB       NOT NULL,
    region              TEXT,
    agent_id            TEXT,
    preferred_agent_id  TEXT,
    summary             TEXT        NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    assigned_at         TIMESTAMPTZ,
    completed_at        TIMESTAMPTZ,
    cancelled_at        TIMESTAMPTZ,
    outcome             TEXT,
    offers_made         INTEGER     NOT NULL,
    note                TEXT        NOT NULL DEFAULT '',
    archived_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, ticket_id)
);

CREATE INDEX tickets_by_creation ON tickets (namespace, created_at);
