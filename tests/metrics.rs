//! `GET /metrics`: a strict reading of the Prometheus text format (every
//! sample line well formed, every family with HELP and TYPE, every name one
//! of `larder::metrics::NAMES`), and counters and gauges that move by exactly
//! what the requests did: pushes, HEAD hits and misses, GETs, uploads,
//! manifests, and an eviction through the admin API.

mod admin_support;
mod common;
mod oci_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use admin_support::*;
use common::TestServer;
use larder::config::Span;
use larder::metrics::NAMES;
use oci_support::*;
use reqwest::{Client, StatusCode};
use serde_json::json;

const BLOB_ROUTE: &str = "/v2/{name}/blobs/{digest}";
const MANIFEST_ROUTE: &str = "/v2/{name}/manifests/{reference}";
const UPLOAD_START_ROUTE: &str = "/v2/{name}/blobs/uploads/";
const UPLOAD_ROUTE: &str = "/v2/{name}/blobs/uploads/{id}";

// ---------------------------------------------------------------- the parser

type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

/// A parsed exposition.
#[derive(Debug, Default)]
struct Exposition {
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A sample value: a Go-style float, `+Inf`, `-Inf` or `NaN`.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
            && s.bytes().any(|b| b.is_ascii_digit()) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// `{a="x",b="y\"z"} rest` → (labels, `rest`): strict about quoting and
/// escapes (`\\`, `\"`, `\n` only); braces inside quoted values are text.
fn parse_labels<'a>(s: &'a str, line: &str) -> (Labels, &'a str) {
    let mut rest = s
        .strip_prefix('{')
        .unwrap_or_else(|| panic!("labels do not start with '{{': {line:?}"));
    let mut labels = Labels::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label without =\"…\": {line:?}"));
        assert!(valid_label_name(name), "bad label name {name:?}: {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value: {line:?}"),
            }
        };
        assert!(
            labels.insert(name.to_owned(), value).is_none(),
            "label {name} repeated: {line:?}"
        );
        rest = &after[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else {
            assert!(rest.starts_with('}'), "junk after a label value: {line:?}");
        }
    }
}

/// The family a sample belongs to: its own name, or for a histogram's
/// `_bucket`/`_sum`/`_count` series the histogram's name.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    if types.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| t == "histogram") {
                return base;
            }
        }
    }
    name
}

/// Parses the text format strictly and checks it against `NAMES`.
fn parse(text: &str) -> Exposition {
    let x = parse_syntax(text);
    check_against_names(&x);
    x
}

/// Parses the text format strictly; panics with the offending line.
fn parse_syntax(text: &str) -> Exposition {
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut out = Exposition::default();
    let mut seen_families: Vec<String> = Vec::new();
    let mut series = BTreeSet::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment
                .strip_prefix(' ')
                .unwrap_or_else(|| panic!("comment without a space after '#': {line:?}"));
            let (kind, rest) = comment
                .split_once(' ')
                .unwrap_or_else(|| panic!("comment without a metric name: {line:?}"));
            let (name, arg) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("{kind} without text: {line:?}"));
            assert!(valid_metric_name(name), "bad metric name in {line:?}");
            assert!(
                !seen_families.iter().any(|f| f == name),
                "{kind} of {name} after its samples: {line:?}"
            );
            let map = match kind {
                "HELP" => &mut out.help,
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg),
                        "unknown type: {line:?}"
                    );
                    &mut out.types
                }
                _ => panic!("a comment that is neither HELP nor TYPE: {line:?}"),
            };
            assert!(
                map.insert(name.to_owned(), arg.to_owned()).is_none(),
                "{kind} of {name} given twice"
            );
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("a sample without a value: {line:?}"));
        let name = &line[..name_end];
        let (labels, after) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..], line)
        } else {
            (Labels::new(), &line[name_end..])
        };
        let value_part = after
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no single space before the value: {line:?}"));
        assert!(valid_metric_name(name), "bad metric name in {line:?}");
        let mut fields = value_part.split(' ');
        let value_text = fields.next().unwrap();
        let value = parse_value(value_text)
            .unwrap_or_else(|| panic!("value {value_text:?} is not a float: {line:?}"));
        if let Some(ts) = fields.next() {
            assert!(
                ts.parse::<i64>().is_ok(),
                "timestamp {ts:?} is not an integer: {line:?}"
            );
        }
        assert!(fields.next().is_none(), "junk after the value: {line:?}");

        let family = family_of(name, &out.types).to_owned();
        assert!(
            out.help.contains_key(&family),
            "{name}: no # HELP {family} before it"
        );
        assert!(
            out.types.contains_key(&family),
            "{name}: no # TYPE {family} before it"
        );
        match seen_families.last() {
            Some(last) if *last == family => {}
            _ => {
                assert!(
                    !seen_families.contains(&family),
                    "the samples of {family} are not grouped together (again at {line:?})"
                );
                seen_families.push(family.clone());
            }
        }
        assert!(
            series.insert((name.to_owned(), labels.clone())),
            "series repeated: {line:?}"
        );
        out.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    check_histograms(&out);
    out
}

/// Every family is declared in `NAMES` with the same type and help, and
/// every name in `NAMES` is exported; counters are non-negative `_total`s.
fn check_against_names(x: &Exposition) {
    let declared: BTreeMap<&str, (&str, &str)> =
        NAMES.iter().map(|(n, t, h)| (*n, (*t, *h))).collect();
    assert_eq!(declared.len(), NAMES.len(), "NAMES lists a name twice");
    for (name, kind) in &x.types {
        let (want_kind, want_help) = declared
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} is exported but not in larder::metrics::NAMES"));
        assert_eq!(kind, want_kind, "TYPE of {name}");
        assert_eq!(x.help[name], *want_help, "HELP of {name}");
    }
    for name in x.help.keys() {
        assert!(x.types.contains_key(name), "{name} has HELP but no TYPE");
    }
    for (name, kind, _) in NAMES {
        assert!(valid_metric_name(name), "{name:?} is not a metric name");
        assert!(
            x.types.contains_key(*name),
            "{name} (in NAMES) is not exported"
        );
        if *kind == "counter" {
            assert!(name.ends_with("_total"), "counter {name} ends in _total");
        }
    }
    for s in &x.samples {
        let family = family_of(&s.name, &x.types);
        if x.types[family] == "counter" {
            assert!(s.value >= 0.0, "negative counter {s:?}");
        }
    }
}

/// Histogram series: cumulative buckets in increasing `le` order ending in
/// `+Inf`, whose value equals `_count`, and a `_sum`.
fn check_histograms(x: &Exposition) {
    for (family, kind) in &x.types {
        if kind != "histogram" {
            continue;
        }
        let mut buckets: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for s in x
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut labels = s.labels.clone();
            let le = labels
                .remove("le")
                .unwrap_or_else(|| panic!("a bucket without le: {s:?}"));
            let le = parse_value(&le).unwrap_or_else(|| panic!("le {le:?} is not a float"));
            buckets.entry(labels).or_default().push((le, s.value));
        }
        for s in &x.samples {
            if s.name == *family {
                panic!("a histogram sample without a suffix: {s:?}");
            }
        }
        for (labels, list) in &buckets {
            for pair in list.windows(2) {
                assert!(
                    pair[0].0 < pair[1].0,
                    "{family}{labels:?}: le not increasing"
                );
                assert!(
                    pair[0].1 <= pair[1].1,
                    "{family}{labels:?}: buckets not cumulative"
                );
            }
            let last = list.last().unwrap();
            assert!(last.0.is_infinite(), "{family}{labels:?}: no +Inf bucket");
            let count = x
                .get(&format!("{family}_count"), labels)
                .unwrap_or_else(|| panic!("{family}{labels:?}: no _count"));
            assert_eq!(last.1, count, "{family}{labels:?}: +Inf bucket = _count");
            assert!(
                x.get(&format!("{family}_sum"), labels).is_some(),
                "{family}{labels:?}: no _sum"
            );
        }
        for suffix in ["_count", "_sum"] {
            for s in x
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}{suffix}"))
            {
                assert!(
                    buckets.contains_key(&s.labels),
                    "{}{:?} without buckets",
                    s.name,
                    s.labels
                );
            }
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Exposition {
    /// The value of the series with exactly these labels.
    fn get(&self, name: &str, labels: &Labels) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == *labels)
            .map(|s| s.value)
    }

    /// A counter's value; 0 when the series does not exist yet.
    fn counter(&self, name: &str, pairs: &[(&str, &str)]) -> f64 {
        self.get(name, &labels(pairs)).unwrap_or(0.0)
    }

    /// A gauge that must be there.
    fn gauge(&self, name: &str, pairs: &[(&str, &str)]) -> f64 {
        self.get(name, &labels(pairs))
            .unwrap_or_else(|| panic!("no {name}{pairs:?}"))
    }

    /// `larder_http_requests_total` of one protocol, route, method and status.
    fn requests(&self, protocol: &str, route: &str, method: &str, status: u16) -> f64 {
        self.counter(
            larder::metrics::REQUESTS,
            &[
                ("protocol", protocol),
                ("route", route),
                ("method", method),
                ("status", &status.to_string()),
            ],
        )
    }

    fn latency_count(&self, protocol: &str, route: &str) -> f64 {
        self.counter(
            &format!("{}_count", larder::metrics::REQUEST_SECONDS),
            &[("protocol", protocol), ("route", route)],
        )
    }
}

/// `GET /metrics` ⇒ 200 in the text format, parsed.
async fn scrape(c: &Client, base: &str) -> Exposition {
    let res = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = header(&res, "content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "Content-Type {content_type:?}"
    );
    parse(&res.text().await.expect("metrics body"))
}

fn oci() -> [(&'static str, &'static str); 1] {
    [("protocol", "oci")]
}

async fn head(c: &Client, url: &str) -> StatusCode {
    c.head(url).send().await.expect("HEAD").status()
}

async fn server(adjust: impl FnOnce(&mut larder::config::Config)) -> TestServer {
    TestServer::start_with(|cfg| {
        cfg.gc.interval = Span::secs(3600);
        adjust(cfg);
    })
    .await
}

// ---------------------------------------------------------------- tests

#[test]
fn the_parser_refuses_what_prometheus_refuses() {
    let head = "# HELP larder_uptime_seconds Seconds since the server started.\n\
                # TYPE larder_uptime_seconds gauge\n";
    let sample = r#"larder_uptime_seconds{a="x} \\ \" y",b=""} 3"#;
    let ok = parse_syntax(&format!("{head}{sample}\n"));
    assert_eq!(ok.samples.len(), 1);
    assert_eq!(ok.samples[0].labels["a"], r#"x} \ " y"#);
    assert_eq!(ok.samples[0].labels["b"], "");
    for bad in [
        "larder_uptime_seconds 3\n".to_owned(),
        format!("{head}larder_uptime_seconds three\n"),
        format!("{head}larder_uptime_seconds  3\n"),
        format!("{head}larder_uptime_seconds{{a=\"b}} 3\n"),
        format!("{head}larder_uptime_seconds{{a=b}} 3\n"),
        format!("{head}larder_uptime_seconds 3"),
        format!("{head}# a stray comment\nlarder_uptime_seconds 3\n"),
    ] {
        let text = bad.clone();
        assert!(
            std::panic::catch_unwind(move || parse_syntax(&text)).is_err(),
            "accepted {bad:?}"
        );
    }
    let made_up =
        parse_syntax("# HELP larder_made_up x\n# TYPE larder_made_up gauge\nlarder_made_up 1\n");
    assert!(
        std::panic::catch_unwind(move || check_against_names(&made_up)).is_err(),
        "accepted a name that is not in NAMES"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_strict_prometheus_text_with_declared_names() {
    let server = server(|_| {}).await;
    let base = server.base();
    let c = common::client();
    let fresh = scrape(&c, &base).await;
    assert!(
        fresh.gauge(larder::metrics::UPTIME, &[]) >= 0.0,
        "uptime is there from the start"
    );

    let img = push_image(&c, &base, "team-a/app", Some("v1"), 1, 2).await;
    let layer = format!(
        "{base}/v2/team-a/app/blobs/{}",
        sha256_digest(&img.layers[0])
    );
    assert_eq!(head(&c, &layer).await, StatusCode::OK);
    let missing = format!("{base}/v2/team-a/app/blobs/{}", sha256_digest(b"nope"));
    assert_eq!(head(&c, &missing).await, StatusCode::NOT_FOUND);
    get_manifest(&c, &base, "team-a/app", "v1").await;
    AdminApi::anonymous(&base).stats().await;
    let x = scrape(&c, &base).await;

    for s in &x.samples {
        for (k, v) in &s.labels {
            // The per-namespace series name the namespace, never a path.
            let allowed = k == "namespace" && v == "team-a";
            assert!(
                allowed || (!v.contains("sha256:") && !v.contains("team-a")),
                "label {k}={v:?} holds a raw path, not a template: {s:?}"
            );
        }
    }
    for s in x
        .samples
        .iter()
        .filter(|s| s.name == larder::metrics::REQUESTS)
    {
        let keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
        assert_eq!(keys, ["method", "protocol", "route", "status"], "{s:?}");
        let status = &s.labels["status"];
        assert!(
            status.len() == 3 && status.parse::<u16>().is_ok(),
            "status {status:?}"
        );
        assert_ne!(s.labels["route"], "/metrics", "scrapes are not counted");
    }
    for name in [larder::metrics::HITS, larder::metrics::MISSES] {
        for s in x.samples.iter().filter(|s| s.name == name) {
            assert_eq!(s.labels.len(), 1, "{s:?}");
            assert_ne!(
                s.labels["protocol"], "admin",
                "admin does no lookups: {s:?}"
            );
        }
    }
    assert_eq!(
        x.gauge(larder::metrics::MAX_BYTES, &[]),
        server.config.storage.max_size.bytes() as f64
    );
    assert_eq!(
        x.requests("admin", "/admin/v1/stats", "GET", 200),
        1.0,
        "admin requests are counted under their route template"
    );
    for p in ["oci", "gha", "http", "turbo", "nx"] {
        x.gauge(larder::metrics::ENTRIES, &[("protocol", p)]);
    }
    assert!(
        x.counter(&format!("{}_count", larder::metrics::FLUSH_SECONDS), &[]) > 0.0,
        "pushes flushed the index"
    );
}

/// A manifest PUT makes its entry durable with a flush of its own batch of
/// entry writes, timed like every other index flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_puts_flush_is_timed() {
    let server = server(|_| {}).await;
    let base = server.base();
    let c = common::client();
    let config = fixed_bytes(7, 300);
    push_blob(&c, &base, "team-a/app", &config).await;
    let flushes = format!("{}_count", larder::metrics::FLUSH_SECONDS);
    let before = scrape(&c, &base).await.counter(&flushes, &[]);
    let manifest = image_manifest(&descriptor(OCI_CONFIG, &config), &[]);
    put_manifest(&c, &base, "team-a/app", "v1", OCI_MANIFEST, &manifest).await;
    let after = scrape(&c, &base).await.counter(&flushes, &[]);
    assert!(
        after > before,
        "flushes counted: {before} before, {after} after"
    );
}

/// Any token is a valid HTTP method: methods the server does not serve are
/// all counted as `other`, so a client cannot add series by inventing them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_share_one_series() {
    let server = server(|_| {}).await;
    let base = server.base();
    let c = common::client();
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let res = c
            .request(method, format!("{base}/v2/"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let x = scrape(&c, &base).await;
    assert_eq!(x.requests("oci", "/v2/", "other", 405), 5.0);
    let methods: BTreeSet<&str> = x
        .samples
        .iter()
        .filter(|s| s.name == larder::metrics::REQUESTS)
        .filter_map(|s| s.labels.get("method").map(String::as_str))
        .collect();
    assert!(
        !methods.iter().any(|m| m.starts_with("INVENTED")),
        "{methods:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_and_lookups_move_the_counters_by_exactly_what_was_done() {
    let server = server(|_| {}).await;
    let base = server.base();
    let c = common::client();
    let repo = "team-a/app";
    let blob = fixed_bytes(42, 12_345);
    let digest = sha256_digest(&blob);

    // A push: one POST, one PUT, the blob's bytes in, the blob stored.
    let x0 = scrape(&c, &base).await;
    push_blob(&c, &base, repo, &blob).await;
    let x1 = scrape(&c, &base).await;
    assert_eq!(
        x1.requests("oci", UPLOAD_START_ROUTE, "POST", 202)
            - x0.requests("oci", UPLOAD_START_ROUTE, "POST", 202),
        1.0
    );
    assert_eq!(
        x1.requests("oci", UPLOAD_ROUTE, "PUT", 201) - x0.requests("oci", UPLOAD_ROUTE, "PUT", 201),
        1.0
    );
    let bytes_in = larder::metrics::BYTES_IN;
    assert_eq!(
        x1.counter(bytes_in, &oci()) - x0.counter(bytes_in, &oci()),
        blob.len() as f64
    );
    let used = larder::metrics::USED_BYTES;
    assert_eq!(x1.gauge(used, &[]) - x0.gauge(used, &[]), blob.len() as f64);
    let blobs = larder::metrics::BLOBS;
    assert_eq!(x1.gauge(blobs, &[]) - x0.gauge(blobs, &[]), 1.0);
    let (hits, misses) = (larder::metrics::HITS, larder::metrics::MISSES);
    assert_eq!(
        x1.counter(hits, &oci()),
        x0.counter(hits, &oci()),
        "a push is no lookup"
    );
    assert_eq!(
        x1.counter(misses, &oci()),
        x0.counter(misses, &oci()),
        "a push is no lookup"
    );

    // Lookups: two HEAD hits and one HEAD miss.
    let url = format!("{base}/v2/{repo}/blobs/{digest}");
    assert_eq!(head(&c, &url).await, StatusCode::OK);
    assert_eq!(head(&c, &url).await, StatusCode::OK);
    let missing = format!("{base}/v2/{repo}/blobs/{}", sha256_digest(b"absent"));
    assert_eq!(head(&c, &missing).await, StatusCode::NOT_FOUND);
    let x2 = scrape(&c, &base).await;
    assert_eq!(
        x2.counter(hits, &oci()) - x1.counter(hits, &oci()),
        2.0,
        "hits"
    );
    assert_eq!(
        x2.counter(misses, &oci()) - x1.counter(misses, &oci()),
        1.0,
        "misses"
    );
    assert_eq!(
        x2.requests("oci", BLOB_ROUTE, "HEAD", 200) - x1.requests("oci", BLOB_ROUTE, "HEAD", 200),
        2.0
    );
    assert_eq!(
        x2.requests("oci", BLOB_ROUTE, "HEAD", 404) - x1.requests("oci", BLOB_ROUTE, "HEAD", 404),
        1.0
    );
    assert_eq!(
        x2.latency_count("oci", BLOB_ROUTE) - x1.latency_count("oci", BLOB_ROUTE),
        3.0,
        "each lookup is timed"
    );
    let bytes_out = larder::metrics::BYTES_OUT;
    assert_eq!(
        x2.counter(bytes_out, &oci()),
        x1.counter(bytes_out, &oci()),
        "HEAD sends no body"
    );

    // A GET: a hit, and the blob's bytes out.
    assert_eq!(get_blob(&c, &base, repo, &digest).await, blob);
    let x3 = scrape(&c, &base).await;
    assert_eq!(x3.counter(hits, &oci()) - x2.counter(hits, &oci()), 1.0);
    assert_eq!(
        x3.counter(bytes_out, &oci()) - x2.counter(bytes_out, &oci()),
        blob.len() as f64
    );
    assert_eq!(
        x3.requests("oci", BLOB_ROUTE, "GET", 200) - x2.requests("oci", BLOB_ROUTE, "GET", 200),
        1.0
    );

    // An upload in progress is a gauge until it completes.
    let uploads = larder::metrics::UPLOADS;
    let session = start_upload(&c, &base, repo).await;
    let x4 = scrape(&c, &base).await;
    assert_eq!(x4.gauge(uploads, &[]) - x3.gauge(uploads, &[]), 1.0);
    let more = fixed_bytes(43, 777);
    let res = c
        .put(with_query(
            &session,
            &format!("digest={}", sha256_digest(&more)),
        ))
        .body(more.clone())
        .send()
        .await
        .unwrap();
    expect_status(res, StatusCode::CREATED).await;
    let x5 = scrape(&c, &base).await;
    assert_eq!(x5.gauge(uploads, &[]), x3.gauge(uploads, &[]));

    // Manifests are the OCI entries; a manifest GET is a hit, an unknown tag a miss.
    let entries = larder::metrics::ENTRIES;
    assert_eq!(x5.gauge(entries, &oci()), 0.0);
    push_image(&c, &base, repo, Some("one"), 1, 1).await;
    push_image(&c, &base, "team-b/app", Some("two"), 2, 2).await;
    let x6 = scrape(&c, &base).await;
    assert_eq!(x6.gauge(entries, &oci()), 2.0, "two manifests");
    assert_eq!(x6.gauge(entries, &[("protocol", "gha")]), 0.0);
    get_manifest(&c, &base, repo, "one").await;
    let res = c
        .get(format!("{base}/v2/{repo}/manifests/unknown"))
        .header("accept", ACCEPT_MANIFESTS)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let x7 = scrape(&c, &base).await;
    assert_eq!(x7.counter(hits, &oci()) - x6.counter(hits, &oci()), 1.0);
    assert_eq!(x7.counter(misses, &oci()) - x6.counter(misses, &oci()), 1.0);
    assert_eq!(
        x7.requests("oci", MANIFEST_ROUTE, "GET", 200)
            - x6.requests("oci", MANIFEST_ROUTE, "GET", 200),
        1.0
    );
    assert_eq!(
        x7.requests("oci", MANIFEST_ROUTE, "GET", 404)
            - x6.requests("oci", MANIFEST_ROUTE, "GET", 404),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_eviction_moves_the_eviction_counters() {
    let grace = Duration::from_millis(1);
    let server = server(|cfg| cfg.gc.lease = Span(grace)).await;
    let base = server.base();
    let c = common::client();
    push_image(&c, &base, "team-a/app", Some("v1"), 1, 1).await;
    push_image(&c, &base, "team-b/app", Some("v1"), 2, 2).await;
    outlive_lease(grace).await;
    let before = scrape(&c, &base).await;
    let used = before.gauge(larder::metrics::USED_BYTES, &[]);
    assert!(used > 0.0);

    let report = AdminApi::anonymous(&base)
        .post("/admin/v1/evict", &json!({ "target_bytes": 0 }))
        .await
        .expect(StatusCode::OK);
    let removed = num(&report["entries_removed"], "entries_removed");
    let freed = num(&report["bytes_freed"], "bytes_freed");
    assert_eq!((removed, freed as f64), (2, used), "{report}");

    let after = scrape(&c, &base).await;
    let evicted_bytes = larder::metrics::EVICTED_BYTES;
    assert_eq!(
        after.counter(evicted_bytes, &[]) - before.counter(evicted_bytes, &[]),
        freed as f64
    );
    assert_eq!(after.gauge(larder::metrics::USED_BYTES, &[]), 0.0);
    assert_eq!(after.gauge(larder::metrics::BLOBS, &[]), 0.0);
    assert_eq!(after.gauge(larder::metrics::ENTRIES, &oci()), 0.0);
    assert_eq!(
        after.requests("admin", "/admin/v1/evict", "POST", 200)
            - before.requests("admin", "/admin/v1/evict", "POST", 200),
        1.0
    );
    let evictions = larder::metrics::EVICTIONS;
    assert_eq!(
        after.counter(evictions, &[]) - before.counter(evictions, &[]),
        removed as f64,
        "{evictions} counts the entries the eviction removed"
    );
}
