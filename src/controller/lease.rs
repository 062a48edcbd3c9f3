//! Leader election through a `coordination.k8s.io/v1` Lease, so that of several controllers (a
//! second replica, or the old and new pod of a rollout) only one runs experiments.
//!
//! ```text
//! acquire: no Lease ─▶ create (holder = me)          renew every RENEW: replace (resourceVersion
//!          held by me, or expired ─▶ take it over          precondition); not renewed within
//!          held by another, fresh ─▶ wait, look again       DURATION ─▶ lost: stop everything
//! release (graceful shutdown): holder = "" so the next one takes over at once
//! ```
//! Every write is a replace with the resourceVersion read, so two candidates never both win.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tracing::{info, warn};

/// The Lease every tuna controller of a namespace competes for.
pub const LEASE_NAME: &str = "tuna-controller";
/// How long a holder's claim lasts without renewal (Kubernetes' own controllers use 15 s).
const DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews: well within DURATION, so one slow request does not lose it.
const RENEW: Duration = Duration::from_secs(3);
/// How often a candidate looks again at a Lease another holds.
const RETRY: Duration = Duration::from_secs(2);

/// One candidate for the Lease.
pub struct Candidate {
    leases: Api<Lease>,
    identity: String,
}

impl Candidate {
    pub fn new(leases: Api<Lease>, identity: String) -> Self {
        Self { leases, identity }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&self) {
        let mut waiting_on = None;
        loop {
            match self.try_take().await {
                Ok(None) => return,
                Ok(Some(holder)) => {
                    if waiting_on.as_ref() != Some(&holder) {
                        info!(%holder, "another controller holds the leader Lease; waiting");
                        waiting_on = Some(holder);
                    }
                }
                Err(e) => warn!(error = %e, "failed to read or take the leader Lease; trying again"),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Renews the Lease until it cannot be renewed within its duration; returns then (lost).
    pub async fn hold(&self) {
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW).await;
            match self.try_take().await {
                Ok(None) => renewed = tokio::time::Instant::now(),
                Ok(Some(holder)) => {
                    warn!(%holder, "another controller took the leader Lease");
                    return;
                }
                Err(e) if renewed.elapsed() < DURATION => warn!(error = %e, "failed to renew the leader Lease"),
                Err(e) => {
                    warn!(error = %e, "the leader Lease was not renewed in time");
                    return;
                }
            }
        }
    }

    /// Gives the Lease up (on a graceful shutdown), so the next controller need not wait it out.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.leases.get_opt(LEASE_NAME).await else { return };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(e) = self.leases.replace(LEASE_NAME, &PostParams::default(), &lease).await {
            warn!(error = %e, "failed to release the leader Lease; the next controller waits for it to expire");
        }
    }

    /// Takes or renews the Lease if it is free, expired or ours: `None` when we hold it now,
    /// else who does.
    async fn try_take(&self) -> Result<Option<String>, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.leases.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(LEASE_NAME.into()), ..Default::default() },
                spec: Some(self.claim(None, now)),
            };
            return match self.leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(None),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some("(just created by another)".into())),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let expired = spec.renew_time.as_ref().is_none_or(|t| {
            let seconds = spec.lease_duration_seconds.map_or(DURATION.as_secs() as i64, i64::from);
            t.0.as_second() + seconds < now.as_second()
        });
        if holder.as_deref().is_some_and(|h| h != self.identity) && !expired {
            return Ok(holder);
        }
        lease.spec = Some(self.claim(Some(&spec), now));
        match self.leases.replace(LEASE_NAME, &PostParams::default(), &lease).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some("(taken by another just now)".into())),
            Err(e) => Err(e),
        }
    }

    fn claim(&self, before: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let ours = before.and_then(|b| b.holder_identity.as_deref()) == Some(self.identity.as_str());
        let transitions = before.and_then(|b| b.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(DURATION.as_secs() as i32),
            acquire_time: if ours { before.and_then(|b| b.acquire_time.clone()) } else { Some(MicroTime(now)) },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours || before.is_none() { transitions } else { transitions + 1 }),
            ..Default::default()
        }
    }
}
