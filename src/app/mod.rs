//! The composition root: each command builds what it needs (store, executor, controller, API,
//! client) here, and nowhere else.

mod cluster;
mod local;
mod plot;
mod progress;
mod remote;
mod serve;
mod stored;
mod trials_view;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

pub use local::{load_document, load_spec};

use crate::cli::{Cli, Command, Format};
use crate::config::Config;
use crate::executor::local::detect_gpus;
use crate::leaderboard::Leaderboard;
use crate::spec::Experiment;
use crate::store::Store;

/// Parses the command line, runs the command and turns its result into an exit code.
pub fn main() -> ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    crate::telemetry::init(&cli.config.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
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

/// Runs one parsed command.
pub async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = &cli.config;
    match cli.command {
        Command::Run { file, fresh, top, serve, ui, ui_port } => {
            let options = local::RunOptions { fresh, top, serve, ui: ui.then_some(ui_port) };
            local::run(config, &file, options).await
        }
        Command::Validate { file } => local::validate(&file),
        Command::Serve(serve) => serve::serve(config, &serve).await,
        Command::Crd => cluster::crd(),
        Command::Render { file, namespace } => cluster::render(&file, &namespace),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "tuna", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        command => match stored::data_dir_for(config, &command)? {
            Some(data_dir) => stored::answer(&data_dir, command).await,
            None => remote::execute(config, command).await,
        },
    }
}

/// The GPUs trials may use: `--gpus`, or what `nvidia-smi` lists.
fn gpus(config: &Config) -> anyhow::Result<Vec<u32>> {
    Ok(config.gpu_list().map_err(anyhow::Error::msg)?.unwrap_or_else(detect_gpus))
}

fn open_store(data_dir: &Path) -> anyhow::Result<Store> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("failed to create the data dir {}", data_dir.display()))?;
    Store::open(data_dir).context("failed to open the store")
}

/// Returns on Ctrl-C or SIGTERM.
async fn wait_for_interrupt() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A leaderboard as the user asked to see it.
fn render(board: &Leaderboard, experiment: &Experiment, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Table => board.table(experiment),
        Format::Csv => board.csv(experiment),
        Format::Json => serde_json::to_string_pretty(board)? + "\n",
    })
}
