//! Readers for the deploy/ manifests as the tools that consume them see them:
//! a Dockerfile as instructions per stage, YAML, systemd unit files, and the
//! effective Larder config of a file as the real binary loads it.
#![allow(dead_code)]

pub mod build_context;
pub mod dockerignore;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use larder::config::Config;

use crate::common::process::larder_bin;

/// A path in the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn yaml(path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `larder ARGS` with only the environment the test names: a developer's own
/// LARDER_* variables must not change what a manifest means.
pub fn larder(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(larder_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LARDER") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run larder")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The config a file gives the binary (`config print`), after the binary's
/// own validation (`config check` semantics: print fails on an invalid one).
pub fn effective_config(path: &Path) -> Config {
    let out = larder(
        &["config", "print", "--config", path.to_str().unwrap()],
        &[],
    );
    assert!(
        out.status.success(),
        "{} is refused: {}",
        path.display(),
        text(&out.stderr)
    );
    toml::from_str(&text(&out.stdout)).expect("config print output parses")
}

/// "45s", "1m30s" (compose, systemd) as a duration.
pub fn duration(s: &str) -> Duration {
    humantime::parse_duration(s.trim()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// "60Gi" (Kubernetes quantity) in bytes.
pub fn quantity(q: &str) -> u64 {
    let (n, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let n: u64 = n.parse().unwrap();
    n << match unit {
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        "Ti" => 40,
        other => panic!("unit {other:?}"),
    }
}

/// A copy of the directory `from` (a kustomization to render with local
/// secret files beside it) at `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// One Dockerfile instruction: keyword (upper case) and its arguments, with
/// line continuations joined and comment lines dropped.
#[derive(Debug, Clone)]
pub struct Instruction {
    pub keyword: String,
    pub args: String,
}

/// The instructions of each stage, in order; a stage starts at its FROM.
pub fn dockerfile_stages(text: &str) -> Vec<Vec<Instruction>> {
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let full = std::mem::take(&mut pending);
        let (keyword, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        let ins = Instruction {
            keyword: keyword.to_uppercase(),
            args: args.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        if ins.keyword == "FROM" {
            stages.push(Vec::new());
        }
        // ARGs before the first FROM belong to no stage.
        if let Some(stage) = stages.last_mut() {
            stage.push(ins);
        }
    }
    stages
}

/// The stage's name (`FROM image AS name`).
pub fn stage_name(stage: &[Instruction]) -> Option<String> {
    let from = &stage[0].args;
    let words: Vec<&str> = from.split_whitespace().collect();
    words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("as"))
        .map(|i| words[i + 1].to_owned())
}

/// The arguments of each `keyword` instruction in the stage.
pub fn all<'a>(stage: &'a [Instruction], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|i| i.keyword == keyword)
        .map(|i| i.args.as_str())
        .collect()
}

/// The exec form of CMD/ENTRYPOINT/HEALTHCHECK CMD: a JSON array.
pub fn exec_form(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not an exec-form array {json:?}: {e}"))
}

/// `KEY=VALUE` pairs of the stage's ENV instructions (no quotes in ours).
pub fn env_of(stage: &[Instruction]) -> BTreeMap<String, String> {
    all(stage, "ENV")
        .iter()
        .flat_map(|args| args.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A systemd unit: every `Key=value` line, per key in order of appearance
/// (keys like SystemCallFilter may repeat).
pub fn unit_file(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.starts_with('[') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            keys.entry(k.trim().to_owned())
                .or_default()
                .push(v.trim().to_owned());
        }
    }
    keys
}

/// A YAML string at `path` (panics naming the path when missing).
pub fn str_at<'a>(v: &'a serde_yaml::Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for key in path {
        cur = cur
            .get(*key)
            .unwrap_or_else(|| panic!("no {key:?} in {}", path.join(".")));
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("{} is not a string", path.join(".")))
}

pub fn seq<'a>(v: &'a serde_yaml::Value, key: &str) -> &'a Vec<serde_yaml::Value> {
    v.get(key)
        .and_then(|s| s.as_sequence())
        .unwrap_or_else(|| panic!("{key} is not a list"))
}

pub fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .expect("a list")
        .iter()
        .map(|s| match s {
            serde_yaml::Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
        })
        .collect()
}
