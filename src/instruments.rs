//! The Prometheus instruments: counters, gauges and histograms kept in memory and moved where things
//! happen (a reconcile, a trial's launch and end, a suggestion, an API request, an experiment
//! written to or deleted from the store). `/metrics` only encodes them; a scrape never reads the
//! store.
//!
//! ```text
//! controller ─ reconciled / trial_started / trial_ended / suggested ─┐
//! store      ─ experiment_written / experiment_deleted ──────────────┼─▶ Instruments ─▶ encode() ─▶ /metrics
//! api        ─ request ──────────────────────────────────────────────┘
//! ```
//! The controller's families sit on their own sub-registry (`tuna_controller_…`); the API's and the
//! experiments' on `tuna_…`. The full list, with types and labels, is `docs/metrics.md`.
//!
//! **Cardinality.** Only two families carry an `experiment` (and `namespace`) label:
//! `tuna_experiment_trials_running` and `tuna_experiment_best_objective`. At most
//! [`MAX_LABELLED_EXPERIMENTS`] experiments get series of their own (the first ones written since
//! the process started); the trials running of every later one are summed under
//! `experiment="_other"`, and their best objective (which cannot be summed) is not exported. A
//! deleted experiment's series are removed and its slot is freed for the next experiment written
//! for the first time (one already under `_other` stays there).
//! Every other family is labelled only by bounded sets (phase, reason, result, algorithm,
//! executor, route template, method, status class).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How many experiments get series of their own: enough for a team's working set, while a server
/// holding thousands of finished experiments still exports a few hundred series, not thousands.
pub const MAX_LABELLED_EXPERIMENTS: usize = 100;

/// The label value under which experiments beyond the cap are aggregated.
pub const OTHER: &str = "_other";

type Labels = Vec<(String, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// 100 µs to ~13 s in doublings: a cached random draw to a slow Bayesian fit, a reconcile.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// 1 s to ~1.5 days in doublings: a smoke-test trial to a long training run.
fn trial_seconds() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 18))
}

/// What is known of one experiment, for moving its gauges on the next write.
#[derive(Clone, Debug, Default, PartialEq)]
struct Known {
    phase: String,
    running: i64,
    labelled: bool,
}

/// Every instrument of the process.
pub struct Instruments {
    reconciles: Family<Labels, Counter>,
    reconcile_seconds: Histograms,
    trials_started: Family<Labels, Counter>,
    trials_ended: Family<Labels, Counter>,
    trial_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    suggestion_seconds: Histograms,
    api_seconds: Histograms,
    experiments: Family<Labels, Gauge>,
    running: Family<Labels, Gauge>,
    best: Family<Labels, FloatGauge>,
    known: Mutex<BTreeMap<String, Known>>,
    registry: Registry,
}

static GLOBAL: LazyLock<Instruments> = LazyLock::new(Instruments::new);

/// The process's instruments (what `/metrics` serves).
pub fn global() -> &'static Instruments {
    &GLOBAL
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// An experiment's namespace: the part of a resource's `namespace/name` key before the slash; ""
/// for an experiment made through the API or the CLI.
fn namespace_of(experiment: &str) -> &str {
    experiment.split_once('/').map_or("", |(ns, _)| ns)
}

impl Default for Instruments {
    fn default() -> Self {
        Self::new()
    }
}

impl Instruments {
    /// A fresh set on a registry of its own (tests make their own; the server uses [`global`]).
    pub fn new() -> Self {
        let mut this = Self {
            reconciles: Family::default(),
            reconcile_seconds: Family::new_with_constructor(seconds),
            trials_started: Family::default(),
            trials_ended: Family::default(),
            trial_seconds: Family::new_with_constructor(trial_seconds),
            suggestion_seconds: Family::new_with_constructor(seconds),
            api_seconds: Family::new_with_constructor(seconds),
            experiments: Family::default(),
            running: Family::default(),
            best: Family::default(),
            known: Mutex::new(BTreeMap::new()),
            registry: Registry::with_prefix("tuna"),
        };
        this.register();
        // Both results exist from the start at 0, so that a rate over them is defined before the
        // first error (a family with no series is not encoded at all).
        for result in ["ok", "error"] {
            let l = labels(&[("result", result)]);
            let _ = this.reconciles.get_or_create(&l);
            let _ = this.reconcile_seconds.get_or_create(&l);
        }
        this
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "api_request_duration_seconds",
            "API request durations by route template, method and status class",
            self.api_seconds.clone(),
        );
        r.register("experiments", "Experiments by phase", self.experiments.clone());
        r.register(
            "experiment_trials_running",
            "Running trials per experiment (capped, see docs/metrics.md)",
            self.running.clone(),
        );
        r.register(
            "experiment_best_objective",
            "Best objective value per experiment (capped, see docs/metrics.md)",
            self.best.clone(),
        );
        let c = r.sub_registry_with_prefix("controller");
        c.register("reconciles", "Experiment resource reconciles by result", self.reconciles.clone());
        c.register(
            "reconcile_duration_seconds",
            "Experiment resource reconcile durations by result",
            self.reconcile_seconds.clone(),
        );
        c.register("trials_started", "Trial attempts launched, by executor", self.trials_started.clone());
        c.register(
            "trials_ended",
            "Trials ended, by reason (their final phase) and executor",
            self.trials_ended.clone(),
        );
        c.register("trial_duration_seconds", "Trial run time from start to end, by reason", self.trial_seconds.clone());
        c.register(
            "suggestion_duration_seconds",
            "Time to compute suggestions, by algorithm and executor",
            self.suggestion_seconds.clone(),
        );
    }

    /// The OpenMetrics text of every instrument.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// One reconcile of an Experiment resource: `result` is `ok` or `error`.
    pub fn reconciled(&self, result: &str, seconds: f64) {
        let l = labels(&[("result", result)]);
        self.reconciles.get_or_create(&l).inc();
        self.reconcile_seconds.get_or_create(&l).observe(seconds);
    }

    /// A trial attempt launched.
    pub fn trial_started(&self, executor: &str) {
        self.trials_started.get_or_create(&labels(&[("executor", executor)])).inc();
    }

    /// A trial ended with `reason` (its final phase, snake_case), having run `seconds` when known.
    pub fn trial_ended(&self, reason: &str, executor: &str, seconds: Option<f64>) {
        self.trials_ended.get_or_create(&labels(&[("reason", reason), ("executor", executor)])).inc();
        if let Some(s) = seconds {
            self.trial_seconds.get_or_create(&labels(&[("reason", reason)])).observe(s);
        }
    }

    /// A search computed suggestions (`executor` is `external` for ask/tell).
    pub fn suggested(&self, algorithm: &str, executor: &str, seconds: f64) {
        let l = labels(&[("algorithm", algorithm), ("executor", executor)]);
        self.suggestion_seconds.get_or_create(&l).observe(seconds);
    }

    /// An API request answered: `route` is the matched template (`/api/v1/experiments/{name}`).
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let class = format!("{}xx", status / 100);
        let l = labels(&[("route", route), ("method", method), ("status", &class)]);
        self.api_seconds.get_or_create(&l).observe(seconds);
    }

    /// An experiment as written to the store: moves the phase count, its running trials and its
    /// best objective.
    pub fn experiment_written(&self, name: &str, phase: &str, running: u32, best: Option<f64>) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let labelled_now = known.values().filter(|k| k.labelled).count();
        let before = known.get(name).cloned();
        let labelled = before.as_ref().map_or(labelled_now < MAX_LABELLED_EXPERIMENTS, |k| k.labelled);
        let now = Known { phase: phase.to_string(), running: i64::from(running), labelled };
        if let Some(b) = &before {
            self.experiments.get_or_create(&labels(&[("phase", &b.phase)])).dec();
        }
        self.experiments.get_or_create(&labels(&[("phase", phase)])).inc();
        let series = self.series(name, labelled);
        self.running.get_or_create(&series).inc_by(now.running - before.map_or(0, |b| b.running));
        if labelled {
            match best {
                Some(v) => {
                    self.best.get_or_create(&series).set(v);
                }
                None => {
                    self.best.remove(&series);
                }
            }
        }
        known.insert(name.to_string(), now);
    }

    /// An experiment deleted: its series go, its phase count and running trials are taken back.
    pub fn experiment_deleted(&self, name: &str) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let Some(k) = known.remove(name) else { return };
        self.experiments.get_or_create(&labels(&[("phase", &k.phase)])).dec();
        let series = self.series(name, k.labelled);
        if k.labelled {
            self.running.remove(&series);
            self.best.remove(&series);
        } else {
            self.running.get_or_create(&series).dec_by(k.running);
        }
    }

    fn series(&self, name: &str, labelled: bool) -> Labels {
        match labelled {
            true => labels(&[("experiment", name), ("namespace", namespace_of(name))]),
            false => labels(&[("experiment", OTHER), ("namespace", "")]),
        }
    }
}

#[cfg(test)]
#[path = "instruments_tests.rs"]
mod tests;
