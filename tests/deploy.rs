//! The deploy/ manifests agree with the binary: every config file they ship
//! is accepted, the ports and probe paths they name are the ones a real
//! server serves, their stop deadlines outlast the server's drain, and the
//! commands they run are ones the binary accepts. Docker itself cannot run
//! here, so the Dockerfile is checked by hadolint and by reading it
//! (tests/deploy_build_context.rs plays its stages through against the
//! build context).

mod common;
mod deploy_support;

use std::path::Path;
use std::process::Command;

use common::TestServer;
use deploy_support::*;

const DOCKERFILE: &str = "deploy/Dockerfile";

const CONFIG_FILES: [&str; 5] = [
    "config/larder.toml",
    "deploy/docker/larder.toml",
    "deploy/compose/larder.toml",
    "deploy/kubernetes/larder.toml",
    "deploy/systemd/larder.toml",
];

#[test]
fn every_shipped_config_file_passes_config_check() {
    for file in CONFIG_FILES {
        let out = larder(
            &["config", "check", "--config", repo(file).to_str().unwrap()],
            &[],
        );
        assert!(out.status.success(), "{file}: {}", text(&out.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_paths_the_manifests_name_answer_200() {
    let server = TestServer::start().await;
    let client = common::client();
    let k8s = yaml("deploy/kubernetes/statefulset.yaml");
    let container = &seq(&k8s["spec"]["template"]["spec"], "containers")[0];
    let mut paths: Vec<String> = ["startupProbe", "livenessProbe", "readinessProbe"]
        .iter()
        .map(|probe| str_at(container, &[probe, "httpGet", "path"]).to_owned())
        .collect();
    // The image's and compose's checks give no URL: they probe the config's
    // /readyz (tests below and in deploy_manifests).
    let compose = yaml("deploy/docker-compose.yml");
    let test = strings(&compose["services"]["larder"]["healthcheck"]["test"]);
    assert!(!test.iter().any(|a| a == "--url"), "{test:?}");
    paths.push("/readyz".to_owned());
    assert!(paths.contains(&"/readyz".to_owned()) && paths.contains(&"/healthz".to_owned()));
    for path in paths {
        let resp = client.get(server.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
}

fn runtime_stage() -> Vec<Instruction> {
    dockerfile_stages(&read(DOCKERFILE))
        .pop()
        .expect("a final stage")
}

#[test]
fn the_dockerfile_cross_compiles_static_binaries_with_cargo_chef() {
    let text = read(DOCKERFILE);
    assert_eq!(text.lines().next(), Some("# syntax=docker/dockerfile:1"));
    let stages = dockerfile_stages(&text);
    let names: Vec<String> = stages.iter().filter_map(|s| stage_name(s)).collect();
    for name in [
        "chef",
        "planner",
        "toolchain",
        "deps",
        "build",
        "development",
        "runtime",
    ] {
        assert!(
            names.contains(&name.to_owned()),
            "no stage {name}: {names:?}"
        );
    }
    let stage = |name: &str| {
        stages
            .iter()
            .find(|s| stage_name(s).as_deref() == Some(name))
            .unwrap()
    };
    let from = |name: &str| all(stage(name), "FROM")[0].to_owned();
    // The image is built with the Rust version Cargo.toml promises.
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let msrv = manifest["package"]["rust-version"].as_str().unwrap();
    assert!(
        text.lines()
            .any(|l| l == format!("ARG RUST_VERSION={msrv}")),
        "ARG RUST_VERSION should be the rust-version {msrv}"
    );
    // Cross-compiling: every compiler runs on the build machine's platform
    // and is told the target platform's Rust target.
    assert!(from("chef").starts_with("--platform=$BUILDPLATFORM rust:${RUST_VERSION}"));
    for (name, parent) in [
        ("planner", "chef"),
        ("toolchain", "chef"),
        ("deps", "toolchain"),
        ("build", "deps"),
    ] {
        assert_eq!(from(name), format!("{parent} AS {name}"));
    }
    assert!(all(stage("deps"), "ARG").contains(&"TARGETPLATFORM"));
    let runs = |name| all(stage(name), "RUN").join("\n");
    for (platform, target) in [
        ("linux/amd64", "x86_64-unknown-linux-musl"),
        ("linux/arm64", "aarch64-unknown-linux-musl"),
    ] {
        assert!(runs("toolchain").contains(target), "rustup target {target}");
        assert!(
            runs("deps").contains(&format!("{platform}) echo {target}"))
                || runs("deps").contains(&format!("{platform}|")),
            "{platform} is mapped to {target}"
        );
    }
    // Dependencies from cargo-chef's recipe, never from stubs kept here;
    // the sources after (tests/deploy_build_context.rs checks what each
    // cargo step sees).
    assert!(runs("planner").contains("cargo chef prepare --recipe-path recipe.json"));
    assert_eq!(
        all(stage("deps"), "COPY"),
        ["--from=planner /build/recipe.json recipe.json"]
    );
    assert!(runs("deps").contains("cargo chef cook --release --locked --zigbuild"));
    assert!(runs("build").contains("cargo zigbuild --release --locked"));
    assert!(!text.contains("fn main() {}"), "no hand-made stand-ins");
    // Crate downloads in cache mounts, wherever cargo fetches.
    for name in ["chef", "deps", "build"] {
        for mount in ["/usr/local/cargo/registry", "/usr/local/cargo/git"] {
            assert!(
                runs(name).contains(&format!("--mount=type=cache,target={mount}")),
                "{name} has no cache mount for {mount}"
            );
        }
    }
    // Only the binary, certificates, config and the data dir reach the image.
    let runtime = runtime_stage();
    assert_eq!(all(&runtime, "FROM"), ["scratch AS runtime"]);
    assert!(all(&runtime, "RUN").is_empty(), "scratch has no shell");
    let user = all(&runtime, "USER")[0];
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric UID");
    assert_eq!(uid, 65532, "the UID the Kubernetes manifests run as");
    assert_eq!(all(&runtime, "VOLUME"), [r#"["/data"]"#]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_listens_on_its_exposed_port_and_its_healthcheck_passes() {
    let runtime = runtime_stage();
    let env = env_of(&runtime);
    let port: u16 = all(&runtime, "EXPOSE")[0].parse().unwrap();

    // The config the image runs with: the file COPY puts where LARDER_CONFIG
    // points, as the binary reads it through that variable.
    let config_path = &env["LARDER_CONFIG"];
    let copy = all(&runtime, "COPY")
        .into_iter()
        .find(|c| c.ends_with(&format!(" {config_path}")))
        .expect("the image's config is copied in");
    let source = repo(copy.split_whitespace().next().unwrap());
    let out = larder(
        &["config", "check"],
        &[("LARDER_CONFIG", source.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = effective_config(&source);
    assert_eq!(config.server.listen.port(), port, "listen vs EXPOSE");
    assert!(config.server.listen.ip().is_unspecified());
    assert_eq!(
        config.storage.data_dir,
        Path::new("/data"),
        "data dir vs VOLUME"
    );

    // ENTRYPOINT, HEALTHCHECK and the COPY of the binary name one path.
    let entrypoint = exec_form(all(&runtime, "ENTRYPOINT")[0]);
    assert_eq!(exec_form(all(&runtime, "CMD")[0]), ["serve"]);
    assert!(all(&runtime, "COPY")
        .contains(&format!("--from=build /out/larder {}", entrypoint[0]).as_str()));
    let healthcheck = all(&runtime, "HEALTHCHECK")[0];
    let (options, cmd) = healthcheck.split_once("CMD ").expect("HEALTHCHECK CMD");
    let cmd = exec_form(cmd);
    assert_eq!(cmd[0], entrypoint[0]);
    assert!(
        options.contains("--timeout=5s"),
        "docker's timeout must exceed the command's own 3s: {options}"
    );
    assert!(
        !env.contains_key("LARDER_HEALTHCHECK_URL"),
        "a fixed URL would not follow the config's port or TLS"
    );

    // The exact command, against a real server, with the image's config
    // moved to that server's port as a deployment would (LARDER__*).
    let server = TestServer::start().await;
    let args: Vec<String> = cmd[1..].to_vec();
    let listen = format!("0.0.0.0:{}", server.addr.port());
    let source = source.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env = [
            ("LARDER_CONFIG", source.as_str()),
            ("LARDER__SERVER__LISTEN", listen.as_str()),
        ];
        larder(&args, &env)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let probed = format!("http://127.0.0.1:{}/readyz: 200", server.addr.port());
    assert!(text(&out.stdout).contains(&probed), "{out:?}");
}

#[test]
fn hadolint_passes_without_a_single_finding() {
    let Some(hadolint) = common::require_tool("hadolint") else {
        return;
    };
    let out = Command::new(hadolint)
        .arg(repo(DOCKERFILE))
        .output()
        .expect("run hadolint");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "hadolint:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn dockerignore_keeps_build_outputs_out_and_the_sources_in() {
    let ignore = dockerignore::DockerIgnore::parse(&read(".dockerignore"));
    for (path, excluded) in [
        ("target/release/larder", true),
        (".git/HEAD", true),
        ("larder-data/index/db", true),
        ("tests/node/node_modules/turbo/package.json", true),
        ("deploy/kubernetes/signing.key", true),
        ("Cargo.toml", false),
        ("src/main.rs", false),
        ("benches/evict/main.rs", false),
        ("deploy/docker/larder.toml", false),
    ] {
        assert_eq!(ignore.excludes(path), excluded, "{path}");
    }
    // Every path a COPY takes from the context survives the ignore list.
    let copied: Vec<String> = dockerfile_stages(&read(DOCKERFILE))
        .iter()
        .flat_map(|s| {
            all(s, "COPY")
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.starts_with("--from"))
        .flat_map(|c| {
            let words: Vec<String> = c.split_whitespace().map(str::to_owned).collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    assert!(copied.contains(&".".to_owned()), "{copied:?}");
    for path in copied.iter().filter(|p| *p != ".") {
        assert!(repo(path).exists(), "COPY {path}: missing");
        assert!(
            !ignore.excludes(path),
            "COPY {path} is excluded by .dockerignore"
        );
    }
}
