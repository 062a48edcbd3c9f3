//! The `tuna` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app;
use crate::config::Config;

#[derive(Parser, Debug)]
#[command(name = "tuna", version, about = "Hyperparameter tuning: random and grid search over local trial processes")]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an experiment end to end on this machine (resumes it if it was interrupted).
    Run {
        /// The experiment document (YAML or JSON).
        file: PathBuf,
        /// Discard a stored experiment of the same name and start over.
        #[arg(long)]
        fresh: bool,
        /// How many leaderboard rows to print at the end.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Check an experiment document and report every problem in it.
    Validate { file: PathBuf },
    /// Show an experiment's trials ranked by the objective.
    Leaderboard {
        name: String,
        #[arg(long)]
        top: Option<usize>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Parses the command line, runs the command and turns its result into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init(&cli.config.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::execute(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
