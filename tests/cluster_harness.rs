//! The harness's clustered topology (what LARDER_TEST_CLUSTER=1 runs every
//! real-client test on): two replicas behind a round-robin balancer, each
//! taking its share of the connections, both serving what either stored.

mod common;

use common::TestServer;

/// A client whose every request opens a connection of its own, so the
/// balancer hands each to the next replica.
fn one_shot() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// HTTP cache requests replica `addr` answered with `status`, from its own
/// /metrics (read directly, not through the balancer).
async fn answered(addr: std::net::SocketAddr, method: &str, status: u16) -> u64 {
    let text = one_shot()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (method, status) = (
        format!("method=\"{method}\""),
        format!("status=\"{status}\""),
    );
    text.lines()
        .filter(|l| l.starts_with("larder_http_requests_total{") && l.contains("route=\"/cache"))
        .filter(|l| l.contains(&method) && l.contains(&status))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_alternate_between_replicas_that_share_the_store() {
    if !common::cluster::available() {
        return;
    }
    let s = TestServer::start_clustered().await;
    let [a, b] = <[_; 2]>::try_from(s.node_addrs()).unwrap();
    let url = s.url("/cache/team/harness-key");
    let body = b"stored through one replica".to_vec();
    let res = one_shot()
        .put(&url)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "PUT: {}", res.status());
    let res = one_shot().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), body);

    // One replica took the PUT, the other the GET that found it.
    let (a_put, b_put) = (answered(a, "PUT", 201).await, answered(b, "PUT", 201).await);
    let (a_get, b_get) = (answered(a, "GET", 200).await, answered(b, "GET", 200).await);
    assert_eq!(a_put + b_put, 1, "one PUT in all");
    assert_eq!(
        (a_get > 0, b_get > 0),
        (b_put == 1, a_put == 1),
        "GET on the other"
    );
    assert!(
        !s.stored_blobs().await.is_empty(),
        "the blob is in the bucket"
    );
}
