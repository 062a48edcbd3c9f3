//! Creating a trial's Job, or finding the one an earlier controller created for it. Ownership is
//! explicit: a Job of the trial's name is followed only when its labels say it is this trial's in
//! this very experiment and the launch may resume; any other (an earlier experiment of the same
//! name, an earlier attempt before a retry) is deleted, saying so in the log, and created afresh.
//!
//! ```text
//! create ─▶ 201 ─────────────────────────────────▶ New
//!        └▶ 409 ─▶ get ─▶ ours and resume ───────▶ Existing (re-attach)
//!                      └▶ someone else's ─▶ delete, wait until gone ─▶ create again
//! New | Existing ─▶ create the token Secret (409: it is there already, with the same token)
//! ```
//! The Secret is created for a re-attached Job too: a controller may have stopped between the
//! Job's create and the Secret's, and the pod then waits (CreateContainerConfigError) for it.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions, PropagationPolicy};
use tracing::warn;

use super::job::{ATTEMPT_ANNOTATION, IDENTITY_LABEL, is_trial_of, render_job, token_secret};
use crate::executor::Launch;

/// How long a replaced Job may take to go (a real API server removes it at once with background
/// propagation; finalizers of others may hold it a little).
const GONE_WITHIN: Duration = Duration::from_secs(30);
/// How often a Job being deleted is looked at.
const GONE_POLL: Duration = Duration::from_millis(200);
/// Create, and after replacing a Job once, create again; a third 409 means something else keeps
/// creating it.
const TRIES: usize = 3;

pub enum Created {
    /// Created now, with this UID.
    New(String),
    /// A previous controller created it for this very attempt (this UID): follow it instead of
    /// starting anew.
    Existing(String),
}

impl Created {
    /// The UID of the Job that is the trial's: a Job of its name with another UID (one replaced,
    /// still in a watch's cache) is not.
    pub fn uid(&self) -> &str {
        match self {
            Created::New(uid) | Created::Existing(uid) => uid,
        }
    }
}

/// Creates the trial's Job, or finds the one a previous controller created for it, and the Secret
/// with its push token.
pub async fn ensure_job(
    jobs: &Api<Job>,
    secrets: &Api<Secret>,
    launch: &Launch,
    namespace: &str,
) -> Result<Created, String> {
    let (created, job) = ensure_only_job(jobs, launch, namespace).await?;
    if let Some(secret) = token_secret(launch, &job) {
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {}
            // Re-adopting the Job: the Secret is there, holding the same (deterministic) token.
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => {
                // Without its Secret the pod would wait in CreateContainerConfigError for good:
                // the Job goes too, and the trial fails to start, saying why.
                if let Err(removal) = remove(jobs, &job).await {
                    warn!(error = %removal, "failed to delete the Job whose token Secret could not be created");
                }
                let name = job.metadata.name.unwrap_or_default();
                return Err(format!(
                    "failed to create Secret {name} (the trial's token) in namespace {namespace}: {e}"
                ));
            }
        }
    }
    Ok(created)
}

/// The trial's Job, created or found, as the API server holds it (with its UID).
async fn ensure_only_job(jobs: &Api<Job>, launch: &Launch, namespace: &str) -> Result<(Created, Job), String> {
    let job = render_job(launch, namespace)?;
    let name = job.metadata.name.clone().unwrap_or_default();
    let failed = |what: &str, e: kube::Error| format!("failed to {what} Job {name} in namespace {namespace}: {e}");
    for _ in 0..TRIES {
        match jobs.create(&PostParams::default(), &job).await {
            Ok(created) => return Ok((Created::New(created.metadata.uid.clone().unwrap_or_default()), created)),
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(failed("create", e)),
        }
        let Some(existing) = jobs.get_opt(&name).await.map_err(|e| failed("read", e))? else { continue };
        if launch.resume && is_trial_of(&existing, launch) {
            return Ok((Created::Existing(existing.metadata.uid.clone().unwrap_or_default()), existing));
        }
        let annotation = |key| existing.metadata.annotations.as_ref().and_then(|a| a.get(key)).cloned();
        let label = |key| existing.metadata.labels.as_ref().and_then(|l| l.get(key)).cloned();
        warn!(
            job = %name,
            its_identity = label(IDENTITY_LABEL).unwrap_or_default(),
            its_attempt = annotation(ATTEMPT_ANNOTATION).unwrap_or_default(),
            identity = %launch.identity,
            attempt = launch.attempt,
            "a Job of this name exists but is not this trial's attempt (an earlier experiment of the same \
             name, or the attempt before a retry): deleting it and creating the trial's own"
        );
        remove(jobs, &existing).await.map_err(|e| failed("delete", e))?;
    }
    Err(format!(
        "Job {name} in namespace {namespace} came back each time it was deleted; is something else creating it?"
    ))
}

/// Deletes `job` (its pods with it) and waits until it is gone or replaced.
async fn remove(jobs: &Api<Job>, job: &Job) -> Result<(), kube::Error> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone();
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions { uid: uid.clone(), resource_version: None }),
        ..Default::default()
    };
    match jobs.delete(&name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Ok(()),
        Err(e) => return Err(e),
    }
    let deadline = tokio::time::Instant::now() + GONE_WITHIN;
    while tokio::time::Instant::now() < deadline {
        match jobs.get_opt(&name).await? {
            Some(j) if j.metadata.uid == uid => tokio::time::sleep(GONE_POLL).await,
            _ => return Ok(()),
        }
    }
    Ok(())
}
