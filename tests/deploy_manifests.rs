//! docker-compose.yml, the Kubernetes kustomization and the systemd unit:
//! each wires the config file, port, data dir, key and stop deadline it names
//! to the others consistently, and runs commands the binary accepts.

mod common;
mod deploy_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::TestServer;
use deploy_support::*;

/// `host:container[:mode]` volume strings of a compose service.
fn compose_volumes(service: &serde_yaml::Value) -> Vec<(String, String)> {
    strings(&service["volumes"])
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            (parts[0].to_owned(), parts[1].to_owned())
        })
        .collect()
}

/// The value after `flag` in an argument list.
fn flag_value<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} missing in {args:?}"));
    &args[i + 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_wires_larder_and_a_buildkitd_that_trusts_it_over_http() {
    let compose = yaml("deploy/docker-compose.yml");
    let larder_svc = &compose["services"]["larder"];
    let command = strings(&larder_svc["command"]);
    assert_eq!(command[0], "serve");
    let volumes = compose_volumes(larder_svc);
    let config_in_container = flag_value(&command, "--config");
    let (host_file, _) = volumes
        .iter()
        .find(|(_, c)| c == config_in_container)
        .expect("the --config file is mounted");
    // Compose resolves host paths against the compose file's directory.
    let host_file = repo("deploy").join(host_file);
    let config = effective_config(&host_file);
    assert!(volumes
        .iter()
        .any(|(h, c)| h == "larder-data" && Path::new(c) == config.storage.data_dir));
    let ports = strings(&larder_svc["ports"]);
    assert_eq!(ports, [format!("5000:{}", config.server.listen.port())]);
    let grace = duration(larder_svc["stop_grace_period"].as_str().unwrap());
    assert!(
        grace > config.server.shutdown_timeout.0,
        "stop_grace_period"
    );

    // Its healthcheck reads the config `serve` is given, and passes when
    // run as written (that file on the host, moved to a real server's port).
    let test = strings(&larder_svc["healthcheck"]["test"]);
    assert_eq!(&test[..3], ["CMD", "/usr/local/bin/larder", "healthcheck"]);
    assert_eq!(flag_value(&test, "--config"), config_in_container);
    let server = TestServer::start().await;
    let mut args = test[2..].to_vec();
    *args.last_mut().unwrap() = host_file.display().to_string();
    let listen = format!("0.0.0.0:{}", server.addr.port());
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        larder(&args, &[("LARDER__SERVER__LISTEN", listen.as_str())])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    // buildkitd reads the buildkitd.toml that trusts larder:<port> over HTTP.
    let buildkitd = &compose["services"]["buildkitd"];
    let args = strings(&buildkitd["command"]);
    assert_eq!(flag_value(&args, "--addr"), "tcp://0.0.0.0:1234");
    assert_eq!(strings(&buildkitd["ports"]), ["127.0.0.1:1234:1234"]);
    let (host_file, _) = compose_volumes(buildkitd)
        .into_iter()
        .find(|(_, c)| c == flag_value(&args, "--config"))
        .expect("buildkitd.toml is mounted where --config points");
    let bk: toml::Value = toml::from_str(&read(&format!("deploy/{host_file}"))).unwrap();
    let registry = format!("larder:{}", config.server.listen.port());
    let trust = &bk["registry"][registry.as_str()];
    assert_eq!(trust["http"].as_bool(), Some(true), "{registry} over http");
    assert_eq!(trust["insecure"].as_bool(), Some(true));
    assert_eq!(
        buildkitd["depends_on"]["larder"]["condition"].as_str(),
        Some("service_healthy")
    );
}

#[test]
fn kubernetes_mounts_what_the_config_names_and_outlasts_the_drain() {
    let kustomization = yaml("deploy/kubernetes/kustomization.yaml");
    for resource in strings(&kustomization["resources"]) {
        assert!(repo(&format!("deploy/kubernetes/{resource}")).is_file());
    }
    let generated = |kind: &str| {
        let g = &seq(&kustomization, kind)[0];
        (g["name"].as_str().unwrap().to_owned(), strings(&g["files"]))
    };
    let (config_map, config_files) = generated("configMapGenerator");
    let (secret, secret_files) = generated("secretGenerator");
    assert_eq!(config_files, ["larder.toml"]);
    assert_eq!(secret_files, ["signing.key"]);
    let config = effective_config(&repo("deploy/kubernetes/larder.toml"));

    let sts = yaml("deploy/kubernetes/statefulset.yaml");
    let pod = &sts["spec"]["template"]["spec"];
    let container = &seq(pod, "containers")[0];
    let mount_of = |volume: &str| {
        seq(container, "volumeMounts")
            .iter()
            .find(|m| m["name"].as_str() == Some(volume))
            .map(|m| PathBuf::from(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("volume {volume} is not mounted"))
    };
    let volume = |name: &str| {
        seq(pod, "volumes")
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    assert_eq!(
        volume("config")["configMap"]["name"].as_str(),
        Some(config_map.as_str())
    );
    assert_eq!(
        volume("signing-key")["secret"]["secretName"].as_str(),
        Some(secret.as_str())
    );
    let args = strings(&container["args"]);
    assert_eq!(args[0], "serve");
    assert_eq!(
        Path::new(flag_value(&args, "--config")),
        mount_of("config").join("larder.toml")
    );
    assert_eq!(
        config.auth.signing_key_file.as_deref(),
        Some(mount_of("signing-key").join("signing.key").as_path())
    );
    assert_eq!(config.storage.data_dir, mount_of("data"));
    let claim = &seq(&sts["spec"], "volumeClaimTemplates")[0];
    assert_eq!(claim["metadata"]["name"].as_str(), Some("data"));
    let storage = quantity(str_at(claim, &["spec", "resources", "requests", "storage"]));
    assert!(
        storage > config.storage.max_size.bytes(),
        "the volume holds the budget"
    );

    // Ports: the named container port is the listen port; probes and the
    // Service use that name; the Service selects the pod.
    let port = &seq(container, "ports")[0];
    assert_eq!(port["name"].as_str(), Some("http"));
    assert_eq!(
        port["containerPort"].as_u64(),
        Some(config.server.listen.port().into())
    );
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(
            str_at(container, &[probe, "httpGet", "port"]),
            "http",
            "{probe}"
        );
    }
    assert_eq!(
        str_at(container, &["readinessProbe", "httpGet", "path"]),
        "/readyz"
    );
    assert_eq!(
        str_at(container, &["livenessProbe", "httpGet", "path"]),
        "/healthz"
    );
    let service = yaml("deploy/kubernetes/service.yaml");
    assert_eq!(
        str_at(&seq(&service["spec"], "ports")[0], &["targetPort"]),
        "http"
    );
    let labels = &sts["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&labels[k.as_str().unwrap()], v, "selector {k:?}");
    }

    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        Duration::from_secs(grace) > config.server.shutdown_timeout.0,
        "terminationGracePeriodSeconds {grace} must exceed shutdown_timeout"
    );
    let pod_security = &pod["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"].as_bool(), Some(true));
    assert!(pod_security["runAsUser"].as_u64().unwrap() > 0);
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    let requests = &container["resources"]["requests"];
    assert!(requests["cpu"].is_string() && requests["memory"].is_string());
}

/// The pod labels a selector must match (the StatefulSet's template labels).
fn pod_labels() -> serde_yaml::Value {
    yaml("deploy/kubernetes/statefulset.yaml")["spec"]["template"]["metadata"]["labels"].clone()
}

/// Whether `selector` (a map of labels) selects an object with `labels`.
fn selects(selector: &serde_yaml::Value, labels: &serde_yaml::Value) -> bool {
    let selector = selector.as_mapping().expect("a label map");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The kustomization's resources of one kind, as (file, document).
fn resources_of(kind: &str) -> Vec<(String, serde_yaml::Value)> {
    let kustomization = yaml("deploy/kubernetes/kustomization.yaml");
    strings(&kustomization["resources"])
        .into_iter()
        .map(|file| {
            let doc = yaml(&format!("deploy/kubernetes/{file}"));
            (file, doc)
        })
        .filter(|(_, doc)| doc["kind"].as_str() == Some(kind))
        .collect()
}

#[test]
fn the_statefulset_is_governed_by_a_headless_service_and_a_disruption_budget() {
    let sts = yaml("deploy/kubernetes/statefulset.yaml");
    let labels = pod_labels();
    let services = resources_of("Service");
    let governing = str_at(&sts, &["spec", "serviceName"]);
    let (file, headless) = services
        .iter()
        .find(|(_, s)| s["metadata"]["name"].as_str() == Some(governing))
        .unwrap_or_else(|| panic!("serviceName {governing} names no Service in the kustomization"));
    assert_eq!(
        headless["spec"]["clusterIP"].as_str(),
        Some("None"),
        "{file}: the StatefulSet's serviceName must be a headless Service"
    );
    assert!(selects(&headless["spec"]["selector"], &labels), "{file}");
    let container = &seq(&sts["spec"]["template"]["spec"], "containers")[0];
    let port_names: Vec<&str> = seq(container, "ports")
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for port in seq(&headless["spec"], "ports") {
        assert!(
            port_names.contains(&str_at(port, &["targetPort"])),
            "{file}"
        );
    }
    // Clients get a Service with a virtual IP, not the headless one.
    let client = yaml("deploy/kubernetes/service.yaml");
    assert_ne!(client["metadata"]["name"].as_str(), Some(governing));
    assert_ne!(client["spec"]["clusterIP"].as_str(), Some("None"));

    // The budget covers the pod and lets a drain proceed one pod at a time:
    // with one replica, minAvailable 1 would block every drain forever.
    let pdbs = resources_of("PodDisruptionBudget");
    assert_eq!(pdbs.len(), 1, "one PodDisruptionBudget");
    let pdb = &pdbs[0].1;
    assert_eq!(pdb["apiVersion"].as_str(), Some("policy/v1"));
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], &labels));
    assert_eq!(pdb["spec"]["maxUnavailable"].as_u64(), Some(1));
    assert!(pdb["spec"].get("minAvailable").is_none());
}

/// The optional monitoring component: a kustomize Component whose
/// ServiceMonitor selects the client Service alone (one scrape per pod) on a
/// port it has, at a path the real server answers with Prometheus text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitoring_component_scrapes_what_the_server_serves() {
    let component = yaml("deploy/kubernetes/monitoring/kustomization.yaml");
    assert_eq!(component["kind"].as_str(), Some("Component"));
    assert_eq!(
        component["apiVersion"].as_str(),
        Some("kustomize.config.k8s.io/v1alpha1")
    );
    let files = strings(&component["resources"]);
    let monitors: Vec<serde_yaml::Value> = files
        .iter()
        .map(|f| yaml(&format!("deploy/kubernetes/monitoring/{f}")))
        .filter(|d| d["kind"].as_str() == Some("ServiceMonitor"))
        .collect();
    assert_eq!(monitors.len(), 1, "one ServiceMonitor in {files:?}");
    let monitor = &monitors[0];
    assert_eq!(
        monitor["apiVersion"].as_str(),
        Some("monitoring.coreos.com/v1")
    );
    // The main kustomization does not enable it (it needs the CRDs).
    let kustomization = yaml("deploy/kubernetes/kustomization.yaml");
    assert!(kustomization.get("components").is_none());

    let selector = &monitor["spec"]["selector"]["matchLabels"];
    let selected: Vec<(String, serde_yaml::Value)> = resources_of("Service")
        .into_iter()
        .filter(|(_, s)| selects(selector, &s["metadata"]["labels"]))
        .collect();
    assert_eq!(
        selected.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        ["service.yaml"],
        "the ServiceMonitor must select the client Service only"
    );
    let service = &selected[0].1;
    let endpoints = seq(&monitor["spec"], "endpoints");
    assert!(!endpoints.is_empty());
    let server = TestServer::start().await;
    let client = common::client();
    for endpoint in endpoints {
        let port = str_at(endpoint, &["port"]);
        assert!(
            seq(&service["spec"], "ports")
                .iter()
                .any(|p| p["name"].as_str() == Some(port)),
            "the Service has no port named {port}"
        );
        let path = str_at(endpoint, &["path"]);
        let resp = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let body = resp.text().await.unwrap();
        assert!(body.contains("# TYPE "), "{path} is not Prometheus text");
        let interval = duration(str_at(endpoint, &["interval"]));
        let timeout = duration(str_at(endpoint, &["scrapeTimeout"]));
        assert!(timeout < interval, "scrapeTimeout below interval");
    }
}

/// kubectl renders the kustomization, and its generated
/// (hash-suffixed) ConfigMap and Secret are the ones the StatefulSet uses.
#[test]
fn kustomize_renders_with_kubectl() {
    let Some(kubectl) = common::require_tool("kubectl") else {
        return;
    };
    // deploy/kubernetes as it is, as `kubernetes`, and beside it an overlay
    // as the monitoring component's comment shows one.
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("kubernetes");
    copy_tree(&repo("deploy/kubernetes"), &base);
    std::fs::write(base.join("signing.key"), "ab".repeat(32)).unwrap();
    let out = Command::new(&kubectl)
        .arg("kustomize")
        .arg(&base)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text(&out.stdout))
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let name_of = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(kind))
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no {kind} rendered"))
    };
    let sts = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("StatefulSet"))
        .unwrap();
    let volumes = serde_yaml::to_string(&sts["spec"]["template"]["spec"]["volumes"]).unwrap();
    assert!(volumes.contains(&name_of("ConfigMap")), "{volumes}");
    assert!(volumes.contains(&name_of("Secret")), "{volumes}");
    let headless = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Service") && d["spec"]["clusterIP"] == "None")
        .expect("a headless Service rendered");
    assert_eq!(
        headless["metadata"]["name"], sts["spec"]["serviceName"],
        "serviceName"
    );
    name_of("PodDisruptionBudget");

    // The monitoring component, through an overlay as its comment shows.
    let overlay = dir.path().join("overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources:\n  - ../kubernetes\ncomponents:\n  - ../kubernetes/monitoring\n",
    )
    .unwrap();
    let out = Command::new(&kubectl)
        .arg("kustomize")
        .arg(&overlay)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("kind: ServiceMonitor"));
}

/// The unit's ExecStart, with the config path mapped to the repo's example.
fn exec_start(unit: &std::collections::BTreeMap<String, Vec<String>>) -> (String, Vec<String>) {
    let line = &unit["ExecStart"][0];
    let mut words = line.split_whitespace().map(str::to_owned);
    let program = words.next().unwrap();
    let mut args: Vec<String> = words.collect();
    let i = args.iter().position(|a| a == "--config").unwrap();
    assert_eq!(args[i + 1], "/etc/larder/larder.toml");
    args[i + 1] = repo("deploy/systemd/larder.toml").display().to_string();
    (program, args)
}

#[test]
fn the_systemd_unit_is_hardened_and_its_command_serves_and_drains_in_time() {
    let unit = unit_file(&read("deploy/systemd/larder.service"));
    let one = |key: &str| unit.get(key).map(|v| v[0].as_str());
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "larder"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", ""),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(key), Some(want), "{key}");
    }
    assert!(one("RestrictAddressFamilies").is_some_and(|v| v.contains("AF_INET")));
    assert!(one("LimitNOFILE").is_some());

    let (program, args) = exec_start(&unit);
    assert_eq!(program, "/usr/local/bin/larder");
    assert_eq!(args[0], "serve");
    let config = effective_config(&repo("deploy/systemd/larder.toml"));
    assert_eq!(
        config.storage.data_dir,
        Path::new("/var/lib/larder"),
        "StateDirectory"
    );
    let stop = duration(one("TimeoutStopSec").unwrap());
    assert!(stop > config.server.shutdown_timeout.0, "TimeoutStopSec");

    // The command line itself: the real binary starts with it (on a test
    // port and data dir), becomes ready, and exits 0 on SIGTERM in time.
    let data = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        Command::new(common::process::larder_bin())
            .args(&args)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let addr = listening_addr(child.0.stderr.take().unwrap());
    let url = format!("http://{addr}/readyz");
    let out = larder(&["healthcheck", "--url", &url], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let (tx, exited) = std::sync::mpsc::channel();
    let pid = child.0.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.0.wait());
    });
    let status = exited
        .recv_timeout(stop)
        .unwrap_or_else(|_| panic!("pid {pid} not stopped within TimeoutStopSec {stop:?}"))
        .unwrap();
    assert!(status.success(), "{status}");
}

/// A child killed if the test fails before it stops on its own.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The address from the JSON "listening" line (the unit logs JSON), reading
/// stderr on a thread that keeps draining it afterwards.
fn listening_addr(stderr: std::process::ChildStderr) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["message"] == "listening" {
                let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("a JSON 'listening' log line")
}

#[test]
fn systemd_analyze_verify_passes() {
    let Some(analyze) = common::require_tool("systemd-analyze") else {
        return;
    };
    // verify insists that ExecStart's program exists: use the built binary.
    let dir = tempfile::tempdir().unwrap();
    let unit = read("deploy/systemd/larder.service")
        .replace("/usr/local/bin/larder", common::process::larder_bin());
    let path = dir.path().join("larder.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
