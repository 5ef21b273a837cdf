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
    /// Check (and with --repair, fix) a data dir offline: index against files,
    /// accounting, pins, upload sessions. Exits non-zero if problems remain.
    Fsck(FsckArgs),
}

#[derive(Args, Debug)]
pub struct FsckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
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
}

impl ConfigArgs {
    fn load(&self) -> Result<Config, crate::config::ConfigError> {
        let overrides = Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            max_size: self.max_size,
            log_format: self.log_format,
        };
        Config::load(self.config.as_deref(), &overrides)
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
            logging::init(config.log.format, &config.log.level);
            serve(config)
        }
        Command::Config(ConfigCommand::Print(args)) => match args.load() {
            Ok(c) => {
                print!("{}", c.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Fsck(args) => match args.config.load() {
            Ok(c) => crate::fsck_cmd::run(&c, args.repair, args.verify_content, args.json),
            Err(e) => config_error(&e),
        },
        Command::Config(ConfigCommand::Check(args)) => match args.load() {
            Ok(_) => {
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
        let server = server::Server::bind(config).await?;
        server.run(server::shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("larder: {e:#}");
            ExitCode::FAILURE
        }
    }
}
