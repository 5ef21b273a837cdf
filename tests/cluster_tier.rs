//! A replica's local read-through tier in front of a real S3-protocol
//! server (moto): cold reads fill it, hot reads never leave the machine,
//! it stays within its size, wiping it loses nothing, and bytes that are
//! not a blob's are never kept. An object deleted behind Larder's back is a
//! clean miss that drops the entries needing it (real PostgreSQL).

mod cluster_support;
mod common;

use bytes::Bytes;
use futures_util::TryStreamExt;
use larder::cas::ContentId;
use larder::cluster::meta;
use larder::cluster::objects::{Objects, ObjectsError};
use larder::cluster::tier::Tier;
use larder::cluster::{pg, schema};
use larder::index::Protocol;

use cluster_support::{Postgres, S3Server};

struct Setup {
    s3: S3Server,
    objects: Objects,
    files: tempfile::TempDir,
    tier_dir: tempfile::TempDir,
}

async fn setup() -> Option<Setup> {
    let s3 = S3Server::start()?;
    s3.create_bucket("larder").await;
    Some(Setup {
        objects: Objects::open(&s3.config("larder")).unwrap(),
        s3,
        files: tempfile::tempdir().unwrap(),
        tier_dir: tempfile::tempdir().unwrap(),
    })
}

impl Setup {
    async fn put(&self, data: &[u8]) -> ContentId {
        let id = ContentId(*blake3::hash(data).as_bytes());
        let file = self.files.path().join(id.to_hex());
        std::fs::write(&file, data).unwrap();
        self.objects.put_blob(&id, &file).await.unwrap();
        id
    }

    fn tier(&self, capacity: u64) -> Tier {
        Tier::open(self.tier_dir.path(), capacity, self.objects.clone()).unwrap()
    }
}

/// Reads a whole blob through the tier and, when it was not held, waits
/// for its fill to finish.
async fn read_through(tier: &Tier, id: &ContentId) -> Vec<u8> {
    let cold = !tier.holds(id);
    read(tier, id, cold).await
}

async fn read(tier: &Tier, id: &ContentId, cold: bool) -> Vec<u8> {
    let mut fills = tier.fills();
    let chunks: Vec<Bytes> = tier
        .read(id, None)
        .await
        .expect("read")
        .try_collect()
        .await
        .expect("stream");
    if cold {
        fills.changed().await.unwrap();
    }
    chunks.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_read_fills_the_tier_and_the_next_read_stays_local() {
    let Some(s) = setup().await else { return };
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let id = s.put(&data).await;
    let tier = s.tier(1 << 20);
    assert!(!tier.holds(&id));
    assert_eq!(read_through(&tier, &id).await, data);
    assert!(tier.holds(&id));
    assert_eq!(tier.used(), data.len() as u64);

    // With the store hung, the blob is still served, whole and in ranges.
    s.s3.freeze(true);
    assert_eq!(read_through(&tier, &id).await, data);
    let part: Vec<Bytes> = tier
        .read(&id, Some(10..20))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(part.concat(), data[10..20]);
    s.s3.freeze(false);

    // A restart finds what it kept.
    drop(tier);
    assert!(s.tier(1 << 20).holds(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tier_keeps_within_its_size_least_recently_used_out_first() {
    let Some(s) = setup().await else { return };
    let tier = s.tier(3 * 1024);
    let mut ids = Vec::new();
    for i in 0..5u8 {
        let data = vec![i; 1024];
        let id = s.put(&data).await;
        assert_eq!(read_through(&tier, &id).await, data);
        ids.push(id);
        if i == 2 {
            // Blob 0 becomes the most recently used.
            read_through(&tier, &ids[0]).await;
        }
    }
    assert!(tier.used() <= 3 * 1024);
    let held: Vec<bool> = ids.iter().map(|id| tier.holds(id)).collect();
    assert_eq!(held, [true, false, false, true, true]);
    // Dropped blobs' files are gone too: a restart counts the same.
    assert_eq!(s.tier(3 * 1024).used(), 3 * 1024);

    // A blob larger than the whole tier is served and not kept.
    let big = vec![9u8; 4096];
    let id = s.put(&big).await;
    assert_eq!(read_through(&tier, &id).await, big);
    assert!(!tier.holds(&id));
}

/// Copies are placed without a sync each: a process restart keeps them
/// (the page cache survives it), a machine restart drops them all (any
/// could be torn), and a tier whose copies were all synced (by a build
/// before this one) is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_outlive_a_process_restart_but_not_a_machine_restart() {
    let Some(s) = setup().await else { return };
    let data = b"placed in the tier without a sync of its own".to_vec();
    let id = s.put(&data).await;
    let tier = s.tier(1 << 20);
    read_through(&tier, &id).await;
    let marker = s.tier_dir.path().join("unsynced-in-boot");
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), boot.trim());
    drop(tier);

    assert!(s.tier(1 << 20).holds(&id), "the same boot: kept");

    std::fs::write(&marker, "another-boot").unwrap();
    let tier = s.tier(1 << 20);
    assert!(!tier.holds(&id), "another boot: dropped");
    assert_eq!(tier.used(), 0);
    let blobs = s.tier_dir.path().join("blobs");
    let files = walk(&blobs);
    assert!(files.is_empty(), "files left: {files:?}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), boot.trim());
    assert_eq!(read_through(&tier, &id).await, data, "read through again");
    drop(tier);

    std::fs::remove_file(&marker).unwrap();
    assert!(s.tier(1 << 20).holds(&id), "no marker (all synced): kept");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        match path.is_dir() {
            true => files.extend(walk(&path)),
            false => files.push(path),
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiping_the_tier_loses_nothing() {
    let Some(s) = setup().await else { return };
    let tier = s.tier(1 << 20);
    let data = b"kept in the object store".to_vec();
    let id = s.put(&data).await;
    read_through(&tier, &id).await;
    assert!(tier.holds(&id));
    std::fs::remove_dir_all(s.tier_dir.path().join("blobs")).unwrap();
    std::fs::create_dir_all(s.tier_dir.path().join("blobs").join(&id.to_hex()[..2])).unwrap();
    assert_eq!(read(&tier, &id, true).await, data);
    assert!(tier.holds(&id), "read through again and kept again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_the_blob_are_never_kept_and_ranges_are_not_cached() {
    let Some(s) = setup().await else { return };
    let tier = s.tier(1 << 20);
    let data = b"the real bytes".to_vec();
    let id = s.put(&data).await;
    // A cold range read is served from the store and keeps nothing.
    let part: Vec<Bytes> = tier
        .read(&id, Some(4..8))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(part.concat(), b"real");
    assert!(!tier.holds(&id));

    // Someone overwrites the object: clients checking digests see the
    // mismatch; the tier does not keep it.
    s.s3.tamper(
        "larder",
        &format!("blobs/{}", id.to_hex()),
        Some(b"other bytes!!!".to_vec()),
    )
    .await;
    let got = read_through(&tier, &id).await;
    assert_ne!(got, data);
    assert!(!tier.holds(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_deleted_behind_our_back_is_a_clean_miss() {
    let Some(db) = Postgres::start() else { return };
    let Some(s) = setup().await else { return };
    let settings = pg::settings(&db.config(), "larder/test").unwrap();
    let mut c = pg::connect(&settings).await.unwrap();
    schema::migrate(&mut c, "test").await.unwrap();
    let layer = s.put(b"layer").await;
    let manifest = s.put(b"manifest").await;
    for id in [layer, manifest] {
        meta::put_blob(&mut c, &id, 5, &[], 1, u64::MAX)
            .await
            .unwrap();
    }
    let pins = [layer];
    let entry = cluster_support::entry(Protocol::Oci, "team", "app:1", manifest, 8, &pins);
    meta::put_entry(&c, &entry, 1).await.unwrap().unwrap();

    s.s3.tamper("larder", &format!("blobs/{}", layer.to_hex()), None)
        .await;
    let tier = s.tier(1 << 20);
    let Err(err) = tier.read(&layer, None).await else {
        panic!("a deleted object was read");
    };
    assert!(matches!(err, ObjectsError::Missing(_)), "{err}");
    assert_eq!(meta::forget_lost_blob(&mut c, &layer).await.unwrap(), 1);
    assert!(meta::needed_blobs(&c).await.unwrap().is_empty());
    assert_eq!(meta::blob_state(&c, &layer).await.unwrap(), None);
    assert_eq!(
        meta::blob_state(&c, &manifest).await.unwrap().as_deref(),
        Some("live"),
        "the manifest's own blob stays until GC"
    );
}
