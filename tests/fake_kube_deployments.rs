//! The fake API server's Deployment and ReplicaSet controllers, through a real `kube::Client`:
//! a rollout completes, a crash-looping one times out while the old pods keep serving, a
//! rollback reuses the first ReplicaSet, and deleting the Deployment takes its pods' processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::fake_kube::FakeKube;

const WAIT: Duration = Duration::from_secs(20);

fn deployment(command: Value, extra: Value) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "serve", "image": "busybox", "command": command}]}}},
    });
    merge(&mut d, &extra);
    d
}

fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        _ => *target = patch.clone(),
    }
}

fn sleeping() -> Value {
    deployment(json!(["sleep", "3600"]), json!({}))
}

fn condition<'a>(d: &'a Value, typ: &str) -> Option<&'a Value> {
    d["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == typ)
}

fn progressing_reason(d: &Value) -> String {
    condition(d, "Progressing").map_or(String::new(), |c| format!("{}/{}", c["status"], c["reason"]))
}

async fn wait_deployment(fake: &FakeKube, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let found = fake.wait_for("deployments", "default", "web", WAIT, f).await;
    found.unwrap_or_else(|| panic!("the Deployment {what}: {:#}", fake.get("deployments", "default", "web").unwrap()))
}

fn complete(d: &Value) -> bool {
    d["status"]["observedGeneration"] == d["metadata"]["generation"]
        && progressing_reason(d) == r#""True"/"NewReplicaSetAvailable""#
}

fn owned_by<'a>(objects: &'a [Value], owner: &Value) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]).collect()
}

/// The pid of each pod's running container (the fake kubelet's containerID is `fake://<pid>`).
fn pids(pods: &[&Value]) -> Vec<i32> {
    pods.iter()
        .filter(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
        .filter_map(|p| {
            p["status"]["containerStatuses"][0]["containerID"].as_str()?.strip_prefix("fake://")?.parse().ok()
        })
        .collect()
}

async fn eventually(what: &str, f: impl Fn() -> bool) {
    let end = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < end, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn apply(api: &Api<Deployment>, d: &Value) {
    let params = PatchParams::apply("tuna").force();
    api.patch("web", &params, &Patch::Apply(d)).await.unwrap();
}

#[tokio::test]
async fn a_deployment_becomes_available_through_one_replica_set_of_running_pods() {
    let fake = FakeKube::start().await;
    let api: Api<Deployment> = Api::default_namespaced(fake.client());
    api.create(&PostParams::default(), &serde_json::from_value(sleeping()).unwrap()).await.unwrap();
    let d = wait_deployment(&fake, "completes", complete).await;
    let available = condition(&d, "Available").unwrap();
    assert_eq!((&available["status"], &available["reason"]), (&json!("True"), &json!("MinimumReplicasAvailable")));
    let status = &d["status"];
    assert_eq!(
        [&status["replicas"], &status["updatedReplicas"], &status["readyReplicas"], &status["availableReplicas"]],
        [&json!(2); 4],
        "{status}"
    );
    assert!(status["unavailableReplicas"].is_null(), "a zero counter is omitted: {status}");
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1");
    // As typed objects, the same.
    let typed = api.get("web").await.unwrap();
    assert_eq!(typed.status.unwrap().available_replicas, Some(2));

    let sets = fake.objects("replicasets");
    let sets = owned_by(&sets, &d);
    assert_eq!(sets.len(), 1, "one ReplicaSet for one template: {sets:#?}");
    let rs = sets[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"].as_str().unwrap();
    assert_eq!(hash.len(), 10);
    assert!(hash.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()), "{hash}");
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(rs["metadata"]["ownerReferences"][0]["blockOwnerDeletion"], true);
    assert_eq!(rs["spec"]["selector"]["matchLabels"]["pod-template-hash"], hash);
    assert_eq!(rs["spec"]["template"]["metadata"]["labels"]["app"], "web");
    assert_eq!(rs["status"]["availableReplicas"], 2);
    let typed: ReplicaSet = serde_json::from_value(rs.clone()).unwrap();
    assert_eq!(typed.spec.unwrap().replicas, Some(2));

    let pods = fake.objects("pods");
    let pods = owned_by(&pods, rs);
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap();
        let suffix = name.strip_prefix(&format!("web-{hash}-")).unwrap_or_else(|| panic!("pod name {name}"));
        assert_eq!(suffix.len(), 5, "{name}");
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash);
        assert_eq!(p["status"]["phase"], "Running");
    }
    let running = pids(&pods);
    assert_eq!(running.len(), 2);
    assert!(running.iter().all(|p| fake.running_pids().contains(p)), "{running:?} run");
    let events = fake.objects("events");
    assert!(
        events.iter().any(|e| e["reason"] == "ScalingReplicaSet"
            && e["message"] == format!("Scaled up replica set web-{hash} from 0 to 2")
            && e["involvedObject"]["kind"] == "Deployment"),
        "the scaling Event"
    );
}

#[tokio::test]
async fn a_crash_looping_rollout_times_out_while_the_old_pods_serve_and_a_rollback_completes_it() {
    let fake = FakeKube::start().await;
    let api: Api<Deployment> = Api::default_namespaced(fake.client());
    let first = deployment(json!(["sleep", "3600"]), json!({"spec": {"progressDeadlineSeconds": 2}}));
    apply(&api, &first).await;
    let d = wait_deployment(&fake, "completes", complete).await;
    let first_rs = owned_by(&fake.objects("replicasets"), &d)[0].clone();
    let first_name = first_rs["metadata"]["name"].as_str().unwrap().to_string();
    let old_pods: Vec<Value> = owned_by(&fake.objects("pods"), &first_rs).into_iter().cloned().collect();
    let old_pids = pids(&old_pods.iter().collect::<Vec<_>>());
    assert_eq!(old_pids.len(), 2);

    let crashing = deployment(json!(["sh", "-c", "exit 1"]), json!({"spec": {"progressDeadlineSeconds": 2}}));
    apply(&api, &crashing).await;
    let d =
        wait_deployment(&fake, "times out", |d| progressing_reason(d) == r#""False"/"ProgressDeadlineExceeded""#).await;
    let sets = fake.objects("replicasets");
    let sets = owned_by(&sets, &d);
    assert_eq!(sets.len(), 2);
    let new_rs = sets.iter().find(|rs| rs["metadata"]["name"] != first_name.as_str()).unwrap();
    let new_name = new_rs["metadata"]["name"].as_str().unwrap().to_string();
    let progressing = condition(&d, "Progressing").unwrap();
    assert_eq!(progressing["message"], format!("ReplicaSet \"{new_name}\" has timed out progressing."));
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2");
    assert_eq!(condition(&d, "Available").unwrap()["status"], "True", "the old pods are available");
    assert_eq!(d["status"]["updatedReplicas"], 2, "{}", d["status"]);
    let new_pods = owned_by(&fake.objects("pods"), new_rs).into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(new_pods.len(), 2);
    let crash_loop =
        |p: &Value| p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff";
    eventually("a new pod shows CrashLoopBackOff", || {
        fake.objects("pods")
            .iter()
            .any(|p| p["metadata"]["ownerReferences"][0]["uid"] == new_rs["metadata"]["uid"] && crash_loop(p))
    })
    .await;
    let still: Vec<Value> = owned_by(&fake.objects("pods"), &first_rs).into_iter().cloned().collect();
    assert_eq!(
        still.iter().map(|p| &p["metadata"]["uid"]).collect::<Vec<_>>(),
        old_pods.iter().map(|p| &p["metadata"]["uid"]).collect::<Vec<_>>(),
        "the old pods are kept"
    );
    assert!(old_pids.iter().all(|p| fake.running_pids().contains(p)), "the old pods' processes still run");

    // Rolling back as tuna does: server-side apply of the first template.
    apply(&api, &first).await;
    let d = wait_deployment(&fake, "completes again", |d| {
        complete(d) && d["status"]["replicas"] == 2 && d["status"]["updatedReplicas"] == 2
    })
    .await;
    let sets = fake.objects("replicasets");
    let sets = owned_by(&sets, &d);
    assert_eq!(sets.len(), 2, "no third ReplicaSet");
    let reused = sets.iter().find(|rs| rs["metadata"]["name"] == first_name.as_str()).unwrap();
    assert_eq!(reused["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3");
    assert_eq!(reused["metadata"]["uid"], first_rs["metadata"]["uid"], "the same ReplicaSet");
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3");
    assert_eq!(
        condition(&d, "Progressing").unwrap()["message"],
        format!("ReplicaSet \"{first_name}\" has successfully progressed.")
    );
    let crashed = sets.iter().find(|rs| rs["metadata"]["name"] == new_name.as_str()).unwrap();
    assert_eq!(crashed["spec"]["replicas"], 0);
    eventually("the crashing pods are gone", || owned_by(&fake.objects("pods"), crashed).is_empty()).await;
    eventually("only the first ReplicaSet's processes run", || {
        let mut running = fake.running_pids();
        running.sort();
        let mut want = old_pids.clone();
        want.sort();
        running == want
    })
    .await;
    let events = fake.objects("events");
    assert!(
        events.iter().any(|e| e["message"] == format!("Scaled down replica set {new_name} from 2 to 0")),
        "the scale-down Event"
    );
}

#[tokio::test]
async fn deleting_a_deployment_deletes_its_replica_sets_pods_and_processes() {
    let fake = FakeKube::start().await;
    let api: Api<Deployment> = Api::default_namespaced(fake.client());
    api.create(&PostParams::default(), &serde_json::from_value(sleeping()).unwrap()).await.unwrap();
    let d = wait_deployment(&fake, "completes", complete).await;
    let rs = owned_by(&fake.objects("replicasets"), &d)[0].clone();
    let running = pids(&owned_by(&fake.objects("pods"), &rs));
    assert_eq!(running.len(), 2);
    api.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("the ReplicaSet and pods are gone", || {
        fake.objects("replicasets").is_empty() && fake.objects("pods").is_empty()
    })
    .await;
    eventually("their processes are gone", || fake.running_pids().iter().all(|p| !running.contains(p))).await;
    assert!(fake.get("deployments", "default", "web").is_none());
}

#[tokio::test]
async fn a_deployment_whose_selector_does_not_match_its_template_is_refused() {
    let fake = FakeKube::start().await;
    let api: Api<Deployment> = Api::default_namespaced(fake.client());
    let wrong = deployment(json!(["sleep", "1"]), json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}}));
    let err = api.create(&PostParams::default(), &serde_json::from_value(wrong).unwrap()).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 422 && s.message.contains("`selector` does not match template `labels`")),
        "{err:?}"
    );
}
