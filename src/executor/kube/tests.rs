use std::path::PathBuf;

use super::job::{ATTEMPT_ANNOTATION, IDENTITY_LABEL, TOKEN_ENV, TOKEN_KEY, is_trial_of, render_job, token_secret};
use crate::executor::Launch;
use crate::spec::{ExecutorKind, TrialTemplate};

/// A launch of trial `dup-0000` of the experiment `dup` whose identity is `identity`.
pub fn launch(identity: &str, attempt: u32) -> Launch {
    Launch {
        experiment: "dup".into(),
        trial: "dup-0000".into(),
        command: vec!["sh".into(), "-c".into(), "echo score=1".into()],
        env: Vec::new(),
        working_dir: PathBuf::from("."),
        trial_dir: PathBuf::from("/tmp/dup-0000"),
        timeout: None,
        start_timeout: None,
        gpus: 0,
        executor: ExecutorKind::Kubernetes,
        template: TrialTemplate { image: Some("busybox".into()), ..Default::default() },
        pod_template: None,
        namespace: None,
        owner: None,
        identity: identity.into(),
        attempt,
        resume: true,
    }
}

#[test]
fn a_job_carries_its_experiments_identity_and_the_trials_attempt() {
    let job = render_job(&launch("uid-1", 2), "default").unwrap();
    assert_eq!(job.metadata.labels.as_ref().unwrap()[IDENTITY_LABEL], "uid-1");
    assert_eq!(job.metadata.annotations.as_ref().unwrap()[ATTEMPT_ANNOTATION], "2");
}

#[test]
fn a_job_of_another_experiment_of_the_same_name_is_not_this_trials() {
    let job = render_job(&launch("uid-1", 1), "default").unwrap();
    assert!(is_trial_of(&job, &launch("uid-1", 1)));
    assert!(!is_trial_of(&job, &launch("uid-2", 1)), "another experiment called dup");
    let unlabelled = render_job(&launch("", 1), "default").unwrap();
    assert!(!is_trial_of(&unlabelled, &launch("uid-1", 1)), "a Job without identity is nobody's");
}

#[test]
fn shm_size_mounts_a_memory_backed_empty_dir_at_dev_shm_in_the_trial_container() {
    let mut l = launch("uid-1", 0);
    l.template.shm_size = Some("1Gi".into());
    l.pod_template = Some(serde_json::json!({"spec": {"containers": [
        {"name": "sidecar", "image": "busybox"}, {"name": "train", "image": "busybox"}]}}));
    l.template.primary_container = Some("train".into());
    let job = serde_json::to_value(render_job(&l, "default").unwrap()).unwrap();
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"],
        serde_json::json!([{"name": "tuna-shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}])
    );
    assert_eq!(
        pod["containers"][1]["volumeMounts"],
        serde_json::json!([{"name": "tuna-shm", "mountPath": "/dev/shm"}])
    );
    assert!(pod["containers"][0]["volumeMounts"].is_null(), "only the trial's container: {pod}");

    let plain = serde_json::to_value(render_job(&launch("uid-1", 0), "default").unwrap()).unwrap();
    assert!(plain["spec"]["template"]["spec"]["volumes"].is_null(), "no shmSize, no volume");
}

#[test]
fn shm_size_refuses_a_pod_template_that_already_mounts_dev_shm() {
    let mut l = launch("uid-1", 0);
    l.template.shm_size = Some("1Gi".into());
    l.pod_template = Some(serde_json::json!({"spec": {
        "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
        "containers": [{"name": "t", "image": "busybox", "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm/"}]}]}}));
    let err = render_job(&l, "default").unwrap_err();
    assert!(err.contains("spec.trial.shmSize") && err.contains("/dev/shm"), "{err}");
}

#[test]
fn the_push_token_is_in_a_secret_owned_by_the_job_never_in_the_job() {
    let token = "tok.very-secret-value-1234";
    let mut l = launch("uid-1", 0);
    l.env = vec![("TUNA_API".into(), "http://tuna:8080".into()), (TOKEN_ENV.into(), token.into())];
    let mut job = render_job(&l, "default").unwrap();
    let json = serde_json::to_value(&job).unwrap();
    assert!(!json.to_string().contains(token), "the token is nowhere in the Job: {json}");
    let name = job.metadata.name.clone().unwrap();
    let env = &json["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env[0], serde_json::json!({"name": "TUNA_API", "value": "http://tuna:8080"}), "others stay values");
    assert_eq!(
        env[1],
        serde_json::json!({"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": name, "key": TOKEN_KEY, "optional": false}}})
    );

    job.metadata.uid = Some("job-uid-7".into());
    let secret = serde_json::to_value(token_secret(&l, &job).unwrap()).unwrap();
    assert_eq!(secret["metadata"]["name"], name.as_str());
    assert_eq!(secret["metadata"]["namespace"], "default");
    let owner = &secret["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["apiVersion"], &owner["kind"], &owner["name"], &owner["uid"]),
        (&"batch/v1".into(), &"Job".into(), &name.as_str().into(), &"job-uid-7".into())
    );
    assert_eq!((&owner["controller"], &owner["blockOwnerDeletion"]), (&false.into(), &false.into()));
    let data: k8s_openapi::ByteString = serde_json::from_value(secret["data"][TOKEN_KEY].clone()).unwrap();
    assert_eq!(data.0, token.as_bytes(), "the Secret holds the token");

    assert!(token_secret(&launch("uid-1", 0), &job).is_none(), "no token, no Secret");
}
