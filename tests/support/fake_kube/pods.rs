//! Pod scheduling (by `nvidia.com/gpu` capacity) and lifecycle: Pending → Running →
//! Succeeded/Failed, with container restarts for restartPolicy OnFailure/Always.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::kubelet::{Kubelet, MAX_GRACE, NODE, READY_AFTER, RESTART_DELAY, RunSlot, conditions, has_condition};
use super::meta;
use super::process::{self, Exit, Run};
use super::resources::{JOBS, PODS};

pub const GPU: &str = "nvidia.com/gpu";

fn quantity(v: &Value) -> u64 {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0)
}

/// GPUs a pod asks for: the sum over containers of `limits` (or `requests`) of nvidia.com/gpu.
pub fn pod_gpus(pod: &Value) -> u64 {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let r = &c["resources"];
            if r["limits"][GPU].is_null() { quantity(&r["requests"][GPU]) } else { quantity(&r["limits"][GPU]) }
        })
        .sum()
}

pub fn is_terminal(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

pub(super) fn grace(pod: &Value) -> Duration {
    let secs = pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    Duration::from_secs(secs).min(MAX_GRACE)
}

fn terminated(e: &Exit, run: &Run) -> Value {
    let mut t = json!({"exitCode": e.code, "reason": e.reason, "startedAt": run.started_at,
        "finishedAt": e.finished_at, "containerID": format!("fake://{}", run.pid.unwrap_or(0))});
    if let Some(m) = &e.message {
        t["message"] = json!(m);
    }
    json!({"terminated": t})
}

impl Kubelet {
    pub(super) fn sync_pods(&self) {
        let (pods, _) = self.store.list(PODS, None);
        let live: HashSet<String> = pods.iter().filter(|p| !meta::is_deleting(p)).map(meta::uid_of).collect();
        self.runs().retain(|uid, slot| {
            if !live.contains(uid) {
                slot.current.kill("Deleted", MAX_GRACE);
            }
            live.contains(uid)
        });
        let active: Vec<&Value> = pods.iter().filter(|p| !meta::is_deleting(p) && !is_terminal(p)).collect();
        let mut used: u64 = active.iter().filter(|p| p["spec"]["nodeName"].is_string()).map(|p| pod_gpus(p)).sum();
        let mut pending: Vec<&Value> = active.iter().copied().filter(|p| !p["spec"]["nodeName"].is_string()).collect();
        pending
            .sort_by_key(|p| (p["metadata"]["creationTimestamp"].as_str().unwrap_or("").to_string(), meta::rv_of(p)));
        for pod in pending {
            self.schedule(pod, &mut used);
        }
        for pod in active.iter().filter(|p| p["spec"]["nodeName"].is_string()) {
            self.sync_pod(pod);
        }
    }

    fn schedule(&self, pod: &Value, used: &mut u64) {
        let (ns, name) = (meta::ns_of(pod), meta::name_of(pod));
        let need = pod_gpus(pod);
        if need == 0 || *used + need <= self.gpu_capacity() {
            *used += need;
            let updated = self.store.mutate(PODS, &ns, &name, |p| {
                p["spec"]["nodeName"] = json!(NODE);
                p["status"]["conditions"] = conditions(&p["status"]["conditions"], &[("PodScheduled", "True", "", "")]);
            });
            self.event(
                pod,
                "Normal",
                "Scheduled",
                &format!("Successfully assigned {ns}/{name} to {NODE}"),
                "default-scheduler",
            );
            if let Some(p) = updated {
                self.sync_pod(&p);
            }
        } else if !has_condition(pod, "PodScheduled", "False") {
            let msg = format!(
                "0/1 nodes are available: 1 Insufficient {GPU}. preemption: 0/1 nodes are available: \
                 1 No preemption victims found for incoming pod."
            );
            self.store.mutate(PODS, &ns, &name, |p| {
                p["status"]["conditions"] =
                    conditions(&p["status"]["conditions"], &[("PodScheduled", "False", "Unschedulable", &msg)]);
            });
            self.event(pod, "Warning", "FailedScheduling", &msg, "default-scheduler");
        }
    }

    /// Whether a container run that ended (`exit`, after `restarts` restarts) is restarted: its
    /// pod's restartPolicy, a kill (deletion, deadline, eviction) and the restart limit decide. A
    /// container that cannot start is retried under Always (a real kubelet's CrashLoopBackOff: the
    /// pod stays Running), so a Deployment's pod is never Failed for it.
    fn restarts(&self, pod: &Value, run: &Run, exit: &Exit, restarts: u32) -> bool {
        let policy = pod["spec"]["restartPolicy"].as_str().unwrap_or("Always");
        (exit.reason != "StartError" || policy == "Always")
            && run.kill_reason().is_none()
            && (policy == "Always" || (policy == "OnFailure" && exit.code != 0))
            && restarts < self.restart_limit(pod)
    }

    /// How many times a container may be restarted: a Job's backoffLimit, else without end.
    fn restart_limit(&self, pod: &Value) -> u32 {
        let job = pod["metadata"]["ownerReferences"].as_array().into_iter().flatten().find(|r| r["kind"] == "Job");
        job.and_then(|r| self.store.get(JOBS, &meta::ns_of(pod), r["name"].as_str().unwrap_or_default()))
            .map_or(u32::MAX, |j| u32::try_from(j["spec"]["backoffLimit"].as_u64().unwrap_or(6)).unwrap_or(u32::MAX))
    }

    fn start(&self, pod: &Value) -> Arc<Run> {
        let run = process::start(&self.resolved(pod), self.store.changed.clone());
        let c = pod["spec"]["containers"][0]["name"].as_str().unwrap_or_default().to_string();
        match run.exit() {
            Some(e) => self.event(pod, "Warning", "Failed", e.message.as_deref().unwrap_or("start failed"), "kubelet"),
            None => self.event(pod, "Normal", "Started", &format!("Started container {c}"), "kubelet"),
        }
        run
    }

    fn sync_pod(&self, pod: &Value) {
        let uid = meta::uid_of(pod);
        let existing = self.runs().get(&uid).map(|s| (s.current.clone(), s.restarts, s.restart_at, s.first_start));
        let Some((run, restarts, restart_at, first_start)) = existing else {
            let looked = pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].is_string();
            if let Some((reason, message)) = self.blocked(pod, u32::from(looked)) {
                self.write_blocked(pod, &reason, &message);
                return;
            }
            let run = self.start(pod);
            let slot = RunSlot {
                current: run.clone(),
                previous: None,
                restarts: 0,
                first_start: Instant::now(),
                restart_at: None,
            };
            self.runs().insert(uid, slot);
            // One that ended already (a command that exits at once) waits for its restart.
            let again = run.exit().is_some_and(|e| self.restarts(pod, &run, &e, 0));
            self.write_status(pod, &run, 0, again.then_some(&run));
            return;
        };
        if let Some(ads) = pod["spec"]["activeDeadlineSeconds"].as_u64()
            && first_start.elapsed() >= Duration::from_secs(ads)
        {
            run.kill("DeadlineExceeded", grace(pod));
        }
        let Some(exit) = run.exit() else {
            self.write_status(pod, &run, restarts, None);
            return;
        };
        if !self.restarts(pod, &run, &exit, restarts) {
            self.write_status(pod, &run, restarts, None);
            return;
        }
        match restart_at {
            Some(t) if Instant::now() >= t => {
                let new = self.start(pod);
                if let Some(slot) = self.runs().get_mut(&uid) {
                    slot.previous = Some(std::mem::replace(&mut slot.current, new.clone()));
                    slot.restarts += 1;
                    slot.restart_at = None;
                }
                // A run that already ended (a command that exits at once) is written as the
                // back-off before its next restart, never as a terminal pod: under Always and
                // OnFailure only the restart limit ends a pod.
                let again = new.exit().is_some_and(|e| self.restarts(pod, &new, &e, restarts + 1));
                let last = if again { &new } else { &run };
                self.write_status(pod, &new, restarts + 1, Some(last));
            }
            Some(_) => {}
            None => {
                if let Some(slot) = self.runs().get_mut(&uid) {
                    slot.restart_at = Some(Instant::now() + RESTART_DELAY);
                }
                self.write_status(pod, &run, restarts, Some(&run));
            }
        }
    }

    /// Writes the pod status for `run`. `last`: the previous run, when restarting (a run that
    /// ended and is about to be restarted shows as waiting in CrashLoopBackOff).
    fn write_status(&self, pod: &Value, run: &Arc<Run>, restarts: u32, last: Option<&Arc<Run>>) {
        let c = &pod["spec"]["containers"][0];
        let exit = run.exit();
        let backoff = last.is_some_and(|l| Arc::ptr_eq(l, run));
        let state = match (&exit, backoff) {
            (Some(_), true) => json!({"waiting": {"reason": "CrashLoopBackOff",
                "message": format!("back-off restarting failed container {}", c["name"].as_str().unwrap_or(""))}}),
            (Some(e), false) => terminated(e, run),
            (None, _) => json!({"running": {"startedAt": run.started_at}}),
        };
        let last_state = last.and_then(|l| l.exit().map(|e| terminated(&e, l))).unwrap_or(json!({}));
        let running = exit.is_none();
        // Ready only once it has run a moment: one that dies at once is never seen Ready.
        let ready = running && run.started.elapsed() >= READY_AFTER;
        let terminal = exit.is_some() && !backoff;
        let deadline = terminal && run.kill_reason().as_deref() == Some("DeadlineExceeded");
        let phase = match &exit {
            _ if deadline => "Failed",
            Some(e) if terminal => {
                if e.code == 0 {
                    "Succeeded"
                } else {
                    "Failed"
                }
            }
            _ => "Running",
        };
        let mut statuses = vec![
            json!({"name": c["name"], "image": c["image"], "imageID": format!("fake://{}", c["image"].as_str().unwrap_or("")),
            "containerID": format!("fake://{}", run.pid.unwrap_or(0)), "ready": ready, "started": running,
            "restartCount": restarts, "state": state, "lastState": last_state}),
        ];
        for other in pod["spec"]["containers"].as_array().into_iter().flatten().skip(1) {
            let msg = "the fake kubelet runs only the first container";
            let st = if terminal {
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "message": msg}})
            } else {
                json!({"waiting": {"reason": "NotRunByFakeKubelet", "message": msg}})
            };
            statuses.push(json!({"name": other["name"], "image": other["image"], "imageID": "", "ready": false,
                "started": false, "restartCount": 0, "state": st}));
        }
        // A real kubelet lists container statuses by name, not in the spec's order.
        statuses.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        let (ready, why) = if ready {
            ("True", "")
        } else if terminal {
            ("False", "PodCompleted")
        } else {
            ("False", "ContainersNotReady")
        };
        let old = &pod["status"];
        let mut status = json!({
            "phase": phase,
            "conditions": conditions(&old["conditions"], &[
                ("PodReadyToStartContainers", if terminal { "False" } else { "True" }, "", ""),
                ("Initialized", "True", "", ""),
                ("Ready", ready, why, ""),
                ("ContainersReady", ready, why, ""),
                ("PodScheduled", "True", "", ""),
            ]),
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": old["startTime"].as_str().unwrap_or(&run.started_at),
            "qosClass": old["qosClass"].as_str().unwrap_or("BestEffort"),
            "containerStatuses": statuses,
        });
        // The kubelet's own conditions are rewritten; a disruption's stays.
        let disruption = old["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "DisruptionTarget");
        if let (Some(d), Some(list)) = (disruption, status["conditions"].as_array_mut()) {
            list.push(d.clone());
        }
        if deadline {
            status["reason"] = json!("DeadlineExceeded");
            status["message"] = json!("Pod was active on the node longer than the specified deadline");
        }
        self.store.mutate(PODS, &meta::ns_of(pod), &meta::name_of(pod), |p| p["status"] = status);
    }
}
