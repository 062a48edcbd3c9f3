//! End to end on Kubernetes without a cluster: `tuna serve --watch-crds` (the real binary, with an
//! ordinary kubeconfig) against the in-process fake API server, whose fake kubelet really runs each
//! Job's container command. The last test needs a real cluster and is ignored by default.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::time::Duration;

use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use support::fake_kube::FakeKube;
use support::kube_e2e::{EXPERIMENTS, experiment, jobs_of, start, wait_status};
use support::server::Server;
use tuna::spec::Experiment;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn experiment_resources_run_trials_as_jobs_report_status_and_clean_up() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let stdout = experiment("by-log", r#"[sh, -c, "echo epoch=1 score=${x}"]"#, "  metrics: {collector: stdout}\n");
    let push = format!(
        r#"[python3, -c, "import sys; sys.path.insert(0, '{EXPERIMENTS}'); import tuna_push; tuna_push.report(step=1, score=${{x}})"]"#
    );
    let pushed = experiment("by-push", &push, "");
    api.create(&PostParams::default(), &stdout).await.unwrap();
    api.create(&PostParams::default(), &pushed).await.unwrap();

    for name in ["by-log", "by-push"] {
        let status = wait_status(&api, name, "succeeded", |s| s["phase"] == "Succeeded").await;
        assert_eq!(status["trials"]["succeeded"], 4, "{name}: {status}");
        assert_eq!(status["reason"], "MaxTrialsReached");
        let best = status["bestTrial"]["objective"].as_f64().unwrap();
        let x = status["bestTrial"]["parameters"]["x"].as_f64().unwrap();
        assert_eq!(best, x, "{name}: the metric arrived (score = x)");
        assert!(status["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Succeeded"));
        let cr = api.get(name).await.unwrap();
        let jobs = jobs_of(&fake, name);
        assert_eq!(jobs.len(), 4, "{name}: one Job per trial");
        for job in &jobs {
            assert_eq!(job["metadata"]["ownerReferences"][0]["uid"].as_str(), cr.uid().as_deref(), "owned by the CR");
        }
    }
    let events = fake.objects("events");
    assert!(events.iter().any(|e| e["reason"] == "TrialsStarted"), "Events are recorded");
    assert!(events.iter().any(|e| e["reason"] == "ExperimentEnded"));
    let metrics = server.metrics();
    let ended = "tuna_controller_trials_ended_total{reason=\"succeeded\",executor=\"kubernetes\"}";
    assert_eq!(Server::metric(&metrics, ended), 8.0, "{metrics}");
    assert!(Server::metric(&metrics, "tuna_controller_reconciles_total{result=\"ok\"}") > 0.0, "{metrics}");
    let by_log = "{experiment=\"default/by-log\",namespace=\"default\"}";
    assert!(metrics.contains(&format!("tuna_experiment_best_objective{by_log}")), "{metrics}");

    api.delete("by-log", &DeleteParams::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while api.get_opt("by-log").await.unwrap().is_some() || !jobs_of(&fake, "by-log").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the CR and its Jobs were not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(jobs_of(&fake, "by-push").len(), 4, "the other experiment's Jobs stay");
    let metrics = server.metrics();
    assert!(!metrics.contains("experiment=\"default/by-log\""), "a deleted experiment's series go: {metrics}");
    assert!(metrics.contains("experiment=\"default/by-push\""), "{metrics}");
    assert_eq!(fake.requests().refusals(), Vec::<String>::new(), "the shipped RBAC grants all the controller did");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_controller_restart_reattaches_to_its_jobs_and_duplicates_nothing() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let slow = experiment("restarted", r#"[sh, -c, "sleep 1; echo score=${x}"]"#, "  metrics: {collector: stdout}\n");
    api.create(&PostParams::default(), &slow).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while jobs_of(&fake, "restarted").len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no Jobs were created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill9();
    let _server = start(&fake, dir.path());
    let status = wait_status(&api, "restarted", "succeeded", |s| s["phase"] == "Succeeded").await;
    assert_eq!(status["trials"]["succeeded"], 4, "{status}");
    let jobs = jobs_of(&fake, "restarted");
    let mut names: Vec<&str> = jobs.iter().map(|j| j["metadata"]["name"].as_str().unwrap()).collect();
    names.sort();
    names.dedup();
    assert_eq!((jobs.len(), names.len()), (4, 4), "one Job per trial, none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unschedulable_trial_says_why_until_a_gpu_frees() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let gpu = experiment(
        "gpu",
        r#"[sh, -c, "echo score=${x}"]"#,
        "    resources: {gpu: 1}\n  metrics: {collector: stdout}\n",
    );
    api.create(&PostParams::default(), &gpu).await.unwrap();
    let status = wait_status(&api, "gpu", "reported the unschedulable trial", |s| {
        s["message"].as_str().is_some_and(|m| m.contains("Unschedulable") && m.contains("nvidia.com/gpu"))
    })
    .await;
    assert_eq!(status["phase"], "Running");
    fake.set_gpu_capacity(1);
    let status = wait_status(&api, "gpu", "succeeded", |s| s["phase"] == "Succeeded").await;
    assert_eq!(status["trials"]["succeeded"], 4);
}

/// The same path on a real cluster: install deploy/ (or run `tuna serve --watch-crds` with a
/// kubeconfig), then `cargo test --test kube -- --ignored`. Uses the busybox image.
#[tokio::test]
#[ignore = "needs a Kubernetes cluster"]
async fn on_a_real_cluster_an_experiment_resource_runs_to_success() {
    let client = kube::Client::try_default().await.expect("a kubeconfig or in-cluster config");
    let api: Api<Experiment> = Api::default_namespaced(client);
    let name = "tuna-e2e";
    let _ = api.delete(name, &DeleteParams::default()).await;
    let cr = experiment(name, r#"[sh, -c, "echo epoch=1 score=${x}"]"#, "  metrics: {collector: stdout}\n");
    api.create(&PostParams::default(), &cr).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let status =
        wait_status(&api, name, "succeeded", |s| s["phase"] == "Succeeded" || tokio::time::Instant::now() > deadline)
            .await;
    assert_eq!(status["trials"]["succeeded"], 4, "{status}");
    api.delete(name, &DeleteParams::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_best_model_is_served_by_a_deployment_that_passes_the_official_schemas() {
    use support::fake_kube::ResourceType;
    let fake = FakeKube::start().await;
    fake.register(ResourceType::new(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        true,
    ));
    fake.register(ResourceType::new("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, true));
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let push = format!(
        r#"[python3, -c, "import sys; sys.path.insert(0, '{EXPERIMENTS}'); import tuna_push; tuna_push.report(score=${{x}}); tuna_push.report(artifact='s3://models/${{trial}}')"]"#
    );
    let served = experiment(
        "served",
        &push,
        "  promotion:\n    policy: auto\n    gate: {min: 1}\n    serve: {image: 'registry.example.com/serve:1', port: 8080, replicas: 2, \
         command: [sleep, '3600'], autoscale: {minReplicas: 2, maxReplicas: 4}, resources: {cpu: 250m, memory: 256Mi}}\n",
    );
    api.create(&PostParams::default(), &served).await.unwrap();
    let status = wait_status(&api, "served", "served", |s| s["serving"]["version"] == "v1").await;
    let best = status["bestTrial"]["name"].as_str().unwrap();
    let deployment = fake.get("deployments", "default", "served").expect("a Deployment named after the experiment");
    assert_eq!(deployment["metadata"]["labels"]["tuna.dev/model-version"], "v1");
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    let uri = env.as_array().unwrap().iter().find(|e| e["name"] == "TUNA_MODEL_URI").unwrap()["value"].clone();
    // `${trial}` is the trial's full name, namespace/name-N (unique across namespaces, as a shared
    // bucket needs); the CR's status names it inside its namespace.
    assert_eq!(uri, format!("s3://models/default/{best}"), "the best trial's reported artifact");
    assert!(fake.get("services", "default", "served").is_some());
    // Model traffic and the autoscaler's pod count reach the serving pods only, never a trial's.
    let service = fake.get("services", "default", "served").unwrap();
    let selects = |selector: &serde_json::Value, labels: &serde_json::Value| {
        selector.as_object().is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| &labels[k] == v))
    };
    let trial_pods: Vec<serde_json::Value> = fake
        .objects("pods")
        .into_iter()
        .filter(|p| {
            p["metadata"]["labels"]["tuna.dev/experiment"] == "served"
                && p["metadata"]["labels"]["tuna.dev/trial"].is_string()
        })
        .collect();
    assert_eq!(trial_pods.len(), 4, "the trials' pods are still there to be selected by mistake");
    let serving_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    // Two replicas: a drain may evict one serving pod at a time.
    let budget = fake.get("poddisruptionbudgets", "default", "served").expect("a PodDisruptionBudget");
    assert_eq!(budget["spec"]["maxUnavailable"], 1, "{budget}");
    for (what, selector) in [
        ("Service", &service["spec"]["selector"]),
        ("Deployment", &deployment["spec"]["selector"]["matchLabels"]),
        ("PodDisruptionBudget", &budget["spec"]["selector"]["matchLabels"]),
    ] {
        assert!(selects(selector, serving_labels), "the {what} selects the serving pods: {selector}");
        for pod in &trial_pods {
            assert!(
                !selects(selector, &pod["metadata"]["labels"]),
                "the {what} selects trial pod {}",
                pod["metadata"]["name"]
            );
        }
    }
    assert!(fake.get("horizontalpodautoscalers", "default", "served").is_some());
    assert_eq!(status["serving"]["url"], "http://served.default.svc:8080");
    assert_eq!(fake.requests().refusals(), Vec::<String>::new(), "the shipped RBAC grants all the controller did");

    let Some(bin) = support::validate::validator_bin() else { return };
    let mut files = Vec::new();
    for (plural, kind, api_version) in [
        ("deployments", "Deployment", "apps/v1"),
        ("services", "Service", "v1"),
        ("horizontalpodautoscalers", "HorizontalPodAutoscaler", "autoscaling/v2"),
        ("poddisruptionbudgets", "PodDisruptionBudget", "policy/v1"),
    ] {
        let mut object = fake.get(plural, "default", "served").unwrap();
        // What the server added is not part of a manifest.
        object.as_object_mut().unwrap().remove("status");
        for field in ["uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"] {
            object["metadata"].as_object_mut().unwrap().remove(field);
        }
        object["kind"] = kind.into();
        object["apiVersion"] = api_version.into();
        let file = dir.path().join(format!("{plural}.json"));
        std::fs::write(&file, object.to_string()).unwrap();
        files.push(file);
    }
    let (ok, report) = support::validate::validate(&bin, &files);
    assert!(ok, "the applied serving objects fail the official schemas:\n{report}");
}

/// A new version whose pods crash-loop never becomes the one on record: the promotion waits for
/// its rollout, sees the Deployment controller give up (ProgressDeadlineExceeded), applies the
/// version served before again, and says so in the answer, the history, the CR and an Event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_looping_new_version_is_rolled_back() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let push = format!(
        r#"[python3, -c, "import sys; sys.path.insert(0, '{EXPERIMENTS}'); import tuna_push; tuna_push.report(score=${{x}}); tuna_push.report(artifact='s3://models/${{trial}}')"]"#
    );
    // v1 serves; any later version's server exits at once (a model that fails to load).
    let serve = r#"[sh, -c, '[ "$TUNA_MODEL_VERSION" = v1 ] || exit 1; exec sleep 3600']"#;
    let spec = format!(
        "  promotion:\n    policy: auto\n    serve: {{image: 'registry.example.com/serve:1', command: {serve}, \
         progressDeadline: 3s}}\n"
    );
    api.create(&PostParams::default(), &experiment("rolled", &push, &spec)).await.unwrap();
    let status = wait_status(&api, "rolled", "served v1", |s| s["serving"]["version"] == "v1").await;
    let best = status["bestTrial"]["name"].as_str().unwrap().to_string();
    let v1_pods = serving_pods(&fake, "rolled");
    assert_eq!(v1_pods.len(), 1, "v1 runs: {v1_pods:?}");
    let other = (0..4).map(|i| format!("rolled-{i:04}")).find(|t| *t != best).unwrap();

    let asked = server.cli(&["promote", "default/rolled", "--trial", &format!("default/{other}")]);
    let stderr = String::from_utf8_lossy(&asked.stderr);
    assert!(!asked.status.success(), "the promotion of a crash-looping version fails: {stderr}");
    assert!(
        stderr.contains("v2 (trial default/") && stderr.contains("failed its rollout: ProgressDeadlineExceeded"),
        "{stderr}"
    );
    assert!(stderr.contains("rolled back to v1"), "{stderr}");

    // v1 serves again, from the pods that served it all along; v2's pods are gone.
    let deployment = fake.get("deployments", "default", "rolled").unwrap();
    assert_eq!(deployment["spec"]["template"]["metadata"]["labels"]["tuna.dev/model-version"], "v1");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pods = serving_pods(&fake, "rolled");
        if pods == v1_pods {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "v2's pods were not removed: {pods:?} (v1: {v1_pods:?})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = wait_status(&api, "rolled", "told of the rollback", |s| {
        s["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "PromotionFailed"))
    })
    .await;
    assert_eq!(status["serving"]["version"], "v1", "{status}");
    let condition = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "PromotionFailed").unwrap();
    assert_eq!(condition["reason"], "RolledBack", "{condition}");
    assert!(condition["message"].as_str().unwrap().contains("ProgressDeadlineExceeded"), "{condition}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !fake.objects("events").iter().any(|e| e["reason"] == "RolledBack" && e["type"] == "Warning") {
        assert!(tokio::time::Instant::now() < deadline, "no RolledBack Event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let history = server.cli(&["promotions", "default/rolled"]);
    let table = String::from_utf8_lossy(&history.stdout);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert!(rows[0].starts_with("v1 ") && rows[0].contains("promote"), "{table}");
    assert!(rows[1].starts_with("v2 ") && rows[1].contains("failed"), "{table}");
    assert!(rows[2].contains("↳ ProgressDeadlineExceeded"), "{table}");
    assert!(rows[3].starts_with("v1 *") && rows[3].contains("rollback") && rows[3].contains("auto"), "{table}");
    assert!(rows[4].contains("↳ v2 failed its rollout: ProgressDeadlineExceeded"), "{table}");
    assert_eq!(fake.requests().refusals(), Vec::<String>::new(), "the shipped RBAC grants all the controller did");
}

/// The running serving pods of an experiment (not its trials'), by name.
fn serving_pods(fake: &FakeKube, experiment: &str) -> Vec<String> {
    let mut names: Vec<String> = fake
        .objects("pods")
        .into_iter()
        .filter(|p| {
            p["metadata"]["labels"]["tuna.dev/experiment"] == experiment
                && p["metadata"]["labels"]["tuna.dev/role"] == "serving"
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
        .collect();
    names.sort();
    names
}

/// ASHA on Kubernetes, metrics from the pod logs: x = 2 and x = 3 fall behind x = 1 at rung 1, and
/// each stopped trial's Job is deleted (the fake kubelet would otherwise run it 90 s more).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_early_stopped_trial_s_job_is_deleted() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let script = "for e in 1 2 3; do echo epoch=$e loss=${x}; [ ${x} = 1 ] || sleep 30; done";
    let document = format!(
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: asha}}\nspec:\n  \
         objective: {{metric: loss, goal: minimize}}\n  algorithm: {{name: grid}}\n  \
         parameters: [{{name: x, type: int, min: 1, max: 3}}]\n  maxTrials: 3\n  executor: kubernetes\n  \
         earlyStopping: {{rule: asha, settings: {{minResource: 1, maxResource: 3}}}}\n  \
         metrics: {{collector: stdout}}\n  trial:\n    image: busybox:1.36\n    command: [sh, -c, {script:?}]\n"
    );
    api.create(&PostParams::default(), &tuna::spec::parse(&document).unwrap()).await.unwrap();
    let status = wait_status(&api, "asha", "succeeded", |s| s["phase"] == "Succeeded").await;
    assert_eq!((&status["trials"]["succeeded"], &status["trials"]["earlyStopped"]), (&1.into(), &2.into()), "{status}");
    assert_eq!(status["bestTrial"]["name"], "asha-0000");
    let events = fake.objects("events");
    assert!(events.iter().any(|e| e["reason"] == "TrialsStoppedEarly"), "an Event says so");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let jobs: Vec<String> =
            jobs_of(&fake, "asha").iter().map(|j| j["metadata"]["name"].as_str().unwrap().to_string()).collect();
        if jobs.len() == 1 {
            assert!(jobs[0].contains("asha-0000"), "the completed trial's Job is kept: {jobs:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the stopped trials' Jobs were not deleted: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pushing trials read their token from the Secret the controller creates beside each Job: the
/// metrics arrive, no Job or pod spec holds a token, and each Secret goes with its Job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pushing_trial_reads_its_token_from_a_secret_that_goes_with_its_job() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _server = start(&fake, dir.path());
    let api: Api<Experiment> = Api::namespaced(fake.client(), "default");
    let push = format!(
        r#"[python3, -c, "import sys; sys.path.insert(0, '{EXPERIMENTS}'); import tuna_push; tuna_push.report(step=1, score=${{x}})"]"#
    );
    api.create(&PostParams::default(), &experiment("secret-push", &push, "")).await.unwrap();
    let status = wait_status(&api, "secret-push", "succeeded", |s| s["phase"] == "Succeeded").await;
    assert_eq!(status["trials"]["succeeded"], 4, "{status}");
    let best = status["bestTrial"]["objective"].as_f64().unwrap();
    assert_eq!(best, status["bestTrial"]["parameters"]["x"].as_f64().unwrap(), "the pushed metric arrived");

    let jobs = jobs_of(&fake, "secret-push");
    assert_eq!(jobs.len(), 4);
    let secrets = fake.objects("secrets");
    let pods = fake.objects("pods");
    for job in &jobs {
        let name = job["metadata"]["name"].as_str().unwrap();
        let secret = secrets.iter().find(|s| s["metadata"]["name"] == name).expect("a Secret per Job");
        let owner = &secret["metadata"]["ownerReferences"][0];
        assert_eq!((&owner["kind"], &owner["uid"]), (&"Job".into(), &job["metadata"]["uid"]), "owned by its Job");
        let token: k8s_openapi::ByteString = serde_json::from_value(secret["data"]["token"].clone()).unwrap();
        let token = String::from_utf8(token.0).unwrap();
        assert!(token.len() > 16, "a real token: {token:?}");
        assert!(!job.to_string().contains(&token), "the Job spec holds no token: {job}");
        for pod in pods.iter().filter(|p| p["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]) {
            assert!(!pod.to_string().contains(&token), "nor its pod: {pod}");
        }
        let env = job["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
        let entry = env.iter().find(|e| e["name"] == "TUNA_TRIAL_TOKEN").unwrap();
        assert_eq!(
            entry["valueFrom"]["secretKeyRef"],
            serde_json::json!({"name": name, "key": "token", "optional": false})
        );
    }

    // Deleting the Experiment deletes its Jobs (deletecollection), and the garbage collector
    // their Secrets.
    api.delete("secret-push", &DeleteParams::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let names: Vec<String> = jobs.iter().map(|j| j["metadata"]["name"].as_str().unwrap().to_string()).collect();
    loop {
        let left: Vec<String> = fake
            .objects("secrets")
            .iter()
            .filter_map(|s| s["metadata"]["name"].as_str().map(String::from))
            .filter(|n| names.contains(n))
            .collect();
        if left.is_empty() && jobs_of(&fake, "secret-push").is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the Jobs' Secrets were not removed: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fake.requests().refusals(), Vec::<String>::new(), "the shipped RBAC grants all the controller did");
}
