//! Kubernetes at the edges: `tuna crd`, `tuna render`, and the client the server uses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use jiff::Timestamp;
use kube::CustomResourceExt;

use crate::controller::{Site, TrialApi, launch_for};
use crate::executor::kube::render_job;
use crate::spec::Experiment;
use crate::token::TrialSecret;
use crate::trial::Trial;
use crate::{promote, search};

/// What the rendered serving Deployment shows instead of the promoted trial's model URI.
const MODEL_PLACEHOLDER: &str = "<the artifact URI of the promoted trial>";

/// The CRD as YAML, exactly what `deploy/crd.yaml` holds.
pub fn crd_yaml() -> anyhow::Result<String> {
    serde_saphyr::to_string(&Experiment::crd()).context("failed to write the CRD as YAML")
}

pub fn crd() -> anyhow::Result<ExitCode> {
    std::io::stdout().lock().write_all(crd_yaml()?.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The Job for the first suggested trial of an experiment, as YAML.
pub fn render_yaml(file: &Path, namespace: &str) -> anyhow::Result<String> {
    let experiment = super::load_spec(file)?;
    let spec = &experiment.spec;
    let name = experiment.metadata.name.clone().unwrap_or_default();
    let mut search = search::build(spec, spec.algorithm.seed.unwrap_or(0)).context("failed to set up the search")?;
    let first = search
        .suggest(&[], 1)
        .context("failed to get a suggestion")?
        .into_iter()
        .next()
        .context("the search space is empty")?;
    let trial = Trial::new(&name, 0, first, Timestamp::now());
    let api =
        TrialApi { base_url: "http://tuna.tuna-system.svc:8080".into(), secret: TrialSecret::from_bytes([0; 32]) };
    let site = Site {
        incarnation: experiment.metadata.uid.as_deref().unwrap_or(""),
        spec,
        experiment_dir: &PathBuf::from("/data/experiments").join(&name),
        working_dir: Path::new("."),
        api: Some(&api),
        origin: None,
    };
    // The trial's token is not in the Job: its env reads it from the Job's Secret (secretKeyRef).
    let launch = launch_for(&site, &trial);
    let job = render_job(&launch, namespace).map_err(anyhow::Error::msg)?;
    let mut yaml = serde_saphyr::to_string(&job).context("failed to write the Job as YAML")?;
    let serve = spec.serve();
    if let Some(serve) = serve.filter(|_| spec.serves_on_kubernetes()) {
        let manifests =
            promote::cluster::render(&name, namespace, "v1", MODEL_PLACEHOLDER, serve).map_err(anyhow::Error::msg)?;
        yaml.push_str("---\n");
        yaml.push_str(&promote::cluster::to_yaml(&manifests).map_err(anyhow::Error::msg)?);
    }
    Ok(yaml)
}

pub fn render(file: &Path, namespace: &str) -> anyhow::Result<ExitCode> {
    let yaml = render_yaml(file, namespace)?;
    for warning in render_warnings(&super::load_spec(file)?.spec) {
        eprintln!("warning: {warning}");
    }
    std::io::stdout().lock().write_all(yaml.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// What would keep the rendered objects from running on a cluster as they are, each at its field.
/// A spec for the local executor validates without an image or with `collector: file`; rendered
/// for Kubernetes it would not run, so `tuna render` says so (on stderr: the YAML stays clean).
pub fn render_warnings(spec: &crate::spec::ExperimentSpec) -> Vec<String> {
    use crate::spec::{Collector, ExecutorKind};
    let mut warnings = Vec::new();
    let executor = match spec.executor {
        ExecutorKind::Local => Some("local"),
        ExecutorKind::External => Some("external"),
        ExecutorKind::Kubernetes => None,
    };
    if let Some(executor) = executor {
        warnings.push(format!(
            "spec.executor is {executor}: its trials do not run on Kubernetes; this is the Job each would be \
             with `executor: kubernetes`"
        ));
    }
    if spec.trial.image.is_none() && spec.trial.pod_template.is_none() {
        warnings.push(
            "spec.trial.image is not set (nor spec.trial.podTemplate): a cluster refuses a container without an \
             image; set the image that holds the trial's program"
                .into(),
        );
    }
    if spec.metrics.collector == Some(Collector::File) {
        warnings.push(
            "spec.metrics.collector is file: the file stays inside the pod on Kubernetes; use push or stdout".into(),
        );
    }
    warnings
}

/// A client from the pod's service account or the kubeconfig, with its default namespace.
pub async fn client() -> anyhow::Result<(kube::Client, String)> {
    let config =
        kube::Config::infer().await.context("no Kubernetes configuration (not in a pod, and no usable kubeconfig)")?;
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).context("failed to build a Kubernetes client")?;
    Ok((client, namespace))
}
