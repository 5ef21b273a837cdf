//! 32 clients push overlapping blobs (shared and their own) and manifests
//! into one repository at once, in every upload style, while reading each
//! other's work. Every request must succeed or get a clean protocol error;
//! afterwards every manifest resolves and shared content is stored once.

mod common;
mod oci_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use common::TestServer;
use futures_util::StreamExt;
use oci_support::*;
use reqwest::header::{ACCEPT, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

const CLIENTS: usize = 32;
const REPO: &str = "team/shared";

/// The codes a registry may answer with (distribution-spec, plus the range one).
const SPEC_CODES: [&str; 15] = [
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
    "RANGE_INVALID",
];

/// Every response the clients saw.
#[derive(Default)]
struct Tally {
    ok: usize,
    /// Clean protocol errors on reads, by "status code".
    clean: BTreeMap<String, usize>,
    failures: Vec<String>,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Tally>>);

impl Log {
    fn with<T>(&self, f: impl FnOnce(&mut Tally) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    /// Judges a response. Writes must succeed: nothing in this workload is
    /// an invalid write. Reads may miss (content another client has not
    /// pushed yet) with a clean protocol error. Returns the response if 2xx.
    async fn judge(
        &self,
        what: &str,
        res: reqwest::Result<Response>,
        write: bool,
    ) -> Option<Response> {
        let res = match res {
            Ok(res) => res,
            Err(e) => {
                self.with(|t| t.failures.push(format!("{what}: transport error: {e}")));
                return None;
            }
        };
        let status = res.status();
        if status.is_success() {
            self.with(|t| t.ok += 1);
            return Some(res);
        }
        let head = what.starts_with("HEAD");
        let text = res.text().await.unwrap_or_default();
        let clean_code = if head {
            (status == StatusCode::NOT_FOUND).then(|| "(HEAD)".to_owned())
        } else {
            serde_json::from_str::<Value>(&text).ok().and_then(|v| {
                let code = v["errors"][0]["code"].as_str()?.to_owned();
                let shaped = v["errors"][0]["message"].is_string();
                (shaped && SPEC_CODES.contains(&code.as_str())).then_some(code)
            })
        };
        match clean_code {
            Some(code) if status.is_client_error() && !write => {
                self.with(|t| *t.clean.entry(format!("{status} {code}")).or_default() += 1);
            }
            _ => self.with(|t| t.failures.push(format!("{what}: {status} {text}"))),
        }
        None
    }
}

fn shared_config() -> Vec<u8> {
    serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "shared": true})).unwrap()
}

fn shared_layers() -> Vec<Vec<u8>> {
    (0..4u32)
        .map(|i| fixed_bytes(1000 + i, 64 * 1024 + i as usize * 50_000))
        .collect()
}

fn own_layer(i: usize) -> Vec<u8> {
    fixed_bytes(2000 + i as u32, 20_000 + i * 100)
}

fn own_config(i: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "client": i})).unwrap()
}

fn shared_manifest() -> Vec<u8> {
    image_manifest(
        &descriptor(OCI_CONFIG, &shared_config()),
        &shared_layers()
            .iter()
            .map(|l| descriptor(OCI_LAYER_GZIP, l))
            .collect::<Vec<_>>(),
    )
}

fn own_manifest(i: usize) -> Vec<u8> {
    let mut layers: Vec<Value> = shared_layers()
        .iter()
        .map(|l| descriptor(OCI_LAYER_GZIP, l))
        .collect();
    layers.push(descriptor(OCI_LAYER_GZIP, &own_layer(i)));
    image_manifest(&descriptor(OCI_CONFIG, &own_config(i)), &layers)
}

/// One blob, in the style of client `style`: BuildKit's POST + PUT, a
/// monolithic POST, or two chunked PATCHes and an empty PUT. HEAD first.
async fn push(client: &Client, base: &str, log: &Log, blob: &[u8], style: usize) {
    let digest = sha256_digest(blob);
    let head = client
        .head(format!("{base}/v2/{REPO}/blobs/{digest}"))
        .send()
        .await;
    if log
        .judge(&format!("HEAD blob {digest}"), head, false)
        .await
        .is_some()
    {
        return;
    }
    if style == 1 {
        let res = client
            .post(format!("{base}/v2/{REPO}/blobs/uploads/?digest={digest}"))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(blob.to_vec())
            .send()
            .await;
        if let Some(res) = log
            .judge(&format!("POST monolithic {digest}"), res, true)
            .await
        {
            check_created(log, &res, &digest);
        }
        return;
    }
    let res = client
        .post(format!("{base}/v2/{REPO}/blobs/uploads/"))
        .send()
        .await;
    let Some(res) = log.judge("POST upload", res, true).await else {
        return;
    };
    let mut location = abs_url(base, &header(&res, "location").unwrap_or_default());
    let mut final_body = blob.to_vec();
    if style == 2 {
        let half = blob.len() / 2;
        for (start, chunk) in [(0, &blob[..half]), (half, &blob[half..])] {
            let res = client
                .patch(&location)
                .header(
                    CONTENT_RANGE,
                    format!("{start}-{}", start + chunk.len() - 1),
                )
                .body(chunk.to_vec())
                .send()
                .await;
            let Some(res) = log.judge(&format!("PATCH {location}"), res, true).await else {
                return;
            };
            location = abs_url(base, &header(&res, "location").unwrap_or_default());
        }
        final_body.clear();
    }
    let res = client
        .put(with_query(&location, &format!("digest={digest}")))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(final_body)
        .send()
        .await;
    if let Some(res) = log.judge(&format!("PUT {location}"), res, true).await {
        check_created(log, &res, &digest);
    }
}

fn check_created(log: &Log, res: &Response, digest: &str) {
    if res.status() != StatusCode::CREATED
        || header(res, "docker-content-digest").as_deref() != Some(digest)
    {
        log.with(|t| {
            t.failures.push(format!(
                "{}: {} with Docker-Content-Digest {:?}, want 201 with {digest}",
                res.url(),
                res.status(),
                header(res, "docker-content-digest")
            ))
        });
    }
}

async fn put(
    client: &Client,
    base: &str,
    log: &Log,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) {
    let res = client
        .put(format!("{base}/v2/{REPO}/manifests/{reference}"))
        .header(CONTENT_TYPE, media_type)
        .body(bytes.to_vec())
        .send()
        .await;
    if let Some(res) = log
        .judge(&format!("PUT manifest {reference}"), res, true)
        .await
    {
        check_created(log, &res, &sha256_digest(bytes));
    }
}

async fn run_client(i: usize, base: String, log: Log) {
    let client = common::client();
    let style = i % 3;
    let mut blobs: Vec<Vec<u8>> = shared_layers();
    blobs.push(shared_config());
    blobs.push(own_layer(i));
    blobs.push(own_config(i));
    // Half the clients push in the opposite order, so every shared blob is
    // raced from both ends.
    if i % 2 == 1 {
        blobs.reverse();
    }
    futures_util::stream::iter(blobs.iter())
        .for_each_concurrent(4, |b| push(&client, &base, &log, b, style))
        .await;

    // Readers of other clients' work: misses are fine, errors are not.
    let other = (i + 1) % CLIENTS;
    let res = client
        .get(format!("{base}/v2/{REPO}/manifests/client-{other:02}"))
        .header(ACCEPT, ACCEPT_MANIFESTS)
        .send()
        .await;
    log.judge("GET other manifest", res, false).await;

    let own = own_manifest(i);
    let shared = shared_manifest();
    put(
        &client,
        &base,
        &log,
        &format!("client-{i:02}"),
        OCI_MANIFEST,
        &own,
    )
    .await;
    put(&client, &base, &log, "shared", OCI_MANIFEST, &shared).await;
    put(&client, &base, &log, "latest", OCI_MANIFEST, &own).await;
    let index = image_index(&[(OCI_MANIFEST, &own), (OCI_MANIFEST, &shared)]);
    put(
        &client,
        &base,
        &log,
        &format!("multi-{i:02}"),
        OCI_INDEX,
        &index,
    )
    .await;

    if i % 4 == 3 {
        // A throwaway manifest, deleted by digest.
        let mut tmp: Value = serde_json::from_slice(&own).unwrap();
        tmp["annotations"] = json!({"throwaway": i.to_string()});
        let tmp = serde_json::to_vec(&tmp).unwrap();
        put(
            &client,
            &base,
            &log,
            &format!("tmp-{i:02}"),
            OCI_MANIFEST,
            &tmp,
        )
        .await;
        let res = client
            .delete(format!(
                "{base}/v2/{REPO}/manifests/{}",
                sha256_digest(&tmp)
            ))
            .send()
            .await;
        log.judge("DELETE throwaway manifest", res, true).await;
        let res = client
            .get(format!("{base}/v2/{REPO}/manifests/tmp-{i:02}"))
            .send()
            .await;
        if let Ok(res) = res {
            if res.status() != StatusCode::NOT_FOUND {
                log.with(|t| {
                    t.failures
                        .push(format!("tmp-{i:02} is still served after its DELETE"))
                });
            }
        }
    }

    let res = client
        .get(format!("{base}/v2/{REPO}/tags/list"))
        .send()
        .await;
    log.judge("GET tags", res, false).await;
    let res = client
        .get(format!("{base}/v2/{REPO}/manifests/multi-{other:02}"))
        .header(ACCEPT, ACCEPT_MANIFESTS)
        .send()
        .await;
    log.judge("GET other index", res, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_clients_push_into_one_repository() {
    let server = TestServer::start().await;
    let log = Log::default();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(run_client(i, server.base(), log.clone())))
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let (ok, clean, failures) = log.with(|t| (t.ok, t.clean.clone(), t.failures.clone()));
    assert!(
        failures.is_empty(),
        "{} requests failed (and {ok} succeeded, clean errors {clean:?}):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    eprintln!("{ok} requests succeeded; clean protocol errors: {clean:?}");

    // Every tag is there and everything it references resolves.
    let report = assert_manifest_refs_resolve(&server, REPO).await;
    let mut want: Vec<String> = (0..CLIENTS)
        .flat_map(|i| [format!("client-{i:02}"), format!("multi-{i:02}")])
        .chain(["latest".to_owned(), "shared".to_owned()])
        .collect();
    want.sort();
    assert_eq!(report.tags, want);
    assert_eq!(
        report.manifests.len(),
        2 * CLIENTS + 1,
        "own, index, shared"
    );
    let client = common::client();
    let (latest, _, _) = get_manifest(&client, &server.base(), REPO, "latest").await;
    assert!(
        (0..CLIENTS).any(|i| own_manifest(i) == latest),
        "latest is one client's manifest, intact"
    );

    // Content-addressed storage: each file is named by its content, so no
    // content is stored twice; every shared blob has its one file.
    let dir = server.data_dir();
    let files = blob_files(&dir);
    let mut by_sha256: HashMap<String, Vec<std::path::PathBuf>> = HashMap::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            name,
            blake3::hash(&bytes).to_hex().as_str(),
            "{} holds other bytes than its name says",
            f.display()
        );
        by_sha256
            .entry(sha256_digest(&bytes))
            .or_default()
            .push(f.clone());
    }
    let dups: Vec<_> = by_sha256.values().filter(|v| v.len() > 1).collect();
    assert!(dups.is_empty(), "content stored twice: {dups:?}");
    let mut shared: Vec<Vec<u8>> = shared_layers();
    shared.push(shared_config());
    shared.push(shared_manifest());
    for b in &shared {
        assert!(
            blob_path(&dir, b).is_file(),
            "shared blob {} is stored",
            sha256_digest(b)
        );
    }
    // 5 shared blobs + the shared manifest + per client a layer, a config,
    // a manifest and an index; deleted throwaway manifests may linger.
    let live = shared.len() + 4 * CLIENTS;
    let throwaway = CLIENTS / 4;
    assert!(
        (live..=live + throwaway).contains(&files.len()),
        "{} blob files, want {live}..={}",
        files.len(),
        live + throwaway
    );
    let distinct: BTreeSet<_> = by_sha256.keys().collect();
    assert_eq!(distinct.len(), files.len());

    // Every upload session ended and no temp file remains.
    assert_eq!(
        files_under(&dir.join("uploads")),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        files_under(&dir.join("tmp")),
        Vec::<std::path::PathBuf>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_blob_uploaded_32_times_at_once() {
    // Every client misses on HEAD and uploads the same bytes concurrently:
    // all 32 get 201 and the bytes are stored once.
    let server = TestServer::start().await;
    let blob = fixed_bytes(3000, 300_000);
    let digest = sha256_digest(&blob);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let base = server.base();
            let blob = blob.clone();
            tokio::spawn(async move {
                let client = common::client();
                // Make the sessions overlap: open them all before any PUT.
                let location = start_upload(&client, &base, &format!("race/r{}", i % 4)).await;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let res = client
                    .put(with_query(
                        &location,
                        &format!("digest={}", sha256_digest(&blob)),
                    ))
                    .body(blob)
                    .send()
                    .await
                    .unwrap();
                (res.status(), header(&res, "docker-content-digest"))
            })
        })
        .collect();
    for t in tasks {
        let (status, got) = t.await.unwrap();
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(got.as_deref(), Some(digest.as_str()));
    }
    let client = common::client();
    for r in 0..4 {
        assert_eq!(
            get_blob(&client, &server.base(), &format!("race/r{r}"), &digest).await,
            blob
        );
    }
    assert_eq!(blob_files(&server.data_dir()).len(), 1);
    assert_eq!(
        files_under(&server.data_dir().join("tmp")),
        Vec::<std::path::PathBuf>::new()
    );
}
