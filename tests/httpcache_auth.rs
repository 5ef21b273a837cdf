//! Tokens on `/cache/<namespace>/…`: who may read and write which namespace,
//! Bearer and Basic-with-token-as-password, and the 401 challenge.

mod common;
mod httpcache_support;

use base64::Engine as _;
use common::client;
use httpcache_support::*;
use reqwest::Method;

fn basic(token: &str) -> String {
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("gradle:{token}"));
    format!("Basic {creds}")
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_with_a_basic_challenge() {
    let s = token_server().await;
    for (method, auth) in [
        (Method::GET, None),
        (Method::PUT, None),
        (Method::GET, Some("Bearer not-a-token".to_owned())),
        (Method::PUT, Some(basic("not-a-token"))),
    ] {
        let mut req = client()
            .request(method.clone(), s.url("/cache/team/key"))
            .body("v");
        if let Some(a) = &auth {
            req = req.header("Authorization", a);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{method} {auth:?}");
        assert_eq!(res.headers()["www-authenticate"], "Basic realm=\"larder\"");
        assert!(res.text().await.unwrap().starts_with("401 "));
    }
}

#[tokio::test]
async fn bearer_and_basic_tokens_read_and_write_their_namespace() {
    let s = token_server().await;
    let rw = token(&s, &[("team", RW)]);
    let res = client()
        .put(s.url("/cache/team/key"))
        .bearer_auth(&rw)
        .body("value")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // Gradle and ccache send Basic credentials; the token is the password.
    let res = client()
        .get(s.url("/cache/team/key"))
        .header("Authorization", basic(&rw))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "value");
}

#[tokio::test]
async fn read_only_tokens_cannot_write_and_other_namespaces_are_forbidden() {
    let s = token_server().await;
    let rw = token(&s, &[("team-a", RW)]);
    let ro = token(&s, &[("team-a", RO)]);
    client()
        .put(s.url("/cache/team-a/key"))
        .bearer_auth(&rw)
        .body("a")
        .send()
        .await
        .unwrap();

    let res = client()
        .get(s.url("/cache/team-a/key"))
        .bearer_auth(&ro)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for method in [
        Method::PUT,
        Method::DELETE,
        Method::from_bytes(b"MKCOL").unwrap(),
    ] {
        let res = client()
            .request(method.clone(), s.url("/cache/team-a/key2"))
            .bearer_auth(&ro)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{method}");
        assert!(res.text().await.unwrap().starts_with("403 "));
    }

    // A token for namespace A is no key to namespace B, read or write.
    for method in [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::from_bytes(b"PROPFIND").unwrap(),
    ] {
        let res = client()
            .request(method.clone(), s.url("/cache/team-b/key"))
            .bearer_auth(&rw)
            .body("b")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{method}");
    }
    let res = client()
        .get(s.url("/cache/team-a/key"))
        .bearer_auth(&ro)
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "a");
}

#[tokio::test]
async fn anonymous_reads_only_when_configured() {
    let s = common::TestServer::start_with(|c| {
        c.auth.mode = larder::config::AuthMode::Token;
        c.auth.anonymous_read = true;
    })
    .await;
    let rw = token(&s, &[("pub", RW)]);
    client()
        .put(s.url("/cache/pub/k"))
        .bearer_auth(&rw)
        .body("open")
        .send()
        .await
        .unwrap();
    let res = client().get(s.url("/cache/pub/k")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = client()
        .put(s.url("/cache/pub/k"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
