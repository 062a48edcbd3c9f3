//! Every wire struct of the REST API, request and response bodies alike: the handlers write them,
//! `client.rs` reads them, so the two sides share one definition of each body.
//!
//! ```text
//! handler ──▶ types::X ──serde──▶ JSON ──serde──▶ types::X ──▶ client ──▶ CLI
//! ```
//! The JSON is the contract. An answer field that is absent is written as `null` (no
//! `skip_serializing_if`) wherever the handlers wrote `null` before; a request field the client
//! leaves out is omitted, not sent as `null`. Bodies already typed elsewhere (the experiment,
//! trials, observations, the leaderboard, promotions) are re-exported here, not copied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::leaderboard::{Leaderboard, ObjectiveRef, Row};
pub use crate::plots::{History, Importance, Intermediate, Parameters};
pub use crate::space::{Assignment, ParamValue};
pub use crate::spec::{Experiment, ExperimentPhase, Problem, Serving, TrialCounts};
pub use crate::store::Promotion;
pub use crate::trial::{Observation, Trial, TrialPhase};

// ── experiments ─────────────────────────────────────────────────────────────────────────────────

/// `GET /api/v1/experiments`: one summary per experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExperimentList {
    pub experiments: Vec<ExperimentSummary>,
}

/// One line of the experiment list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSummary {
    pub name: String,
    pub phase: ExperimentPhase,
    pub algorithm: String,
    pub max_trials: u32,
    pub trials: TrialCounts,
    /// `null` until a trial succeeded.
    pub best_objective: Option<f64>,
    /// When the experiment first ran (RFC 3339); `null` before.
    #[serde(default)]
    pub start_time: Option<String>,
}

/// `POST …/resume`: what a resume may change (an empty body changes nothing).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResumeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trials: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_trials: Option<u32>,
}

/// `DELETE /api/v1/experiments/{name}`: removed (200), or still stopping its trials (202).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum DeleteAnswer {
    Deleted(Deleted),
    Deleting(Deleting),
}

/// The 200 answer to a delete: the experiment and its records are gone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Deleted {
    pub deleted: String,
}

/// The 202 answer to a delete: the controller is still stopping the experiment's trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Deleting {
    pub deleting: String,
    pub message: String,
}

// ── trials ──────────────────────────────────────────────────────────────────────────────────────

/// `GET …/trials`: every trial of an experiment, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrialList {
    pub trials: Vec<Trial>,
    /// Where the next page starts (`?after=` this), when more trials follow; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u32>,
    /// The experiment's revision as of this answer (taken before it was read): `?since=` this
    /// later answers only the trials changed after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// With `?since=`: false when `trials` holds only the trials changed since (to merge by
    /// `index`), true when the revision is not one this server can answer from and this is a full
    /// read (page on with `?after=` as without `since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<bool>,
}

/// `GET …/trials/{trial}`: the stored trial with where its output is and how long it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialView {
    #[serde(flatten)]
    pub trial: Trial,
    /// `<dir>/output`; `null` while the trial has no folder.
    pub output_dir: Option<String>,
    /// Until now for a running trial; `null` before it started.
    pub duration_seconds: Option<f64>,
}

/// `GET …/trials/{trial}/observations`: every value the trial reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ObservationList {
    pub trial: String,
    pub observations: Vec<Observation>,
    /// Where the next page starts (`?after=` this), when more observations follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

// ── ask, tell and push ──────────────────────────────────────────────────────────────────────────

/// `POST …/suggestions`: how many new trials to ask for (1 when the body is empty).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    #[serde(default = "one")]
    pub count: usize,
}

fn one() -> usize {
    1
}

/// The answer to an ask: the trials created for it (none when the budget or the parallelism is
/// spent, or the experiment has ended).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Suggestions {
    pub trials: Vec<Suggestion>,
}

/// One new trial: its name (for the tell) and the parameters to evaluate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Suggestion {
    pub name: String,
    pub parameters: Assignment,
}

/// `POST …/trials/{trial}/complete`: a trial's final metrics, or its failure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TellRequest {
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Where the trial's model is (`s3://…`, a path on a shared volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// `succeeded` (default) or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to a tell: the trial's phase and objective as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TellAnswer {
    pub name: String,
    pub phase: TrialPhase,
    /// `null` when the trial failed or reported no objective.
    pub objective: Option<f64>,
}

/// `POST …/trials/{trial}/metrics`: metrics a running trial pushes with its own token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    /// Where the trial's model is (`s3://…`, a path on a shared volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
}

/// The answer to a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushAnswer {
    /// Whether the trial should stop now: the experiment's early-stopping rule stopped it.
    pub should_stop: bool,
}

/// `POST …/trials/{trial}/report`: an external (ask/tell) trial's values at one step; the answer
/// is a [`PushAnswer`] (`shouldStop`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    pub step: i64,
    pub metrics: BTreeMap<String, f64>,
}

// ── promotions ──────────────────────────────────────────────────────────────────────────────────

/// `POST …/promote`: the trial to serve (the best when absent).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<String>,
}

/// `POST …/rollback`: the version to serve again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// `v2` or `2` (free-form: the handler says which values it takes); the version before the
    /// current when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<serde_json::Value>,
}

/// The answer to a promote or a rollback, once the promoter carried it out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PromoteAnswer {
    /// `v1`, `v2`, …; `null` when the outcome named no version.
    pub version: Option<String>,
    pub message: String,
    /// What is served now; `null` when nothing is.
    pub serving: Option<Serving>,
}

/// `GET …/promotions`: the promotion history and what is served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PromotionHistory {
    pub experiment: String,
    /// `null` when nothing is served.
    pub serving: Option<Serving>,
    pub promotions: Vec<Promotion>,
}

// ── errors ──────────────────────────────────────────────────────────────────────────────────────

/// Every error answer: `{"error": {"code", "message", "field", "problems"}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, in a sentence a user can act on, and where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The field path at fault (`spec.maxTrials`, `count`); `null` when no field is.
    pub field: Option<String>,
    /// Every problem of an invalid document (code `Invalid`); `null` otherwise.
    pub problems: Option<Vec<Problem>>,
}

/// The kind of error, one per HTTP status the API answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Invalid,
    Internal,
    MethodNotAllowed,
    TooLarge,
    UnsupportedMediaType,
    Timeout,
    TooManyRequests,
    /// A code this client does not know (from a newer server); the message still reads.
    #[serde(other)]
    Unknown,
}

#[cfg(test)]
mod tests;
