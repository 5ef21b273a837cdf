//! `ClusterStore`'s side of the `Store` surface, across replicas on one real
//! PostgreSQL and one real S3-protocol server: repository links, GHA
//! reservations (staged on one replica, sealed on another), an OCI
//! session's state, listings and purges, tokens, and touches.

mod cluster_support;
mod common;

use bytes::Bytes;
use futures_util::{stream, TryStreamExt};
use larder::cache::{reservation_number, BlobInfo, BlobWrite, EntryOrder};
use larder::cas::Digest;
use larder::cluster::store::ClusterStore;
use larder::cluster::{pg, ClusterError};
use larder::index::{EntryKey, EntryRecord, Protocol};
use sha2::Digest as _;

use cluster_support::{sha256, Postgres, S3Server};

/// Three replicas' stores (dropped with their tiers' temp dirs).
async fn stores(db: &Postgres, s3: &S3Server) -> Vec<(ClusterStore, tempfile::TempDir)> {
    s3.create_bucket("larder").await;
    cluster_support::cluster_stores(db, s3, 3, 1 << 20, u64::MAX).await
}

fn body(data: &[u8]) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let pieces: Vec<_> = data
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(pieces)
}

async fn read(store: &ClusterStore, blob: &BlobInfo) -> Vec<u8> {
    let stream = store.read_blob(blob, 0, blob.size).await.unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

async fn push(store: &ClusterStore, data: &[u8], scope: Option<&str>) -> BlobInfo {
    let write = BlobWrite {
        expected: Some(sha256(data)),
        limit: 1 << 20,
        scope,
        size_hint: Some(data.len() as u64),
    };
    store.put_blob(body(data), write).await.unwrap()
}

async fn stage(
    s: &ClusterStore,
    scope: &str,
    id: &str,
    name: &str,
    data: &[u8],
) -> Result<(), ClusterError> {
    s.stage_part(scope, id, name, data.len() as u64, body(data), 1 << 20)
        .await
}

async fn chunk(
    s: &ClusterStore,
    scope: &str,
    id: &str,
    at: u64,
    data: &[u8],
) -> Result<(), ClusterError> {
    s.stage_chunk(scope, id, at, data.len() as u64, body(data), 1 << 20)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_made_on_one_replica_is_what_the_others_see() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3).await;
    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);
    let layer = b"a layer";
    let pushed = push(a, layer, Some("team/app")).await;
    assert_eq!(pushed.sha256_digest(), sha256(layer));

    assert_eq!(b.blob(&sha256(layer)).await.unwrap(), Some(pushed));
    let by_blake3 = Digest::Blake3(pushed.id.0);
    assert_eq!(c.blob(&by_blake3).await.unwrap(), Some(pushed));
    assert_eq!(
        b.blob_in("team/app", &by_blake3).await.unwrap(),
        Some(pushed)
    );
    assert_eq!(b.blob_in("team/web", &sha256(layer)).await.unwrap(), None);

    // A cross-repository mount through A, seen through C; unmounted
    // through B, gone for A.
    a.link_blob("team/web", &pushed).await.unwrap();
    a.link_blob("team/web", &pushed).await.unwrap();
    assert_eq!(
        c.blob_in("team/web", &sha256(layer)).await.unwrap(),
        Some(pushed)
    );
    assert!(b.unlink_blob("team/web", &pushed).await.unwrap());
    assert!(!b.unlink_blob("team/web", &pushed).await.unwrap());
    assert_eq!(a.blob_in("team/web", &sha256(layer)).await.unwrap(), None);
    assert_eq!(
        a.blob_in("team/app", &sha256(layer)).await.unwrap(),
        Some(pushed)
    );

    // A blob that is not stored cannot be mounted.
    let ghost = BlobInfo {
        id: larder::cas::ContentId([7; 32]),
        ..pushed
    };
    let err = a.link_blob("team/web", &ghost).await.unwrap_err();
    assert!(
        matches!(err, ClusterError::MissingBlobs(ref m) if m == &[ghost.id]),
        "{err}"
    );

    // Checked against a sha512, a blob is found by it too.
    let data = b"npm tarball";
    let sha512 = format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)));
    let sha512: Digest = sha512.parse().unwrap();
    let write = BlobWrite {
        expected: Some(sha512.clone()),
        limit: 1 << 20,
        scope: None,
        size_hint: None,
    };
    let blob = a.put_blob(body(data), write).await.unwrap();
    assert_eq!(b.blob(&sha512).await.unwrap(), Some(blob));
    assert_eq!(b.blob_in("team/app", &sha512).await.unwrap(), None);
    // Over the limit the caller gives, refused before a byte is read.
    let write = BlobWrite {
        limit: 3,
        size_hint: Some(4),
        ..BlobWrite::default()
    };
    let err = a.put_blob(body(b"four"), write).await.unwrap_err();
    assert!(matches!(err, ClusterError::Content(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_to_reserve_a_scope_get_one_reservation() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3).await;
    let scope = "gha:ci/linux-cargo";
    let attempts = (0..12).map(|i| r[i % 3].0.reserve_upload(scope, Some(42)));
    let got: Vec<_> = futures_util::future::join_all(attempts).await;
    let won: Vec<_> = got.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(won.len(), 1, "{won:?}");
    let id = won[0].id.clone();
    assert!(reservation_number(&id).is_some(), "a numbered id: {id}");
    assert_eq!(won[0].len, 0);

    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);
    assert_eq!(
        b.reserved_upload(scope).await.unwrap().as_deref(),
        Some(&*id)
    );
    assert_eq!(c.upload_owner(&id).await.unwrap().as_deref(), Some(scope));
    assert_eq!(a.reserved_size(&id).await.unwrap(), Some(42));
    let other = c.reserve_upload("gha:ci/other", None).await.unwrap();
    let other = other.expect("another scope has its own");
    assert_ne!(other.id, id);
    assert_eq!(b.reserved_size(&other.id).await.unwrap(), None);
    assert_eq!(
        a.upload_owner("00000000000000000000000000000000")
            .await
            .unwrap(),
        None
    );

    // Only the owner cancels it; then the scope can be reserved again.
    let err = b.cancel_upload("gha:ci/other", &id).await.unwrap_err();
    assert!(matches!(err, ClusterError::UploadUnknown(_)), "{err}");
    b.cancel_upload(scope, &id).await.unwrap();
    assert_eq!(a.reserved_upload(scope).await.unwrap(), None);
    assert_eq!(a.upload_owner(&id).await.unwrap(), None);
    let again = c.reserve_upload(scope, None).await.unwrap().expect("free");
    assert_ne!(again.id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_staged_on_two_replicas_are_assembled_and_sealed_on_a_third() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3).await;
    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);
    let scope = "gha:ci/key";
    let id = a.reserve_upload(scope, None).await.unwrap().unwrap().id;
    let stage = |s, name, data| stage(s, scope, &id, name, data);
    stage(b, "QkJC", b"stale").await.unwrap();
    stage(a, "QUFB", b"first ").await.unwrap();
    stage(b, "QkJC", b"second ").await.unwrap();
    stage(a, "Q0ND", b"third").await.unwrap();
    let err = stage(a, "", b"x").await.unwrap_err();
    assert!(matches!(err, ClusterError::Content(_)), "{err}");
    let err = a
        .stage_part(scope, &id, "QUFB", 9, body(b"short"), 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClusterError::Content(_)),
        "a short part: {err}"
    );
    let err = a
        .stage_part("gha:ci/elsewhere", &id, "QUFB", 1, body(b"x"), 1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::UploadUnknown(_)), "{err}");

    let order: Vec<String> = ["QUFB", "QkJC", "Q0ND"].map(String::from).to_vec();
    let missing = [order.clone(), vec!["RERE".into()]].concat();
    let err = c
        .assemble_parts(scope, &id, &missing, 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClusterError::PartUnknown(ref p) if p == "RERE"),
        "{err}"
    );
    let err = c.assemble_parts(scope, &id, &order, 10).await.unwrap_err();
    assert!(
        matches!(err, ClusterError::Content(_)),
        "over the limit: {err}"
    );
    assert_eq!(
        a.upload(scope, &id).await.unwrap().len,
        0,
        "nothing changed"
    );

    let whole = b"first second third";
    let state = c.assemble_parts(scope, &id, &order, 1 << 20).await.unwrap();
    assert_eq!((state.len, &*state.id), (whole.len() as u64, &*id));
    // Staging a name again after the assembly leaves the assembled bytes.
    stage(b, "QUFB", b"FIRST ").await.unwrap();
    let err = b.seal_upload(scope, &id, 3).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClusterError::UploadLength {
                len: 18,
                expected: 3
            }
        ),
        "{err}"
    );
    let blob = c.seal_upload(scope, &id, whole.len() as u64).await.unwrap();
    assert_eq!(blob.size, whole.len() as u64);
    assert_eq!(read(a, &blob).await, whole);
    assert_eq!(
        b.reserved_upload(scope).await.unwrap(),
        None,
        "sealed, gone"
    );
    let err = a.upload(scope, &id).await.unwrap_err();
    assert!(matches!(err, ClusterError::UploadUnknown(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_body_replaces_the_content_and_a_short_one_leaves_none() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3).await;
    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);
    let scope = "gha:ci/whole";
    let id = a.reserve_upload(scope, None).await.unwrap().unwrap().id;
    // Over one staged part's size, so it lands as two.
    let archive: Vec<u8> = (0..(9 << 20) as u32).map(|i| (i % 241) as u8).collect();
    let len = archive.len() as u64;
    let big = stream::iter(
        archive
            .chunks(1 << 20)
            .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let state = b
        .replace_upload(scope, &id, len, big, 64 << 20)
        .await
        .unwrap();
    assert_eq!(state.len, len);
    assert_eq!(c.upload(scope, &id).await.unwrap().len, len);

    let err = a
        .replace_upload(scope, &id, 10, body(b"short"), 1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Content(_)), "{err}");
    assert_eq!(c.upload(scope, &id).await.unwrap().len, 0, "emptied");
    let err = a
        .replace_upload(scope, &id, 10, body(b"0123456789"), 9)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClusterError::Content(_)),
        "over the limit: {err}"
    );

    let state = a
        .replace_upload(scope, &id, 10, body(b"0123456789"), 1 << 20)
        .await
        .unwrap();
    assert_eq!(state.len, 10);
    let blob = c.seal_upload(scope, &id, 10).await.unwrap();
    assert_eq!(read(b, &blob).await, b"0123456789");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_at_offsets_on_two_replicas_commit_in_offset_order() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3).await;
    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);
    let scope = "gha:ci/v1";
    let id = a.reserve_upload(scope, Some(12)).await.unwrap().unwrap().id;
    let chunk = |s, at, data| chunk(s, scope, &id, at, data);
    chunk(b, 8, b"ijkl").await.unwrap();
    chunk(a, 0, b"abcd").await.unwrap();
    let err = c
        .assemble_chunks(scope, &id, 12, 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClusterError::UploadGap { missing_at: 4 }),
        "{err}"
    );
    chunk(a, 4, b"efgh").await.unwrap();
    let err = c
        .assemble_chunks(scope, &id, 13, 1 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClusterError::UploadLength {
                len: 12,
                expected: 13
            }
        ),
        "{err}"
    );
    let err = chunk(a, 1 << 20, b"x").await.unwrap_err();
    assert!(
        matches!(err, ClusterError::Content(_)),
        "past the limit: {err}"
    );
    c.assemble_chunks(scope, &id, 12, 1 << 20).await.unwrap();
    let blob = b.seal_upload(scope, &id, 12).await.unwrap();
    assert_eq!(read(a, &blob).await, b"abcdefghijkl");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oci_session_shows_its_length_to_its_own_repository_only() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3).await;
    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);
    let id = a.create_upload("team/app").await.unwrap().id;
    assert_eq!(c.upload("team/app", &id).await.unwrap().len, 0);
    let appended = b
        .append_upload("team/app", &id, Some(0), body(b"12345"), 1 << 20)
        .await
        .unwrap();
    assert_eq!(appended.len, 5);
    let state = c.upload("team/app", &id).await.unwrap();
    assert_eq!(
        (&*state.id, &*state.scope, state.len),
        (&*id, "team/app", 5)
    );
    let other = "0".repeat(32);
    for (scope, id) in [("team/web", id.as_str()), ("team/app", &other)] {
        let err = c.upload(scope, id).await.unwrap_err();
        assert!(
            matches!(err, ClusterError::UploadUnknown(ref u) if u == id),
            "{err}"
        );
    }
}

fn http_key(namespace: &str, name: &str) -> EntryKey {
    EntryKey {
        protocol: Protocol::Http,
        namespace: namespace.into(),
        name: name.into(),
    }
}

async fn put(store: &ClusterStore, key: EntryKey, children: Vec<EntryKey>) -> EntryRecord {
    let value = Bytes::from(format!("value of {}", key.name));
    let write = BlobWrite {
        limit: 1 << 20,
        ..BlobWrite::default()
    };
    let make = move |blob: &BlobInfo| {
        let mut e = cluster_support::entry(
            key.protocol,
            &key.namespace,
            &key.name,
            blob.id,
            blob.size,
            &[blob.id],
        );
        e.children = children;
        e
    };
    let (_, rec) = (store.put_entry_with_content(value, write, make, None))
        .await
        .unwrap();
    rec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_and_purges_agree_on_every_replica() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let mut r = stores(&db, &s3).await;
    r[1].0.quotas.insert("reserved-ns".into(), 1 << 30);
    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);
    let b1 = put(a, http_key("ci", "b/1"), vec![]).await;
    let a2 = put(a, http_key("ci", "a/2"), vec![]).await;
    let a1 = put(b, http_key("ci", "a/1"), vec![]).await;
    let other = put(c, http_key("other", "a/9"), vec![http_key("ci", "a/1")]).await;

    let names = |rs: Vec<EntryRecord>| rs.into_iter().map(|e| e.key.name).collect::<Vec<_>>();
    let found = b
        .entries_with_prefix(Protocol::Http, "ci", "a/")
        .await
        .unwrap();
    assert_eq!(names(found), ["a/1", "a/2"]);
    let one = c
        .entries_with_prefix_limit(Protocol::Http, "ci", "", 1)
        .await
        .unwrap();
    assert_eq!(names(one), ["a/1"]);
    assert!(a
        .entries_with_prefix(Protocol::Npm, "ci", "")
        .await
        .unwrap()
        .is_empty());
    let all = c.entry_names(Protocol::Http).await.unwrap();
    let want = [
        ("ci", "a/1"),
        ("ci", "a/2"),
        ("ci", "b/1"),
        ("other", "a/9"),
    ];
    assert_eq!(all, want.map(|(n, e)| (n.to_string(), e.to_string())));
    let counts = a.entry_counts().await.unwrap();
    assert_eq!(counts.len(), Protocol::ALL.len());
    assert!(counts.contains(&(Protocol::Http, 4)));
    assert!(counts.contains(&(Protocol::Oci, 0)));
    assert_eq!(
        c.entry_by_id(a2.id).await.unwrap().map(|e| e.key),
        Some(a2.key.clone())
    );
    assert_eq!(c.entry_by_id(u64::MAX).await.unwrap(), None);

    assert_eq!(
        b.namespace_names().await.unwrap(),
        ["ci", "other", "reserved-ns"]
    );
    assert_eq!(a.namespace_names().await.unwrap(), ["ci", "other"]);
    let spaces = b.namespaces().await.unwrap();
    let ci = spaces.iter().find(|n| n.name == "ci").expect("ci");
    assert_eq!(ci.entries, 3);
    assert_eq!(
        spaces.last().map(|n| (&*n.name, n.quota)),
        Some(("reserved-ns", Some(1 << 30)))
    );

    // Pages by size, largest first; the cursor continues where one ended.
    let page = a
        .list_entries(Some("ci"), None, None, EntryOrder::Size, 2, None)
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 2);
    let rest = c
        .list_entries(
            Some("ci"),
            None,
            None,
            EntryOrder::Size,
            2,
            page.next.as_deref(),
        )
        .await
        .unwrap();
    assert_eq!((rest.entries.len(), rest.next), (1, None));
    let filtered = b
        .list_entries(
            None,
            Some(Protocol::Http),
            Some("a/"),
            EntryOrder::Lru,
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(filtered.entries.len(), 3);

    // Removing a/1 by id takes the entry that needs it too, on every replica.
    let removed = b.remove_entry(a1.id).await.unwrap();
    let mut gone: Vec<_> = removed.iter().map(|e| (e.id, e.pins.len())).collect();
    gone.sort_unstable();
    assert_eq!(gone, [(a1.id, 1), (other.id, 1)]);
    assert!(c.entry_by_id(other.id).await.unwrap().is_none());
    assert!(b.remove_entry(a1.id).await.unwrap().is_empty());

    assert_eq!(a.purge_namespace("ci").await.unwrap(), 2);
    assert!(b.entry_by_id(b1.id).await.unwrap().is_none());
    assert!(c
        .entries_with_prefix(Protocol::Http, "ci", "")
        .await
        .unwrap()
        .is_empty());
    assert!(c.entry_counts().await.unwrap().iter().all(|(_, n)| *n == 0));
    assert_eq!(a.purge_namespace("ci").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_replica_is_refused_there_at_once_and_elsewhere_after_a_refresh() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3).await;
    let (a, b, c) = (&r[0].0, &r[1].0, &r[2].0);
    let meta = serde_json::json!({"jti": "t1", "sub": "ci"});
    a.record_token("t1", &meta).await.unwrap();
    a.record_token("t2", &serde_json::json!({"jti": "t2"}))
        .await
        .unwrap();
    assert_eq!(b.tokens().await.unwrap().len(), 2);
    assert_eq!(c.token_meta("t1").await.unwrap(), Some(meta));
    assert_eq!(c.token_meta("t3").await.unwrap(), None);

    // A use seen by one replica is every replica's last use once flushed.
    b.touches.token_used("t2", 1_700_000_000);
    b.touches.token_used("t2", 1_600_000_000);
    b.flush_touches().await.unwrap();
    let listed = c.tokens().await.unwrap();
    let last_used = |jti: &str| {
        let t = listed.iter().find(|t| t["jti"] == jti).expect(jti);
        t.get("last_used").cloned()
    };
    assert_eq!(last_used("t2"), Some(serde_json::json!(1_700_000_000)));
    assert_eq!(last_used("t1"), None, "never used");

    b.revoke_token("t1", 4_000_000_000).await.unwrap();
    assert!(
        b.token_revoked("t1").unwrap(),
        "at once where it was revoked"
    );
    assert!(
        !a.token_revoked("t1").unwrap(),
        "elsewhere, from the next refresh"
    );
    assert_eq!(a.refresh_revocations().await.unwrap(), 1);
    assert!(a.token_revoked("t1").unwrap());
    assert!(!a.token_revoked("t2").unwrap());
    let marked = c.token_meta("t1").await.unwrap().expect("meta");
    assert_eq!(marked["revoked"], serde_json::Value::Bool(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touches_reach_the_database_with_the_next_flush() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    let r = stores(&db, &s3).await;
    let (a, b) = (&r[0].0, &r[1].0);
    let rec = put(a, http_key("ci", "x"), vec![]).await;
    let blob = push(a, b"a checked layer", None).await;
    let settings = pg::settings(&db.config(), "t").unwrap();
    let sql = pg::connect(&settings).await.unwrap();
    sql.execute("UPDATE entries SET last_used = 1", &[])
        .await
        .unwrap();
    sql.execute("DELETE FROM leases", &[]).await.unwrap();
    // As if the pushed blob had been pinned and its write lease ended.
    sql.execute("UPDATE blobs SET lease_until = 0", &[])
        .await
        .unwrap();

    // Before the touches: a touch records its own clock reading, which may
    // fall in an earlier millisecond than one read after it.
    let touched_from = larder::cache::now_ms();
    b.touch_entry(&rec);
    b.touch_blob(&blob);
    // A read of an entry leases its pins; a HEAD or GET of a blob is a
    // write lease, until an entry pins it.
    let read_leased = "SELECT count(*) FROM leases WHERE blob = $1 AND until_ms > $2";
    let write_leased = "SELECT count(*) FROM blobs
                         WHERE id = $1 AND lease_until > $2 AND touched_at > pinned_at";
    let now = larder::cache::now_ms() as i64;
    let count = |sql_text: &'static str, id: Vec<u8>| {
        let sql = &sql;
        async move {
            sql.query_one(sql_text, &[&id, &now])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(
        count(read_leased, rec.content.0.to_vec()).await,
        0,
        "nothing before the flush"
    );
    assert_eq!(
        count(write_leased, blob.id.0.to_vec()).await,
        0,
        "nothing before the flush"
    );
    b.flush_touches().await.unwrap();
    assert_eq!(
        count(read_leased, rec.content.0.to_vec()).await,
        1,
        "the entry's pin is leased"
    );
    assert_eq!(
        count(write_leased, blob.id.0.to_vec()).await,
        1,
        "the checked blob is leased"
    );
    let used = a.entry_by_id(rec.id).await.unwrap().unwrap().last_used;
    assert!(
        used >= touched_from,
        "last used {used}, touched at {touched_from} or later"
    );
}
