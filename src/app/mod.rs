//! The composition root: each command builds what it needs (store, executor, controller, API,
//! client) here, and nowhere else.

mod cluster;
mod endpoint;
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
    crate::telemetry::init(&cli.log);
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
    let config = &cli.command.config(&cli.log);
    match cli.command {
        Command::Run { file, fresh, top, serve, ui, ui_port, .. } => {
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
        command => match stored::route(config, &command)? {
            stored::Route::Server => remote::execute(config, command).await,
            stored::Route::Run(run) => stored::through_run(&run, command).await,
            stored::Route::Store(data_dir) => {
                let config = crate::config::Config { data_dir: Some(data_dir.clone()), ..config.clone() };
                stored::answer(&config, &data_dir, command).await
            }
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
    match open_waiting(data_dir) {
        Err(e) if crate::store::snapshot::held_by_another(&e) => match endpoint::find(data_dir) {
            Some(run) => Err(e).context(format!(
                "the data dir {} is held by `tuna run` (pid {}) running experiment {}: wait for it, stop it \
                 (`tuna stop {}`), or give this one its own --data-dir",
                data_dir.display(),
                run.pid,
                run.experiment,
                run.experiment
            )),
            None => Err(e).context("failed to open the store"),
        },
        opened => opened.context("failed to open the store"),
    }
}

/// Opens the store, waiting out a command that reads it from another terminal (it holds the lock
/// for milliseconds) rather than refusing at once; a process that keeps it (a run, a server) is
/// still refused, after [`STORE_BUSY_WAIT`].
fn open_waiting(data_dir: &Path) -> crate::store::Result<Store> {
    let deadline = std::time::Instant::now() + STORE_BUSY_WAIT;
    loop {
        match Store::open(data_dir) {
            Err(e) if crate::store::snapshot::held_by_another(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            opened => return opened,
        }
    }
}

/// How long a command that writes the store waits for another process to let go of it.
const STORE_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

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
