//! Cluster mode's deploy files: the kustomization in deploy/kubernetes/cluster
//! and deploy/compose/cluster.yml with its nginx load balancer. Each wires the
//! config file, port, volumes, secrets and deadlines it names to the others,
//! and the real binary loads that config with the environment they set.

mod common;
mod deploy_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use deploy_support::dockerignore::DockerIgnore;
use deploy_support::*;
use larder::config::Config;
use serde_yaml::Value;

const K8S: &str = "deploy/kubernetes/cluster";

/// The config `larder config print` shows for `file` with `env` set, and
/// the printed text itself (to look for what must not be printed).
fn config_with_env(file: &Path, env: &[(String, String)]) -> (Config, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = larder(
        &["config", "print", "--config", file.to_str().unwrap()],
        &env,
    );
    assert!(
        out.status.success(),
        "{} with {env:?} is refused: {}",
        file.display(),
        text(&out.stderr)
    );
    let printed = text(&out.stdout);
    (
        toml::from_str(&printed).expect("config print parses"),
        printed,
    )
}

/// The element of a list whose `name` is `name`.
fn named<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
    seq(list, key)
        .iter()
        .find(|v| v["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {key} named {name}"))
}

/// Whether `selector` (a map of labels) selects an object with `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_mapping().expect("a label map");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A `.gitignore` line that covers `path` (the file itself, or a directory
/// holding it, written with a trailing slash).
fn git_ignores(path: &str) -> bool {
    read(".gitignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|l| l == path || (l.ends_with('/') && path.starts_with(l)))
}

fn assert_kept_local(path: &str) {
    assert!(git_ignores(path), "{path}: not in .gitignore");
    let ignore = DockerIgnore::parse(&read(".dockerignore"));
    assert!(ignore.excludes(path), "{path}: not in .dockerignore");
}

// ---------------------------------------------------------------------------
// Kubernetes

fn deployment() -> Value {
    yaml(&format!("{K8S}/deployment.yaml"))
}

/// The kustomization's generators of `kind`, by name: the files (or env
/// files) each is made from, `key=` prefixes kept.
fn generators(kind: &str) -> BTreeMap<String, Vec<String>> {
    let kustomization = yaml(&format!("{K8S}/kustomization.yaml"));
    seq(&kustomization, kind)
        .iter()
        .map(|g| {
            let sources = g.get("files").or_else(|| g.get("envs")).unwrap();
            (g["name"].as_str().unwrap().to_owned(), strings(sources))
        })
        .collect()
}

/// The Deployment's container environment, with each value a Secret holds
/// replaced by a recognizable stand-in.
fn container_env(container: &Value) -> Vec<(String, String)> {
    seq(container, "env")
        .iter()
        .map(|e| {
            let name = str_at(e, &["name"]).to_owned();
            let value = match e.get("value") {
                Some(v) => v.as_str().unwrap().to_owned(),
                None => format!(
                    "from-secret-{}",
                    str_at(e, &["valueFrom", "secretKeyRef", "key"])
                ),
            };
            (name, value)
        })
        .collect()
}

#[test]
fn the_deployment_mounts_what_the_config_names_and_outlasts_the_drain() {
    let kustomization = yaml(&format!("{K8S}/kustomization.yaml"));
    for resource in strings(&kustomization["resources"]) {
        assert!(repo(&format!("{K8S}/{resource}")).is_file(), "{resource}");
    }
    let config_maps = generators("configMapGenerator");
    assert_eq!(config_maps["larder-config"], ["larder.toml"]);
    let secrets = generators("secretGenerator");

    let deploy = deployment();
    assert_eq!(deploy["kind"].as_str(), Some("Deployment"));
    assert!(
        deploy["spec"]["replicas"].as_u64().unwrap() >= 2,
        "replicas"
    );
    let pod = &deploy["spec"]["template"]["spec"];
    let container = &seq(pod, "containers")[0];
    let mount_of = |volume: &str| {
        PathBuf::from(str_at(
            named(container, "volumeMounts", volume),
            &["mountPath"],
        ))
    };
    let volume = |name: &str| named(pod, "volumes", name);
    let args = strings(&container["args"]);
    assert_eq!(args[0], "serve");
    let i = args.iter().position(|a| a == "--config").unwrap();
    assert_eq!(
        Path::new(&args[i + 1]),
        mount_of("config").join("larder.toml")
    );
    assert_eq!(
        str_at(volume("config"), &["configMap", "name"]),
        "larder-config"
    );

    // The environment names real keys: the binary refuses an unknown
    // LARDER__ variable, so the config loading with them proves they are
    // keys, and the printed config shows where each landed (all but the S3
    // secret, which is never printed).
    let env = container_env(container);
    let file = repo(&format!("{K8S}/larder.toml"));
    let (config, printed) = config_with_env(&file, &env);
    let value = |name: &str| &env.iter().find(|(k, _)| k == name).unwrap().1;
    assert_eq!(
        config.cluster.s3.access_key_id.as_deref(),
        Some(value("LARDER__CLUSTER__S3__ACCESS_KEY_ID").as_str())
    );
    let secret = value("LARDER__CLUSTER__S3__SECRET_ACCESS_KEY");
    assert!(
        !printed.contains(secret.as_str()),
        "the S3 secret is printed"
    );
    let mut misspelt = env.clone();
    misspelt.push(("LARDER__CLUSTER__S3__SECRET_KEY".into(), "x".into()));
    let out = larder(
        &["config", "print", "--config", file.to_str().unwrap()],
        &misspelt
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    assert!(!out.status.success(), "an unknown variable must be refused");
    // Each from a generated Secret, with a key the kustomization's recipe
    // for that Secret's file writes.
    let recipe = read(&format!("{K8S}/kustomization.yaml"));
    for e in seq(container, "env") {
        let from = &e["valueFrom"]["secretKeyRef"];
        assert!(secrets.contains_key(str_at(from, &["name"])), "{e:?}");
        assert!(
            recipe.contains(&format!("{}=", str_at(from, &["key"]))),
            "{e:?}"
        );
    }
    assert!(config.cluster.enabled);

    // Files the config names are the mounted Secrets' keys.
    assert_eq!(
        str_at(volume("signing-key"), &["secret", "secretName"]),
        "larder-signing-key"
    );
    assert_eq!(secrets["larder-signing-key"], ["signing.key"]);
    assert_eq!(
        config.auth.signing_key_file.as_deref(),
        Some(mount_of("signing-key").join("signing.key").as_path())
    );
    assert_eq!(
        str_at(volume("postgres-password"), &["secret", "secretName"]),
        "larder-postgres"
    );
    let (key, _) = secrets["larder-postgres"][0].split_once('=').unwrap();
    assert_eq!(
        config.cluster.postgres.password_file.as_deref(),
        Some(mount_of("postgres-password").join(key).as_path())
    );

    // The tier: an emptyDir at the data dir, larger than the tier it holds
    // (a replica past sizeLimit is evicted), and asked of the scheduler.
    assert_eq!(config.storage.data_dir, mount_of("data"));
    let limit = quantity(str_at(volume("data"), &["emptyDir", "sizeLimit"]));
    assert!(
        limit > config.cluster.local_cache_size.bytes(),
        "sizeLimit {limit} must exceed cluster.local_cache_size"
    );
    let asked = str_at(container, &["resources", "requests", "ephemeral-storage"]);
    assert!(quantity(asked) >= limit, "ephemeral-storage request");

    // Probes on the configured port: ready is /readyz (503 without
    // PostgreSQL), alive is /healthz (an outage restarts nobody).
    let port = named(container, "ports", "http");
    assert_eq!(
        port["containerPort"].as_u64(),
        Some(config.server.listen.port().into())
    );
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        assert_eq!(str_at(container, &[probe, "httpGet", "port"]), "http");
        assert_eq!(str_at(container, &[probe, "httpGet", "path"]), path);
    }

    // The kubelet waits for the preStop pause and the whole drain.
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap_or(0);
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        Duration::from_secs(grace) > Duration::from_secs(pause) + config.server.shutdown_timeout.0,
        "terminationGracePeriodSeconds {grace} must exceed preStop {pause}s + shutdown_timeout"
    );
    let rolling = &deploy["spec"]["strategy"]["rollingUpdate"];
    assert_eq!(
        rolling["maxUnavailable"].as_u64(),
        Some(0),
        "rollouts keep capacity"
    );
    // Every replica's pool and its two own sessions (leader election,
    // change notices), the surging one's too, fit PostgreSQL's default
    // max_connections (100).
    let replicas = deploy["spec"]["replicas"].as_u64().unwrap();
    let surge = rolling["maxSurge"].as_u64().unwrap();
    let pool = config.cluster.postgres.pool_size as u64;
    assert!(
        (replicas + surge) * (pool + 2) <= 100,
        "PostgreSQL connections"
    );

    // As locked down as the single-node StatefulSet.
    let sts = yaml("deploy/kubernetes/statefulset.yaml");
    let sts_pod = &sts["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"], sts_pod["securityContext"]);
    assert_eq!(
        container["securityContext"],
        seq(sts_pod, "containers")[0]["securityContext"]
    );
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));

    // Replicas spread across nodes.
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    assert!(selects(&deploy["spec"]["selector"]["matchLabels"], labels));
    let spread = seq(pod, "topologySpreadConstraints");
    assert!(
        spread.iter().any(|c| {
            c["topologyKey"].as_str() == Some("kubernetes.io/hostname")
                && selects(&c["labelSelector"]["matchLabels"], labels)
        }),
        "no spread across nodes"
    );
}

#[test]
fn the_service_and_disruption_budget_cover_every_replica() {
    let deploy = deployment();
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    let replicas = deploy["spec"]["replicas"].as_u64().unwrap();
    let container = &seq(&deploy["spec"]["template"]["spec"], "containers")[0];

    let service = yaml(&format!("{K8S}/service.yaml"));
    assert!(selects(&service["spec"]["selector"], labels));
    assert_ne!(service["spec"]["clusterIP"].as_str(), Some("None"));
    // Any replica serves any request: no stickiness.
    assert_ne!(
        service["spec"]["sessionAffinity"].as_str(),
        Some("ClientIP")
    );
    for port in seq(&service["spec"], "ports") {
        named(container, "ports", str_at(port, &["targetPort"]));
    }
    // The label ../monitoring's ServiceMonitor selects.
    let monitor = yaml("deploy/kubernetes/monitoring/servicemonitor.yaml");
    assert!(selects(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    ));

    // Drains take one replica at a time, and never block forever.
    let pdb = yaml(&format!("{K8S}/pdb.yaml"));
    assert_eq!(pdb["apiVersion"].as_str(), Some("policy/v1"));
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], labels));
    let down = pdb["spec"]["maxUnavailable"].as_u64().unwrap();
    assert!(down >= 1 && down < replicas, "maxUnavailable {down}");
}

#[test]
fn the_secret_files_stay_out_of_git_and_the_build_context() {
    for (_, sources) in generators("secretGenerator") {
        for source in sources {
            let file = source.rsplit('=').next().unwrap();
            assert_kept_local(&format!("{K8S}/{file}"));
        }
    }
    let compose = compose();
    for (name, secret) in compose["secrets"].as_mapping().unwrap() {
        let file = str_at(secret, &["file"]);
        let path = format!("deploy/compose/{}", file.trim_start_matches("./"));
        assert_kept_local(&path);
        assert!(
            read("deploy/compose/cluster.yml").contains(&path),
            "{name:?}: no recipe"
        );
    }
    assert_kept_local("deploy/compose/.env");
}

/// kubectl renders the kustomization (with stand-in secret files), the
/// generated, hash-named ConfigMap and Secrets are the ones the Deployment
/// uses, and an overlay adds ../monitoring as its comment says.
#[test]
fn kustomize_renders_with_kubectl() {
    let Some(kubectl) = common::require_tool("kubectl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("kubernetes");
    copy_tree(&repo("deploy/kubernetes"), &base);
    let cluster = base.join("cluster");
    std::fs::write(cluster.join("signing.key"), "ab".repeat(32)).unwrap();
    std::fs::write(cluster.join("postgres-password"), "pw\n").unwrap();
    std::fs::write(
        cluster.join("s3.env"),
        "access-key-id=id\nsecret-access-key=secret\n",
    )
    .unwrap();
    let render = |dir: &Path| {
        let out = Command::new(&kubectl)
            .arg("kustomize")
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_yaml::Deserializer::from_str(&text(&out.stdout))
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect::<Vec<Value>>()
    };
    let docs = render(&cluster);
    let of_kind = |kind: &str| -> Vec<&Value> {
        docs.iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    };
    let rendered = |kind: &str, prefix: &str| -> String {
        of_kind(kind)
            .iter()
            .map(|d| str_at(d, &["metadata", "name"]))
            .find(|n| n.starts_with(&format!("{prefix}-")))
            .unwrap_or_else(|| panic!("no {kind} {prefix}-<hash>"))
            .to_owned()
    };
    let deploy = of_kind("Deployment")[0];
    let pod = &deploy["spec"]["template"]["spec"];
    let volume = |name: &str| named(pod, "volumes", name).clone();
    assert_eq!(
        str_at(&volume("config"), &["configMap", "name"]),
        rendered("ConfigMap", "larder-config")
    );
    for (name, secret) in [
        ("signing-key", "larder-signing-key"),
        ("postgres-password", "larder-postgres"),
    ] {
        assert_eq!(
            str_at(&volume(name), &["secret", "secretName"]),
            rendered("Secret", secret)
        );
    }
    let s3 = rendered("Secret", "larder-s3");
    let s3_keys = &of_kind("Secret")
        .into_iter()
        .find(|d| d["metadata"]["name"].as_str() == Some(s3.as_str()))
        .unwrap()["data"];
    for e in seq(&seq(pod, "containers")[0], "env") {
        let from = &e["valueFrom"]["secretKeyRef"];
        assert_eq!(str_at(from, &["name"]), s3);
        assert!(s3_keys.get(str_at(from, &["key"])).is_some(), "{e:?}");
    }
    assert_eq!(of_kind("Service").len(), 1);
    assert_eq!(of_kind("PodDisruptionBudget").len(), 1);

    let overlay = dir.path().join("overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources:\n  - ../kubernetes/cluster\ncomponents:\n  - ../kubernetes/monitoring\n",
    )
    .unwrap();
    let docs = render(&overlay);
    assert!(docs
        .iter()
        .any(|d| d["kind"].as_str() == Some("ServiceMonitor")));
}

// ---------------------------------------------------------------------------
// Compose

/// cluster.yml as compose reads it: `<<: *larder` merged into each replica.
fn compose() -> Value {
    let mut compose = yaml("deploy/compose/cluster.yml");
    compose.apply_merge().unwrap();
    compose
}

/// The services built from deploy/Dockerfile, by name.
fn replicas(compose: &Value) -> Vec<(String, Value)> {
    compose["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, s)| s["build"]["dockerfile"].as_str() == Some("deploy/Dockerfile"))
        .map(|(n, s)| (n.as_str().unwrap().to_owned(), s.clone()))
        .collect()
}

/// `${NAME}`, `${NAME:?message}` and `${NAME:-default}` as compose
/// interpolates them, each NAME standing for `value-of-NAME`.
fn interpolate(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').expect("a closing brace") + i;
        let name = rest[i + 2..end].split([':', '-', '?']).next().unwrap();
        out.push_str(&format!("value-of-{name}"));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A service's `environment` map, interpolated.
fn environment(service: &Value) -> Vec<(String, String)> {
    service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_owned(),
                        interpolate(v.as_str().unwrap()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn env_value(service: &Value, key: &str) -> String {
    environment(service)
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key}"))
        .1
}

/// `host:container[:mode]` volume strings of a compose service.
fn compose_volumes(service: &Value) -> Vec<(String, String)> {
    strings(&service["volumes"])
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            (parts[0].to_owned(), parts[1].to_owned())
        })
        .collect()
}

fn condition<'a>(service: &'a Value, on: &str) -> &'a str {
    str_at(service, &["depends_on", on, "condition"])
}

/// The effective config of the replicas (the file they mount, with the
/// environment they set), after checking that every replica mounts the same
/// file at its --config and sets the same environment.
fn replica_config(compose: &Value) -> (Config, String) {
    let replicas = replicas(compose);
    let mut files = Vec::new();
    for (name, replica) in &replicas {
        let command = strings(&replica["command"]);
        assert_eq!(command[0], "serve", "{name}");
        let i = command.iter().position(|a| a == "--config").unwrap();
        let (host, _) = compose_volumes(replica)
            .into_iter()
            .find(|(_, c)| *c == command[i + 1])
            .unwrap_or_else(|| panic!("{name}: --config {} is not mounted", command[i + 1]));
        files.push(host);
        assert_eq!(environment(replica), environment(&replicas[0].1), "{name}");
    }
    files.dedup();
    assert_eq!(files.len(), 1, "one config for every replica: {files:?}");
    // Compose resolves host paths against the compose file's directory.
    let file = repo("deploy/compose").join(&files[0]);
    config_with_env(&file, &environment(&replicas[0].1))
}

#[test]
fn compose_replicas_share_one_config_and_wait_for_their_engines() {
    let compose = compose();
    let replicas = replicas(&compose);
    assert_eq!(replicas.len(), 3, "three replicas");
    let (config, printed) = replica_config(&compose);
    assert!(config.cluster.enabled);
    let services = &compose["services"];

    for (name, replica) in &replicas {
        // Each its own tier at the data dir, on a declared volume; its own
        // host name, which is its replica_id.
        let (tier, _) = compose_volumes(replica)
            .into_iter()
            .find(|(_, c)| Path::new(c) == config.storage.data_dir)
            .unwrap_or_else(|| panic!("{name}: nothing at the data dir"));
        assert!(compose["volumes"].get(&tier).is_some(), "{name}: {tier}");
        assert_eq!(replica["hostname"].as_str(), Some(name.as_str()));
        assert!(config.cluster.replica_id.is_empty());
        let grace = duration(str_at(replica, &["stop_grace_period"]));
        assert!(grace > config.server.shutdown_timeout.0, "{name}");
        assert_eq!(replica["read_only"].as_bool(), Some(true), "{name}");
        // Started after PostgreSQL answers and the bucket exists.
        assert_eq!(condition(replica, "postgres"), "service_healthy");
        assert_eq!(
            condition(replica, "bucket"),
            "service_completed_successfully"
        );
        let test = strings(&replica["healthcheck"]["test"]);
        assert_eq!(&test[1..3], ["/usr/local/bin/larder", "healthcheck"]);
    }
    let tiers: std::collections::BTreeSet<String> = replicas
        .iter()
        .flat_map(|(_, r)| compose_volumes(r))
        .filter(|(_, c)| Path::new(c) == config.storage.data_dir)
        .map(|(h, _)| h)
        .collect();
    assert_eq!(tiers.len(), replicas.len(), "a tier per replica");

    // The secrets the config reads are the ones mounted.
    let replica = &replicas[0].1;
    let mounted = |service: &Value, path: &Path| {
        let name = path.strip_prefix("/run/secrets").unwrap().to_str().unwrap();
        assert!(
            strings(&service["secrets"]).iter().any(|s| s == name),
            "{name} is not mounted"
        );
        name.to_owned()
    };
    let password = mounted(
        replica,
        config.cluster.postgres.password_file.as_deref().unwrap(),
    );
    mounted(replica, config.auth.signing_key_file.as_deref().unwrap());

    // PostgreSQL: the user, database and password the replicas use.
    let postgres = &services["postgres"];
    let url = &config.cluster.postgres.url;
    let user = env_value(postgres, "POSTGRES_USER");
    let db = env_value(postgres, "POSTGRES_DB");
    assert!(
        url.starts_with(&format!("postgres://{user}@postgres:5432/{db}")),
        "{url}"
    );
    let postgres_file = env_value(postgres, "POSTGRES_PASSWORD_FILE");
    assert_eq!(mounted(postgres, Path::new(&postgres_file)), password);
    assert!(postgres["healthcheck"]["test"].is_sequence());
    // Every replica's pool fits PostgreSQL's default max_connections (100),
    // with room for an operator's psql.
    assert!(
        postgres.get("command").is_none(),
        "max_connections changed?"
    );
    assert!(replicas.len() * config.cluster.postgres.pool_size <= 90);

    // The object store: the endpoint and key the replicas use, and the
    // bucket the one-shot job makes.
    let minio = &services["minio"];
    assert_eq!(config.cluster.s3.endpoint, "http://minio:9000");
    assert_eq!(
        config.cluster.s3.access_key_id.as_deref(),
        Some(env_value(minio, "MINIO_ROOT_USER").as_str())
    );
    let secret = env_value(replica, "LARDER__CLUSTER__S3__SECRET_ACCESS_KEY");
    assert_eq!(secret, env_value(minio, "MINIO_ROOT_PASSWORD"));
    assert!(!printed.contains(&secret), "the S3 secret is printed");
    assert!(minio["healthcheck"]["test"].is_sequence());
    let bucket = &services["bucket"];
    assert_eq!(condition(bucket, "minio"), "service_healthy");
    assert_eq!(bucket["restart"].as_str(), Some("no"));
    let mb = strings(&bucket["command"]);
    assert_eq!(&mb[..2], ["mb", "--ignore-existing"]);
    assert_eq!(mb[2], format!("local/{}", config.cluster.s3.bucket));
    assert_eq!(
        env_value(bucket, "MC_HOST_local"),
        format!(
            "http://{}:{secret}@minio:9000",
            env_value(minio, "MINIO_ROOT_USER")
        )
    );
}

/// nginx directives as (enclosing block headers, name, arguments), comments
/// dropped: enough of nginx's grammar for cluster-nginx.conf.
fn nginx_directives(text: &str) -> Vec<(Vec<String>, String, Vec<String>)> {
    let mut tokens = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap();
        let mut word = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => tokens.push(chars.by_ref().take_while(|&c| c != '"').collect()),
                ';' | '{' | '}' => {
                    if !word.is_empty() {
                        tokens.push(std::mem::take(&mut word));
                    }
                    tokens.push(c.to_string());
                }
                c if c.is_whitespace() => {
                    if !word.is_empty() {
                        tokens.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            tokens.push(word);
        }
    }
    let mut out = Vec::new();
    let mut blocks: Vec<String> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for token in tokens {
        match token.as_str() {
            ";" => {
                let name = current.remove(0);
                out.push((blocks.clone(), name, std::mem::take(&mut current)));
            }
            "{" => blocks.push(std::mem::take(&mut current).join(" ")),
            "}" => {
                blocks.pop().expect("balanced braces");
            }
            _ => current.push(token),
        }
    }
    assert!(blocks.is_empty() && current.is_empty(), "unterminated");
    out
}

#[test]
fn the_load_balancer_spreads_over_every_replica_and_streams() {
    let compose = compose();
    let lb = &compose["services"]["lb"];
    let (conf, _) = compose_volumes(lb)
        .into_iter()
        .find(|(_, c)| c == "/etc/nginx/conf.d/default.conf")
        .expect("the nginx image's default server replaced");
    assert!(str_at(lb, &["image"]).starts_with("nginx:"));
    let conf = format!("deploy/compose/{}", conf.trim_start_matches("./"));
    let directives = nginx_directives(&read(&conf));
    let one = |name: &str| -> Vec<String> {
        let found: Vec<_> = directives.iter().filter(|(_, n, _)| n == name).collect();
        assert_eq!(found.len(), 1, "one {name}");
        found[0].2.clone()
    };
    let (config, _) = replica_config(&compose);
    let port = config.server.listen.port();

    // Round robin over every replica, by its compose name, at its port.
    let pass = one("proxy_pass");
    let upstream = pass[0].strip_prefix("http://").unwrap();
    let servers: Vec<String> = directives
        .iter()
        .filter(|(b, n, _)| n == "server" && b.last() == Some(&format!("upstream {upstream}")))
        .map(|(_, _, a)| a[0].clone())
        .collect();
    let replicas = replicas(&compose);
    let want: Vec<String> = replicas
        .iter()
        .map(|(n, _)| format!("{n}:{port}"))
        .collect();
    assert_eq!(servers, want);
    for sticky in ["ip_hash", "hash", "sticky"] {
        assert!(
            directives.iter().all(|(_, n, _)| n != sticky),
            "{sticky}: no stickiness"
        );
    }
    for (name, _) in &replicas {
        assert_eq!(condition(lb, name), "service_started", "lb on {name}");
    }
    // The one published port is the one nginx listens on.
    let listen = one("listen");
    let ports = strings(&lb["ports"]);
    assert_eq!(ports.len(), 1);
    assert!(ports[0].ends_with(&format!(":{}", listen[0])), "{ports:?}");
    let published: usize = compose["services"]
        .as_mapping()
        .unwrap()
        .values()
        .map(|s| s.get("ports").map_or(0, |p| strings(p).len()))
        .sum();
    assert_eq!(published, 1, "only the load balancer is published");

    // Bodies of any size, streamed both ways over HTTP/1.1 keep-alive.
    for (name, want) in [
        ("client_max_body_size", "0"),
        ("proxy_request_buffering", "off"),
        ("proxy_buffering", "off"),
        ("proxy_http_version", "1.1"),
    ] {
        assert_eq!(one(name), [want], "{name}");
    }
    // The replicas trust X-Forwarded-*: nginx must overwrite them.
    assert!(config.server.trust_forwarded_headers);
    let headers: BTreeMap<String, String> = directives
        .iter()
        .filter(|(_, n, _)| n == "proxy_set_header")
        .map(|(_, _, a)| (a[0].clone(), a[1].clone()))
        .collect();
    assert_eq!(headers["X-Forwarded-For"], "$remote_addr");
    assert_eq!(headers["Host"], "$http_host");
    // A replica may stay silent while it retries the object store (up to
    // four request_timeouts) before it answers.
    let silence = 4 * config.cluster.s3.request_timeout.0;
    for name in ["proxy_read_timeout", "proxy_send_timeout"] {
        assert!(duration(&one(name)[0]) > silence, "{name}");
    }
}

/// `nginx -t` on cluster-nginx.conf, included in an http block as the
/// image's nginx.conf includes conf.d/, with the replicas' names mapped to
/// loopback (nginx resolves them while it reads the file; compose's DNS
/// does that in the real stack).
#[test]
fn nginx_accepts_the_load_balancer_config() {
    let Some(nginx) = common::require_tool("nginx") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let mut conf = read("deploy/compose/cluster-nginx.conf");
    for (name, _) in replicas(&compose()) {
        conf = conf.replace(&format!("server {name}:"), "server 127.0.0.1:");
    }
    std::fs::write(dir.path().join("lb.conf"), conf).unwrap();
    let main = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n\
         access_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         include {d}/lb.conf;\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
    let out = Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nginx -t:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
