//! What an `executor: kubernetes` experiment submitted through the REST API may ask for. Its Jobs
//! are created with the controller's rights, so the API would otherwise be a way around the
//! cluster's own: they run only in the namespace the operator chose (`--trial-namespace`), under
//! a ServiceAccount the operator allows (`--trial-service-accounts`, default `tuna-trial`, which
//! has no rights), and a pod template may not reach the node (privileged, host namespaces,
//! hostPath volumes). Custom resources are not checked here: their author already has the rights
//! of their namespace, and the cluster's own admission judges them.
//!
//! ```text
//! POST ─▶ executor kubernetes? ─▶ no trial namespace configured ─▶ 422 spec.executor
//!                                 service account not allowed   ─▶ 422 spec.trial.serviceAccountName
//!                                 node access in podTemplate    ─▶ 422 at its field
//!                                 none named ─▶ the first allowed one is set
//! ```

use serde_json::Value;

use crate::spec::{ExecutorKind, ExperimentSpec, Problem};

/// Where and as whom API-submitted Kubernetes trials run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialPolicy {
    /// Where their Jobs go; `None`: the server takes no Kubernetes experiments from the API.
    pub namespace: Option<String>,
    /// The ServiceAccounts their pods may run as; the first is the default.
    pub service_accounts: Vec<String>,
}

impl Default for TrialPolicy {
    fn default() -> Self {
        Self { namespace: None, service_accounts: vec![DEFAULT_ACCOUNT.into()] }
    }
}

/// The ServiceAccount `deploy/` ships for trials: no Role binds it.
pub const DEFAULT_ACCOUNT: &str = "tuna-trial";

/// Pod fields that hand a pod its node, each refused when `true`.
const HOST_FIELDS: [&str; 3] = ["hostPID", "hostIPC", "hostNetwork"];

impl TrialPolicy {
    /// The problems of `spec` under this policy; a spec without a ServiceAccount gets the default.
    pub fn check(&self, spec: &mut ExperimentSpec) -> Vec<Problem> {
        if spec.executor != ExecutorKind::Kubernetes {
            return Vec::new();
        }
        let mut problems = Vec::new();
        if self.namespace.is_none() {
            problems.push(Problem::new(
                "spec.executor",
                "this server runs no Kubernetes trials submitted through the API (their Jobs would run with the \
                 controller's rights in its own namespace): start it with --trial-namespace NAMESPACE, or create an \
                 Experiment resource in your namespace",
            ));
        }
        let allowed = self.service_accounts.join(", ");
        let template = spec.trial.pod_template.as_ref();
        let template_account = template.and_then(|t| t["spec"]["serviceAccountName"].as_str().map(String::from));
        for (field, account) in [
            ("spec.trial.serviceAccountName", spec.trial.service_account_name.clone()),
            ("spec.trial.podTemplate.spec.serviceAccountName", template_account),
        ] {
            if let Some(account) = account.filter(|a| !self.service_accounts.contains(a)) {
                problems.push(Problem::new(
                    field,
                    format!(
                        "{account:?} is not a ServiceAccount API-submitted trials may run as (allowed: {allowed}; \
                         the server's --trial-service-accounts)"
                    ),
                ));
            }
        }
        if let Some(template) = template {
            problems.extend(node_access(template));
        }
        if problems.is_empty() && spec.trial.service_account_name.is_none() {
            spec.trial.service_account_name = self.service_accounts.first().cloned();
        }
        problems
    }
}

/// What in a pod template reaches the node it runs on.
fn node_access(template: &Value) -> Vec<Problem> {
    let base = "spec.trial.podTemplate.spec";
    let spec = &template["spec"];
    let mut problems = Vec::new();
    for field in HOST_FIELDS {
        if spec[field] == true {
            problems.push(Problem::new(
                format!("{base}.{field}"),
                "shares the node's namespace: not allowed for API-submitted trials",
            ));
        }
    }
    for (i, volume) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        if !volume["hostPath"].is_null() {
            problems.push(Problem::new(
                format!("{base}.volumes[{i}].hostPath"),
                "mounts the node's files: not allowed for API-submitted trials",
            ));
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, container) in spec[list].as_array().into_iter().flatten().enumerate() {
            let context = &container["securityContext"];
            let at = format!("{base}.{list}[{i}].securityContext");
            if context["privileged"] == true {
                problems.push(Problem::new(
                    format!("{at}.privileged"),
                    "a privileged container owns the node: not allowed for API-submitted trials",
                ));
            }
            if context["capabilities"]["add"].as_array().is_some_and(|a| !a.is_empty()) {
                problems.push(Problem::new(
                    format!("{at}.capabilities.add"),
                    "added capabilities are not allowed for API-submitted trials",
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(trial: &str) -> ExperimentSpec {
        let doc = format!(
            "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: e}}\nspec:\n  objective: {{metric: m, goal: maximize}}\n  \
             parameters: [{{name: x, type: int, min: 1, max: 3}}]\n  executor: kubernetes\n  trial:\n{trial}"
        );
        crate::spec::parse(&doc).unwrap().spec
    }

    fn policy() -> TrialPolicy {
        TrialPolicy { namespace: Some("tuna-trials".into()), ..Default::default() }
    }

    fn fields(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(|p| p.field.clone()).collect()
    }

    #[test]
    fn a_trial_that_names_no_account_runs_as_the_default_one() {
        let mut s = spec("    image: busybox\n    command: [\"true\"]\n");
        assert!(policy().check(&mut s).is_empty());
        assert_eq!(s.trial.service_account_name.as_deref(), Some("tuna-trial"));
    }

    #[test]
    fn the_controllers_account_is_refused_at_its_field() {
        let mut s = spec("    image: busybox\n    command: [\"true\"]\n    serviceAccountName: tuna\n");
        let problems = policy().check(&mut s);
        assert_eq!(fields(&problems), ["spec.trial.serviceAccountName"]);
        assert!(problems[0].message.contains("\"tuna\"") && problems[0].message.contains("tuna-trial"));
    }

    #[test]
    fn a_pod_template_that_reaches_the_node_is_refused_at_each_field() {
        let mut s = spec(
            "    podTemplate:\n      spec:\n        hostPID: true\n        hostNetwork: true\n        serviceAccountName: tuna\n        \
             volumes: [{name: root, hostPath: {path: /}}]\n        \
             containers: [{name: t, image: busybox, securityContext: {privileged: true}}]\n",
        );
        let problems = policy().check(&mut s);
        assert_eq!(
            fields(&problems),
            [
                "spec.trial.podTemplate.spec.serviceAccountName",
                "spec.trial.podTemplate.spec.hostPID",
                "spec.trial.podTemplate.spec.hostNetwork",
                "spec.trial.podTemplate.spec.volumes[0].hostPath",
                "spec.trial.podTemplate.spec.containers[0].securityContext.privileged",
            ]
        );
    }

    #[test]
    fn without_a_trial_namespace_kubernetes_experiments_are_refused() {
        let mut s = spec("    image: busybox\n    command: [\"true\"]\n");
        let problems = TrialPolicy::default().check(&mut s);
        assert_eq!(fields(&problems), ["spec.executor"]);
        assert!(problems[0].message.contains("--trial-namespace"));
    }
}
