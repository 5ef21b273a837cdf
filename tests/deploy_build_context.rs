//! deploy/Dockerfile's build stages against the real build context: each
//! step that runs cargo on the project finds, under its WORKDIR, exactly the
//! package the repository is (every lib, bin, bench, test and example target
//! Cargo.toml declares or cargo discovers, and Cargo.lock for `--locked`),
//! laid out in a temporary directory from what the stage COPYs, as
//! .dockerignore leaves the context. A stage that stubs targets by hand, or
//! copies only some directories, fails here instead of in `docker build`.

mod common;
mod deploy_support;

use std::collections::BTreeMap;
use std::process::Command;

use deploy_support::build_context::{lay_out, package_targets, simulate, Simulation, StepKind};
use deploy_support::dockerignore::DockerIgnore;
use deploy_support::{read, repo};

const DOCKERFILE: &str = "deploy/Dockerfile";

fn ignore() -> DockerIgnore {
    DockerIgnore::parse(&read(".dockerignore"))
}

fn context() -> Vec<String> {
    ignore().context_files(&repo(""))
}

/// Every problem of the Dockerfile's cargo steps, empty when it builds.
fn problems_of(sim: &Simulation) -> Vec<String> {
    let expected = package_targets(&repo("")).expect("the repository's own manifest loads");
    let mut problems = sim.problems.clone();
    for step in &sim.steps {
        let command: String = step.command.chars().take(120).collect();
        let at = format!("stage {} ({command}…)", step.stage);
        match step.kind {
            StepKind::Project => {
                let files = step.project_files();
                if !files.contains_key("Cargo.lock") {
                    problems.push(format!("{at}: no Cargo.lock for --locked"));
                }
                let dir = tempfile::tempdir().unwrap();
                lay_out(&repo(""), &files, dir.path());
                match package_targets(dir.path()) {
                    Ok(targets) if targets == expected => {}
                    Ok(targets) => problems.push(format!(
                        "{at}: cargo sees targets {targets:?}, the repository {expected:?}"
                    )),
                    Err(why) => problems.push(format!("{at}: {why}")),
                }
            }
            // The recipe must come from a stage that prepared it from the
            // whole package (that stage's step is checked as Project).
            StepKind::Cook => {
                let recipe = step
                    .command
                    .split_whitespace()
                    .skip_while(|w| *w != "--recipe-path")
                    .nth(1)
                    .unwrap_or("recipe.json");
                let prepared = match step.file(recipe) {
                    Some(deploy_support::build_context::Origin::Stage { stage, .. }) => {
                        sim.steps.iter().any(|s| {
                            &s.stage == stage
                                && s.kind == StepKind::Project
                                && s.command.contains("cargo chef prepare")
                        })
                    }
                    _ => false,
                };
                if !prepared {
                    problems.push(format!(
                        "{at}: {recipe} is not copied from a stage that runs `cargo chef prepare`"
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn every_cargo_step_of_the_dockerfile_sees_every_target_the_manifest_declares() {
    let sim = simulate(&read(DOCKERFILE), &context());
    let problems = problems_of(&sim);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let stages: Vec<&str> = sim.steps.iter().map(|s| s.stage.as_str()).collect();
    // The steps that matter were found at all: the planner, the dependency
    // cook, the binary's build and the development image's `cargo run`.
    for stage in ["planner", "deps", "build", "development"] {
        assert!(
            stages.contains(&stage),
            "no cargo step in {stage}: {stages:?}"
        );
    }
}

/// The old dependency stage: the manifests, then hand-made stubs for some
/// targets. Cargo stopped at the first bench the stubs forgot.
#[test]
fn a_stage_that_copies_only_the_manifests_is_caught() {
    let old = "FROM rust:1.89-slim-bookworm AS deps\n\
               WORKDIR /build\n\
               COPY Cargo.toml Cargo.lock ./\n\
               RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs \\\n\
                   && touch src/lib.rs && echo 'fn main() {}' > benches/ingest.rs \\\n\
                   && cargo build --release --locked\n\
               FROM deps AS build\n\
               COPY src src\n\
               RUN cargo build --release --locked\n";
    let problems = problems_of(&simulate(old, &context()));
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].starts_with("stage deps"), "{problems:#?}");
    // With src/ but not benches/ (nor tests/), cargo still cannot load the
    // manifest: the benches declared with a path are missing.
    assert!(problems[1].starts_with("stage build"), "{problems:#?}");
    assert!(problems[1].contains("bench"), "{problems:#?}");
}

#[test]
fn a_cook_without_a_prepared_recipe_is_caught() {
    let text = "FROM rust:1.89 AS deps\n\
                WORKDIR /build\n\
                COPY recipe.json recipe.json\n\
                RUN cargo chef cook --release --recipe-path recipe.json\n";
    let problems = problems_of(&simulate(text, &context()));
    assert!(
        problems.iter().any(|p| p.contains("cargo chef prepare")),
        "{problems:#?}"
    );
}

/// Nothing the crate compiles from is left out of the context: every file
/// git tracks under the target directories, and the manifests.
#[test]
fn dockerignore_keeps_every_tracked_source_in_the_context() {
    let out = match Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo(""))
        .output()
    {
        Ok(out) if out.status.success() => out,
        _ => {
            eprintln!("SKIP: not a git checkout; the layouts were still checked");
            return;
        }
    };
    let ignore = ignore();
    let excluded: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|p| {
            ["src/", "benches/", "tests/", "examples/"]
                .iter()
                .any(|d| p.starts_with(d))
                || ["Cargo.toml", "Cargo.lock", "build.rs"].contains(p)
        })
        .filter(|p| ignore.excludes(p))
        .map(str::to_owned)
        .collect();
    assert!(excluded.is_empty(), ".dockerignore excludes {excluded:?}");
    let context = context();
    assert!(!context.iter().any(|p| p.starts_with("target/")));
    assert!(!context.iter().any(|p| p.contains("node_modules/")));
}

#[test]
fn dockerignore_patterns_match_as_docker_matches_them() {
    let ignore = DockerIgnore::parse(
        "# comment\n\
         **/target\n\
         .git\n\
         /docs/*.md\n\
         !docs/keep.md\n\
         *.sw[op]\n\
         tests/**/big-?.bin\n",
    );
    let cases: BTreeMap<&str, bool> = BTreeMap::from([
        ("target", true),
        ("target/release/larder", true),
        ("tests/node/target/x", true),
        ("targets/x", false),
        (".git", true),
        (".git/HEAD", true),
        (".github/workflows/x", false),
        ("docs/USING.md", true),
        ("docs/keep.md", false),
        ("docs/sub/USING.md", false),
        ("a.swp", true),
        ("a.swo", true),
        ("a.swx", false),
        ("src/a.swp", false),
        ("tests/big-1.bin", true),
        ("tests/x/y/big-2.bin", true),
        ("tests/x/big-10.bin", false),
        ("src/main.rs", false),
    ]);
    for (path, excluded) in cases {
        assert_eq!(ignore.excludes(path), excluded, "{path}");
    }
}
