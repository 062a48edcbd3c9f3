//! The `batch/v1` Job a trial runs as: pure, so `tuna render` and the tests see exactly what the
//! executor creates.
//!
//! The trial's push token is never in the Job: anyone who may read Jobs or pods would read it.
//! It goes into one Secret per trial Job, named like the Job, holding key `token`
//! ([`token_secret`]), which `own::ensure_job` creates right after the Job with an owner reference
//! to it (`controller: false`, `blockOwnerDeletion: false`), so Kubernetes' garbage collector
//! deletes it with the Job (a stopped trial's Job, an Experiment's Jobs deleted as a collection,
//! a finished Job's TTL). The container gets `TUNA_TRIAL_TOKEN` through
//! `valueFrom.secretKeyRef {name: <job name>, key: token}`, not optional: until the Secret exists
//! the kubelet holds the container in `CreateContainerConfigError`, then starts it. A 409 on the
//! Secret's create (a restarted controller re-adopting its Job) keeps the existing Secret: the
//! token is deterministic for the same experiment, incarnation, trial and attempt; any other error
//! deletes the Job again and fails the trial's start, saying why. Every other
//! environment value stays a plain value. `tuna render` shows the `secretKeyRef` and no Secret.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
    PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::executor::Launch;
use crate::spec::name_in_namespace;

/// Labels on every Job and pod tuna creates, for selection and re-attachment.
pub const EXPERIMENT_LABEL: &str = "tuna.dev/experiment";
pub const TRIAL_LABEL: &str = "tuna.dev/trial";
/// Which experiment of that name (its CR's UID, or its incarnation): a re-created experiment
/// never takes an old one's Jobs for its own.
pub const IDENTITY_LABEL: &str = "tuna.dev/identity";
/// What a pod of tuna's is for: `trial` (a trial's Job) or `serving` (a promoted model), so that
/// a Service or an autoscaler of the model never counts a trial's pod.
pub const ROLE_LABEL: &str = "tuna.dev/role";
pub const TRIAL_ROLE: &str = "trial";
pub const SERVING_ROLE: &str = "serving";
/// The trial's attempt the Job runs.
pub const ATTEMPT_ANNOTATION: &str = "tuna.dev/attempt";
/// The container tuna writes when the spec gives an image rather than a pod template.
const DEFAULT_CONTAINER: &str = "trial";
/// How long a finished Job stays for inspection when the spec does not say.
pub const DEFAULT_TTL_SECONDS: i32 = 3600;
/// The user and group a trial runs as when its pod template does not say (any but 0 passes Pod
/// Security `restricted`; an image whose USER is root would otherwise be refused by runAsNonRoot).
const TRIAL_UID: i64 = 65532;
/// Kubernetes object names and label values hold at most 63 characters.
const MAX_NAME: usize = 63;
/// The volume `spec.trial.shmSize` adds, mounted at `/dev/shm` in the trial's container.
pub const SHM_VOLUME: &str = "tuna-shm";
/// The environment variable holding a trial's push token, and the key of its Secret that holds it.
pub const TOKEN_ENV: &str = "TUNA_TRIAL_TOKEN";
pub const TOKEN_KEY: &str = "token";

/// Renders the Job for one trial launch in `namespace`.
pub fn render_job(launch: &Launch, namespace: &str) -> Result<Job, String> {
    let t = &launch.template;
    let mut pod = match &launch.pod_template {
        Some(value) => serde_json::from_value::<PodTemplateSpec>(value.clone())
            .map_err(|e| format!("spec.trial.podTemplate is not a pod template: {e}"))?,
        None => PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: DEFAULT_CONTAINER.into(),
                    image: t.image.clone(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        },
    };
    let mut labels = t.labels.clone();
    labels.extend(labels_of(launch));
    let mut annotations = t.annotations.clone();
    annotations.insert(ATTEMPT_ANNOTATION.to_string(), launch.attempt.to_string());
    let meta = pod.metadata.get_or_insert_with(Default::default);
    meta.labels.get_or_insert_with(Default::default).extend(labels.clone());
    if !t.annotations.is_empty() {
        meta.annotations.get_or_insert_with(Default::default).extend(t.annotations.clone());
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.restart_policy = Some("Never".into());
    secure_by_default(spec);
    if !t.node_selector.is_empty() {
        spec.node_selector.get_or_insert_with(Default::default).extend(t.node_selector.clone());
    }
    if !t.tolerations.is_empty() {
        let tolerations: Vec<Toleration> = t
            .tolerations
            .iter()
            .map(|v| serde_json::from_value(v.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("spec.trial.tolerations is not a list of Kubernetes tolerations: {e}"))?;
        spec.tolerations.get_or_insert_with(Default::default).extend(tolerations);
    }
    if let Some(sa) = &t.service_account_name {
        spec.service_account_name = Some(sa.clone());
    }
    let primary = primary_container(spec, t.primary_container.as_deref())?;
    let primary_name = primary.name.clone();
    if !launch.command.is_empty() {
        primary.command = Some(launch.command.clone());
        primary.args = None;
    }
    let env = primary.env.get_or_insert_with(Default::default);
    let secret = job_name(&launch.experiment, &launch.trial);
    env.extend(launch.env.iter().map(|(name, value)| match name.as_str() {
        TOKEN_ENV => EnvVar {
            name: name.clone(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.clone(),
                    key: TOKEN_KEY.into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
        },
        _ => EnvVar { name: name.clone(), value: Some(value.clone()), value_from: None },
    }));
    set_resources(primary, launch);
    if let Some(size) = &t.shm_size {
        add_shm(spec, &primary_name, size)?;
    }
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(&launch.experiment, &launch.trial)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: launch.owner.as_ref().map(|o| vec![owner_reference(o)]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            template: pod,
            // tuna decides retries (`spec.trial.retries`, the same rule as for local trials) and
            // runs each as a Job of its own; the Job itself re-runs only a disrupted pod.
            backoff_limit: Some(0),
            pod_failure_policy: Some(failure_policy(&primary_name)),
            ttl_seconds_after_finished: Some(t.ttl_seconds_after_finished.unwrap_or(DEFAULT_TTL_SECONDS)),
            completions: Some(1),
            parallelism: Some(1),
            ..Default::default()
        }),
        status: None,
    })
}

/// The Secret that holds the push token of the trial whose Job is `job` (created, so it has its
/// UID), owned by that Job; `None` when the launch has no token (no API to push to).
pub fn token_secret(launch: &Launch, job: &Job) -> Option<Secret> {
    let token = launch.env.iter().rev().find(|(k, _)| k == TOKEN_ENV).map(|(_, v)| v.clone())?;
    let owner = OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.metadata.name.clone().unwrap_or_default(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(false),
        block_owner_deletion: Some(false),
    };
    Some(Secret {
        metadata: ObjectMeta {
            name: job.metadata.name.clone(),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels_of(launch)),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(TOKEN_KEY.to_string(), ByteString(token.into_bytes()))])),
        ..Default::default()
    })
}

/// A disruption (eviction, preemption, node drain: `DisruptionTarget`) is no failure of the trial:
/// the Job runs a new pod. A non-zero exit of the trial's container fails the Job at once, with its
/// code, whatever a sidecar does.
fn failure_policy(primary: &str) -> PodFailurePolicy {
    let disrupted = PodFailurePolicyOnPodConditionsPattern { type_: "DisruptionTarget".into(), status: "True".into() };
    let exited = PodFailurePolicyOnExitCodesRequirement {
        container_name: Some(primary.to_string()),
        operator: "NotIn".into(),
        values: vec![0],
    };
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_pod_conditions: Some(vec![disrupted]),
                on_exit_codes: None,
            },
            PodFailurePolicyRule { action: "FailJob".into(), on_exit_codes: Some(exited), on_pod_conditions: None },
        ],
    }
}

/// What Pod Security `restricted` asks of a pod, where its template says nothing: non-root with
/// the runtime's seccomp profile, no privilege escalation, no capabilities, no API token mounted
/// (a trial has no business with the API server; a template that sets any of these keeps its own).
fn secure_by_default(spec: &mut PodSpec) {
    spec.security_context.get_or_insert_with(|| PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(TRIAL_UID),
        run_as_group: Some(TRIAL_UID),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
        ..Default::default()
    });
    spec.automount_service_account_token.get_or_insert(false);
    let init = spec.init_containers.iter_mut().flatten();
    for container in spec.containers.iter_mut().chain(init) {
        container.security_context.get_or_insert_with(|| SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            ..Default::default()
        });
    }
}

fn labels_of(launch: &Launch) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (EXPERIMENT_LABEL.to_string(), label_value(&launch.experiment)),
        (TRIAL_LABEL.to_string(), label_value(&launch.trial)),
        (ROLE_LABEL.to_string(), TRIAL_ROLE.to_string()),
    ]);
    if !launch.identity.is_empty() {
        labels.insert(IDENTITY_LABEL.to_string(), label_value(&launch.identity));
    }
    labels
}

/// Whether `job` is the Job of this launch's trial in this very experiment (not of an earlier
/// experiment of the same name): its trial and identity labels are this launch's.
pub fn is_trial_of(job: &Job, launch: &Launch) -> bool {
    let labels = job.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str).unwrap_or_default();
    label(TRIAL_LABEL) == label_value(&launch.trial) && label(IDENTITY_LABEL) == label_value(&launch.identity)
}

/// The name of the container that runs the trial: `primaryContainer`, or the pod template's
/// first container, or `trial` (the one tuna writes from `image`). Logs and the exit code are
/// read from it by name: pods may hold sidecars, and statuses are listed by name.
pub fn primary_name(launch: &Launch) -> String {
    let first = || {
        let template = launch.pod_template.as_ref()?;
        template.pointer("/spec/containers/0/name")?.as_str().map(String::from)
    };
    launch.template.primary_container.clone().or_else(first).unwrap_or_else(|| DEFAULT_CONTAINER.into())
}

fn primary_container<'a>(spec: &'a mut PodSpec, name: Option<&str>) -> Result<&'a mut Container, String> {
    let index = match name {
        Some(n) => spec
            .containers
            .iter()
            .position(|c| c.name == n)
            .ok_or_else(|| format!("spec.trial.primaryContainer {n:?} is not in the pod template"))?,
        None => 0,
    };
    spec.containers.get_mut(index).ok_or_else(|| "spec.trial.podTemplate has no container".to_string())
}

/// A memory-backed emptyDir of `size` at `/dev/shm` in the trial's container (`spec.trial.shmSize`).
/// emptyDir is allowed under Pod Security `restricted`; a pod template that already mounts
/// something at `/dev/shm` in that container, or has a volume of the same name, is refused rather
/// than given two mounts at one path (the API server would refuse the Job later, less clearly).
fn add_shm(spec: &mut PodSpec, primary: &str, size: &str) -> Result<(), String> {
    let volumes = spec.volumes.get_or_insert_with(Default::default);
    if volumes.iter().any(|v| v.name == SHM_VOLUME) {
        return Err(format!("spec.trial.shmSize: the pod template already has a volume named {SHM_VOLUME:?}"));
    }
    volumes.push(Volume {
        name: SHM_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity(size.into())),
        }),
        ..Default::default()
    });
    let container = primary_container(spec, Some(primary))?;
    let mounts = container.volume_mounts.get_or_insert_with(Default::default);
    if mounts.iter().any(|m| m.mount_path.trim_end_matches('/') == "/dev/shm") {
        return Err("spec.trial.shmSize: the pod template already mounts a volume at /dev/shm".into());
    }
    mounts.push(VolumeMount { name: SHM_VOLUME.into(), mount_path: "/dev/shm".into(), ..Default::default() });
    Ok(())
}

fn set_resources(container: &mut Container, launch: &Launch) {
    let r = &launch.template.resources;
    let mut amounts = BTreeMap::new();
    if launch.gpus > 0 {
        amounts.insert("nvidia.com/gpu".to_string(), Quantity(launch.gpus.to_string()));
    }
    if let Some(cpu) = &r.cpu {
        amounts.insert("cpu".into(), Quantity(cpu.clone()));
    }
    if let Some(memory) = &r.memory {
        amounts.insert("memory".into(), Quantity(memory.clone()));
    }
    if amounts.is_empty() {
        return;
    }
    let resources = container.resources.get_or_insert_with(ResourceRequirements::default);
    // Requests equal limits: the trial gets what it asked for, and GPUs must be given as limits.
    resources.limits.get_or_insert_with(Default::default).extend(amounts.clone());
    amounts.remove("nvidia.com/gpu");
    if !amounts.is_empty() {
        resources.requests.get_or_insert_with(Default::default).extend(amounts);
    }
}

/// Who owns a trial's Job: the `Experiment` custom resource it came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub name: String,
    pub uid: String,
}

fn owner_reference(owner: &Owner) -> OwnerReference {
    OwnerReference {
        api_version: crate::spec::API_VERSION.into(),
        kind: "Experiment".into(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The trial's Job name: the trial name when it fits in 63 characters, otherwise a shortened
/// experiment name, a hash of the whole and the trial number, so names stay unique.
pub fn job_name(experiment: &str, trial: &str) -> String {
    let (experiment, trial) = (name_in_namespace(experiment), name_in_namespace(trial));
    if trial.len() <= MAX_NAME {
        return trial.to_string();
    }
    let number = trial.rsplit('-').next().unwrap_or_default();
    let hash = format!("{:08x}", fnv1a(trial.as_bytes()) as u32);
    let keep = MAX_NAME - number.len() - hash.len() - 2;
    let prefix: String = experiment.chars().take(keep).collect();
    format!("{}-{hash}-{number}", prefix.trim_end_matches('-'))
}

/// A label value: at most 63 characters (long names are shortened like job names).
/// A name as a label value: inside its namespace (labels take no `/`), hashed when too long.
pub fn label_value(value: &str) -> String {
    let value = name_in_namespace(value);
    if value.len() <= MAX_NAME { value.to_string() } else { job_name(value, value) }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
