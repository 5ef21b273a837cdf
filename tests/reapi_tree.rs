//! `GetTree` against a real server: a nested tree comes back breadth-first
//! with each directory once, pages of one reassemble it, a page token
//! resumes it, and bad tokens and missing roots get the proto's errors.

mod common;
mod httpcache_support;
mod reapi_support;

use common::TestServer;
use larder::api::reapi::gen::build::bazel::remote::execution::v2 as re;
use prost::Message as _;
use re::content_addressable_storage_client::ContentAddressableStorageClient as CasClient;
use reapi_support::{channel, digest, put};
use tonic::transport::Channel;
use tonic::{Code, Status};

const NS: &str = "team";

fn file(name: &str, data: &[u8]) -> re::FileNode {
    re::FileNode {
        name: name.into(),
        digest: Some(digest(data)),
        ..Default::default()
    }
}

fn subdir(name: &str, dir: &re::Directory) -> re::DirectoryNode {
    re::DirectoryNode {
        name: name.into(),
        digest: Some(digest(&dir.encode_to_vec())),
    }
}

struct Tree {
    root: re::Directory,
    one: re::Directory,
    leaf: re::Directory,
}

/// `root/{one/leaf, two, gone}`, where `two` is the same directory as
/// `one/leaf` and `gone` was never uploaded.
async fn nested_tree(cas: &mut CasClient<Channel>) -> Tree {
    let leaf = re::Directory {
        files: vec![file("a.txt", b"a")],
        ..Default::default()
    };
    let one = re::Directory {
        files: vec![file("b.txt", b"b")],
        directories: vec![subdir("leaf", &leaf)],
        ..Default::default()
    };
    let gone = re::Directory {
        files: vec![file("never.txt", b"never uploaded")],
        ..Default::default()
    };
    let root = re::Directory {
        directories: vec![
            subdir("gone", &gone),
            subdir("one", &one),
            subdir("two", &leaf),
        ],
        ..Default::default()
    };
    let blobs = [&root, &one, &leaf].map(|d| d.encode_to_vec());
    let blobs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    put(cas, NS, &blobs).await;
    Tree { root, one, leaf }
}

fn request(root: &re::Directory, page_size: i32, page_token: &str) -> re::GetTreeRequest {
    re::GetTreeRequest {
        instance_name: NS.into(),
        root_digest: Some(digest(&root.encode_to_vec())),
        page_size,
        page_token: page_token.into(),
        digest_function: 0,
    }
}

/// Every page of one call.
async fn pages(
    cas: &mut CasClient<Channel>,
    req: re::GetTreeRequest,
) -> Result<Vec<re::GetTreeResponse>, Status> {
    let mut stream = cas.get_tree(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(page) = stream.message().await? {
        out.push(page);
    }
    Ok(out)
}

fn directories(pages: &[re::GetTreeResponse]) -> Vec<re::Directory> {
    pages.iter().flat_map(|p| p.directories.clone()).collect()
}

#[tokio::test]
async fn a_tree_comes_back_breadth_first_each_directory_once() {
    let s = TestServer::start().await;
    let mut cas = CasClient::new(channel(&s).await);
    let t = nested_tree(&mut cas).await;
    let all = pages(&mut cas, request(&t.root, 0, "")).await.unwrap();
    assert_eq!(all.len(), 1, "a small tree fits one page");
    assert_eq!(all[0].next_page_token, "", "the last page has no token");
    // The missing `gone` is left out; `leaf`, named twice, comes once.
    assert_eq!(directories(&all), [t.root, t.one, t.leaf]);
}

#[tokio::test]
async fn pages_of_one_reassemble_the_tree_and_a_token_resumes_it() {
    let s = TestServer::start().await;
    let mut cas = CasClient::new(channel(&s).await);
    let t = nested_tree(&mut cas).await;
    let whole = directories(&pages(&mut cas, request(&t.root, 0, "")).await.unwrap());

    let paged = pages(&mut cas, request(&t.root, 1, "")).await.unwrap();
    assert!(paged.iter().all(|p| p.directories.len() == 1), "{paged:?}");
    assert_eq!(directories(&paged), whole);
    let tokens: Vec<&str> = paged.iter().map(|p| p.next_page_token.as_str()).collect();
    assert!(tokens[..tokens.len() - 1].iter().all(|t| !t.is_empty()));
    assert_eq!(tokens.last(), Some(&""));

    // A client whose stream broke after the first page continues there.
    let rest = pages(&mut cas, request(&t.root, 1, tokens[0]))
        .await
        .unwrap();
    assert_eq!(directories(&rest), whole[1..]);
    let last = pages(&mut cas, request(&t.root, 0, tokens[1]))
        .await
        .unwrap();
    assert_eq!(directories(&last), whole[2..]);
}

#[tokio::test]
async fn a_garbage_or_foreign_page_token_is_invalid() {
    let s = TestServer::start().await;
    let mut cas = CasClient::new(channel(&s).await);
    let t = nested_tree(&mut cas).await;
    let paged = pages(&mut cas, request(&t.root, 1, "")).await.unwrap();
    let token = paged[0].next_page_token.clone();
    // One flipped digit, or another root's token.
    let mut flipped = token.clone().into_bytes();
    flipped[4] = if flipped[4] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    for (root, bad) in [
        (&t.root, "garbage"),
        (&t.root, "ffffffffffffffffffffffffffffffffffffffffffffffff"),
        (&t.root, "é"),
        (&t.root, flipped.as_str()),
        (&t.one, token.as_str()),
    ] {
        let err = pages(&mut cas, request(root, 1, bad)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err}");
    }
    let err = pages(&mut cas, request(&t.root, -1, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
}

#[tokio::test]
async fn a_missing_root_is_not_found_and_the_empty_root_is_empty() {
    let s = TestServer::start().await;
    let mut cas = CasClient::new(channel(&s).await);
    let absent = re::Directory {
        files: vec![file("x", b"x")],
        ..Default::default()
    };
    let err = pages(&mut cas, request(&absent, 0, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");

    // A blob that is there but no Directory is no tree root either.
    let not_a_dir = b"\xff\xff\xff not a protobuf";
    put(&mut cas, NS, &[not_a_dir]).await;
    let mut req = request(&absent, 0, "");
    req.root_digest = Some(digest(not_a_dir));
    let err = pages(&mut cas, req).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");

    // The empty Directory is the empty blob, which is always present.
    let empty = re::Directory::default();
    let all = pages(&mut cas, request(&empty, 0, "")).await.unwrap();
    assert_eq!(directories(&all), [empty]);
}
