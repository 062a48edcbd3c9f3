//! The CR's status subresource: what tuna writes, and only when it changed.
//!
//! ```text
//! store status + conditions ──▶ stamp (keep lastTransitionTime of unchanged conditions)
//!                           ──▶ equal to the CR's status? ── yes ─▶ no request
//!                                                          └─ no ─▶ PATCH …/status
//! ```
//! A status write is a watch event, and a watch event is a reconcile: writing an unchanged status
//! (or a fresh timestamp) would make every experiment, finished or not, write forever.

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::Error;
use crate::spec::{self, Experiment, ExperimentPhase, ExperimentStatus};

/// A condition as tuna decides it, before it is stamped with its transition time.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub type_: &'static str,
    pub reason: String,
    pub message: String,
}

pub fn condition(type_: &'static str, reason: &str, message: &str) -> Condition {
    Condition { type_, reason: reason.into(), message: message.into() }
}

/// Conditions a `kubectl describe` reader expects: Created, Running, then Succeeded or Failed.
pub fn conditions_for(status: &ExperimentStatus) -> Vec<Condition> {
    let reason = status.reason.as_ref().map_or("", |r| r.as_str());
    let message = status.message.as_deref().unwrap_or("");
    let mut conditions = vec![condition("Created", "ExperimentCreated", "the experiment is in tuna's store")];
    match status.phase {
        ExperimentPhase::Pending => {}
        ExperimentPhase::Running => conditions.push(condition("Running", "TrialsRunning", message)),
        ExperimentPhase::Succeeded => conditions.push(condition("Succeeded", reason, message)),
        ExperimentPhase::Failed => conditions.push(condition("Failed", reason, message)),
        ExperimentPhase::Stopped => conditions.push(condition("Stopped", reason, message)),
    }
    conditions
}

/// The conditions as written: each keeps the `lastTransitionTime` it had in `previous` when a
/// condition of its type had the same status there (every condition tuna writes is "True"), and
/// gets `now` otherwise.
pub fn stamp(conditions: &[Condition], previous: &[Value], now: &str) -> Vec<Value> {
    conditions
        .iter()
        .map(|c| {
            let since = previous
                .iter()
                .find(|p| p["type"] == c.type_ && p["status"] == "True")
                .and_then(|p| p["lastTransitionTime"].as_str())
                .unwrap_or(now);
            json!({"type": c.type_, "status": "True", "reason": c.reason, "message": c.message,
                "lastTransitionTime": since})
        })
        .collect()
}

/// The status to write over the CR's `current` one, or `None` when it is what is there already.
pub fn change(
    current: Option<&ExperimentStatus>,
    status: &ExperimentStatus,
    conditions: &[Condition],
    now: &str,
) -> Option<ExperimentStatus> {
    let previous = current.map(|c| c.conditions.as_slice()).unwrap_or_default();
    let mut next = status.clone();
    next.conditions = stamp(conditions, previous, now);
    let same = current.is_some_and(|c| serde_json::to_value(c).ok() == serde_json::to_value(&next).ok());
    (!same).then_some(next)
}

/// Writes the status when it differs from the CR's; returns whether a request was sent.
pub async fn write(
    api: &Api<Experiment>,
    cr: &Experiment,
    status: &ExperimentStatus,
    conditions: &[Condition],
) -> Result<bool, Error> {
    let name = cr.metadata.name.clone().unwrap_or_default();
    let now = jiff::Timestamp::now().to_string();
    let Some(next) = change(cr.status.as_ref(), status, conditions, &now) else { return Ok(false) };
    let body = serde_json::to_value(&next).unwrap_or_default();
    let patch = json!({"apiVersion": spec::API_VERSION, "kind": "Experiment", "status": body});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| true)
        .map_err(|source| Error::PatchStatus { name, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(message: &str) -> ExperimentStatus {
        ExperimentStatus { phase: ExperimentPhase::Running, message: Some(message.into()), ..Default::default() }
    }

    #[test]
    fn an_unchanged_status_is_not_written_again() {
        let status = running("2 trials running");
        let conditions = conditions_for(&status);
        let written = change(None, &status, &conditions, "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(change(Some(&written), &status, &conditions, "2026-01-01T00:05:00Z"), None);
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_stays() {
        let status = running("1 trial running");
        let first = change(None, &status, &conditions_for(&status), "2026-01-01T00:00:00Z").unwrap();
        let later = running("2 trials running");
        let next = change(Some(&first), &later, &conditions_for(&later), "2026-01-01T00:05:00Z").unwrap();
        assert_eq!(next.conditions[1]["message"], "2 trials running");
        assert_eq!(next.conditions[1]["lastTransitionTime"], "2026-01-01T00:00:00Z");
        let done = ExperimentStatus { phase: ExperimentPhase::Succeeded, ..later };
        let end = change(Some(&next), &done, &conditions_for(&done), "2026-01-01T00:09:00Z").unwrap();
        assert_eq!(end.conditions[0]["lastTransitionTime"], "2026-01-01T00:00:00Z", "Created stays");
        assert_eq!(end.conditions[1]["type"], "Succeeded");
        assert_eq!(end.conditions[1]["lastTransitionTime"], "2026-01-01T00:09:00Z", "a new condition is now");
    }
}
