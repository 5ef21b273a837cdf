use std::io::Write;

use std::path::Path;

use super::*;

fn file_with(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn load_text(text: &str) -> Result<Config, ConfigError> {
    let f = file_with(text);
    Config::load(Some(f.path()), &Overrides::default())
}

#[test]
fn defaults_work_with_no_file() {
    let c = Config::load(None, &Overrides::default()).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:5000");
    assert_eq!(c.storage.data_dir, PathBuf::from("./larder-data"));
    assert_eq!(c.storage.max_size, Size(10 << 30));
}

#[test]
fn file_values_override_defaults_and_flags_override_the_file() {
    let f = file_with("[storage]\nmax_size = \"512MiB\"\ndata_dir = \"/srv/larder\"\n");
    let c = Config::load(Some(f.path()), &Overrides::default()).unwrap();
    assert_eq!(c.storage.max_size, Size(512 << 20));
    assert_eq!(c.storage.data_dir, PathBuf::from("/srv/larder"));

    let flags = Overrides {
        max_size: Some(Size(1 << 30)),
        ..Overrides::default()
    };
    let c = Config::load(Some(f.path()), &flags).unwrap();
    assert_eq!(c.storage.max_size, Size(1 << 30));
    assert_eq!(c.storage.data_dir, PathBuf::from("/srv/larder"));
}

#[test]
fn integer_sizes_and_durations_are_bytes_and_seconds() {
    let c = load_text("[storage]\nmax_size = 4096\n[server]\nshutdown_timeout = 7\n").unwrap();
    assert_eq!(c.storage.max_size, Size(4096));
    assert_eq!(c.server.shutdown_timeout, Span::secs(7));
}

#[test]
fn an_unknown_key_is_an_error_that_names_it() {
    let err = load_text("[storage]\nmax_sise = \"1GiB\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_sise"), "{err}");
    let err = load_text("[storrage]\n").unwrap_err().to_string();
    assert!(err.contains("storrage"), "{err}");
}

#[test]
fn bad_values_name_the_key_and_the_reason() {
    let cases = [
        (
            "[storage]\nmax_size = \"lots\"\n",
            "storage.max_size",
            "not a size",
        ),
        ("[storage]\nmax_size = -5\n", "storage.max_size", "negative"),
        (
            "[storage]\nmax_size = 0\n",
            "storage.max_size",
            "greater than 0",
        ),
        (
            "[storage]\ndata_dir = \"\"\n",
            "storage.data_dir",
            "must not be empty",
        ),
        (
            "[server]\nlisten = \"nowhere\"\n",
            "server.listen",
            "socket address",
        ),
        (
            "[server]\nshutdown_timeout = \"soon\"\n",
            "server.shutdown_timeout",
            "not a duration",
        ),
        (
            "[server]\nshutdown_timeout = \"0s\"\n",
            "server.shutdown_timeout",
            "greater than 0",
        ),
        ("[log]\nformat = \"xml\"\n", "log.format", "xml"),
        (
            "[log]\nlevel = \"larder=loud\"\n",
            "log.level",
            "not a tracing filter",
        ),
    ];
    for (text, key, why) in cases {
        let err = load_text(text).unwrap_err().to_string();
        assert!(err.contains(key), "{text:?}: {err:?} should name {key}");
        assert!(err.contains(why), "{text:?}: {err:?} should say {why:?}");
    }
}

#[test]
fn a_missing_config_file_is_an_error() {
    let err = Config::load(
        Some(Path::new("/nonexistent/larder.toml")),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/larder.toml"));
}

#[test]
fn printed_config_parses_back_to_the_same_config() {
    let c = load_text("[storage]\nmax_size = \"3GiB\"\n[server]\nshutdown_timeout = \"90s\"\n")
        .unwrap();
    let again = load_text(&c.to_toml()).unwrap();
    assert_eq!(c, again);
}

/// `config/larder.toml` must document every key, with its default value.
#[test]
fn the_documented_config_file_lists_every_key_at_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/larder.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let documented: toml::Table = toml::from_str(&text).unwrap();
    let defaults: toml::Table = toml::from_str(&Config::default().to_toml()).unwrap();
    for (section, keys) in &defaults {
        let keys = keys.as_table().unwrap();
        for key in keys.keys() {
            let env = format!(
                "{ENV_PREFIX}{}__{}",
                section.to_uppercase(),
                key.to_uppercase()
            );
            assert!(
                text.contains(&env),
                "config/larder.toml does not name {env}"
            );
        }
    }
    let parsed = Config::load(Some(&path), &Overrides::default()).unwrap();
    assert_eq!(
        parsed,
        Config::default(),
        "config/larder.toml must show the defaults"
    );
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        defaults.keys().collect::<Vec<_>>()
    );
}

#[test]
fn connection_limits_load_and_refuse_zero() {
    let c = load_text(
        "[server]\nheader_read_timeout = \"5s\"\nkeep_alive_timeout = \"1m\"\n\
         min_body_rate = \"0\"\nbody_rate_window = \"10s\"\nmax_connections = 64\n",
    )
    .unwrap();
    assert_eq!(c.server.header_read_timeout, Span::secs(5));
    assert_eq!(c.server.keep_alive_timeout, Span::secs(60));
    assert_eq!(
        c.server.min_body_rate,
        Size(0),
        "0 turns the rate check off"
    );
    assert_eq!(c.server.body_rate_window, Span::secs(10));
    assert_eq!(c.server.max_connections, 64);
    for key in [
        "header_read_timeout = \"0s\"",
        "keep_alive_timeout = 0",
        "body_rate_window = \"0s\"",
        "max_connections = 0",
    ] {
        let err = load_text(&format!("[server]\n{key}\n"))
            .unwrap_err()
            .to_string();
        let name = key.split(' ').next().unwrap();
        assert!(err.contains(&format!("server.{name}")), "{key}: {err}");
        assert!(err.contains("greater than 0"), "{key}: {err}");
    }
}

#[test]
fn the_old_gc_grace_key_still_loads_as_the_lease_with_a_warning() {
    let c = load_text("[gc]\ngrace = \"2m\"\n").unwrap();
    assert_eq!(c.gc.lease, Span::secs(120));
    assert_eq!(c.deprecated.len(), 1, "{:?}", c.deprecated);
    assert!(c.deprecated[0].contains("gc.lease"), "{:?}", c.deprecated);
    let c = load_text("[gc]\nlease = \"3m\"\n").unwrap();
    assert_eq!(c.gc.lease, Span::secs(180));
    assert!(c.deprecated.is_empty());
}

#[test]
fn the_hard_limit_defaults_to_a_tenth_above_the_budget_and_may_not_be_below_it() {
    let c = load_text("[storage]\nmax_size = \"100MiB\"\n").unwrap();
    assert_eq!(c.storage.hard_limit(), 110 << 20);
    let c = load_text("[storage]\nmax_size = \"100MiB\"\nhard_limit = \"100MiB\"\n").unwrap();
    assert_eq!(c.storage.hard_limit(), 100 << 20);
    let e = load_text("[storage]\nmax_size = \"100MiB\"\nhard_limit = \"99MiB\"\n").unwrap_err();
    assert!(e.to_string().starts_with("storage.hard_limit:"), "{e}");
}

#[test]
fn tls_cert_and_key_come_together() {
    let err = load_text("[server]\ntls_cert = \"/etc/tls.crt\"\n").unwrap_err();
    assert!(err.to_string().contains("server.tls_key"), "{err}");
    let err = load_text("[server]\ntls_key = \"/etc/tls.key\"\n").unwrap_err();
    assert!(err.to_string().contains("server.tls_cert"), "{err}");
    let c = load_text("[server]\ntls_cert = \"/a.crt\"\ntls_key = \"/a.key\"\n").unwrap();
    assert!(c.server.tls());
    assert!(!load_text("").unwrap().server.tls());
}

#[test]
fn the_reapi_default_namespace_loads_and_must_be_a_namespace() {
    let c = Config::load(None, &Overrides::default()).unwrap();
    assert_eq!(c.reapi.default_namespace, "default");
    let c = load_text("[reapi]\ndefault_namespace = \"bazel-ci\"\n").unwrap();
    assert_eq!(c.reapi.default_namespace, "bazel-ci");
    for bad in ["", "a/b", ".hidden", "sp ace"] {
        let err = load_text(&format!("[reapi]\ndefault_namespace = {bad:?}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("reapi.default_namespace"), "{bad:?}: {err}");
    }
}

#[test]
fn cluster_mode_needs_its_engines_and_never_prints_the_secret() {
    let base = "[cluster]\nenabled = true\n[cluster.postgres]\nurl = \"host=db\"\n";
    let err = load_text(base).unwrap_err().to_string();
    assert!(err.starts_with("cluster.s3.bucket:"), "{err}");
    let err = load_text(&format!(
        "{base}[cluster.s3]\nbucket = \"b\"\nendpoint = \"http://minio:9000\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("allow_http"), "{err}");
    let err = load_text("[cluster]\nenabled = true\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cluster.postgres.url:"), "{err}");

    let c = load_text(&format!(
        "{base}[cluster.s3]\nbucket = \"b\"\nendpoint = \"http://minio:9000\"\n\
         allow_http = true\naccess_key_id = \"larder\"\nsecret_access_key = \"s3cr3t\"\n"
    ))
    .unwrap();
    assert_eq!(c.cluster.s3.secret_access_key.as_deref(), Some("s3cr3t"));
    let shown = c.to_toml();
    assert!(shown.contains("access_key_id = \"larder\""), "{shown}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
}
