//! The Job controller: creates a Job's pods from its template, counts their outcomes, and
//! completes or fails the Job (backoffLimit, activeDeadlineSeconds).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::disruption::{Action, judge};
use super::kubelet::{JobTrack, Kubelet, has_condition};
use super::meta;
use super::pods::is_terminal;
use super::resources::{JOBS, PODS};

fn finished(job: &Value) -> bool {
    has_condition(job, "Complete", "True") || has_condition(job, "Failed", "True")
}

impl Kubelet {
    pub(super) fn sync_jobs(&self) {
        let (jobs, _) = self.store.list(JOBS, None);
        let (pods, _) = self.store.list(PODS, None);
        let uids: Vec<String> = jobs.iter().map(meta::uid_of).collect();
        self.jobs().retain(|uid, _| uids.contains(uid));
        for job in jobs.iter().filter(|j| !meta::is_deleting(j)) {
            self.sync_job(job, &pods);
        }
    }

    fn sync_job(&self, job: &Value, pods: &[Value]) {
        let (ns, name, uid) = (meta::ns_of(job), meta::name_of(job), meta::uid_of(job));
        let spec = &job["spec"];
        let owned: Vec<&Value> =
            pods.iter().filter(|p| meta::ns_of(p) == ns && meta::owner_uids(p).contains(&uid)).collect();
        let mut fail_job = None;
        let (started, succeeded, mut failed) = {
            let mut tracks = self.jobs();
            let t = tracks.entry(uid.clone()).or_insert_with(|| JobTrack {
                started: Instant::now(),
                succeeded: Default::default(),
                failed: Default::default(),
                create_error: None,
            });
            for p in &owned {
                match p["status"]["phase"].as_str() {
                    Some("Succeeded") => t.succeeded.insert(meta::uid_of(p)),
                    Some("Failed") => match judge(&spec["podFailurePolicy"], p) {
                        Action::Ignore => false,
                        Action::FailJob(message) => {
                            fail_job.get_or_insert(message);
                            t.failed.insert(meta::uid_of(p))
                        }
                        Action::Count => t.failed.insert(meta::uid_of(p)),
                    },
                    _ => false,
                };
            }
            (t.started, t.succeeded.len() as i64, t.failed.len() as i64)
        };
        failed += owned
            .iter()
            .map(|p| {
                let first = &p["spec"]["containers"][0]["name"];
                let statuses = p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
                statuses.iter().find(|s| &s["name"] == first).map_or(0, |s| s["restartCount"].as_i64().unwrap_or(0))
            })
            .sum::<i64>();
        let active: Vec<&Value> = owned.iter().copied().filter(|p| !is_terminal(p) && !meta::is_deleting(p)).collect();
        let mut n_active = active.len();
        let mut ready = active.iter().filter(|p| has_condition(p, "Ready", "True")).count();
        let mut status = if job["status"].is_object() { job["status"].clone() } else { json!({}) };
        let suspend = spec["suspend"].as_bool() == Some(true);
        let now = meta::now_ts();
        if !finished(job) {
            if status["startTime"].is_null() && !suspend {
                status["startTime"] = json!(now);
            }
            let completions = spec["completions"].as_i64().unwrap_or(1);
            let parallelism = spec["parallelism"].as_i64().unwrap_or(1);
            let backoff = spec["backoffLimit"].as_i64().unwrap_or(6);
            let deadline = spec["activeDeadlineSeconds"].as_u64();
            let outcome = if !suspend && deadline.is_some_and(|d| started.elapsed() >= Duration::from_secs(d)) {
                Some(("Failed", "DeadlineExceeded", "Job was active longer than specified deadline".to_string()))
            } else if succeeded >= completions {
                Some(("Complete", "CompletionsReached", "Reached expected number of succeeded pods".to_string()))
            } else if let Some(message) = fail_job {
                Some(("Failed", "PodFailurePolicy", message))
            } else if failed > backoff {
                Some(("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit".to_string()))
            } else {
                None
            };
            if outcome.is_some() || suspend {
                for p in &active {
                    self.store.delete_internal(PODS, &ns, &meta::name_of(p), Some("Background"));
                    self.event(
                        job,
                        "Normal",
                        "SuccessfulDelete",
                        &format!("Deleted pod: {}", meta::name_of(p)),
                        "job-controller",
                    );
                }
                (n_active, ready) = (0, 0);
            }
            if let Some((typ, reason, message)) = outcome {
                let target = if typ == "Complete" { "SuccessCriteriaMet" } else { "FailureTarget" };
                let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
                for t in [target, typ] {
                    conds.push(json!({"type": t, "status": "True", "reason": reason, "message": message,
                        "lastProbeTime": now, "lastTransitionTime": now}));
                }
                status["conditions"] = Value::Array(conds);
                if typ == "Complete" {
                    status["completionTime"] = json!(now);
                    self.event(job, "Normal", "Completed", "Job completed", "job-controller");
                } else {
                    self.event(job, "Warning", reason, &message, "job-controller");
                }
            } else if !suspend {
                let want = parallelism.min(completions - succeeded).max(0) - n_active as i64;
                for _ in 0..want {
                    if self.create_pod(job) {
                        n_active += 1;
                    }
                }
            }
        }
        let was_suspended = has_condition(job, "Suspended", "True");
        if suspend != was_suspended && !finished(job) {
            let (state, reason, message) = if suspend {
                ("True", "JobSuspended", "Job suspended")
            } else {
                ("False", "JobResumed", "Job resumed")
            };
            let mut conds: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
            conds.retain(|c| c["type"] != "Suspended");
            conds.push(json!({"type": "Suspended", "status": state, "reason": reason, "message": message,
                "lastProbeTime": now, "lastTransitionTime": now}));
            status["conditions"] = Value::Array(conds);
        }
        if let Some(m) = status.as_object_mut() {
            for (k, v) in [("active", n_active as i64), ("succeeded", succeeded), ("failed", failed)] {
                if v > 0 {
                    m.insert(k.into(), json!(v))
                } else {
                    m.remove(k)
                };
            }
            m.insert("ready".into(), json!(ready));
            m.insert("terminating".into(), json!(0));
            m.insert("uncountedTerminatedPods".into(), json!({}));
        }
        self.store.mutate(JOBS, &ns, &name, |j| j["status"] = status);
    }

    /// Creates one pod from the Job's template; false if that failed.
    fn create_pod(&self, job: &Value) -> bool {
        let (ns, name, uid) = (meta::ns_of(job), meta::name_of(job), meta::uid_of(job));
        let t = &job["spec"]["template"];
        let base: String = name.chars().take(57).collect();
        let mut pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": t["metadata"].clone(), "spec": t["spec"].clone()});
        let m = meta::meta_mut(&mut pod);
        m.insert("generateName".into(), json!(format!("{base}-")));
        m.insert(
            "ownerReferences".into(),
            json!([{"apiVersion": "batch/v1", "kind": "Job", "name": name,
            "uid": uid, "controller": true, "blockOwnerDeletion": true}]),
        );
        let labels = m.entry("labels").or_insert_with(|| json!({}));
        for (k, v) in [
            ("job-name", &name),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("batch.kubernetes.io/controller-uid", &uid),
        ] {
            labels[k] = json!(v);
        }
        for _ in 0..3 {
            let pod_name = format!("{base}-{}", meta::random_lowercase(5));
            meta::meta_mut(&mut pod).insert("name".into(), json!(pod_name));
            match self.store.create_internal(PODS, &ns, pod.clone()) {
                Ok(_) => {
                    self.event(
                        job,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created pod: {pod_name}"),
                        "job-controller",
                    );
                    return true;
                }
                Err(e) if e.code == 409 => continue,
                Err(e) => {
                    let msg = format!("Error creating: {}", e.message);
                    // The same error for another generated name is the same error: reported once
                    // (a real Job controller backs off), or every pass would be a change.
                    let key = msg.replace(&pod_name, &base);
                    let first =
                        self.jobs().get_mut(&uid).is_some_and(|t| t.create_error.replace(key.clone()) != Some(key));
                    if first {
                        self.event(job, "Warning", "FailedCreate", &msg, "job-controller");
                    }
                    return false;
                }
            }
        }
        false
    }
}
