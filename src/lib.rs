//! tuna: a hyperparameter tuning service. Modules from the bottom row up: each names only modules
//! of rows below its own. The rows, the data flow and the experiment core's state machines are in
//! `ARCHITECTURE.md`; `tests/layers.rs` checks the rows.

// Row 0
/// What users write: the `Experiment` document, its parsing and its one validator; the
/// experiment's phase machine and end reasons.
pub mod spec;

// Row 1
/// The search space and the assignments drawn from it, on the unit cube.
pub mod space;

// Row 2
/// The Prometheus instruments kept in memory, moved where things happen, served by `/metrics`.
pub mod instruments;
/// Per-trial tokens for pushed metrics.
pub mod token;
/// Trials, their phases, reasons and observations; how an attempt ended.
pub mod trial;

// Row 3
/// Ranking trials and rendering the ranking; a trial's outcome in one line.
pub mod leaderboard;
/// Reading metrics from trial output; objective strategies.
pub mod metrics;
/// Plot-ready data about an experiment: history, parameters, importance, learning curves.
pub mod plots;
/// Search algorithms: random, grid and Bayesian (Gaussian process, log-EI).
pub mod search;
/// Early-stopping rules (median, ASHA) over trials' intermediate reports: pure decisions.
pub mod stopping;

// Row 4
/// Running one attempt of a trial: the `Executor` trait, local processes and Kubernetes Jobs.
pub mod executor;
/// The experiment core: one experiment's life as a pure state machine (events in, commands out),
/// with every rule about budgets, verdicts, phases and end reasons.
pub mod experiment;
/// The sled store.
pub mod store;

// Row 5
/// The REST API (axum) and its wire types.
pub mod api;
/// The shells around the core: the experiment loop, the supervisor, ask/tell review, the CR
/// reconciler.
pub mod controller;
/// Promotion of a trial's model to serving: versions, the gate, rollback.
pub mod promote;

// Row 6
/// The typed HTTP client of the API.
pub mod client;
/// Configuration shared by every command.
pub mod config;
/// Diagnostics.
pub mod telemetry;

// Row 7
/// The command line (clap types).
pub mod cli;

// Row 8
/// The composition root: builds store, executor and controller for a command; runs the CLI.
pub mod app;
