//! Real PostgreSQL and S3-protocol servers for the cluster tests (their
//! starters live in `common`, which `TestServer`'s clustered topology uses
//! too), and stores, entries and polling on top of them. Each server skips
//! locally and fails under CI=true when it is missing.
#![allow(dead_code)]

pub mod serve;

use std::time::Duration;

use larder::cache::small::SmallContent;
use larder::cas::{ContentId, Digest};
use larder::cluster::memo::Memo;
use larder::cluster::objects::Objects;
use larder::cluster::store::ClusterStore;
use larder::cluster::tier::Tier;
use larder::cluster::touches::Touches;
use larder::cluster::{pg, schema};
use larder::index::{EntryKey, NewEntry, Protocol};
use sha2::Digest as _;

pub use crate::common::postgres::Postgres;
pub use crate::common::s3::S3Server;
/// An entry of `size` bytes whose content is `content`, pinning `pins` too.
pub fn entry(
    protocol: Protocol,
    namespace: &str,
    name: &str,
    content: ContentId,
    size: u64,
    pins: &[ContentId],
) -> NewEntry {
    NewEntry {
        key: EntryKey {
            protocol,
            namespace: namespace.into(),
            name: name.into(),
        },
        content,
        size,
        pins: pins.to_vec(),
        meta: Vec::new(),
        children: Vec::new(),
    }
}

/// The `sha256:…` digest of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
        .parse()
        .unwrap()
}

/// `n` replicas' stores on one migrated database and the bucket "larder",
/// each with a local tier of `tier_size` bytes in a temp dir of its own.
pub async fn cluster_stores(
    db: &Postgres,
    s3: &S3Server,
    n: usize,
    tier_size: u64,
    hard_limit: u64,
) -> Vec<(ClusterStore, tempfile::TempDir)> {
    let mut c = pg::connect(&pg::settings(&db.config(), "t").unwrap())
        .await
        .unwrap();
    schema::migrate(&mut c, "test").await.unwrap();
    (0..n)
        .map(|i| {
            let dir = tempfile::tempdir().unwrap();
            let objects = Objects::open(&s3.config("larder")).unwrap();
            let store = ClusterStore {
                pool: pg::pool(&db.config(), &format!("larder/r{i}")).unwrap(),
                tier: Tier::open(dir.path(), tier_size, objects.clone()).unwrap(),
                objects,
                touches: Touches::default(),
                max_size: hard_limit,
                hard_limit,
                max_blob_size: 64 << 20,
                lease: std::time::Duration::from_secs(900),
                quotas: Default::default(),
                revoked: Default::default(),
                upkeep: Default::default(),
                evicted: Default::default(),
                memo: Memo::new(64 << 20),
                small: SmallContent::new(64 << 20),
            };
            (store, dir)
        })
        .collect()
}

/// Entries `{namespace}-k{i}` (protocol http) of 1 KiB each, every one with
/// a blob of its own, written to the bucket and recorded, last used at
/// `first_used + i`; returns the entries' ids.
pub async fn fill(
    writer: &mut tokio_postgres::Client,
    objects: &Objects,
    namespace: &str,
    range: std::ops::Range<u32>,
    first_used: i64,
) -> Vec<i64> {
    const KIB: usize = 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for i in range {
        let data = format!("{namespace}{i:08}")
            .repeat(KIB / (namespace.len() + 8) + 1)
            .into_bytes()[..KIB]
            .to_vec();
        let id = ContentId(*blake3::hash(&data).as_bytes());
        let file = dir.path().join(id.to_hex());
        std::fs::write(&file, &data).unwrap();
        objects.put_blob(&id, &file).await.unwrap();
        let used = first_used + i64::from(i);
        larder::cluster::meta::put_blob(writer, &id, KIB as u64, &[], used, u64::MAX)
            .await
            .unwrap();
        let name = format!("{namespace}-k{i}");
        let e = entry(Protocol::Http, namespace, &name, id, KIB as u64, &[]);
        let put = larder::cluster::meta::put_entry(&*writer, &e, used).await;
        ids.push(put.unwrap().expect("every pin is live"));
    }
    ids
}

/// Polls (the database, a replica: state another process changes) until
/// `done`; panics after a minute.
pub async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let wait = async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("never: {what}"));
}

/// A single number the database answers `sql` with.
pub async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}
