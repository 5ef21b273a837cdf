//! Per-namespace metrics: cache hits and misses by namespace and protocol,
//! and each namespace's usage.
//!
//! The request middleware knows a lookup's protocol and outcome but not its
//! namespace, which every protocol finds its own way (a path segment, a
//! token's scope). Every protocol does ask `Auth::require` about it, though,
//! so that call notes it in the request's slot (`auth::seen`), which the
//! middleware reads after the handler: one place, whatever the protocol.
//! Only namespaces a caller was allowed count, so probing made-up names adds
//! no series.

pub use super::names::{
    NS_ENTRIES as ENTRIES, NS_HITS as HITS, NS_MISSES as MISSES, NS_USED_BYTES as USED_BYTES,
};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{by_name, escape, lock, NAMES};
use crate::cache::Store;

/// Distinct namespaces counted before the rest share one series: bounds the
/// label's cardinality even where anyone may create namespaces.
const MAX_NAMESPACES: usize = 1000;
/// The namespace label past `MAX_NAMESPACES` (no namespace starts with `_`).
const OTHER: &str = "_other";
/// How long an entry count per namespace is reused: there is no stored
/// counter, so it is counted from the index's per-namespace order, and a
/// scrape every few seconds must not walk the index each time.
const ENTRIES_FRESH_FOR: Duration = Duration::from_secs(60);

/// (namespace, number) pairs.
type Counts = Vec<(String, u64)>;

#[derive(Default)]
struct Lookups {
    /// Namespaces with series of their own (at most `MAX_NAMESPACES`).
    names: HashSet<String>,
    /// namespace → protocol → [hits, misses]; nested so that a namespace
    /// seen before is found by reference, without an allocation.
    counts: BTreeMap<String, BTreeMap<&'static str, [u64; 2]>>,
}

#[derive(Default)]
pub struct PerNamespace {
    lookups: Mutex<Lookups>,
    entries: Mutex<Option<(Instant, Counts)>>,
}

impl PerNamespace {
    pub fn lookup(&self, namespace: &str, protocol: &'static str, hit: bool) {
        let mut l = lock(&self.lookups);
        let ns = if l.names.contains(namespace) {
            namespace
        } else if l.names.len() < MAX_NAMESPACES {
            l.names.insert(namespace.to_owned());
            namespace
        } else {
            OTHER
        };
        let by_protocol = by_name(&mut l.counts, ns);
        by_protocol.entry(protocol).or_default()[usize::from(!hit)] += 1;
    }

    /// [hits, misses] per namespace since the server started, over every
    /// protocol (namespaces past the series limit are under `_other`).
    pub fn lookups_by_namespace(&self) -> BTreeMap<String, [u64; 2]> {
        let mut out: BTreeMap<String, [u64; 2]> = BTreeMap::new();
        for (ns, by_protocol) in &lock(&self.lookups).counts {
            let sum = out.entry(ns.clone()).or_default();
            for [hits, misses] in by_protocol.values() {
                sum[0] += hits;
                sum[1] += misses;
            }
        }
        out
    }

    fn entry_counts(&self, store: &Store) -> Vec<(String, u64)> {
        let mut cached = lock(&self.entries);
        if let Some((at, counts)) = cached.as_ref() {
            if at.elapsed() < ENTRIES_FRESH_FOR {
                return counts.clone();
            }
        }
        match store.namespace_entry_counts() {
            Ok(counts) => {
                *cached = Some((Instant::now(), counts.clone()));
                counts
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot count entries per namespace");
                cached.as_ref().map(|(_, c)| c.clone()).unwrap_or_default()
            }
        }
    }

    pub fn render(&self, out: &mut String, store: &Store) {
        let lookups = lock(&self.lookups).counts.clone();
        for (name, i) in [(HITS, 0), (MISSES, 1)] {
            help(out, name);
            for (ns, by_protocol) in &lookups {
                for (proto, counts) in by_protocol {
                    let _ = writeln!(
                        out,
                        "{name}{{namespace=\"{}\",protocol=\"{proto}\"}} {}",
                        escape(ns),
                        counts[i]
                    );
                }
            }
        }
        help(out, USED_BYTES);
        match store.namespace_usage() {
            Ok(usage) => {
                for (ns, bytes) in usage {
                    let _ = writeln!(out, "{USED_BYTES}{{namespace=\"{}\"}} {bytes}", escape(&ns));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read usage per namespace"),
        }
        help(out, ENTRIES);
        for (ns, n) in self.entry_counts(store) {
            let _ = writeln!(out, "{ENTRIES}{{namespace=\"{}\"}} {n}", escape(&ns));
        }
    }
}

fn help(out: &mut String, name: &str) {
    if let Some((_, kind, text)) = NAMES.iter().find(|(n, _, _)| *n == name) {
        let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_past_the_limit_share_one_series() {
        let p = PerNamespace::default();
        for i in 0..MAX_NAMESPACES {
            p.lookup(&format!("ns{i}"), "oci", true);
        }
        p.lookup("one-too-many", "oci", false);
        p.lookup("ns0", "http", false);
        let guard = lock(&p.lookups);
        let map = &guard.counts;
        assert_eq!(map[OTHER]["oci"], [0, 1]);
        assert_eq!(map["ns0"]["http"], [0, 1], "a known one keeps its own");
        assert!(!map.contains_key("one-too-many"));
    }
}
