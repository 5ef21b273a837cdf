//! docs/USING.md's skopeo recipe against a server that requires tokens: a
//! namespace token given as `--dest-creds`/`--src-creds`/`--creds` (any user
//! name, the token as password) copies an image in and out over plain HTTP
//! (`--*-tls-verify=false`), inspects it and lists its tags; without
//! credentials, or with a read-only token, the push is refused.

mod common;
mod httpcache_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use httpcache_support::{token, token_server, RO, RW};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI image layout with one small image tagged `tag`; its manifest.
fn write_layout(dir: &Path, tag: &str) -> Vec<u8> {
    let layer = b"a layer blob, copied as it is".to_vec();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [sha256(&layer)] },
        "config": {}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(&config),
            "size": config.len()
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha256(&layer),
            "size": layer.len()
        }]
    }))
    .unwrap();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for blob in [&layer, &config, &manifest] {
        std::fs::write(blobs.join(&sha256(blob)[7..]), blob).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&manifest),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag }
        }]
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    manifest
}

/// skopeo with a private, empty configuration (no stored credentials).
struct Skopeo {
    bin: PathBuf,
    root: tempfile::TempDir,
}

impl Skopeo {
    fn new(bin: PathBuf) -> Skopeo {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        for sub in ["home", "tmp", "registries.d"] {
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

    /// `skopeo ARGS`: (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let p = self.root.path();
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--policy")
            .arg(p.join("policy.json"))
            .arg("--registries.d")
            .arg(p.join("registries.d"))
            .args(["--command-timeout", "120s"])
            .args(args)
            .env("HOME", p.join("home"))
            .env("TMPDIR", p.join("tmp"))
            .env("REGISTRY_AUTH_FILE", p.join("auth.json"))
            .env("CONTAINERS_REGISTRIES_CONF", p.join("registries.conf"))
            .stdin(Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("skopeo starts");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(ok, "skopeo {args:?} failed:\n{stderr}");
        stdout
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_token_copies_images_in_and_out_as_the_docs_show() {
    let Some(bin) = common::require_tool("skopeo") else {
        return;
    };
    let skopeo = Skopeo::new(bin);
    let server = token_server().await;
    let rw = format!("ci:{}", token(&server, &[("team", RW)]));
    let ro = format!("ci:{}", token(&server, &[("team", RO)]));
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let manifest = write_layout(&src, "3.20");
    let from = format!("oci:{}:3.20", src.display());
    let image = format!("docker://{}/team/alpine:3.20", server.addr);

    // Refused without credentials and with a read-only token.
    for creds in [None, Some(ro.as_str())] {
        let mut args = vec!["copy", "--all", "--dest-tls-verify=false"];
        if let Some(c) = creds {
            args.extend(["--dest-creds", c]);
        }
        args.extend([from.as_str(), image.as_str()]);
        let (ok, _, stderr) = skopeo.run(&args).await;
        assert!(!ok, "a push with {creds:?} must be refused");
        assert!(
            stderr.contains("unauthorized") || stderr.contains("denied"),
            "{stderr}"
        );
    }

    skopeo
        .ok(&[
            "copy",
            "--all",
            "--dest-creds",
            &rw,
            "--dest-tls-verify=false",
            &from,
            &image,
        ])
        .await;

    let back = work.path().join("back");
    let to = format!("oci:{}:3.20", back.display());
    // A read-only token pulls.
    skopeo
        .ok(&[
            "copy",
            "--all",
            "--src-creds",
            &ro,
            "--src-tls-verify=false",
            &image,
            &to,
        ])
        .await;
    // What Larder holds (skopeo may have compressed the layer on the way
    // in) is what came back out.
    let raw = skopeo
        .ok(&[
            "inspect",
            "--raw",
            "--creds",
            &rw,
            "--tls-verify=false",
            &image,
        ])
        .await;
    let stored: Value = serde_json::from_str(&raw).unwrap();
    let sent: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(stored["config"], sent["config"], "the config unchanged");
    let index: Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], sha256(raw.as_bytes()));

    let repo = format!("docker://{}/team/alpine", server.addr);
    let tags: Value = serde_json::from_str(
        &skopeo
            .ok(&["list-tags", "--creds", &rw, "--tls-verify=false", &repo])
            .await,
    )
    .unwrap();
    assert_eq!(tags["Tags"], json!(["3.20"]));
}
