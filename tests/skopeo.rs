//! Real-client tests with `skopeo`: OCI image layouts built here on disk are
//! copied into Larder and back, and every manifest and blob must come back
//! byte for byte (also after a restart). `skopeo inspect`, `list-tags` and
//! `delete` run against Larder too.
//!
//! skopeo is isolated from the machine's configuration: a temp `HOME`, an
//! empty auth file, an accept-anything trust policy, an empty
//! `registries.conf` and an empty `registries.d`. Larder speaks plain HTTP;
//! with `--tls-verify=false` skopeo tries HTTPS first and falls back to HTTP.
//! Every run uses `--debug`, and a failure prints skopeo's log (every
//! request it made) so the failing exchange is visible; set
//! `LARDER_TEST_SKOPEO_LOG=1` to print it for every run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

// ---------------------------------------------------------------------------
// Image content: tar layers, gzip, configs, manifests, indexes.

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Deterministic filler that gzip cannot shrink (xorshift64).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A ustar archive of regular files (mode 0644, owned by root, mtime 0).
fn tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    fn octal(field: &mut [u8], value: u64) {
        let text = format!("{value:0width$o}", width = field.len() - 1);
        field[..text.len()].copy_from_slice(text.as_bytes());
        field[text.len()] = 0;
    }
    let mut out = Vec::new();
    for (name, data) in files {
        assert!(name.len() < 100, "tar name too long: {name}");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 0);
        h[148..156].fill(b' ');
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(text.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid gzip member holding `data` in stored (uncompressed) deflate blocks.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() })
}

/// One platform image: a config, its gzip'd tar layers and the manifest.
struct Image {
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
    manifest: Vec<u8>,
}

impl Image {
    /// `layer_files[i]` are the files of layer i.
    fn new(arch: &str, layer_files: Vec<Vec<(&str, Vec<u8>)>>) -> Image {
        let tars: Vec<Vec<u8>> = layer_files.iter().map(|f| tar(f)).collect();
        let layers: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "config": { "Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/app/run"] },
            "rootfs": {
                "type": "layers",
                "diff_ids": tars.iter().map(|t| sha256(t)).collect::<Vec<_>>(),
            },
            "history": (0..tars.len())
                .map(|i| json!({ "created_by": format!("larder skopeo test layer {i}") }))
                .collect::<Vec<_>>(),
        }))
        .unwrap();
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, &config),
            "layers": layers.iter().map(|l| descriptor(OCI_LAYER_GZIP, l)).collect::<Vec<_>>(),
        }))
        .unwrap();
        Image {
            config,
            layers,
            manifest,
        }
    }

    /// A two-layer image: a small layer and one of several deflate blocks.
    fn sample(arch: &str, seed: u64) -> Image {
        Image::new(
            arch,
            vec![
                vec![
                    (
                        "etc/larder-test",
                        format!("arch={arch} seed={seed}\n").into_bytes(),
                    ),
                    ("app/run", b"#!/bin/sh\necho hello from larder\n".to_vec()),
                ],
                vec![("app/data.bin", noise(seed, 300_000 + seed as usize))],
            ],
        )
    }

    fn digest(&self) -> String {
        sha256(&self.manifest)
    }

    fn layer_digests(&self) -> Vec<String> {
        self.layers.iter().map(|l| sha256(l)).collect()
    }

    /// Every blob of the image, the manifest included.
    fn blobs(&self) -> Vec<Vec<u8>> {
        let mut all = vec![self.config.clone(), self.manifest.clone()];
        all.extend(self.layers.iter().cloned());
        all
    }
}

/// An image index over platform images.
fn index(images: &[(&Image, &str)]) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": images
            .iter()
            .map(|(image, arch)| {
                let mut d = descriptor(OCI_MANIFEST, &image.manifest);
                d["platform"] = json!({ "architecture": arch, "os": "linux" });
                d
            })
            .collect::<Vec<_>>(),
    }))
    .unwrap()
}

// ---------------------------------------------------------------------------
// OCI image layouts on disk.

/// Writes an `oci:` layout: `oci-layout`, the blobs and an `index.json`
/// naming each `(tag, media type, manifest bytes)` in `refs`.
fn write_layout(dir: &Path, blobs: &[Vec<u8>], refs: &[(&str, &str, &[u8])]) {
    let blob_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for blob in blobs {
        let digest = sha256(blob);
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::write(blob_dir.join(hex), blob).unwrap();
    }
    let manifests: Vec<Value> = refs
        .iter()
        .map(|(tag, media_type, manifest)| {
            let mut d = descriptor(media_type, manifest);
            d["annotations"] = json!({ REF_NAME: tag });
            d
        })
        .collect();
    let index = json!({ "schemaVersion": 2, "manifests": manifests });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A layout as written by skopeo: index.json and every blob by digest
/// (each checked against its file name).
struct Layout {
    index: Value,
    blobs: BTreeMap<String, Vec<u8>>,
}

impl Layout {
    fn read(dir: &Path) -> Layout {
        let index: Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        let mut blobs = BTreeMap::new();
        for entry in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
            let entry = entry.unwrap();
            let name = format!("sha256:{}", entry.file_name().to_string_lossy());
            let bytes = std::fs::read(entry.path()).unwrap();
            assert_eq!(sha256(&bytes), name, "blob file content matches its name");
            blobs.insert(name, bytes);
        }
        Layout { index, blobs }
    }

    /// The descriptor `index.json` records for `tag`.
    fn descriptor(&self, tag: &str) -> &Value {
        self.index["manifests"]
            .as_array()
            .expect("index.json has manifests")
            .iter()
            .find(|d| d["annotations"][REF_NAME] == tag)
            .unwrap_or_else(|| panic!("no {tag} in index.json: {}", self.index))
    }
}

/// Asserts that `layout` holds exactly `expected` (by digest, byte for byte)
/// and that `tag` names `manifest`.
fn assert_layout(
    layout: &Layout,
    tag: &str,
    media_type: &str,
    manifest: &[u8],
    expected: &[Vec<u8>],
) {
    let d = layout.descriptor(tag);
    assert_eq!(d["digest"], sha256(manifest), "manifest digest of {tag}");
    assert_eq!(d["size"], manifest.len(), "manifest size of {tag}");
    assert_eq!(d["mediaType"], media_type, "manifest media type of {tag}");
    let want: BTreeMap<String, &[u8]> =
        expected.iter().map(|b| (sha256(b), b.as_slice())).collect();
    assert_eq!(
        layout.blobs.keys().collect::<BTreeSet<_>>(),
        want.keys().collect::<BTreeSet<_>>(),
        "the copied layout holds exactly the original blobs"
    );
    for (digest, bytes) in &want {
        assert!(
            layout.blobs[digest] == *bytes,
            "blob {digest} came back byte-identical"
        );
    }
}

// ---------------------------------------------------------------------------
// Running skopeo.

/// skopeo with a private, empty configuration.
struct Skopeo {
    bin: PathBuf,
    root: tempfile::TempDir,
}

/// What a finished skopeo run printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
    what: String,
}

impl Skopeo {
    fn new(bin: PathBuf) -> Skopeo {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        for sub in ["home", "run", "config", "registries.d", "tmp"] {
            std::fs::create_dir_all(p.join(sub)).unwrap();
        }
        std::fs::write(p.join("auth.json"), "{}").unwrap();
        std::fs::write(p.join("registries.conf"), "").unwrap();
        std::fs::write(
            p.join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        Skopeo { bin, root }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.root.path().join(sub)
    }

    /// `skopeo <global flags> <command> --authfile … <rest>`.
    async fn run(&self, command: &str, rest: &[&str]) -> Run {
        let mut cmd = Command::new(&self.bin);
        let mut args: Vec<OsString> = vec![
            "--debug".into(),
            "--command-timeout".into(),
            "180s".into(),
            "--policy".into(),
            self.path("policy.json").into(),
            "--registries.d".into(),
            self.path("registries.d").into(),
            "--tmpdir".into(),
            self.path("tmp").into(),
            command.into(),
            "--authfile".into(),
            self.path("auth.json").into(),
        ];
        args.extend(rest.iter().map(OsString::from));
        let what = format!(
            "skopeo {command} {}",
            rest.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        cmd.args(&args)
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("REGISTRY_AUTH_FILE", self.path("auth.json"))
            .env("CONTAINERS_REGISTRIES_CONF", self.path("registries.conf"))
            .env("TMPDIR", self.path("tmp"))
            .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("skopeo runner")
            .expect("skopeo starts");
        if std::env::var_os("LARDER_TEST_SKOPEO_LOG").is_some() {
            eprintln!(
                "=== {what} ({})\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            what,
        }
    }

    /// Runs and requires success; returns stdout.
    async fn ok(&self, command: &str, rest: &[&str]) -> String {
        let run = self.run(command, rest).await;
        assert!(
            run.ok,
            "`{}` failed\n--- stdout\n{}\n--- stderr (skopeo --debug)\n{}",
            run.what, run.stdout, run.stderr
        );
        run.stdout
    }

    /// Runs and requires failure; returns stderr.
    async fn fails(&self, command: &str, rest: &[&str]) -> String {
        let run = self.run(command, rest).await;
        assert!(
            !run.ok,
            "`{}` succeeded but should have failed\n--- stdout\n{}",
            run.what, run.stdout
        );
        run.stderr
    }

    async fn json(&self, command: &str, rest: &[&str]) -> Value {
        let out = self.ok(command, rest).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("skopeo {command}: {e}: {out}"))
    }
}

fn oci_ref(dir: &Path, tag: &str) -> String {
    let dir = dir.to_str().expect("utf-8 temp path");
    assert!(!dir.contains(':'), "oci: paths cannot contain ':'");
    format!("oci:{dir}:{tag}")
}

fn docker_ref(server: &common::TestServer, repo_and_ref: &str) -> String {
    format!("docker://{}/{repo_and_ref}", server.addr)
}

/// `skopeo copy` that keeps the manifest and every blob as they are.
const COPY_AS_IS: [&str; 3] = ["--preserve-digests", "--format", "oci"];

// ---------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_round_trips_byte_identical_across_restart() {
    let Some(bin) = common::require_tool("skopeo") else {
        return;
    };
    let skopeo = Skopeo::new(bin);
    let work = tempfile::tempdir().unwrap();
    let image = Image::sample("amd64", 1);
    let src = work.path().join("src");
    write_layout(
        &src,
        &image.blobs(),
        &[("v1", OCI_MANIFEST, &image.manifest)],
    );

    let server = common::TestServer::start().await;
    let digestfile = work.path().join("pushed-digest");
    let digestfile_arg = digestfile.to_str().unwrap();
    let mut push = COPY_AS_IS.to_vec();
    let (from, to) = (oci_ref(&src, "v1"), docker_ref(&server, "team/app:v1"));
    push.extend([
        "--digestfile",
        digestfile_arg,
        "--dest-tls-verify=false",
        &from,
        &to,
    ]);
    skopeo.ok("copy", &push).await;
    assert_eq!(
        std::fs::read_to_string(&digestfile).unwrap().trim(),
        image.digest(),
        "skopeo pushed the manifest unchanged"
    );

    let back = work.path().join("back");
    let mut pull = COPY_AS_IS.to_vec();
    let (from, to) = (docker_ref(&server, "team/app:v1"), oci_ref(&back, "v1"));
    pull.extend(["--src-tls-verify=false", &from, &to]);
    skopeo.ok("copy", &pull).await;
    let layout = Layout::read(&back);
    assert_layout(&layout, "v1", OCI_MANIFEST, &image.manifest, &image.blobs());

    // By digest, too.
    let again = work.path().join("by-digest");
    let mut pull = COPY_AS_IS.to_vec();
    let from = docker_ref(&server, &format!("team/app@{}", image.digest()));
    let to = oci_ref(&again, "pinned");
    pull.extend(["--src-tls-verify=false", &from, &to]);
    skopeo.ok("copy", &pull).await;
    assert_layout(
        &Layout::read(&again),
        "pinned",
        OCI_MANIFEST,
        &image.manifest,
        &image.blobs(),
    );

    let server = server.restart().await;
    let after = work.path().join("after-restart");
    let mut pull = COPY_AS_IS.to_vec();
    let (from, to) = (docker_ref(&server, "team/app:v1"), oci_ref(&after, "v1"));
    pull.extend(["--src-tls-verify=false", &from, &to]);
    skopeo.ok("copy", &pull).await;
    let restarted = Layout::read(&after);
    assert_layout(
        &restarted,
        "v1",
        OCI_MANIFEST,
        &image.manifest,
        &image.blobs(),
    );
    assert_eq!(
        restarted.blobs, layout.blobs,
        "the same bytes before and after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_arch_index_round_trips_with_all() {
    let Some(bin) = common::require_tool("skopeo") else {
        return;
    };
    let skopeo = Skopeo::new(bin);
    let work = tempfile::tempdir().unwrap();
    let one_layer = |arch: &str, seed: u64| {
        Image::new(
            arch,
            vec![vec![
                ("etc/arch", format!("{arch}\n").into_bytes()),
                ("app/data.bin", noise(seed, 100_000)),
            ]],
        )
    };
    let amd64 = one_layer("amd64", 10);
    let arm64 = one_layer("arm64", 20);
    let index = index(&[(&amd64, "amd64"), (&arm64, "arm64")]);
    let mut blobs = amd64.blobs();
    blobs.extend(arm64.blobs());
    blobs.push(index.clone());
    let src = work.path().join("src");
    write_layout(&src, &blobs, &[("multi", OCI_INDEX, &index)]);

    let server = common::TestServer::start().await;
    let mut push = vec!["--all"];
    push.extend(COPY_AS_IS);
    let (from, to) = (oci_ref(&src, "multi"), docker_ref(&server, "team/multi:v1"));
    push.extend(["--dest-tls-verify=false", &from, &to]);
    skopeo.ok("copy", &push).await;

    let raw = skopeo
        .ok(
            "inspect",
            &[
                "--raw",
                "--tls-verify=false",
                &docker_ref(&server, "team/multi:v1"),
            ],
        )
        .await;
    assert!(
        raw.as_bytes() == index.as_slice(),
        "the index is served as pushed: {raw}"
    );

    let back = work.path().join("back");
    let mut pull = vec!["--all"];
    pull.extend(COPY_AS_IS);
    let (from, to) = (
        docker_ref(&server, "team/multi:v1"),
        oci_ref(&back, "multi"),
    );
    pull.extend(["--src-tls-verify=false", &from, &to]);
    skopeo.ok("copy", &pull).await;
    assert_layout(&Layout::read(&back), "multi", OCI_INDEX, &index, &blobs);

    // skopeo picks each platform's manifest out of the index.
    for (image, arch) in [(&amd64, "amd64"), (&arm64, "arm64")] {
        let info = skopeo
            .json(
                "inspect",
                &[
                    "--override-os",
                    "linux",
                    "--override-arch",
                    arch,
                    "--tls-verify=false",
                    &docker_ref(&server, "team/multi:v1"),
                ],
            )
            .await;
        assert_eq!(info["Architecture"], arch, "{info}");
        assert_eq!(info["Layers"], json!(image.layer_digests()), "{info}");
        let config = skopeo
            .ok(
                "inspect",
                &[
                    "--override-os",
                    "linux",
                    "--override-arch",
                    arch,
                    "--config",
                    "--raw",
                    "--tls-verify=false",
                    &docker_ref(&server, "team/multi:v1"),
                ],
            )
            .await;
        assert!(
            config.as_bytes() == image.config.as_slice(),
            "{arch} config: {config}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_list_tags_and_delete() {
    let Some(bin) = common::require_tool("skopeo") else {
        return;
    };
    let skopeo = Skopeo::new(bin);
    let work = tempfile::tempdir().unwrap();
    let app = Image::sample("amd64", 2);
    let old = Image::sample("amd64", 3);
    let src = work.path().join("src");
    let mut blobs = app.blobs();
    blobs.extend(old.blobs());
    write_layout(
        &src,
        &blobs,
        &[
            ("app", OCI_MANIFEST, &app.manifest),
            ("old", OCI_MANIFEST, &old.manifest),
        ],
    );

    let server = common::TestServer::start().await;
    let repo = |r: &str| docker_ref(&server, &format!("team/app{r}"));
    for (from, to) in [("app", ":v1"), ("old", ":old")] {
        let mut push = COPY_AS_IS.to_vec();
        let (from, to) = (oci_ref(&src, from), repo(to));
        push.extend(["--dest-tls-verify=false", &from, &to]);
        skopeo.ok("copy", &push).await;
    }
    // A second tag, registry to registry (the blobs are already there).
    let mut retag = COPY_AS_IS.to_vec();
    let (from, to) = (repo(":v1"), repo(":v2"));
    retag.extend([
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &from,
        &to,
    ]);
    skopeo.ok("copy", &retag).await;

    let no_tls = "--tls-verify=false";
    let raw = skopeo.ok("inspect", &["--raw", no_tls, &repo(":v2")]).await;
    assert!(
        raw.as_bytes() == app.manifest.as_slice(),
        "manifest as pushed: {raw}"
    );
    let raw_config = skopeo
        .ok("inspect", &["--config", "--raw", no_tls, &repo(":v1")])
        .await;
    assert!(
        raw_config.as_bytes() == app.config.as_slice(),
        "config as pushed: {raw_config}"
    );
    let config = skopeo
        .json("inspect", &["--config", no_tls, &repo(":v1")])
        .await;
    assert_eq!(
        config,
        serde_json::from_slice::<Value>(&app.config).unwrap()
    );

    let info = skopeo.json("inspect", &[no_tls, &repo(":v1")]).await;
    assert_eq!(info["Digest"], app.digest(), "{info}");
    assert_eq!(info["Architecture"], "amd64", "{info}");
    assert_eq!(info["Os"], "linux", "{info}");
    assert_eq!(info["Layers"], json!(app.layer_digests()), "{info}");
    let tags_of = |v: &Value, key: &str| -> BTreeSet<String> {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key} in {v}"))
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };
    let all: BTreeSet<String> = ["v1", "v2", "old"].map(String::from).into();
    assert_eq!(tags_of(&info, "RepoTags"), all);

    let listed = skopeo.json("list-tags", &[no_tls, &repo("")]).await;
    assert_eq!(tags_of(&listed, "Tags"), all);

    // Deleting a tag deletes its manifest; other images stay.
    skopeo.ok("delete", &[no_tls, &repo(":old")]).await;
    let err = skopeo
        .fails("inspect", &["--raw", no_tls, &repo(":old")])
        .await;
    assert!(err.contains("manifest unknown"), "{err}");
    let listed = skopeo.json("list-tags", &[no_tls, &repo("")]).await;
    assert_eq!(
        tags_of(&listed, "Tags"),
        ["v1", "v2"].map(String::from).into()
    );
    let raw = skopeo.ok("inspect", &["--raw", no_tls, &repo(":v1")]).await;
    assert!(raw.as_bytes() == app.manifest.as_slice());

    // By digest: the manifest and every tag naming it are gone.
    let pinned = repo(&format!("@{}", app.digest()));
    skopeo.ok("delete", &[no_tls, &pinned]).await;
    for gone in [pinned, repo(":v1"), repo(":v2")] {
        let err = skopeo.fails("inspect", &["--raw", no_tls, &gone]).await;
        assert!(err.contains("manifest unknown"), "{gone}: {err}");
    }
}
