//! Promotion to serving: a trial's model becomes version `vN` of its experiment's model, kept
//! under the data dir and served; rollback makes an earlier version current again.
//!
//! ```text
//! request (API, in the store) or auto (experiment succeeded) ─▶ gate ─▶ copy output to
//! models/<exp>/vN (complete before it is used) ─▶ serve vN (switch) ─▶ history + current version
//! ```
//! The promoter follows the store like the controller does: the API records a request, the
//! promoter carries it out and records the outcome the API waits for.

pub mod cluster;
pub mod serving;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use tracing::{info, warn};

pub use serving::ServingManager;

use crate::leaderboard;
use crate::spec::{ExperimentPhase, PromotionPolicy, Serving};
use crate::store::{Durability, ExperimentRecord, Promotion, PromotionOutcome, Store};
use crate::trial::{TrialPhase, parameters_json};

/// How often every experiment is looked at although no change woke the promoter (a safety net:
/// each write names the experiment it changed).
const LOOK_EVERY: Duration = Duration::from_secs(60);
/// The outcome id of the automatic promotion (user requests count from 1).
pub const AUTO: u64 = 0;

/// Carries out promotions for every experiment in a store.
pub struct Promoter {
    store: Store,
    models: PathBuf,
    serving: ServingManager,
    /// The cluster and default namespace, for experiments served on Kubernetes.
    cluster: Option<(kube::Client, String)>,
    /// Records versions without starting a model server (`tuna promote` over a data dir that no
    /// process serves: a process started here would end with the command).
    record_only: bool,
}

impl Promoter {
    pub fn new(store: Store, data_dir: &Path) -> Self {
        Self {
            store,
            models: data_dir.join("models"),
            serving: ServingManager::default(),
            cluster: None,
            record_only: false,
        }
    }

    /// Records promotions and rollbacks only: the current version is served by the next
    /// `tuna serve` (or `tuna run --serve`) over this data dir, which serves what is current.
    pub fn recording_only(mut self) -> Self {
        self.record_only = true;
        self
    }

    /// Serves Kubernetes experiments' models on this cluster.
    pub fn with_cluster(mut self, client: kube::Client, namespace: String) -> Self {
        self.cluster = Some((client, namespace));
        self
    }

    /// Serves what was being served before a restart, then follows requests until `shutdown`.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let changes = self.store.watch_experiments();
        let restore = if self.record_only { Vec::new() } else { self.store.experiments().unwrap_or_default() };
        if !self.record_only {
            serving::reap_leftovers(&self.models);
        }
        for record in restore {
            if let Some(serving) = &record.serving
                && let Some(model) = self.current_model(&record, &serving.version)
                && let Err(e) = self.serve(&record, &serving.version, &model).await
            {
                warn!(experiment = record.name(), error = %e, "failed to restore serving");
            }
        }
        let mut every = tokio::time::interval(LOOK_EVERY);
        loop {
            // Each write names the experiment it changed; a full look now and then is a safety net.
            let changed = tokio::select! {
                names = changes.next() => Some(names),
                _ = every.tick() => None,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            let records = match changed {
                Some(names) => names.iter().filter_map(|n| self.store.experiment(n).ok().flatten()).collect(),
                None => {
                    changes.take();
                    self.store.experiments().unwrap_or_default()
                }
            };
            for record in records {
                self.reconcile(&record).await;
            }
        }
        self.serving.stop_all().await;
    }

    async fn reconcile(&self, record: &ExperimentRecord) {
        let done = record.promotion_outcome.as_ref().map(|o| o.id);
        let request = record.promotion_request.clone().filter(|r| Some(r.id) != done && r.id > done.unwrap_or(AUTO));
        let (id, result) = match request {
            Some(r) => match r.rollback_to {
                Some(to) => (r.id, self.rollback(record, to, &r.by).await),
                None => (r.id, self.promote(record, r.trial.as_deref(), &r.by).await),
            },
            None if wants_auto(record) => (AUTO, self.promote(record, None, "auto").await),
            None => return,
        };
        let outcome = match result {
            Ok((version, message)) => PromotionOutcome { id, ok: true, message, version: Some(version) },
            Err(message) => PromotionOutcome { id, ok: false, message, version: None },
        };
        info!(experiment = record.name(), ok = outcome.ok, message = %outcome.message, "promotion");
        let _ = self
            .store
            .update_experiment(record.name(), Durability::Flushed, |r| r.promotion_outcome = Some(outcome.clone()));
    }

    /// Promotes `trial` (the best when `None`) as a new version; the message adds a note when the
    /// trial's ranked value came from before its last step (its saved model may be a later one).
    async fn promote(&self, record: &ExperimentRecord, trial: Option<&str>, by: &str) -> Result<(u32, String), String> {
        let name = record.name();
        let trials = self.store.trials(name).map_err(|e| e.to_string())?;
        let best = record.experiment.status.as_ref().and_then(|s| s.best_trial.as_ref()).map(|b| b.name.clone());
        let wanted = trial.map(str::to_string).or(best).ok_or("no trial has succeeded yet; nothing to promote")?;
        let chosen =
            trials.iter().find(|t| t.name == wanted).ok_or(format!("experiment {name} has no trial {wanted}"))?;
        let objective = match (chosen.phase, chosen.objective) {
            (TrialPhase::Succeeded, Some(v)) => v,
            _ => {
                return Err(format!(
                    "trial {wanted} has not succeeded ({:?}); only a succeeded trial can be promoted",
                    chosen.phase
                ));
            }
        };
        let promotion = record.experiment.spec.promotion.clone().unwrap_or_default();
        if let Some(why) = promotion.gate.as_ref().and_then(|g| g.refuses(objective)) {
            return Err(format!("the gate refuses trial {wanted}: {why}"));
        }
        let history = self.store.promotions(name).map_err(|e| e.to_string())?;
        let version = history.iter().map(|p| p.version).max().unwrap_or(0) + 1;
        let model = if cluster::serves_on_kubernetes(&record.experiment.spec) {
            let uri = self.store.artifact(name, chosen.index).map_err(|e| e.to_string())?;
            uri.ok_or(format!("trial {wanted} reported no artifact; push {{\"artifact\": URI}} with its metrics"))?
        } else {
            let output = chosen.dir.clone().ok_or(format!("trial {wanted} has no output folder"))?;
            let model = self.models.join(name).join(format!("v{version}"));
            copy_complete(&PathBuf::from(output).join("output"), &model)
                .map_err(|e| format!("failed to copy the model of {wanted}: {e}"))?;
            model.display().to_string()
        };
        let entry = Promotion {
            version,
            action: "promote".into(),
            trial: wanted.clone(),
            parameters: parameters_json(&chosen.parameters),
            objective: Some(objective),
            model,
            time: Timestamp::now(),
            by: by.into(),
        };
        let note = leaderboard::step_note(chosen, &record.experiment.spec.objective.metric);
        let (version, message) = self.make_current(record, entry).await?;
        Ok((version, note.map_or_else(|| message.clone(), |note| format!("{message}\n{note}"))))
    }

    /// Makes version `to` current again (`0`: the one before the current).
    async fn rollback(&self, record: &ExperimentRecord, to: u32, by: &str) -> Result<(u32, String), String> {
        let name = record.name();
        let history = self.store.promotions(name).map_err(|e| e.to_string())?;
        let current = record.serving.as_ref().and_then(|s| s.version.trim_start_matches('v').parse::<u32>().ok());
        let target = if to == 0 { current.and_then(|c| c.checked_sub(1)).filter(|v| *v > 0) } else { Some(to) };
        let target = target.ok_or("there is no earlier version to roll back to")?;
        let original = history
            .iter()
            .find(|p| p.version == target && p.action == "promote")
            .ok_or(format!("experiment {name} has no version v{target}"))?;
        let entry = Promotion { action: "rollback".into(), time: Timestamp::now(), by: by.into(), ..original.clone() };
        self.make_current(record, entry).await
    }

    /// Serves the entry's version (when the spec says how), then records it as current.
    async fn make_current(&self, record: &ExperimentRecord, entry: Promotion) -> Result<(u32, String), String> {
        let name = record.name();
        let version = format!("v{}", entry.version);
        let url = self.serve(record, &version, &entry.model).await?;
        self.store.add_promotion(name, &entry).map_err(|e| e.to_string())?;
        let serving = Serving { version: version.clone(), trial: entry.trial.clone(), url: url.clone() };
        self.store
            .update_experiment(name, Durability::Flushed, |r| r.serving = Some(serving.clone()))
            .map_err(|e| e.to_string())?;
        let place = url.map(|u| format!(", served at {u}")).unwrap_or_default();
        Ok((entry.version, format!("{version} is trial {} ({}){place}", entry.trial, entry.action)))
    }

    /// The model of a served version, from the history.
    fn current_model(&self, record: &ExperimentRecord, version: &str) -> Option<String> {
        let history = self.store.promotions(record.name()).ok()?;
        history.into_iter().rev().find(|p| format!("v{}", p.version) == version).map(|p| p.model)
    }

    /// Serves `version` (whose model is at `model`) as the spec says; returns where.
    async fn serve(&self, record: &ExperimentRecord, version: &str, model: &str) -> Result<Option<String>, String> {
        let serve = record.experiment.spec.promotion.as_ref().and_then(|p| p.serve.clone());
        if cluster::serves_on_kubernetes(&record.experiment.spec) {
            let serve = serve.unwrap_or_default();
            let (client, default) = self
                .cluster
                .as_ref()
                .ok_or("serving on Kubernetes needs a cluster (tuna serve with a kubeconfig or in a pod)")?;
            let namespace = record.origin.as_ref().map_or(default.as_str(), |o| o.namespace.as_str());
            let manifests = cluster::render(record.name(), namespace, version, model, &serve)?;
            let (url, rollout) = cluster::apply(client, &manifests)
                .await
                .map_err(|e| format!("failed to apply the serving Deployment: {e}"))?;
            info!(experiment = record.name(), version, %rollout, "serving applied");
            return Ok(Some(url));
        }
        let Some(serve) = serve.filter(|s| !s.command.is_empty()) else { return Ok(None) };
        if self.record_only {
            return Ok(None);
        }
        let model = self.models.join(record.name()).join(version);
        let spec_dir = record.spec_dir.clone().unwrap_or_else(|| PathBuf::from("."));
        let workdir = spec_dir.join(record.experiment.spec.trial.working_dir.as_deref().unwrap_or("."));
        self.serving.switch(record.name(), version, &model, &workdir, &serve).await.map(Some).map_err(|e| e.to_string())
    }
}

/// An auto experiment that succeeded and has not been auto-promoted (or refused) yet.
fn wants_auto(record: &ExperimentRecord) -> bool {
    let auto = record.experiment.spec.promotion.as_ref().is_some_and(|p| p.policy == PromotionPolicy::Auto);
    let succeeded = record.experiment.status.as_ref().is_some_and(|s| s.phase == ExperimentPhase::Succeeded);
    auto && succeeded && record.serving.is_none() && record.promotion_outcome.is_none()
}

/// Copies a folder to `to` through a temporary name, so `to` exists only once complete.
fn copy_complete(from: &Path, to: &Path) -> std::io::Result<()> {
    let partial = to.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    crate::store::snapshot::copy_dir(from, &partial)?;
    std::fs::rename(&partial, to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Assignment;
    use crate::trial::Trial;

    /// A store holding experiment `e` (objective: minimize `loss`) and one succeeded trial whose
    /// loss came at `step` of `last`, with a model in its output folder.
    fn with_trial(dir: &Path, step: i64, last: i64) -> (Store, ExperimentRecord) {
        let experiment = crate::spec::ExperimentSpec::test().named("e");
        let store = Store::open(&dir.join("data")).unwrap();
        let record = ExperimentRecord::new(experiment, None);
        store.put_experiment(&record).unwrap();
        let mut trial = Trial::new("e", 0, Assignment::new(), Timestamp::UNIX_EPOCH);
        (trial.phase, trial.objective) = (TrialPhase::Succeeded, Some(0.0114159));
        (trial.objective_step, trial.last_step) = (Some(step), Some(last));
        let trial_dir = dir.join("e-0000");
        std::fs::create_dir_all(trial_dir.join("output")).unwrap();
        std::fs::write(trial_dir.join("output/model.json"), "{}").unwrap();
        trial.dir = Some(trial_dir.display().to_string());
        store.put_trial(&trial).unwrap();
        (store, record)
    }

    #[tokio::test]
    async fn promoting_a_trial_ranked_from_an_earlier_step_says_which_step_its_value_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let (store, record) = with_trial(dir.path(), 1, 21);
        let promoter = Promoter::new(store, &dir.path().join("data"));
        let (version, message) = promoter.promote(&record, Some("e-0000"), "test").await.unwrap();
        assert_eq!(version, 1);
        assert_eq!(
            message,
            "v1 is trial e-0000 (promote)\nnote: loss 0.0114159 was reported at step 1 of 21; its saved model is \
             step 21's unless its trainer keeps the best step's checkpoint"
        );
    }

    #[tokio::test]
    async fn promoting_a_trial_ranked_by_its_last_step_adds_no_note() {
        let dir = tempfile::tempdir().unwrap();
        let (store, record) = with_trial(dir.path(), 21, 21);
        let promoter = Promoter::new(store, &dir.path().join("data"));
        let (_, message) = promoter.promote(&record, Some("e-0000"), "test").await.unwrap();
        assert_eq!(message, "v1 is trial e-0000 (promote)");
    }
}
