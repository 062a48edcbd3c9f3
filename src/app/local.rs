//! `tuna run` and `tuna validate`: everything on this machine, no
//! server.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use jiff::Timestamp;
use tokio::sync::watch;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::controller::{Admission, Controller, Halt, TrialApi};
use crate::executor::local::preflight;
use crate::executor::{Dispatch, KubeExecutor, LocalExecutor};
use crate::leaderboard;
use crate::promote::Promoter;
use crate::spec::{Collector, ExecutorKind, Experiment, ExperimentPhase};
use crate::store::{Desired, Durability, PromotionRequest, Store};
use crate::token::TrialSecret;
use crate::trial::{Trial, TrialPhase};

use super::endpoint;
use super::progress::{Announcer, Display};

/// Reads and validates an experiment document, and (local executor) checks that its trials can
/// start from the spec's folder, all in one report.
pub fn load_spec(file: &Path) -> anyhow::Result<Experiment> {
    load(file, true)
}

/// The document only, for `submit`: a server runs the trials in its own folder and checks their
/// files there (a client's spec file may be anywhere).
pub fn load_document(file: &Path) -> anyhow::Result<Experiment> {
    load(file, false)
}

fn load(file: &Path, check_files: bool) -> anyhow::Result<Experiment> {
    let text = std::fs::read_to_string(file).with_context(|| format!("failed to read {}", file.display()))?;
    let spec_dir = spec_dir(file)?;
    let files = |e: &Experiment| if check_files { preflight(&e.spec, &spec_dir) } else { Vec::new() };
    crate::spec::parse_value(&text)
        .and_then(|value| crate::search::read_document(value, files))
        .with_context(|| format!("{} is not a valid experiment", file.display()))
}

/// The folder of a spec file, absolute: `trial.workingDir` is relative to it.
pub fn spec_dir(file: &Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::path::absolute(dir).context("failed to resolve the spec's folder")
}

pub fn validate(file: &Path) -> anyhow::Result<ExitCode> {
    let experiment = load_spec(file)?;
    let spec = &experiment.spec;
    println!(
        "{}: valid ({} parameters, {} search, up to {} trials, {} at a time)",
        file.display(),
        spec.parameters.len(),
        spec.algorithm.name,
        spec.max_trials,
        spec.parallel_trials
    );
    Ok(ExitCode::SUCCESS)
}

/// How `tuna run` was asked to run.
pub struct RunOptions {
    /// Discard a stored experiment of the same name.
    pub fresh: bool,
    /// Leaderboard rows printed at the end.
    pub top: usize,
    /// Promote and serve the best trial afterwards.
    pub serve: bool,
    /// The dashboard's loopback port (0: any), when asked for.
    pub ui: Option<u16>,
}

pub async fn run(config: &Config, file: &Path, options: RunOptions) -> anyhow::Result<ExitCode> {
    let RunOptions { fresh, top, serve, ui } = options;
    let experiment = load_spec(file)?;
    let name = experiment.metadata.name.clone().unwrap_or_default();
    let spec_dir = Some(spec_dir(file)?);
    let store = super::open_store(&config.data_dir())?;
    let run = Here::start(config, store, &experiment.spec, &name, ui).await?;
    match run.controller.admit(experiment, spec_dir, fresh)? {
        Admission::Created => eprintln!("experiment {name}: created"),
        Admission::Resumed { requeued } => eprintln!("experiment {name}: resuming ({requeued} trials re-queued)"),
        Admission::Extended { max_trials, requeued } => {
            eprintln!("experiment {name}: extended to maxTrials {max_trials} ({requeued} trials re-queued)");
        }
        Admission::AlreadyFinished => {
            eprintln!("experiment {name}: already finished (raise maxTrials to run more, or --fresh to start over)");
            print_summary(&run.store, &name, top)?;
            let succeeded = run.store.experiment(&name)?.and_then(|r| r.experiment.status).map(|s| s.phase);
            if serve && succeeded == Some(ExperimentPhase::Succeeded) {
                serve_best(&run.store, &run.data_dir, &name).await?;
            } else if run.dashboard.is_some() {
                keep_dashboard().await;
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
    run.drive(&name, top, serve).await
}

/// `tuna resume NAME` over a data dir no process holds: runs the stored experiment here, in the
/// foreground, as `tuna run` on its document would (the API's resume has already reopened it).
pub async fn run_stored(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let store = super::open_store(&config.data_dir())?;
    let record = store.experiment(name)?.with_context(|| format!("experiment {name} is not in the store"))?;
    let run = Here::start(config, store, &record.experiment.spec, name, None).await?;
    let requeued = run.controller.requeue(name)?;
    eprintln!("experiment {name}: resuming here ({requeued} trials re-queued)");
    run.drive(name, 10, false).await
}

/// What a run on this machine is made of: the store, the controller with its executors, the
/// loopback API published for other terminals, and the dashboard when asked for.
struct Here {
    store: Store,
    data_dir: std::path::PathBuf,
    controller: Controller<Dispatch>,
    dashboard: Option<String>,
    _published: endpoint::Published,
}

impl Here {
    async fn start(
        config: &Config,
        store: Store,
        spec: &crate::spec::ExperimentSpec,
        name: &str,
        ui: Option<u16>,
    ) -> anyhow::Result<Self> {
        let gpus = super::gpus(config)?;
        let wanted = spec.trial.resources.gpu as usize;
        if spec.executor == ExecutorKind::Local && wanted > gpus.len() {
            bail!(
                "spec.trial.resources.gpu: each trial asks for {wanted} GPU(s) but {} are available ({}); \
                 lower it or name the devices with --gpus",
                gpus.len(),
                if gpus.is_empty() { "nvidia-smi lists none".to_string() } else { format!("devices {gpus:?}") }
            );
        }
        let data_dir = std::path::absolute(config.data_dir()).context("failed to resolve the data dir")?;
        let kube = match spec.executor {
            ExecutorKind::Kubernetes => {
                let (client, namespace) =
                    super::cluster::client().await.context("executor kubernetes needs a cluster")?;
                Some(KubeExecutor::new(client, namespace))
            }
            _ => None,
        };
        let executor = Dispatch { local: LocalExecutor::new(gpus.clone()), kube };
        let mut controller = Controller::new(store.clone(), Arc::new(executor), data_dir.clone());
        let (trial_api, published) = control_endpoint(&store, &data_dir, gpus.len(), name).await?;
        if spec.collector() == Collector::Push {
            controller = controller.with_api(trial_api);
        }
        let dashboard = match ui {
            Some(port) => Some(dashboard(&store, &data_dir, port, name).await?),
            None => None,
        };
        Ok(Self { store, data_dir, controller, dashboard, _published: published })
    }

    /// Runs the admitted experiment to its end with the live display, prints the leaderboard,
    /// and serves the best trial when asked.
    async fn drive(self, name: &str, top: usize, serve: bool) -> anyhow::Result<ExitCode> {
        let Self { store, data_dir, controller, dashboard, _published } = self;
        let (shutdown_tx, shutdown_rx) = watch::channel(crate::controller::Halt::Run);
        let shutdown_tx = Arc::new(shutdown_tx);
        let stops = tokio::spawn(follow_desired(store.clone(), name.to_string(), Arc::clone(&shutdown_tx)));
        let done = store.trials(name)?.iter().filter(|t| t.phase.is_finished()).count() as u32;
        let spec = &store.experiment(name)?.with_context(|| format!("experiment {name} vanished"))?.experiment.spec;
        let mut display = Display::new(crate::search::trial_total(spec), done, &spec.objective.metric);
        let announcer = display.announcer();
        let interrupts = tokio::spawn(handle_interrupts(store.clone(), name.to_string(), shutdown_tx, announcer));
        let record = controller.run(name, shutdown_rx, &mut |p| display.show(p)).await;
        interrupts.abort();
        stops.abort();
        display.finish();
        let record = record?;
        print_summary(&store, name, top)?;
        let phase = record.experiment.status.map(|s| s.phase).unwrap_or_default();
        if serve && phase == ExperimentPhase::Succeeded {
            serve_best(&store, &data_dir, name).await?;
        } else if dashboard.is_some() && phase != ExperimentPhase::Stopped {
            keep_dashboard().await;
        }
        Ok(match phase {
            ExperimentPhase::Succeeded => ExitCode::SUCCESS,
            ExperimentPhase::Stopped => ExitCode::from(130),
            _ => ExitCode::FAILURE,
        })
    }
}

/// Promotes the best trial, serves it, and keeps serving until Ctrl-C.
async fn serve_best(store: &Store, data_dir: &Path, name: &str) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let promoter = tokio::spawn(Arc::new(Promoter::new(store.clone(), data_dir)).run(stop_rx));
    let record = store.experiment(name)?.with_context(|| format!("experiment {name} is not in the store"))?;
    let id = record.promotion_outcome.as_ref().map_or(0, |o| o.id) + 1;
    let request = PromotionRequest { id, trial: None, rollback_to: None, by: "cli".into() };
    store.update_experiment(name, Durability::Flushed, |r| r.promotion_request = Some(request.clone()))?;
    let outcome = loop {
        let record = store.experiment(name)?.with_context(|| format!("experiment {name} vanished"))?;
        if let Some(outcome) = record.promotion_outcome.filter(|o| o.id == id) {
            break outcome;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    eprintln!("{}", outcome.message);
    if outcome.ok {
        eprintln!("serving until Ctrl-C");
        super::wait_for_interrupt().await;
    }
    let _ = stop_tx.send(true);
    promoter.await.context("the promoter failed")?;
    if !outcome.ok {
        bail!("promotion refused: {}", outcome.message);
    }
    Ok(())
}

/// The run's loopback API, for as long as the process lives: its trials push to it (with their own
/// tokens), and a second terminal's commands reach it through the published endpoint (with a
/// token made for this run). Promotions are refused there: this process runs no promoter.
async fn control_endpoint(
    store: &Store,
    data_dir: &Path,
    gpus: usize,
    name: &str,
) -> anyhow::Result<(TrialApi, endpoint::Published)> {
    let secret = TrialSecret::load_or_create(&data_dir.join("secret")).context("failed to load the trial secret")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("failed to open a loopback port")?;
    let address = listener.local_addr().context("failed to read the loopback port")?;
    let token: String = rand::random::<[u8; 24]>().iter().map(|b| format!("{b:02x}")).collect();
    let mut state = ApiState::new(store.clone(), Some(token.clone()), secret.clone(), gpus);
    state.no_promoter = Some(NO_PROMOTER.into());
    let state = Arc::new(state);
    state.ready.store(true, std::sync::atomic::Ordering::Release);
    tokio::spawn(api::serve(listener, state, api::Bounds::default(), None, std::future::pending()));
    let base_url = format!("http://{address}");
    let published = endpoint::publish(
        data_dir,
        &endpoint::Endpoint { url: base_url.clone(), token, pid: std::process::id(), experiment: name.into() },
    )?;
    Ok((TrialApi { base_url, secret }, published))
}

/// Why a running `tuna run` refuses promotions.
const NO_PROMOTER: &str = "this is `tuna run`'s API, and it runs no promoter: promote with `tuna run --serve`, \
                           or with `tuna promote` (or `tuna serve --data-dir`) over this data dir once the run is over";

/// Halts the run when a user asks for it through the API (`tuna stop` from another terminal, the
/// dashboard's stop button): the record's `desired` turns to stop (or delete).
async fn follow_desired(store: Store, name: String, halt: Arc<watch::Sender<Halt>>) {
    let changes = store.watch_experiments();
    loop {
        if let Ok(Some(record)) = store.experiment(&name)
            && matches!(record.desired, Desired::Stop | Desired::Delete)
        {
            halt.send_if_modified(|h| std::mem::replace(h, Halt::Stop) != Halt::Stop);
            return;
        }
        changes.next().await;
    }
}

/// For `--ui`: the API and dashboard over this run's store on a loopback port, for as long as
/// the process lives; says where, and returns the URL of the experiment's page.
async fn dashboard(store: &Store, data_dir: &Path, port: u16, name: &str) -> anyhow::Result<String> {
    let secret = TrialSecret::load_or_create(&data_dir.join("secret")).context("failed to load the trial secret")?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("failed to open the dashboard's port {port} on 127.0.0.1"))?;
    let address = listener.local_addr().context("failed to read the dashboard's port")?;
    let mut state = ApiState::new(store.clone(), None, secret, 0);
    state.no_promoter = Some(NO_PROMOTER.into());
    let state = Arc::new(state);
    state.ready.store(true, std::sync::atomic::Ordering::Release);
    tokio::spawn(api::serve(listener, state, api::Bounds::default(), None, std::future::pending()));
    let url = format!("http://{address}/experiments/{name}");
    eprintln!("dashboard: {url}");
    Ok(url)
}

/// After a run with `--ui`: the dashboard stays up until Ctrl-C (or SIGTERM).
async fn keep_dashboard() {
    eprintln!("the run is over; the dashboard stays up until Ctrl-C");
    super::wait_for_interrupt().await;
}

fn print_summary(store: &Store, name: &str, top: usize) -> anyhow::Result<()> {
    let record = store.experiment(name)?.with_context(|| format!("experiment {name} is not in the store"))?;
    let trials = store.trials(name)?;
    let board = leaderboard::rank(&record.experiment, &trials, Some(top), Timestamp::now());
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n{}", board.table(&record.experiment))?;
    if let Some(status) = &record.experiment.status {
        writeln!(
            out,
            "experiment {name}: {:?} ({}){}",
            status.phase,
            status.reason.as_ref().map_or("-", |r| r.as_str()),
            status.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        )?;
    }
    if let Some(line) = spent(&record.experiment.spec, &trials) {
        writeln!(out, "{line}")?;
    }
    if let Some(best) = board.trials.first().filter(|r| r.rank == Some(1)) {
        let metric = &board.objective.metric;
        writeln!(
            out,
            "best trial: {} ({metric} = {})",
            best.name,
            leaderboard::number(best.objective.unwrap_or_default())
        )?;
        if let Some(note) = trials.iter().find(|t| t.name == best.name).and_then(|t| leaderboard::step_note(t, metric))
        {
            writeln!(out, "  {note}")?;
        }
        if let Some(dir) = &best.output_dir {
            writeln!(out, "best output: {dir}")?;
        }
    }
    Ok(())
}

/// `trial-seconds: 41.2 (GPU-seconds: 0); early stopping saved about 63.5 (6 trials stopped early)`:
/// the time trials ran, and with early stopping the estimate of what running each stopped trial to
/// its end would have added: the steps it did not run, up to `maxResource` (ASHA) or else the
/// highest step a completed trial reached, at the completed trials' mean pace (seconds per step;
/// the stopped trial's own when none completed).
fn spent(spec: &crate::spec::ExperimentSpec, trials: &[Trial]) -> Option<String> {
    let now = Timestamp::now();
    let seconds = |t: &Trial| t.duration_seconds(now).unwrap_or_default();
    let total: f64 = trials.iter().map(seconds).sum();
    if total <= 0.0 {
        return None;
    }
    let gpu: f64 = trials.iter().map(|t| seconds(t) * t.gpus.len() as f64).sum();
    let mut line = format!("trial-seconds: {} (GPU-seconds: {})", leaderboard::number(total), leaderboard::number(gpu));
    let stopped: Vec<&Trial> = trials.iter().filter(|t| t.phase == TrialPhase::EarlyStopped).collect();
    if spec.stopping().is_some() && !stopped.is_empty() {
        let full = match spec.stopping() {
            Some(crate::spec::StoppingSettings::Asha { max_resource: Some(max), .. }) => Some(max),
            _ => trials.iter().filter(|t| t.phase == TrialPhase::Succeeded).filter_map(|t| t.last_step).max(),
        };
        let pace = |t: &Trial| t.last_step.filter(|s| *s > 0).map(|s| seconds(t) / s as f64);
        let paces: Vec<f64> = trials.iter().filter(|t| t.phase == TrialPhase::Succeeded).filter_map(pace).collect();
        let completed_pace = (!paces.is_empty()).then(|| paces.iter().sum::<f64>() / paces.len() as f64);
        let saved: f64 = stopped
            .iter()
            .filter_map(|t| {
                let (last, full) = (t.last_step?, full?);
                (full > last).then_some(completed_pace.or_else(|| pace(t))? * (full - last) as f64)
            })
            .sum();
        line.push_str(&format!(
            "; early stopping saved about {} ({} trials stopped early)",
            leaderboard::number(saved),
            stopped.len()
        ));
    }
    Some(line)
}

/// The first Ctrl-C (or SIGTERM) stops the running trials gracefully (they resume on the next
/// run); a second kills their process groups at once and exits.
async fn handle_interrupts(store: Store, name: String, halt: Arc<watch::Sender<Halt>>, say: Announcer) {
    super::wait_for_interrupt().await;
    say.line("interrupted: stopping running trials (they resume on the next run; Ctrl-C again to kill them now)");
    let _ = halt.send(Halt::Stop);
    super::wait_for_interrupt().await;
    let running = store.trials(&name).unwrap_or_default();
    let pids: Vec<u32> = running.iter().filter(|t| t.phase == TrialPhase::Running).filter_map(|t| t.pid).collect();
    for pid in &pids {
        if let Ok(group) = i32::try_from(*pid) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), nix::sys::signal::Signal::SIGKILL);
        }
    }
    say.line(&format!("killed {} running trial(s); they are re-queued on the next run", pids.len()));
    std::process::exit(130);
}

/// How a trial ended, for its progress line: its objective (and the step it came at, when not the
/// last), or its cause (`Failed (NonZeroExit: exit code 2: train.py: error: …)`).
pub(super) fn ended(trial: &Trial) -> String {
    if let (TrialPhase::EarlyStopped, Some(decision)) = (trial.phase, &trial.early_stop) {
        let value = trial.objective.map(|v| format!(" objective={}", leaderboard::number(v))).unwrap_or_default();
        return format!("EarlyStopped at step {} ({}){value}", decision.step, decision.reason);
    }
    match (trial.objective, leaderboard::cause(trial)) {
        (Some(v), None) => {
            let at = match (trial.ranked_before_end(), trial.objective_step, trial.last_step) {
                (true, Some(step), Some(last)) => format!(" @ step {step} of {last}"),
                _ => String::new(),
            };
            format!("{:?} objective={}{at}", trial.phase, leaderboard::number(v))
        }
        (_, Some(cause)) => format!("{:?} ({cause})", trial.phase),
        (None, None) => format!("{:?}", trial.phase),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Assignment;
    use crate::trial::TrialPhase;

    fn trial(phase: TrialPhase) -> Trial {
        let mut t = Trial::new("e", 0, Assignment::new(), Timestamp::UNIX_EPOCH);
        t.phase = phase;
        t
    }

    #[test]
    fn a_failed_trial_s_progress_line_carries_its_cause() {
        let mut t = trial(TrialPhase::Failed);
        t.reason = Some("NonZeroExit".into());
        t.message = Some("exit code 3; stderr ends with:\nboom".into());
        assert_eq!(ended(&t), "Failed (NonZeroExit: exit code 3: boom)");
    }

    #[test]
    fn an_early_stopped_trial_s_progress_line_says_where_and_why() {
        let mut t = trial(TrialPhase::EarlyStopped);
        t.objective = Some(0.91);
        t.early_stop = Some(crate::trial::EarlyStop { step: 9, reason: "asha: rung 9, not in top 1/3 of 7".into() });
        assert_eq!(ended(&t), "EarlyStopped at step 9 (asha: rung 9, not in top 1/3 of 7) objective=0.91");
    }

    #[test]
    fn a_succeeded_trial_s_progress_line_shows_its_value_and_an_earlier_step() {
        let mut t = trial(TrialPhase::Succeeded);
        (t.objective, t.objective_step, t.last_step) = (Some(0.0114159265), Some(1), Some(21));
        assert_eq!(ended(&t), "Succeeded objective=0.0114159 @ step 1 of 21");
        t.objective_step = Some(21);
        assert_eq!(ended(&t), "Succeeded objective=0.0114159");
    }
}
