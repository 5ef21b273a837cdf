//! `/metrics` beyond the request counters: `larder_build_info`, the
//! standard `process_*` series, per-namespace usage and hit/miss counters,
//! and `metrics.require_token` on the main address.

mod admin_support;
mod auth_support;
mod common;
mod oci_support;

use std::collections::BTreeMap;

use admin_support::*;
use auth_support::token_server;
use common::TestServer;
use larder::auth::token::{mint, now_secs};
use larder::auth::{Grant, TokenSpec, ANY_NAMESPACE, METRICS, READ};
use larder::config::Span;
use oci_support::*;
use reqwest::{Client, StatusCode};

/// Samples by their full series text (`name{labels}`), labels as printed.
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("a sample line without a value: {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number in {line:?}"));
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "{series} twice"
            );
        }
        Scrape(samples)
    }

    /// The value of `series`, or 0 when absent (a counter not yet moved).
    fn value(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    fn must(&self, series: &str) -> f64 {
        *self
            .0
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in {:#?}", self.0.keys()))
    }
}

async fn scrape(c: &Client, base: &str) -> Scrape {
    let res = c.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    Scrape::parse(&res.text().await.unwrap())
}

async fn server() -> TestServer {
    TestServer::start_with(|cfg| cfg.gc.interval = Span::secs(3600)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_info_and_process_series_have_sane_values() {
    let server = server().await;
    let c = common::client();
    let x = scrape(&c, &server.base()).await;
    let version = env!("CARGO_PKG_VERSION");
    let build: Vec<(&String, &f64)> =
        x.0.iter()
            .filter(|(k, _)| k.starts_with("larder_build_info{"))
            .collect();
    assert_eq!(build.len(), 1, "{build:?}");
    assert!(
        build[0].0.contains(&format!("version=\"{version}\"")),
        "{build:?}"
    );
    assert_eq!(*build[0].1, 1.0);

    // The server runs in this test's process: the numbers are this process's.
    let rss = x.must("process_resident_memory_bytes");
    assert!(rss > (1 << 20) as f64, "rss {rss}");
    assert!(x.must("process_virtual_memory_bytes") >= rss);
    let fds = x.must("process_open_fds");
    assert!(fds >= 3.0 && fds <= x.must("process_max_fds"), "fds {fds}");
    let start = x.must("process_start_time_seconds");
    let now = now_secs() as f64;
    assert!(
        start <= now + 1.0 && start > now - 3600.0,
        "start {start}, now {now}"
    );
    let cpu = x.must("process_cpu_seconds_total");
    assert!(cpu >= 0.0);
    // Burn a little CPU; the counter never goes back.
    let mut n = 0u64;
    for i in 0..5_000_000u64 {
        n = n.wrapping_mul(31).wrapping_add(i);
    }
    std::hint::black_box(n);
    let again = scrape(&c, &server.base()).await;
    assert!(again.must("process_cpu_seconds_total") >= cpu);
}

fn ns_series(name: &str, ns: &str, protocol: Option<&str>) -> String {
    match protocol {
        Some(p) => format!("{name}{{namespace=\"{ns}\",protocol=\"{p}\"}}"),
        None => format!("{name}{{namespace=\"{ns}\"}}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_misses_and_usage_are_per_namespace() {
    use larder::metrics::namespaces::{ENTRIES, HITS, MISSES, USED_BYTES};
    let server = server().await;
    let base = server.base();
    let c = common::client();
    push_image(&c, &base, "team-a/app", Some("v1"), 1, 2).await;
    let blob = fixed_bytes(7, 4096);
    let digest = push_blob(&c, &base, "team-b/app", &blob).await;

    let x0 = scrape(&c, &base).await;
    // team-b: one hit and one miss; team-a: one miss.
    let head = |url: String| {
        let c = c.clone();
        async move { c.head(url).send().await.unwrap().status() }
    };
    let absent = sha256_digest(b"absent");
    assert_eq!(
        head(format!("{base}/v2/team-b/app/blobs/{digest}")).await,
        StatusCode::OK
    );
    assert_eq!(
        head(format!("{base}/v2/team-b/app/blobs/{absent}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        head(format!("{base}/v2/team-a/app/blobs/{absent}")).await,
        StatusCode::NOT_FOUND
    );
    let x1 = scrape(&c, &base).await;
    let delta = |name: &str, ns: &str| {
        let s = ns_series(name, ns, Some("oci"));
        x1.value(&s) - x0.value(&s)
    };
    assert_eq!(delta(HITS, "team-b"), 1.0);
    assert_eq!(delta(MISSES, "team-b"), 1.0);
    assert_eq!(delta(HITS, "team-a"), 0.0);
    assert_eq!(delta(MISSES, "team-a"), 1.0);
    // The per-protocol totals saw the same three lookups.
    let total = |x: &Scrape, name: &str| x.value(&format!("{name}{{protocol=\"oci\"}}"));
    assert_eq!(
        total(&x1, larder::metrics::HITS) - total(&x0, larder::metrics::HITS),
        1.0
    );
    assert_eq!(
        total(&x1, larder::metrics::MISSES) - total(&x0, larder::metrics::MISSES),
        2.0
    );

    // Usage per namespace is what the admin API reports.
    let api = AdminApi::anonymous(&base);
    let namespaces = api.namespaces().await;
    let a = &namespaces["team-a"];
    let used = x1.must(&ns_series(USED_BYTES, "team-a", None));
    assert!(used > 0.0);
    assert_eq!(used, num(&a["used_bytes"], "used_bytes") as f64);
    assert_eq!(
        x1.must(&ns_series(ENTRIES, "team-a", None)),
        num(&a["entries"], "entries") as f64
    );
    assert!(num(&a["entries"], "entries") >= 1);
    // team-b holds a blob but no entry pins it: nothing is counted there.
    assert_eq!(x1.value(&ns_series(USED_BYTES, "team-b", None)), 0.0);
}

fn metrics_only_token(key: &[u8], scope: &str) -> String {
    mint(
        key,
        &TokenSpec {
            subject: "prometheus".into(),
            grants: vec![Grant {
                scope: scope.into(),
                permission: METRICS,
            }],
            admin: false,
            ttl_secs: 3600,
            parent: None,
        },
    )
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_require_token_metrics_need_an_admin_or_metrics_token() {
    let (server, key) = token_server(|cfg| cfg.metrics.require_token = true).await;
    let url = server.url("/metrics");
    let c = common::client();
    let status = |token: Option<String>| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let mut req = c.get(url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = req.send().await.unwrap();
            let status = res.status();
            let challenge = header(&res, "www-authenticate");
            let body = res.text().await.unwrap();
            (status, challenge, body)
        }
    };
    let (s, challenge, body) = status(None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
    assert!(!body.contains("larder_"), "no metrics leak: {body}");
    let (s, _, _) = status(Some("not.a.token".into())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let reader = auth_support::token(&key, &[(ANY_NAMESPACE, READ)]);
    let (s, _, body) = status(Some(reader)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("metrics"), "{body}");
    let (s, _, _) = status(Some(metrics_only_token(&key, "team-a"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the metrics bit counts on * only");

    for token in [admin_token(&key), metrics_only_token(&key, ANY_NAMESPACE)] {
        let (s, _, body) = status(Some(token)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert!(body.contains("larder_build_info{"), "{body}");
    }
    // A metrics-only token is nothing else: no reads.
    let res = bearer(&metrics_only_token(&key, ANY_NAMESPACE))
        .get(server.url("/v2/team-a/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[test]
fn require_token_without_token_auth_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.metrics.require_token = true;
    let err = config.validate().unwrap_err().to_string();
    assert!(err.starts_with("metrics.require_token"), "{err}");
    config.auth.mode = larder::config::AuthMode::Token;
    config.validate().unwrap();
}

/// With tokens, the namespace a lookup was allowed on is the one counted,
/// for the HTTP cache as for OCI; a refused lookup counts nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_cache_lookups_are_counted_per_namespace_with_tokens() {
    use larder::metrics::namespaces::{HITS, MISSES};
    let (server, key) = token_server(|_| {}).await;
    let c = bearer(&admin_token(&key));
    let team = bearer(&auth_support::token(&key, &[("team-c", auth_support::RW)]));
    let res = team
        .put(server.url("/cache/team-c/some-key"))
        .body("cached bytes")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let x0 = scrape(&c, &server.base()).await;
    let get = |path: &'static str| {
        let (team, url) = (team.clone(), server.url(path));
        async move { team.get(url).send().await.unwrap().status() }
    };
    assert_eq!(get("/cache/team-c/some-key").await, StatusCode::OK);
    assert_eq!(
        get("/cache/team-c/no-such-key").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get("/cache/team-d/some-key").await, StatusCode::FORBIDDEN);
    let x1 = scrape(&c, &server.base()).await;
    let delta = |name: &str, ns: &str| {
        let s = ns_series(name, ns, Some("http"));
        x1.value(&s) - x0.value(&s)
    };
    assert_eq!(delta(HITS, "team-c"), 1.0);
    assert_eq!(delta(MISSES, "team-c"), 1.0);
    assert!(
        !x1.0.keys().any(|k| k.contains("team-d")),
        "a refused namespace adds no series"
    );
}

/// `metrics.require_token` guards the main address only: the separate
/// `metrics.listen` address serves the exposition as documented, untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_separate_metrics_address_stays_open_with_require_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.auth.mode = larder::config::AuthMode::Token;
    config.metrics.require_token = true;
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = larder::server::Server::bind(config).await.expect("binds");
    let main = server.local_addr();
    let side = server.metrics_addr().expect("a metrics address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let c = common::client();
    let res = c
        .get(format!("http://{main}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let x = scrape(&c, &format!("http://{side}")).await;
    assert_eq!(
        x.0.iter()
            .filter(|(k, _)| k.starts_with("larder_build_info"))
            .count(),
        1
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
