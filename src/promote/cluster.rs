//! Serving on Kubernetes: a Deployment and a Service named after the experiment (and a
//! HorizontalPodAutoscaler when `serve.autoscale` is given), applied with server-side apply. The
//! model's URI reaches the pods as `TUNA_MODEL_URI`; the version is a label and an annotation, so a
//! promotion or a rollback is an ordinary rolling update.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
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
use crate::spec::{ExecutorKind, ExperimentSpec, ServeSpec};

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

/// Whether an experiment's model is served on Kubernetes rather than by a local process.
pub fn serves_on_kubernetes(spec: &ExperimentSpec) -> bool {
    let serve = spec.promotion.as_ref().and_then(|p| p.serve.as_ref());
    spec.executor == ExecutorKind::Kubernetes && serve.is_some_and(|s| s.image.is_some() || s.pod_template.is_some())
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

fn pod_template(serve: &ServeSpec, port: u16) -> Result<PodTemplateSpec, String> {
    if let Some(template) = &serve.pod_template {
        return serde_json::from_value(template.clone())
            .map_err(|e| format!("spec.promotion.serve.podTemplate is not a pod template: {e}"));
    }
    let probe = Probe {
        http_get: Some(HTTPGetAction {
            path: Some(serve.readiness_path.clone().unwrap_or_else(|| "/healthz".into())),
            port: IntOrString::Int(i32::from(port)),
            ..Default::default()
        }),
        ..Default::default()
    };
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

/// Applies the manifests; returns the Service URL and the Deployment's rollout state.
pub async fn apply(client: &Client, manifests: &Manifests) -> Result<(String, String), kube::Error> {
    let namespace = manifests.deployment.metadata.namespace.clone().unwrap_or_default();
    let name = manifests.deployment.metadata.name.clone().unwrap_or_default();
    let params = PatchParams::apply(MANAGER).force();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let applied = deployments
        .patch(&name, &params, &Patch::Apply(&with_kind(&manifests.deployment, "apps/v1", "Deployment")))
        .await?;
    Api::<Service>::namespaced(client.clone(), &namespace)
        .patch(&name, &params, &Patch::Apply(&with_kind(&manifests.service, "v1", "Service")))
        .await?;
    if let Some(hpa) = &manifests.autoscaler {
        Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &namespace)
            .patch(&name, &params, &Patch::Apply(&with_kind(hpa, "autoscaling/v2", "HorizontalPodAutoscaler")))
            .await?;
    }
    if let Some(pdb) = &manifests.disruption_budget {
        Api::<PodDisruptionBudget>::namespaced(client.clone(), &namespace)
            .patch(&name, &params, &Patch::Apply(&with_kind(pdb, "policy/v1", "PodDisruptionBudget")))
            .await?;
    }
    let status = applied.status.unwrap_or_default();
    let wanted = applied.spec.and_then(|s| s.replicas).unwrap_or(1);
    let rollout = format!(
        "rollout: {}/{wanted} replicas updated, {} available",
        status.updated_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0)
    );
    let port =
        manifests.service.spec.as_ref().and_then(|s| s.ports.as_ref()).and_then(|p| p.first()).map_or(80, |p| p.port);
    Ok((format!("http://{name}.{namespace}.svc:{port}"), rollout))
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
