//! Prometheus metrics, in the text exposition format. Every metric name and
//! its help text is declared in `names`; nothing else defines one.
//!
//! Request metrics are recorded by the request log's middleware; store-level
//! numbers (usage, blobs, entries, evictions, flush latency) are read from
//! the store when `/metrics` is scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cache::{Protocol, Store};
use cluster::ClusterNumbers;

pub mod cluster;
mod names;
pub mod namespaces;
mod process;
pub mod proxy;

pub use names::*;

/// What the connection limits did, counted by the accept loop.
#[derive(Default)]
pub struct ConnCounters {
    pub open: AtomicU64,
    pub header_timeout: AtomicU64,
    pub idle_timeout: AtomicU64,
    pub body_rate: AtomicU64,
    pub send_stall: AtomicU64,
    /// Response bytes the kernel sent from blob files (`sendfile`).
    pub sent_from_files: AtomicU64,
}

/// Upper bounds (seconds) of latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A latency histogram with fixed buckets.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// The protocol a request belongs to, from its path.
pub fn protocol_of(path: &str) -> &'static str {
    if path == "/v2" || path.starts_with("/v2/") {
        "oci"
    } else if path.starts_with("/_apis/")
        || path.starts_with("/twirp/")
        || path.starts_with("/gha/")
    {
        "gha"
    } else if path.starts_with("/cache/") {
        "http"
    } else if path.starts_with("/v8/") {
        "turbo"
    } else if path.starts_with("/v1/cache") {
        "nx"
    } else if path.starts_with("/npm/") {
        "npm"
    } else if path.starts_with("/pypi/") {
        "pypi"
    } else if path.starts_with("/go/") {
        "go"
    } else if path.starts_with("/admin/") {
        "admin"
    } else {
        "other"
    }
}

#[derive(Default)]
struct PerProtocol {
    hits: u64,
    misses: u64,
    bytes_in: u64,
    bytes_out: u64,
}

/// `map[protocol][route template]`: a route seen before is found by
/// reference, so counting a request allocates nothing.
type ByRoute<V> = BTreeMap<&'static str, BTreeMap<String, V>>;

/// `map[protocol][route]`, made on first use.
fn by_route<'m, V: Default>(
    map: &'m mut ByRoute<V>,
    protocol: &'static str,
    route: &str,
) -> &'m mut V {
    by_name(map.entry(protocol).or_default(), route)
}

/// `map[name]`, made on first use; found by reference when it exists.
fn by_name<'m, V: Default>(map: &'m mut BTreeMap<String, V>, name: &str) -> &'m mut V {
    if !map.contains_key(name) {
        map.insert(name.to_owned(), V::default());
    }
    map.get_mut(name)
        .unwrap_or_else(|| unreachable!("inserted above"))
}

/// Methods with series of their own. Any other is counted as `other`: a
/// client can send any token as a method, and must not add series.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "MKCOL",
];

fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// Request-side metrics; store-side numbers are read at scrape time.
pub struct Metrics {
    started: Instant,
    /// Requests begun, probes and scrapes aside: how workers tell a quiet
    /// server.
    begun: std::sync::atomic::AtomicU64,
    /// Requests by protocol, route, then (method, status).
    requests: Mutex<ByRoute<BTreeMap<(&'static str, u16), u64>>>,
    latency: Mutex<ByRoute<std::sync::Arc<Histogram>>>,
    protocols: Mutex<BTreeMap<&'static str, PerProtocol>>,
    pub connections: ConnCounters,
    namespaces: namespaces::PerNamespace,
    /// What the pull-through proxies did.
    pub proxy: proxy::ProxyCounters,
    /// Usage and traffic over time, sampled by a worker.
    pub history: crate::history::History,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            begun: Default::default(),
            requests: Mutex::default(),
            latency: Mutex::default(),
            protocols: Mutex::default(),
            connections: ConnCounters::default(),
            namespaces: namespaces::PerNamespace::default(),
            proxy: proxy::ProxyCounters::default(),
            history: Default::default(),
        }
    }
}

impl Metrics {
    /// Counts a request as it begins (probes and scrapes are not counted).
    pub fn begin_request(&self) {
        self.begun
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Requests begun so far: unchanged between two readings means nothing
    /// arrived in between.
    pub fn requests_begun(&self) -> u64 {
        self.begun.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One finished request, as the middleware saw it.
pub struct RequestRecord<'a> {
    pub protocol: &'static str,
    pub route: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub latency: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Some(true) for a lookup that hit, Some(false) for one that missed.
    pub hit: Option<bool>,
    /// The namespace the request was allowed on, if it named one.
    pub namespace: Option<&'a str>,
}

impl Metrics {
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn record(&self, r: &RequestRecord<'_>) {
        {
            let mut requests = lock(&self.requests);
            let by_status = by_route(&mut requests, r.protocol, r.route);
            *by_status
                .entry((method_label(r.method), r.status))
                .or_default() += 1;
        }
        let h = by_route(&mut lock(&self.latency), r.protocol, r.route).clone();
        h.observe(r.latency);
        {
            let mut p = lock(&self.protocols);
            let p = p.entry(r.protocol).or_default();
            p.bytes_in += r.bytes_in;
            p.bytes_out += r.bytes_out;
            match r.hit {
                Some(true) => p.hits += 1,
                Some(false) => p.misses += 1,
                None => {}
            }
        }
        if let (Some(hit), Some(ns)) = (r.hit, r.namespace) {
            self.namespaces.lookup(ns, r.protocol, hit);
        }
    }

    /// [hits, misses] per namespace since start, for the admin API.
    pub fn lookups_by_namespace(&self) -> BTreeMap<String, [u64; 2]> {
        self.namespaces.lookups_by_namespace()
    }

    /// (hits, misses, bytes in, bytes out) per protocol, for the admin API.
    pub fn by_protocol(&self) -> BTreeMap<&'static str, [u64; 4]> {
        lock(&self.protocols)
            .iter()
            .map(|(k, p)| (*k, [p.hits, p.misses, p.bytes_in, p.bytes_out]))
            .collect()
    }

    /// The whole exposition, request metrics and the store's numbers.
    /// `store` is the embedded store, when it is the one in use; `cluster`
    /// the cluster's numbers, read beforehand, on a replica.
    pub fn render(&self, store: Option<&Store>, cluster: Option<&ClusterNumbers>) -> String {
        let mut out = String::with_capacity(8 << 10);
        help(&mut out, REQUESTS);
        for (proto, routes) in lock(&self.requests).iter() {
            for (route, by_status) in routes {
                for ((method, status), n) in by_status {
                    let _ = writeln!(
                        out,
                        "{REQUESTS}{{protocol=\"{proto}\",route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                        escape(route)
                    );
                }
            }
        }
        help(&mut out, REQUEST_SECONDS);
        for (proto, routes) in lock(&self.latency).iter() {
            for (route, h) in routes {
                h.render(
                    &mut out,
                    REQUEST_SECONDS,
                    &format!("protocol=\"{proto}\",route=\"{}\"", escape(route)),
                );
            }
        }
        let protocols = self.by_protocol();
        for (name, i) in [(HITS, 0), (MISSES, 1), (BYTES_IN, 2), (BYTES_OUT, 3)] {
            help(&mut out, name);
            // The admin API is not a cache: it has traffic but no lookups.
            let lookups = i < 2;
            for (proto, v) in protocols
                .iter()
                .filter(|(p, _)| !(lookups && **p == "admin"))
            {
                let _ = writeln!(out, "{name}{{protocol=\"{proto}\"}} {}", v[i]);
            }
        }
        let c = &self.connections;
        help(&mut out, CONNECTIONS);
        let _ = writeln!(out, "{CONNECTIONS} {}", c.open.load(Ordering::Relaxed));
        help(&mut out, CONNECTIONS_CUT);
        for (reason, n) in [
            ("header_timeout", &c.header_timeout),
            ("idle_timeout", &c.idle_timeout),
            ("body_rate", &c.body_rate),
            ("send_stall", &c.send_stall),
        ] {
            let n = n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{CONNECTIONS_CUT}{{reason=\"{reason}\"}} {n}");
        }
        help(&mut out, SENT_FROM_FILES);
        let sent = c.sent_from_files.load(Ordering::Relaxed);
        let _ = writeln!(out, "{SENT_FROM_FILES} {sent}");
        if let Some(store) = store {
            self.render_store(&mut out, store);
        }
        if let Some(cluster) = cluster {
            cluster.render(&mut out, help);
        }
        help(&mut out, UPTIME);
        let _ = writeln!(out, "{UPTIME} {}", self.uptime().as_secs());
        self.proxy.render(&mut out);
        process::render(&mut out);
        out
    }

    fn render_store(&self, out: &mut String, store: &Store) {
        let s = store.stats();
        let usage = store.usage();
        for (name, value) in [
            (USED_BYTES, usage),
            (MAX_BYTES, store.max_size()),
            (HARD_LIMIT_BYTES, store.hard_limit()),
            (OVER_BUDGET_BYTES, usage.saturating_sub(store.max_size())),
            (LEASED_BYTES, store.leased_bytes()),
            (WRITE_EVICTIONS, store.write_evictions()),
            (BLOBS, s.blobs),
            (EVICTIONS, s.evicted_entries),
            (EVICTED_BYTES, s.evicted_bytes),
            (UPLOADS, s.uploads),
            (INDEX_SNAPSHOTS, store.index().reopens()),
            (STORAGE_FULL, u64::from(store.disk_full_reason().is_some())),
            (STORAGE_FULL_REFUSALS, store.disk_full_refusals()),
        ] {
            help(out, name);
            let _ = writeln!(out, "{name} {value}");
        }
        help(out, REFUSED_WRITES);
        for (reason, n) in store.refusals() {
            let _ = writeln!(out, "{REFUSED_WRITES}{{reason=\"{}\"}} {n}", reason.name());
        }
        help(out, ENTRIES);
        for p in Protocol::ALL {
            let _ = writeln!(
                out,
                "{ENTRIES}{{protocol=\"{}\"}} {}",
                p.name(),
                store.entry_count(p)
            );
        }
        help(out, FLUSH_SECONDS);
        store.flush_histogram().render(out, FLUSH_SECONDS, "");
        self.namespaces.render(out, store);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `# HELP` and `# TYPE` lines of metric `name`.
fn help(out: &mut String, name: &str) {
    if let Some((_, kind, text)) = (NAMES.iter().chain(CLUSTER_NAMES)).find(|(n, _, _)| *n == name)
    {
        let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
    }
}
