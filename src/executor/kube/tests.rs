use std::path::PathBuf;

use super::job::{ATTEMPT_ANNOTATION, IDENTITY_LABEL, is_trial_of, render_job};
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
