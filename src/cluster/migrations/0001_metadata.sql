-- The cluster's metadata (DESIGN.md §Scale-out): what the embedded index
-- keeps in sled, as tables. Times are Unix milliseconds, as in the index.

-- Replicas record that they are alive; `larder cluster status` reads this.
CREATE TABLE larder_replicas (
    id          text PRIMARY KEY,
    version     text NOT NULL,
    address     text NOT NULL,
    started_at  timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL
);

-- A blob is visible once its object is written and verified. GC marks it
-- `deleting` in a transaction before it deletes the object; an entry write
-- locks the blobs it pins and requires them `live`, so the two serialize.
CREATE TABLE blobs (
    id          bytea PRIMARY KEY CHECK (length(id) = 32),
    size        bigint NOT NULL CHECK (size >= 0),
    state       text NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'deleting')),
    created_at  bigint NOT NULL,
    touched_at  bigint NOT NULL,
    -- Writing, HEAD or GET of a blob leases it (to `lease_until`) until an
    -- entry pins it: the lease holds while `touched_at > pinned_at`, as a
    -- single node's write leases do, so a pinned blob whose entry is
    -- evicted is not kept for a lease period it no longer needs.
    pinned_at   bigint NOT NULL DEFAULT 0,
    lease_until bigint NOT NULL DEFAULT 0,
    -- When an entry last stopped pinning it, by the database's clock (see
    -- the trigger below).
    released_at bigint NOT NULL DEFAULT 0
);

-- What the recorded blobs take, kept in the transactions that record and
-- forget them: the hard limit is checked against it there, and the leader
-- reads it without summing every row.
CREATE TABLE usage (
    id     smallint PRIMARY KEY CHECK (id = 1),
    bytes  bigint NOT NULL CHECK (bytes >= 0),
    blobs  bigint NOT NULL CHECK (blobs >= 0)
);
INSERT INTO usage (id, bytes, blobs) VALUES (1, 0, 0);

-- Other digests of a blob (sha256:…) that clients address it by.
CREATE TABLE blob_aliases (
    digest  text PRIMARY KEY,
    blob    bytea NOT NULL REFERENCES blobs ON DELETE CASCADE
);
CREATE INDEX blob_aliases_blob ON blob_aliases (blob);

-- A read lease holds a blob until `until_ms` (reads of an entry lease its
-- pins, whether or not an entry still pins them).
CREATE TABLE leases (
    blob      bytea PRIMARY KEY REFERENCES blobs ON DELETE CASCADE,
    until_ms  bigint NOT NULL
);

CREATE TABLE entries (
    id          bigserial PRIMARY KEY,
    protocol    text NOT NULL,
    namespace   text NOT NULL,
    name        text NOT NULL,
    content     bytea NOT NULL REFERENCES blobs,
    size        bigint NOT NULL CHECK (size >= 0),
    created_at  bigint NOT NULL,
    last_used   bigint NOT NULL,
    meta        bytea NOT NULL,
    UNIQUE (protocol, namespace, name)
);
CREATE INDEX entries_lru ON entries (last_used, id);
CREATE INDEX entries_namespace ON entries (namespace);

CREATE TABLE entry_pins (
    entry  bigint NOT NULL REFERENCES entries ON DELETE CASCADE,
    blob   bytea NOT NULL REFERENCES blobs,
    PRIMARY KEY (entry, blob)
);
CREATE INDEX entry_pins_blob ON entry_pins (blob);

-- A read of an entry on another replica leases its pins in that replica's
-- memory until its next flush. So that such a lease has landed before the
-- blob can go, a blob is collectable only once its last pin has been gone
-- for a while; every way an entry is deleted or replaced goes through
-- here. The database's clock, so that the wait does not depend on the
-- replicas' clocks agreeing with it.
CREATE FUNCTION larder_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS
    $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
CREATE FUNCTION larder_released() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE blobs SET released_at = larder_now_ms() WHERE id = OLD.blob;
    RETURN NULL;
END $$;
CREATE TRIGGER entry_pins_released AFTER DELETE ON entry_pins
    FOR EACH ROW EXECUTE FUNCTION larder_released();

-- Entries an entry needs (an OCI index's manifests): a child is not evicted
-- while a parent exists, and removing a child removes its parents.
CREATE TABLE entry_children (
    parent     bigint NOT NULL REFERENCES entries ON DELETE CASCADE,
    protocol   text NOT NULL,
    namespace  text NOT NULL,
    name       text NOT NULL,
    PRIMARY KEY (parent, protocol, namespace, name)
);
CREATE INDEX entry_children_child ON entry_children (protocol, namespace, name);

-- Tags and other names within a scope (an OCI repository, a GHA scope),
-- each pointing at an entry and gone with it.
CREATE TABLE names (
    scope  text NOT NULL,
    name   text NOT NULL,
    entry  bigint NOT NULL REFERENCES entries ON DELETE CASCADE,
    PRIMARY KEY (scope, name)
);
CREATE INDEX names_entry ON names (entry);

-- Which scopes (repositories) a blob was pushed to or mounted into: an
-- OCI repository sees only these.
CREATE TABLE blob_links (
    blob   bytea NOT NULL REFERENCES blobs ON DELETE CASCADE,
    scope  text NOT NULL,
    PRIMARY KEY (blob, scope)
);

-- Multi-request uploads (OCI chunked, GHA v1 chunks, GHA v2 blocks): each
-- part is an object under uploads/<id>/, so any replica can continue one.
-- A reservation (GHA: one writer per cache key at a time) is an upload
-- with `reserved` set, at most one per scope however many replicas race to
-- open it; its id comes from `reservation_numbers`, so ids stay numbers.
CREATE TABLE uploads (
    id          text PRIMARY KEY,
    scope       text NOT NULL,
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL,
    size        bigint,
    reserved    boolean NOT NULL DEFAULT false,
    meta        bytea NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX uploads_one_reservation ON uploads (scope) WHERE reserved;
-- Below 2^53: JavaScript clients hold reservation ids as JSON numbers.
CREATE SEQUENCE reservation_numbers MAXVALUE 9007199254740991;
-- `object` is the part's key under uploads/<id>/: its offset for a chunk,
-- or the block it was assembled from (blocks are never overwritten).
CREATE TABLE upload_parts (
    upload  text NOT NULL REFERENCES uploads ON DELETE CASCADE,
    "offset" bigint NOT NULL CHECK ("offset" >= 0),
    size    bigint NOT NULL CHECK (size >= 0),
    object  text NOT NULL,
    PRIMARY KEY (upload, "offset")
);

-- Named blocks (GHA v2, Azure-style) staged for an upload, joined in the
-- order the commit lists them; staging a name again replaces the block.
-- Each staging writes a new `object` (under uploads/<id>/), so a part
-- assembled from a block keeps its bytes when the name is staged again.
CREATE TABLE upload_blocks (
    upload  text NOT NULL REFERENCES uploads ON DELETE CASCADE,
    name    text NOT NULL,
    size    bigint NOT NULL CHECK (size >= 0),
    object  text NOT NULL,
    PRIMARY KEY (upload, name)
);

-- What every replica must share, as the token signing key (`secrets.rs`).
CREATE TABLE secrets (
    name   text PRIMARY KEY,
    value  bytea NOT NULL
);

CREATE TABLE tokens (
    jti   text PRIMARY KEY,
    meta  bytea NOT NULL
);
-- Revoked token ids; `until_s` is when the token would have expired anyway
-- (Unix seconds), after which the row can go. Replicas keep the set in
-- memory and fetch what was revoked since their last look.
CREATE TABLE revocations (
    jti         text PRIMARY KEY,
    revoked_at  bigint NOT NULL,
    until_s     bigint NOT NULL
);
CREATE INDEX revocations_revoked_at ON revocations (revoked_at);
