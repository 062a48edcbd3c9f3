//! The attempts of an experiment's trials: each runs in its own task through the executor, and
//! everything it reports comes back on one channel, in order, ending with how it finished. The
//! output lines become observations here; what they mean is the experiment core's to judge.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, info_span, warn};

use super::{Error, Result, TrialApi};
use crate::executor::kube::Owner;
use crate::executor::{Executor, Finished, Launch, StopSignal, TrialEvent};
use crate::metrics::{MetricParser, Tally};
use crate::spec::{Collector, ExecutorKind, ExperimentSpec, parse_duration};
use crate::store::Store;
use crate::token::Holder;
use crate::trial::{Observation, Trial, TrialReason, parameters_json, substitute};

/// What every trial of one experiment shares.
pub struct TrialContext<E> {
    /// The experiment's name.
    pub name: String,
    /// The experiment's incarnation (`metadata.uid`): trial tokens are bound to it, and its Jobs
    /// are labelled with it.
    pub incarnation: String,
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

/// What an attempt's task sends back: its events as they happen, then how it finished.
#[derive(Debug)]
pub enum Report {
    Event(TrialEvent),
    Ended(Finished),
}

/// The running attempts of one experiment, with a stop signal of its own for each trial.
pub struct Attempts<E> {
    ctx: Arc<TrialContext<E>>,
    tasks: JoinSet<()>,
    sender: mpsc::UnboundedSender<(u32, Report)>,
    reports: mpsc::UnboundedReceiver<(u32, Report)>,
    /// Per trial, kept across its attempts: a trial asked to stop stays stopped when retried.
    stops: HashMap<u32, watch::Sender<Option<TrialReason>>>,
    /// Where each trial's current attempt writes its outputs.
    output_dirs: HashMap<u32, PathBuf>,
    /// The trials whose observations reached the store's cap (said once each).
    truncated: std::sync::Mutex<std::collections::BTreeSet<u32>>,
}

impl<E: Executor> Attempts<E> {
    pub fn new(ctx: Arc<TrialContext<E>>) -> Self {
        let (sender, reports) = mpsc::unbounded_channel();
        Self {
            ctx,
            tasks: JoinSet::new(),
            sender,
            reports,
            stops: HashMap::new(),
            output_dirs: HashMap::new(),
            truncated: Default::default(),
        }
    }

    /// Starts the trial's current attempt; returns the trial's folder.
    /// `resume`: the attempt may be one an earlier controller started (see `Launch::resume`).
    pub fn launch(&mut self, trial: &Trial, resume: bool) -> String {
        let ctx = &self.ctx;
        let site = Site {
            incarnation: &ctx.incarnation,
            spec: &ctx.spec,
            experiment_dir: &ctx.experiment_dir,
            working_dir: &ctx.working_dir,
            api: ctx.api.as_deref(),
            origin: ctx.origin.as_ref(),
        };
        let mut launch = launch_for(&site, trial);
        launch.resume = resume;
        let dir = launch.trial_dir.display().to_string();
        self.output_dirs.insert(trial.index, launch.output_dir());
        let stop = self.stops.entry(trial.index).or_insert_with(|| watch::channel(None).0).subscribe();
        let span = info_span!("trial", trial = %trial.name, attempt = trial.attempts);
        let task = run_attempt(Arc::clone(&ctx.executor), launch, stop, trial.index, self.sender.clone());
        self.tasks.spawn(task.instrument(span));
        dir
    }

    /// Asks one trial to stop.
    pub fn stop(&mut self, index: u32, cause: TrialReason) {
        if let Some(stop) = self.stops.get(&index) {
            stop.send_replace(Some(cause));
        }
    }

    /// Drops what was kept for a trial that has its outcome.
    pub fn forget(&mut self, index: u32) {
        self.stops.remove(&index);
        self.output_dirs.remove(&index);
    }

    /// The next report of any attempt; fails when an attempt's task crashed.
    pub async fn next(&mut self) -> Result<(u32, Report)> {
        loop {
            tokio::select! {
                Some(report) = self.reports.recv() => return Ok(report),
                Some(joined) = self.tasks.join_next() => {
                    if let Err(source) = joined {
                        return Err(Error::TrialTask { name: self.ctx.name.clone(), source });
                    }
                }
            }
        }
    }

    /// Stores the metrics on one output line (stdout collector) as observations of `attempt`, and
    /// returns them.
    pub fn observe_line(&self, index: u32, attempt: u32, line: &str) -> Result<Vec<Observation>> {
        if self.ctx.spec.collector() != Collector::Stdout {
            return Ok(Vec::new());
        }
        self.observe(index, attempt, std::iter::once(line))
    }

    /// Everything `attempt` reported (output lines, pushes and, for the file collector, its file,
    /// read now that it ended).
    pub async fn tally(&self, index: u32, attempt: u32) -> Result<Tally> {
        let ctx = &self.ctx;
        if ctx.spec.collector() == Collector::File
            && let Some(dir) = self.output_dirs.get(&index)
        {
            let file = dir.join(ctx.spec.metrics.file.as_deref().unwrap_or_default());
            let text = tokio::fs::read_to_string(&file).await.unwrap_or_default();
            self.observe(index, attempt, text.lines())?;
        }
        let name = &ctx.name;
        let observations = ctx
            .store
            .observations(name, index)
            .map_err(|source| Error::SaveTrial { trial: crate::trial::trial_name(name, index), source })?;
        Ok(Tally::of_attempt(&observations, attempt))
    }

    fn observe<'a>(&self, index: u32, attempt: u32, lines: impl Iterator<Item = &'a str>) -> Result<Vec<Observation>> {
        let ctx = &self.ctx;
        let now = jiff::Timestamp::now();
        let mut observations = Vec::new();
        for report in lines.filter_map(|l| ctx.parser.parse_line(l)) {
            for (metric, value) in report.values {
                observations.push(Observation { attempt, metric, value, step: report.step, time: now });
            }
        }
        let name = &ctx.name;
        let kept = ctx
            .store
            .add_observations(name, index, &observations)
            .map_err(|source| Error::SaveTrial { trial: crate::trial::trial_name(name, index), source })?;
        if kept < observations.len() && self.truncated.lock().unwrap_or_else(|e| e.into_inner()).insert(index) {
            warn!(
                trial = %crate::trial::trial_name(name, index),
                "the trial reported more than {} values; the rest are dropped",
                crate::store::MAX_OBSERVATIONS
            );
        }
        Ok(observations)
    }
}

/// Runs one attempt, forwarding its events and then how it finished, in that order.
async fn run_attempt<E: Executor>(
    executor: Arc<E>,
    launch: Launch,
    stop: StopSignal,
    index: u32,
    reports: mpsc::UnboundedSender<(u32, Report)>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let run = executor.run(launch, tx, stop);
    tokio::pin!(run);
    let finished = loop {
        tokio::select! {
            finished = &mut run => break finished,
            Some(event) = rx.recv() => { let _ = reports.send((index, Report::Event(event))); }
        }
    };
    while let Ok(event) = rx.try_recv() {
        let _ = reports.send((index, Report::Event(event)));
    }
    let _ = reports.send((index, Report::Ended(finished)));
}

/// Where and how an experiment's trials run: what a launch is built from.
pub struct Site<'a> {
    /// The experiment's incarnation, which the trial's push token and Job are bound to.
    pub incarnation: &'a str,
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
        let holder = Holder {
            experiment: &trial.experiment,
            incarnation: site.incarnation,
            trial: &trial.name,
            attempt: trial.attempts,
        };
        env.push(("TUNA_TRIAL_TOKEN".into(), api.secret.token(&holder)));
    }
    Launch {
        experiment: trial.experiment.clone(),
        trial: trial.name.clone(),
        command: template.command.iter().map(|c| substitute(c, &lookup)).collect(),
        env,
        working_dir: site.working_dir.to_path_buf(),
        trial_dir,
        timeout: template.timeout.as_deref().and_then(parse_duration),
        start_timeout: template.start_timeout.as_deref().and_then(parse_duration),
        gpus: template.resources.gpu,
        executor: site.spec.executor,
        template: template.clone(),
        pod_template: template.pod_template.as_ref().map(|t| substitute_json(t, &lookup)),
        namespace: site.origin.map(|o| o.namespace.clone()),
        owner: site.origin.map(|o| Owner { name: o.name.clone(), uid: o.uid.clone() }),
        identity: site.incarnation.to_string(),
        attempt: trial.attempts,
        resume: false,
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
