-- Replicas remember misses too (`memo.rs`): what was looked up and not
-- found. So that a miss is forgotten when the thing comes to exist, what
-- creates a blob, an alias, a link, a name or an entry notifies
-- `larder_reads` as well, with the payloads of migration 0002 plus:
--   a<digest>                  a blob was recorded under digest <digest>
-- (A link's blob's other digests are notified with it: a miss looked up
-- by sha256 in a repository ends when the blob is mounted there.)
-- A replica answers a remembered miss only after catching up with these
-- (`catch_up.rs`).

CREATE FUNCTION larder_blob_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('larder_reads', 'b' || encode(NEW.id, 'hex'));
    RETURN NULL;
END $$;
CREATE TRIGGER blobs_added AFTER INSERT ON blobs
    FOR EACH ROW EXECUTE FUNCTION larder_blob_added();

CREATE FUNCTION larder_alias_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('larder_reads', 'a' || NEW.digest);
    RETURN NULL;
END $$;
CREATE TRIGGER blob_aliases_added AFTER INSERT ON blob_aliases
    FOR EACH ROW EXECUTE FUNCTION larder_alias_added();

CREATE FUNCTION larder_link_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('larder_reads', 'l' || encode(NEW.blob, 'hex') || NEW.scope);
    PERFORM pg_notify('larder_reads', 'a' || digest)
       FROM blob_aliases WHERE blob = NEW.blob;
    RETURN NULL;
END $$;
CREATE TRIGGER blob_links_added AFTER INSERT ON blob_links
    FOR EACH ROW EXECUTE FUNCTION larder_link_added();

CREATE FUNCTION larder_name_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('larder_reads',
        'n' || octet_length(NEW.scope) || ':' || NEW.scope || NEW.name);
    RETURN NULL;
END $$;
CREATE TRIGGER names_added AFTER INSERT ON names
    FOR EACH ROW EXECUTE FUNCTION larder_name_added();

CREATE FUNCTION larder_entry_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('larder_reads',
        'e' || NEW.protocol || ':' || octet_length(NEW.namespace) || ':'
            || NEW.namespace || NEW.name);
    RETURN NULL;
END $$;
CREATE TRIGGER entries_added AFTER INSERT ON entries
    FOR EACH ROW EXECUTE FUNCTION larder_entry_added();
