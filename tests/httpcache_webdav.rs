//! The WebDAV subset sccache/OpenDAL uses on `/cache/<namespace>/`:
//! PROPFIND (Depth 0 and 1, parsed as XML multistatus) and MKCOL.

mod common;
mod httpcache_support;

use common::{client, TestServer};
use httpcache_support::*;
use reqwest::Method;

const DAV: &str = "DAV:";

/// One `<response>` of a multistatus: href, collection or not, length.
#[derive(Debug, PartialEq)]
struct Item {
    href: String,
    collection: bool,
    length: Option<u64>,
}

async fn propfind(s: &TestServer, path: &str, depth: &str) -> (u16, Vec<Item>) {
    let res = client()
        .request(Method::from_bytes(b"PROPFIND").unwrap(), s.url(path))
        .header("Depth", depth)
        .header("Content-Type", "application/xml")
        .body(r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    if status != 207 {
        return (status, Vec::new());
    }
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/xml"));
    let text = res.text().await.unwrap();
    (status, parse_multistatus(&text))
}

fn parse_multistatus(text: &str) -> Vec<Item> {
    let doc = roxmltree::Document::parse(text).expect("well-formed XML");
    let root = doc.root_element();
    assert!(root.has_tag_name((DAV, "multistatus")), "{text}");
    root.children()
        .filter(|n| n.has_tag_name((DAV, "response")))
        .map(|r| {
            let status = child(r, "status").and_then(|n| n.text()).unwrap_or("");
            assert_eq!(status, "HTTP/1.1 200 OK");
            assert!(child(r, "getlastmodified").is_some(), "{text}");
            Item {
                href: child(r, "href").and_then(|n| n.text()).unwrap().to_owned(),
                collection: child(r, "resourcetype")
                    .is_some_and(|t| t.children().any(|c| c.has_tag_name((DAV, "collection")))),
                length: child(r, "getcontentlength")
                    .and_then(|n| n.text())
                    .map(|t| t.parse().unwrap()),
            }
        })
        .collect()
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.descendants().find(|c| c.has_tag_name((DAV, name)))
}

fn dir(href: &str) -> Item {
    Item {
        href: href.into(),
        collection: true,
        length: None,
    }
}

fn file(href: &str, len: u64) -> Item {
    Item {
        href: href.into(),
        collection: false,
        length: Some(len),
    }
}

async fn put(s: &TestServer, path: &str, body: &[u8]) {
    let res = client()
        .put(s.url(path))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
}

#[tokio::test]
async fn propfind_lists_the_virtual_tree() {
    let s = TestServer::start().await;
    put(&s, "/cache/sc/a/b/c/abc1", b"one").await;
    put(&s, "/cache/sc/a/b/c/abc22", b"two!").await;
    put(&s, "/cache/sc/a/x", b"xx").await;
    put(&s, "/cache/other/a/secret", b"no").await;

    assert_eq!(
        propfind(&s, "/cache/sc/a/b/", "0").await,
        (207, vec![dir("/cache/sc/a/b/")])
    );
    assert_eq!(
        propfind(&s, "/cache/sc/a/", "1").await,
        (
            207,
            vec![
                dir("/cache/sc/a/"),
                dir("/cache/sc/a/b/"),
                file("/cache/sc/a/x", 2)
            ]
        )
    );
    assert_eq!(
        propfind(&s, "/cache/sc/a/b/c/", "1").await,
        (
            207,
            vec![
                dir("/cache/sc/a/b/c/"),
                file("/cache/sc/a/b/c/abc1", 3),
                file("/cache/sc/a/b/c/abc22", 4)
            ]
        )
    );
    // A path without the trailing slash finds the collection too.
    assert_eq!(
        propfind(&s, "/cache/sc/a/b", "0").await.1,
        vec![dir("/cache/sc/a/b/")]
    );
    // A file.
    assert_eq!(
        propfind(&s, "/cache/sc/a/b/c/abc1", "0").await,
        (207, vec![file("/cache/sc/a/b/c/abc1", 3)])
    );
    // The namespace root always exists; other namespaces never show.
    assert_eq!(
        propfind(&s, "/cache/sc/", "1").await.1,
        vec![dir("/cache/sc/"), dir("/cache/sc/a/")]
    );
    assert_eq!(
        propfind(&s, "/cache/empty/", "0").await.1,
        vec![dir("/cache/empty/")]
    );
    assert_eq!(propfind(&s, "/cache/sc/nothing/", "0").await.0, 404);
    assert_eq!(propfind(&s, "/cache/sc/a/b/c/abc", "0").await.0, 404);
    assert_eq!(propfind(&s, "/cache/sc/a/", "2").await.0, 400);
}

#[tokio::test]
async fn mkcol_then_put_as_sccache_does() {
    let s = TestServer::start().await;
    let mkcol = |path: &str| {
        client()
            .request(Method::from_bytes(b"MKCOL").unwrap(), s.url(path))
            .send()
    };
    // OpenDAL walks the parents: PROPFIND (404) then MKCOL, then PUT.
    for parent in ["/cache/sc/a/", "/cache/sc/a/b/", "/cache/sc/a/b/c/"] {
        assert_eq!(propfind(&s, parent, "0").await.0, 404);
        assert_eq!(mkcol(parent).await.unwrap().status(), 201, "{parent}");
    }
    put(&s, "/cache/sc/a/b/c/abcdef", b"object").await;
    let res = client()
        .get(s.url("/cache/sc/a/b/c/abcdef"))
        .header("Range", "bytes=1-3")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap(), &b"bje"[..]);
    // Existing collections (and the root) answer 405, which OpenDAL accepts.
    assert_eq!(mkcol("/cache/sc/a/").await.unwrap().status(), 405);
    assert_eq!(mkcol("/cache/sc/").await.unwrap().status(), 405);
    assert_eq!(mkcol("/cache/sc/a/b/c/abcdef").await.unwrap().status(), 405);
    let hostile = raw_request(&s, "MKCOL", "/cache/sc/a/../../x/", &[], b"").await;
    assert_eq!(hostile.status, 400);
    // Deleting a collection deletes what is under it.
    let res = client()
        .delete(s.url("/cache/sc/a/b/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(propfind(&s, "/cache/sc/a/", "0").await.0, 404);
}
