use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    larder::cli::run(larder::cli::Cli::parse())
}
