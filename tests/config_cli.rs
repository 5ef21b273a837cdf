//! The config layers as the binary applies them (file → env → flags), and
//! `config check` / `serve` refusing bad values with the key and its source.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::process::larder_bin;
use larder::config::{Config, Size, Span};

/// `larder ARGS` with only the LARDER variables the test names, so a
/// developer's own environment cannot change the outcome.
fn larder(args: &[&str], env: &[(&str, &str)]) -> Output {
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
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("larder.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `config print` output, parsed back into the typed config.
fn printed(args: &[&str], env: &[(&str, &str)]) -> Config {
    let out = larder(&[&["config", "print"], args].concat(), env);
    assert!(
        out.status.success(),
        "config print failed: {}",
        stderr(&out)
    );
    toml::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}\n{}", stdout(&out)))
}

/// Exit status 2 and a message naming every `needle` (key, source, reason).
fn assert_refused(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{err:?} should name {needle:?}");
    }
}

#[test]
fn env_beats_the_file_and_flags_beat_env() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        "[server]\nshutdown_timeout = \"5s\"\n[storage]\nmax_size = \"10MiB\"\n",
    );
    let env = [("LARDER__STORAGE__MAX_SIZE", "20MiB")];

    let from_file = printed(&["--config", &file], &[]);
    assert_eq!(from_file.storage.max_size, Size(10 << 20));
    assert_eq!(from_file.server.shutdown_timeout, Span::secs(5));

    let from_env = printed(&["--config", &file], &env);
    assert_eq!(from_env.storage.max_size, Size(20 << 20));
    assert_eq!(
        from_env.server.shutdown_timeout,
        Span::secs(5),
        "file keys env leaves alone stay"
    );

    let from_flag = printed(&["--config", &file, "--max-size", "30MiB"], &env);
    assert_eq!(from_flag.storage.max_size, Size(30 << 20));

    // LARDER_CONFIG names the file when --config is absent.
    let via_env = printed(&[], &[("LARDER_CONFIG", &file)]);
    assert_eq!(via_env.storage.max_size, Size(10 << 20));
}

#[test]
fn printed_defaults_are_the_documented_defaults() {
    assert_eq!(printed(&[], &[]), Config::default());
}

#[test]
fn config_check_accepts_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), "[storage]\nmax_size = \"1GiB\"\n");
    let out = larder(&["config", "check", "--config", &file], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("config ok"));
    let documented = concat!(env!("CARGO_MANIFEST_DIR"), "/config/larder.toml");
    let out = larder(&["config", "check", "--config", documented], &[]);
    assert!(out.status.success(), "config/larder.toml: {}", stderr(&out));
}

#[test]
fn config_check_names_the_bad_key_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[storage]\nmax_size = \"lots\"\n",
            "storage.max_size",
            "not a size",
        ),
        (
            "[storage]\nmax_size = 0\n",
            "storage.max_size",
            "greater than 0",
        ),
        (
            "[server]\nshutdown_timeout = \"soon\"\n",
            "server.shutdown_timeout",
            "not a duration",
        ),
        ("[storage]\nmax_sise = \"1GiB\"\n", "max_sise", "unknown"),
    ];
    for (text, key, why) in cases {
        let file = write_config(dir.path(), text);
        let out = larder(&["config", "check", "--config", &file], &[]);
        assert_refused(&out, &[key, why]);
    }
    // Type errors also say which file the value came from (figment prints the
    // path relative to the working directory, so match its last components).
    let file = write_config(dir.path(), "[storage]\nmax_size = \"lots\"\n");
    let out = larder(&["config", "check", "--config", &file], &[]);
    let tail = Path::new(&file)
        .strip_prefix(dir.path().parent().unwrap())
        .unwrap();
    assert_refused(&out, &[tail.to_str().unwrap()]);
}

#[test]
fn config_check_names_the_bad_key_and_variable_from_env() {
    let out = larder(
        &["config", "check"],
        &[("LARDER__STORAGE__MAX_SIZE", "lots")],
    );
    assert_refused(
        &out,
        &[
            "storage.max_size",
            "LARDER__STORAGE__MAX_SIZE",
            "not a size",
        ],
    );

    let out = larder(
        &["config", "check"],
        &[("LARDER__SERVER__SHUTDOWN_TIMEOUT", "0s")],
    );
    assert_refused(&out, &["server.shutdown_timeout", "greater than 0"]);
}

#[test]
fn an_unknown_env_key_is_an_error() {
    let out = larder(&["config", "check"], &[("LARDER__STORAGE__BOGUS", "1")]);
    assert_refused(
        &out,
        &["storage.bogus", "unknown field", "LARDER__STORAGE__BOGUS"],
    );
}

#[test]
fn a_missing_config_file_is_an_error() {
    let out = larder(
        &["config", "check", "--config", "/nonexistent/larder.toml"],
        &[],
    );
    assert_refused(&out, &["/nonexistent/larder.toml"]);
}

#[test]
fn serve_refuses_a_bad_config_before_touching_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let out = larder(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[("LARDER__STORAGE__MAX_SIZE", "0")],
    );
    assert_refused(&out, &["storage.max_size"]);
    assert!(
        !data_dir.exists(),
        "serve created the data dir for a config it refused"
    );
}
