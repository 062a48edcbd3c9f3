//! The client commands: each talks to a running `tuna serve` through `client::Client`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;

use crate::api::types::{DeleteAnswer, Experiment, ExperimentList, ExperimentPhase, Leaderboard, PromotionHistory};
use crate::cli::Command;
use crate::client::Client;
use crate::config::Config;

/// How often `leaderboard --watch` redraws.
const WATCH_EVERY: Duration = Duration::from_secs(2);

pub async fn execute(config: &Config, command: Command) -> anyhow::Result<ExitCode> {
    let client = match &config.ca_cert {
        Some(file) => {
            let pem = std::fs::read(file).with_context(|| format!("failed to read --ca-cert {}", file.display()))?;
            Client::with_ca_cert(config.server(), config.token.clone(), &pem)
                .with_context(|| format!("--ca-cert {}", file.display()))?
        }
        None => Client::new(config.server(), config.token.clone()),
    };
    answer(&client, command).await
}

/// Runs a client command against `client`'s server (a remote `tuna serve`, or the in-process
/// API over a data dir).
pub async fn answer(client: &Client, command: Command) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Submit { file, .. } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("failed to read {}", file.display()))?;
            // The document's report, as `tuna validate` gives it, before anything is sent; the
            // server checks the trial's folder and program where the trials run.
            super::load_document(&file)?;
            let experiment = client.submit(text).await?;
            writeln!(out, "experiment {} created", experiment.metadata.name.unwrap_or_default())?;
        }
        Command::List { .. } => write!(out, "{}", list_table(&client.list().await?))?,
        Command::Get { name, json, .. } => {
            let experiment = client.get(&name).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&experiment)?)?;
            } else {
                write!(out, "{}", describe(&experiment))?;
            }
        }
        Command::Leaderboard { name, top, format, watch, .. } => loop {
            let (experiment, board) = consistent_board(client, &name, top).await?;
            let text = super::render(&board, &experiment, format)?;
            let finished = experiment
                .status
                .as_ref()
                .is_none_or(|s| s.phase != ExperimentPhase::Running && s.phase != ExperimentPhase::Pending);
            if !watch {
                write!(out, "{text}")?;
                break;
            }
            // Each frame replaces the one before, the last one too.
            write!(out, "\x1b[2J\x1b[H{}{text}", describe(&experiment))?;
            out.flush()?;
            if finished {
                break;
            }
            tokio::time::sleep(WATCH_EVERY).await;
        },
        Command::Trials { name, format, .. } => {
            write!(out, "{}", super::trials_view::render(&client.trials(&name).await?.trials, format)?)?;
        }
        Command::Logs { name, trial, follow, .. } => {
            let mut body = client.logs(&name, &trial, follow).await?.bytes_stream();
            while let Some(chunk) = body.next().await {
                out.write_all(&chunk.context("the log stream broke off")?)?;
                out.flush()?;
            }
        }
        Command::Stop { name, .. } => writeln!(out, "experiment {} stopping", name_of(&client.stop(&name).await?))?,
        Command::Resume { name, max_trials, .. } => {
            let experiment = client.resume(&name, max_trials).await?;
            writeln!(out, "experiment {} resumed (maxTrials {})", name_of(&experiment), experiment.spec.max_trials)?;
        }
        Command::Delete { name, .. } => match client.delete(&name).await? {
            DeleteAnswer::Deleted(_) => writeln!(out, "experiment {name} deleted")?,
            DeleteAnswer::Deleting(_) => writeln!(out, "experiment {name} is being deleted (its trials are stopping)")?,
        },
        Command::Promote { name, trial, .. } => {
            writeln!(out, "{}", client.promote(&name, trial.as_deref()).await?.message)?;
        }
        Command::Rollback { name, to, .. } => {
            writeln!(out, "{}", client.rollback(&name, to.as_deref()).await?.message)?;
        }
        Command::Promotions { name, .. } => write!(out, "{}", promotions_table(&client.promotions(&name).await?))?,
        Command::Plot { name, kind, output, .. } => {
            let png = match output.extension().and_then(|e| e.to_str()) {
                Some("svg") => false,
                Some("png") => true,
                _ => {
                    anyhow::bail!("tuna plot writes SVG or PNG: name the file *.svg or *.png, not {}", output.display())
                }
            };
            let drawn = super::plot::draw(client, &name, kind).await?;
            let bytes = if png { super::plot::png(&drawn.svg)? } else { drawn.svg.into_bytes() };
            std::fs::write(&output, bytes).with_context(|| format!("failed to write {}", output.display()))?;
            writeln!(out, "{}: {}", output.display(), drawn.summary)?;
        }
        Command::Run { .. }
        | Command::Validate { .. }
        | Command::Serve(_)
        | Command::Crd
        | Command::Render { .. }
        | Command::Completions { .. } => {
            unreachable!("handled locally")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The experiment and its leaderboard as of one moment: the board is read between two reads of the
/// experiment and read again until the experiment did not move in between, so that the header's
/// counts and the table agree (a finished experiment no longer moves).
async fn consistent_board(
    client: &Client,
    name: &str,
    top: Option<usize>,
) -> anyhow::Result<(Experiment, Leaderboard)> {
    /// An experiment moving faster than this many reads is shown as the last read saw it.
    const TRIES: usize = 5;
    let mut before = client.get(name).await?;
    for _ in 0..TRIES {
        let board = client.leaderboard(name, top).await?;
        let after = client.get(name).await?;
        if after.status == before.status {
            return Ok((after, board));
        }
        before = after;
    }
    let board = client.leaderboard(name, top).await?;
    Ok((before, board))
}

fn name_of(experiment: &Experiment) -> &str {
    experiment.metadata.name.as_deref().unwrap_or_default()
}

/// A few lines a person reads: phase, reason, counts, best trial.
fn describe(experiment: &Experiment) -> String {
    let status = experiment.status.clone().unwrap_or_default();
    let c = &status.trials;
    let mut text = format!(
        "experiment {}: {:?}{}\n  trials: {} succeeded, {} failed, {}{} running, {} pending of {}\n",
        name_of(experiment),
        status.phase,
        status.reason.map(|r| format!(" ({r})")).unwrap_or_default(),
        c.succeeded,
        c.failed,
        if c.early_stopped > 0 { format!("{} stopped early, ", c.early_stopped) } else { String::new() },
        c.running,
        c.pending + c.interrupted + c.stopped,
        experiment.spec.max_trials
    );
    if let Some(message) = status.message {
        text.push_str(&format!("  {message}\n"));
    }
    if let Some(best) = status.best_trial {
        text.push_str(&format!(
            "  best: {} {} = {} {}\n",
            best.name,
            experiment.spec.objective.metric,
            crate::leaderboard::number(best.objective),
            best.parameters
        ));
    }
    text
}

fn promotions_table(history: &PromotionHistory) -> String {
    let current = history.serving.as_ref().map_or("", |s| s.version.as_str());
    let mut text =
        format!("{:<8} {:<9} {:<28} {:>12}  {:<6} {}\n", "VERSION", "ACTION", "TRIAL", "OBJECTIVE", "BY", "TIME");
    // A version served again after a rollback has two rows; the star marks the latest, the one
    // that made it current.
    let served = history.promotions.iter().rposition(|p| format!("v{}", p.version) == current);
    for (i, p) in history.promotions.iter().enumerate() {
        let version = format!("v{}", p.version);
        let mark = if Some(i) == served { " *" } else { "" };
        text.push_str(&format!(
            "{:<8} {:<9} {:<28} {:>12}  {:<6} {}\n",
            version + mark,
            p.action,
            p.trial,
            p.objective.map_or("-".into(), crate::leaderboard::number),
            p.by,
            p.time
        ));
        // Why tuna acted on its own (a failed rollout, the automatic rollback after it).
        if let Some(reason) = &p.reason {
            text.push_str(&format!("{:<8} ↳ {reason}\n", ""));
        }
    }
    if let Some(url) = history.serving.as_ref().and_then(|s| s.url.as_deref()) {
        text.push_str(&format!("serving {current} at {url}\n"));
    }
    text
}

fn list_table(list: &ExperimentList) -> String {
    let mut text =
        format!("{:<30} {:<10} {:<8} {:>6} {:>6} {:>6}  {}\n", "NAME", "PHASE", "SEARCH", "DONE", "MAX", "RUN", "BEST");
    for e in &list.experiments {
        let t = &e.trials;
        text.push_str(&format!(
            "{:<30} {:<10} {:<8} {:>6} {:>6} {:>6}  {}\n",
            e.name,
            // The phase's wire name (its Debug form), as a `String` so the width pads it.
            format!("{:?}", e.phase),
            e.algorithm,
            u64::from(t.succeeded) + u64::from(t.failed),
            e.max_trials,
            t.running,
            e.best_objective.map_or("-".to_string(), crate::leaderboard::number)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{ExperimentSummary, Promotion, Serving, TrialCounts};

    #[test]
    fn the_list_table_spells_each_phase_as_the_server_does() {
        let row = |phase| ExperimentSummary {
            name: "e".into(),
            phase,
            algorithm: "grid".into(),
            max_trials: 9,
            trials: TrialCounts { succeeded: 2, failed: 1, running: 3, ..Default::default() },
            best_objective: Some(0.25),
            start_time: None,
        };
        for phase in [ExperimentPhase::Pending, ExperimentPhase::Running, ExperimentPhase::Stopped] {
            let table = list_table(&ExperimentList { experiments: vec![row(phase)] });
            let wire = serde_json::to_value(phase).unwrap();
            let line =
                format!("{:<30} {:<10} {:<8} {:>6} {:>6} {:>6}  0.25\n", "e", wire.as_str().unwrap(), "grid", 3, 9, 3);
            assert_eq!(table.lines().nth(1).map(|l| format!("{l}\n")), Some(line));
        }
    }

    #[test]
    fn the_promotions_table_marks_the_served_version_and_says_where_it_is() {
        let promotion = |version, action: &str| Promotion {
            version,
            action: action.into(),
            trial: "e-0001".into(),
            parameters: serde_json::json!({}),
            objective: (version == 1).then_some(0.5),
            model: "m".into(),
            time: "2026-01-02T03:04:05.5Z".parse().unwrap(),
            by: "api".into(),
            reason: None,
        };
        let serving = Serving { version: "v2".into(), trial: "e-0001".into(), url: Some("http://x".into()) };
        let history = PromotionHistory {
            experiment: "e".into(),
            serving: Some(serving),
            promotions: vec![promotion(1, "promote"), promotion(2, "rollback")],
        };
        let lines: Vec<String> = promotions_table(&history).lines().skip(1).map(String::from).collect();
        let row = |v: &str, a: &str, o: &str| {
            format!("{v:<8} {a:<9} {:<28} {o:>12}  {:<6} 2026-01-02T03:04:05.5Z", "e-0001", "api")
        };
        assert_eq!(lines, [row("v1", "promote", "0.5"), row("v2 *", "rollback", "-"), "serving v2 at http://x".into()]);
    }

    #[test]
    fn a_version_served_again_after_a_rollback_is_starred_once() {
        let promotion = |version, action: &str| Promotion {
            version,
            action: action.into(),
            trial: "e-0001".into(),
            parameters: serde_json::json!({}),
            objective: Some(1.5e-9),
            model: "m".into(),
            time: "2026-01-02T03:04:05.5Z".parse().unwrap(),
            by: "api".into(),
            reason: None,
        };
        let serving = Serving { version: "v1".into(), trial: "e-0001".into(), url: None };
        let history = PromotionHistory {
            experiment: "e".into(),
            serving: Some(serving),
            promotions: vec![promotion(1, "promote"), promotion(2, "promote"), promotion(1, "rollback")],
        };
        let table = promotions_table(&history);
        let starred: Vec<&str> = table.lines().filter(|l| l.contains(" *")).collect();
        assert_eq!(starred.len(), 1, "{table}");
        assert!(starred[0].contains("rollback") && starred[0].contains("1.5e-9"), "{table}");
    }

    #[test]
    fn a_failed_rollout_and_the_automatic_rollback_after_it_say_why_under_their_rows() {
        let entry = |version, action: &str, reason: Option<&str>| Promotion {
            version,
            action: action.into(),
            trial: format!("e-000{version}"),
            parameters: serde_json::json!({}),
            objective: None,
            model: "m".into(),
            time: "2026-01-02T03:04:05.5Z".parse().unwrap(),
            by: "auto".into(),
            reason: reason.map(String::from),
        };
        let why = "ProgressDeadlineExceeded: ReplicaSet \"e-abc\" has timed out progressing.";
        let history = PromotionHistory {
            experiment: "e".into(),
            serving: Some(Serving { version: "v1".into(), trial: "e-0001".into(), url: None }),
            promotions: vec![
                entry(1, "promote", None),
                entry(2, "failed", Some(why)),
                entry(1, "rollback", Some(&format!("v2 failed its rollout: {why}"))),
            ],
        };
        let table = promotions_table(&history);
        let lines: Vec<&str> = table.lines().skip(1).collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[1].starts_with("v2 ") && lines[1].contains("failed"), "{table}");
        assert_eq!(lines[2], format!("{:<8} ↳ {why}", ""));
        assert!(lines[3].starts_with("v1 *") && lines[3].contains("rollback"), "{table}");
        assert_eq!(lines[4], format!("{:<8} ↳ v2 failed its rollout: {why}", ""));
    }
}
