-- What every replica's admin API shows alike.

-- The last eviction passes that removed something (the leader's rounds and
-- those asked of any replica), as a single node lists its own. Trimmed to
-- the newest few as each is recorded (`evictions.rs`).
CREATE TABLE evictions (
    id      bigserial PRIMARY KEY,
    at      bigint NOT NULL,
    -- The admin API's report, as JSON.
    report  bytea NOT NULL
);

-- When a token was last used on any replica (Unix seconds; 0: never),
-- written with each replica's flush of its touches.
ALTER TABLE tokens ADD COLUMN last_used bigint NOT NULL DEFAULT 0;
