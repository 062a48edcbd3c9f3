//! The `tuna` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, GpuArgs, ServeConfig, ServerArgs, StoreArgs};

#[derive(Parser, Debug)]
#[command(
    name = "tuna",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TUNA_COMMIT"), ")"),
    about = "Hyperparameter tuning: random, grid and Bayesian search over local processes or Kubernetes Jobs"
)]
pub struct Cli {
    /// Log filter for tuna's own diagnostics (e.g. `info`, `tuna=debug`).
    #[arg(long, global = true, env = "TUNA_LOG", default_value = "warn", value_name = "FILTER")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an experiment end to end on this machine, no server needed (resumes it if interrupted).
    Run {
        /// The experiment document (YAML or JSON); trial.workingDir is relative to its folder.
        file: PathBuf,
        /// Discard a stored experiment of the same name and start over.
        #[arg(long)]
        fresh: bool,
        /// How many leaderboard rows to print at the end.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Afterwards, promote the best trial and serve it (spec.promotion.serve) until Ctrl-C.
        #[arg(long)]
        serve: bool,
        /// Open the dashboard on a loopback port during the run (its URL is printed); it stays
        /// up after the run until Ctrl-C.
        #[arg(long)]
        ui: bool,
        /// The dashboard's port with --ui (0: any free port).
        #[arg(long, default_value_t = 0, requires = "ui")]
        ui_port: u16,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        gpus: GpuArgs,
    },
    /// Check an experiment document and report every problem in it.
    Validate {
        /// The experiment document (YAML or JSON).
        file: PathBuf,
    },
    /// Run the REST API and the controller for every stored experiment.
    Serve(ServeConfig),
    /// Print the `Experiment` CustomResourceDefinition (what deploy/crd.yaml holds).
    Crd,
    /// Print the Job the kubernetes executor would create for the first trial of FILE (and, when
    /// the spec serves on Kubernetes, the Deployment, Service and autoscaler a promotion applies).
    Render {
        /// The experiment document (YAML or JSON).
        file: PathBuf,
        /// The namespace the Job is rendered in.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
    /// Send an experiment document to the server.
    Submit {
        /// The experiment document (YAML or JSON), checked here first as `tuna validate` does.
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the experiments (from the server, or the data dir).
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one experiment's status (from the server, or the data dir).
    Get {
        /// The experiment's name (metadata.name).
        name: String,
        /// Print the whole stored object (spec and status) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show an experiment's trials ranked by the objective (from the server, or the data dir).
    Leaderboard {
        /// The experiment's name (metadata.name).
        name: String,
        /// Show only the best N trials.
        #[arg(long)]
        top: Option<usize>,
        /// table for people (6 significant digits); json or csv (every digit) for programs.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Redraw every 2 s until the experiment ends.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List an experiment's trials in index order (from the server, or the data dir).
    Trials {
        /// The experiment's name (metadata.name).
        name: String,
        /// table for people; json or csv (every digit) for programs.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a trial's output (from the server, or the data dir).
    Logs {
        /// The experiment's name (metadata.name).
        name: String,
        /// The trial's name, e.g. quickstart-0003 (see `tuna trials`).
        trial: String,
        /// Keep printing until the trial ends.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Stop an experiment (its running trials are stopped).
    Stop {
        /// The experiment's name (metadata.name).
        name: String,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Resume a stopped or finished experiment.
    Resume {
        /// The experiment's name (metadata.name).
        name: String,
        /// Raise the trial budget.
        #[arg(long)]
        max_trials: Option<u32>,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        gpus: GpuArgs,
    },
    /// Stop an experiment's trials and remove its records.
    Delete {
        /// The experiment's name (metadata.name).
        name: String,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Promote a trial's model (the best when --trial is not given) to serving.
    Promote {
        /// The experiment's name (metadata.name).
        name: String,
        /// The trial whose model to serve (default: the leaderboard's first).
        #[arg(long)]
        trial: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Serve an earlier model version again (the one before the current by default).
    Rollback {
        /// The experiment's name (metadata.name).
        name: String,
        /// The version, e.g. v1.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show an experiment's promotion history and what is served (from the server, or the data
    /// dir).
    Promotions {
        /// The experiment's name (metadata.name).
        name: String,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Draw one of the dashboard's plots of an experiment as an SVG or PNG file (from the server,
    /// or the data dir).
    Plot {
        /// The experiment's name (metadata.name).
        name: String,
        /// history: objective per trial and best so far; parallel: parallel coordinates;
        /// importance: each parameter's share of the variance; slice: objective against each
        /// parameter; intermediate: each trial's objective metric by step.
        #[arg(long, value_enum, default_value_t = PlotKind::History)]
        kind: PlotKind,
        /// The file to write: .svg, or .png (drawn from the SVG with the system's fonts).
        #[arg(long, short)]
        output: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a shell completion script, e.g. `tuna completions bash > /etc/bash_completion.d/tuna`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The settings this command was given (`log` is the global flag); the flags a command does
    /// not take stay unset.
    pub fn config(&self, log: &str) -> Config {
        let base = Config { log: log.to_string(), ..Config::default() };
        let client = |server: &ServerArgs, store: Option<&StoreArgs>| Config {
            server: server.server.clone(),
            ca_cert: server.ca_cert.clone(),
            token: server.token.clone(),
            data_dir: store.and_then(|s| s.data_dir.clone()),
            ..base.clone()
        };
        match self {
            Command::Run { store, gpus, .. } => {
                Config { data_dir: store.data_dir.clone(), gpus: gpus.gpus.clone(), ..base.clone() }
            }
            Command::Serve(serve) => Config {
                data_dir: serve.store.data_dir.clone(),
                gpus: serve.gpus.gpus.clone(),
                token: serve.token.clone(),
                ..base.clone()
            },
            Command::Submit { server, .. } => client(server, None),
            Command::Resume { server, store, gpus, .. } => {
                Config { gpus: gpus.gpus.clone(), ..client(server, Some(store)) }
            }
            Command::List { server, store }
            | Command::Get { server, store, .. }
            | Command::Leaderboard { server, store, .. }
            | Command::Trials { server, store, .. }
            | Command::Logs { server, store, .. }
            | Command::Stop { server, store, .. }
            | Command::Delete { server, store, .. }
            | Command::Promote { server, store, .. }
            | Command::Rollback { server, store, .. }
            | Command::Promotions { server, store, .. }
            | Command::Plot { server, store, .. } => client(server, Some(store)),
            Command::Validate { .. } | Command::Crd | Command::Render { .. } | Command::Completions { .. } => base,
        }
    }
}

/// How a listing is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// The plots `tuna plot` draws (the dashboard's, from the same `/plots/*` data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlotKind {
    History,
    Parallel,
    Importance,
    Slice,
    Intermediate,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_command_and_argument_has_help_text() {
        let cli = Cli::command();
        let mut missing = Vec::new();
        for command in std::iter::once(&cli).chain(cli.get_subcommands()) {
            if command.get_about().is_none() && command.get_name() != "tuna" {
                missing.push(command.get_name().to_string());
            }
            for arg in command.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
                if arg.get_help().is_none() {
                    missing.push(format!("{} {}", command.get_name(), arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
