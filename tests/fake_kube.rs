//! Tests of the fake Kubernetes API server + kubelet through a real `kube::Client`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::wait::await_condition;
use kube::runtime::watcher;
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use support::fake_kube::FakeKube;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(group = "tuna.dev", version = "v1alpha1", kind = "Experiment", namespaced, status = "ExperimentStatus")]
pub struct ExperimentSpec {
    pub trials: u32,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct ExperimentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<f64>,
}

const WAIT: Duration = Duration::from_secs(20);

fn job(name: &str, script: &str, extra: Value) -> Job {
    let mut v = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "tuna", "trial": name}},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "trial", "image": "busybox", "command": ["sh", "-c", script]}]}}}});
    merge(&mut v, &extra);
    serde_json::from_value(v).expect("job")
}

fn merge(t: &mut Value, p: &Value) {
    match (t, p) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn job_condition(j: Option<&Job>, typ: &str) -> Option<(String, Option<String>)> {
    let conds = j?.status.as_ref()?.conditions.as_ref()?;
    conds.iter().find(|c| c.type_ == typ && c.status == "True").map(|c| (c.type_.clone(), c.reason.clone()))
}

async fn wait_job(api: &Api<Job>, name: &str, typ: &'static str) -> Job {
    let cond = move |j: Option<&Job>| job_condition(j, typ).is_some();
    tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("job {name} not {typ} in time"))
        .expect("await_condition")
        .expect("job exists")
}

async fn job_pods(client: &kube::Client, job: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await.expect("list pods").items
}

#[tokio::test]
async fn job_create_get_list_delete() {
    let fake = FakeKube::start().await;
    let client = fake.client();
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    jobs.create(&pp, &job("a", "sleep 5", json!({"metadata": {"labels": {"tier": "x"}}}))).await.unwrap();
    jobs.create(&pp, &job("b", "sleep 5", json!({"metadata": {"labels": {"tier": "y", "gpu": "1"}}}))).await.unwrap();
    let err = jobs.create(&pp, &job("a", "true", json!({}))).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"), "{err:?}");
    let got = jobs.get("a").await.unwrap();
    assert!(got.metadata.uid.is_some() && got.metadata.creation_timestamp.is_some());
    assert_eq!(got.metadata.generation, Some(1));
    assert_eq!(got.spec.as_ref().unwrap().backoff_limit, Some(0));
    let names = |l: kube::core::ObjectList<Job>| l.items.iter().map(|j| j.name_any()).collect::<Vec<_>>();
    assert_eq!(names(jobs.list(&ListParams::default().labels("tier=x")).await.unwrap()), ["a"]);
    assert_eq!(names(jobs.list(&ListParams::default().labels("tier!=x")).await.unwrap()), ["b"]);
    assert_eq!(names(jobs.list(&ListParams::default().labels("gpu")).await.unwrap()), ["b"]);
    assert_eq!(names(jobs.list(&ListParams::default().labels("tier in (x,y),app=tuna")).await.unwrap()), ["a", "b"]);
    assert_eq!(names(jobs.list(&ListParams::default().fields("metadata.name=b")).await.unwrap()), ["b"]);
    let all: Api<Job> = Api::all(client.clone());
    assert_eq!(all.list(&ListParams::default()).await.unwrap().items.len(), 2);
    // A Job's template restartPolicy must be Never or OnFailure, as in Kubernetes.
    let mut bad = serde_json::to_value(job("c", "true", json!({}))).unwrap();
    bad["spec"]["template"]["spec"].as_object_mut().unwrap().remove("restartPolicy");
    let err = jobs.create(&pp, &serde_json::from_value(bad).unwrap()).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 422), "{err:?}");
    // generateName
    let mut g = job("x", "true", json!({}));
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let created = jobs.create(&pp, &g).await.unwrap();
    assert!(created.name_any().starts_with("gen-") && created.name_any().len() == 9);
    // Background deletion takes the pods (and their processes) with it.
    let pod_of_a = loop {
        if let Some(p) = job_pods(&client, "a").await.pop() {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    jobs.delete("a", &DeleteParams::background()).await.unwrap();
    let err = jobs.get("a").await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"), "{err:?}");
    assert!(fake.get("pods", "default", &pod_of_a.name_any()).is_none());
    // Deleting without a policy orphans a Job's pods, as the Kubernetes API does for batch/v1 Jobs.
    let pod_of_b = loop {
        if let Some(p) = job_pods(&client, "b").await.pop() {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    jobs.delete("b", &DeleteParams::default()).await.unwrap();
    let orphan = fake.get("pods", "default", &pod_of_b.name_any()).expect("orphaned pod stays");
    assert!(orphan["metadata"]["ownerReferences"].is_null());
    fake.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn watch_sees_added_modified_deleted() {
    let fake = FakeKube::start().await;
    let jobs: Api<Job> = Api::default_namespaced(fake.client());
    let rv = jobs.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let wp = WatchParams::default().labels("trial=w").timeout(30);
    let mut stream = jobs.watch(&wp, &rv).await.unwrap().boxed();
    jobs.create(&PostParams::default(), &job("w", "exit 0", json!({}))).await.unwrap();
    jobs.create(&PostParams::default(), &job("other", "exit 0", json!({}))).await.unwrap();
    let mut seen = Vec::new();
    let mut deleted = false;
    while !seen.contains(&"DELETED") {
        let ev = tokio::time::timeout(WAIT, stream.next()).await.expect("watch event").expect("stream open").unwrap();
        let (kind, j) = match ev {
            WatchEvent::Added(j) => ("ADDED", j),
            WatchEvent::Modified(j) => ("MODIFIED", j),
            WatchEvent::Deleted(j) => ("DELETED", j),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("{e:?}"),
        };
        assert_eq!(j.name_any(), "w");
        seen.push(kind);
        if job_condition(Some(&j), "Complete").is_some() && !deleted {
            jobs.delete("w", &DeleteParams::background()).await.unwrap();
            deleted = true;
        }
    }
    assert_eq!(seen[0], "ADDED");
    assert!(seen.contains(&"MODIFIED"));
}

#[tokio::test]
async fn job_completes_with_logs() {
    let fake = FakeKube::start().await;
    let client = fake.client();
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let script = "echo start; sleep 1; echo epoch=1 accuracy=0.5 >&2; echo lr=$LR; exit 0";
    let extra = json!({"spec": {"template": {"spec": {"containers": [{"name": "trial", "image": "busybox",
        "command": ["sh", "-c", script], "env": [{"name": "LR", "value": "0.01"}]}]}}}});
    jobs.create(&PostParams::default(), &job("ok", "", extra)).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod = loop {
        if let Some(p) = job_pods(&client, "ok").await.pop() {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let pod_name = pod.name_any();
    assert!(pod_name.starts_with("ok-") && pod_name.len() == 8, "{pod_name}");
    assert_eq!(pod.labels().get("batch.kubernetes.io/job-name").map(String::as_str), Some("ok"));
    assert_eq!(pod.owner_references()[0].kind, "Job");
    let running = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref()).is_some_and(|ph| ph != "Pending")
    };
    tokio::time::timeout(WAIT, await_condition(pods.clone(), &pod_name, running)).await.unwrap().unwrap();
    let lp = LogParams { follow: true, container: Some("trial".into()), ..Default::default() };
    let lines: Vec<String> =
        tokio::time::timeout(WAIT, pods.log_stream(&pod_name, &lp).await.unwrap().lines().try_collect())
            .await
            .expect("follow ends when the container ends")
            .unwrap();
    assert_eq!(lines, ["start", "epoch=1 accuracy=0.5", "lr=0.01"]);
    let done = wait_job(&jobs, "ok", "Complete").await;
    let st = done.status.unwrap();
    assert_eq!(st.succeeded, Some(1));
    assert!(st.completion_time.is_some() && st.start_time.is_some());
    let log = pods.logs(&pod_name, &LogParams::default()).await.unwrap();
    assert!(log.contains("epoch=1 accuracy=0.5\n"), "{log}");
    let pod = pods.get(&pod_name).await.unwrap();
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let term = status.container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap();
    assert_eq!((term.exit_code, term.reason.as_deref()), (0, Some("Completed")));
    // The fake's own events parse as core/v1 Events.
    let events: Api<CoreEvent> = Api::default_namespaced(client.clone());
    let evs = events.list(&ListParams::default()).await.unwrap().items;
    assert!(evs.iter().any(|e| e.reason.as_deref() == Some("SuccessfulCreate")));
    assert!(evs.iter().any(|e| e.reason.as_deref() == Some("Completed")));
}

#[tokio::test]
async fn failing_job_uses_backoff_limit() {
    let fake = FakeKube::start().await;
    let client = fake.client();
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(&PostParams::default(), &job("bad", "echo oops; exit 3", json!({"spec": {"backoffLimit": 2}})))
        .await
        .unwrap();
    let done = wait_job(&jobs, "bad", "Failed").await;
    assert_eq!(job_condition(Some(&done), "Failed").unwrap().1.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(done.status.as_ref().unwrap().failed, Some(3));
    let pods = job_pods(&client, "bad").await;
    assert_eq!(pods.len(), 3);
    for p in pods {
        let s = p.status.unwrap();
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let t = s.container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    }
    // No command: the pod fails with a clear message.
    let mut nocmd = serde_json::to_value(job("nocmd", "", json!({}))).unwrap();
    nocmd["spec"]["template"]["spec"]["containers"][0].as_object_mut().unwrap().remove("command");
    jobs.create(&PostParams::default(), &serde_json::from_value(nocmd).unwrap()).await.unwrap();
    wait_job(&jobs, "nocmd", "Failed").await;
    let p = job_pods(&client, "nocmd").await.pop().unwrap();
    let t = p.status.unwrap().container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap();
    assert_eq!(t.reason.as_deref(), Some("StartError"));
    assert!(t.message.unwrap().contains("no command"));
}

#[tokio::test]
async fn active_deadline_kills_the_process() {
    let fake = FakeKube::start().await;
    let client = fake.client();
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let started = std::time::Instant::now();
    jobs.create(&PostParams::default(), &job("slow", "sleep 30", json!({"spec": {"activeDeadlineSeconds": 1}})))
        .await
        .unwrap();
    let done = wait_job(&jobs, "slow", "Failed").await;
    assert_eq!(job_condition(Some(&done), "Failed").unwrap().1.as_deref(), Some("DeadlineExceeded"));
    assert!(started.elapsed() < Duration::from_secs(10));
    for _ in 0..100 {
        if fake.running_pids().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fake.running_pids().is_empty(), "sleep 30 was killed");
    assert!(job_pods(&client, "slow").await.is_empty(), "active pods are deleted");
}

#[tokio::test]
async fn gpu_pods_wait_for_capacity() {
    let fake = FakeKube::start().await;
    let client = fake.client();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "cuda",
            "command": ["echo", "gpu"], "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let unschedulable = |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "PodScheduled").cloned())
            .is_some_and(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
    };
    let p = tokio::time::timeout(WAIT, await_condition(pods.clone(), "gpu", unschedulable))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let cond = p.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "PodScheduled").unwrap();
    assert!(cond.message.unwrap().starts_with("0/1 nodes are available: 1 Insufficient nvidia.com/gpu."));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pods.get("gpu").await.unwrap().status.unwrap().phase.as_deref(), Some("Pending"));
    assert!(fake.objects("events").iter().any(|e| e["reason"] == "FailedScheduling"));
    fake.set_gpu_capacity(1);
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get("fake-node").await.unwrap();
    assert_eq!(node.status.unwrap().capacity.unwrap()["nvidia.com/gpu"].0, "1");
    let succeeded = |p: Option<&Pod>| p.and_then(|p| p.status.as_ref()?.phase.clone()).as_deref() == Some("Succeeded");
    tokio::time::timeout(WAIT, await_condition(pods.clone(), "gpu", succeeded)).await.unwrap().unwrap();
    assert_eq!(fake.pod_log("default", "gpu").as_deref(), Some("gpu\n"));
}

#[tokio::test]
async fn experiment_status_and_finalizer() {
    let fake = FakeKube::start().await;
    let api: Api<Experiment> = Api::default_namespaced(fake.client());
    let mut e = Experiment::new("exp", ExperimentSpec { trials: 3 });
    e.status = Some(ExperimentStatus { phase: Some("Ignored".into()), best: None });
    api.create(&PostParams::default(), &e).await.unwrap();
    assert!(api.get("exp").await.unwrap().status.is_none(), "status is ignored on create");
    api.patch_status("exp", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Running"}})))
        .await
        .unwrap();
    let apply = json!({"apiVersion": "tuna.dev/v1alpha1", "kind": "Experiment", "status": {"best": 0.5}});
    api.patch_status("exp", &PatchParams::apply("tuna").force(), &Patch::Apply(apply)).await.unwrap();
    let got = api.get("exp").await.unwrap();
    let st = got.status.clone().unwrap();
    assert_eq!((st.phase.as_deref(), st.best), (Some("Running"), Some(0.5)));
    assert_eq!(got.metadata.generation, Some(1));
    let p = json!({"spec": {"trials": 5}, "status": {"phase": "Hacked"}});
    let got = api.patch("exp", &PatchParams::default(), &Patch::Merge(p)).await.unwrap();
    assert_eq!((got.spec.trials, got.status.unwrap().phase.as_deref()), (5, Some("Running")));
    assert_eq!(got.metadata.generation, Some(2));
    // Optimistic concurrency: a stale resourceVersion conflicts.
    let mut stale = api.get("exp").await.unwrap();
    api.patch("exp", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})))
        .await
        .unwrap();
    stale.spec.trials = 9;
    let err = api.replace("exp", &PostParams::default(), &stale).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"), "{err:?}");

    let cleaned = Arc::new(AtomicUsize::new(0));
    let run = |obj: Experiment| {
        let cleaned = cleaned.clone();
        let api = api.clone();
        async move {
            finalizer(&api, "tuna.dev/cleanup", Arc::new(obj), |ev| async move {
                if let FinalizerEvent::Cleanup(_) = ev {
                    cleaned.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<_, std::io::Error>(Action::await_change())
            })
            .await
            .unwrap()
        }
    };
    run(api.get("exp").await.unwrap()).await;
    assert_eq!(api.get("exp").await.unwrap().finalizers(), ["tuna.dev/cleanup"]);
    run(api.get("exp").await.unwrap()).await; // Apply branch
    let d = api.delete("exp", &DeleteParams::default()).await.unwrap();
    assert!(d.is_left(), "deletion waits for the finalizer");
    let pending = api.get("exp").await.unwrap();
    assert!(pending.metadata.deletion_timestamp.is_some());
    run(pending).await;
    assert_eq!(cleaned.load(Ordering::SeqCst), 1);
    assert!(api.get_opt("exp").await.unwrap().is_none(), "removed once finalizers are empty");
    // json-patch `test` failures are errors.
    api.create(&PostParams::default(), &Experiment::new("exp2", ExperimentSpec { trials: 1 })).await.unwrap();
    // (the json_patch::Patch type is inferred: kube does not re-export the json-patch crate)
    let jp = serde_json::from_value(json!([{"op": "test", "path": "/spec/trials", "value": 2}])).unwrap();
    let err = api.patch("exp2", &PatchParams::default(), &Patch::Json::<()>(jp)).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 422), "{err:?}");
}

struct Ctx {
    client: kube::Client,
    reconciles: AtomicUsize,
}

async fn reconcile(exp: Arc<Experiment>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let ns = exp.namespace().unwrap();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let name = format!("{}-trial-0", exp.name_any());
    let recorder = Recorder::new(ctx.client.clone(), Reporter { controller: "tuna".into(), instance: None });
    if jobs.get_opt(&name).await?.is_none() {
        let mut j = job(&name, "sleep 2; echo epoch=1 accuracy=0.9", json!({}));
        j.metadata.owner_references = Some(vec![exp.controller_owner_ref(&()).unwrap()]);
        jobs.create(&PostParams::default(), &j).await?;
        let ev = Event {
            type_: EventType::Normal,
            reason: "TrialCreated".into(),
            note: Some(name.clone()),
            action: "Create".into(),
            secondary: None,
        };
        recorder.publish(&ev, &exp.object_ref(&())).await?;
        recorder.publish(&ev, &exp.object_ref(&())).await?; // a repeat is a patch of the same event
    }
    let j = jobs.get(&name).await?;
    if job_condition(Some(&j), "Complete").is_some() {
        let exps: Api<Experiment> = Api::namespaced(ctx.client.clone(), &ns);
        exps.patch_status(
            &exp.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Succeeded", "best": 0.9}})),
        )
        .await?;
    }
    Ok(Action::await_change())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_reconciles_through_list_and_watch() {
    let fake = FakeKube::start().await;
    let client = fake.client();
    let ctx = Arc::new(Ctx { client: client.clone(), reconciles: AtomicUsize::new(0) });
    // Watches that time out after 1s make the watchers resume from their last resourceVersion.
    let controller = Controller::new(Api::<Experiment>::all(client.clone()), watcher::Config::default().timeout(1))
        .owns(Api::<Job>::all(client.clone()), watcher::Config::default().timeout(1))
        .run(reconcile, |_, e, _| panic!("reconcile failed: {e}"), ctx.clone())
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);
    let api: Api<Experiment> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &Experiment::new("ctl", ExperimentSpec { trials: 1 })).await.unwrap();
    let done = fake.wait_for("experiments", "default", "ctl", WAIT, |v| v["status"]["phase"] == "Succeeded").await;
    handle.abort();
    assert!(done.is_some(), "the Job's completion (an owned-object watch event) reconciled the Experiment");
    assert!(ctx.reconciles.load(Ordering::SeqCst) >= 2);
    let events: Vec<Value> = fake.objects("events").into_iter().filter(|e| e["reason"] == "TrialCreated").collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["apiVersion"], "events.k8s.io/v1");
    assert_eq!(events[0]["series"]["count"], 2);
}

#[tokio::test]
async fn on_failure_restarts_in_place_and_pod_delete_kills() {
    let fake = FakeKube::start().await;
    let client = fake.client();
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    // The working directory (a temp dir per pod) survives restarts of the container.
    let script = "if [ -f marker ]; then echo second; exit 0; fi; touch marker; echo first; exit 1";
    let extra = json!({"spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "OnFailure"}}}});
    jobs.create(&PostParams::default(), &job("retry", script, extra)).await.unwrap();
    wait_job(&jobs, "retry", "Complete").await;
    let pods = job_pods(&client, "retry").await;
    assert_eq!(pods.len(), 1);
    let cs = pods[0].status.clone().unwrap().container_statuses.unwrap()[0].clone();
    assert_eq!(cs.restart_count, 1);
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let name = pods[0].name_any();
    assert_eq!(api.logs(&name, &LogParams::default()).await.unwrap(), "second\n");
    let prev = LogParams { previous: true, ..Default::default() };
    assert_eq!(api.logs(&name, &prev).await.unwrap(), "first\n");

    // Deleting a running pod kills its process group (the shell and its child).
    let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x",
            "command": ["sh", "-c", "sleep 30; echo never"]}]}}))
    .unwrap();
    api.create(&PostParams::default(), &pod).await.unwrap();
    let running = |p: Option<&Pod>| p.and_then(|p| p.status.as_ref()?.phase.clone()).as_deref() == Some("Running");
    tokio::time::timeout(WAIT, await_condition(api.clone(), "sleeper", running)).await.unwrap().unwrap();
    assert_eq!(fake.running_pids().len(), 1);
    let err =
        api.logs("sleeper", &LogParams { container: Some("nope".into()), ..Default::default() }).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 400), "{err:?}");
    api.delete("sleeper", &DeleteParams::default()).await.unwrap();
    for _ in 0..100 {
        if fake.running_pids().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fake.running_pids().is_empty());
}

#[tokio::test]
async fn discovery_crds_leases_and_streaming_lists() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let fake = FakeKube::start().await;
    let client = fake.client();
    let info = client.apiserver_version().await.unwrap();
    assert_eq!(info.minor, "33");
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    assert!(discovery.has_group("tuna.dev") && discovery.has_group("batch"));
    // A CRD created through the API is established and served.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crd = Experiment::crd();
    crd.spec.group = "other.dev".into();
    crd.spec.names.plural = "widgets".into();
    crd.spec.names.kind = "Widget".into();
    crd.metadata.name = Some("widgets.other.dev".into());
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let established = kube::runtime::conditions::is_crd_established();
    tokio::time::timeout(WAIT, await_condition(crds.clone(), "widgets.other.dev", established)).await.unwrap().unwrap();
    let widgets: Api<kube::api::DynamicObject> = Api::default_namespaced_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("other.dev", "v1alpha1", "Widget"),
            "widgets",
        ),
    );
    let w: kube::api::DynamicObject =
        serde_json::from_value(json!({"apiVersion": "other.dev/v1alpha1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"trials": 1}}))
        .unwrap();
    widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(widgets.list(&ListParams::default()).await.unwrap().items.len(), 1);
    // Leases (leader election)
    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    let l: Lease = serde_json::from_value(json!({"metadata": {"name": "tuna-leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}))
    .unwrap();
    leases.create(&PostParams::default(), &l).await.unwrap();
    let mut got = leases.get("tuna-leader").await.unwrap();
    got.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases.replace("tuna-leader", &PostParams::default(), &got).await.unwrap();
    let err = leases.replace("tuna-leader", &PostParams::default(), &got).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 409), "stale resourceVersion: {err:?}");
    // Streaming lists (sendInitialEvents) and ordinary list+watch both see existing objects.
    let exps: Api<Experiment> = Api::default_namespaced(client.clone());
    exps.create(&PostParams::default(), &Experiment::new("s1", ExperimentSpec { trials: 1 })).await.unwrap();
    for cfg in [watcher::Config::default().streaming_lists(), watcher::Config::default()] {
        let mut w = watcher(Api::<Experiment>::all(client.clone()), cfg).boxed();
        let mut names = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, w.next()).await.unwrap().unwrap().unwrap() {
                watcher::Event::InitApply(e) => names.push(e.name_any()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!(names, ["s1"]);
    }
}

#[tokio::test]
async fn too_old_resource_version_is_410_and_watchers_relist() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let fake = FakeKube::start().await;
    fake.set_watch_history(3);
    let client = fake.client();
    let exps: Api<Experiment> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let rv = exps.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let cm = |n: usize| serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": format!("cm{n}")}})).unwrap();
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(i)).await.unwrap();
    }
    let mut s = exps.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    match s.next().await {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("{other:?}"),
    }
    let mut w = watcher(Api::<Experiment>::all(client.clone()), watcher::Config::default().timeout(1)).boxed();
    let mut inits = 0;
    let (mut seen_late, mut expired) = (false, false);
    while inits < 2 || !seen_late {
        match tokio::time::timeout(WAIT, w.next()).await.expect("watcher event").unwrap() {
            Ok(watcher::Event::InitDone) => {
                inits += 1;
                if inits == 1 {
                    exps.create(&PostParams::default(), &Experiment::new("late", ExperimentSpec { trials: 1 }))
                        .await
                        .unwrap();
                    for i in 5..15 {
                        cms.create(&PostParams::default(), &cm(i)).await.unwrap();
                    }
                }
            }
            Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => seen_late |= e.name_any() == "late",
            Ok(_) => {}
            // The watcher reports the 410 from its resumed watch, then relists.
            Err(watcher::Error::WatchError(e)) if e.code == 410 => expired = true,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(expired);
}
