//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LogFormat, Overrides, Size};
use crate::{logging, server};

#[derive(Parser, Debug)]
#[command(name = "larder", version, about = "A persistent build-cache server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve(ConfigArgs),
    /// Show or validate the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Talk to a running server's admin API.
    Admin(crate::admin_cmd::AdminArgs),
    /// Mint tokens (offline: signs with the key file, the server need not run).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check (and with --repair, fix) a data dir offline: index against files,
    /// accounting, pins, upload sessions. Exits non-zero if problems remain.
    Fsck(FsckArgs),
    /// Probe a running server: exit 0 when the URL answers 200 (the image's
    /// HEALTHCHECK; it has no shell or curl).
    Healthcheck(HealthcheckArgs),
    /// Cluster mode's database: apply migrations, show replicas and leader.
    #[command(subcommand)]
    Cluster(crate::cluster_cmd::ClusterCommand),
}

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    /// The URL to GET, http:// or https://. Without it: /readyz at the
    /// config's (file, LARDER__* env) server.listen, on 127.0.0.1 when that
    /// is a wildcard address, over https:// when the config turns TLS on.
    #[arg(long, env = "LARDER_HEALTHCHECK_URL")]
    pub url: Option<String>,
    /// For https://, verify the certificate against this PEM CA and the URL's
    /// host. Without it the certificate is not checked, as the kubelet does
    /// for HTTPS probes: the probe dials 127.0.0.1, which certificates rarely
    /// name, and sends no credentials.
    #[arg(long, env = "LARDER_HEALTHCHECK_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// The server's TOML config file, read only when --url is not given, to
    /// see whether TLS is on and on which port.
    #[arg(long, env = "LARDER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Give up after this long: resolving, connecting, the TLS handshake and
    /// the answer together.
    #[arg(long, default_value = "3s")]
    pub timeout: crate::config::Span,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; it is printed alone on the last line of stdout.
    Create(TokenCreateArgs),
}

#[derive(Args, Debug)]
pub struct TokenCreateArgs {
    #[command(flatten)]
    pub config: DataDirArgs,
    /// Namespace the token may use (repeatable); `*` means every namespace.
    #[arg(long = "namespace", required = true)]
    pub namespaces: Vec<String>,
    /// Allow reads (pull, cache hits).
    #[arg(long)]
    pub read: bool,
    /// Allow writes (push, cache saves).
    #[arg(long)]
    pub write: bool,
    /// Allow the admin API, over every namespace: requires `--namespace '*'`
    /// alone (an admin token cannot be limited to some namespaces).
    #[arg(long)]
    pub admin: bool,
    /// Allow scraping /metrics where metrics.require_token is set; needs
    /// `--namespace '*'` among the namespaces.
    #[arg(long)]
    pub metrics: bool,
    /// Lifetime, e.g. 30d, 12h.
    #[arg(long, default_value = "30d")]
    pub ttl: crate::config::Span,
    /// A name for the token (its subject), shown in logs and the admin API.
    #[arg(long, default_value = "cli")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct FsckArgs {
    #[command(flatten)]
    pub config: DataDirArgs,
    /// Fix what is found (forget unusable blobs and the entries needing them,
    /// remove orphan files, recount usage and pins).
    #[arg(long)]
    pub repair: bool,
    /// Re-hash every blob and compare it with its name.
    #[arg(long)]
    pub verify_content: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the effective configuration (defaults, file, env and flags merged) as TOML.
    Print(ConfigArgs),
    /// Validate the configuration; names the offending key on error.
    Check(ConfigArgs),
}

/// Where the config comes from, and the flags that override it.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// TOML config file (see config/larder.toml for every key).
    #[arg(long, env = "LARDER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:5000.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Data directory (blobs, index, uploads).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Disk budget, e.g. 50GiB.
    #[arg(long)]
    pub max_size: Option<Size>,
    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
}

/// Where an offline command finds the data dir (and, for `token create`,
/// the signing key): the serving flags (--listen, --max-size, --log-format)
/// would change nothing there, so they are not offered.
#[derive(Args, Debug, Clone)]
pub struct DataDirArgs {
    /// The server's TOML config file: where its data dir (and signing key) are.
    #[arg(long, env = "LARDER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The server's data directory (overrides storage.data_dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArgs {
    fn as_config_args(&self) -> ConfigArgs {
        ConfigArgs {
            config: self.config.clone(),
            listen: None,
            data_dir: self.data_dir.clone(),
            max_size: None,
            log_format: None,
            tls_cert: None,
            tls_key: None,
        }
    }

    fn load(&self) -> Result<Config, crate::config::ConfigError> {
        self.as_config_args().load()
    }

    fn load_lenient(&self) -> Result<Config, crate::config::ConfigError> {
        self.as_config_args().load_lenient()
    }
}

impl ConfigArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            max_size: self.max_size,
            log_format: self.log_format,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
        }
    }

    fn load(&self) -> Result<Config, crate::config::ConfigError> {
        Config::load(self.config.as_deref(), &self.overrides())
    }

    /// The config without the checks that only matter to a serving process.
    fn load_lenient(&self) -> Result<Config, crate::config::ConfigError> {
        Config::load_unchecked(self.config.as_deref(), &self.overrides())
    }
}

/// Exit status for a configuration that does not validate.
const EXIT_CONFIG: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => {
            let config = match args.load() {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            let _log_guard = logging::init(config.log.format, &config.log.level);
            for warning in &config.deprecated {
                tracing::warn!("{warning}");
            }
            serve(config)
        }
        Command::Config(ConfigCommand::Print(args)) => match args.load() {
            Ok(c) => {
                print!("{}", c.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Token(TokenCommand::Create(args)) => token_create(&args),
        Command::Admin(args) => crate::admin_cmd::run(args),
        Command::Fsck(args) => match args.config.load() {
            Ok(c) => crate::fsck_cmd::run(&c, args.repair, args.verify_content, args.json),
            Err(e) => config_error(&e),
        },
        Command::Healthcheck(args) => crate::healthcheck::run(&args),
        Command::Cluster(command) => crate::cluster_cmd::run(command),
        Command::Config(ConfigCommand::Check(args)) => match args.load() {
            Ok(c) => {
                for warning in &c.deprecated {
                    eprintln!("larder: warning: {warning}");
                }
                println!("config ok");
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
    }
}

fn config_error(e: &crate::config::ConfigError) -> ExitCode {
    eprintln!("larder: invalid configuration: {e}");
    ExitCode::from(EXIT_CONFIG)
}

fn serve(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("larder: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = server::shutdown_signal();
        let server = server::Server::bind(config).await?;
        server.run(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Logging is already set up and writes to stderr: one line, in
            // the configured format (an eprintln as well printed it twice).
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn token_create(args: &TokenCreateArgs) -> ExitCode {
    // Only the storage and auth sections matter here; a listen address that
    // `serve` would refuse must not stop an operator from minting a token.
    let config = match args.config.load_lenient() {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    if !(args.read || args.write || args.admin || args.metrics) {
        eprintln!("larder token create: give at least one of --read, --write, --admin, --metrics");
        return ExitCode::from(EXIT_CONFIG);
    }
    let grants =
        match crate::auth::names::grants(&args.namespaces, args.read, args.write, args.metrics) {
            Ok(g) => g,
            Err(why) => {
                eprintln!("larder token create: {why}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
    let spec = crate::auth::TokenSpec {
        subject: args.name.clone(),
        grants,
        admin: args.admin,
        ttl_secs: args.ttl.0.as_secs(),
        parent: None,
    };
    if let Err(why) = crate::auth::names::check_token_spec(&spec) {
        eprintln!("larder token create: {why}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if let Err(why) = check_key_home(&config) {
        eprintln!("larder token create: {why}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let key_path = crate::auth::key::key_path(&config);
    let key = match crate::auth::key::load_or_create(&key_path) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("larder token create: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (token, claims) = crate::auth::token::mint(&key, &spec);
    println!(
        "# token {:?} (id {}) for namespaces {}, expires {}",
        claims.sub,
        claims.jti,
        args.namespaces.join(", "),
        crate::auth::token::rfc3339(claims.exp)
    );
    println!("{token}");
    ExitCode::SUCCESS
}

/// A key made in a directory no server uses signs tokens every server
/// refuses ("token signature is invalid"), so the key's home must be a data
/// dir a server has opened — unless `auth.signing_key_file` names the key,
/// which the operator then shares with the server on purpose.
fn check_key_home(config: &Config) -> Result<(), String> {
    if config.auth.signing_key_file.is_some() {
        return Ok(());
    }
    let dir = &config.storage.data_dir;
    let how = "pass --data-dir (or --config) naming the data dir of the server the token is \
               for, once that server has started, or set auth.signing_key_file to the key it uses";
    if !dir.is_dir() {
        return Err(format!(
            "data dir {} does not exist, so no server signs with a key there: {how}",
            dir.display()
        ));
    }
    if !crate::datadir::is_initialized(dir) {
        return Err(format!(
            "{} is not a larder data dir yet (no server has opened it), so a key made there \
             would be no server's: {how}",
            dir.display()
        ));
    }
    Ok(())
}
