//! Usage and traffic over time, for the dashboard: a ring of per-minute
//! buckets for the last hour, of 15-minute buckets for the last day and of
//! 2-hour buckets for the last week. Each ring holds a fixed number of
//! buckets, so memory stays bounded however long the server runs.
//!
//! The metrics' counters restart at zero with the process, so a sampler
//! (a worker, once a minute) adds the difference since its last reading to
//! every ring; the rings are written to `<data_dir>/history.json` after each
//! sample (and at a clean stop) and read back at start, so a restart keeps
//! the week.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::cache::Store;
use crate::metrics::Metrics;
pub use namespaces::{NsCounts, NsReading};

pub mod namespaces;

/// The file, in the data dir, the rings persist to.
pub const FILE: &str = "history.json";

/// The protocols a bucket counts lookups for, in the order of its arrays.
/// New ones go at the end: a file written with fewer loads with zeros for
/// the rest (`padded`).
pub const PROTOCOLS: [&str; PROTOCOL_COUNT] =
    ["oci", "gha", "http", "turbo", "nx", "npm", "pypi", "go"];
pub const PROTOCOL_COUNT: usize = 8;

/// Why writes were refused, in the order of `Reading::refused`: the
/// budget's reasons (`Refusal::name`), then a full disk.
pub const REASONS: [&str; 4] = ["larger_than_hard_limit", "leased", "uploads", "disk_full"];

/// (name, bucket width in seconds, buckets kept) of each ring.
pub const RANGES: [(&str, u64, usize); 3] =
    [("hour", 60, 60), ("day", 900, 96), ("week", 7200, 84)];

/// Cumulative counters at one moment (since the process started), and the
/// used-bytes gauge. The per-protocol bytes and per-reason refusals came
/// later than their totals: a file written before them loads with zeros
/// there (`serde(default)`) and the totals still right; likewise the
/// proxies' protocols, later than the first five (`padded`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    #[serde(deserialize_with = "padded")]
    pub hits: [u64; PROTOCOL_COUNT],
    #[serde(deserialize_with = "padded")]
    pub misses: [u64; PROTOCOL_COUNT],
    pub bytes_in: u64,
    pub bytes_out: u64,
    #[serde(default, deserialize_with = "padded")]
    pub bytes_in_by: [u64; PROTOCOL_COUNT],
    #[serde(default, deserialize_with = "padded")]
    pub bytes_out_by: [u64; PROTOCOL_COUNT],
    pub evictions: u64,
    pub evicted_bytes: u64,
    pub refusals: u64,
    #[serde(default)]
    pub refused: [u64; 4],
    pub used_bytes: u64,
}

impl Reading {
    /// What the metrics and the store say now.
    /// `store` is the embedded store, when it is the one in use.
    pub fn take(metrics: &Metrics, store: Option<&Store>) -> Reading {
        let mut r = Reading::default();
        for (proto, [hits, misses, bytes_in, bytes_out]) in metrics.by_protocol() {
            // Admin and unknown paths move bytes but are not the cache's.
            if let Some(i) = PROTOCOLS.iter().position(|p| *p == proto) {
                r.hits[i] = hits;
                r.misses[i] = misses;
                r.bytes_in_by[i] = bytes_in;
                r.bytes_out_by[i] = bytes_out;
            }
        }
        r.bytes_in = r.bytes_in_by.iter().sum();
        r.bytes_out = r.bytes_out_by.iter().sum();
        if let Some(store) = store {
            let s = store.stats();
            r.evictions = s.evicted_entries;
            r.evicted_bytes = s.evicted_bytes;
            for (reason, n) in store.refusals() {
                if let Some(i) = REASONS.iter().position(|name| *name == reason.name()) {
                    r.refused[i] = n;
                }
            }
            r.refused[REASONS.len() - 1] = store.disk_full_refusals();
            r.refusals = r.refused.iter().sum();
            r.used_bytes = store.usage();
        }
        r
    }

    /// What happened between `earlier` and this reading; the gauge is this
    /// reading's. A counter that went down (it cannot, short of a restart
    /// the caller missed) counts as zero rather than wrapping.
    fn since(&self, earlier: &Reading) -> Reading {
        let sub = |a: u64, b: u64| a.saturating_sub(b);
        Reading {
            hits: sub_each(self.hits, earlier.hits),
            misses: sub_each(self.misses, earlier.misses),
            bytes_in: sub(self.bytes_in, earlier.bytes_in),
            bytes_out: sub(self.bytes_out, earlier.bytes_out),
            bytes_in_by: sub_each(self.bytes_in_by, earlier.bytes_in_by),
            bytes_out_by: sub_each(self.bytes_out_by, earlier.bytes_out_by),
            evictions: sub(self.evictions, earlier.evictions),
            evicted_bytes: sub(self.evicted_bytes, earlier.evicted_bytes),
            refusals: sub(self.refusals, earlier.refusals),
            refused: sub_each(self.refused, earlier.refused),
            used_bytes: self.used_bytes,
        }
    }
}

/// An array of counters as saved by any build: zeros for the places a
/// shorter one lacks (written before those protocols were counted); the
/// places past this build's are dropped.
fn padded<'de, D, const N: usize>(d: D) -> Result<[u64; N], D::Error>
where
    D: serde::Deserializer<'de>,
{
    let saved = Vec::<u64>::deserialize(d)?;
    let mut out = [0; N];
    for (o, s) in out.iter_mut().zip(saved) {
        *o = s;
    }
    Ok(out)
}

fn sub_each<const N: usize>(a: [u64; N], b: [u64; N]) -> [u64; N] {
    std::array::from_fn(|i| a[i].saturating_sub(b[i]))
}

fn add_each<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// What a bucket adds up: the counters' differences summed, gauges taking
/// the newest value.
pub trait Counts: Clone + Default {
    fn add(&mut self, delta: &Self);
}

impl Counts for Reading {
    fn add(&mut self, d: &Reading) {
        add_each(&mut self.hits, &d.hits);
        add_each(&mut self.misses, &d.misses);
        self.bytes_in += d.bytes_in;
        self.bytes_out += d.bytes_out;
        add_each(&mut self.bytes_in_by, &d.bytes_in_by);
        add_each(&mut self.bytes_out_by, &d.bytes_out_by);
        self.evictions += d.evictions;
        self.evicted_bytes += d.evicted_bytes;
        self.refusals += d.refusals;
        add_each(&mut self.refused, &d.refused);
        self.used_bytes = d.used_bytes;
    }
}

/// One bucket: what happened from `start` (unix seconds) for the ring's
/// width, and the gauges at its last sample.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket<C> {
    pub start: u64,
    #[serde(flatten)]
    pub counts: C,
}

/// Buckets of one width, oldest first, at most `capacity` of them and none
/// older than `capacity` widths before the newest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ring<C = Reading> {
    pub width: u64,
    pub capacity: usize,
    pub buckets: VecDeque<Bucket<C>>,
}

impl<C: Counts> Ring<C> {
    pub fn new(width: u64, capacity: usize) -> Ring<C> {
        Ring {
            width,
            capacity,
            buckets: VecDeque::with_capacity(capacity),
        }
    }

    /// Adds `delta`, observed at `now` (unix seconds), to its bucket.
    pub fn add(&mut self, now: u64, delta: &C) {
        let start = now - now % self.width;
        match self.buckets.back_mut() {
            Some(b) if b.start == start => b.counts.add(delta),
            // A clock that stepped back: the newest bucket takes it rather
            // than the ring going out of order.
            Some(b) if b.start > start => b.counts.add(delta),
            _ => {
                let mut counts = C::default();
                counts.add(delta);
                self.buckets.push_back(Bucket { start, counts });
            }
        }
        let oldest = start.saturating_sub(self.width * (self.capacity as u64 - 1));
        while self
            .buckets
            .front()
            .is_some_and(|b| b.start < oldest || self.buckets.len() > self.capacity)
        {
            self.buckets.pop_front();
        }
    }

    /// The saved buckets of a ring of this width, kept within this ring's
    /// bounds (a file from another build, or edited by hand, cannot make a
    /// ring grow past its capacity).
    fn adopt(&mut self, saved: &[Ring<C>]) {
        if let Some(old) = saved.iter().find(|r| r.width == self.width) {
            let skip = old.buckets.len().saturating_sub(self.capacity);
            self.buckets = old
                .buckets
                .iter()
                .skip(skip)
                .filter(|b| b.start % self.width == 0)
                .cloned()
                .collect();
        }
    }
}

/// One ring per range (`RANGES`).
fn new_rings<C: Counts>() -> Vec<Ring<C>> {
    RANGES.iter().map(|(_, w, n)| Ring::new(*w, *n)).collect()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Rings {
    rings: Vec<Ring>,
    /// Absent from files written before namespaces had series.
    #[serde(default)]
    namespaces: namespaces::NsRings,
}

impl Default for Rings {
    fn default() -> Rings {
        Rings {
            rings: new_rings(),
            namespaces: Default::default(),
        }
    }
}

/// The rings and the last readings the sampler took.
#[derive(Default)]
pub struct History {
    rings: Mutex<Rings>,
    last: Mutex<Reading>,
    ns_last: Mutex<NsReading>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl History {
    /// Adds what happened since the last sample, at `now`.
    pub fn sample(&self, reading: Reading, now: u64) {
        let delta = {
            let mut last = lock(&self.last);
            let d = reading.since(&last);
            *last = reading;
            d
        };
        for ring in &mut lock(&self.rings).rings {
            ring.add(now, &delta);
        }
    }

    /// The ring named `range` as of `now`, counting what happened since the
    /// last sample too, so that the newest bucket agrees with `/metrics`.
    pub fn view(&self, range: &str, reading: Reading, now: u64) -> Option<Ring> {
        let i = RANGES.iter().position(|(n, _, _)| *n == range)?;
        let delta = reading.since(&lock(&self.last));
        let mut ring = lock(&self.rings).rings.get(i)?.clone();
        ring.add(now, &delta);
        Some(ring)
    }

    /// Adds what happened in each namespace since the last sample, at `now`.
    pub fn sample_namespaces(&self, reading: NsReading, now: u64) {
        let mut last = lock(&self.ns_last);
        namespaces::sample(&mut lock(&self.rings).namespaces, &last, &reading, now);
        *last = reading;
    }

    /// A namespace's ring named `range` as of `now` (with what happened
    /// since the last sample); None for an unknown range, an empty ring for
    /// a namespace without series.
    pub fn view_namespace(
        &self,
        namespace: &str,
        range: &str,
        reading: &NsCounts,
        now: u64,
    ) -> Option<Ring<NsCounts>> {
        let i = RANGES.iter().position(|(n, _, _)| *n == range)?;
        let delta = namespaces::since(reading, lock(&self.ns_last).get(namespace));
        let (_, width, capacity) = RANGES[i];
        let mut ring = lock(&self.rings)
            .namespaces
            .get(namespace)
            .and_then(|r| r.get(i).cloned())
            .unwrap_or_else(|| Ring::new(width, capacity));
        ring.add(now, &delta);
        Some(ring)
    }

    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(FILE)
    }

    /// Reads the rings a previous run saved. A missing file is an empty
    /// history; an unreadable one is logged and replaced, since losing the
    /// charts must not stop the cache.
    pub fn load(path: &Path) -> History {
        let rings = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Rings>(&bytes) {
                Ok(saved) => Self::adopt(saved),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "history unreadable; starting an empty one");
                    Rings::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Rings::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read history; starting an empty one");
                Rings::default()
            }
        };
        History {
            rings: Mutex::new(rings),
            last: Mutex::default(),
            ns_last: Mutex::default(),
        }
    }

    /// Takes the rings a previous run saved at `path` (see `load`), keeping
    /// this process's last reading.
    pub fn restore(&self, path: &Path) {
        let loaded = Self::load(path);
        *lock(&self.rings) = std::mem::take(&mut *lock(&loaded.rings));
    }

    /// Keeps the saved buckets of rings this build still has, with this
    /// build's widths and bounds.
    fn adopt(saved: Rings) -> Rings {
        let mut rings = Rings::default();
        for ring in &mut rings.rings {
            ring.adopt(&saved.rings);
        }
        rings.namespaces = namespaces::adopt(&saved.namespaces);
        rings
    }

    /// Writes the rings atomically: a crash leaves the old file or the new.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&*lock(&self.rings)).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests;
