//! The fake API server is as unkind as a cluster: what it does to pods and Jobs that a tutorial
//! cluster never shows, checked through a real `kube::Client` (see tests/fake_kube.rs for the rest).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use support::fake_kube::FakeKube;

const WAIT: Duration = Duration::from_secs(20);

fn job(name: &str, spec: Value) -> Job {
    let mut v = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "trial", "image": "busybox", "command": ["sh", "-c", "sleep 30"]}]}}}});
    for (k, val) in spec.as_object().unwrap() {
        v["spec"][k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn pods_of(fake: &FakeKube, job: &str) -> Vec<Value> {
    fake.objects("pods").into_iter().filter(|p| p["metadata"]["labels"]["job-name"] == job).collect()
}

async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_evicted_pod_is_replaced_when_the_policy_ignores_disruptions_and_fails_the_job_otherwise() {
    let fake = FakeKube::start().await;
    let jobs: Api<Job> = Api::default_namespaced(fake.client());
    let policy =
        json!({"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]});
    jobs.create(&PostParams::default(), &job("tolerant", json!({"podFailurePolicy": policy}))).await.unwrap();
    jobs.create(&PostParams::default(), &job("plain", json!({}))).await.unwrap();
    for name in ["tolerant", "plain"] {
        until("a running pod", || pods_of(&fake, name).iter().any(|p| p["status"]["phase"] == "Running")).await;
        assert!(fake.evict("default", pods_of(&fake, name)[0]["metadata"]["name"].as_str().unwrap()));
    }
    until("a replacement pod", || pods_of(&fake, "tolerant").len() == 2).await;
    let evicted = pods_of(&fake, "tolerant").into_iter().find(|p| p["status"]["phase"] == "Failed").unwrap();
    let conditions = evicted["status"]["conditions"].as_array().unwrap();
    assert!(conditions.iter().any(|c| c["type"] == "DisruptionTarget" && c["status"] == "True"), "{evicted}");
    let failed =
        |j: &Value| j["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Failed"));
    until("the plain Job failed", || fake.get("jobs", "default", "plain").is_some_and(|j| failed(&j))).await;
    assert!(!failed(&fake.get("jobs", "default", "tolerant").unwrap()));
}

#[tokio::test]
async fn fail_job_on_the_named_containers_exit_code_and_statuses_listed_by_name() {
    let fake = FakeKube::start().await;
    let jobs: Api<Job> = Api::default_namespaced(fake.client());
    let policy = json!({"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "trial", "operator": "NotIn", "values": [0]}}]});
    let template = json!({"spec": {"restartPolicy": "Never", "containers": [
        {"name": "trial", "image": "busybox", "command": ["sh", "-c", "exit 3"]},
        {"name": "istio-proxy", "image": "proxyv2"}]}});
    let spec = json!({"backoffLimit": 5, "podFailurePolicy": policy, "template": template});
    jobs.create(&PostParams::default(), &job("fails", spec)).await.unwrap();
    let reason = |j: &Value| {
        j["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Failed").map(|c| c["reason"].clone()))
    };
    until("the Job failed", || fake.get("jobs", "default", "fails").is_some_and(|j| reason(&j).is_some())).await;
    assert_eq!(reason(&fake.get("jobs", "default", "fails").unwrap()).unwrap(), "PodFailurePolicy");
    assert_eq!(pods_of(&fake, "fails").len(), 1, "no retry despite backoffLimit 5");
    let statuses = pods_of(&fake, "fails")[0]["status"]["containerStatuses"].clone();
    assert_eq!((statuses[0]["name"].as_str(), statuses[1]["name"].as_str()), (Some("istio-proxy"), Some("trial")));
}

#[tokio::test]
async fn pods_that_cannot_start_wait_with_the_reason_a_kubelet_gives() {
    let fake = FakeKube::start().await;
    fake.refuse_image("nope:1");
    fake.create_namespace_with_labels("secure", json!({"pod-security.kubernetes.io/enforce": "restricted"}));
    fake.queue_jobs("default");
    let jobs: Api<Job> = Api::default_namespaced(fake.client());
    let mut pull = job("pull", json!({}));
    pull.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].image = Some("nope:1".into());
    jobs.create(&PostParams::default(), &pull).await.unwrap();
    let created = fake.get("jobs", "default", "pull").unwrap();
    assert_eq!(created["spec"]["suspend"], true, "the queue suspends new Jobs");
    let suspended = |j: &Value| {
        j["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Suspended" && c["status"] == "True"))
    };
    until("the Suspended condition", || fake.get("jobs", "default", "pull").is_some_and(|j| suspended(&j))).await;
    assert!(pods_of(&fake, "pull").is_empty());
    fake.admit_jobs("default");
    let waiting = |r: &str| {
        pods_of(&fake, "pull")
            .first()
            .is_some_and(|p| p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == r)
    };
    until("ImagePullBackOff", || waiting("ImagePullBackOff")).await;
    let locked: Api<Job> = Api::namespaced(fake.client(), "secure");
    locked.create(&PostParams::default(), &job("locked", json!({}))).await.unwrap();
    let refused = |e: &Value| e["reason"] == "FailedCreate" && e.to_string().contains("violates PodSecurity");
    until("a FailedCreate Event", || fake.objects("events").iter().any(refused)).await;
    assert!(pods_of(&fake, "locked").is_empty());
}

/// A container whose env names a Secret's key waits (CreateContainerConfigError, as a kubelet
/// reports it) while the Secret or its key is missing, then starts with the Secret's value.
#[tokio::test]
async fn a_secret_key_ref_holds_the_container_until_the_secret_has_the_key_then_gives_its_value() {
    use k8s_openapi::api::core::v1::Secret;
    let fake = FakeKube::start().await;
    let jobs: Api<Job> = Api::default_namespaced(fake.client());
    let secrets: Api<Secret> = Api::default_namespaced(fake.client());
    let mut reads = job("reads", json!({}));
    let c = &mut reads.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0];
    c.command = Some(vec!["sh".into(), "-c".into(), "test \"$TOKEN\" = 's3cr$t'".into()]);
    c.env = Some(vec![
        serde_json::from_value(
            json!({"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}}),
        )
        .unwrap(),
    ]);
    jobs.create(&PostParams::default(), &reads).await.unwrap();
    let waiting = |message: &str| {
        pods_of(&fake, "reads").first().is_some_and(|p| {
            let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
            w["reason"] == "CreateContainerConfigError" && w["message"].as_str().unwrap_or_default().contains(message)
        })
    };
    until("waiting for the Secret", || waiting("secret \"tok\" not found")).await;
    let secret = |key: &str| -> Secret {
        serde_json::from_value(json!({"metadata": {"name": "tok"}, "data": {key: "czNjciR0"}})).unwrap() // "s3cr$t"
    };
    secrets.create(&PostParams::default(), &secret("other")).await.unwrap();
    until("waiting for the key", || waiting("couldn't find key token in secret default/tok")).await;
    secrets.delete("tok", &Default::default()).await.unwrap();
    secrets.create(&PostParams::default(), &secret("token")).await.unwrap();
    let complete = |j: &Value| {
        j["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Complete" && c["status"] == "True"))
    };
    until("the Job completes with the Secret's value", || {
        fake.get("jobs", "default", "reads").is_some_and(|j| complete(&j))
    })
    .await;
}
