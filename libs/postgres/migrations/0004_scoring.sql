-- Scoring: versioned rules, the immutable rule sets decisions refer to, allow/block lists, and
-- what `scoring explain` needs on each decision.

-- One row per rule version; the active rule set is the newest version of each rule id.
-- Rows are never updated: a change is a new version, so old rule sets stay reproducible.
CREATE TABLE scoring_rules (
    rule_id     text NOT NULL,
    version     int NOT NULL CHECK (version >= 1),
    expression  text NOT NULL,
    action      text NOT NULL CHECK (action IN ('approve', 'review', 'decline')),
    reason_code text NOT NULL,
    priority    int NOT NULL DEFAULT 0,
    enabled     boolean NOT NULL DEFAULT true,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, version)
);

-- Every rule set a scorer has run, by its content hash (decisions.rule_set_version).
CREATE TABLE scoring_rule_sets (
    version    text PRIMARY KEY,
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE scoring_list_entries (
    list       text NOT NULL CHECK (list IN ('allow', 'block')),
    kind       text NOT NULL CHECK (kind IN ('account', 'card', 'terminal', 'device', 'ip', 'country')),
    value      text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (list, kind, value)
);
CREATE INDEX scoring_list_entries_expiry_idx ON scoring_list_entries (expires_at) WHERE expires_at IS NOT NULL;

-- The canonical inputs (deterministic protobuf of the enriched transaction) and their hash, so
-- explain can recompute a decision; degraded and shadow results for monitoring.
ALTER TABLE decisions
    ADD COLUMN input_hash           text NOT NULL DEFAULT '',
    ADD COLUMN input                bytea,
    ADD COLUMN degraded             boolean NOT NULL DEFAULT false,
    ADD COLUMN shadow_model_version text,
    ADD COLUMN shadow_score         double precision;
