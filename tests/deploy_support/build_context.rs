//! What a Dockerfile's stages see of the build context: the stages are played
//! through as a builder would (FROM a stage inherits its files and WORKDIR,
//! COPY takes files from the context as `.dockerignore` leaves it, or from
//! another stage), and every step that runs cargo is recorded with the files
//! it finds. Docker cannot run here, so this is how the tests know that the
//! build stage's cargo finds every target Cargo.toml declares.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use super::dockerignore::clean;
use super::{all, dockerfile_stages, stage_name, Instruction};

/// Where a file in a stage's filesystem came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file of the build context (relative path).
    Context(String),
    /// `COPY --from=stage path`.
    Stage { stage: String, path: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Cargo on the project's own manifest and sources (build, fetch, run,
    /// `chef prepare`…): they must all be there.
    Project,
    /// `cargo chef cook`: cargo runs on the stand-ins of a recipe.
    Cook,
}

/// One RUN (or the final CMD) that runs cargo, with what the stage holds then.
#[derive(Debug, Clone)]
pub struct Step {
    pub stage: String,
    pub command: String,
    pub kind: StepKind,
    pub workdir: String,
    /// Absolute path in the stage → origin.
    pub files: BTreeMap<String, Origin>,
}

impl Step {
    /// The context files under the WORKDIR: relative path there → path in
    /// the context.
    pub fn project_files(&self) -> BTreeMap<String, String> {
        let prefix = dir_prefix(&self.workdir);
        self.files
            .iter()
            .filter_map(|(abs, origin)| match origin {
                Origin::Context(src) => abs
                    .strip_prefix(&prefix)
                    .map(|rel| (rel.to_owned(), src.clone())),
                Origin::Stage { .. } => None,
            })
            .collect()
    }

    /// The file a path names (relative to the WORKDIR or absolute).
    pub fn file(&self, path: &str) -> Option<&Origin> {
        self.files.get(&absolute(&self.workdir, path))
    }
}

#[derive(Debug, Default)]
pub struct Simulation {
    pub steps: Vec<Step>,
    /// COPY sources that are missing from the context (or ignored).
    pub problems: Vec<String>,
}

/// Plays the Dockerfile through against the context's files.
pub fn simulate(dockerfile: &str, context: &[String]) -> Simulation {
    let context: BTreeSet<&str> = context.iter().map(String::as_str).collect();
    let mut sim = Simulation::default();
    // Per named stage: its files and WORKDIR at its end.
    let mut finished: BTreeMap<String, (BTreeMap<String, Origin>, String)> = BTreeMap::new();
    for (index, stage) in dockerfile_stages(dockerfile).iter().enumerate() {
        let name = stage_name(stage).unwrap_or_else(|| index.to_string());
        let base = from_image(&stage[0].args);
        let (mut files, mut workdir) = finished
            .get(&base)
            .cloned()
            .unwrap_or_else(|| (BTreeMap::new(), "/".to_owned()));
        for ins in &stage[1..] {
            match ins.keyword.as_str() {
                "WORKDIR" => workdir = absolute(&workdir, &ins.args),
                "COPY" | "ADD" => copy(
                    ins,
                    &workdir,
                    &context,
                    &finished,
                    &mut files,
                    &mut sim.problems,
                ),
                "RUN" => {
                    if let Some(kind) = cargo_kind(&ins.args) {
                        sim.steps.push(Step {
                            stage: name.clone(),
                            command: ins.args.clone(),
                            kind,
                            workdir: workdir.clone(),
                            files: files.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        // What the container runs (the development image's `cargo run`).
        for cmd in all(stage, "CMD")
            .into_iter()
            .chain(all(stage, "ENTRYPOINT"))
        {
            if let Some(kind) = cargo_kind(&cmd.replace(['[', ']', '"', ','], " ")) {
                sim.steps.push(Step {
                    stage: name.clone(),
                    command: cmd.to_owned(),
                    kind,
                    workdir: workdir.clone(),
                    files: files.clone(),
                });
            }
        }
        finished.insert(name, (files, workdir));
    }
    sim
}

/// The image or stage a FROM names (flags and `AS name` dropped).
fn from_image(args: &str) -> String {
    args.split_whitespace()
        .find(|w| !w.starts_with("--"))
        .unwrap_or_default()
        .to_owned()
}

/// What kind of cargo step a command is, if it runs cargo on the project.
fn cargo_kind(command: &str) -> Option<StepKind> {
    let words: Vec<&str> = command
        .split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|' || c == '(')
        .filter(|w| !w.is_empty())
        .collect();
    let mut kind = None;
    for (i, w) in words.iter().enumerate() {
        if *w != "cargo" {
            continue;
        }
        match (words.get(i + 1).copied(), words.get(i + 2).copied()) {
            (Some("chef"), Some("cook")) => return Some(StepKind::Cook),
            // Installs a tool from the registry, not the project.
            (Some("install"), _) => {}
            (Some(_), _) => kind = Some(StepKind::Project),
            (None, _) => {}
        }
    }
    kind
}

fn copy(
    ins: &Instruction,
    workdir: &str,
    context: &BTreeSet<&str>,
    finished: &BTreeMap<String, (BTreeMap<String, Origin>, String)>,
    files: &mut BTreeMap<String, Origin>,
    problems: &mut Vec<String>,
) {
    let words: Vec<&str> = ins.args.split_whitespace().collect();
    let from = words
        .iter()
        .find_map(|w| w.strip_prefix("--from="))
        .map(str::to_owned);
    let operands: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !w.starts_with("--"))
        .collect();
    assert!(
        operands.len() >= 2 && !ins.args.trim_start().starts_with('['),
        "COPY {}: only the shell form with sources and a destination is read here",
        ins.args
    );
    let (dest, sources) = operands.split_last().unwrap();
    let dest = absolute(workdir, dest);
    let into_dir = operands.last().unwrap().ends_with('/') || sources.len() > 1;
    for src in sources {
        assert!(
            !src.contains(['*', '?', '[']),
            "COPY {src}: wildcards are not read here"
        );
        if let Some(stage) = &from {
            let target = if into_dir {
                format!("{}{}", dir_prefix(&dest), basename(src))
            } else {
                dest.clone()
            };
            // Files a stage made by RUN are not tracked: the copy is known
            // by its source only.
            let inherited = finished.get(stage).map(|(f, _)| f);
            match inherited.and_then(|f| f.get(&clean_abs(src))) {
                Some(origin) => files.insert(target, origin.clone()),
                None => files.insert(
                    target,
                    Origin::Stage {
                        stage: stage.clone(),
                        path: clean_abs(src),
                    },
                ),
            };
            continue;
        }
        let src = clean(src);
        let mut found = false;
        if context.contains(src.as_str()) {
            let target = if into_dir {
                format!("{}{}", dir_prefix(&dest), basename(&src))
            } else {
                dest.clone()
            };
            files.insert(target, Origin::Context(src.clone()));
            found = true;
        } else {
            let under = if src.is_empty() {
                String::new()
            } else {
                format!("{src}/")
            };
            for path in context.iter().filter(|p| p.starts_with(&under)) {
                let rel = &path[under.len()..];
                files.insert(
                    format!("{}{rel}", dir_prefix(&dest)),
                    Origin::Context((*path).to_owned()),
                );
                found = true;
            }
        }
        if !found {
            problems.push(format!(
                "COPY {src}: not in the build context (missing, or excluded by .dockerignore)"
            ));
        }
    }
}

fn absolute(workdir: &str, path: &str) -> String {
    if path.starts_with('/') {
        clean_abs(path)
    } else {
        clean_abs(&format!("{workdir}/{path}"))
    }
}

fn clean_abs(path: &str) -> String {
    format!("/{}", clean(path))
}

fn dir_prefix(dir: &str) -> String {
    if dir.ends_with('/') {
        dir.to_owned()
    } else {
        format!("{dir}/")
    }
}

fn basename(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// Copies `files` (relative path in the layout → path in `root`) into `dest`.
pub fn lay_out(root: &Path, files: &BTreeMap<String, String>, dest: &Path) {
    for (rel, src) in files {
        let to = dest.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root.join(src), &to).unwrap_or_else(|e| panic!("copy {src}: {e}"));
    }
}

/// One target of the package as cargo sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub kind: String,
    pub name: String,
    /// Relative to the package root.
    pub src_path: String,
}

/// The package's targets as `cargo metadata` reads the manifest in `dir`
/// (offline, without resolving dependencies: what `cargo chef prepare` runs
/// first), or why cargo refused it. Every target's file must exist.
pub fn package_targets(dir: &Path) -> Result<Vec<Target>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo metadata");
    if !out.status.success() {
        return Err(format!(
            "cargo metadata fails: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let root = dir.canonicalize().unwrap();
    let mut targets = Vec::new();
    let mut missing = Vec::new();
    for package in meta["packages"].as_array().expect("packages") {
        for t in package["targets"].as_array().expect("targets") {
            let src = Path::new(t["src_path"].as_str().unwrap());
            if !src.is_file() {
                missing.push(src.display().to_string());
            }
            let kinds: Vec<&str> = t["kind"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap())
                .collect();
            targets.push(Target {
                kind: kinds.join(","),
                name: t["name"].as_str().unwrap().to_owned(),
                src_path: src.strip_prefix(&root).unwrap_or(src).display().to_string(),
            });
        }
    }
    if !missing.is_empty() {
        return Err(format!("target files missing: {}", missing.join(", ")));
    }
    targets.sort();
    Ok(targets)
}
