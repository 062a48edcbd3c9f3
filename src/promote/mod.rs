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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use serving::ServingManager;

use crate::leaderboard;
use crate::spec::{ExperimentPhase, PromotionPolicy, Serving};
use crate::store::{Durability, ExperimentRecord, Promotion, PromotionFailure, PromotionOutcome, Store};
use crate::trial::{TrialPhase, parameters_json};
use cluster::Rollout;

/// How often every experiment is looked at although no change woke the promoter (a safety net:
/// each write names the experiment it changed).
const LOOK_EVERY: Duration = Duration::from_secs(60);
/// The outcome id of the automatic promotion (user requests count from 1).
pub const AUTO: u64 = 0;

/// Why a promotion did not make its version current, with the message for its caller.
#[derive(Debug)]
struct Failure {
    reason: PromotionFailure,
    message: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self { reason: PromotionFailure::Refused, message }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// What serving a version started: where clients reach it, and (Kubernetes) the rollout that
/// decides whether it serves.
struct Served {
    url: Option<String>,
    rollout: Option<cluster::RolloutStart>,
}

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
    /// Experiments whose promotion is being carried out, each by its own task (a rollout may take
    /// its whole progress deadline; the other experiments do not wait for it), and whether a
    /// change came meanwhile (the task then looks again before it ends).
    busy: Mutex<HashMap<String, bool>>,
}

impl Promoter {
    pub fn new(store: Store, data_dir: &Path) -> Self {
        Self {
            store,
            models: data_dir.join("models"),
            serving: ServingManager::default(),
            cluster: None,
            record_only: false,
            busy: Mutex::default(),
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
        // What was served is applied again as it is: its rollout finished before the restart (a
        // Deployment left as it was has nothing to roll out), so nothing is waited for here.
        for record in restore {
            if let Some(serving) = &record.serving
                && let Some(entry) = self.entry_of(&record, &serving.version)
                && let Err(e) = self.serve(&record, &serving.version, &entry.model).await
            {
                warn!(experiment = record.name(), error = %e, "failed to restore serving");
            }
        }
        let mut tasks = JoinSet::new();
        let mut every = tokio::time::interval(LOOK_EVERY);
        loop {
            // Each write names the experiment it changed; a full look now and then is a safety net.
            let changed = tokio::select! {
                names = changes.next() => Some(names),
                _ = every.tick() => None,
                _ = shutdown.wait_for(|s| *s) => break,
                Some(_) = tasks.join_next() => continue,
            };
            let names: Vec<String> = match changed {
                Some(names) => names.into_iter().collect(),
                None => {
                    changes.take();
                    self.store.experiments().unwrap_or_default().iter().map(|r| r.name().to_string()).collect()
                }
            };
            for name in names {
                if self.claim(&name) {
                    tasks.spawn(Arc::clone(&self).follow(name));
                }
            }
        }
        tasks.abort_all();
        self.serving.stop_all().await;
    }

    /// Whether this call should start the task for `name`: false when one runs (it is told to
    /// look again).
    fn claim(&self, name: &str) -> bool {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        match busy.get_mut(name) {
            Some(again) => {
                *again = true;
                false
            }
            None => {
                busy.insert(name.to_string(), false);
                true
            }
        }
    }

    /// Carries out what the experiment's record asks, again while changes came meanwhile.
    async fn follow(self: Arc<Self>, name: String) {
        loop {
            if let Ok(Some(record)) = self.store.experiment(&name) {
                self.reconcile(&record).await;
            }
            let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
            match busy.get_mut(&name) {
                Some(again) if *again => *again = false,
                _ => {
                    busy.remove(&name);
                    return;
                }
            }
        }
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
            Ok((version, message)) => PromotionOutcome { id, ok: true, message, version: Some(version), failure: None },
            Err(f) => PromotionOutcome { id, ok: false, message: f.message, version: None, failure: Some(f.reason) },
        };
        info!(experiment = record.name(), ok = outcome.ok, message = %outcome.message, "promotion");
        let _ = self
            .store
            .update_experiment(record.name(), Durability::Flushed, |r| r.promotion_outcome = Some(outcome.clone()));
    }

    /// Promotes `trial` (the best when `None`) as a new version; the message adds a note when the
    /// trial's ranked value came from before its last step (its saved model may be a later one).
    async fn promote(
        &self,
        record: &ExperimentRecord,
        trial: Option<&str>,
        by: &str,
    ) -> Result<(u32, String), Failure> {
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
                )
                .into());
            }
        };
        let promotion = record.experiment.spec.promotion.clone().unwrap_or_default();
        if let Some(why) = promotion.gate.as_ref().and_then(|g| g.refuses(objective)) {
            return Err(format!("the gate refuses trial {wanted}: {why}").into());
        }
        let history = self.store.promotions(name).map_err(|e| e.to_string())?;
        let version = history.iter().map(|p| p.version).max().unwrap_or(0) + 1;
        let model = if record.experiment.spec.serves_on_kubernetes() {
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
            reason: None,
        };
        let note = leaderboard::step_note(chosen, &record.experiment.spec.objective.metric);
        let (version, message) = self.make_current(record, entry).await?;
        Ok((version, note.map_or_else(|| message.clone(), |note| format!("{message}\n{note}"))))
    }

    /// Makes version `to` current again (`0`: the one before the current).
    async fn rollback(&self, record: &ExperimentRecord, to: u32, by: &str) -> Result<(u32, String), Failure> {
        let name = record.name();
        let history = self.store.promotions(name).map_err(|e| e.to_string())?;
        let current = record.serving.as_ref().and_then(|s| s.version.trim_start_matches('v').parse::<u32>().ok());
        let target = if to == 0 { current.and_then(|c| c.checked_sub(1)).filter(|v| *v > 0) } else { Some(to) };
        let target = target.ok_or("there is no earlier version to roll back to")?;
        let original = history
            .iter()
            .find(|p| p.version == target && p.action == "promote")
            .ok_or(format!("experiment {name} has no version v{target}"))?;
        let entry = Promotion {
            action: "rollback".into(),
            time: Timestamp::now(),
            by: by.into(),
            reason: None,
            ..original.clone()
        };
        self.make_current(record, entry).await
    }

    /// Serves the entry's version (when the spec says how) and, on Kubernetes, waits for its
    /// rollout; then records it as current. A failed rollout is recorded as `failed` and the
    /// version served before is applied again (an automatic rollback), so a crash-looping model
    /// never becomes the one on record while the old one still answers.
    async fn make_current(&self, record: &ExperimentRecord, entry: Promotion) -> Result<(u32, String), Failure> {
        let name = record.name();
        let version = format!("v{}", entry.version);
        let served = self.serve(record, &version, &entry.model).await?;
        if let Rollout::Failed(why) = self.rollout(&served).await? {
            return Err(self.roll_back_after(record, entry, why).await);
        }
        self.store.add_promotion(name, &entry).map_err(|e| e.to_string())?;
        let serving = Serving { version: version.clone(), trial: entry.trial.clone(), url: served.url.clone() };
        self.store
            .update_experiment(name, Durability::Flushed, |r| r.serving = Some(serving.clone()))
            .map_err(|e| e.to_string())?;
        let place = served.url.map(|u| format!(", served at {u}")).unwrap_or_default();
        Ok((entry.version, format!("{version} is trial {} ({}){place}", entry.trial, entry.action)))
    }

    /// Waits for a Kubernetes rollout `serve` started (complete at once for local serving, which
    /// switches only to a version that answered its readiness path).
    async fn rollout(&self, served: &Served) -> Result<Rollout, String> {
        let (Some(start), Some((client, _))) = (&served.rollout, &self.cluster) else {
            return Ok(Rollout::Complete);
        };
        cluster::wait_rollout(client, start)
            .await
            .map_err(|e| format!("failed to follow the rollout of Deployment {}: {e}", start.name))
    }

    /// Records `failed` (why: `why`) for `entry`'s version and serves the version current before
    /// it again, if there was one; the failure says which.
    async fn roll_back_after(&self, record: &ExperimentRecord, entry: Promotion, why: String) -> Failure {
        let name = record.name();
        let version = format!("v{}", entry.version);
        warn!(experiment = name, version, reason = %why, "the rollout failed");
        let failed = Promotion { action: "failed".into(), reason: Some(why.clone()), ..entry.clone() };
        if let Err(e) = self.store.add_promotion(name, &failed) {
            warn!(experiment = name, error = %e, "failed to record the failed rollout");
        }
        let head = format!("{version} (trial {}) failed its rollout: {why}", entry.trial);
        let Some(before) = record.serving.clone() else {
            let deployment = crate::spec::name_in_namespace(name);
            let message = format!(
                "{head}; nothing was served before, so its Deployment {deployment} is left as it is for \
                 `kubectl describe deployment {deployment}`"
            );
            return Failure { reason: PromotionFailure::RolloutFailed, message };
        };
        let Some(original) = self.entry_of(record, &before.version) else {
            let message = format!("{head}; {} was served before but is not in the history", before.version);
            return Failure { reason: PromotionFailure::RolloutFailed, message };
        };
        let back = Promotion {
            action: "rollback".into(),
            time: Timestamp::now(),
            by: "auto".into(),
            reason: Some(format!("{version} failed its rollout: {why}")),
            ..original
        };
        let restored = match self.serve(record, &before.version, &back.model).await {
            Ok(served) => self.rollout(&served).await.map_err(Failure::from),
            Err(e) => Err(Failure::from(e)),
        };
        match restored {
            Ok(Rollout::Complete) => {
                if let Err(e) = self.store.add_promotion(name, &back) {
                    warn!(experiment = name, error = %e, "failed to record the automatic rollback");
                }
                let message =
                    format!("{head}; rolled back to {} (trial {}), which serves again", before.version, back.trial);
                Failure { reason: PromotionFailure::RolledBack, message }
            }
            Ok(Rollout::Failed(again)) => {
                let message = format!("{head}; the rollback to {} failed too: {again}", before.version);
                Failure { reason: PromotionFailure::RolloutFailed, message }
            }
            Err(e) => {
                let message = format!("{head}; the rollback to {} failed: {}", before.version, e.message);
                Failure { reason: PromotionFailure::RolloutFailed, message }
            }
        }
    }

    /// The latest history entry that made `version` (`v3`) current: a failed rollout of it never did.
    fn entry_of(&self, record: &ExperimentRecord, version: &str) -> Option<Promotion> {
        let history = self.store.promotions(record.name()).ok()?;
        history.into_iter().rev().find(|p| format!("v{}", p.version) == version && p.action != "failed")
    }

    /// Serves `version` (whose model is at `model`) as the spec says; says where, and which
    /// Deployment generation rolls it out on Kubernetes.
    async fn serve(&self, record: &ExperimentRecord, version: &str, model: &str) -> Result<Served, String> {
        let serve = record.experiment.spec.serve().cloned();
        if record.experiment.spec.serves_on_kubernetes() {
            let serve = serve.unwrap_or_default();
            let (client, default) = self
                .cluster
                .as_ref()
                .ok_or("serving on Kubernetes needs a cluster (tuna serve with a kubeconfig or in a pod)")?;
            let namespace = record.origin.as_ref().map_or(default.as_str(), |o| o.namespace.as_str());
            let manifests = cluster::render(record.name(), namespace, version, model, &serve)?;
            let (url, start) = cluster::apply(client, &manifests)
                .await
                .map_err(|e| format!("failed to apply the serving Deployment: {e}"))?;
            info!(experiment = record.name(), version, generation = start.generation, "serving applied");
            return Ok(Served { url: Some(url), rollout: Some(start) });
        }
        let Some(serve) = serve.filter(|s| !s.command.is_empty()) else {
            return Ok(Served { url: None, rollout: None });
        };
        if self.record_only {
            return Ok(Served { url: None, rollout: None });
        }
        let model = self.models.join(record.name()).join(version);
        let spec_dir = record.spec_dir.clone().unwrap_or_else(|| PathBuf::from("."));
        let workdir = spec_dir.join(record.experiment.spec.trial.working_dir.as_deref().unwrap_or("."));
        let url =
            self.serving.switch(record.name(), version, &model, &workdir, &serve).await.map_err(|e| e.to_string())?;
        Ok(Served { url: Some(url), rollout: None })
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
