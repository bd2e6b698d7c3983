-- Decisions written by the scoring service's decision sink, exactly once per transaction.
CREATE TABLE decisions (
    decision_id            text PRIMARY KEY,
    transaction_id         text NOT NULL UNIQUE,
    account_id             text NOT NULL,
    action                 text NOT NULL CHECK (action IN ('approve', 'review', 'decline')),
    score                  double precision NOT NULL,
    reasons                jsonb NOT NULL DEFAULT '[]',
    model_version          text NOT NULL,
    rule_set_version       text NOT NULL,
    feature_schema_version text NOT NULL,
    review_threshold       double precision NOT NULL,
    decline_threshold      double precision NOT NULL,
    amount_minor           bigint NOT NULL,
    currency               text NOT NULL,
    features               jsonb NOT NULL DEFAULT '{}',
    received_at            timestamptz NOT NULL,
    decided_at             timestamptz NOT NULL,
    persisted_at           timestamptz NOT NULL DEFAULT now(),
    kafka_partition        int NOT NULL,
    kafka_offset           bigint NOT NULL
);
CREATE INDEX decisions_account_idx ON decisions (account_id, decided_at DESC);

-- Alerts raised by the alerting service for review and decline decisions; one per decision.
CREATE TABLE alerts (
    alert_id       text PRIMARY KEY,
    decision_id    text NOT NULL UNIQUE,
    transaction_id text NOT NULL,
    account_id     text NOT NULL,
    action         text NOT NULL CHECK (action IN ('review', 'decline')),
    score          double precision NOT NULL,
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_queue_idx ON alerts (status, created_at);

-- Kafka offsets of consumers whose effects live in Postgres: stored in the same transaction as
-- the effects, so a crash never applies a record twice or skips one.
CREATE TABLE kafka_offsets (
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   int NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);
