//! What is sent: the three blob profiles, the two HTTP-cache profiles, their incompressible content, and
//! BuildKit-shaped cache manifests (image-manifest form) over those blobs.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

/// One blob size driven at one concurrency.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    pub key: &'static str,
    pub label: &'static str,
    pub size: usize,
    pub count: usize,
    pub concurrency: usize,
}

pub const PROFILES: [Profile; 3] = [
    Profile {
        key: "1m",
        label: "1 MiB x64 @16",
        size: 1 << 20,
        count: 64,
        concurrency: 16,
    },
    Profile {
        key: "32m",
        label: "32 MiB x16 @4",
        size: 32 << 20,
        count: 16,
        concurrency: 4,
    },
    Profile {
        key: "4k",
        label: "4 KiB x2000 @32",
        size: 4 << 10,
        count: 2000,
        concurrency: 32,
    },
];

/// The HTTP-cache profiles (Bazel's `cas/` and `ac/` keys over plain HTTP,
/// against nginx): issue 22's small-object and 1 MiB cases.
pub const HTTP_PROFILES: [Profile; 2] = [
    Profile {
        key: "http4k",
        label: "HTTP 4 KiB x10000 @32",
        size: 4 << 10,
        count: 10_000,
        concurrency: 32,
    },
    Profile {
        key: "http1m",
        label: "HTTP 1 MiB x500 @32",
        size: 1 << 20,
        count: 500,
        concurrency: 32,
    },
];

/// The REAPI profiles (Bazel's gRPC cache, beside Larder's HTTP cache):
/// issue 24's sizes and concurrency.
pub const REAPI_PROFILES: [Profile; 2] = [
    Profile {
        key: "reapi4k",
        label: "REAPI 4 KiB x10000 @32",
        size: 4 << 10,
        count: 10_000,
        concurrency: 32,
    },
    Profile {
        key: "reapi1m",
        label: "REAPI 1 MiB x500 @32",
        size: 1 << 20,
        count: 500,
        concurrency: 32,
    },
];

impl Profile {
    /// Small operations (HEAD, misses) per phase: enough for a real p99.
    pub fn small_ops(&self) -> usize {
        MIN_SMALL_OPS.max(self.count)
    }

    /// Blob reads per phase: every blob at least once and enough bytes for
    /// large blobs, but no more requests than the small operations make
    /// (the registry serves 4 KiB GETs at a few hundred/s).
    pub fn reads(&self) -> usize {
        (MIN_GET_BYTES / self.size).clamp(self.count, self.small_ops())
    }
}

/// Latency-bound operations repeat at least this often (cycling over the
/// blobs), so a p99 is a real percentile rather than the maximum.
pub const MIN_SMALL_OPS: usize = 2000;
/// Repeatable operations (HEAD, GET) also run at least this long.
pub const MIN_SECONDS: f64 = 1.0;
/// Blob GETs read at least this many bytes per profile.
pub const MIN_GET_BYTES: usize = 256 << 20;
pub const MANIFEST_PUTS: usize = 1000;
pub const MANIFEST_GETS: usize = 1000;
/// Layers per cache manifest (BuildKit's caches list a handful to hundreds).
pub const LAYERS_PER_MANIFEST: usize = 8;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CACHE_CONFIG: &str = "application/vnd.buildkit.cacheconfig.v0";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A blob and the digest clients name it by.
#[derive(Clone)]
pub struct Blob {
    pub data: Bytes,
    pub digest: String,
}

impl Blob {
    pub fn new(data: Bytes) -> Blob {
        let digest = sha256_digest(&data);
        Blob { data, digest }
    }
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Incompressible bytes (xorshift64), distinct per seed.
pub fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// The blobs of a profile: `count` layers of `size` bytes, seeded by the
/// run's nonce so a rerun against a long-lived --target never deduplicates.
pub fn blobs(p: &Profile, count: usize, nonce: u64) -> Vec<Blob> {
    (0..count)
        .map(|i| {
            Blob::new(random_bytes(
                p.size,
                nonce ^ ((i as u64) << 20) ^ p.size as u64,
            ))
        })
        .collect()
}

/// A BuildKit cache manifest (image-manifest form) whose config is `config`
/// and whose layers are a window of `layers`; `i` makes each one distinct.
pub fn cache_manifest(i: usize, config: &Blob, layers: &[Blob]) -> Blob {
    let window = layers.len().min(LAYERS_PER_MANIFEST);
    let layer_descs: Vec<serde_json::Value> = (0..window)
        .map(|k| {
            let b = &layers[(i + k) % layers.len()];
            serde_json::json!({
                "mediaType": LAYER,
                "digest": b.digest,
                "size": b.data.len(),
                "annotations": {"buildkit/createdat": "2024-01-01T00:00:00Z",
                                "containerd.io/uncompressed": b.digest},
            })
        })
        .collect();
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CACHE_CONFIG, "digest": config.digest, "size": config.data.len()},
        "layers": layer_descs,
        "annotations": {"larder.bench/seq": i.to_string()},
    });
    Blob::new(Bytes::from(
        serde_json::to_vec_pretty(&doc).expect("manifest JSON"),
    ))
}
