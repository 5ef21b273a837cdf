//! The replica's memo of lookups on a real PostgreSQL and S3-protocol
//! server: what one replica changes (a tag moved, an entry written again
//! or removed, a blob unlinked or collected) another forgets as the
//! database announces it, and only that; a replica that stops hearing the
//! database answers nothing from memory. A miss one replica remembers is
//! not answered once another has created what was missing, however soon
//! after it is asked.

mod cluster_support;
mod common;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use larder::cache::{BlobInfo, BlobWrite};
use larder::cas::Digest;
use larder::cluster::memo::Known;
use larder::cluster::store::ClusterStore;
use larder::cluster::{listen, pg};
use larder::index::{EntryKey, EntryRecord, Protocol};
use tokio::sync::watch;

use cluster_support::{sha256, until, Postgres, S3Server};

/// A scope and tag whose bytes need care where a notification is split.
const SCOPE: &str = "team/ü:app";

fn key(name: &str) -> EntryKey {
    EntryKey {
        protocol: Protocol::Oci,
        namespace: SCOPE.into(),
        name: name.into(),
    }
}

async fn push(store: &ClusterStore, data: &[u8]) -> BlobInfo {
    let write = BlobWrite {
        expected: Some(sha256(data)),
        limit: 1 << 20,
        scope: Some(SCOPE),
        size_hint: Some(data.len() as u64),
    };
    let body = stream::iter([Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]);
    store.put_blob(body, write).await.unwrap()
}

/// Writes entry `name` pinning `layer`, with `value` as content, and
/// points `tag` at it.
async fn manifest(
    store: &ClusterStore,
    name: &str,
    tag: &str,
    value: &str,
    layer: &BlobInfo,
) -> EntryRecord {
    let write = BlobWrite {
        limit: 1 << 20,
        scope: Some(SCOPE),
        ..BlobWrite::default()
    };
    let (k, layer) = (key(name), layer.id);
    let make = move |blob: &BlobInfo| {
        let pins = [blob.id, layer];
        cluster_support::entry(k.protocol, &k.namespace, &k.name, blob.id, blob.size, &pins)
    };
    let content = Bytes::from(value.to_string());
    let (_, rec) = (store.put_entry_with_content(content, write, make, Some((SCOPE, tag))))
        .await
        .unwrap();
    rec
}

/// Starts `store` hearing the database as `application`; returns the
/// stop signal and the listening task.
async fn hear(
    db: &Postgres,
    store: &Arc<ClusterStore>,
    application: &str,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), String>>,
) {
    let settings = pg::settings(&db.config(), application).unwrap();
    let (stop, stopped) = watch::channel(false);
    let s = store.clone();
    let task = tokio::spawn(async move { listen::listen(&settings, &s.memo, stopped).await });
    until("the replica hears the database", || async {
        store.memo.is_hearing()
    })
    .await;
    (stop, task)
}

/// Replica A, and replica B hearing the database as "memo-b".
struct Pair {
    db: Postgres,
    a: ClusterStore,
    b: Arc<ClusterStore>,
    stop: watch::Sender<bool>,
    listening: tokio::task::JoinHandle<Result<(), String>>,
    _s3: S3Server,
    _dirs: Vec<tempfile::TempDir>,
}

impl Pair {
    async fn start() -> Option<Pair> {
        let db = Postgres::start()?;
        let s3 = S3Server::start()?;
        s3.create_bucket("larder").await;
        let r = cluster_support::cluster_stores(&db, &s3, 2, 1 << 20, u64::MAX).await;
        let (mut stores, dirs): (Vec<_>, Vec<_>) = r.into_iter().unzip();
        let b = Arc::new(stores.pop()?);
        let a = stores.pop()?;
        let (stop, listening) = hear(&db, &b, "memo-b").await;
        Some(Pair {
            db,
            a,
            b,
            stop,
            listening,
            _s3: s3,
            _dirs: dirs,
        })
    }

    /// Stops B hearing the database; its listening ends cleanly.
    async fn stop_hearing(&mut self) {
        let _ = self.stop.send(true);
        assert_eq!((&mut self.listening).await.unwrap(), Ok(()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_replica_changes_another_forgets_and_nothing_else() {
    let Some(mut p) = Pair::start().await else {
        return;
    };
    let (db, a, b) = (&p.db, &p.a, p.b.clone());

    let layer = push(a, b"a layer").await;
    let other = push(a, b"another layer").await;
    let m1 = manifest(a, "m1", "v:1", "one", &layer).await;
    let m2 = manifest(a, "m2", "v:2", "two", &other).await;

    // B looks everything up once: from the database, remembered (once it
    // has heard A's writes: a notice arriving during a lookup rightly keeps
    // its answer from being remembered).
    assert!(b.memo.catch_up.caught_up().await);
    let sha = Digest::Sha256(layer.sha256);
    let other_sha = Digest::Sha256(other.sha256);
    assert_eq!(b.blob_in(SCOPE, &sha).await.unwrap(), Some(layer));
    assert_eq!(b.blob_in(SCOPE, &other_sha).await.unwrap(), Some(other));
    assert_eq!(b.name(SCOPE, "v:1").await.unwrap(), Some(key("m1")));
    assert_eq!(b.name(SCOPE, "v:2").await.unwrap(), Some(key("m2")));
    assert_eq!(b.entry(&key("m1")).await.unwrap(), Some(m1.clone()));
    assert_eq!(
        b.entry(&key("m2")).await.unwrap().map(|e| e.id),
        Some(m2.id)
    );
    let hits = b.memo.hits.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(b.blob_in(SCOPE, &sha).await.unwrap(), Some(layer));
    assert_eq!(b.name(SCOPE, "v:1").await.unwrap(), Some(key("m1")));
    assert_eq!(b.entry(&key("m1")).await.unwrap(), Some(m1.clone()));
    let hits_now = b.memo.hits.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(hits_now - hits, 3, "answered from memory");
    // Nothing B remembered changed through B's own lookups.
    assert!(b.memo.name(SCOPE, "v:2").found().is_some());

    // Manifests are kept in memory where they were written, and where they
    // were read once (content never changes under its id).
    assert_eq!(
        a.in_memory(&m1.content, m1.size).as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(b.in_memory(&m1.content, m1.size), None);
    let read = b.read_content(&m1.content, m1.size).await.unwrap();
    assert_eq!(b.in_memory(&m1.content, m1.size), Some(read));

    // A tag moved through A: B forgets that tag, keeps the other.
    assert!(a.set_name(SCOPE, "v:1", &key("m2")).await.unwrap());
    until("B forgets the moved tag", || async {
        b.memo.name(SCOPE, "v:1").found().is_none()
    })
    .await;
    assert_eq!(b.name(SCOPE, "v:1").await.unwrap(), Some(key("m2")));
    assert_eq!(
        b.memo.name(SCOPE, "v:2").found(),
        Some(key("m2")),
        "not this one"
    );

    // An entry written again through A.
    let m1_again = manifest(a, "m1", "v:3", "one again", &layer).await;
    assert_ne!(m1_again.content, m1.content);
    until("B forgets the rewritten entry", || async {
        b.memo.entry(&key("m1")).found().is_none()
    })
    .await;
    assert_eq!(b.entry(&key("m1")).await.unwrap(), Some(m1_again));
    assert!(b.memo.entry(&key("m2")).found().is_some(), "not this one");

    // A blob unlinked from the scope through A: B no longer finds it
    // there, but still knows it is stored.
    assert!(a.unlink_blob(SCOPE, &other).await.unwrap());
    until("B forgets the link", || async {
        b.memo.blob(&other_sha, Some(SCOPE)).found().is_none()
    })
    .await;
    assert_eq!(b.blob_in(SCOPE, &other_sha).await.unwrap(), None);
    assert!(b.memo.blob(&other_sha, None).found().is_some());
    assert!(
        b.memo.blob(&sha, Some(SCOPE)).found().is_some(),
        "not this one"
    );

    // An entry removed through A: its tags go with it.
    assert!(a.remove_entry_by_key(&key("m2")).await.unwrap());
    until("B forgets the removed entry and its tags", || async {
        b.memo.entry(&key("m2")).found().is_none()
            && b.memo.name(SCOPE, "v:1").found().is_none()
            && b.memo.name(SCOPE, "v:2").found().is_none()
    })
    .await;
    assert_eq!(b.entry(&key("m2")).await.unwrap(), None);
    assert_eq!(b.name(SCOPE, "v:2").await.unwrap(), None);

    // GC marks a blob it collects `deleting` first.
    let c = pg::connect(&pg::settings(&db.config(), "t").unwrap())
        .await
        .unwrap();
    c.execute(
        "UPDATE blobs SET state = 'deleting' WHERE id = $1",
        &[&&other.id.0[..]],
    )
    .await
    .unwrap();
    until("B forgets the collected blob", || async {
        b.memo.blob(&other_sha, None).found().is_none()
    })
    .await;
    assert_eq!(b.blob(&other_sha).await.unwrap(), None);
    assert!(
        b.memo.blob(&sha, Some(SCOPE)).found().is_some(),
        "not this one"
    );

    p.stop_hearing().await;
    assert!(!b.memo.is_hearing());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stops_hearing_the_database_answers_from_it_alone() {
    let Some(db) = Postgres::start() else { return };
    let Some(s3) = S3Server::start() else { return };
    s3.create_bucket("larder").await;
    let mut r = cluster_support::cluster_stores(&db, &s3, 1, 1 << 20, u64::MAX).await;
    let (a, _dir) = r.pop().unwrap();
    let a = Arc::new(a);
    let (_stop, listening) = hear(&db, &a, "memo-a").await;
    let layer = push(&a, b"a layer").await;
    manifest(&a, "m1", "v1", "one", &layer).await;
    // A has heard its own writes' notices before it looks (one arriving
    // during the lookup rightly keeps its answer from being remembered).
    assert!(a.memo.catch_up.caught_up().await);
    assert_eq!(a.name(SCOPE, "v1").await.unwrap(), Some(key("m1")));
    assert!(a.memo.name(SCOPE, "v1").found().is_some());

    // Its session ends (the database restarted, an operator's kill): what
    // changes meanwhile would go unheard, so nothing is answered from
    // memory, and lookups still work.
    let c = pg::connect(&pg::settings(&db.config(), "t").unwrap())
        .await
        .unwrap();
    let killed: i64 = c
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE application_name = 'memo-a'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    let ended = listening.await.unwrap();
    assert!(ended.is_err(), "{ended:?}");
    assert!(!a.memo.is_hearing());
    assert_eq!(a.memo.name(SCOPE, "v1").found(), None);
    assert_eq!(a.name(SCOPE, "v1").await.unwrap(), Some(key("m1")));
    assert_eq!(
        a.memo.name(SCOPE, "v1").found(),
        None,
        "not remembered while deaf"
    );

    // Hearing again, it starts from nothing and remembers anew.
    let (_stop, _listening) = hear(&db, &a, "memo-a2").await;
    assert_eq!(a.memo.name(SCOPE, "v1").found(), None);
    assert_eq!(a.name(SCOPE, "v1").await.unwrap(), Some(key("m1")));
    assert!(a.memo.name(SCOPE, "v1").found().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_miss_is_never_answered_after_another_replica_created_it() {
    let Some(mut p) = Pair::start().await else {
        return;
    };
    let (db, a, b) = (&p.db, &p.a, p.b.clone());
    let hits = || b.memo.hits.load(std::sync::atomic::Ordering::Relaxed);

    // Each round: B misses a blob, a tag and an entry twice (the second
    // time from memory), then A creates all three and B is asked at once,
    // before its listening session has had time to hear of them unless it
    // catches up first.
    for i in 0..20 {
        let data = format!("layer {i}");
        let (sha, tag, name) = (sha256(data.as_bytes()), format!("t{i}"), format!("m{i}"));
        for round in 0..2 {
            let before = hits();
            assert_eq!(b.blob_in(SCOPE, &sha).await.unwrap(), None);
            assert_eq!(b.name(SCOPE, &tag).await.unwrap(), None);
            assert_eq!(b.entry(&key(&name)).await.unwrap(), None);
            assert_eq!(hits() - before, round * 3, "round {round} from memory");
        }
        assert_eq!(b.memo.entry(&key(&name)), Known::Absent);

        let layer = push(a, data.as_bytes()).await;
        assert_eq!(
            b.blob_in(SCOPE, &sha).await.unwrap(),
            Some(layer),
            "round {i}"
        );
        let rec = manifest(a, &name, &tag, &data, &layer).await;
        assert_eq!(
            b.name(SCOPE, &tag).await.unwrap(),
            Some(key(&name)),
            "round {i}"
        );
        assert_eq!(
            b.entry(&key(&name)).await.unwrap().map(|e| e.id),
            Some(rec.id)
        );
    }

    // A blob mounted into the scope ends a miss looked up by its sha256
    // there.
    let elsewhere = {
        let data = b"pushed to another scope";
        let write = BlobWrite {
            expected: Some(sha256(data)),
            limit: 1 << 20,
            scope: Some("team/other"),
            size_hint: Some(data.len() as u64),
        };
        let body = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(data))]);
        a.put_blob(body, write).await.unwrap()
    };
    let sha = Digest::Sha256(elsewhere.sha256);
    // B hears that push's notices first: one arriving while B looks would
    // (rightly) keep the miss from being remembered.
    assert!(b.memo.catch_up.caught_up().await);
    assert_eq!(b.blob_in(SCOPE, &sha).await.unwrap(), None);
    assert_eq!(b.memo.blob(&sha, Some(SCOPE)), Known::Absent);
    a.link_blob(SCOPE, &elsewhere).await.unwrap();
    assert_eq!(b.blob_in(SCOPE, &sha).await.unwrap(), Some(elsewhere));

    // B's listening session stalls (its backend stopped): B can neither
    // hear the change nor catch up with it, so it asks the database.
    let layer = push(a, b"late layer").await;
    assert_eq!(b.entry(&key("late")).await.unwrap(), None);
    assert_eq!(b.memo.entry(&key("late")), Known::Absent);
    let c = pg::connect(&pg::settings(&db.config(), "t").unwrap())
        .await
        .unwrap();
    let backend: i32 = c
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'memo-b'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // SAFETY: a signal to a PostgreSQL backend this test started.
    unsafe { libc::kill(backend, libc::SIGSTOP) };
    let rec = manifest(a, "late", "late", "late", &layer).await;
    let found = b.entry(&key("late")).await;
    unsafe { libc::kill(backend, libc::SIGCONT) };
    assert_eq!(found.unwrap().map(|e| e.id), Some(rec.id));

    // Deaf, B cannot catch up, so it asks the database.
    assert_eq!(b.entry(&key("never")).await.unwrap(), None);
    p.stop_hearing().await;
    let before = hits();
    assert_eq!(b.entry(&key("never")).await.unwrap(), None);
    assert_eq!(hits(), before);
}
