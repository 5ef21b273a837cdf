//! npm through Larder's pull-through proxy, with real clients and a real
//! upstream: Verdaccio (tests/node) on loopback, packages published to it by
//! the test, the real `npm` CLI. Skips locally when node, npm or Verdaccio
//! is missing; fails under CI=true.

mod common;
mod npm_support;

use npm_support::*;

/// The harness itself: what the test publishes to Verdaccio installs from
/// it directly, dependency and scope included. Everything else here builds
/// on this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdaccio_serves_what_the_test_publishes() {
    let Some(tools) = tools() else { return };
    let temp = tempfile::tempdir().unwrap();
    let verdaccio = Verdaccio::start(&tools, &temp.path().join("verdaccio"));
    let token = verdaccio.add_user("publisher").await;
    let npm = Npm::new(&tools, temp.path());
    publish_fixtures(&npm, &verdaccio.url, &token, temp.path());

    let project = project(temp.path());
    npm.config(&format!("registry={}/\n", verdaccio.url));
    npm.ok(&project, &["install"]);
    assert_eq!(
        run_installed(&tools, &project),
        "larder-test-app@1.0.0 + @larder-test/greet@1.1.0"
    );
    let resolved = lock_resolved(&project);
    assert_eq!(
        resolved,
        [
            (
                "node_modules/@larder-test/greet".to_owned(),
                format!("{}/@larder-test/greet/-/greet-1.1.0.tgz", verdaccio.url)
            ),
            (
                "node_modules/larder-test-app".to_owned(),
                format!(
                    "{}/larder-test-app/-/larder-test-app-1.0.0.tgz",
                    verdaccio.url
                )
            ),
        ]
    );
}
