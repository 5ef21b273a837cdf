//! The data dir across restarts: index records and blob files come back, a
//! data dir from a newer larder is refused, and one data dir has one owner.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::process::{larder_bin, LarderProcess};
use futures_util::StreamExt;
use larder::cache::{BlobWrite, Store};
use larder::cas::Digest;
use larder::config::Config;
use larder::datadir::DataDir;
use sha2::{Digest as _, Sha256, Sha512};

/// Runs `larder serve` on `data_dir` and returns its output once it exits;
/// fails the test if it is still running after `timeout` (i.e. it served).
fn serve_expecting_exit(data_dir: &Path, timeout: Duration) -> Output {
    let mut child = Command::new(larder_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    // Exit is the event, but std offers no wait with a timeout.
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "larder kept running on {}; stderr:\n{}",
                data_dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Each phase runs on its own runtime and drops it, so every task and handle
/// of the first "process" (the group-commit flusher, sled) is gone before the
/// second opens the data dir.
#[test]
fn blob_records_and_bytes_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let sha256 = Digest::Sha256(Sha256::digest(&bytes).into());
    let sha512 = Digest::Sha512(Box::new(Sha512::digest(&bytes).into()));
    let blake3 = Digest::Blake3(*blake3::hash(&bytes).as_bytes());
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();

    let stored = common::runtime().block_on(async {
        let data_dir = DataDir::open(dir.path()).unwrap();
        let store = Store::open(&data_dir, &config).unwrap();
        let body = futures_util::stream::iter(
            bytes
                .chunks(64 << 10)
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        // A sha512 upload also records the sha512 alias.
        let write = BlobWrite {
            expected: Some(sha512.clone()),
            limit: u64::MAX,
            ..BlobWrite::default()
        };
        store.put_blob(body, write).await.unwrap()
    });

    common::runtime().block_on(async {
        let data_dir = DataDir::open(dir.path()).unwrap();
        let store = Store::open(&data_dir, &config).unwrap();
        for digest in [&sha256, &sha512, &blake3] {
            let found = store.blob(digest).unwrap();
            assert_eq!(found, Some(stored), "{digest} after restart");
        }
        let mut read = store.read_blob(&stored, 0, stored.size).await.unwrap();
        let mut back = Vec::with_capacity(bytes.len());
        while let Some(chunk) = read.next().await {
            back.extend_from_slice(&chunk.unwrap());
        }
        assert!(back == bytes, "bytes differ after restart");
        let other = Digest::Sha256(Sha256::digest(b"never stored").into());
        assert_eq!(store.blob(&other).unwrap(), None);
    });
}

#[test]
fn serve_refuses_a_data_dir_from_a_newer_larder() {
    let dir = tempfile::tempdir().unwrap();
    drop(DataDir::open(dir.path()).unwrap());
    let marker = dir.path().join("FORMAT");
    std::fs::write(&marker, "larder-data-dir 99\n").unwrap();

    let out = serve_expecting_exit(dir.path(), Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exited {:?}; stderr:\n{stderr}",
        out.status
    );
    assert!(stderr.contains("format version 99"), "{stderr}");
    assert!(stderr.contains("run a newer larder"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
    // The refusal must not "upgrade" the marker it cannot read.
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "larder-data-dir 99\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_is_refused_and_the_first_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = LarderProcess::start(dir.path(), &[]);

    let out = serve_expecting_exit(dir.path(), Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exited {:?}; stderr:\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("in use by another larder process"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");

    let client = common::client();
    for path in ["/healthz", "/readyz"] {
        let res = client.get(first.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path} of the first server");
    }
    first.sigterm();
    assert!(first
        .wait_for_log("stopped", Duration::from_secs(30))
        .is_some());
    assert!(first.wait(Duration::from_secs(30)).success());
}
