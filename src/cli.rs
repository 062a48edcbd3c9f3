//! The `tuna` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ServeConfig};

#[derive(Parser, Debug)]
#[command(
    name = "tuna",
    version,
    about = "Hyperparameter tuning: random, grid and Bayesian search over local processes or Kubernetes Jobs"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an experiment end to end on this machine, no server needed (resumes it if interrupted).
    Run {
        /// The experiment document (YAML or JSON).
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
    },
    /// Check an experiment document and report every problem in it.
    Validate { file: PathBuf },
    /// Run the REST API and the controller for every stored experiment.
    Serve(ServeConfig),
    /// Print the `Experiment` CustomResourceDefinition (what deploy/crd.yaml holds).
    Crd,
    /// Print the Job the kubernetes executor would create for the first trial of FILE (and, when
    /// the spec serves on Kubernetes, the Deployment, Service and autoscaler a promotion applies).
    Render {
        file: PathBuf,
        /// The namespace the Job is rendered in.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
    /// Send an experiment document to the server.
    Submit { file: PathBuf },
    /// List the server's experiments.
    List,
    /// Show one experiment's status (`--json` for the whole object).
    Get {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Show an experiment's trials ranked by the objective (from the server, or the store with
    /// --data-dir).
    Leaderboard {
        name: String,
        #[arg(long)]
        top: Option<usize>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Redraw every 2 s until the experiment ends.
        #[arg(long)]
        watch: bool,
    },
    /// List an experiment's trials in index order (from the server, or the data dir).
    Trials {
        /// The experiment's name (metadata.name).
        name: String,
        /// table for people; json or csv (every digit) for programs.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print a trial's output.
    Logs {
        name: String,
        trial: String,
        /// Keep printing until the trial ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Stop an experiment (its running trials are stopped).
    Stop { name: String },
    /// Resume a stopped or finished experiment.
    Resume {
        name: String,
        /// Raise the trial budget.
        #[arg(long)]
        max_trials: Option<u32>,
    },
    /// Stop an experiment's trials and remove its records.
    Delete { name: String },
    /// Promote a trial's model (the best when --trial is not given) to serving.
    Promote {
        name: String,
        #[arg(long)]
        trial: Option<String>,
    },
    /// Serve an earlier model version again (the one before the current by default).
    Rollback {
        name: String,
        /// The version, e.g. v1.
        #[arg(long)]
        to: Option<String>,
    },
    /// Show an experiment's promotion history and what is served.
    Promotions { name: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}
