//! The README and docs/ point only at files the repository has: every
//! relative Markdown link resolves, and no document sends readers to design
//! notes kept outside it (docs/ARCHITECTURE.md is the one in the repo).

use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// README.md and every Markdown file under docs/.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![repo("README.md")];
    for entry in std::fs::read_dir(repo("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs.sort();
    docs
}

/// The targets of `[text](target)` links, without their `#fragment`.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap().trim();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            out.push(target.to_owned());
        }
        rest = &rest[end..];
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for target in link_targets(&text) {
            if !doc.parent().unwrap().join(&target).exists() {
                broken.push(format!("{}: {target}", doc.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_docs_name_no_design_notes_outside_the_repository() {
    assert!(repo("docs/ARCHITECTURE.md").is_file());
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    assert!(
        readme.contains("(docs/ARCHITECTURE.md)"),
        "the README links docs/ARCHITECTURE.md"
    );
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for outside in ["DESIGN.md", "PROTOCOLS.md"] {
            if !repo(outside).exists() && !repo(&format!("docs/{outside}")).exists() {
                assert!(
                    !text.contains(outside),
                    "{} names {outside}, which is not in the repository",
                    doc.display()
                );
            }
        }
    }
}

#[test]
fn link_targets_are_read_from_markdown_links() {
    let text = "see [a](docs/A.md#x), [b](https://example.com) and [c](../c.rs).";
    assert_eq!(link_targets(text), ["docs/A.md", "../c.rs"]);
}
