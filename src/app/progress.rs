//! What `tuna run` shows while it runs. On a terminal: a live display (indicatif) redrawn in place,
//! with trial starts, ends and failures printed above it and log lines routed around it:
//!
//! ```text
//! quickstart-0003 Succeeded objective=0.973684 @ step 12 of 30
//! quickstart-0005 started lr=0.0123 epochs=14 penalty=l2 batch=32 momentum=0.3
//! ━━━━━━━━━━━━━━━━━━━━━━━━───────────  6/24 trials · 00:00:41 · ETA 00:02:03 · best 0.973684 (quickstart-0003)
//!   quickstart-0004  step 7  accuracy=0.95614 loss=0.180214
//!   quickstart-0005  starting
//! ```
//! Elsewhere (a CI log, a pipe): the same starts and ends as plain lines with the count, and a
//! running trial's latest step at most every ten seconds; no escapes.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::controller::{Progress, Snapshot};
use crate::leaderboard;
use crate::trial::{Observation, Trial};

/// How often the live display redraws when nothing happens (the clock and the spinner move).
const TICK: Duration = Duration::from_millis(250);
/// How often a plain log repeats a running trial's latest step.
const PLAIN_HEARTBEAT: Duration = Duration::from_secs(10);

pub struct Display {
    live: Option<Live>,
    total: u32,
    metric: String,
    /// Each running trial's latest step and metric values (by trial name).
    latest: BTreeMap<String, Latest>,
}

struct Live {
    multi: MultiProgress,
    bar: ProgressBar,
    rows: BTreeMap<String, ProgressBar>,
}

#[derive(Default)]
struct Latest {
    step: Option<i64>,
    values: BTreeMap<String, f64>,
    printed: Option<Instant>,
}

impl Display {
    /// A display for an experiment of `total` trials (`trial_total`), `done` of them ended before.
    pub fn new(total: u32, done: u32, metric: &str) -> Self {
        let live = std::io::stderr().is_terminal().then(|| Live::new(total, done));
        if let Some(live) = &live {
            let multi = live.multi.clone();
            crate::telemetry::route_logs_through(Some(Arc::new(move |write: &mut dyn FnMut()| multi.suspend(write))));
        }
        Self { live, total, metric: metric.to_string(), latest: BTreeMap::new() }
    }

    /// Takes in one piece of the controller's progress.
    pub fn show(&mut self, progress: Progress<'_>) {
        match progress {
            Progress::Launched { trial, snapshot } => {
                let params: Vec<String> =
                    trial.parameters.iter().map(|(k, v)| format!("{k}={}", leaderboard::param(v))).collect();
                self.print(&format!("{} started {}", trial.name, params.join(" ")), &snapshot);
                self.latest.insert(trial.name.clone(), Latest::default());
                if let Some(live) = &mut self.live {
                    live.add_row(&trial.name);
                }
                self.status(&snapshot);
            }
            Progress::Observed { trial, observations } => self.observed(trial, observations),
            Progress::Ended { trial, snapshot } => {
                self.latest.remove(&trial.name);
                if let Some(row) = self.live.as_mut().and_then(|l| l.rows.remove(&trial.name)) {
                    row.finish_and_clear();
                    if let Some(live) = &self.live {
                        live.multi.remove(&row);
                    }
                }
                self.print(&format!("{} {}", trial.name, super::local::ended(trial)), &snapshot);
                self.status(&snapshot);
            }
        }
    }

    /// Clears the live display (the summary follows) and gives log lines back to stderr.
    pub fn finish(self) {
        crate::telemetry::route_logs_through(None);
        if let Some(live) = self.live {
            for row in live.rows.values() {
                row.finish_and_clear();
            }
            live.bar.finish_and_clear();
            let _ = live.multi.clear();
        }
    }

    /// Prints a line above the live display, or as a plain line elsewhere.
    pub fn line(&self, text: &str) {
        self.announcer().line(text);
    }

    /// Something that prints above the display from another task.
    pub fn announcer(&self) -> Announcer {
        Announcer(self.live.as_ref().map(|l| l.multi.clone()))
    }

    fn print(&self, text: &str, snapshot: &Snapshot) {
        if self.live.is_some() {
            self.line(text);
        } else {
            let best = best(snapshot).map(|b| format!(" | {b}")).unwrap_or_default();
            let (done, total, running, secs) =
                (snapshot.ended, self.total, snapshot.running, snapshot.elapsed.as_secs());
            eprintln!("[{done:>3}/{total}] {text} | {running} running{best} | {secs}s");
        }
    }

    fn status(&self, snapshot: &Snapshot) {
        if let Some(live) = &self.live {
            live.bar.set_position(u64::from(snapshot.ended));
            let best = best(snapshot).unwrap_or_else(|| "best -".into());
            live.bar.set_message(format!("{best} · {} running", snapshot.running));
        }
    }

    fn observed(&mut self, trial: &Trial, observations: &[Observation]) {
        let latest = self.latest.entry(trial.name.clone()).or_default();
        for o in observations {
            latest.step = o.step.or(latest.step);
            latest.values.insert(o.metric.clone(), o.value);
        }
        let text = describe(&trial.name, latest, &self.metric);
        match &self.live {
            Some(live) => {
                if let Some(row) = live.rows.get(&trial.name) {
                    row.set_message(text);
                }
            }
            None if latest.printed.is_none_or(|t| t.elapsed() >= PLAIN_HEARTBEAT) => {
                latest.printed = Some(Instant::now());
                eprintln!("        {text}");
            }
            None => {}
        }
    }
}

/// Prints lines above a live display (or plainly), from any task.
#[derive(Clone)]
pub struct Announcer(Option<MultiProgress>);

impl Announcer {
    pub fn line(&self, text: &str) {
        match &self.0 {
            Some(multi) if !multi.is_hidden() => {
                let _ = multi.println(text);
            }
            _ => eprintln!("{text}"),
        }
    }
}

impl Live {
    fn new(total: u32, done: u32) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{bar:20} {pos:>3}/{len} trials · {elapsed_precise} · ETA {eta_precise} · {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("━━─");
        let bar = multi.add(ProgressBar::new(u64::from(total)).with_style(style).with_position(u64::from(done)));
        bar.set_message("best -");
        bar.enable_steady_tick(TICK);
        Self { multi, bar, rows: BTreeMap::new() }
    }

    fn add_row(&mut self, name: &str) {
        let style =
            ProgressStyle::with_template("  {spinner} {wide_msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
        let row = self.multi.add(ProgressBar::new_spinner().with_style(style));
        row.set_message(format!("{name}  starting"));
        row.enable_steady_tick(TICK);
        self.rows.insert(name.to_string(), row);
    }
}

/// One running trial's line: its latest step and values, the objective's first.
fn describe(name: &str, latest: &Latest, metric: &str) -> String {
    let step = latest.step.map(|s| format!("  step {s}")).unwrap_or_default();
    let objective = latest.values.get(metric).map(|v| (metric, v));
    let others = latest.values.iter().filter(|(k, _)| *k != metric).map(|(k, v)| (k.as_str(), v));
    let values: Vec<String> =
        objective.into_iter().chain(others).map(|(k, v)| format!("{k}={}", leaderboard::number(*v))).collect();
    format!("{name}{step}  {}", values.join(" "))
}

fn best(snapshot: &Snapshot) -> Option<String> {
    snapshot.best.as_ref().map(|(name, v)| format!("best {} ({name})", leaderboard::number(*v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::ParamValue;

    #[test]
    fn a_running_trial_s_line_shows_its_step_and_the_objective_first() {
        let mut latest = Latest { step: Some(7), ..Default::default() };
        latest.values.insert("loss".into(), 0.180214321);
        latest.values.insert("accuracy".into(), 0.956140351);
        assert_eq!(describe("q-0004", &latest, "accuracy"), "q-0004  step 7  accuracy=0.95614 loss=0.180214");
        assert_eq!(leaderboard::param(&ParamValue::Float(0.2657094293441059)), "0.265709");
    }
}
