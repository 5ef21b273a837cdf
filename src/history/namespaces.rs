//! Per-namespace series for the dashboard's namespace chart: lookups (hits,
//! misses) and used bytes, in the same rings as the server's. At most
//! `MAX_NAMESPACES` namespaces have series; a namespace that had none for a
//! week (purged, or idle and empty) gives its place up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{new_rings, Counts, Ring, RANGES};
use crate::cache::Store;
use crate::metrics::Metrics;

/// Namespaces with series of their own: bounds memory and `history.json`.
pub const MAX_NAMESPACES: usize = 100;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsCounts {
    pub hits: u64,
    pub misses: u64,
    pub used_bytes: u64,
}

impl Counts for NsCounts {
    fn add(&mut self, d: &NsCounts) {
        self.hits += d.hits;
        self.misses += d.misses;
        self.used_bytes = d.used_bytes;
    }
}

/// Per namespace: lookups since the process started, used bytes now.
pub type NsReading = BTreeMap<String, NsCounts>;

/// What the metrics and the store say now, per namespace.
pub fn take(metrics: &Metrics, store: Option<&Store>) -> NsReading {
    let mut r: NsReading = metrics
        .lookups_by_namespace()
        .into_iter()
        .map(|(ns, [hits, misses])| {
            let c = NsCounts {
                hits,
                misses,
                used_bytes: 0,
            };
            (ns, c)
        })
        .collect();
    match store.map_or(Ok(Vec::new()), Store::namespace_usage) {
        Ok(usage) => {
            for (ns, bytes) in usage {
                r.entry(ns).or_default().used_bytes = bytes;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read usage per namespace for the history"),
    }
    r
}

/// `now` minus `earlier` for one namespace; used bytes are `now`'s.
pub fn since(now: &NsCounts, earlier: Option<&NsCounts>) -> NsCounts {
    let e = earlier.copied().unwrap_or_default();
    NsCounts {
        hits: now.hits.saturating_sub(e.hits),
        misses: now.misses.saturating_sub(e.misses),
        used_bytes: now.used_bytes,
    }
}

pub type NsRings = BTreeMap<String, Vec<Ring<NsCounts>>>;

/// Adds each namespace's difference since `last` at `now`, and drops the
/// series of namespaces with no bucket in the last week.
pub fn sample(rings: &mut NsRings, last: &NsReading, reading: &NsReading, now: u64) {
    for (ns, counts) in reading {
        if !rings.contains_key(ns) && rings.len() >= MAX_NAMESPACES {
            continue;
        }
        let delta = since(counts, last.get(ns));
        for ring in rings.entry(ns.clone()).or_insert_with(new_rings) {
            ring.add(now, &delta);
        }
    }
    let (_, width, capacity) = RANGES[RANGES.len() - 1];
    let week = width * capacity as u64;
    rings.retain(|_, r| {
        r.last()
            .and_then(|ring| ring.buckets.back())
            .is_some_and(|b| b.start + week > now)
    });
}

/// Saved series within this build's bounds.
pub fn adopt(saved: &NsRings) -> NsRings {
    saved
        .iter()
        .take(MAX_NAMESPACES)
        .map(|(ns, old)| {
            let mut rings = new_rings();
            for ring in &mut rings {
                ring.adopt(old);
            }
            (ns.clone(), rings)
        })
        .collect()
}
