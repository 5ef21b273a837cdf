//! BuildKit's `type=registry` cache, request for request (docs/USING.md, the registry cache):
//! export (HEAD, POST, PUT per blob, four at a time; manifest HEAD then PUT;
//! a second export that skips everything) and import (HEAD tag, GET by
//! digest, the cache config, layers with resumed ranged reads), for both
//! cache manifest shapes, stored byte-exact in `tests/fixtures/`.

mod common;
mod oci_support;

use std::path::Path;

use common::TestServer;
use futures_util::future::join_all;
use oci_support::*;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RANGE};
use reqwest::{Client, StatusCode};
use serde_json::Value;

/// The layer blobs the fixtures reference: (seed, size) for `fixed_bytes`.
const LAYERS: [(u32, usize); 4] = [(1, 1_048_593), (2, 70_001), (3, 4_096), (4, 523)];

/// The fixtures' digests, so that an accidental reformat is caught.
const INDEX_DIGEST: &str =
    "sha256:de4785b23368a807dbe1c9dce2ac74b9984c60f68661bc8313b6dd26189ef3ba";
const LIST_DIGEST: &str = "sha256:8dc9e2c714b71d979f1ef56a79917a1e819575f7a1b63790792eaef9ef99cbfd";
const MANIFEST_DIGEST: &str =
    "sha256:6e79007eeb7d2ebad050f436f0f1dd6f2a72bd56e078c30b2806683bd79966ac";
const CACHE_CONFIG_DIGEST: &str =
    "sha256:a1d745a06d8f8dd29a462ea812fc31802e1400a19e7c7374902bc8575e2832d2";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn layers() -> Vec<Vec<u8>> {
    LAYERS
        .iter()
        .map(|&(seed, len)| fixed_bytes(seed, len))
        .collect()
}

/// A cache manifest as BuildKit writes it.
struct CacheManifest {
    file: &'static str,
    media_type: &'static str,
    digest: &'static str,
    /// Layer media type used in the manifest.
    layer_type: &'static str,
}

const INDEX_FORM: CacheManifest = CacheManifest {
    file: "buildkit-cache-index.json",
    media_type: OCI_INDEX,
    digest: INDEX_DIGEST,
    layer_type: OCI_LAYER_GZIP,
};
const LIST_FORM: CacheManifest = CacheManifest {
    file: "buildkit-cache-manifest-list.json",
    media_type: DOCKER_LIST,
    digest: LIST_DIGEST,
    layer_type: DOCKER_LAYER_GZIP,
};
const MANIFEST_FORM: CacheManifest = CacheManifest {
    file: "buildkit-cache-manifest.json",
    media_type: OCI_MANIFEST,
    digest: MANIFEST_DIGEST,
    layer_type: OCI_LAYER_GZIP,
};

/// (layer descriptors, cache config descriptor) of a cache manifest.
fn cache_descriptors(doc: &Value) -> (Vec<Value>, Value) {
    if let Some(manifests) = doc["manifests"].as_array() {
        let (config, layers): (Vec<Value>, Vec<Value>) = manifests
            .iter()
            .cloned()
            .partition(|d| d["mediaType"] == BUILDKIT_CACHE_CONFIG);
        assert_eq!(config.len(), 1, "one cache config in the index");
        (layers, config[0].clone())
    } else {
        (
            doc["layers"].as_array().expect("layers").clone(),
            doc["config"].clone(),
        )
    }
}

#[test]
fn fixtures_match_the_blobs_the_tests_push() {
    let layers = layers();
    let config = fixture("buildkit-cacheconfig.json");
    assert_eq!(sha256_digest(&config), CACHE_CONFIG_DIGEST);
    let config_doc: Value = serde_json::from_slice(&config).unwrap();
    let blobs: Vec<&str> = config_doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["blob"].as_str().unwrap())
        .collect();
    let layer_digests: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
    assert_eq!(blobs, layer_digests, "the cache config names the layers");

    for form in [INDEX_FORM, LIST_FORM, MANIFEST_FORM] {
        let bytes = fixture(form.file);
        assert_eq!(
            sha256_digest(&bytes),
            form.digest,
            "{} was reformatted",
            form.file
        );
        assert!(
            !bytes.contains(&b'\n') && !bytes.windows(2).any(|w| w == b": "),
            "{} is compact, as json.Marshal writes it",
            form.file
        );
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["schemaVersion"], 2);
        assert_eq!(doc["mediaType"], form.media_type);
        let (descs, config_desc) = cache_descriptors(&doc);
        assert_eq!(config_desc["mediaType"], BUILDKIT_CACHE_CONFIG);
        assert_eq!(config_desc["digest"], CACHE_CONFIG_DIGEST);
        assert_eq!(config_desc["size"], config.len());
        assert_eq!(descs.len(), layers.len());
        for (d, layer) in descs.iter().zip(&layers) {
            assert_eq!(d["mediaType"], form.layer_type, "{}", form.file);
            assert_eq!(d["digest"], sha256_digest(layer), "{}", form.file);
            assert_eq!(d["size"], layer.len(), "{}", form.file);
            assert!(d["annotations"]["buildkit/createdat"].is_string());
            assert!(d["annotations"]["containerd.io/uncompressed"]
                .as_str()
                .is_some_and(|u| u.starts_with("sha256:")));
        }
    }
}

/// Go's `url.QueryEscape` for the characters that occur in digests and
/// repository names.
fn go_escape(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

/// What one export did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Export {
    uploaded: usize,
    mounted: usize,
    skipped: usize,
    manifest_pushed: bool,
}

enum Pushed {
    Uploaded,
    Mounted,
    Skipped,
}

/// One blob as BuildKit pushes it: `HEAD` (200 ⇒ skip, 404 ⇒ push), an
/// optional mount attempt, `POST` ⇒ 202 + Location, `PUT <Location>&digest=`
/// with the whole blob ⇒ 201 + Docker-Content-Digest.
async fn export_blob(
    client: &Client,
    base: &str,
    repo: &str,
    blob: &[u8],
    mount_from: Option<&str>,
) -> Pushed {
    let digest = sha256_digest(blob);
    let head = client
        .head(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    match head.status() {
        StatusCode::OK => {
            assert_eq!(must_header(&head, "content-length"), blob.len().to_string());
            assert_eq!(must_header(&head, "docker-content-digest"), digest);
            return Pushed::Skipped;
        }
        StatusCode::NOT_FOUND => {}
        other => panic!("HEAD blob {digest}: {other} would fail the export"),
    }
    // containerd builds its queries with Go's url.Values.Encode, which
    // escapes ':' and '/': `?mount=sha256%3A…&from=base%2Fimage`, `&digest=sha256%3A…`.
    let post_url = match mount_from {
        Some(from) => format!(
            "{base}/v2/{repo}/blobs/uploads/?from={}&mount={}",
            go_escape(from),
            go_escape(&digest)
        ),
        None => format!("{base}/v2/{repo}/blobs/uploads/"),
    };
    let res = client.post(&post_url).send().await.unwrap();
    if mount_from.is_some() && res.status() == StatusCode::CREATED {
        assert_eq!(must_header(&res, "docker-content-digest"), digest);
        return Pushed::Mounted;
    }
    let res = expect_status(res, StatusCode::ACCEPTED).await;
    let location = abs_url(base, &must_header(&res, "location"));
    let res = client
        .put(with_query(
            &location,
            &format!("digest={}", go_escape(&digest)),
        ))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(blob.to_vec())
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(
        header(&res, "docker-content-digest").as_deref(),
        Some(digest.as_str()),
        "containerd fails the push without Docker-Content-Digest"
    );
    Pushed::Uploaded
}

/// A whole `--cache-to type=registry` export: layers (four in parallel, or
/// one at a time like old BuildKit), then the cache config, then the manifest.
async fn export(
    client: &Client,
    base: &str,
    repo: &str,
    tag: &str,
    form: &CacheManifest,
    parallel: bool,
    mount_from: Option<&str>,
) -> Export {
    let layers = layers();
    let config = fixture("buildkit-cacheconfig.json");
    let manifest = fixture(form.file);
    let mut log = Export::default();
    let mut record = |p: Pushed| match p {
        Pushed::Uploaded => log.uploaded += 1,
        Pushed::Mounted => log.mounted += 1,
        Pushed::Skipped => log.skipped += 1,
    };
    if parallel {
        let pushes = layers
            .iter()
            .map(|l| export_blob(client, base, repo, l, mount_from));
        for p in join_all(pushes).await {
            record(p);
        }
    } else {
        for l in &layers {
            record(export_blob(client, base, repo, l, mount_from).await);
        }
    }
    record(export_blob(client, base, repo, &config, None).await);

    let head = client
        .head(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header(ACCEPT, ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap();
    let skip = match head.status() {
        StatusCode::OK => header(&head, "docker-content-digest").as_deref() == Some(form.digest),
        StatusCode::NOT_FOUND => false,
        other => panic!("HEAD manifest {tag}: {other} would fail the export"),
    };
    if !skip {
        let res = try_put_manifest(client, base, repo, tag, form.media_type, &manifest).await;
        let res = expect_status(res, StatusCode::CREATED).await;
        assert_eq!(must_header(&res, "docker-content-digest"), form.digest);
        assert!(header(&res, "location").is_some());
        log.manifest_pushed = true;
    }
    log
}

/// A whole `--cache-from type=registry` import, checking every byte.
async fn import(client: &Client, base: &str, repo: &str, tag: &str, form: &CacheManifest) {
    let fixture_bytes = fixture(form.file);
    let head = client
        .head(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header(ACCEPT, ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK, "HEAD manifest {tag}");
    assert_eq!(must_header(&head, "docker-content-digest"), form.digest);
    assert_eq!(
        must_header(&head, "content-length"),
        fixture_bytes.len().to_string()
    );
    assert_eq!(
        must_header(&head, "content-type"),
        form.media_type,
        "the stored Content-Type becomes the descriptor's media type"
    );

    let res = client
        .get(format!("{base}/v2/{repo}/manifests/{}", form.digest))
        .header(ACCEPT, form.media_type)
        .send()
        .await
        .unwrap();
    let res = expect_status(res, StatusCode::OK).await;
    assert_eq!(must_header(&res, "content-type"), form.media_type);
    assert_eq!(must_header(&res, "docker-content-digest"), form.digest);
    let bytes = res.bytes().await.unwrap();
    assert!(
        bytes.as_ref() == fixture_bytes.as_slice(),
        "the manifest is byte-exact"
    );

    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let (layer_descs, config_desc) = cache_descriptors(&doc);
    let config_digest = config_desc["digest"].as_str().unwrap();
    let config = get_blob(client, base, repo, config_digest).await;
    assert_eq!(config, fixture("buildkit-cacheconfig.json"));
    assert!(config.len() <= 1 << 20);

    for (desc, layer) in layer_descs.iter().zip(layers()) {
        let digest = desc["digest"].as_str().unwrap();
        let url = format!("{base}/v2/{repo}/blobs/{digest}");
        let full = get_blob(client, base, repo, digest).await;
        assert!(full == layer, "layer {digest}");

        // A resumed read.
        let size = layer.len();
        let n = size / 3;
        let res = client
            .get(&url)
            .header(RANGE, format!("bytes={n}-"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            must_header(&res, "content-range"),
            format!("bytes {n}-{}/{size}", size - 1)
        );
        let part = res.bytes().await.unwrap();
        assert!(part.as_ref() == &layer[n..], "the resumed read of {digest}");
    }

    // Current containerd may fetch one blob as parallel ranges.
    let big = &layers()[0];
    let digest = sha256_digest(big);
    let url = format!("{base}/v2/{repo}/blobs/{digest}");
    let part = big.len().div_ceil(4);
    let ranges = (0..4).map(|i| {
        let (start, end) = (i * part, ((i + 1) * part).min(big.len()) - 1);
        let req = client
            .get(&url)
            .header(RANGE, format!("bytes={start}-{end}"));
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
            res.bytes().await.unwrap()
        }
    });
    let joined: Vec<u8> = join_all(ranges).await.concat();
    assert!(joined == *big, "parallel ranges reassemble the blob");
}

async fn export_then_import(form: &CacheManifest, parallel: bool) {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    let repo = "app";

    let first = export(&client, &base, repo, "cache", form, parallel, None).await;
    assert_eq!(
        first,
        Export {
            uploaded: 5,
            mounted: 0,
            skipped: 0,
            manifest_pushed: true
        }
    );
    import(&client, &base, repo, "cache", form).await;

    // The next build exports the same cache: every HEAD says 200, nothing is sent.
    let second = export(&client, &base, repo, "cache", form, parallel, None).await;
    assert_eq!(
        second,
        Export {
            uploaded: 0,
            mounted: 0,
            skipped: 5,
            manifest_pushed: false
        }
    );
    import(&client, &base, repo, "cache", form).await;
    let report = assert_manifest_refs_resolve(&server, repo).await;
    assert_eq!(report.tags, ["cache"]);
    assert_eq!(report.blobs.len(), 5, "four layers and the cache config");
    assert_eq!(
        blob_files(&server.data_dir()).len(),
        6,
        "five blobs and the manifest, each stored once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_form_exports_and_imports() {
    export_then_import(&INDEX_FORM, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_manifest_form_exports_and_imports() {
    export_then_import(&MANIFEST_FORM, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_manifest_list_form_exports_and_imports_one_blob_at_a_time() {
    export_then_import(&LIST_FORM, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_cache_forms_reuses_every_blob() {
    // A BuildKit upgrade (0.21 made image-manifest=true the default) pushes
    // the other form over the same ref: blobs are skipped, the manifest moves.
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    export(&client, &base, "app", "cache", &INDEX_FORM, true, None).await;
    let log = export(&client, &base, "app", "cache", &MANIFEST_FORM, true, None).await;
    assert_eq!(
        log,
        Export {
            uploaded: 0,
            mounted: 0,
            skipped: 5,
            manifest_pushed: true
        },
        "the tag pointed at the index, so the manifest HEAD digest differed"
    );
    import(&client, &base, "app", "cache", &MANIFEST_FORM).await;
    // The index is still there by digest.
    let (bytes, content_type, _) = get_manifest(&client, &base, "app", INDEX_DIGEST).await;
    assert_eq!(bytes, fixture(INDEX_FORM.file));
    assert_eq!(content_type, OCI_INDEX);
    let report = check_manifest_refs(&client, &base, "app", &[INDEX_DIGEST.to_owned()]).await;
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    assert_eq!(report.manifests.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_mounts_blobs_from_another_repository() {
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    // The base image's layers already live in another repository.
    for l in &layers()[..2] {
        push_blob(&client, &base, "base/image", l).await;
    }
    let log = export(
        &client,
        &base,
        "app",
        "cache",
        &INDEX_FORM,
        true,
        Some("base/image"),
    )
    .await;
    assert_eq!(
        log,
        Export {
            uploaded: 3,
            mounted: 2,
            skipped: 0,
            manifest_pushed: true
        }
    );
    import(&client, &base, "app", "cache", &INDEX_FORM).await;
    assert_manifest_refs_resolve(&server, "app").await;
    assert_eq!(
        blob_files(&server.data_dir()).len(),
        6,
        "mounting copies nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_manifest_with_a_missing_blob_is_refused() {
    // If an export is interrupted after some blobs, the manifest PUT must not
    // create a cache that points at nothing.
    let server = TestServer::start().await;
    let client = common::client();
    let base = server.base();
    for form in [INDEX_FORM, LIST_FORM, MANIFEST_FORM] {
        let repo = format!("partial/{}", form.file.trim_end_matches(".json"));
        for l in &layers()[1..] {
            push_blob(&client, &base, &repo, l).await;
        }
        push_blob(&client, &base, &repo, &fixture("buildkit-cacheconfig.json")).await;
        let res = try_put_manifest(
            &client,
            &base,
            &repo,
            "cache",
            form.media_type,
            &fixture(form.file),
        )
        .await;
        expect_error(res, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
        let head = client
            .head(format!("{base}/v2/{repo}/manifests/cache"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.status(),
            StatusCode::NOT_FOUND,
            "{repo}: no broken cache"
        );
    }
}
