-- Ingest: API keys of payment systems. Only a SHA-256 digest of each key is stored; the key
-- itself (vk_<key_id>_<secret>, 256 random bits of secret) is shown once, at creation.
CREATE TABLE ingest_api_keys (
    key_id         text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
    source         text NOT NULL CHECK (source ~ '^[A-Za-z0-9._-]{1,32}$'),
    key_hash       bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    -- Per-key token-bucket override in transactions per second; NULL means the service default.
    rate_per_sec   double precision CHECK (rate_per_sec > 0),
    rate_burst     int CHECK (rate_burst > 0)
);
CREATE INDEX ingest_api_keys_source_idx ON ingest_api_keys (source);
