//! The real Gradle (apt package `gradle`) with its `HttpBuildCache` pointed
//! at `/cache/<namespace>/`, Basic credentials carrying the token: a clean
//! rebuild takes `compileJava` FROM-CACHE; an output above
//! `storage.max_blob_size` is refused with 413 and the build goes on.
//! (Current Gradle skips a 413 quietly; Debian's Gradle 4.4 reports it and
//! turns the remote cache off for the rest of that build.)

mod common;
mod httpcache_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{require_tool, TestServer};
use httpcache_support::*;

/// A one-class Java project whose only build cache is Larder.
fn project(url: &str, token: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "settings.gradle",
        &format!(
            "rootProject.name = 'demo'\n\
             buildCache {{\n\
                 local {{ enabled = false }}\n\
                 remote(HttpBuildCache) {{\n\
                     url = '{url}'\n\
                     push = true\n\
                     credentials {{ username = 'ci'; password = '{token}' }}\n\
                 }}\n\
             }}\n"
        ),
    );
    write("build.gradle", "apply plugin: 'java'\n");
    write(
        "src/main/java/demo/Hello.java",
        "package demo;\npublic class Hello { public static String hi() { return \"hi\"; } }\n",
    );
    dir
}

/// `gradle --build-cache compileJava` from a clean output dir; its output.
async fn compile(gradle: &Path, project: &Path) -> String {
    let _ = std::fs::remove_dir_all(project.join("build"));
    let run = tokio::process::Command::new(gradle)
        .args([
            "--no-daemon",
            "--build-cache",
            "--console=plain",
            "compileJava",
        ])
        .current_dir(project)
        .env("GRADLE_USER_HOME", project.join(".gradle-home"))
        .env_remove("GRADLE_OPTS")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("gradle finishes")
        .expect("gradle runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "gradle failed:\n{text}");
    text
}

fn gradle() -> Option<PathBuf> {
    require_tool("gradle")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_rebuild_is_from_cache() {
    let Some(gradle) = gradle() else { return };
    let s = token_server().await;
    let t = token(&s, &[("jvm", RW)]);
    let p = project(&s.url("/cache/jvm/"), &t);
    let first = compile(&gradle, p.path()).await;
    assert!(!first.contains("FROM-CACHE"), "{first}");
    assert!(
        !blob_files(&s.data_dir()).is_empty(),
        "nothing was stored:\n{first}"
    );
    let second = compile(&gradle, p.path()).await;
    assert!(second.contains(":compileJava FROM-CACHE"), "{second}");
    assert!(p
        .path()
        .join("build/classes/java/main/demo/Hello.class")
        .is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_output_gets_413_and_the_build_goes_on() {
    let Some(gradle) = gradle() else { return };
    let s = TestServer::start_with(|c| {
        c.auth.mode = larder::config::AuthMode::Token;
        c.storage.max_blob_size = larder::config::Size(64);
    })
    .await;
    let t = token(&s, &[("jvm", RW)]);
    let p = project(&s.url("/cache/jvm/"), &t);
    let first = compile(&gradle, p.path()).await;
    assert!(first.contains("413"), "{first}");
    assert!(blob_files(&s.data_dir()).is_empty());
    let second = compile(&gradle, p.path()).await;
    assert!(!second.contains("FROM-CACHE"), "{second}");
}
