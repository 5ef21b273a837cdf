//! A large data dir, written straight through the library (the sled index
//! via `Index`, blob files via `Cas` paths) because pushing a million blobs
//! over HTTP would take far longer than the bench. It is cached under
//! `target/startup-bench/` and reused until its parameters or
//! `GENERATOR_VERSION` change.
//!
//! Shape: `blobs` blobs of 16 bytes, all pinned by `entries` OCI manifest
//! entries (each pins ⌈blobs/entries⌉ blobs, its own content first), every
//! blob linked into its repository and every entry tagged, as pushes would
//! leave them. Nothing is unpinned, so the first GC pass at startup has no
//! work that depends on the cached dir's age.

use std::path::{Path, PathBuf};
use std::time::Instant;

use larder::cas::{ContentId, Digest};
use larder::index::{BlobRecord, EntryKey, Index, NewEntry, Protocol};
use sha2::{Digest as _, Sha256};

/// Bump when the shape above or the library's on-disk records change.
const GENERATOR_VERSION: u32 = 3;
const REPOS: usize = 100;

pub struct Params {
    pub blobs: usize,
    pub entries: usize,
    /// Also write the blob files (1 inode and one 4 KiB block each); startup
    /// never reads them, so they are off by default.
    pub with_files: bool,
}

impl Params {
    fn dir_name(&self) -> String {
        format!(
            "v{GENERATOR_VERSION}-b{}-e{}{}",
            self.blobs,
            self.entries,
            if self.with_files { "-files" } else { "" }
        )
    }
}

/// The blob with ordinal `i`: 16 bytes, its BLAKE3 id and SHA-256.
fn blob(i: usize) -> ([u8; 16], ContentId, [u8; 32]) {
    let mut data = [0u8; 16];
    data[..8].copy_from_slice(&(i as u64).to_le_bytes());
    data[8..].copy_from_slice(b"larder-b");
    (
        data,
        ContentId(*blake3::hash(&data).as_bytes()),
        Sha256::digest(data).into(),
    )
}

/// The cached data dir for `p`, generating it first if needed.
pub fn ensure(cache_root: &Path, p: &Params, regenerate: bool) -> anyhow::Result<PathBuf> {
    let dir = cache_root.join(p.dir_name());
    let done = dir.join("GENERATED");
    if done.is_file() && !regenerate {
        return Ok(dir.join("data"));
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    eprintln!(
        "generating {} blobs / {} entries in {} (cached for later runs) …",
        p.blobs,
        p.entries,
        dir.display()
    );
    let started = Instant::now();
    generate(&dir.join("data"), p)?;
    std::fs::write(&done, format!("{:.1}s\n", started.elapsed().as_secs_f64()))?;
    eprintln!("generated in {:.1}s", started.elapsed().as_secs_f64());
    Ok(dir.join("data"))
}

/// Makes `writes` index writes on a stopped data dir, the kind a running
/// server makes all day (recency updates of blobs, as the access flusher
/// writes them), then closes it. sled writes its snapshot only while
/// recovering, so the next start replays every one of these from the log:
/// this is what a start after days of uptime looks like.
pub fn write_since_start(
    root: &Path,
    blobs: usize,
    writes: usize,
    snapshot: bool,
) -> anyhow::Result<()> {
    let data_dir = larder::datadir::DataDir::open(root)?;
    let index = Index::open(&data_dir.index_dir())?;
    let now = larder::cache::now_ms();
    for i in 0..writes {
        // A stride co-prime with the count spreads writes over all blobs.
        let (_, id, _) = blob(i.wrapping_mul(7919) % blobs.max(1));
        index.touch_blob(&id, now + i as u64)?;
    }
    index.flush()?;
    if snapshot {
        let t = std::time::Instant::now();
        anyhow::ensure!(
            index.reopen(std::time::Duration::from_secs(5))?,
            "the index stayed busy"
        );
        eprintln!(
            "index reopened in {:.0} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

fn generate(root: &Path, p: &Params) -> anyhow::Result<()> {
    let data_dir = larder::datadir::DataDir::open(root)?;
    let cas = larder::cas::Cas::open(&data_dir.blobs_dir(), &data_dir.tmp_dir())?;
    let index = Index::open(&data_dir.index_dir())?;
    let now = larder::cache::now_ms();
    let pins_per_entry = p.blobs.div_ceil(p.entries.max(1)).max(1);
    let scope_of = |entry: usize| format!("oci:team-{}/app-{}", entry % 10, entry % REPOS);

    for i in 0..p.blobs {
        let (data, id, sha256) = blob(i);
        let rec = BlobRecord {
            size: data.len() as u64,
            sha256,
            created: now,
            touched: now,
        };
        index.put_blob(&id, &rec, Some(&scope_of(i / pins_per_entry)))?;
        if p.with_files {
            std::fs::write(cas.path(&id), data)?;
        }
        if i % 100_000 == 99_999 {
            eprintln!("  {} blobs", i + 1);
        }
    }
    for e in 0..p.entries {
        let pins: Vec<ContentId> = (0..pins_per_entry)
            .map(|k| blob((e * pins_per_entry + k) % p.blobs).1)
            .collect();
        let (_, _, manifest_sha) = blob(e * pins_per_entry % p.blobs);
        let digest = Digest::Sha256(manifest_sha).to_string();
        let scope = scope_of(e);
        let repo = scope.trim_start_matches("oci:");
        let key = EntryKey {
            protocol: Protocol::Oci,
            namespace: repo.split('/').next().unwrap_or(repo).to_owned(),
            name: format!("{repo}@{digest}"),
        };
        let meta = serde_json::json!({
            "media_type": "application/vnd.oci.image.manifest.v1+json",
            "len": 16,
        });
        index.put_entry(
            &NewEntry {
                key: key.clone(),
                content: pins[0],
                size: 16 * pins.len() as u64,
                pins,
                meta: serde_json::to_vec(&meta)?,
                children: Vec::new(),
            },
            now,
        )?;
        index.set_name(&scope, &format!("cache-{e}"), &key)?;
        if e % 20_000 == 19_999 {
            eprintln!("  {} entries", e + 1);
        }
    }
    index.flush()?;
    drop(index);
    drop(data_dir);
    Ok(())
}
