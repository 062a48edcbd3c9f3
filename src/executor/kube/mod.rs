//! Trials as Kubernetes `batch/v1` Jobs: one Job per trial, labelled with its experiment, trial and
//! the experiment's identity, found again by name after a controller restart (re-attached when it
//! is this trial's, replaced when it is not: see `own`), followed until
//! its conditions say how it ended, and deleted (background propagation) when stopped; when the
//! controller shuts down it is left running, for the next controller to re-attach to.
//!
//! ```text
//! render_job ─▶ create (or find) ─▶ Job + pods from the namespace's watches ─▶ Waiting / Started / Line…
//!                                   (looked at on each change)              └▶ Complete | Failed
//! ```
//! A running trial costs the API server nothing but its log stream: Job and pod state come from
//! one shared watch per kind and namespace (`watches`).

mod follow;
pub mod job;
mod own;
mod watches;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{DeleteParams, PropagationPolicy};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tracing::{info, instrument, warn};

use follow::JobWatch;
pub use job::{Owner, job_name, primary_name, render_job};
use own::{Created, ensure_job};
use watches::Watches;

use super::{Executor, Exit, Finished, Launch, StopSignal, TrialEvent};
use crate::trial::TrialReason;

/// How often a running trial looks at its Job and pods in the watches' caches without a change
/// (for its deadlines; it costs no request).
const TICK: Duration = Duration::from_millis(500);

pub struct KubeExecutor {
    client: Client,
    /// Where Jobs go when the experiment does not come from a namespaced custom resource.
    namespace: String,
    watches: Watches,
}

impl KubeExecutor {
    pub fn new(client: Client, namespace: String) -> Self {
        let watches = Watches::new(client.clone());
        Self { client, namespace, watches }
    }
}

impl Executor for KubeExecutor {
    #[instrument(skip_all, fields(experiment = %launch.experiment, trial = %launch.trial))]
    async fn run(&self, launch: Launch, events: mpsc::UnboundedSender<TrialEvent>, mut stop: StopSignal) -> Finished {
        let namespace = launch.namespace.clone().unwrap_or_else(|| self.namespace.clone());
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &namespace);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let name = job_name(&launch.experiment, &launch.trial);
        let cluster = self.watches.namespace(&namespace);
        let mut changes = cluster.changes();
        let created = match ensure_job(&jobs, &secrets, &launch, &namespace).await {
            Ok(created) => created,
            Err(message) => return Finished { exit: Exit::StartFailed(message), stderr_tail: Vec::new() },
        };
        let resumed = matches!(created, Created::Existing(_));
        if resumed {
            drop(events.send(TrialEvent::Reattached));
        }
        let uid = created.uid().to_string();
        let events_api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let mut watch = JobWatch::new(primary_name(&launch), launch.trial_dir.join("stdout.log"), resumed);
        let launched = tokio::time::Instant::now();
        let exit = loop {
            let stopped = tokio::select! {
                _ = stop.wait_for(Option::is_some) => true,
                _ = changed(&mut changes) => false,
                _ = tokio::time::sleep(TICK) => false,
            };
            if stopped && *stop.borrow() == Some(TrialReason::ControllerShutdown) {
                // The Job outlives this controller; the next one re-attaches to it (see `own`).
                info!(job = %name, "the controller is going away: the trial's Job runs on");
                watch.detach();
                break Exit::Stopped;
            }
            if stopped {
                delete(&jobs, &name).await;
                break Exit::Stopped;
            }
            if let Some(exit) = overdue(&launch, &watch, launched) {
                delete(&jobs, &name).await;
                break exit;
            }
            match watch.step(&cluster, (&pods, &events_api), (&name, &uid), &events).await {
                Ok(Some(exit)) => break exit,
                Ok(None) => {}
                Err(e) => warn!(error = %e, "failed to read the trial's Job; retrying"),
            }
        };
        Finished { exit, stderr_tail: watch.tail().await.into() }
    }

    /// Jobs outlive the controller and are re-attached by name; nothing to clean up.
    fn reap(&self, _pid: u32, _pid_stamp: Option<&str>) {}

    /// The cluster's scheduler counts GPUs; a trial waits (with the reason shown) until one fits.
    fn gpu_capacity(&self) -> Option<usize> {
        None
    }
}

/// Waits for the next change the namespace's watches saw.
async fn changed(changes: &mut tokio::sync::watch::Receiver<u64>) {
    if changes.changed().await.is_err() {
        std::future::pending::<()>().await; // the watches are gone with the runtime
    }
}

/// Deletes a trial's Job and its pods.
async fn delete(jobs: &Api<Job>, name: &str) {
    let background = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
    if let Err(e) = jobs.delete(name, &background).await {
        warn!(error = %e, "failed to delete the trial's Job");
    }
}

/// The end of a trial that waited to start longer than `trial.startTimeout`, or has run longer
/// than `trial.timeout` since its container started (time queued or pulling does not count).
fn overdue(launch: &Launch, watch: &JobWatch, launched: tokio::time::Instant) -> Option<Exit> {
    match watch.running_since() {
        Some(since) => launch.timeout.filter(|t| since.elapsed() > *t).map(|_| Exit::TimedOut),
        None => launch.start_timeout.filter(|t| launched.elapsed() > *t).map(|t| {
            let why = watch.waiting().map(|w| format!(" (waiting: {w})")).unwrap_or_default();
            Exit::StartFailed(format!("did not start within spec.trial.startTimeout ({}s){why}", t.as_secs()))
        }),
    }
}

#[cfg(test)]
mod tests;
