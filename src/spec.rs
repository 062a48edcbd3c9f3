//! What users write: the `Experiment` document (`tuna.dev/v1alpha1`), shared by `tuna run`, the REST
//! API body and the custom resource, with its one validator.
//!
//! ```text
//! YAML/JSON text ──parse──▶ serde_json::Value ──decode──▶ Experiment ──validate──▶ Ok | every problem
//!                (line:col)                  (unknown fields collected)           (field path + fix)
//! ```
//! Field meanings follow Kubeflow Katib where Katib has the field (objective, algorithm, parallel,
//! max and failed trial counts, feasible spaces); see `README.md` for the reference.

mod algorithm;
mod document;
mod duration;
#[cfg(test)]
mod fixture;
mod phase;
mod shape;
mod stopping;
mod validate;
mod wire;
mod words;

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use algorithm::AlgorithmName;
pub use document::{Problem, SpecError, from_value, parse, parse_value, read, verdict};
pub use duration::{DurationError, MAX_DURATION, parse_duration, read_duration};
pub use phase::{EndReason, ExperimentPhase};
pub use stopping::{
    DEFAULT_MIN_TRIALS_REQUIRED, DEFAULT_REDUCTION_FACTOR, DEFAULT_START_STEP, EarlyStopping, StoppingRule,
    StoppingSettings,
};
pub use validate::{Placeholders, placeholders};

/// The name of an experiment or trial inside its namespace. An experiment from a custom resource
/// is stored, addressed (`tuna get team-a/mnist`, `GET /api/v1/experiments/team-a%2Fmnist`) and
/// shown as `namespace/name`, so two namespaces may each have a `mnist`; its trials are
/// `namespace/name-0007`. Kubernetes objects, which live in that namespace, take the part after
/// the `/`. A name without one (an experiment from the API or `tuna run`) is its own.
pub fn name_in_namespace(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(_, name)| name)
}

/// The store key of a custom resource's experiment: `namespace/name` (see [`name_in_namespace`]).
pub fn namespaced_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The API group and version of every document.
pub const API_VERSION: &str = "tuna.dev/v1alpha1";
/// The default metric line format: Katib's `name=value` (a trial may also print JSON lines).
pub const DEFAULT_METRIC_FORMAT: &str = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)";

/// An experiment: a search space, an objective and the trial program that measures it.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "tuna.dev",
    version = "v1alpha1",
    kind = "Experiment",
    namespaced,
    status = "ExperimentStatus",
    shortname = "exp",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Best","type":"number","description":"best objective","jsonPath":".status.bestTrial.objective"}"#,
    printcolumn = r#"{"name":"Succeeded","type":"integer","jsonPath":".status.trials.succeeded"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.trials.failed"}"#,
    printcolumn = r#"{"name":"EarlyStopped","type":"integer","priority":1,"jsonPath":".status.trials.earlyStopped"}"#,
    printcolumn = r#"{"name":"Max","type":"integer","jsonPath":".spec.maxTrials"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSpec {
    /// The metric to optimize and how to read it.
    pub objective: Objective,
    /// The search algorithm; random when absent.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// The search space, one entry per hyperparameter.
    pub parameters: Vec<ParameterSpec>,
    /// How many trials to run in total.
    #[serde(default = "default_max_trials")]
    pub max_trials: u32,
    /// How many trials may run at once.
    #[serde(default = "default_parallel_trials")]
    pub parallel_trials: u32,
    /// The experiment fails when more trials than this have failed.
    #[serde(default = "default_max_failed_trials")]
    pub max_failed_trials: u32,
    /// Where trials run: `local` processes on this machine.
    #[serde(default)]
    pub executor: ExecutorKind,
    /// The program each trial runs.
    #[serde(default)]
    pub trial: TrialTemplate,
    /// How the trial's metrics are collected.
    #[serde(default)]
    pub metrics: MetricsSpec,
    /// Promoting the best trial's model to serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionSpec>,
    /// Stopping trials that are clearly losing before their end (median or ASHA); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStopping>,
}

/// How (and whether) a trial's model is promoted to serving.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionSpec {
    /// `auto`: the best trial when the experiment succeeds; `manual`: only on request.
    #[serde(default)]
    pub policy: PromotionPolicy,
    /// Promote only a trial whose objective passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// How the promoted model is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<ServeSpec>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PromotionPolicy {
    Auto,
    #[default]
    Manual,
}

/// Bounds a promoted trial's objective must meet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Gate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// The serving program: a local command, or (kubernetes) an image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServeSpec {
    /// Local: the server program; `${modelDir}` and `${port}` are substituted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The port clients use (local: tuna's switching proxy listens here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Kubernetes: the serving container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Kubernetes: how many serving pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Where a serving process answers 200 once it is ready (default `/healthz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_path: Option<String>,
    /// Kubernetes: a whole pod template for the serving pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object_opt")]
    pub pod_template: Option<serde_json::Value>,
    /// Kubernetes: a HorizontalPodAutoscaler between these replica counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
    /// Kubernetes: what each serving pod asks for. The CPU request is required with `autoscale`
    /// (the autoscaler scales on CPU use relative to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ServeResources>,
    /// Kubernetes: how long a rollout of a new version may go without progress before it counts
    /// as failed (a duration such as `10m`, whole seconds, default 10m; at most 30 days). It
    /// becomes the Deployment's `progressDeadlineSeconds`, so the Deployment controller reports
    /// `Progressing=False` with reason `ProgressDeadlineExceeded` when it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<String>,
}

impl ServeSpec {
    /// The rollout's progress deadline when the spec gives none: the Deployment controller's own
    /// default, so a spec without the field behaves as a plain Deployment does.
    pub const DEFAULT_PROGRESS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

    /// `progressDeadline` as a duration of whole seconds; the default when absent or refused.
    pub fn progress_deadline(&self) -> std::time::Duration {
        self.progress_deadline_seconds()
            .map_or(Self::DEFAULT_PROGRESS_DEADLINE, |s| std::time::Duration::from_secs(u64::try_from(s).unwrap_or(0)))
    }

    /// `progressDeadline` in whole seconds (a fraction rounds up, since Kubernetes counts whole
    /// seconds); the default when absent; `Err` says why the text is not a duration tuna accepts.
    pub fn progress_deadline_seconds(&self) -> Result<i32, DurationError> {
        let deadline = match self.progress_deadline.as_deref() {
            None => Self::DEFAULT_PROGRESS_DEADLINE,
            Some(text) => read_duration(text)?,
        };
        // At most MAX_DURATION (30 days), far below i32::MAX seconds.
        Ok(i32::try_from(deadline.as_secs_f64().ceil() as u64).unwrap_or(i32::MAX))
    }
}

/// A serving container's requests: `cpu` and `memory` are requested; `memory` is also its limit
/// (a pod past it is killed rather than starving its node), CPU has no limit (a limit only
/// throttles a model server under load, which the autoscaler is there to absorb).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServeResources {
    /// The CPU request, e.g. `500m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// The memory request and limit, e.g. `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Autoscale {
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// Average CPU utilization to aim for, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cpu_utilization: Option<i32>,
}

impl Gate {
    /// Why `objective` fails the gate, if it does.
    pub fn refuses(&self, objective: f64) -> Option<String> {
        match (self.min, self.max) {
            (Some(min), _) if objective < min => Some(format!("objective {objective} is below the gate's min {min}")),
            (_, Some(max)) if objective > max => Some(format!("objective {objective} is above the gate's max {max}")),
            _ => None,
        }
    }
}

fn default_max_trials() -> u32 {
    20
}
fn default_parallel_trials() -> u32 {
    1
}
fn default_max_failed_trials() -> u32 {
    3
}

/// The optimized metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Objective {
    /// The name of the metric the trial reports.
    pub metric: String,
    /// Whether larger or smaller is better.
    pub goal: Goal,
    /// Finish the experiment as soon as a trial reaches this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
    /// How one trial's value is read from its reports; `max` for maximize, `min` for minimize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Metrics recorded and shown on the leaderboard (their latest value), not optimized.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_metrics: Vec<String>,
}

impl Objective {
    /// The strategy in force: the given one, or the one that matches the goal.
    pub fn strategy(&self) -> Strategy {
        self.strategy.unwrap_or(match self.goal {
            Goal::Maximize => Strategy::Max,
            Goal::Minimize => Strategy::Min,
        })
    }

    /// Whether `a` is a better objective value than `b`.
    pub fn better(&self, a: f64, b: f64) -> bool {
        match self.goal {
            Goal::Maximize => a > b,
            Goal::Minimize => a < b,
        }
    }

    /// Whether `value` reaches the target, when there is one.
    pub fn reaches_target(&self, value: f64) -> bool {
        self.target.is_some_and(|t| match self.goal {
            Goal::Maximize => value >= t,
            Goal::Minimize => value <= t,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    Maximize,
    Minimize,
}

/// How a trial's objective is read from every value it reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Max,
    Min,
    Latest,
}

/// The search algorithm and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Algorithm {
    /// `random`, `grid` or `bayesian`.
    pub name: AlgorithmName,
    /// The same seed gives the same suggestions; a random one is chosen and recorded when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Algorithm-specific settings; unknown keys are errors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "free_form_object")]
    pub settings: BTreeMap<String, serde_json::Value>,
}

impl Default for Algorithm {
    fn default() -> Self {
        Self { name: AlgorithmName::Random, seed: None, settings: BTreeMap::new() }
    }
}

#[cfg(test)]
impl ParameterSpec {
    /// A test fixture: a `min`..`max` parameter, linear, without a step.
    pub fn range(name: &str, kind: ParameterType, min: f64, max: f64) -> Self {
        Self {
            name: name.into(),
            kind,
            min: Some(min),
            max: Some(max),
            step: None,
            scale: Scale::Linear,
            values: vec![],
        }
    }

    /// A test fixture: a parameter with a list of values.
    pub fn choices(name: &str, kind: ParameterType, values: Vec<Scalar>) -> Self {
        Self { name: name.into(), kind, min: None, max: None, step: None, scale: Scale::Linear, values }
    }
}

/// One hyperparameter and its feasible space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSpec {
    /// The name used in `${name}` placeholders and in `TUNA_PARAM_<NAME>`.
    pub name: String,
    /// `double`, `int`, `categorical` or `discrete`.
    #[serde(rename = "type")]
    pub kind: ParameterType,
    /// The lower bound (double, int).
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "whole_as_int")]
    pub min: Option<f64>,
    /// The upper bound, inclusive (double, int).
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "whole_as_int")]
    pub max: Option<f64>,
    /// The spacing of allowed values from `min`; makes a double a grid axis (int default 1).
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "whole_as_int")]
    pub step: Option<f64>,
    /// `linear` or `log` (sampled uniformly in log space; needs min > 0).
    #[serde(default, skip_serializing_if = "Scale::is_linear")]
    pub scale: Scale,
    /// The allowed values (categorical: names; discrete: ordered numbers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Scalar>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParameterType {
    Double,
    Int,
    Categorical,
    Discrete,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    #[default]
    Linear,
    Log,
}

impl Scale {
    fn is_linear(&self) -> bool {
        *self == Scale::Linear
    }
}

/// A value in a `values` list: a number or a name (YAML booleans are read as names).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(schema_with = "number_or_name")]
pub enum Scalar {
    Number(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => Ok(Scalar::Number(n.as_f64().unwrap_or(f64::NAN))),
            serde_json::Value::String(s) => Ok(Scalar::Text(s)),
            serde_json::Value::Bool(b) => Ok(Scalar::Text(b.to_string())),
            other => Err(serde::de::Error::custom(format!("expected a number or a name, found {other}"))),
        }
    }
}

/// Where trials run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// A process on this machine.
    #[default]
    Local,
    /// Run by a client: it asks `tuna serve` for suggestions and tells it the results.
    External,
    /// A `batch/v1` Job per trial on a Kubernetes cluster (`tuna serve`).
    Kubernetes,
}

/// The program a trial runs; `${name}` placeholders take the trial's parameter values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialTemplate {
    /// The program and its arguments, started without a shell.
    #[serde(default)]
    pub command: Vec<String>,
    /// The folder the program starts in, relative to the spec file's folder (default: that folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Extra environment variables; values may hold placeholders.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The longest a trial may run (`90s`, `10m`, `1h30m`); no limit when absent. On Kubernetes it
    /// counts from the trial container's start: time queued, unschedulable or pulling is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// kubernetes: the longest a trial may wait to start (queued, unschedulable, pulling its image);
    /// it then fails with StartFailed. No limit when absent: a waiting trial says why and waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<String>,
    /// Re-runs of a trial that failed for a reason outside it (killed by a signal, lost).
    #[serde(default)]
    pub retries: u32,
    /// What one trial needs.
    #[serde(default)]
    pub resources: Resources,
    /// kubernetes: the container image that runs `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// kubernetes: nodes the trial's pod may run on, by label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// kubernetes: taints the trial's pod tolerates (the Kubernetes `tolerations` list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "free_form_list")]
    pub tolerations: Vec<serde_json::Value>,
    /// kubernetes: the service account the trial's pod runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// kubernetes: labels of the trial's Job and pod, e.g. `kueue.x-k8s.io/queue-name: gpus` to
    /// queue it with Kueue (tuna's own `tuna.dev/` labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// kubernetes: annotations of the trial's Job and pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// kubernetes: a whole pod template instead of `image`; its primary container gets the
    /// command (when given), the placeholders and the `TUNA_*` environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object_opt")]
    pub pod_template: Option<serde_json::Value>,
    /// kubernetes: the container of `podTemplate` that runs the trial (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_container: Option<String>,
    /// kubernetes: seconds a finished Job is kept before Kubernetes removes it (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
    /// kubernetes: the size of a memory-backed `/dev/shm` for the trial's container (a Kubernetes
    /// quantity, e.g. `1Gi`): an emptyDir with `medium: Memory` and this `sizeLimit`, mounted at
    /// `/dev/shm`. The container runtime's default is 64Mi, too small for PyTorch's DataLoader
    /// workers, which pass batches through shared memory. The memory counts against the pod's
    /// memory limit. Absent: no volume, the runtime's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<String>,
}

/// What one trial needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// GPUs given to the trial alone: in `CUDA_VISIBLE_DEVICES` locally, `nvidia.com/gpu` on
    /// Kubernetes.
    #[serde(default)]
    pub gpu: u32,
    /// kubernetes: CPU request and limit, e.g. `500m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// kubernetes: memory request and limit, e.g. `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// How metrics are collected from a trial.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// `stdout` (the trial's output, both streams; on Kubernetes the pod's log), `file`, or `push`
    /// (HTTP with the trial's token). Default: push on Kubernetes, stdout elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<Collector>,
    /// For `file`: the file the trial writes, relative to its output directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A regular expression whose first two groups are a metric's name and value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Collector {
    #[default]
    Stdout,
    File,
    /// The trial POSTs its metrics to the API with its own token (`tuna serve` only).
    Push,
}

/// What the controller reports about an experiment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    pub phase: ExperimentPhase,
    /// Why the experiment is in its phase (`GoalReached`, `MaxTrialsReached`, `TooManyFailures`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub reason: Option<EndReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The seed in force (the spec's, or the one chosen at creation).
    #[serde(default)]
    pub seed: u64,
    /// Trial counts by phase.
    #[serde(default)]
    pub trials: TrialCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_trial: Option<BestTrial>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// The model version being served, when one was promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<Serving>,
    /// Kubernetes conditions (custom resources only): Created, Running, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "free_form_list")]
    pub conditions: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialCounts {
    pub pending: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub stopped: u32,
    pub interrupted: u32,
    /// Trials stopped early by `spec.earlyStopping` (not failures; they count toward maxTrials).
    #[serde(default)]
    pub early_stopped: u32,
}

/// What is being served.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Serving {
    /// `v1`, `v2`, …
    pub version: String,
    pub trial: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The best trial so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BestTrial {
    pub name: String,
    pub objective: f64,
    #[schemars(schema_with = "free_form_object")]
    pub parameters: serde_json::Value,
}

impl ExperimentSpec {
    /// Whether the model is served on Kubernetes (a serving image or pod template, the kubernetes
    /// executor) rather than by a local process.
    pub fn serves_on_kubernetes(&self) -> bool {
        self.executor == ExecutorKind::Kubernetes
            && self.serve().is_some_and(|s| s.image.is_some() || s.pod_template.is_some())
    }

    /// How the promoted model is served (`promotion.serve`), when the spec says.
    pub fn serve(&self) -> Option<&ServeSpec> {
        self.promotion.as_ref().and_then(|p| p.serve.as_ref())
    }

    /// The early-stopping rule in force with its settings; `None` for none (and for settings the
    /// validator refuses, which never reach a running experiment).
    pub fn stopping(&self) -> Option<StoppingSettings> {
        self.early_stopping.as_ref().and_then(|e| e.read().ok().flatten())
    }

    /// The metrics collector in force (see `MetricsSpec::collector`).
    pub fn collector(&self) -> Collector {
        self.metrics.collector.unwrap_or(match self.executor {
            ExecutorKind::Kubernetes => Collector::Push,
            ExecutorKind::Local | ExecutorKind::External => Collector::Stdout,
        })
    }
}

/// Writes whole numbers without a fraction (`1`, not `1.0`), as users write int bounds.
fn whole_as_int<S: serde::Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => s.serialize_i64(*v as i64),
        Some(v) => s.serialize_f64(*v),
        None => s.serialize_none(),
    }
}

/// Kubernetes' structural schemas cannot say "a number or a string" (int-or-string takes no
/// fractions), so the CRD lets the value through and the validator checks it.
fn number_or_name(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"description": "a number or a name", "x-kubernetes-preserve-unknown-fields": true})
}

fn free_form_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}})
}

fn free_form_object_opt(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

#[cfg(test)]
#[path = "spec/tests.rs"]
mod tests;
