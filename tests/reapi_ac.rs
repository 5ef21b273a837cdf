//! The action cache's inlining against a real server (`inline_stdout`,
//! `inline_output_files`: asked-for blobs come inside the result, others and
//! those over the budget stay digests), and the configured namespace of
//! calls with an empty instance name.

mod common;
mod httpcache_support;
mod reapi_support;

use common::{client, TestServer};
use httpcache_support::sha256_hex;
use larder::api::reapi::gen::build::bazel::remote::execution::v2 as re;
use re::action_cache_client::ActionCacheClient;
use re::content_addressable_storage_client::ContentAddressableStorageClient as CasClient;
use reapi_support::{channel, digest, put};

const NS: &str = "team";

fn output(path: &str, data: &[u8]) -> re::OutputFile {
    re::OutputFile {
        path: path.into(),
        digest: Some(digest(data)),
        ..Default::default()
    }
}

#[tokio::test]
async fn asked_for_outputs_come_inline_and_others_stay_digests() {
    let s = TestServer::start().await;
    let ch = channel(&s).await;
    let (mut cas, mut ac) = (CasClient::new(ch.clone()), ActionCacheClient::new(ch));
    let (stdout, stderr) = (&b"compiling...\n"[..], &b"a warning\n"[..]);
    let (a, b) = (&b"output a"[..], &b"output b"[..]);
    // Over the inline budget (1 MiB a result): the proto lets it stay a digest.
    let big = vec![7u8; (1 << 20) + 1];
    put(&mut cas, NS, &[stdout, stderr, a, b, &big]).await;
    let result = re::ActionResult {
        output_files: vec![
            output("bin/a", a),
            output("bin/b", b),
            output("bin/big", &big),
        ],
        stdout_digest: Some(digest(stdout)),
        stderr_digest: Some(digest(stderr)),
        ..Default::default()
    };
    let action = digest(b"an action with outputs");
    ac.update_action_result(re::UpdateActionResultRequest {
        instance_name: NS.into(),
        action_digest: Some(action.clone()),
        action_result: Some(result.clone()),
        ..Default::default()
    })
    .await
    .expect("update");

    let ask = |stdout, files: &[&str]| re::GetActionResultRequest {
        instance_name: NS.into(),
        action_digest: Some(action.clone()),
        inline_stdout: stdout,
        inline_output_files: files.iter().map(|f| (*f).into()).collect(),
        ..Default::default()
    };
    // Paths match exactly: `./bin/b` and `bin/b/` are not `bin/b`.
    let got = ac
        .get_action_result(ask(true, &["bin/a", "./bin/b", "bin/b/", "bin/big"]))
        .await
        .expect("a hit")
        .into_inner();
    assert_eq!(got.stdout_raw, stdout);
    assert!(got.stderr_raw.is_empty(), "stderr was not asked for");
    assert_eq!(got.stderr_digest, Some(digest(stderr)));
    let files = &got.output_files;
    assert_eq!(files[0].contents, a);
    assert!(files[1].contents.is_empty(), "bin/b was not asked for");
    assert!(files[2].contents.is_empty(), "bin/big is over the budget");
    let digests: Vec<_> = files.iter().map(|f| f.digest.clone()).collect();
    let stored: Vec<_> = result
        .output_files
        .iter()
        .map(|f| f.digest.clone())
        .collect();
    assert_eq!(digests, stored, "every output keeps its digest");

    let plain = ac.get_action_result(ask(false, &[])).await.expect("a hit");
    assert_eq!(plain.into_inner(), result, "nothing inline unless asked");
}

#[tokio::test]
async fn an_empty_instance_name_goes_to_the_configured_namespace() {
    let s = TestServer::start_with(|c| c.reapi.default_namespace = "bazel-ci".into()).await;
    let mut cas = CasClient::new(channel(&s).await);
    let blob = &b"uploaded with no instance name"[..];
    put(&mut cas, "", &[blob]).await;
    let get = |ns: &str| client().get(s.url(&format!("/cache/{ns}/cas/{}", sha256_hex(blob))));
    let res = get("bazel-ci").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), blob);
    let res = get("default").send().await.unwrap();
    assert_eq!(res.status(), 404, "not the built-in default");
}
