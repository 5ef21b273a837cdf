-- Replicas keep what requests look up (blobs and the scopes linked to
-- them, tags, entries) in memory (`memo.rs`), and forget an item when the
-- database tells them it changed: these triggers notify channel
-- `larder_reads` in the transaction that changes a row, so every listening
-- replica hears of it as it commits. Only changes that can make a
-- remembered answer wrong notify: a new row cannot, since replicas
-- remember what exists, not what is missing; nor can the touch flush's
-- updates of use times and leases.
--
-- Payloads (parsed by `memo::Change::parse`):
--   b<blob id, hex>            a blob stopped being live
--   l<blob id, hex><scope>     a scope stopped seeing a blob
--   n<bytes>:<scope><name>     a name moved or went (<bytes>: the scope's length)
--   e<protocol>:<bytes>:<namespace><name>   an entry changed or went

CREATE FUNCTION larder_blob_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('larder_reads', 'b' || encode(OLD.id, 'hex'));
    RETURN NULL;
END $$;
CREATE TRIGGER blobs_changed AFTER DELETE ON blobs
    FOR EACH ROW EXECUTE FUNCTION larder_blob_changed();
CREATE TRIGGER blobs_state_changed AFTER UPDATE OF state ON blobs
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION larder_blob_changed();

CREATE FUNCTION larder_link_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('larder_reads', 'l' || encode(OLD.blob, 'hex') || OLD.scope);
    RETURN NULL;
END $$;
CREATE TRIGGER blob_links_changed AFTER DELETE ON blob_links
    FOR EACH ROW EXECUTE FUNCTION larder_link_changed();

CREATE FUNCTION larder_name_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('larder_reads',
        'n' || octet_length(OLD.scope) || ':' || OLD.scope || OLD.name);
    RETURN NULL;
END $$;
CREATE TRIGGER names_changed AFTER UPDATE OR DELETE ON names
    FOR EACH ROW EXECUTE FUNCTION larder_name_changed();

CREATE FUNCTION larder_entry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('larder_reads',
        'e' || OLD.protocol || ':' || octet_length(OLD.namespace) || ':'
            || OLD.namespace || OLD.name);
    RETURN NULL;
END $$;
-- An entry written again under its key is an update of these columns (its
-- pins and children are rewritten in the same transaction); the touch
-- flush sets only `last_used`, which is not among them.
CREATE TRIGGER entries_changed AFTER UPDATE OF content, size, created_at, meta ON entries
    FOR EACH ROW EXECUTE FUNCTION larder_entry_changed();
CREATE TRIGGER entries_removed AFTER DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION larder_entry_changed();
