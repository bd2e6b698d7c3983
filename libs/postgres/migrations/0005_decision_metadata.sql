-- Decision metadata that fraud.v1.Decision now carries in fields instead of pseudo reasons
-- (INPUT_HASH, DEGRADED, ACCOUNT_WINDOW, SHADOW_SCORE): `reasons` keeps real reasons only, and
-- these columns keep what `scoring explain` needs to recompute a decision. Rows written before
-- this migration have NULL/empty here and their metadata in `reasons`; explain reads both.
ALTER TABLE decisions
    -- The account's decision window the rules saw; NULL when the windows were unavailable.
    ADD COLUMN account_window  jsonb,
    -- Matched allow/block entries: [{list, kind, reason, value_hash}], never the matched value.
    ADD COLUMN list_hits       jsonb NOT NULL DEFAULT '[]',
    -- What was unavailable for a degraded decision: 'model', 'decision_windows'.
    ADD COLUMN degraded_causes text[] NOT NULL DEFAULT '{}';
