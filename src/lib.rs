//! tuna: a hyperparameter tuning service. Modules from the bottom row up (each imports only rows
//! below it; see `../shared/DESIGN.md`).

/// What users write: the `Experiment` document, its parsing and its one validator.
pub mod spec;

/// The search space and the assignments drawn from it, on the unit cube.
pub mod space;
/// Trials, their phases and observations.
pub mod trial;

/// Running trials: the `Executor` trait and local processes.
pub mod executor;
/// Ranking trials and rendering the ranking.
pub mod leaderboard;
/// Reading metrics from trial output; objective strategies.
pub mod metrics;
/// Search algorithms: random, grid and Bayesian (Gaussian process, log-EI).
pub mod search;
/// The sled store.
pub mod store;
/// Per-trial tokens for pushed metrics.
pub mod token;

/// The experiment core: one experiment's life as a pure state machine (events in, commands out),
/// with every rule about budgets, verdicts, phases and end reasons.
pub mod experiment;

/// The REST API (axum).
pub mod api;
/// The experiment loop, and the supervisor that runs every stored experiment.
pub mod controller;
/// Promotion of a trial's model to serving: versions, the gate, rollback.
pub mod promote;

/// The typed HTTP client of the API.
pub mod client;
/// Configuration shared by every command.
pub mod config;
/// Diagnostics.
pub mod telemetry;

/// The composition root: builds store, executor and controller for a command.
pub mod app;
/// The command line.
pub mod cli;
