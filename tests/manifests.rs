//! Every manifest tuna generates or ships, checked against the official Kubernetes schemas with
//! `kubernetes-validate --strict` (installed by `scripts/test.sh`), and every example Experiment checked
//! against the generated CRD schema. Without the validator these tests say so and pass, except
//! under CI (`CI` set), where its absence is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::validate::validator_bin;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The oldest Kubernetes version tuna supports (k8s-openapi feature v1_33).
const KUBERNETES_VERSION: &str = "1.33.0";
/// The scope components of `deploy/kustomization.yaml`.
const SCOPES: [&str; 3] = ["all-namespaces", "one-namespace", "namespaces"];

fn tuna(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tuna")).args(args).output().unwrap();
    assert!(out.status.success(), "tuna {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_committed_crd_is_what_the_types_generate() {
    let committed = std::fs::read_to_string(Path::new(ROOT).join("deploy/crd.yaml")).unwrap();
    assert!(committed == tuna(&["crd"]), "deploy/crd.yaml is stale: run `cargo run -- crd > deploy/crd.yaml`");
}

#[test]
fn deploy_and_rendered_jobs_pass_the_official_schemas_strictly() {
    let Some(bin) = validator_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    // The install as kubectl applies it, with each scope component (every manifest under deploy/).
    let mut files = Vec::new();
    for component in SCOPES {
        let install = dir.path().join(format!("deploy-{component}.yaml"));
        std::fs::write(&install, support::fake_kube::kustomize(component)).unwrap();
        files.push(install);
    }
    for example in kubernetes_examples() {
        let job = dir.path().join(format!("{}-job.yaml", example.file_stem().unwrap().to_string_lossy()));
        std::fs::write(&job, tuna(&["render", example.to_str().unwrap()])).unwrap();
        files.push(job);
    }
    assert!(files.len() > SCOPES.len(), "deploy/ and at least one rendered Job: {files:?}");
    let out = Command::new(bin.join("kubernetes-validate"))
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .args(&files)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubernetes-validate failed:\n{report}");
    let objects: usize = files.iter().map(|f| std::fs::read_to_string(f).unwrap().split("\n---\n").count()).sum();
    assert_eq!(report.matches(" passed for resource ").count(), objects, "every object was checked:\n{report}");
    assert!(report.contains("deployment/pytorch-gpu-k8s") && report.contains("horizontalpodautoscaler/"), "{report}");
}

#[test]
fn a_broken_job_fails_the_validator_so_the_check_above_can_fail() {
    let Some(bin) = validator_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let example = &kubernetes_examples()[0];
    let rendered = tuna(&["render", example.to_str().unwrap()]);
    assert!(rendered.contains("backoffLimit: 0"), "the field this test breaks is there:\n{rendered}");
    let broken = rendered.replace("backoffLimit: 0", "backoffLimit: zero");
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    let out = Command::new(bin.join("kubernetes-validate"))
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn every_example_experiment_fits_the_generated_crd_schema() {
    let Some(bin) = validator_bin() else { return };
    let mut examples = kubernetes_examples();
    examples.extend(yaml_files(&Path::new(ROOT).join("experiments")));
    let out = Command::new(bin.join("python3"))
        .arg(Path::new(ROOT).join("tests/validate_examples.py"))
        .arg(Path::new(ROOT).join("deploy/crd.yaml"))
        .args(&examples)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report.matches("valid against").count(), examples.len(), "{report}");
}

/// The Job documents of `tuna render FILE`.
fn rendered_jobs(document: &Path) -> Vec<serde_json::Value> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&tuna(&["render", document.to_str().unwrap()])).unwrap();
    docs.into_iter().filter(|d| d["kind"] == "Job").collect()
}

fn write_document(dir: &Path, name: &str, trial: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  \
         objective: {{metric: score, goal: maximize}}\n  parameters: [{{name: x, type: int, min: 1, max: 9}}]\n  \
         executor: kubernetes\n  trial:\n{trial}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn rendered_trial_pods_pass_pod_security_restricted_and_carry_the_trials_labels() {
    let dir = tempfile::tempdir().unwrap();
    let labelled = write_document(
        dir.path(),
        "queued",
        "    image: busybox:1.36\n    command: [sh, -c, \"echo score=1\"]\n    \
         labels: {kueue.x-k8s.io/queue-name: gpus, tuna.dev/experiment: not-mine}\n    annotations: {team: vision}\n",
    );
    let mut documents = kubernetes_examples();
    documents.push(labelled.clone());
    for document in &documents {
        let jobs = rendered_jobs(document);
        assert_eq!(jobs.len(), 1, "{}", document.display());
        let pod = &jobs[0]["spec"]["template"]["spec"];
        let broken = support::pod_security::violations("restricted", pod);
        assert!(broken.is_empty(), "{}: the trial pod breaks Pod Security restricted: {broken:?}", document.display());
        assert_eq!(pod["automountServiceAccountToken"], false, "{}: no API token in trial pods", document.display());
    }
    let job = &rendered_jobs(&labelled)[0];
    for meta in [&job["metadata"], &job["spec"]["template"]["metadata"]] {
        assert_eq!(meta["labels"]["kueue.x-k8s.io/queue-name"], "gpus", "{meta}");
        assert_eq!(meta["labels"]["tuna.dev/experiment"], "queued", "tuna's own label wins: {meta}");
        assert_eq!(meta["annotations"]["team"], "vision", "{meta}");
    }
    assert_eq!(job["metadata"]["annotations"]["tuna.dev/attempt"], "0");
}

#[test]
fn a_pod_template_keeps_its_own_security_settings_and_the_check_sees_what_they_break() {
    let dir = tempfile::tempdir().unwrap();
    let document = write_document(
        dir.path(),
        "own",
        "    podTemplate:\n      spec:\n        automountServiceAccountToken: true\n        hostPID: true\n        \
         volumes: [{name: root, hostPath: {path: /}}]\n        \
         containers: [{name: t, image: busybox:1.36, command: [\"true\"], securityContext: {privileged: true}}]\n",
    );
    let job = &rendered_jobs(&document)[0];
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], true, "asked for: kept");
    assert_eq!(pod["containers"][0]["securityContext"], serde_json::json!({"privileged": true}), "its own: kept");
    let broken = support::pod_security::violations("baseline", pod);
    for rule in ["host namespaces: hostPID=true", "hostPath volumes: volumes[0]", "privileged: containers[t]"] {
        assert!(broken.iter().any(|b| b == rule), "{rule} not found in {broken:?}");
    }
    assert!(support::pod_security::violations("restricted", pod).len() > broken.len());
}

fn kubernetes_examples() -> Vec<PathBuf> {
    yaml_files(&Path::new(ROOT).join("experiments/kubernetes"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `deploy/` with `components/servicemonitor` added, as `kubectl kustomize` builds it.
fn kustomize_with_servicemonitor() -> String {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().map(Result::unwrap) {
            let target = to.join(entry.file_name());
            match entry.file_type().unwrap().is_dir() {
                true => copy(&entry.path(), &target),
                false => drop(std::fs::copy(entry.path(), target).unwrap()),
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&Path::new(ROOT).join("deploy"), dir.path());
    let kustomization = dir.path().join("kustomization.yaml");
    let text = std::fs::read_to_string(&kustomization).unwrap();
    let scope = "  - components/all-namespaces\n";
    assert!(text.contains(scope), "deploy/kustomization.yaml names its scope component:\n{text}");
    let with = text.replace(scope, &format!("{scope}  - components/servicemonitor\n"));
    std::fs::write(&kustomization, with).unwrap();
    let out = Command::new("kubectl").arg("kustomize").arg(dir.path()).output().expect("kubectl runs");
    assert!(out.status.success(), "kubectl kustomize with servicemonitor: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The ServiceMonitor is a prometheus-operator CRD that kubernetes-validate has no schema for (it
/// says so and skips it; asserted below so that the skip is visible): its fields are checked here
/// against the Service it must scrape, and the rest of the install against the official schemas.
#[test]
fn the_servicemonitor_component_builds_and_scrapes_the_services_metrics_port() {
    let built = kustomize_with_servicemonitor();
    let objects: Vec<serde_json::Value> = built.split("\n---\n").map(|d| serde_saphyr::from_str(d).unwrap()).collect();
    let find = |kind: &str| objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"));
    let (monitor, service) = (find("ServiceMonitor"), find("Service"));
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["namespace"], service["metadata"]["namespace"]);
    let spec = monitor["spec"].as_object().unwrap();
    let known = ["selector", "namespaceSelector", "endpoints"];
    assert!(spec.keys().all(|k| known.contains(&k.as_str())), "fields of ServiceMonitorSpec only: {spec:?}");
    for (key, value) in spec["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&service["metadata"]["labels"][key], value, "the selector picks the tuna Service by {key}");
    }
    let names = spec["namespaceSelector"]["matchNames"].as_array().unwrap();
    assert!(names.contains(&service["metadata"]["namespace"]), "{names:?}");
    let ports: Vec<&serde_json::Value> = service["spec"]["ports"].as_array().unwrap().iter().collect();
    for endpoint in spec["endpoints"].as_array().unwrap() {
        let port = ports.iter().find(|p| p["name"] == endpoint["port"]);
        let port = port.unwrap_or_else(|| panic!("endpoint port {} is no port of the Service", endpoint["port"]));
        assert_eq!(endpoint["path"], "/metrics");
        let annotated = &service["metadata"]["annotations"];
        assert_eq!(annotated["prometheus.io/port"].as_str(), Some(port["port"].to_string().as_str()));
        assert_eq!(annotated["prometheus.io/path"], "/metrics");
    }

    let Some(bin) = validator_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy-servicemonitor.yaml");
    std::fs::write(&file, &built).unwrap();
    let out = Command::new(bin.join("kubernetes-validate"))
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .arg(&file)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubernetes-validate failed:\n{report}");
    assert!(report.contains("Couldn't find schema for kind ServiceMonitor"), "the one object it skips:\n{report}");
    assert_eq!(report.matches(" passed for resource ").count(), objects.len() - 1, "all the others:\n{report}");
}
