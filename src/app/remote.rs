//! The client commands: each talks to a running `tuna serve` through `client::Client`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use serde_json::Value;

use crate::cli::Command;
use crate::client::Client;
use crate::config::Config;
use crate::spec::{Experiment, ExperimentPhase};

/// How often `leaderboard --watch` redraws.
const WATCH_EVERY: Duration = Duration::from_secs(2);

pub async fn execute(config: &Config, command: Command) -> anyhow::Result<ExitCode> {
    let client = Client::new(&config.server, config.token.clone());
    let mut out = std::io::stdout().lock();
    match command {
        Command::Submit { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("failed to read {}", file.display()))?;
            let experiment = client.submit(text).await?;
            writeln!(out, "experiment {} created", experiment.metadata.name.unwrap_or_default())?;
        }
        Command::List => write!(out, "{}", list_table(&client.list().await?))?,
        Command::Get { name, json } => {
            let experiment = client.get(&name).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&experiment)?)?;
            } else {
                write!(out, "{}", describe(&experiment))?;
            }
        }
        Command::Leaderboard { name, top, format, watch } => loop {
            let experiment = client.get(&name).await?;
            let board = client.leaderboard(&name, top).await?;
            let text = super::render(&board, &experiment, format)?;
            let finished = experiment
                .status
                .as_ref()
                .is_none_or(|s| s.phase != ExperimentPhase::Running && s.phase != ExperimentPhase::Pending);
            if !watch || finished {
                write!(out, "{text}")?;
                break;
            }
            write!(out, "\x1b[2J\x1b[H{}{text}", describe(&experiment))?;
            out.flush()?;
            tokio::time::sleep(WATCH_EVERY).await;
        },
        Command::Trials { name } => {
            let trials = client.trials(&name).await?;
            writeln!(out, "{}", serde_json::to_string_pretty(&trials["trials"])?)?;
        }
        Command::Logs { name, trial, follow } => {
            let mut body = client.logs(&name, &trial, follow).await?.bytes_stream();
            while let Some(chunk) = body.next().await {
                out.write_all(&chunk.context("the log stream broke off")?)?;
                out.flush()?;
            }
        }
        Command::Stop { name } => writeln!(out, "experiment {} stopping", name_of(&client.stop(&name).await?))?,
        Command::Resume { name, max_trials } => {
            let experiment = client.resume(&name, max_trials).await?;
            writeln!(out, "experiment {} resumed (maxTrials {})", name_of(&experiment), experiment.spec.max_trials)?;
        }
        Command::Delete { name } => {
            let answer = client.delete(&name).await?;
            match answer.get("deleted") {
                Some(_) => writeln!(out, "experiment {name} deleted")?,
                None => writeln!(out, "experiment {name} is being deleted (its trials are stopping)")?,
            }
        }
        Command::Promote { name, trial } => {
            let answer = client.promote(&name, trial.as_deref()).await?;
            writeln!(out, "{}", answer["message"].as_str().unwrap_or_default())?;
        }
        Command::Rollback { name, to } => {
            let answer = client.rollback(&name, to.as_deref()).await?;
            writeln!(out, "{}", answer["message"].as_str().unwrap_or_default())?;
        }
        Command::Promotions { name } => write!(out, "{}", promotions_table(&client.promotions(&name).await?))?,
        Command::Run { .. } | Command::Validate { .. } | Command::Serve(_) | Command::Crd | Command::Render { .. } => {
            unreachable!("handled locally")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn name_of(experiment: &Experiment) -> &str {
    experiment.metadata.name.as_deref().unwrap_or_default()
}

/// A few lines a person reads: phase, reason, counts, best trial.
fn describe(experiment: &Experiment) -> String {
    let status = experiment.status.clone().unwrap_or_default();
    let c = &status.trials;
    let mut text = format!(
        "experiment {}: {:?}{}\n  trials: {} succeeded, {} failed, {} running, {} pending of {}\n",
        name_of(experiment),
        status.phase,
        status.reason.map(|r| format!(" ({r})")).unwrap_or_default(),
        c.succeeded,
        c.failed,
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
            best.name, experiment.spec.objective.metric, best.objective, best.parameters
        ));
    }
    text
}

fn promotions_table(answer: &Value) -> String {
    let current = answer["serving"]["version"].as_str().unwrap_or("");
    let mut text =
        format!("{:<8} {:<9} {:<28} {:>12}  {:<6} {}\n", "VERSION", "ACTION", "TRIAL", "OBJECTIVE", "BY", "TIME");
    for p in answer["promotions"].as_array().into_iter().flatten() {
        let version = format!("v{}", p["version"]);
        let mark = if version == current { " *" } else { "" };
        text.push_str(&format!(
            "{:<8} {:<9} {:<28} {:>12}  {:<6} {}\n",
            version + mark,
            p["action"].as_str().unwrap_or(""),
            p["trial"].as_str().unwrap_or(""),
            p["objective"].as_f64().map_or("-".into(), |v| v.to_string()),
            p["by"].as_str().unwrap_or(""),
            p["time"].as_str().unwrap_or("")
        ));
    }
    if let Some(url) = answer["serving"]["url"].as_str() {
        text.push_str(&format!("serving {current} at {url}\n"));
    }
    text
}

fn list_table(list: &Value) -> String {
    let mut text =
        format!("{:<30} {:<10} {:<8} {:>6} {:>6} {:>6}  {}\n", "NAME", "PHASE", "SEARCH", "DONE", "MAX", "RUN", "BEST");
    for e in list["experiments"].as_array().into_iter().flatten() {
        let t = &e["trials"];
        let done = t["succeeded"].as_u64().unwrap_or(0) + t["failed"].as_u64().unwrap_or(0);
        text.push_str(&format!(
            "{:<30} {:<10} {:<8} {:>6} {:>6} {:>6}  {}\n",
            e["name"].as_str().unwrap_or(""),
            e["phase"].as_str().unwrap_or(""),
            e["algorithm"].as_str().unwrap_or(""),
            done,
            e["maxTrials"].as_u64().unwrap_or(0),
            t["running"].as_u64().unwrap_or(0),
            e["bestObjective"].as_f64().map_or("-".to_string(), |v| v.to_string())
        ));
    }
    text
}
