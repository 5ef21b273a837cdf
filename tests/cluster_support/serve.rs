//! Replicas as real `larder serve` processes on one PostgreSQL and one
//! bucket, as an operator runs them.

use std::time::Duration;

use super::{Postgres, S3Server};
use crate::common::process::LarderProcess;

pub const BUCKET: &str = "larder";

/// PostgreSQL, the S3 server and the replicas started on them so far.
pub struct Fleet {
    pub db: Postgres,
    pub s3: S3Server,
    pub dirs: Vec<tempfile::TempDir>,
}

impl Fleet {
    /// `None` (after a skip note, or a failure under CI=true) when either
    /// server is missing.
    pub async fn start() -> Option<Fleet> {
        let db = Postgres::start()?;
        let s3 = S3Server::start()?;
        s3.create_bucket(BUCKET).await;
        Some(Fleet {
            db,
            s3,
            dirs: Vec::new(),
        })
    }

    /// The environment that makes `larder serve` replica `id` of this fleet.
    pub fn env(&self, id: &str) -> Vec<(String, String)> {
        let s3 = self.s3.config(BUCKET);
        [
            ("LARDER__CLUSTER__ENABLED", "true".to_owned()),
            ("LARDER__CLUSTER__REPLICA_ID", id.to_owned()),
            ("LARDER__CLUSTER__HEARTBEAT_INTERVAL", "1s".to_owned()),
            ("LARDER__CLUSTER__S3__ENDPOINT", s3.endpoint),
            ("LARDER__CLUSTER__S3__BUCKET", s3.bucket),
            ("LARDER__CLUSTER__S3__ALLOW_HTTP", "true".to_owned()),
            ("LARDER__CLUSTER__S3__REQUEST_TIMEOUT", "2s".to_owned()),
            (
                "LARDER__CLUSTER__S3__ACCESS_KEY_ID",
                s3.access_key_id.unwrap_or_default(),
            ),
            (
                "LARDER__CLUSTER__S3__SECRET_ACCESS_KEY",
                s3.secret_access_key.unwrap_or_default(),
            ),
            ("LARDER__CLUSTER__POSTGRES__URL", self.db.url()),
            ("LARDER__GC__INTERVAL", "1s".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Starts replica `id` with its own data dir (its local tier), plus
    /// `extra` environment.
    pub fn replica(&mut self, id: &str, extra: &[(&str, &str)]) -> LarderProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = self.env(id);
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        let replica = LarderProcess::start_env(dir.path(), &[], &all);
        self.dirs.push(dir);
        replica
    }

    /// `n` replicas named r0, r1, …
    pub fn replicas(&mut self, n: usize) -> Vec<LarderProcess> {
        (0..n)
            .map(|i| self.replica(&format!("r{i}"), &[]))
            .collect()
    }
}

/// Polls `url` until it answers `status` (a replica noticing the database
/// or the store come and go); panics after `within`.
pub async fn await_status(url: &str, status: u16, within: Duration) {
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + within;
    loop {
        let got = client.get(url).send().await.map(|r| r.status().as_u16());
        if got.as_ref().ok() == Some(&status) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} never answered {status} (last: {got:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of an unlabelled series in an exposition.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.split(' ').next() == Some(name))?;
    line.rsplit(' ').next()?.parse().ok()
}

/// `base`'s /metrics exposition.
pub async fn scrape(http: &reqwest::Client, base: String) -> String {
    let res = http.get(format!("{base}/metrics")).send().await.unwrap();
    res.text().await.unwrap()
}
