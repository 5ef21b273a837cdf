-- The last eviction passes that removed something (the leader's rounds and
-- those asked of any replica), so that every replica's admin API shows
-- them, as a single node shows its own. Trimmed to the newest few as each
-- is recorded (`evictions.rs`).
CREATE TABLE evictions (
    id      bigserial PRIMARY KEY,
    at      bigint NOT NULL,
    -- The admin API's report, as JSON.
    report  bytea NOT NULL
);
