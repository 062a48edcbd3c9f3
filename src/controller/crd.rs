//! `Experiment` custom resources: each CR becomes an experiment in the store (run by the
//! supervisor like any other, its trials as Jobs), and the store's status flows back to the CR's
//! status subresource, with Kubernetes Events for trial starts, failures and the end.
//!
//! ```text
//! CR apply ──▶ validate ──▶ store (create; or copy maxTrials/parallelTrials/maxFailedTrials)
//!          ◀── patch_status, only if changed ◀── store status   (requeued every few seconds while running)
//! CR delete ──▶ desired = Delete ──▶ supervisor stops the Jobs ──▶ record gone ──▶ finalizer off
//! ```
//! The store keys a CR's experiment as `namespace/name` (`spec::namespaced_key`), so two
//! namespaces may each have one of a name; a record of that key from another resource (one deleted
//! while tuna was away) gets the new one a `NameConflict` condition.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;
use tracing::{info, warn};

use self::status::{condition, conditions_for};
use crate::executor::kube::job::{EXPERIMENT_LABEL, label_value};
use crate::experiment;
use crate::spec::{EndReason, Experiment, ExperimentPhase, ExperimentStatus, TrialCounts, namespaced_key};
use crate::store::{Desired, Durability, ExperimentRecord, KubeOrigin, Store};

mod status;

/// The finalizer that lets tuna stop an experiment's Jobs before its CR goes away.
pub const FINALIZER: &str = "tuna.dev/cleanup";
/// The field manager of tuna's status writes.
const MANAGER: &str = "tuna-controller";
/// How often a finished experiment's CR is looked at again, for a later promotion or rollback.
const SETTLED_EVERY: Duration = Duration::from_secs(15);
/// How often a running experiment's status is copied to its CR.
const STATUS_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read or write the store for experiment {name}")]
    Store {
        name: String,
        #[source]
        source: crate::store::Error,
    },
    #[error("failed to write the status of experiment {name}")]
    PatchStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete the Jobs of experiment {name}")]
    DeleteJobs {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("experiment {name} is still stopping its trials")]
    StillDeleting { name: String },
    #[error("the Experiment finalizer failed")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

/// What was last reported of an experiment as Events: its counts, phase, why a trial waits, and
/// the failed promotion last told (its outcome id: each request has its own).
type Seen = (TrialCounts, ExperimentPhase, Option<String>, Option<u64>);

/// What the reconciler shares.
struct Context {
    client: Client,
    store: Store,
    recorder: Recorder,
    /// The trial counts last reported as Events, per experiment.
    seen: Mutex<HashMap<String, Seen>>,
}

/// Reconciles Experiment CRs in `namespace` (all namespaces when `None`) until `shutdown`.
/// Reconciles the Experiments of `namespaces` (`None`: every namespace), one kube-runtime
/// Controller per namespace, so that only namespaced list/watch rights are needed there (a
/// RoleBinding per namespace, no cluster-wide grant).
pub async fn watch_crds(
    client: Client,
    store: Store,
    namespaces: Option<Vec<String>>,
    shutdown: watch::Receiver<bool>,
) {
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), Reporter::from(MANAGER)),
        client: client.clone(),
        store,
        seen: Mutex::default(),
    });
    let scopes: Vec<Option<String>> = match namespaces {
        Some(list) => list.into_iter().map(Some).collect(),
        None => vec![None],
    };
    let controllers = scopes.into_iter().map(|namespace| {
        let (experiments, jobs): (Api<Experiment>, Api<Job>) = match &namespace {
            Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        info!(namespace = namespace.as_deref().unwrap_or("*"), "watching Experiment custom resources");
        let mut shutdown = shutdown.clone();
        Controller::new(experiments, watcher::Config::default())
            .owns(jobs, watcher::Config::default().labels(EXPERIMENT_LABEL))
            .graceful_shutdown_on(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            })
            .run(reconcile, error_policy, Arc::clone(&ctx))
            .for_each(|result| async move {
                if let Err(e) = result {
                    warn!(error = %causes(&e), "reconcile failed");
                }
            })
    });
    futures::future::join_all(controllers).await;
}

/// An error with its causes, `: `-separated (a 403's message is a cause several levels down).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn reconcile(experiment: Arc<Experiment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let done = reconcile_once(experiment, ctx).await;
    let result = if done.is_ok() { "ok" } else { "error" };
    crate::instruments::global().reconciled(result, started.elapsed().as_secs_f64());
    done
}

async fn reconcile_once(experiment: Arc<Experiment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = experiment.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, experiment, |event| async {
        match event {
            Finalizer::Apply(cr) => apply(&cr, &ctx, &api).await,
            Finalizer::Cleanup(cr) => cleanup(&cr, &ctx, &api).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(_: Arc<Experiment>, error: &Error, _: Arc<Context>) -> Action {
    match error {
        Error::Finalizer(e)
            if matches!(**e, kube::runtime::finalizer::Error::CleanupFailed(Error::StillDeleting { .. })) =>
        {
            Action::requeue(Duration::from_secs(1))
        }
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

/// The store key of a CR's experiment, `namespace/name`, with the record stored under it. An
/// experiment this very resource made before keys had namespaces (stored by bare name) keeps its
/// key; that older key is looked up only when the namespaced one holds nothing.
fn key_of(ctx: &Context, cr: &Experiment) -> Result<(String, Option<ExperimentRecord>), Error> {
    let name = cr.name_any();
    let read = |key: &str| ctx.store.experiment(key).map_err(|source| Error::Store { name: key.to_string(), source });
    let key = namespaced_key(&cr.namespace().unwrap_or_else(|| "default".into()), &name);
    if let Some(record) = read(&key)? {
        return Ok((key, Some(record)));
    }
    match read(&name)? {
        Some(legacy) if legacy.origin.as_ref().map(|o| &o.uid) == cr.uid().as_ref() => Ok((name, Some(legacy))),
        _ => Ok((key, None)),
    }
}

async fn apply(cr: &Experiment, ctx: &Context, api: &Api<Experiment>) -> Result<Action, Error> {
    let (name, stored) = key_of(ctx, cr)?;
    let store_error = |source| Error::Store { name: name.clone(), source };
    let origin = KubeOrigin {
        namespace: cr.namespace().unwrap_or_default(),
        name: cr.name_any(),
        uid: cr.uid().unwrap_or_default(),
    };
    // The status is tuna's own writing; only the rest is the user's.
    let mut document = serde_json::to_value(cr).unwrap_or_default();
    document.as_object_mut().map(|o| o.remove("status"));
    let valid = match crate::search::check_document(document) {
        Ok(valid) => valid,
        Err(e) => {
            let message = e.problems().iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            let status = experiment::refused(EndReason::InvalidSpec, message);
            let conditions = [condition("Failed", "InvalidSpec", status.message.as_deref().unwrap_or(""))];
            status::write(api, cr, &status, &conditions).await?;
            return Ok(Action::await_change());
        }
    };
    let stored = match stored {
        None => create(ctx, &name, valid.clone(), origin).map_err(store_error)?,
        Some(record) if record.origin.as_ref().map(|o| &o.uid) != Some(&origin.uid) => {
            let message = format!(
                "tuna still holds experiment {name} of an earlier resource of this name; \
                 delete it (tuna delete {name}) or rename this one"
            );
            let status = experiment::refused(EndReason::NameConflict, message.clone());
            status::write(api, cr, &status, &[condition("Failed", "NameConflict", &message)]).await?;
            return Ok(Action::await_change());
        }
        Some(record) => follow_edits(ctx, &record, &valid).map_err(store_error)?,
    };
    let mut status = stored.view().status.unwrap_or_default();
    // Inside its namespace a resource's trials go by their short names (`mnist-0003`).
    if let Some(best) = status.best_trial.as_mut() {
        best.name = crate::spec::name_in_namespace(&best.name).to_string();
    }
    if let Some(serving) = status.serving.as_mut() {
        serving.trial = crate::spec::name_in_namespace(&serving.trial).to_string();
    }
    let blocked = (status.phase == ExperimentPhase::Running).then(|| waiting(ctx, &name)).flatten();
    if blocked.is_some() {
        status.message = blocked.clone();
    }
    let mut conditions = conditions_for(&status);
    let failed_promotion = stored.promotion_outcome.clone().filter(|o| !o.ok);
    if let Some(outcome) = &failed_promotion {
        let reason = outcome.failure.unwrap_or(crate::store::PromotionFailure::Refused).as_str();
        conditions.push(condition("PromotionFailed", reason, &outcome.message));
    }
    if let Some(ignored) = ignored_edits(&stored.experiment, &valid) {
        conditions.push(condition("SpecChangeIgnored", "Immutable", &ignored));
    }
    status::write(api, cr, &status, &conditions).await?;
    publish_events(ctx, cr, &name, &status, blocked, failed_promotion).await;
    // A finished experiment may still change in the store without its CR changing: an automatic
    // promotion just after the end, a promotion or rollback through the API. Looked at again soon
    // while one is pending, else now and then; a look that finds nothing new writes nothing.
    Ok(if !status.phase.is_finished() || promotion_pending(&stored) {
        Action::requeue(STATUS_EVERY)
    } else {
        Action::requeue(SETTLED_EVERY)
    })
}

/// Whether the promoter has work for this experiment that will change its status (what it serves).
fn promotion_pending(record: &ExperimentRecord) -> bool {
    let auto =
        record.experiment.spec.promotion.as_ref().is_some_and(|p| p.policy == crate::spec::PromotionPolicy::Auto);
    let asked = record.promotion_request.as_ref().map(|r| r.id);
    let answered = record.promotion_outcome.as_ref().map(|o| o.id);
    (auto && record.serving.is_none() && answered.is_none()) || (asked.is_some() && asked != answered)
}

fn create(
    ctx: &Context,
    key: &str,
    mut experiment: Experiment,
    origin: KubeOrigin,
) -> Result<ExperimentRecord, crate::store::Error> {
    let seed = experiment.spec.algorithm.seed.unwrap_or_else(rand::random);
    experiment.status = Some(ExperimentStatus { seed, ..Default::default() });
    experiment.metadata = kube::api::ObjectMeta { name: Some(key.to_string()), ..Default::default() };
    let mut record = ExperimentRecord::new(experiment, None);
    // The custom resource's UID is the incarnation: its Jobs and tokens belong to this CR only.
    record.experiment.metadata.uid = Some(origin.uid.clone());
    record.origin = Some(origin);
    ctx.store.create_experiment(&record)?;
    Ok(record)
}

/// Copies the three fields that may change after creation; a raised budget resumes a finished
/// experiment.
fn follow_edits(
    ctx: &Context,
    record: &ExperimentRecord,
    cr: &Experiment,
) -> Result<ExperimentRecord, crate::store::Error> {
    let (old, new) = (&record.experiment.spec, &cr.spec);
    if (old.max_trials, old.parallel_trials, old.max_failed_trials)
        == (new.max_trials, new.parallel_trials, new.max_failed_trials)
    {
        return Ok(record.clone());
    }
    let (max, parallel, failed) = (new.max_trials, new.parallel_trials, new.max_failed_trials);
    let updated = ctx.store.update_experiment(record.name(), Durability::Flushed, |r| {
        let raised = max > r.experiment.spec.max_trials || failed > r.experiment.spec.max_failed_trials;
        r.experiment.spec.max_trials = max;
        r.experiment.spec.parallel_trials = parallel;
        r.experiment.spec.max_failed_trials = failed;
        let status = r.experiment.status.get_or_insert_with(Default::default);
        if raised && status.phase.is_finished() {
            experiment::reopen(status);
        }
    })?;
    Ok(updated.unwrap_or_else(|| record.clone()))
}

/// The edits other than the three that may change, named, if any.
fn ignored_edits(stored: &Experiment, cr: &Experiment) -> Option<String> {
    let mut a = serde_json::to_value(&stored.spec).unwrap_or_default();
    let mut b = serde_json::to_value(&cr.spec).unwrap_or_default();
    for field in ["maxTrials", "parallelTrials", "maxFailedTrials"] {
        a.as_object_mut().map(|o| o.remove(field));
        b.as_object_mut().map(|o| o.remove(field));
    }
    let (a, b) = (a.as_object().cloned().unwrap_or_default(), b.as_object().cloned().unwrap_or_default());
    let changed: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("spec.{k}"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    (!changed.is_empty()).then(|| {
        format!(
            "only maxTrials, parallelTrials and maxFailedTrials may change after creation; ignored: {}",
            changed.join(", ")
        )
    })
}

/// Why the first trial that cannot start waits (e.g. no node has a free GPU), if one does.
fn waiting(ctx: &Context, name: &str) -> Option<String> {
    let trials = ctx.store.trials(name).ok()?;
    let t = trials.iter().find(|t| t.phase == crate::trial::TrialPhase::Pending && t.reason.is_some())?;
    Some(format!(
        "trial {} is waiting: {}: {}",
        t.name,
        t.reason.as_ref().map_or("", |r| r.as_str()),
        t.message.as_deref().unwrap_or("")
    ))
}

async fn cleanup(cr: &Experiment, ctx: &Context, api: &Api<Experiment>) -> Result<Action, Error> {
    let (name, stored) = key_of(ctx, cr)?;
    let store_error = |source| Error::Store { name: name.clone(), source };
    let Some(record) = stored else { return Ok(Action::await_change()) };
    if record.origin.as_ref().map(|o| &o.uid) != cr.uid().as_ref() {
        return Ok(Action::await_change()); // not ours (a name conflict): leave it alone
    }
    ctx.store.update_experiment(&name, Durability::Flushed, |r| r.desired = Desired::Delete).map_err(store_error)?;
    // Finished trials' Jobs stay for inspection until their TTL; the experiment's end takes them.
    let jobs: Api<Job> =
        Api::namespaced(ctx.client.clone(), &record.origin.as_ref().map(|o| o.namespace.clone()).unwrap_or_default());
    let selector = format!("{EXPERIMENT_LABEL}={}", label_value(&name));
    if let Err(source) =
        jobs.delete_collection(&DeleteParams::background(), &ListParams::default().labels(&selector)).await
    {
        let status = record.view().status.unwrap_or_default();
        report_cleanup_failure(ctx, api, cr, &status, &name, &source).await;
        return Err(Error::DeleteJobs { name, source });
    }
    Err(Error::StillDeleting { name })
}

/// Says why a deleted Experiment's Jobs could not be deleted, where its user looks: a
/// `CleanupFailed` condition, a Warning Event and the log (a 403 names the verb RBAC refused).
async fn report_cleanup_failure(
    ctx: &Context,
    api: &Api<Experiment>,
    cr: &Experiment,
    status: &ExperimentStatus,
    name: &str,
    error: &kube::Error,
) {
    let (reason, hint) = match error {
        kube::Error::Api(s) if s.code == 403 => {
            ("Forbidden", " (the controller's RBAC does not grant this: docs/rbac.md lists what it needs)")
        }
        _ => ("DeleteJobsFailed", ""),
    };
    let message = format!("failed to delete the Jobs of experiment {name}: {error}{hint}; retrying");
    warn!(experiment = %name, "{message}");
    let mut conditions = conditions_for(status);
    conditions.push(condition("CleanupFailed", reason, &message));
    if let Err(e) = status::write(api, cr, status, &conditions).await {
        warn!(experiment = %name, error = %e, "failed to write the CleanupFailed condition");
    }
    let event = Event {
        type_: EventType::Warning,
        reason: "CleanupFailed".into(),
        note: Some(message),
        action: "Cleanup".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cr.object_ref(&())).await {
        warn!(experiment = %name, error = %e, "failed to publish an Event");
    }
}

/// Publishes an Event per change in trial counts since the last look, and one at the end.
async fn publish_events(
    ctx: &Context,
    cr: &Experiment,
    name: &str,
    status: &ExperimentStatus,
    blocked: Option<String>,
    failed_promotion: Option<crate::store::PromotionOutcome>,
) {
    let told = failed_promotion.as_ref().map(|o| o.id);
    let before = {
        let mut seen = ctx.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(name.to_string(), (status.trials.clone(), status.phase, blocked.clone(), told))
    };
    // A failed promotion is told once, when it happens: not again after a restart of tuna, whose
    // first look at each experiment finds it already recorded.
    let new_failure = before.as_ref().is_some_and(|(.., told_before)| *told_before != told);
    let (old, old_phase, old_blocked, _) = before.unwrap_or_default();
    let c = &status.trials;
    // A trial that ended (any way) has started: early stops leave `running` without joining the others.
    let begun = |t: &crate::spec::TrialCounts| t.running + t.succeeded + t.failed + t.early_stopped;
    let started = begun(c).saturating_sub(begun(&old));
    let mut events = Vec::new();
    if started > 0 {
        events.push((EventType::Normal, "TrialsStarted", format!("{started} trial(s) started")));
    }
    if let Some(note) = blocked.filter(|b| old_blocked.as_ref() != Some(b)) {
        events.push((EventType::Warning, "TrialWaiting", note));
    }
    if c.early_stopped > old.early_stopped {
        let n = c.early_stopped - old.early_stopped;
        events.push((
            EventType::Normal,
            "TrialsStoppedEarly",
            format!("{n} trial(s) stopped early by spec.earlyStopping"),
        ));
    }
    if c.failed > old.failed {
        events.push((EventType::Warning, "TrialsFailed", format!("{} trial(s) failed", c.failed - old.failed)));
    }
    if status.phase.is_finished() && old_phase != status.phase {
        let kind = if status.phase == ExperimentPhase::Succeeded { EventType::Normal } else { EventType::Warning };
        events.push((kind, "ExperimentEnded", status.message.clone().unwrap_or_default()));
    }
    if let Some(outcome) = failed_promotion.filter(|_| new_failure) {
        let reason = outcome.failure.unwrap_or(crate::store::PromotionFailure::Refused).as_str();
        events.push((EventType::Warning, reason, outcome.message));
    }
    let reference = cr.object_ref(&());
    for (type_, reason, note) in events {
        let event =
            Event { type_, reason: reason.into(), note: Some(note), action: "Reconcile".into(), secondary: None };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(experiment = %name, error = %e, "failed to publish an Event");
        }
    }
}
