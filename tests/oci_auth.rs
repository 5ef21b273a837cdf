//! Auth on the registry API, as docker, containerd and BuildKit meet it:
//! the 401 challenge and its realm/service/scope, the token endpoint (GET
//! with Basic credentials, the POST password form), every permission
//! boundary (no token, invalid tokens, read-only, other namespaces, the
//! wildcard, revocation), anonymous reads, cross-repository mounts, the
//! filtered catalog, and the refusal to serve anonymously on a public address.

mod auth_support;
mod common;
mod oci_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use auth_support::*;
use common::TestServer;
use larder::auth::token::now_secs;
use larder::auth::{READ, WRITE};
use oci_support::*;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};

const PULL: &str = "pull";
const PUSH: &str = "pull,push";

fn scope(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}

async fn send(client: &Client, method: Method, url: &str) -> Response {
    client
        .request(method.clone(), url)
        .header(CONTENT_LENGTH, "0")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// A 401 to a HEAD (no body): status, challenge and scope.
fn expect_head_challenge(res: &Response, base: &str, scope: Option<&str>) {
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "HEAD {}: status",
        res.url()
    );
    let value = must_header(res, "www-authenticate");
    let c = parse_challenge(&value);
    assert_eq!(c.realm, format!("{base}/v2/token"), "realm of {value:?}");
    assert_eq!(c.service.as_deref(), Some("larder"), "service of {value:?}");
    assert_eq!(c.scope.as_deref(), scope, "scope of {value:?}");
}

/// Every registry request that needs READ (`pull`) or WRITE (`pull,push`) on
/// `repo`, as (method, url, actions). `digest` names an existing blob,
/// `session` an open upload session URL.
fn guarded_requests(
    base: &str,
    repo: &str,
    digest: &str,
    session: &str,
) -> Vec<(Method, String, &'static str)> {
    let r = format!("{base}/v2/{repo}");
    vec![
        (Method::GET, format!("{r}/blobs/{digest}"), PULL),
        (Method::GET, format!("{r}/manifests/latest"), PULL),
        (Method::GET, format!("{r}/tags/list"), PULL),
        (Method::GET, format!("{r}/referrers/{digest}"), PULL),
        (Method::POST, format!("{r}/blobs/uploads/"), PUSH),
        (
            Method::POST,
            format!("{r}/blobs/uploads/?digest={digest}"),
            PUSH,
        ),
        (
            Method::POST,
            format!("{r}/blobs/uploads/?mount={digest}&from={repo}"),
            PUSH,
        ),
        (Method::PATCH, session.to_owned(), PUSH),
        (
            Method::PUT,
            with_query(session, &format!("digest={digest}")),
            PUSH,
        ),
        (Method::GET, session.to_owned(), PUSH),
        (Method::DELETE, session.to_owned(), PUSH),
        (Method::PUT, format!("{r}/manifests/latest"), PUSH),
        (Method::DELETE, format!("{r}/manifests/latest"), PUSH),
        (Method::DELETE, format!("{r}/blobs/{digest}"), PUSH),
    ]
}

/// A server in token mode with `team-a/app:latest` pushed (one layer), an
/// open upload session on it, and the pushed image.
async fn server_with_image(
    adjust: impl FnOnce(&mut larder::config::Config),
) -> (TestServer, Vec<u8>, PushedImage, String) {
    let (server, key) = token_server(adjust).await;
    let admin = bearer_client(&token(&key, &[("*", RW)]));
    let base = server.base();
    let image = push_image(&admin, &base, "team-a/app", Some("latest"), 1, 1).await;
    let session = start_upload(&admin, &base, "team-a/app").await;
    (server, key, image, session)
}

// ---------------------------------------------------------------- no token

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_token_get_a_challenge_naming_realm_service_and_scope() {
    let (server, key, image, session) = server_with_image(|_| {}).await;
    let base = server.base();
    let layer = sha256_digest(&image.layers[0]);
    let anon = common::client();

    for (method, url, actions) in guarded_requests(&base, "team-a/app", &layer, &session) {
        let res = send(&anon, method.clone(), &url).await;
        let want = scope("team-a/app", actions);
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {url} without a token"
        );
        expect_challenge(res, &base, Some(&want)).await;
    }
    // HEADs (BuildKit's first request on every blob and manifest).
    for url in [
        format!("{base}/v2/team-a/app/blobs/{layer}"),
        format!("{base}/v2/team-a/app/manifests/latest"),
    ] {
        let res = send(&anon, Method::HEAD, &url).await;
        expect_head_challenge(&res, &base, Some(&scope("team-a/app", PULL)));
    }
    // Nested repository names keep their full name in the scope.
    let res = send(
        &anon,
        Method::POST,
        &format!("{base}/v2/team-a/sub/app/blobs/uploads/"),
    )
    .await;
    expect_challenge(res, &base, Some(&scope("team-a/sub/app", PUSH))).await;

    // Nothing was changed by the refused writes.
    let admin = bearer_client(&token(&key, &[("*", RW)]));
    let (bytes, _, _) = get_manifest(&admin, &base, "team-a/app", "latest").await;
    assert_eq!(bytes, image.manifest);
    assert_eq!(
        get_blob(&admin, &base, "team-a/app", &layer).await,
        image.layers[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_realm_is_an_absolute_url_built_from_the_host_header() {
    let (server, _key) = token_server(|_| {}).await;
    let res = common::client()
        .get(server.url("/v2/team-a/app/manifests/latest"))
        .header(HOST, "registry.example.test:5443")
        .send()
        .await
        .unwrap();
    expect_challenge(
        res,
        "http://registry.example.test:5443",
        Some(&scope("team-a/app", PULL)),
    )
    .await;

    // server.public_url, when set, wins over Host.
    let (server, _key) =
        token_server(|cfg| cfg.server.public_url = Some("https://cache.example.com/".into())).await;
    let res = common::client()
        .post(server.url("/v2/team-a/app/blobs/uploads/"))
        .header(HOST, "registry.example.test:5443")
        .send()
        .await
        .unwrap();
    expect_challenge(
        res,
        "https://cache.example.com",
        Some(&scope("team-a/app", PUSH)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_base_needs_a_token_and_answers_200_with_one() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    for method in [Method::GET, Method::HEAD] {
        let res = send(&common::client(), method.clone(), &server.url("/v2/")).await;
        assert_eq!(
            must_header(&res, "docker-distribution-api-version"),
            "registry/2.0",
            "{method} /v2/: docker checks this header on the 401 ping"
        );
        if method == Method::HEAD {
            expect_head_challenge(&res, &base, None);
        } else {
            expect_challenge(res, &base, None).await;
        }
    }
    for grants in [
        vec![("team-a", READ)],
        vec![("team-a", WRITE)],
        vec![("*", RW)],
    ] {
        let res = bearer_client(&token(&key, &grants))
            .get(server.url("/v2/"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "GET /v2/ with {grants:?}");
    }
    // A token without any grant is still a valid identity.
    let res = bearer_client(&token(&key, &[]))
        .get(server.url("/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "GET /v2/ with an empty token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probes_need_no_token() {
    let (server, _key) = token_server(|_| {}).await;
    for path in ["/healthz", "/readyz"] {
        let res = common::client().get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "GET {path} without a token");
    }
}

// ---------------------------------------------------------------- invalid tokens

/// Asserts `client` is refused with 401 + challenge on a read and a write.
async fn expect_refused(client: &Client, server: &TestServer, layer: &str, what: &str) {
    let base = server.base();
    let res = client
        .get(format!("{base}/v2/team-a/app/blobs/{layer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}: GET blob");
    expect_challenge(res, &base, Some(&scope("team-a/app", PULL))).await;
    let res = send(
        client,
        Method::POST,
        &format!("{base}/v2/team-a/app/blobs/uploads/"),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "{what}: POST upload"
    );
    expect_challenge(res, &base, Some(&scope("team-a/app", PUSH))).await;
    let res = client.get(server.url("/v2/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}: GET /v2/");
    expect_challenge(res, &base, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_not_yet_valid_forged_and_garbage_tokens_are_401() {
    let (server, key, image, _session) = server_with_image(|_| {}).await;
    let layer = sha256_digest(&image.layers[0]);
    let grants = [("team-a", RW), ("*", RW)];
    let now = now_secs();

    let expired = encode_claims(&key, &claims_with_window(&grants, now - 3600, now - 5));
    expect_refused(&bearer_client(&expired), &server, &layer, "expired").await;

    let future = encode_claims(&key, &claims_with_window(&grants, now + 3600, now + 7200));
    expect_refused(&bearer_client(&future), &server, &layer, "not yet valid").await;

    let other_key: [u8; 32] = rand::random();
    let forged = token(&other_key, &grants);
    expect_refused(&bearer_client(&forged), &server, &layer, "other key").await;

    // A valid token with its payload swapped for a more generous one.
    let real = token(&key, &[("team-b", READ)]);
    let other = token(&key, &grants);
    let parts: Vec<&str> = real.split('.').collect();
    let generous: Vec<&str> = other.split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], generous[1], parts[2]);
    expect_refused(&bearer_client(&spliced), &server, &layer, "spliced").await;

    // Unsigned (`alg: none`).
    use base64::Engine as _;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims_with_window(&grants, now - 60, now + 3600))
    );
    expect_refused(&bearer_client(&unsigned), &server, &layer, "alg none").await;

    // Correctly signed but without an expiry: never valid.
    let mut forever = claims_with_window(&grants, now - 60, now + 3600);
    forever.as_object_mut().unwrap().remove("exp");
    let forever = encode_claims(&key, &forever);
    expect_refused(&bearer_client(&forever), &server, &layer, "no exp").await;

    for garbage in ["garbage", "a.b.c", "Zm9v.YmFy.YmF6", &"x".repeat(5000)] {
        expect_refused(&bearer_client(garbage), &server, &layer, garbage).await;
        expect_refused(&basic_client("ci", garbage), &server, &layer, garbage).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_stops_working_when_it_expires() {
    let (server, key, image, _session) = server_with_image(|_| {}).await;
    let layer = sha256_digest(&image.layers[0]);
    let (short, claims) = token_claims(&key, &[("team-a", RW)], 1);
    let client = bearer_client(&short);
    let res = client
        .get(server.url(&format!("/v2/team-a/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    expect_status(res, StatusCode::OK).await;
    // Waiting for the clock is the event here.
    while now_secs() <= claims.exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect_refused(&client, &server, &layer, "expired after use").await;
}

// ---------------------------------------------------------------- revocation

/// Revokes `jti` the way an operator without the admin API can: stop the
/// server, record the revocation in the index, start it again.
async fn revoke_offline(mut server: TestServer, jti: &str, exp: u64) -> TestServer {
    server.shutdown().await;
    {
        let index = larder::index::Index::open(&server.data_dir().join("index")).expect("index");
        index.revoke(jti, exp).expect("revoke");
        index.flush().expect("flush");
    }
    server.restart().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_and_the_tokens_exchanged_from_them_are_401() {
    let (server, key, image, _session) = server_with_image(|_| {}).await;
    let base = server.base();
    let layer = sha256_digest(&image.layers[0]);
    let (revoked, revoked_claims) = token_claims(&key, &[("team-a", RW)], 3600);
    let kept = token(&key, &[("team-a", RW)]);

    // Exchange the soon-revoked token for a registry token.
    let anon = send(
        &common::client(),
        Method::POST,
        &format!("{base}/v2/team-a/app/blobs/uploads/"),
    )
    .await;
    let challenge = expect_challenge(anon, &base, Some(&scope("team-a/app", PUSH))).await;
    let res = fetch_token_get(
        &basic_client("ci", &revoked),
        &challenge,
        &[&scope("team-a/app", PUSH)],
    )
    .await;
    let exchanged = expect_token_response(res).await;
    assert_eq!(
        peek_claims(&exchanged)["parent"].as_str(),
        Some(revoked_claims.jti.as_str()),
        "an exchanged token names the token it came from"
    );
    for t in [&revoked, &exchanged, &kept] {
        push_blob(&bearer_client(t), &base, "team-a/app", b"before revocation").await;
    }

    let server = revoke_offline(server, &revoked_claims.jti, revoked_claims.exp).await;
    let base = server.base();

    expect_refused(&bearer_client(&revoked), &server, &layer, "revoked").await;
    expect_refused(
        &basic_client("ci", &revoked),
        &server,
        &layer,
        "revoked, Basic",
    )
    .await;
    expect_refused(
        &bearer_client(&exchanged),
        &server,
        &layer,
        "exchanged from a revoked token",
    )
    .await;
    // Nor can the revoked token be exchanged again.
    let challenge = Challenge {
        realm: format!("{base}/v2/token"),
        service: Some("larder".into()),
        scope: None,
    };
    let res = fetch_token_get(
        &basic_client("ci", &revoked),
        &challenge,
        &[&scope("team-a/app", PUSH)],
    )
    .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    let res = fetch_token_post(&challenge, "ci", &revoked, &[&scope("team-a/app", PUSH)]).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    // Other tokens are unaffected.
    let kept = bearer_client(&kept);
    assert_eq!(
        get_blob(&kept, &base, "team-a/app", &layer).await,
        image.layers[0]
    );
    push_blob(&kept, &base, "team-a/app", b"after revocation").await;
}

/// GETs a registry token from `base`'s endpoint for `scopes` with `secret`
/// as the Basic password.
async fn exchange(base: &str, secret: &str, scopes: &[String]) -> String {
    let challenge = Challenge {
        realm: format!("{base}/v2/token"),
        service: Some("larder".into()),
        scope: None,
    };
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let res = fetch_token_get(&basic_client("ci", secret), &challenge, &scopes).await;
    expect_token_response(res).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_exchanged_tokens_are_revoked_with_the_original() {
    let (server, key, image, _session) = server_with_image(|_| {}).await;
    let base = server.base();
    let layer = sha256_digest(&image.layers[0]);
    let (login, login_claims) = token_claims(&key, &[("team-a", RW)], 3600);
    let push = [scope("team-a/app", PUSH)];
    // containerd re-fetches a token whenever the old one nears expiry; a
    // client may just as well present the registry token it holds.
    let first = exchange(&base, &login, &push).await;
    let second = exchange(&base, &first, &push).await;
    let third = exchange(&base, &second, &push).await;
    for t in [&first, &second, &third] {
        push_blob(&bearer_client(t), &base, "team-a/app", b"chained").await;
    }

    let server = revoke_offline(server, &login_claims.jti, login_claims.exp).await;
    for (what, t) in [("first", &first), ("second", &second), ("third", &third)] {
        expect_refused(
            &bearer_client(t),
            &server,
            &layer,
            &format!("{what} token in a chain exchanged from a revoked token"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchanged_token_never_outlives_the_token_it_came_from() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let (login, login_claims) = token_claims(&key, &[("team-a", RW)], 20);
    let push = [scope("team-a/app", PUSH)];
    let first = exchange(&base, &login, &push).await;
    let exp = peek_claims(&first)["exp"].as_u64().unwrap();
    assert!(
        exp <= login_claims.exp,
        "a registry token (exp {exp}) outlives the 20-second token it was exchanged \
         from (exp {})",
        login_claims.exp
    );
    // Nor can re-exchanging extend it.
    let second = exchange(&base, &first, &push).await;
    let exp = peek_claims(&second)["exp"].as_u64().unwrap();
    assert!(
        exp <= login_claims.exp,
        "a re-exchanged registry token (exp {exp}) outlives the original (exp {})",
        login_claims.exp
    );
}

// ---------------------------------------------------------------- permissions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_pulls_but_every_write_is_403_denied() {
    let (server, key, image, session) = server_with_image(|_| {}).await;
    let base = server.base();
    let layer = sha256_digest(&image.layers[0]);
    let reader = bearer_client(&token(&key, &[("team-a", READ)]));

    for (method, url, actions) in guarded_requests(&base, "team-a/app", &layer, &session) {
        let res = send(&reader, method.clone(), &url).await;
        if actions == PULL {
            assert!(
                res.status().is_success(),
                "{method} {url} with a read token: {}",
                res.status()
            );
        } else {
            let what = format!("{method} {url} with a read token");
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{what}");
            expect_denied(res).await;
        }
    }
    let (bytes, _, _) = get_manifest(&reader, &base, "team-a/app", "latest").await;
    assert_eq!(bytes, image.manifest);
    assert_eq!(
        get_blob(&reader, &base, "team-a/app", &layer).await,
        image.layers[0]
    );
    let res = reader
        .head(format!("{base}/v2/team-a/app/manifests/latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "HEAD manifest with a read token"
    );

    // A real manifest push with a read token, body and all.
    let res = try_put_manifest(
        &reader,
        &base,
        "team-a/app",
        "other",
        OCI_MANIFEST,
        &image.manifest,
    )
    .await;
    expect_denied(res).await;

    // Nothing changed: the session still answers, the tag and blob are there.
    let admin = bearer_client(&token(&key, &[("*", RW)]));
    let res = admin.get(&session).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "session survived");
    assert_eq!(
        get_blob(&admin, &base, "team-a/app", &layer).await,
        image.layers[0]
    );
    assert_eq!(
        list_tags(&admin, &base, "team-a/app", 100).await,
        Some(vec!["latest".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_only_token_pushes_but_cannot_read() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let writer = bearer_client(&token(&key, &[("team-a", WRITE)]));
    let digest = push_blob(&writer, &base, "team-a/app", b"write only").await;
    let res = writer
        .get(format!("{base}/v2/team-a/app/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    expect_denied(res).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_one_namespace_is_403_on_every_other() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let admin = bearer_client(&token(&key, &[("*", RW)]));
    let mut sessions = Vec::new();
    let mut layers = Vec::new();
    for (i, repo) in ["team-b/app", "team-ab/app", "team/a", "team-b/team-a"]
        .into_iter()
        .enumerate()
    {
        let image = push_image(&admin, &base, repo, Some("latest"), 10 + i as u32, 1).await;
        layers.push(sha256_digest(&image.layers[0]));
        sessions.push(start_upload(&admin, &base, repo).await);
    }
    for grants in [vec![("team-a", RW)], vec![("team-a", READ), ("team-c", RW)]] {
        let client = bearer_client(&token(&key, &grants));
        for (i, repo) in ["team-b/app", "team-ab/app", "team/a", "team-b/team-a"]
            .into_iter()
            .enumerate()
        {
            for (method, url, _) in guarded_requests(&base, repo, &layers[i], &sessions[i]) {
                let res = send(&client, method.clone(), &url).await;
                let what = format!("{method} {url} with {grants:?}");
                assert_eq!(res.status(), StatusCode::FORBIDDEN, "{what}");
                expect_denied(res).await;
            }
            let res = client
                .head(format!("{base}/v2/{repo}/blobs/{}", layers[i]))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "HEAD blob in {repo}");
        }
    }
    // The same token works in its own namespace, including a one-component name.
    let own = bearer_client(&token(&key, &[("team-a", RW)]));
    push_image(&own, &base, "team-a", Some("latest"), 30, 1).await;
    push_image(&own, &base, "team-a/deep/er/app", Some("v1"), 31, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_token_works_in_every_namespace() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let all = bearer_client(&token(&key, &[("*", RW)]));
    for (i, repo) in ["team-a/app", "team-b/x/y", "zeta"].into_iter().enumerate() {
        let image = push_image(&all, &base, repo, Some("latest"), 40 + i as u32, 2).await;
        let report = check_manifest_refs(&all, &base, repo, &[]).await;
        assert!(report.broken.is_empty(), "{repo}: {:?}", report.broken);
        let res = all
            .delete(format!("{base}/v2/{repo}/manifests/{}", image.digest))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED, "DELETE in {repo}");
    }
    // A read-only wildcard reads everywhere and writes nowhere.
    let image = push_image(&all, &base, "team-c/app", Some("latest"), 50, 1).await;
    let reader = bearer_client(&token(&key, &[("*", READ)]));
    get_manifest(&reader, &base, "team-c/app", "latest").await;
    let res = send(
        &reader,
        Method::POST,
        &format!("{base}/v2/team-c/app/blobs/uploads/"),
    )
    .await;
    expect_denied(res).await;
    let res = reader
        .delete(format!("{base}/v2/team-c/app/manifests/{}", image.digest))
        .send()
        .await
        .unwrap();
    expect_denied(res).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_with_the_token_as_password_work() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let t = token(&key, &[("team-a", RW)]);
    for (i, user) in ["ci", "", "oauth2accesstoken"].into_iter().enumerate() {
        let client = basic_client(user, &t);
        let repo = format!("team-a/basic{i}");
        let image = push_image(&client, &base, &repo, Some("latest"), 60 + i as u32, 1).await;
        let (bytes, _, _) = get_manifest(&client, &base, &repo, "latest").await;
        assert_eq!(bytes, image.manifest, "Basic user {user:?}");
        let res = client.get(server.url("/v2/")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "GET /v2/ as Basic {user:?}");
        // Basic credentials carry the same permissions as the token.
        let res = send(
            &client,
            Method::POST,
            &format!("{base}/v2/team-b/app/blobs/uploads/"),
        )
        .await;
        expect_denied(res).await;
    }
    // A wrong password is 401, whatever the user.
    let res = basic_client("ci", "wrong")
        .get(server.url("/v2/team-a/basic0/manifests/latest"))
        .send()
        .await
        .unwrap();
    expect_challenge(res, &base, Some(&scope("team-a/basic0", PULL))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_session_cannot_be_used_through_another_namespace() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let team_a = bearer_client(&token(&key, &[("team-a", RW)]));
    let team_b = bearer_client(&token(&key, &[("team-b", RW)]));
    let session = start_upload(&team_a, &base, "team-a/app").await;
    let theirs = session.replacen("/v2/team-a/app/", "/v2/team-b/app/", 1);
    assert_ne!(
        theirs, session,
        "session URL {session} names its repository"
    );
    let intruder = b"team-b's bytes".to_vec();
    let digest = sha256_digest(&intruder);

    let res = team_b
        .patch(&theirs)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(intruder.clone())
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let res = team_b.get(&theirs).send().await.unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let res = team_b
        .put(with_query(&theirs, &format!("digest={digest}")))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(intruder.clone())
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let res = team_b.delete(&theirs).send().await.unwrap();
    expect_error(res, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;

    // team-a's session is untouched and completes with team-a's bytes.
    let res = team_a.get(&session).send().await.unwrap();
    let res = expect_status(res, StatusCode::NO_CONTENT).await;
    let range = header(&res, "range");
    assert!(
        range.is_none() || range.as_deref() == Some("0-0"),
        "an empty session: Range {range:?}"
    );
    let mine = b"team-a's bytes".to_vec();
    let mine_digest = sha256_digest(&mine);
    let res = team_a
        .put(with_query(&session, &format!("digest={mine_digest}")))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(mine.clone())
        .send()
        .await
        .unwrap();
    expect_status(res, StatusCode::CREATED).await;
    assert_eq!(
        get_blob(&team_a, &base, "team-a/app", &mine_digest).await,
        mine
    );
    let res = team_a
        .head(format!("{base}/v2/team-a/app/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "team-b's bytes in team-a"
    );
}

// ---------------------------------------------------------------- mounts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounting_from_an_unreadable_repository_is_a_plain_upload() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let admin = bearer_client(&token(&key, &[("*", RW)]));
    let secret = b"team-b's secret layer".to_vec();
    let digest = push_blob(&admin, &base, "team-b/src", &secret).await;

    let team_a = bearer_client(&token(&key, &[("team-a", RW)]));
    let res = send(
        &team_a,
        Method::POST,
        &format!("{base}/v2/team-a/app/blobs/uploads/?mount={digest}&from=team-b/src"),
    )
    .await;
    let res = expect_status(res, StatusCode::ACCEPTED).await;
    let location = abs_url(&base, &must_header(&res, "location"));
    // The blob did not become readable in the target.
    for method in [Method::HEAD, Method::GET] {
        let res = send(
            &team_a,
            method.clone(),
            &format!("{base}/v2/team-a/app/blobs/{digest}"),
        )
        .await;
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "{method} of a blob whose mount was refused"
        );
    }
    // Nor in the source, where the token may not look at all.
    let res = send(
        &team_a,
        Method::HEAD,
        &format!("{base}/v2/team-b/src/blobs/{digest}"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "HEAD in team-b");
    // The 202 session is a working upload: the client sends the bytes itself.
    let res = team_a
        .put(with_query(&location, &format!("digest={digest}")))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(secret.clone())
        .send()
        .await
        .unwrap();
    expect_status(res, StatusCode::CREATED).await;
    assert_eq!(
        get_blob(&team_a, &base, "team-a/app", &digest).await,
        secret
    );

    // With read access to the source, the same mount is a 201.
    let other = push_blob(&admin, &base, "team-b/src", b"shared layer").await;
    let both = bearer_client(&token(&key, &[("team-a", RW), ("team-b", READ)]));
    let res = send(
        &both,
        Method::POST,
        &format!("{base}/v2/team-a/app2/blobs/uploads/?mount={other}&from=team-b/src"),
    )
    .await;
    let res = expect_status(res, StatusCode::CREATED).await;
    assert_eq!(must_header(&res, "docker-content-digest"), other);
    assert_eq!(
        get_blob(&both, &base, "team-a/app2", &other).await,
        b"shared layer"
    );
    // And within the token's own namespace.
    let res = send(
        &team_a,
        Method::POST,
        &format!("{base}/v2/team-a/app3/blobs/uploads/?mount={digest}&from=team-a/app"),
    )
    .await;
    expect_status(res, StatusCode::CREATED).await;
}

// ---------------------------------------------------------------- the Docker token flow

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_token_flow_with_get_then_bearer_pushes_and_pulls() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let (login, login_claims) = token_claims(&key, &[("team-a", RW)], 30 * 86400);
    let docker_login = basic_client("ci", &login);

    // 1. BuildKit's first request carries no credentials.
    let res = send(
        &common::client(),
        Method::POST,
        &format!("{base}/v2/team-a/app/blobs/uploads/"),
    )
    .await;
    let challenge = expect_challenge(res, &base, Some(&scope("team-a/app", PUSH))).await;
    // 2. GET <realm>?service=&scope= with the docker-login credentials; a
    //    mount adds a pull scope on the source.
    let scopes = [challenge.scope.clone().unwrap(), scope("team-a/base", PULL)];
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let res = fetch_token_get(&docker_login, &challenge, &scopes).await;
    let registry_token = expect_token_response(res).await;
    let claims = peek_claims(&registry_token);
    assert_eq!(claims["parent"].as_str(), Some(login_claims.jti.as_str()));
    assert_eq!(claims["sub"].as_str(), Some(login_claims.sub.as_str()));
    assert_ne!(claims["jti"].as_str(), Some(login_claims.jti.as_str()));
    assert!(
        claims.get("larder_admin").is_none_or(|v| v == false),
        "an exchanged token is never an admin token"
    );
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300,
        "registry tokens live auth.registry_token_ttl"
    );
    assert_eq!(peek_grants(&registry_token), grants_map(&[("team-a", RW)]));

    // 3. Retry with Bearer: the whole push and pull work.
    let client = bearer_client(&registry_token);
    let image = push_image(&client, &base, "team-a/app", Some("cache"), 70, 2).await;
    let report = check_manifest_refs(&client, &base, "team-a/app", &[]).await;
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    let (bytes, _, digest) = get_manifest(&client, &base, "team-a/app", "cache").await;
    assert_eq!(
        (bytes, digest),
        (image.manifest.clone(), image.digest.clone())
    );

    // The challenge for a read names pull only, and a pull-only exchange
    // gives a token that reads.
    let res = common::client()
        .head(format!("{base}/v2/team-a/app/manifests/cache"))
        .send()
        .await
        .unwrap();
    expect_head_challenge(&res, &base, Some(&scope("team-a/app", PULL)));
    let res = fetch_token_get(&docker_login, &challenge, &[&scope("team-a/app", PULL)]).await;
    let pull_token = expect_token_response(res).await;
    assert_eq!(peek_grants(&pull_token), grants_map(&[("team-a", READ)]));
    get_manifest(&bearer_client(&pull_token), &base, "team-a/app", "cache").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_token_flow_with_the_post_password_form() {
    let (server, key) = token_server(|cfg| {
        cfg.auth.registry_token_ttl = "90s".parse().unwrap();
    })
    .await;
    let base = server.base();
    let login = token(&key, &[("team-a", RW)]);

    let res = send(
        &common::client(),
        Method::POST,
        &format!("{base}/v2/team-a/app/blobs/uploads/"),
    )
    .await;
    let challenge = expect_challenge(res, &base, Some(&scope("team-a/app", PUSH))).await;
    // containerd joins the scopes with spaces in one form field.
    let res = fetch_token_post(
        &challenge,
        "ci",
        &login,
        &[&scope("team-a/app", PUSH), &scope("team-a/base", PULL)],
    )
    .await;
    let registry_token = expect_token_response(res).await;
    let claims = peek_claims(&registry_token);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        90
    );
    assert_eq!(peek_grants(&registry_token), grants_map(&[("team-a", RW)]));
    let client = bearer_client(&registry_token);
    push_image(&client, &base, "team-a/app", Some("cache"), 80, 1).await;
    get_manifest(&client, &base, "team-a/app", "cache").await;

    // A wrong password in the form is 401.
    let res = fetch_token_post(&challenge, "ci", "wrong", &[&scope("team-a/app", PUSH)]).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    // containerd sends `grant_type=refresh_token` when the user name is
    // empty; it falls back to GET on 400/401/404, so either a token or one
    // of those is fine — anything else breaks `docker login` with a token.
    let body = format!(
        "grant_type=refresh_token&refresh_token={login}&client_id=containerd-client&service=larder&scope={}",
        scope("team-a/app", PUSH).replace(':', "%3A").replace(',', "%2C")
    );
    let res = common::client()
        .post(&challenge.realm)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    if status == StatusCode::OK {
        let t = expect_token_response(res).await;
        assert_eq!(peek_grants(&t), grants_map(&[("team-a", RW)]));
    } else {
        assert!(
            [
                StatusCode::BAD_REQUEST,
                StatusCode::UNAUTHORIZED,
                StatusCode::NOT_FOUND
            ]
            .contains(&status),
            "refresh_token grant: {status} {}",
            res.text().await.unwrap_or_default()
        );
        // The fallback containerd then takes: GET with Basic, empty user.
        let res = fetch_token_get(
            &basic_client("", &login),
            &challenge,
            &[&scope("team-a/app", PUSH)],
        )
        .await;
        let t = expect_token_response(res).await;
        assert_eq!(peek_grants(&t), grants_map(&[("team-a", RW)]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_login_flow_pings_fetches_a_scopeless_token_and_pings_again() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let login = token(&key, &[("team-a", RW)]);
    // `docker login` pings /v2/ …
    let res = common::client()
        .get(server.url("/v2/"))
        .send()
        .await
        .unwrap();
    let challenge = expect_challenge(res, &base, None).await;
    // … asks the realm for a token with no scope, as docker does …
    let res = basic_client("ci", &login)
        .get(&challenge.realm)
        .query(&[
            ("account", "ci"),
            ("client_id", "docker"),
            ("offline_token", "true"),
            ("service", "larder"),
        ])
        .send()
        .await
        .unwrap();
    let t = expect_token_response(res).await;
    assert!(peek_grants(&t).is_empty(), "{:?}", peek_grants(&t));
    // … and pings again with it.
    let res = bearer_client(&t)
        .get(server.url("/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "GET /v2/ with the login token"
    );
    // A wrong password fails the login at the token endpoint.
    let res = basic_client("ci", "wrong")
        .get(&challenge.realm)
        .query(&[("account", "ci"), ("service", "larder")])
        .send()
        .await
        .unwrap();
    expect_error(res, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchanged_token_carries_only_the_granted_scopes() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let admin = bearer_client(&token(&key, &[("*", RW)]));
    push_image(&admin, &base, "team-a/app", Some("latest"), 90, 1).await;
    push_image(&admin, &base, "team-b/x", Some("latest"), 91, 1).await;
    let challenge = Challenge {
        realm: format!("{base}/v2/token"),
        service: Some("larder".into()),
        scope: None,
    };
    let exchange = |secret: String, scopes: Vec<String>| {
        let challenge = challenge.clone();
        async move {
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let res = fetch_token_get(&basic_client("ci", &secret), &challenge, &scopes).await;
            expect_token_response(res).await
        }
    };

    // team-a asks for team-b too: the answer only covers team-a.
    let team_a = token(&key, &[("team-a", RW)]);
    let t = exchange(
        team_a.clone(),
        vec![scope("team-b/x", PULL), scope("team-a/app", PULL)],
    )
    .await;
    assert_eq!(peek_grants(&t), grants_map(&[("team-a", READ)]));
    let c = bearer_client(&t);
    let res = c
        .get(format!("{base}/v2/team-b/x/manifests/latest"))
        .send()
        .await
        .unwrap();
    expect_denied(res).await;
    get_manifest(&c, &base, "team-a/app", "latest").await;
    // Only pull was asked for, so the token cannot push.
    let res = send(
        &c,
        Method::POST,
        &format!("{base}/v2/team-a/app/blobs/uploads/"),
    )
    .await;
    expect_denied(res).await;

    // Asking only for what it may not have gives a token good for nothing.
    let t = exchange(team_a.clone(), vec![scope("team-b/x", PUSH)]).await;
    assert!(peek_grants(&t).is_empty(), "{:?}", peek_grants(&t));
    let res = bearer_client(&t)
        .get(format!("{base}/v2/team-b/x/manifests/latest"))
        .send()
        .await
        .unwrap();
    expect_denied(res).await;

    // A read-only token asking for push gets pull only.
    let reader = token(&key, &[("team-a", READ)]);
    let t = exchange(reader, vec![scope("team-a/app", PUSH)]).await;
    assert_eq!(peek_grants(&t), grants_map(&[("team-a", READ)]));
    let res = send(
        &bearer_client(&t),
        Method::POST,
        &format!("{base}/v2/team-a/app/blobs/uploads/"),
    )
    .await;
    expect_denied(res).await;

    // A wildcard token is narrowed to the namespaces asked for.
    let wild = token(&key, &[("*", RW)]);
    let t = exchange(wild, vec![scope("team-a/app", PUSH)]).await;
    assert_eq!(peek_grants(&t), grants_map(&[("team-a", RW)]));
    let res = bearer_client(&t)
        .get(format!("{base}/v2/team-b/x/manifests/latest"))
        .send()
        .await
        .unwrap();
    expect_denied(res).await;

    // Exchanging an exchanged token never widens it.
    let narrow = exchange(team_a, vec![scope("team-a/app", PULL)]).await;
    let again = exchange(narrow, vec![scope("team-a/app", PUSH)]).await;
    assert_eq!(peek_grants(&again), grants_map(&[("team-a", READ)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_refuses_bad_credentials() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let challenge = Challenge {
        realm: format!("{base}/v2/token"),
        service: Some("larder".into()),
        scope: None,
    };
    let want = scope("team-a/app", PUSH);
    let now = now_secs();
    let other_key: [u8; 32] = rand::random();
    let bad = [
        "garbage".to_owned(),
        token(&other_key, &[("team-a", RW)]),
        encode_claims(
            &key,
            &claims_with_window(&[("team-a", RW)], now - 100, now - 5),
        ),
        encode_claims(
            &key,
            &claims_with_window(&[("team-a", RW)], now + 3600, now + 7200),
        ),
    ];
    for secret in &bad {
        let res = fetch_token_get(&basic_client("ci", secret), &challenge, &[&want]).await;
        expect_error(res, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        let res = fetch_token_get(&bearer_client(secret), &challenge, &[&want]).await;
        expect_error(res, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        let res = fetch_token_post(&challenge, "ci", secret, &[&want]).await;
        expect_error(res, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    }
    // No credentials at all, without anonymous reads: 401.
    let res = fetch_token_get(&common::client(), &challenge, &[&want]).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    let res = fetch_token_post(&challenge, "", "", &[&want]).await;
    expect_error(res, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
}

// ---------------------------------------------------------------- anonymous reads

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_read_lets_anyone_pull_and_nobody_push_without_a_token() {
    let (server, key, image, session) =
        server_with_image(|cfg| cfg.auth.anonymous_read = true).await;
    let base = server.base();
    let layer = sha256_digest(&image.layers[0]);
    let anon = common::client();

    for (method, url, actions) in guarded_requests(&base, "team-a/app", &layer, &session) {
        let res = send(&anon, method.clone(), &url).await;
        if actions == PULL {
            assert!(
                res.status().is_success(),
                "anonymous {method} {url}: {}",
                res.status()
            );
        } else {
            assert_eq!(
                res.status(),
                StatusCode::UNAUTHORIZED,
                "anonymous {method} {url}"
            );
            expect_challenge(res, &base, Some(&scope("team-a/app", PUSH))).await;
        }
    }
    for url in [
        format!("{base}/v2/team-a/app/blobs/{layer}"),
        format!("{base}/v2/team-a/app/manifests/latest"),
    ] {
        let res = send(&anon, Method::HEAD, &url).await;
        assert_eq!(res.status(), StatusCode::OK, "anonymous HEAD {url}");
    }
    let (bytes, _, _) = get_manifest(&anon, &base, "team-a/app", "latest").await;
    assert_eq!(bytes, image.manifest);
    assert_eq!(
        get_blob(&anon, &base, "team-a/app", &layer).await,
        image.layers[0]
    );
    let res = anon.get(server.url("/v2/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "anonymous GET /v2/");

    // Bad credentials are still 401: a typo never silently downgrades.
    let res = bearer_client("garbage")
        .get(format!("{base}/v2/team-a/app/manifests/latest"))
        .send()
        .await
        .unwrap();
    expect_challenge(res, &base, Some(&scope("team-a/app", PULL))).await;

    // The token endpoint gives anonymous callers a pull-only token.
    let challenge = Challenge {
        realm: format!("{base}/v2/token"),
        service: Some("larder".into()),
        scope: None,
    };
    let res = fetch_token_get(&anon, &challenge, &[&scope("team-a/app", PUSH)]).await;
    let t = expect_token_response(res).await;
    assert_eq!(peek_grants(&t), grants_map(&[("team-a", READ)]));
    let c = bearer_client(&t);
    get_manifest(&c, &base, "team-a/app", "latest").await;
    let res = send(
        &c,
        Method::POST,
        &format!("{base}/v2/team-a/app/blobs/uploads/"),
    )
    .await;
    expect_denied(res).await;
    let res = fetch_token_get(
        &basic_client("ci", "garbage"),
        &challenge,
        &[&scope("team-a/app", PULL)],
    )
    .await;
    expect_error(res, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    // A token still pushes.
    let writer = bearer_client(&token(&key, &[("team-a", RW)]));
    push_blob(&writer, &base, "team-a/app", b"pushed with a token").await;
}

// ---------------------------------------------------------------- the catalog

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_lists_only_repositories_the_token_can_read() {
    let (server, key) = token_server(|_| {}).await;
    let base = server.base();
    let admin = bearer_client(&token(&key, &[("*", RW)]));
    let repos = ["team-a/app", "team-a/lib", "team-b/app", "team-c/x/y"];
    for (i, repo) in repos.iter().enumerate() {
        push_image(&admin, &base, repo, Some("latest"), 100 + i as u32, 1).await;
    }
    let catalog = |client: Client| {
        let url = server.url("/v2/_catalog");
        async move {
            let res = client.get(&url).send().await.unwrap();
            let res = expect_status(res, StatusCode::OK).await;
            let body: Value = res.json().await.unwrap();
            serde_json::from_value::<Vec<String>>(body["repositories"].clone()).unwrap()
        }
    };
    assert_eq!(catalog(admin.clone()).await, repos);
    assert_eq!(
        catalog(bearer_client(&token(&key, &[("team-a", READ)]))).await,
        ["team-a/app", "team-a/lib"]
    );
    assert_eq!(
        catalog(bearer_client(&token(
            &key,
            &[("team-a", RW), ("team-c", READ)]
        )))
        .await,
        ["team-a/app", "team-a/lib", "team-c/x/y"]
    );
    // Write access alone does not show a namespace.
    assert_eq!(
        catalog(bearer_client(&token(&key, &[("team-b", WRITE)]))).await,
        Vec::<String>::new()
    );
    assert_eq!(
        catalog(bearer_client(&token(&key, &[("team-z", RW)]))).await,
        Vec::<String>::new()
    );
    // Without a token: the challenge.
    let res = common::client()
        .get(server.url("/v2/_catalog"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    expect_unauthorized(res, &base).await;
}

// ---------------------------------------------------------------- public addresses

/// Runs `larder serve --listen 0.0.0.0:0 --data-dir D` with only the given
/// LARDER variables. Returns (exit status or None if it started, stderr).
fn serve_public(data_dir: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, Vec<String>) {
    let mut cmd = Command::new(common::process::larder_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LARDER") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(data_dir)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn larder");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    // Either a "listening" line or the end of stderr (the process exited).
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let listening = line.contains("listening");
                lines.push(line);
                if listening {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("wait");
                return (Some(status.code().unwrap_or(-1)), lines);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "larder neither started nor exited; log:\n{}",
                    lines.join("\n")
                );
            }
        }
    }
    let addr = lines
        .last()
        .unwrap()
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .expect("listening line names addr=")
        .to_owned();
    let port: u16 = addr
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .expect("port parses");
    // Probe it over loopback: the mode decides what /v2/ answers.
    let probe = std::net::TcpStream::connect(("127.0.0.1", port)).map(|mut s| {
        use std::io::{Read, Write};
        s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    lines.push(format!(
        "PROBE {}",
        probe.unwrap_or_default().lines().next().unwrap_or("")
    ));
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "larder did not stop cleanly on SIGTERM: {status}; log:\n{}",
        lines.join("\n")
    );
    (None, lines)
}

#[test]
fn serving_anonymously_on_a_public_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (status, log) = serve_public(&dir.path().join("refused"), &[]);
    let log = log.join("\n");
    let code = status.unwrap_or_else(|| panic!("larder served 0.0.0.0 anonymously; log:\n{log}"));
    assert_ne!(code, 0, "exit status; log:\n{log}");
    assert!(
        log.contains("auth.mode") && log.contains("allow_anonymous"),
        "the refusal names auth.mode and allow_anonymous:\n{log}"
    );

    let (status, log) = serve_public(
        &dir.path().join("anonymous"),
        &[("LARDER__AUTH__ALLOW_ANONYMOUS", "true")],
    );
    let log = log.join("\n");
    assert_eq!(status, None, "allow_anonymous = true starts; log:\n{log}");
    assert!(
        log.contains("PROBE HTTP/1.1 200"),
        "anonymous /v2/ is open:\n{log}"
    );

    let (status, log) = serve_public(
        &dir.path().join("token"),
        &[("LARDER__AUTH__MODE", "token")],
    );
    let log = log.join("\n");
    assert_eq!(status, None, "auth.mode = token starts; log:\n{log}");
    assert!(
        log.contains("PROBE HTTP/1.1 401"),
        "token mode challenges /v2/:\n{log}"
    );
}
