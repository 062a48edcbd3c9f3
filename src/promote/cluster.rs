//! Serving on Kubernetes: a Deployment and a Service named after the experiment (and a
//! HorizontalPodAutoscaler when `serve.autoscale` is given), applied with server-side apply. The
//! model's URI reaches the pods as `TUNA_MODEL_URI`; the version is a label and an annotation, so a
//! promotion or a rollback is an ordinary rolling update.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::executor::kube::job::{EXPERIMENT_LABEL, ROLE_LABEL, SERVING_ROLE};
use crate::spec::ServeSpec;

/// The label (and annotation) that carries the served model version.
pub const VERSION_LABEL: &str = "tuna.dev/model-version";
/// The field manager of tuna's server-side applies.
const MANAGER: &str = "tuna";
/// The serving port when the spec names none.
const DEFAULT_PORT: u16 = 8080;
/// The CPU utilization an autoscaler aims for when the spec names none.
const DEFAULT_CPU_TARGET: i32 = 80;

/// What one promotion applies.
pub struct Manifests {
    pub deployment: Deployment,
    pub service: Service,
    pub autoscaler: Option<HorizontalPodAutoscaler>,
    /// With more than one replica (`replicas`, or the autoscaler's `minReplicas`): at most one
    /// serving pod may be evicted at a time (a node drain, a cluster upgrade), so the model keeps
    /// answering. `maxUnavailable: 1` rather than `minAvailable: 1`, which would let a drain take
    /// all but one pod of a larger deployment.
    pub disruption_budget: Option<PodDisruptionBudget>,
}

/// The manifests serving `version` (`v3`) of `experiment`'s model from `model_uri`.
pub fn render(
    experiment: &str,
    namespace: &str,
    version: &str,
    model_uri: &str,
    serve: &ServeSpec,
) -> Result<Manifests, String> {
    // The objects live in the experiment's namespace: named as it is there.
    let experiment = crate::spec::name_in_namespace(experiment);
    let port = serve.port.unwrap_or(DEFAULT_PORT);
    // The experiment's trial pods carry its label too: only its serving pods are selected.
    let selector = BTreeMap::from([
        (EXPERIMENT_LABEL.to_string(), experiment.to_string()),
        (ROLE_LABEL.to_string(), SERVING_ROLE.to_string()),
    ]);
    let mut labels = selector.clone();
    labels.insert("app.kubernetes.io/name".into(), experiment.into());
    labels.insert(VERSION_LABEL.into(), version.into());
    let annotations = BTreeMap::from([
        (VERSION_LABEL.to_string(), version.to_string()),
        ("tuna.dev/model-uri".to_string(), model_uri.to_string()),
    ]);
    let meta = |labels: &BTreeMap<String, String>| ObjectMeta {
        name: Some(experiment.into()),
        namespace: Some(namespace.into()),
        labels: Some(labels.clone()),
        annotations: Some(annotations.clone()),
        ..Default::default()
    };
    let mut pod = pod_template(serve, port)?;
    let pod_meta = pod.metadata.get_or_insert_with(Default::default);
    pod_meta.labels.get_or_insert_with(Default::default).extend(labels.clone());
    pod_meta.annotations.get_or_insert_with(Default::default).extend(annotations.clone());
    if let Some(container) = pod.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        container.env.get_or_insert_with(Default::default).extend([
            EnvVar { name: "TUNA_MODEL_URI".into(), value: Some(model_uri.into()), value_from: None },
            EnvVar { name: "TUNA_MODEL_VERSION".into(), value: Some(version.into()), value_from: None },
        ]);
    }
    let deployment = Deployment {
        metadata: meta(&labels),
        spec: Some(DeploymentSpec {
            replicas: if serve.autoscale.is_some() { None } else { Some(serve.replicas.unwrap_or(1)) },
            selector: LabelSelector { match_labels: Some(selector.clone()), ..Default::default() },
            template: pod,
            // Validation refused a bad one; render (tuna render) shows the default then.
            progress_deadline_seconds: Some(
                serve.progress_deadline_seconds().unwrap_or(ServeSpec::DEFAULT_PROGRESS_DEADLINE.as_secs() as i32),
            ),
            ..Default::default()
        }),
        status: None,
    };
    let service = Service {
        metadata: meta(&labels),
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(port),
                target_port: Some(IntOrString::Int(i32::from(port))),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    let autoscaler = serve.autoscale.as_ref().map(|a| HorizontalPodAutoscaler {
        metadata: meta(&labels),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: experiment.into(),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(a.target_cpu_utilization.unwrap_or(DEFAULT_CPU_TARGET)),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    });
    let replicas = serve.autoscale.as_ref().map_or(serve.replicas.unwrap_or(1), |a| a.min_replicas.max(1));
    let disruption_budget = (replicas > 1).then(|| PodDisruptionBudget {
        metadata: meta(&labels),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(selector.clone()), ..Default::default() }),
            ..Default::default()
        }),
        status: None,
    });
    Ok(Manifests { deployment, service, autoscaler, disruption_budget })
}

/// The serving pods' template: the spec's own `podTemplate`, or one container of `image`. Either
/// way the serving container gets a readiness probe on `readinessPath` (a pod template's first
/// container keeps its own probe; it gets this one only when it has none and `readinessPath` is
/// given), so the rollout a promotion waits for counts a pod available only once it answers.
fn pod_template(serve: &ServeSpec, port: u16) -> Result<PodTemplateSpec, String> {
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(i32::from(port)),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Some(template) = &serve.pod_template {
        let mut template: PodTemplateSpec = serde_json::from_value(template.clone())
            .map_err(|e| format!("spec.promotion.serve.podTemplate is not a pod template: {e}"))?;
        if let (Some(path), Some(first)) =
            (&serve.readiness_path, template.spec.as_mut().and_then(|s| s.containers.first_mut()))
        {
            first.readiness_probe.get_or_insert_with(|| probe(path));
        }
        return Ok(template);
    }
    let probe = probe(serve.readiness_path.as_deref().unwrap_or("/healthz"));
    Ok(PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "server".into(),
                image: serve.image.clone(),
                command: (!serve.command.is_empty()).then(|| serve.command.clone()),
                ports: Some(vec![ContainerPort {
                    container_port: i32::from(port),
                    name: Some("http".into()),
                    ..Default::default()
                }]),
                readiness_probe: Some(probe),
                resources: serve.resources.as_ref().map(requirements),
                ..Default::default()
            }],
            ..Default::default()
        }),
    })
}

/// A serving container's requests, and its memory as the limit (see `ServeResources`).
fn requirements(r: &crate::spec::ServeResources) -> ResourceRequirements {
    let quantity = |v: &Option<String>| v.clone().map(Quantity);
    let requests: BTreeMap<String, Quantity> = [("cpu", quantity(&r.cpu)), ("memory", quantity(&r.memory))]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect();
    let limits: BTreeMap<String, Quantity> =
        quantity(&r.memory).map(|m| BTreeMap::from([("memory".to_string(), m)])).unwrap_or_default();
    ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..Default::default()
    }
}

/// Applies the manifests: the Service and the disruption budget first (they select pods, so
/// they are in place when the new pods come), then the Deployment and its autoscaler. Returns
/// the Service URL and where the rollout starts, which `wait_rollout` waits on.
pub async fn apply(client: &Client, manifests: &Manifests) -> Result<(String, RolloutStart), kube::Error> {
    let namespace = manifests.deployment.metadata.namespace.clone().unwrap_or_default();
    let name = manifests.deployment.metadata.name.clone().unwrap_or_default();
    let params = PatchParams::apply(MANAGER).force();
    Api::<Service>::namespaced(client.clone(), &namespace)
        .patch(&name, &params, &Patch::Apply(&with_kind(&manifests.service, "v1", "Service")))
        .await?;
    if let Some(pdb) = &manifests.disruption_budget {
        Api::<PodDisruptionBudget>::namespaced(client.clone(), &namespace)
            .patch(&name, &params, &Patch::Apply(&with_kind(pdb, "policy/v1", "PodDisruptionBudget")))
            .await?;
    }
    let applied = Api::<Deployment>::namespaced(client.clone(), &namespace)
        .patch(&name, &params, &Patch::Apply(&with_kind(&manifests.deployment, "apps/v1", "Deployment")))
        .await?;
    if let Some(hpa) = &manifests.autoscaler {
        Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &namespace)
            .patch(&name, &params, &Patch::Apply(&with_kind(hpa, "autoscaling/v2", "HorizontalPodAutoscaler")))
            .await?;
    }
    let port =
        manifests.service.spec.as_ref().and_then(|s| s.ports.as_ref()).and_then(|p| p.first()).map_or(80, |p| p.port);
    let url = format!("http://{name}.{namespace}.svc:{port}");
    // `render` always sets the deadline; the default stands for one that somehow is not there.
    let deadline = manifests.deployment.spec.as_ref().and_then(|s| s.progress_deadline_seconds);
    let start = RolloutStart {
        namespace,
        name,
        generation: applied.metadata.generation.unwrap_or(0),
        stale: progressing(&applied).filter(|c| c.status == "False"),
        deadline: deadline.map_or(ServeSpec::DEFAULT_PROGRESS_DEADLINE, |s| {
            std::time::Duration::from_secs(u64::try_from(s).unwrap_or(0))
        }),
    };
    Ok((url, start))
}

/// The rollout an apply started: its Deployment, the generation the apply made, and the
/// Deployment's `Progressing=False` condition as it was then (an earlier rollout's failure). The
/// controller leaves that condition in place after a rollback until the pods progress, so until
/// it changes it says nothing of this rollout. `deadline`: its `progressDeadlineSeconds`.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutStart {
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    pub stale: Option<DeploymentCondition>,
    pub deadline: std::time::Duration,
}

fn progressing(deployment: &Deployment) -> Option<DeploymentCondition> {
    let conditions = deployment.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == "Progressing").cloned()
}

/// How a rollout went.
#[derive(Debug, PartialEq)]
pub enum Rollout {
    /// Every replica runs the new template and is available; no old pod is left.
    Complete,
    /// The Deployment controller gave up (`Progressing=False`, `ProgressDeadlineExceeded`), or it
    /// never reported within the deadline and a margin: why, for the history and the status.
    Failed(String),
}

/// How often a rollout's progress is read.
const ROLLOUT_POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// How long past the progress deadline tuna waits for the Deployment controller to say it passed
/// (a controller that is down says nothing).
const ROLLOUT_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until the Deployment's controller has seen the apply's generation and the rollout is
/// complete or has failed, judged as `kubectl rollout status` does (less a failure left from an
/// earlier rollout).
pub async fn wait_rollout(client: &Client, start: &RolloutStart) -> Result<Rollout, kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &start.namespace);
    let deadline = start.deadline;
    let give_up = tokio::time::Instant::now() + deadline + ROLLOUT_MARGIN;
    loop {
        let deployment = deployments.get(&start.name).await?;
        if let Some(rollout) = judge_rollout(&deployment, start) {
            return Ok(rollout);
        }
        if tokio::time::Instant::now() >= give_up {
            return Ok(Rollout::Failed(format!(
                "the Deployment's rollout did not finish within {}s (its progress deadline and {}s more): {}",
                deadline.as_secs(),
                ROLLOUT_MARGIN.as_secs(),
                progress(&deployment)
            )));
        }
        tokio::time::sleep(ROLLOUT_POLL).await;
    }
}

/// The rollout's end, if it has ended (`None`: still rolling, or the controller has not yet seen
/// the apply's generation).
pub fn judge_rollout(deployment: &Deployment, start: &RolloutStart) -> Option<Rollout> {
    let status = deployment.status.clone().unwrap_or_default();
    if status.observed_generation.unwrap_or(0) < start.generation {
        return None;
    }
    let conditions = status.conditions.unwrap_or_default();
    let failed = conditions.iter().find(|c| c.type_ == "Progressing" && c.status == "False");
    if let Some(c) = failed.filter(|c| start.stale.as_ref() != Some(*c)) {
        let reason = c.reason.as_deref().unwrap_or("Progressing=False");
        return Some(Rollout::Failed(format!("{reason}: {}", c.message.as_deref().unwrap_or(""))));
    }
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let done = updated >= wanted
        && status.replicas.unwrap_or(0) <= updated
        && status.available_replicas.unwrap_or(0) >= updated;
    done.then_some(Rollout::Complete)
}

/// The rollout's counts, for a message.
fn progress(deployment: &Deployment) -> String {
    let status = deployment.status.clone().unwrap_or_default();
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    format!(
        "{}/{wanted} replicas updated, {} available",
        status.updated_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0)
    )
}

/// A typed object as the JSON an apply sends (apply bodies must carry apiVersion and kind).
fn with_kind<T: serde::Serialize>(object: &T, api_version: &str, kind: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    value["apiVersion"] = api_version.into();
    value["kind"] = kind.into();
    value
}

/// The manifests as one multi-document YAML (for `tuna render`).
pub fn to_yaml(manifests: &Manifests) -> Result<String, String> {
    let mut docs =
        vec![with_kind(&manifests.deployment, "apps/v1", "Deployment"), with_kind(&manifests.service, "v1", "Service")];
    if let Some(hpa) = &manifests.autoscaler {
        docs.push(with_kind(hpa, "autoscaling/v2", "HorizontalPodAutoscaler"));
    }
    if let Some(pdb) = &manifests.disruption_budget {
        docs.push(with_kind(pdb, "policy/v1", "PodDisruptionBudget"));
    }
    docs.iter()
        .map(|d| serde_saphyr::to_string(d).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map(|d| d.join("---\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Autoscale;
    use k8s_openapi::api::apps::v1::DeploymentStatus;

    /// A Deployment of `wanted` replicas whose controller saw generation `seen`, with the counts
    /// (replicas, updated, available) and a Progressing condition.
    fn deployment(wanted: i32, seen: i64, counts: (i32, i32, i32), progressing: (&str, &str)) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec { replicas: Some(wanted), ..Default::default() }),
            status: Some(DeploymentStatus {
                observed_generation: Some(seen),
                replicas: Some(counts.0),
                updated_replicas: Some(counts.1),
                available_replicas: Some(counts.2),
                conditions: Some(vec![DeploymentCondition {
                    type_: "Progressing".into(),
                    status: progressing.0.into(),
                    reason: Some(progressing.1.into()),
                    message: Some(format!("ReplicaSet \"e-1\" {}", progressing.1)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn start(stale: Option<DeploymentCondition>) -> RolloutStart {
        let deadline = std::time::Duration::from_secs(600);
        RolloutStart { namespace: "ns".into(), name: "e".into(), generation: 0, stale, deadline }
    }

    #[test]
    fn a_rollout_is_judged_as_kubectl_rollout_status_does() {
        let at = |generation| RolloutStart { generation, ..start(None) };
        let complete = deployment(2, 3, (2, 2, 2), ("True", "NewReplicaSetAvailable"));
        assert_eq!(judge_rollout(&complete, &at(3)), Some(Rollout::Complete));
        assert_eq!(judge_rollout(&complete, &at(4)), None, "the controller has not seen this generation yet");
        let old_pods_left = deployment(2, 3, (3, 2, 2), ("True", "ReplicaSetUpdated"));
        assert_eq!(judge_rollout(&old_pods_left, &at(3)), None, "an old pod still runs");
        let not_available = deployment(2, 3, (2, 2, 1), ("True", "ReplicaSetUpdated"));
        assert_eq!(judge_rollout(&not_available, &at(3)), None);
        let half = deployment(2, 3, (3, 1, 2), ("True", "ReplicaSetUpdated"));
        assert_eq!(judge_rollout(&half, &at(3)), None);
        let stuck = deployment(2, 3, (3, 1, 2), ("False", "ProgressDeadlineExceeded"));
        assert_eq!(
            judge_rollout(&stuck, &at(3)),
            Some(Rollout::Failed("ProgressDeadlineExceeded: ReplicaSet \"e-1\" ProgressDeadlineExceeded".into()))
        );
    }

    #[test]
    fn an_earlier_rollouts_failure_left_on_the_deployment_does_not_fail_the_next() {
        // A rollback re-applies the template of pods that still run: the controller keeps the
        // failed rollout's condition until they count as progress.
        let stuck = deployment(1, 4, (2, 1, 1), ("False", "ProgressDeadlineExceeded"));
        let stale = progressing(&stuck);
        let start = RolloutStart { generation: 4, ..start(stale.clone()) };
        assert_eq!(judge_rollout(&stuck, &start), None, "still the old failure: wait");
        let later = DeploymentCondition { last_update_time: None, message: Some("again".into()), ..stale.unwrap() };
        let mut failed_again = stuck.clone();
        failed_again.status.as_mut().unwrap().conditions = Some(vec![later]);
        assert_eq!(
            judge_rollout(&failed_again, &start),
            Some(Rollout::Failed("ProgressDeadlineExceeded: again".into()))
        );
        let done = deployment(1, 4, (1, 1, 1), ("True", "NewReplicaSetAvailable"));
        assert_eq!(judge_rollout(&done, &start), Some(Rollout::Complete));
    }

    #[test]
    fn a_pod_template_gets_the_readiness_probe_only_when_it_has_none_and_a_path_is_given() {
        let template = serde_json::json!({"spec": {"containers": [{"name": "s", "image": "i"}]}});
        let serve = |path: Option<&str>, template: serde_json::Value| ServeSpec {
            pod_template: Some(template),
            readiness_path: path.map(String::from),
            port: Some(9000),
            ..Default::default()
        };
        let probe_of = |s: &ServeSpec| {
            let pod = pod_template(s, 9000).unwrap();
            pod.spec.unwrap().containers[0].readiness_probe.clone()
        };
        assert_eq!(probe_of(&serve(None, template.clone())), None, "no path given: the template is the user's");
        let probe = probe_of(&serve(Some("/ready"), template)).expect("a probe on the given path");
        let get = probe.http_get.unwrap();
        assert_eq!((get.path.as_deref(), get.port), (Some("/ready"), IntOrString::Int(9000)));
        let own = serde_json::json!({"spec": {"containers": [{"name": "s", "image": "i",
            "readinessProbe": {"exec": {"command": ["true"]}}}]}});
        let kept = probe_of(&serve(Some("/ready"), own)).unwrap();
        assert!(kept.exec.is_some() && kept.http_get.is_none(), "its own probe is kept: {kept:?}");
    }

    fn serve(replicas: Option<i32>, autoscale: Option<Autoscale>) -> ServeSpec {
        ServeSpec { image: Some("serve:1".into()), replicas, autoscale, ..Default::default() }
    }

    #[test]
    fn a_disruption_budget_comes_with_more_than_one_replica_and_selects_the_serving_pods_only() {
        let render = |s: &ServeSpec| render("e", "ns", "v1", "s3://m", s).unwrap();
        assert!(render(&serve(None, None)).disruption_budget.is_none(), "one replica: nothing to keep up");
        assert!(render(&serve(Some(1), None)).disruption_budget.is_none());
        let two = render(&serve(Some(2), None));
        let spec = two.disruption_budget.and_then(|b| b.spec).expect("two replicas get a budget");
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        let selector = spec.selector.and_then(|s| s.match_labels).unwrap();
        assert_eq!(Some(&selector), two.deployment.spec.and_then(|s| s.selector.match_labels).as_ref());
        assert_eq!(selector.get(ROLE_LABEL).map(String::as_str), Some(SERVING_ROLE), "not the trial pods");
        let scaled = Autoscale { min_replicas: 2, max_replicas: 4, target_cpu_utilization: None };
        assert!(render(&serve(None, Some(scaled))).disruption_budget.is_some(), "the autoscaler's floor counts");
        let one = Autoscale { min_replicas: 1, max_replicas: 4, target_cpu_utilization: None };
        assert!(render(&serve(None, Some(one))).disruption_budget.is_none());
    }
}
