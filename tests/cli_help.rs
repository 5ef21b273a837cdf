//! The command tree itself: every argument of every subcommand explains
//! itself, offline commands offer only flags that matter to them, and a
//! server that cannot start says why once.

mod common;

use std::process::{Command, Stdio};

use clap::CommandFactory;
use common::process::larder_bin;
use larder::cli::Cli;

/// Every subcommand, with its path (`admin tokens revoke`).
fn walk(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
    for sub in cmd.get_subcommands() {
        let p = format!("{path} {}", sub.get_name()).trim().to_owned();
        out.push((p.clone(), sub.clone()));
        walk(sub, p, out);
    }
}

fn commands() -> Vec<(String, clap::Command)> {
    let mut root = Cli::command();
    root.build();
    let mut all = vec![("larder".to_owned(), root.clone())];
    walk(&root, String::new(), &mut all);
    all
}

#[test]
fn every_argument_of_every_subcommand_has_help() {
    let all = commands();
    assert!(
        all.iter().any(|(p, _)| p == "admin entries delete")
            && all.iter().any(|(p, _)| p == "admin workers"),
        "the walk reaches nested subcommands: {:?}",
        all.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let mut missing = Vec::new();
    for (path, cmd) in &all {
        if path != "larder" && cmd.get_about().is_none() {
            missing.push(format!("`{path}` (the subcommand itself)"));
        }
        for arg in cmd.get_arguments() {
            let help = arg.get_help().or(arg.get_long_help());
            if help.is_none_or(|h| h.to_string().trim().is_empty()) {
                missing.push(format!("`{path}` argument {}", arg.get_id()));
            }
        }
    }
    assert!(missing.is_empty(), "without help text: {missing:#?}");
}

#[test]
fn offline_commands_do_not_offer_serving_flags() {
    let all = commands();
    for path in ["token create", "fsck"] {
        let (_, cmd) = all
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("no `{path}`"));
        let longs: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
        for serving in ["listen", "max-size", "log-format"] {
            assert!(
                !longs.contains(&serving),
                "`{path}` offers --{serving}: {longs:?}"
            );
        }
        for needed in ["config", "data-dir"] {
            assert!(longs.contains(&needed), "`{path}` lacks --{needed}");
        }
    }
    // `serve` keeps them.
    let (_, serve) = all.iter().find(|(p, _)| p == "serve").unwrap();
    assert!(serve
        .get_arguments()
        .any(|a| a.get_long() == Some("listen")));
}

/// Runs `larder serve ARGS` (no LARDER variables of the developer's) and
/// returns its exit status and stderr.
fn serve_fails(args: &[&str]) -> String {
    let mut cmd = Command::new(larder_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LARDER") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .arg("serve")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run larder");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "larder serve {args:?} should fail:\n{stderr}"
    );
    stderr
}

#[test]
fn a_startup_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();

    // An address already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let stderr = serve_fails(&["--listen", &addr, "--data-dir", data]);
    let needle = format!("binding {addr}");
    assert_eq!(
        stderr.matches(&needle).count(),
        1,
        "{needle:?} once in:\n{stderr}"
    );
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "the cause once in:\n{stderr}"
    );

    // A config that does not validate.
    let config = dir.path().join("larder.toml");
    std::fs::write(&config, "[storage]\nmax_size = \"0B\"\n").unwrap();
    let stderr = serve_fails(&["--config", config.to_str().unwrap(), "--data-dir", data]);
    assert_eq!(
        stderr.matches("storage.max_size").count(),
        1,
        "the offending key once in:\n{stderr}"
    );
}
