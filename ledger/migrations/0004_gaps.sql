-- Events that left the stream before the ledger stored them (a backlog past the stream's cap,
-- or a Redis that lost its data): after which stored event, the first event still there after
-- them (lost_until, not lost), and when it was found. For operators and `/readyz`; the open shifts they affect are closed from the live
-- state, marked recovered.
CREATE TABLE IF NOT EXISTS ledger_gaps (
    namespace text NOT NULL,
    after_ms bigint NOT NULL,
    after_seq bigint NOT NULL,
    lost_until_ms bigint NOT NULL,
    lost_until_seq bigint NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, after_ms, after_seq)
);
