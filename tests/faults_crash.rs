//! `kill -9` under concurrent writes of every kind: after a restart every
//! acknowledged write reads back byte-exact, a SIGTERM exits 0, and
//! `larder fsck` finds nothing wrong (the start removed what the
//! interrupted requests left behind).

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{larder_bin, LarderProcess};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sha2::Digest as _;

const ROUNDS: u32 = 3;
const WRITERS: u32 = 6;
/// Acknowledged writes in a round before the kill.
const ACKS_BEFORE_KILL: usize = 40;
const VERSION: &str = "6f1ed002ab5595859014ebf0951522d9b6bcc4ab4a29e4e3b1f8dbd1e7d2e5d3";

/// A write the server acknowledged, and how to read it back.
#[derive(Clone, Debug)]
enum Acked {
    Blob {
        repo: String,
        digest: String,
        data: Vec<u8>,
    },
    Value {
        path: String,
        data: Vec<u8>,
    },
    GhaCache {
        key: String,
        data: Vec<u8>,
    },
}

fn payload(writer: u32, n: u32) -> Vec<u8> {
    let len = 1000 + ((writer * 7919 + n * 104_729) % 200_000) as usize;
    (0..len)
        .map(|i| (i as u32 ^ writer.wrapping_mul(31) ^ n) as u8)
        .collect()
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// One write of kind `n % 4`; Some when it was acknowledged.
async fn write_one(c: &Client, base: &str, round: u32, w: u32, n: u32) -> Option<Acked> {
    let data = payload(w, n + round * 10_000);
    let ok = |r: &reqwest::Response| r.status().is_success();
    match n % 4 {
        0 => {
            let (repo, digest) = (format!("team/w{w}"), sha256(&data));
            let url = format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}");
            let res = c.post(url).body(data.clone()).send().await.ok()?;
            ok(&res).then_some(Acked::Blob { repo, digest, data })
        }
        1 => {
            // A session, a chunk, then the final PUT.
            let repo = format!("team/c{w}");
            let res = c
                .post(format!("{base}/v2/{repo}/blobs/uploads/"))
                .send()
                .await
                .ok()?;
            let location = res.headers().get("location")?.to_str().ok()?.to_owned();
            let session = format!("{base}{location}");
            let half = data.len() / 2;
            let res = c
                .patch(&session)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("0-{}", half - 1))
                .body(data[..half].to_vec())
                .send()
                .await
                .ok()?;
            let location = res.headers().get("location")?.to_str().ok()?.to_owned();
            let digest = sha256(&data);
            let sep = if location.contains('?') { '&' } else { '?' };
            let res = c
                .put(format!("{base}{location}{sep}digest={digest}"))
                .body(data[half..].to_vec())
                .send()
                .await
                .ok()?;
            ok(&res).then_some(Acked::Blob { repo, digest, data })
        }
        2 => {
            let path = format!("/cache/team/r{round}-w{w}-n{n}");
            let res = c
                .put(format!("{base}{path}"))
                .body(data.clone())
                .send()
                .await
                .ok()?;
            ok(&res).then_some(Acked::Value { path, data })
        }
        _ => {
            let key = format!("gha-r{round}-w{w}-n{n}");
            let api = format!("{base}/_apis/artifactcache");
            let res = c
                .post(format!("{api}/caches"))
                .json(&json!({ "key": key, "version": VERSION }))
                .send()
                .await
                .ok()?;
            let id = res.json::<Value>().await.ok()?["cacheId"].as_u64()?;
            let mid = data.len() / 3;
            for (start, chunk) in [(mid, &data[mid..]), (0, &data[..mid])] {
                let res = c
                    .patch(format!("{api}/caches/{id}"))
                    .header("content-type", "application/octet-stream")
                    .header(
                        "content-range",
                        format!("bytes {start}-{}/*", start + chunk.len() - 1),
                    )
                    .body(chunk.to_vec())
                    .send()
                    .await
                    .ok()?;
                if !ok(&res) {
                    return None;
                }
            }
            let res = c
                .post(format!("{api}/caches/{id}"))
                .json(&json!({ "size": data.len() }))
                .send()
                .await
                .ok()?;
            ok(&res).then_some(Acked::GhaCache { key, data })
        }
    }
}

async fn read_back(c: &Client, base: &str, acked: &Acked) -> Vec<u8> {
    let url = match acked {
        Acked::Blob { repo, digest, .. } => format!("{base}/v2/{repo}/blobs/{digest}"),
        Acked::Value { path, .. } => format!("{base}{path}"),
        Acked::GhaCache { key, .. } => {
            let res = c
                .get(format!("{base}/_apis/artifactcache/cache"))
                .query(&[("keys", key.as_str()), ("version", VERSION)])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "lookup of {key}");
            let hit: Value = res.json().await.unwrap();
            hit["archiveLocation"].as_str().unwrap().to_owned()
        }
    };
    let res = c.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{acked:?}");
    res.bytes().await.unwrap().to_vec()
}

fn fsck(dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(larder_bin())
        .args(["fsck", "--data-dir"])
        .arg(dir)
        .output()
        .expect("run larder fsck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_and_fsck_is_clean_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::client();
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let (tx, mut acks) = tokio::sync::mpsc::unbounded_channel::<()>();

    for round in 0..ROUNDS {
        let server = LarderProcess::start(dir.path(), &[]);
        let base = format!("http://{}", server.addr);
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (c, base, acked, tx) = (c.clone(), base.clone(), acked.clone(), tx.clone());
                tokio::spawn(async move {
                    for n in 0.. {
                        if let Some(a) = write_one(&c, &base, round, w, n).await {
                            acked.lock().unwrap().push(a);
                            if tx.send(()).is_err() {
                                return;
                            }
                        } else if c.get(format!("{base}/healthz")).send().await.is_err() {
                            return; // the server is gone
                        }
                    }
                })
            })
            .collect();
        for _ in 0..ACKS_BEFORE_KILL {
            acks.recv().await.expect("writers run");
        }
        server.kill();
        for w in writers {
            w.await.unwrap();
        }
        while acks.try_recv().is_ok() {}

        // Restart: every acknowledged write so far reads back exactly.
        let mut server = LarderProcess::start(dir.path(), &[]);
        let base = format!("http://{}", server.addr);
        let all = acked.lock().unwrap().clone();
        for a in &all {
            let want = match a {
                Acked::Blob { data, .. }
                | Acked::Value { data, .. }
                | Acked::GhaCache { data, .. } => data,
            };
            let got = read_back(&c, &base, a).await;
            assert!(&got == want, "round {round}: {a:?} reads back altered");
        }
        server.sigterm();
        let status = server.wait(Duration::from_secs(30));
        assert!(
            status.success(),
            "SIGTERM exit: {status:?}\n{}",
            server.log_lines.join("\n")
        );

        let (ok, report) = fsck(dir.path());
        assert!(
            ok,
            "round {round}: fsck after a crash and a clean stop:\n{report}"
        );
        assert!(report.contains("no problems found"), "{report}");
        // The start after the kill removed every leftover of the crash.
        assert!(
            !report.lines().any(|l| l.starts_with("leftover:")),
            "the start left leftovers:\n{report}"
        );
    }
    assert!(acked.lock().unwrap().len() >= (ROUNDS as usize) * ACKS_BEFORE_KILL);
}
