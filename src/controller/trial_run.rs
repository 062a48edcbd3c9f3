//! Running one trial to its end: build its launch, stream its metrics into the store, judge the
//! outcome, and re-run it when it was lost for a reason outside it and retries remain.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tracing::{info, instrument};

use super::{Error, Result, TrialApi, reason::CONTROLLER_SHUTDOWN};
use crate::executor::kube::Owner;
use crate::executor::{Executor, Exit, Finished, Launch, StopSignal, TrialEvent};
use crate::metrics::{MetricParser, Tally};
use crate::spec::{Collector, ExecutorKind, ExperimentSpec, parse_duration};
use crate::store::Store;
use crate::trial::{Observation, Trial, TrialPhase, parameters_json, reason, substitute};

/// What every trial of one experiment shares.
pub struct TrialContext<E> {
    pub store: Store,
    pub executor: Arc<E>,
    pub spec: ExperimentSpec,
    pub parser: MetricParser,
    /// Where trial programs start.
    pub working_dir: PathBuf,
    /// The experiment's folder under the data dir; each trial gets `trials/<name>/` inside.
    pub experiment_dir: PathBuf,
    /// Where trials push metrics, when a server runs them.
    pub api: Option<Arc<TrialApi>>,
    /// The custom resource the experiment came from (its namespace owns the trials' Jobs).
    pub origin: Option<crate::store::KubeOrigin>,
}

/// Runs `trial` (already stored as pending) until it has a final phase, or was stopped.
#[instrument(skip_all, fields(trial = %trial.name))]
pub async fn run_trial<E: Executor>(ctx: Arc<TrialContext<E>>, mut trial: Trial, stop: StopSignal) -> Result<Trial> {
    loop {
        let site = Site {
            spec: &ctx.spec,
            experiment_dir: &ctx.experiment_dir,
            working_dir: &ctx.working_dir,
            api: ctx.api.as_deref(),
            origin: ctx.origin.as_ref(),
        };
        let launch = launch_for(&site, &trial);
        trial.dir = Some(launch.trial_dir.display().to_string());
        trial.attempts += 1;
        let finished = watch_run(&ctx, &mut trial, launch, stop.clone()).await?;
        let tally = reported(&ctx, &trial)?;
        let mut verdict = judge(&ctx.spec, &finished, &tally, trial.attempts);
        if verdict.phase == TrialPhase::Stopped && stop.borrow().as_deref() == Some(CONTROLLER_SHUTDOWN) {
            verdict.phase = TrialPhase::Interrupted;
        }
        trial.metrics = tally.latest();
        trial.objective = tally.value(&ctx.spec.objective.metric, ctx.spec.objective.strategy());
        trial.objective_step = tally.step_of(&ctx.spec.objective.metric, ctx.spec.objective.strategy());
        trial.last_step = tally.last_step();
        trial.exit_code = match finished.exit {
            Exit::Code(c) => Some(c),
            _ => None,
        };
        if verdict.retry {
            info!(attempt = trial.attempts, "trial lost ({}); running it again", verdict.message);
            trial.move_to(TrialPhase::Pending);
            ctx.store.put_trial(&trial).map_err(|source| Error::SaveTrial { trial: trial.name.clone(), source })?;
            continue;
        }
        trial.move_to(verdict.phase);
        trial.reason = verdict
            .reason
            .map(str::to_string)
            .or_else(|| stop.borrow().clone())
            .filter(|_| verdict.phase != TrialPhase::Succeeded);
        trial.message = (!verdict.message.is_empty()).then_some(verdict.message);
        trial.finished_at = Some(Timestamp::now());
        trial.pid = None;
        ctx.store.put_trial(&trial).map_err(|source| Error::SaveTrial { trial: trial.name.clone(), source })?;
        return Ok(trial);
    }
}

/// Everything the current attempt reported: its output lines and what it pushed to the API.
fn reported<E>(ctx: &TrialContext<E>, trial: &Trial) -> Result<Tally> {
    let observations = ctx
        .store
        .observations(&trial.experiment, trial.index)
        .map_err(|source| Error::SaveTrial { trial: trial.name.clone(), source })?;
    Ok(Tally::of_attempt(&observations, trial.attempts))
}

/// Runs one attempt, recording the start and every reported value as they come.
async fn watch_run<E: Executor>(
    ctx: &TrialContext<E>,
    trial: &mut Trial,
    launch: Launch,
    stop: StopSignal,
) -> Result<Finished> {
    let output_dir = launch.output_dir();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let run = ctx.executor.run(launch, tx, stop);
    tokio::pin!(run);
    let finished = loop {
        tokio::select! {
            finished = &mut run => break finished,
            Some(event) = rx.recv() => record(ctx, trial, event)?,
        }
    };
    while let Ok(event) = rx.try_recv() {
        record(ctx, trial, event)?;
    }
    if ctx.spec.collector() == Collector::File {
        let file = output_dir.join(ctx.spec.metrics.file.as_deref().unwrap_or_default());
        let text = tokio::fs::read_to_string(&file).await.unwrap_or_default();
        observe_lines(ctx, trial, text.lines())?;
    }
    Ok(finished)
}

fn record<E>(ctx: &TrialContext<E>, trial: &mut Trial, event: TrialEvent) -> Result<()> {
    match event {
        TrialEvent::Started { pid, gpus } => {
            trial.move_to(TrialPhase::Running);
            trial.reason = None;
            trial.message = None;
            trial.started_at.get_or_insert(Timestamp::now());
            trial.pid = Some(pid);
            trial.gpus = gpus;
            ctx.store.put_trial(trial).map_err(|source| Error::SaveTrial { trial: trial.name.clone(), source })
        }
        TrialEvent::Line { text, .. } if ctx.spec.collector() == Collector::Stdout => {
            observe_lines(ctx, trial, std::iter::once(text.as_str()))
        }
        TrialEvent::Line { .. } => Ok(()),
        TrialEvent::Reattached => {
            trial.attempts = trial.attempts.saturating_sub(1).max(1);
            Ok(())
        }
        TrialEvent::Waiting { reason, message } => {
            trial.reason = Some(reason);
            trial.message = Some(message);
            ctx.store.put_trial(trial).map_err(|source| Error::SaveTrial { trial: trial.name.clone(), source })
        }
    }
}

fn observe_lines<'a, E>(ctx: &TrialContext<E>, trial: &Trial, lines: impl Iterator<Item = &'a str>) -> Result<()> {
    let now = Timestamp::now();
    let mut observations = Vec::new();
    for report in lines.filter_map(|l| ctx.parser.parse_line(l)) {
        for (metric, value) in report.values {
            observations.push(Observation { attempt: trial.attempts, metric, value, step: report.step, time: now });
        }
    }
    ctx.store
        .add_observations(&trial.experiment, trial.index, &observations)
        .map_err(|source| Error::SaveTrial { trial: trial.name.clone(), source })
}

/// Where and how an experiment's trials run: what a launch is built from.
pub struct Site<'a> {
    pub spec: &'a ExperimentSpec,
    /// The experiment's folder under the data dir (trial logs and, locally, outputs).
    pub experiment_dir: &'a Path,
    pub working_dir: &'a Path,
    pub api: Option<&'a TrialApi>,
    pub origin: Option<&'a crate::store::KubeOrigin>,
}

/// Where a Kubernetes trial writes its model, inside its container.
const KUBE_OUTPUT_ROOT: &str = "/tmp/tuna-output";

/// The launch of one trial: command, environment and placement, placeholders substituted.
pub fn launch_for(site: &Site<'_>, trial: &Trial) -> Launch {
    let trial_dir = site.experiment_dir.join("trials").join(&trial.name);
    let output_dir = match site.spec.executor {
        ExecutorKind::Kubernetes => Path::new(KUBE_OUTPUT_ROOT).join(&trial.name),
        _ => trial_dir.join("output"),
    };
    let lookup = |name: &str| match name {
        "trial" => Some(trial.name.clone()),
        "experiment" => Some(trial.experiment.clone()),
        "outputDir" => Some(output_dir.display().to_string()),
        param => trial.parameters.get(param).map(ToString::to_string),
    };
    let template = &site.spec.trial;
    let mut env: Vec<(String, String)> =
        template.env.iter().map(|(k, v)| (k.clone(), substitute(v, &lookup))).collect();
    env.push(("TUNA_EXPERIMENT".into(), trial.experiment.clone()));
    env.push(("TUNA_TRIAL".into(), trial.name.clone()));
    env.push(("TUNA_PARAMS".into(), parameters_json(&trial.parameters).to_string()));
    env.push(("TUNA_OUTPUT_DIR".into(), output_dir.display().to_string()));
    for (name, value) in &trial.parameters {
        env.push((format!("TUNA_PARAM_{}", name.to_uppercase()), value.to_string()));
    }
    if let Some(api) = site.api {
        env.push(("TUNA_API".into(), api.base_url.clone()));
        env.push(("TUNA_TRIAL_TOKEN".into(), api.secret.token(&trial.experiment, &trial.name)));
    }
    Launch {
        experiment: trial.experiment.clone(),
        trial: trial.name.clone(),
        command: template.command.iter().map(|c| substitute(c, &lookup)).collect(),
        env,
        working_dir: site.working_dir.to_path_buf(),
        trial_dir,
        timeout: template.timeout.as_deref().and_then(parse_duration),
        gpus: template.resources.gpu,
        executor: site.spec.executor,
        template: template.clone(),
        pod_template: template.pod_template.as_ref().map(|t| substitute_json(t, &lookup)),
        namespace: site.origin.map(|o| o.namespace.clone()),
        owner: site.origin.map(|o| Owner { name: o.name.clone(), uid: o.uid.clone() }),
    }
}

/// Substitutes placeholders in every string of a JSON value (a pod template's command, args, env).
fn substitute_json(value: &serde_json::Value, lookup: &dyn Fn(&str) -> Option<String>) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(substitute(s, lookup)),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute_json(v, lookup)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), substitute_json(v, lookup))).collect()),
        other => other.clone(),
    }
}

/// The outcome of one attempt.
#[derive(Debug, PartialEq)]
pub struct Verdict {
    pub phase: TrialPhase,
    pub reason: Option<&'static str>,
    pub message: String,
    /// Run the trial again (lost for a reason outside it, with retries left).
    pub retry: bool,
}

/// Judges an attempt from how its process ended and what it reported.
pub fn judge(spec: &ExperimentSpec, finished: &Finished, tally: &Tally, attempts: u32) -> Verdict {
    let metric = &spec.objective.metric;
    let tail = finished.stderr_tail.join("\n");
    let fail =
        |reason, message: String| Verdict { phase: TrialPhase::Failed, reason: Some(reason), message, retry: false };
    match &finished.exit {
        Exit::Code(0) if tally.value(metric, spec.objective.strategy()).is_some() => {
            Verdict { phase: TrialPhase::Succeeded, reason: None, message: String::new(), retry: false }
        }
        Exit::Code(0) => fail(reason::METRICS_UNAVAILABLE, format!("exited 0 but never reported {metric}")),
        Exit::Code(code) => fail(reason::NON_ZERO_EXIT, format!("exit code {code}{}", with_tail(&tail))),
        Exit::Signal(signal) => {
            let mut v = fail(reason::KILLED, format!("killed by signal {signal}{}", with_tail(&tail)));
            v.retry = attempts <= spec.trial.retries;
            v
        }
        Exit::TimedOut => fail(
            reason::TIMED_OUT,
            format!("ran longer than spec.trial.timeout ({})", spec.trial.timeout.as_deref().unwrap_or("?")),
        ),
        Exit::StartFailed(message) => fail(reason::START_FAILED, message.clone()),
        Exit::Stopped => Verdict { phase: TrialPhase::Stopped, reason: None, message: String::new(), retry: false },
    }
}

fn with_tail(tail: &str) -> String {
    if tail.is_empty() { String::new() } else { format!("; stderr ends with:\n{tail}") }
}
