//! Offline consistency check of a data dir: index ↔ files, accounting, pins
//! and upload sessions; optionally re-hashing every blob. With `repair`, each
//! problem is fixed in the way that keeps the invariants: a blob that is
//! missing or corrupt is forgotten together with every entry that needs it
//! (a cache miss, never wrong content), and derived counters are recomputed.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde::Serialize;

use super::now_ms;
use crate::cas::{Cas, ContentId};
use crate::datadir::DataDir;
use crate::index::{Index, IndexError};

#[derive(Debug, Default, Serialize)]
pub struct FsckReport {
    pub blobs: u64,
    pub entries: u64,
    pub bytes: u64,
    /// Every problem found, in words.
    pub problems: Vec<String>,
    /// Leftovers of interrupted requests (a crash), in words: not problems,
    /// since the next start removes them (and `repair` does now).
    pub leftovers: Vec<String>,
    /// What `repair` did, in words.
    pub repairs: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Called with (bytes hashed so far, total bytes) while verifying content.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

pub fn fsck(
    dir: &DataDir,
    repair: bool,
    verify: bool,
    progress: Progress,
) -> Result<FsckReport, FsckError> {
    let cas = Cas::open(&dir.blobs_dir(), &dir.tmp_dir())?;
    let index = Index::open(&dir.index_dir())?;
    let mut report = FsckReport::default();
    let now = now_ms();

    let trash = index.trash()?;
    for id in &trash {
        let id = *id;
        report.leftovers.push(format!(
            "blob {id}: deletion was interrupted (the next start finishes it)"
        ));
        if repair {
            cas.remove(&id)?;
            index.trash_done(&id)?;
            report.repairs.push(format!("blob {id}: finished deleting"));
        }
    }

    let files: HashMap<ContentId, u64> = cas.list()?.into_iter().collect();
    let mut records = HashMap::new();
    for r in index.all_blobs() {
        let (id, rec) = r?;
        records.insert(id, rec);
    }
    let total: u64 = records.values().map(|r| r.size).sum();
    let mut bad: HashSet<ContentId> = HashSet::new();
    let mut hashed = 0u64;
    for (id, rec) in &records {
        report.blobs += 1;
        report.bytes += rec.size;
        match files.get(id) {
            None => {
                report
                    .problems
                    .push(format!("blob {id}: indexed but its file is missing"));
                bad.insert(*id);
            }
            Some(size) if *size != rec.size => {
                report.problems.push(format!(
                    "blob {id}: file has {size} bytes, the index says {}",
                    rec.size
                ));
                bad.insert(*id);
            }
            Some(_) if verify => {
                if !content_matches(&cas, id, &rec.sha256, &mut hashed, total, progress)? {
                    report
                        .problems
                        .push(format!("blob {id}: content does not match its hash"));
                    bad.insert(*id);
                }
            }
            Some(_) => {}
        }
    }
    let unrecorded = files
        .keys()
        .filter(|id| !records.contains_key(id) && !trash.contains(id));
    for id in unrecorded {
        report.leftovers.push(format!(
            "blob {id}: file without an index record, from a write a crash interrupted"
        ));
        if repair {
            cas.remove(id)?;
            report
                .repairs
                .push(format!("blob {id}: removed the unindexed file"));
        }
    }

    // Entries that need a bad or missing blob, or a child entry that is gone.
    let mut doomed = Vec::new();
    for e in index.all_entries() {
        let e = e?;
        report.entries += 1;
        let missing_blob = e
            .pins
            .iter()
            .find(|p| bad.contains(p) || !records.contains_key(p));
        let missing_child = e
            .children
            .iter()
            .find(|c| matches!(index.entry_by_key(c), Ok(None)));
        if let Some(p) = missing_blob {
            report.problems.push(format!(
                "entry {} ({}): needs blob {p}, which is unusable",
                e.id, e.key.name
            ));
            doomed.push(e.id);
        } else if let Some(c) = missing_child {
            report.problems.push(format!(
                "entry {} ({}): needs entry {}, which is gone",
                e.id, e.key.name, c.name
            ));
            doomed.push(e.id);
        }
    }
    if repair {
        for id in doomed {
            if let Some(e) = index.remove_entry(id, now)? {
                report.repairs.push(format!(
                    "entry {} ({}): removed (it would serve a broken cache)",
                    id, e.key.name
                ));
            }
        }
        for id in &bad {
            index.forget_blob(id)?;
            index.unlink_all(id)?;
            cas.remove(id)?;
            report
                .repairs
                .push(format!("blob {id}: forgotten and its file removed"));
        }
    }

    let derived = index.compute_derived()?;
    let stored = index.stored_derived()?;
    if derived.used_bytes != stored.used_bytes {
        report.problems.push(format!(
            "usage counter says {} bytes, the blobs add up to {}",
            stored.used_bytes, derived.used_bytes
        ));
    }
    if derived.blobs != stored.blobs {
        report.problems.push(format!(
            "blob counter says {}, the index holds {} blob records",
            stored.blobs, derived.blobs
        ));
    }
    if derived.pins != stored.pins || derived.ns_pins != stored.ns_pins {
        report
            .problems
            .push("pin counts differ from what the entries pin".into());
    }
    if derived.entry_counts != stored.entry_counts {
        report
            .problems
            .push("entry counts differ from the entries".into());
    }
    if derived.ns_usage != stored.ns_usage {
        report
            .problems
            .push("per-namespace usage differs from what the entries pin".into());
    }
    if repair && (derived != stored || !report.repairs.is_empty()) {
        let fresh = index.compute_derived()?;
        index.store_derived(&fresh, now)?;
        report.repairs.push(format!(
            "recounted usage ({} bytes) and pins from the entries",
            fresh.used_bytes
        ));
    }

    let sessions: HashSet<String> = index.uploads()?.into_iter().map(|(id, _)| id).collect();
    for id in &sessions {
        if super::leftovers::holds_nothing(&dir.uploads_dir(), id) {
            report.leftovers.push(format!(
                "upload {id}: session without its file (it never received a byte)"
            ));
            if repair {
                index.remove_upload(id)?;
                report.repairs.push(format!("upload {id}: session removed"));
            }
        }
    }
    for f in std::fs::read_dir(dir.uploads_dir())? {
        let f = f?;
        let name = f.file_name().to_string_lossy().into_owned();
        if !sessions.contains(&name) {
            report
                .leftovers
                .push(format!("upload file {name}: no session owns it"));
            if repair {
                std::fs::remove_file(f.path())?;
                report.repairs.push(format!("upload file {name}: removed"));
            }
        }
    }
    if !repair && !report.leftovers.is_empty() {
        // So that the next start does remove them, as the report says.
        dir.begin_run()?;
    }
    index.flush()?;
    Ok(report)
}

fn content_matches(
    cas: &Cas,
    id: &ContentId,
    sha256: &[u8; 32],
    hashed: &mut u64,
    total: u64,
    progress: Progress,
) -> Result<bool, FsckError> {
    use sha2::Digest as _;
    let mut file = std::fs::File::open(cas.path(id))?;
    let mut b3 = blake3::Hasher::new();
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        b3.update(&buf[..n]);
        sha.update(&buf[..n]);
        *hashed += n as u64;
        progress(*hashed, total);
    }
    let sha: [u8; 32] = sha.finalize().into();
    Ok(b3.finalize().as_bytes() == &id.0 && &sha == sha256)
}
