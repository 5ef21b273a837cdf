//! `larder cluster migrate` and `larder cluster status`: talk to the
//! cluster's PostgreSQL directly, with the same `[cluster]` config the
//! replicas use.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::cluster::objects::Objects;
use crate::cluster::{self, pg, schema, status, ClusterError};
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Bring the database's schema to this binary's version (idempotent;
    /// safe while replicas start: concurrent runs apply each step once).
    Migrate(ClusterArgs),
    /// Show the schema version, the leader, whether the bucket answers, the
    /// replicas seen and usage.
    Status(StatusArgs),
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// The replicas' TOML config file (its [cluster.postgres] is used).
    #[arg(long, env = "LARDER_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ClusterArgs,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: ClusterCommand) -> ExitCode {
    let args = match &command {
        ClusterCommand::Migrate(a) => a,
        ClusterCommand::Status(s) => &s.config,
    };
    let config = match load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("larder cluster: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("larder cluster: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(&config, &command)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("larder cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(args: &ClusterArgs) -> Result<Config, crate::config::ConfigError> {
    let config = Config::load_unchecked(args.config.as_deref(), &Default::default())?;
    config.cluster.validate_postgres()?;
    Ok(config)
}

async fn execute(config: &Config, command: &ClusterCommand) -> Result<String, ClusterError> {
    let replica = cluster::replica_id(&config.cluster);
    let settings = pg::settings(&config.cluster.postgres, &format!("larder-cli/{replica}"))?;
    let mut client = pg::connect(&settings).await?;
    match command {
        ClusterCommand::Migrate(_) => {
            let m = schema::migrate(
                &mut client,
                &format!("larder {} on {replica}", env!("CARGO_PKG_VERSION")),
            )
            .await?;
            Ok(if m.from == m.to {
                format!("schema already at version {}\n", m.to)
            } else {
                format!("schema migrated from version {} to {}\n", m.from, m.to)
            })
        }
        ClusterCommand::Status(args) => {
            let s3 = &config.cluster.s3;
            let objects = if s3.bucket.is_empty() {
                None
            } else {
                Some(Objects::open(s3)?)
            };
            let s = status::gather(
                &client,
                objects.as_ref(),
                config.cluster.heartbeat_interval.0,
            )
            .await?;
            Ok(if args.json {
                serde_json::to_string_pretty(&s).unwrap_or_default() + "\n"
            } else {
                s.render()
            })
        }
    }
}
