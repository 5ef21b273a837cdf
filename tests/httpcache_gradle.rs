//! The real Gradle (apt package `gradle`) with its `HttpBuildCache` pointed
//! at `/cache/<namespace>/`, Basic credentials carrying the token: a clean
//! rebuild takes `compileJava` FROM-CACHE; an output above
//! `storage.max_blob_size` is refused with 413 and the build goes on.
//! (Current Gradle skips a 413 quietly; Debian's Gradle 4.4 reports it and
//! turns the remote cache off for the rest of that build.)
//!
//! The settings script is docs/USING.md's Groovy recipe, taken from the doc
//! as written, so the two cannot drift apart; only the host and namespace
//! are this test's, and on Gradle before 6.0 its `allowInsecureProtocol`
//! line goes, as the doc says. The Kotlin recipe is checked against it.

mod common;
mod httpcache_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{require_tool, TestServer};
use httpcache_support::*;

/// The fenced ```LANG block of docs/USING.md's `## Gradle` section.
fn doc_block(lang: &str) -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/USING.md"))
        .expect("docs/USING.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Gradle\n"))
        .expect("a `## Gradle` section in docs/USING.md");
    let fence = format!("```{lang}\n");
    let start = section
        .find(&fence)
        .unwrap_or_else(|| panic!("no ```{lang} block in USING.md's Gradle section"))
        + fence.len();
    let len = section[start..].find("```").expect("the block is closed");
    section[start..start + len].to_owned()
}

/// The recipe's placeholders: where Larder is and the namespace.
const DOC_URL: &str = "http://HOST:5000/cache/team/";
const DOC_TOKEN_VAR: &str = "LARDER_CACHE_TOKEN";

/// The installed Gradle's (major, minor) version.
fn gradle_version(gradle: &Path) -> (u32, u32) {
    let out = std::process::Command::new(gradle)
        .arg("--version")
        .env_remove("GRADLE_OPTS")
        .output()
        .expect("gradle --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("Gradle "))
        .unwrap_or_else(|| panic!("no version in {text}"));
    let mut parts = version.trim().split(['.', '-', ' ']);
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

/// USING.md's Groovy settings block for this Gradle, aimed at `url`.
fn settings_from_doc(gradle: &Path, url: &str) -> String {
    let block = doc_block("groovy");
    assert!(block.contains(DOC_URL), "{block}");
    assert!(block.contains(DOC_TOKEN_VAR), "{block}");
    let insecure: Vec<&str> = block
        .lines()
        .filter(|l| l.contains("allowInsecureProtocol"))
        .collect();
    assert_eq!(insecure.len(), 1, "{block}");
    assert!(
        insecure[0].contains("allowInsecureProtocol = true") && insecure[0].contains("6.0"),
        "the line says which versions need it: {}",
        insecure[0]
    );
    let block = if gradle_version(gradle) < (6, 0) {
        block
            .lines()
            .filter(|l| !l.contains("allowInsecureProtocol"))
            .map(|l| format!("{l}\n"))
            .collect()
    } else {
        block
    };
    block.replace(DOC_URL, url)
}

/// A one-class Java project whose only build cache is Larder, configured by
/// the doc's settings block; the token in the variable the block reads.
fn project(gradle: &Path, url: &str) -> tempfile::TempDir {
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
             {}\n\
             // The test's own: no local cache, so a hit can only be Larder's.\n\
             buildCache {{ local {{ enabled = false }} }}\n",
            settings_from_doc(gradle, url)
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
async fn compile(gradle: &Path, project: &Path, token: &str) -> String {
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
        .env(DOC_TOKEN_VAR, token)
        // The recipe pushes only from CI.
        .env("CI", "true")
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
    let p = project(&gradle, &s.url("/cache/jvm/"));
    let first = compile(&gradle, p.path(), &t).await;
    assert!(!first.contains("FROM-CACHE"), "{first}");
    assert!(
        !s.stored_blobs().await.is_empty(),
        "nothing was stored:\n{first}"
    );
    let second = compile(&gradle, p.path(), &t).await;
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
    let p = project(&gradle, &s.url("/cache/jvm/"));
    let first = compile(&gradle, p.path(), &t).await;
    assert!(first.contains("413"), "{first}");
    assert!(s.stored_blobs().await.is_empty());
    let second = compile(&gradle, p.path(), &t).await;
    assert!(!second.contains("FROM-CACHE"), "{second}");
}

/// The Kotlin recipe says what the Groovy one (which runs above) says, in
/// its own DSL: same URL, token variable, push rule and plain-HTTP switch.
#[test]
fn the_kotlin_recipe_matches_the_groovy_one() {
    let groovy = doc_block("groovy");
    let kotlin = doc_block("kotlin");
    for (g, k) in [
        ("remote(HttpBuildCache)", "remote<HttpBuildCache>"),
        (
            &format!("url = '{DOC_URL}'") as &str,
            &format!("url = uri(\"{DOC_URL}\")") as &str,
        ),
        (
            "allowInsecureProtocol = true",
            "isAllowInsecureProtocol = true",
        ),
        (
            "push = System.getenv('CI') != null",
            "isPush = System.getenv(\"CI\") != null",
        ),
        (
            "password = System.getenv('LARDER_CACHE_TOKEN')",
            "password = System.getenv(\"LARDER_CACHE_TOKEN\")",
        ),
    ] {
        assert!(groovy.contains(g), "Groovy recipe lacks {g:?}:\n{groovy}");
        assert!(kotlin.contains(k), "Kotlin recipe lacks {k:?}:\n{kotlin}");
    }
}
