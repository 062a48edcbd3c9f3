//! Following one trial's Job: each of its pods in turn (a disrupted pod is replaced by a new one,
//! whose output is a new attempt's), the trial container's log by name, and how the Job ended.
//!
//! ```text
//! step: its Job and pods in the watches' caches ─▶ pick the pod that is the trial now
//!        new pod after a finished one ─▶ Restarted (the earlier pod's lines all sent first)
//!        no pod ─▶ Waiting (Suspended by a queue; FailedCreate: the Job's Event, e.g. Pod Security)
//!        pending ─▶ Waiting (Unschedulable, ErrImagePull, ImagePullBackOff, CreateContainerConfigError…)
//!        started ─▶ Started once, follow its log
//!        Job Complete | Failed ─▶ Exit (by the trial container's code, not a sidecar's)
//! ```

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod, PodStatus};
use kube::Api;
use kube::api::{ListParams, LogParams};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::watches::Namespace;
use crate::executor::{Exit, Stream, TrialEvent};

/// How many log lines a failure message quotes.
const TAIL_LINES: usize = 8;
/// How long an ended pod's log may take to drain once its container ended.
const DRAIN: Duration = Duration::from_secs(2);
/// How long a Job's end may wait for the pod watch to show the pod that ended it (the Job and pod
/// watches are separate streams: the Job's condition can arrive first).
const POD_LAG: Duration = Duration::from_secs(5);
/// Exit codes above this are a signal's (128 + its number), as container runtimes report them.
const SIGNAL_BASE: i32 = 128;

/// What has been seen of one trial's Job so far.
pub struct JobWatch {
    /// The trial's own container (others may be sidecars).
    container: String,
    /// Where the controller keeps what the trial container wrote (`tuna logs` reads it, also
    /// once the pod is gone).
    kept: PathBuf,
    waiting: Option<String>,
    /// The pod that is the trial now (its uid) and its log follower, once it started.
    current: Option<(String, Option<JoinHandle<VecDeque<String>>>)>,
    /// Pods followed before: their output belongs to earlier attempts.
    done: HashSet<String>,
    /// When the trial's container started (in this controller's life), once it was reported
    /// started: `trial.timeout` counts from here, not from the Job's creation (a queued or
    /// pulling trial is not running).
    running_since: Option<tokio::time::Instant>,
    /// Whether the Job was seen in the watch's cache (a Job just created may not be there yet).
    seen: bool,
    /// The Job's resourceVersion when its FailedCreate Events were last listed (they are listed
    /// again only when the Job changed).
    podless_at: Option<String>,
    /// When the Job was first seen ended while its ended pod was not in the cache yet.
    ended_early: Option<tokio::time::Instant>,
    /// Whether this follows a Job an earlier controller followed (a re-attach): the lines it kept
    /// were reported already.
    resumed: bool,
}

impl JobWatch {
    pub fn new(container: String, kept: PathBuf, resumed: bool) -> Self {
        let done = HashSet::new();
        Self {
            container,
            kept,
            waiting: None,
            current: None,
            done,
            running_since: None,
            seen: false,
            podless_at: None,
            ended_early: None,
            resumed,
        }
    }

    /// When the trial's container was first seen running, if it was.
    pub fn running_since(&self) -> Option<tokio::time::Instant> {
        self.running_since
    }

    /// What the trial waits for, as last reported (`reason: message`).
    pub fn waiting(&self) -> Option<&str> {
        self.waiting.as_deref()
    }

    /// One look at the Job and its pods as the watches last saw them: reports progress, returns
    /// the exit once the Job ended.
    pub async fn step(
        &mut self,
        cluster: &Namespace,
        (pods, cluster_events): (&Api<Pod>, &Api<Event>),
        (name, uid): (&str, &str),
        events: &mpsc::UnboundedSender<TrialEvent>,
    ) -> Result<Option<Exit>, kube::Error> {
        // A Job of this name with another UID is one that was replaced (still in the cache).
        let job = match cluster.job(name).filter(|j| j.metadata.uid.as_deref() == Some(uid)) {
            Some(job) => job,
            None if self.seen => {
                return Ok(Some(Exit::StartFailed(format!("Job {name} disappeared (deleted outside tuna?)"))));
            }
            None => return Ok(None), // created, not in the cache yet
        };
        self.seen = true;
        let list = cluster.pods_of(uid);
        let pod = self.pick(&list);
        match pod {
            Some(pod) => self.observe_pod(pods, pod, events).await,
            None if self.running_since.is_none() && self.podless_at != job.metadata.resource_version => {
                self.podless_at = job.metadata.resource_version.clone();
                if let Some((reason, message)) = podless(&job, cluster_events, name).await? {
                    self.report(reason, message, events);
                }
            }
            None => {}
        }
        let exit = job_exit(&job, pod.map(|p| &**p), &self.container);
        if exit.is_some() && !pod.is_some_and(|p| is_terminal(p)) {
            // The Job says it ended before the pod watch showed its pod end: wait for that pod
            // (its log and exit code are the trial's), a little.
            let since = *self.ended_early.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() < POD_LAG {
                return Ok(None);
            }
        }
        Ok(exit)
    }

    /// Stops following (the controller goes away; the pod runs on).
    pub fn detach(&mut self) {
        if let Some((_, Some(task))) = self.current.take() {
            task.abort();
        }
    }

    /// The last lines of the pod followed last.
    pub async fn tail(&mut self) -> VecDeque<String> {
        match self.current.take().and_then(|(_, logs)| logs) {
            Some(task) => tokio::time::timeout(DRAIN, task).await.ok().and_then(Result::ok).unwrap_or_default(),
            None => VecDeque::new(),
        }
    }

    /// The pod that is the trial now: the one followed while it runs; after it ended, a newer one
    /// (the Job's replacement); at first, a running one before an ended one, newest first.
    fn pick<'a>(&self, pods: &'a [Arc<Pod>]) -> Option<&'a Arc<Pod>> {
        let current = self.current.as_ref().and_then(|(uid, _)| pods.iter().find(|p| uid_of(p) == *uid));
        if let Some(pod) = current.filter(|p| !is_terminal(p)) {
            return Some(pod);
        }
        let fresh = pods.iter().filter(|p| !self.done.contains(&uid_of(p)) && Some(*p) != current);
        fresh.max_by_key(|p| (!is_terminal(p), p.metadata.creation_timestamp.clone())).or(current)
    }

    async fn observe_pod(&mut self, pods: &Api<Pod>, pod: &Pod, events: &mpsc::UnboundedSender<TrialEvent>) {
        let uid = uid_of(pod);
        if self.current.as_ref().is_none_or(|(u, _)| *u != uid) {
            if let Some((old, logs)) = self.current.take() {
                if let Some(task) = logs {
                    let _ = tokio::time::timeout(DRAIN, task).await; // its lines are all sent before the restart
                }
                info!(pod = %pod.metadata.name.as_deref().unwrap_or(""), "the Job replaced the trial's pod; a new attempt's output starts");
                let _ = events.send(TrialEvent::Restarted);
                self.done.insert(old);
            }
            self.current = Some((uid, None));
        }
        let status = pod.status.clone().unwrap_or_default();
        if status.phase.as_deref().unwrap_or("Pending") == "Pending" {
            if let Some((reason, message)) = pending(&status, &self.container) {
                self.report(reason, message, events);
            }
            return;
        }
        if self.running_since.is_none() {
            self.running_since = Some(tokio::time::Instant::now());
            let _ = events.send(TrialEvent::Started { pid: 0, pid_stamp: None, gpus: Vec::new() });
        }
        if let Some((_, logs @ None)) = self.current.as_mut() {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            // The first pod followed starts the kept log over; a replacement pod's output is added
            // after its predecessor's. After a re-attach, the pod's log is read from its start
            // again, and the lines an earlier controller kept (and reported) are skipped.
            let first = self.done.is_empty();
            let keep = Keep { path: self.kept.clone(), fresh: first && !self.resumed, resumed: first && self.resumed };
            let follow = follow_log(pods.clone(), pod_name, self.container.clone(), keep, events.clone());
            *logs = Some(tokio::spawn(follow));
        }
    }

    /// Reports why the trial waits, once per change.
    fn report(&mut self, reason: String, message: String, events: &mpsc::UnboundedSender<TrialEvent>) {
        let note = format!("{reason}: {message}");
        if self.waiting.as_deref() != Some(note.as_str()) {
            let _ = events.send(TrialEvent::Waiting { reason, message });
            self.waiting = Some(note);
        }
    }
}

/// Waiting reasons that are a normal step of starting, not something to show.
const STARTING: &[&str] = &["ContainerCreating", "PodInitializing"];

/// Why a pending pod waits: unschedulable, or its trial container cannot start (image pull,
/// configuration), if either.
fn pending(status: &PodStatus, container: &str) -> Option<(String, String)> {
    let unscheduled = status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False");
    if let Some(c) = unscheduled {
        return Some((
            c.reason.clone().unwrap_or_else(|| "Unschedulable".into()),
            c.message.clone().unwrap_or_default(),
        ));
    }
    let statuses = status.container_statuses.iter().flatten();
    let waiting = statuses.filter(|c| c.name == container).find_map(|c| c.state.as_ref()?.waiting.clone())?;
    let reason = waiting.reason.filter(|r| !STARTING.contains(&r.as_str()))?;
    Some((reason, waiting.message.unwrap_or_default()))
}

/// Why a Job has no pod: suspended (a queue such as Kueue holds it), or its pod could not be
/// created (the Job controller's FailedCreate Event: Pod Security, a ResourceQuota…).
async fn podless(job: &Job, events: &Api<Event>, name: &str) -> Result<Option<(String, String)>, kube::Error> {
    if job.spec.as_ref().and_then(|s| s.suspend) == Some(true) {
        let message = "the Job is suspended (held by a queue such as Kueue until it is admitted)";
        return Ok(Some(("Suspended".into(), message.into())));
    }
    let fields = format!("involvedObject.kind=Job,involvedObject.name={name},reason=FailedCreate");
    let list = events.list(&ListParams::default().fields(&fields)).await?;
    let last = list.items.into_iter().max_by_key(|e| e.last_timestamp.clone().or(e.first_timestamp.clone()));
    Ok(last.map(|e| ("FailedCreate".into(), e.message.unwrap_or_default())))
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// How the Job ended, if it has: by its conditions, and for a failure by the trial container's
/// exit code in `pod` (a code above 128 is the signal that killed it).
fn job_exit(job: &Job, pod: Option<&Pod>, container: &str) -> Option<Exit> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let ended = conditions.iter().find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    if ended.type_ == "Complete" {
        return Some(Exit::Code(0));
    }
    if ended.reason.as_deref() == Some("DeadlineExceeded") {
        return Some(Exit::TimedOut);
    }
    let code = pod
        .and_then(|p| {
            let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
            let terminated = statuses.iter().find(|c| c.name == container)?.state.as_ref()?.terminated.as_ref()?;
            Some(terminated.exit_code)
        })
        .unwrap_or(1);
    Some(match code {
        0 => Exit::Code(1),
        c if c > SIGNAL_BASE && c <= SIGNAL_BASE + 64 => Exit::Signal(c - SIGNAL_BASE),
        c => Exit::Code(c),
    })
}

/// Where a followed log is kept, whether it starts the file over, and whether it continues one an
/// earlier controller kept of the same pod.
struct Keep {
    path: PathBuf,
    fresh: bool,
    resumed: bool,
}

impl Keep {
    /// How many lines of the pod's log were kept (and reported) already: those of a resumed log.
    async fn already(&self) -> usize {
        if !self.resumed {
            return 0;
        }
        let Ok(file) = tokio::fs::File::open(&self.path).await else { return 0 };
        let mut lines = tokio::io::BufReader::new(file).lines();
        let mut n = 0;
        while let Ok(Some(_)) = lines.next_line().await {
            n += 1;
        }
        n
    }

    async fn open(&self) -> Option<tokio::fs::File> {
        if let Some(dir) = self.path.parent() {
            let _ = tokio::fs::create_dir_all(dir).await;
        }
        let mut options = tokio::fs::OpenOptions::new();
        options.create(true);
        if self.fresh {
            options.write(true).truncate(true)
        } else {
            options.append(true)
        };
        match options.open(&self.path).await {
            Ok(file) => Some(file),
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "failed to keep the trial's log; tuna logs will not show it");
                None
            }
        }
    }
}

/// Streams the trial container's log as output lines until it ends, keeping a copy; returns the
/// last lines.
async fn follow_log(
    pods: Api<Pod>,
    pod: String,
    container: String,
    keep: Keep,
    events: mpsc::UnboundedSender<TrialEvent>,
) -> VecDeque<String> {
    let mut skip = keep.already().await;
    let mut kept = keep.open().await;
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    let params = LogParams { follow: true, container: Some(container.clone()), ..Default::default() };
    let stream = match pods.log_stream(&pod, &params).await {
        Ok(stream) => stream,
        Err(e) => {
            warn!(%pod, %container, error = %e, "failed to read the trial container's log; its metric lines are lost");
            return tail;
        }
    };
    let mut lines = stream.lines();
    while let Ok(Some(line)) = lines.try_next().await {
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        if skip > 0 {
            skip -= 1; // kept and reported before the re-attach
            continue;
        }
        if let Some(file) = kept.as_mut()
            && file.write_all(format!("{line}\n").as_bytes()).await.is_err()
        {
            kept = None;
        }
        let _ = events.send(TrialEvent::Line { stream: Stream::Stdout, text: line });
    }
    tail
}
