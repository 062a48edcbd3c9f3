//! The read commands (`list`, `get`, `trials`, `logs`, `leaderboard`, `promotions`, `plot`) answered from a
//! data dir, with no server: the same API, served in-process on a loopback port over the store, so
//! that what they print is what a server would answer.
//!
//! ```text
//! data dir ──Store::open (or a snapshot when a running `tuna run` holds it)──▶ api::router
//!          ◀── client::Client (127.0.0.1:port) ◀── remote::answer(command)
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};

use crate::api::{self, ApiState};
use crate::cli::Command;
use crate::client::Client;
use crate::config::{Config, DEFAULT_DATA_DIR};
use crate::controller::Controller;
use crate::executor::LocalExecutor;
use crate::promote::Promoter;
use crate::store::Store;
use crate::store::snapshot::{Snapshot, only_unwritable};
use crate::token::TrialSecret;

use super::endpoint::{self, Endpoint};

/// Where a client command is answered.
pub enum Route {
    /// The server (`--server`, or the default one).
    Server,
    /// The loopback API of the running `tuna run` that holds the data dir.
    Run(Endpoint),
    /// The store in this data dir, opened here.
    Store(PathBuf),
}

/// Where `command` is answered when no server is given: the data dir given (it must exist), or
/// ./.tuna when it exists, through the `tuna run` that holds it or from its store; else the
/// default server. A server given by name is asked, even where a data dir is set too (a server's
/// own TUNA_DATA_DIR in the environment, say).
pub fn route(config: &Config, command: &Command) -> anyhow::Result<Route> {
    if matches!(command, Command::Submit { .. }) || config.server.is_some() {
        return Ok(Route::Server);
    }
    let dir = match &config.data_dir {
        Some(dir) if !dir.join("db").is_dir() => bail!(
            "{} is not a tuna data dir ({}); `tuna run` creates one, or check the path",
            dir.display(),
            if dir.exists() { "it holds no store" } else { "it does not exist" }
        ),
        Some(dir) => dir.clone(),
        None if Path::new(DEFAULT_DATA_DIR).join("db").is_dir() => PathBuf::from(DEFAULT_DATA_DIR),
        None => return Ok(Route::Server),
    };
    Ok(match endpoint::find(&dir) {
        Some(run) => Route::Run(run),
        None => Route::Store(dir),
    })
}

/// Answers `command` through the loopback API of the `tuna run` that holds the data dir.
pub async fn through_run(run: &Endpoint, command: Command) -> anyhow::Result<ExitCode> {
    let held = |what: &str, name: &str| {
        anyhow!(
            "the data dir is held by `tuna run` (pid {}), which runs experiment {}: {what} {name} once it is over \
             (stop it with `tuna stop {}` or Ctrl-C there)",
            run.pid,
            run.experiment,
            run.experiment
        )
    };
    match &command {
        Command::Resume { name, .. } => return Err(held("resume", name)),
        Command::Delete { name, .. } => return Err(held("delete", name)),
        _ => {}
    }
    super::remote::answer(&Client::new(&run.url, Some(run.token.clone())), command).await
}

/// The store of a data dir, opened for reading: itself, or a copy when it cannot be opened here
/// (a running `tuna run` holds it, or it is on read-only media).
enum Opened {
    Own(Store),
    Copy(Snapshot),
}

impl Opened {
    fn store(&self) -> &Store {
        match self {
            Opened::Own(store) => store,
            Opened::Copy(snapshot) => &snapshot.store,
        }
    }
}

fn open(data_dir: &Path, writes: bool) -> anyhow::Result<Opened> {
    let opened = if writes { super::open_waiting(data_dir) } else { Store::open(data_dir) };
    match opened {
        Ok(store) => Ok(Opened::Own(store)),
        Err(e) if only_unwritable(&e) => {
            let snapshot =
                Store::open_snapshot(data_dir).with_context(|| format!("{e}; reading a copy of it failed too"))?;
            Ok(Opened::Copy(snapshot))
        }
        Err(e) => Err(e).context("failed to open the data dir"),
    }
}

/// Answers a command from the store in `data_dir`, which no process serves: reads from the store
/// (or a copy, when it cannot be opened here: read-only media, or a process that published no
/// endpoint holds it); `stop`, `delete`, `promote` and `rollback` are carried out on it (a
/// promotion is recorded, and served by the next `tuna serve` or `tuna run --serve`); `resume`
/// runs the experiment here, as `tuna run` would.
pub async fn answer(config: &Config, data_dir: &Path, command: Command) -> anyhow::Result<ExitCode> {
    let resume = matches!(command, Command::Resume { .. }).then(|| command_name(&command));
    let result = answer_in_process(data_dir, command).await;
    // The store is closed now (every handle of it is gone), so the run can open it.
    match (result, resume) {
        (Ok(_), Some(name)) => super::local::run_stored(config, &name).await,
        (result, _) => result,
    }
}

async fn answer_in_process(data_dir: &Path, command: Command) -> anyhow::Result<ExitCode> {
    let writes = matches!(
        command,
        Command::Stop { .. }
            | Command::Delete { .. }
            | Command::Promote { .. }
            | Command::Rollback { .. }
            | Command::Resume { .. }
    );
    let opened = open(data_dir, writes)?;
    if let Opened::Copy(_) = &opened {
        let following =
            matches!(command, Command::Logs { follow: true, .. } | Command::Leaderboard { watch: true, .. });
        if following || writes {
            bail!(
                "the store in {} cannot be opened here (another tuna process holds it, or it is read-only), so \
                 only a copy can be read: {}ask the server that runs it (--server URL)",
                data_dir.display(),
                if writes { "" } else { "run without --follow/--watch, or " }
            );
        }
    }
    let store = opened.store().clone();
    let secret = TrialSecret::from_bytes(rand::random());
    let state = Arc::new(ApiState::new(store.clone(), None, secret, 0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("failed to open a loopback port")?;
    let address = listener.local_addr().context("failed to read the loopback port")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut halted = stop_rx.clone();
    let server = tokio::spawn(api::serve(listener, state, api::Bounds::default(), None, async move {
        let _ = halted.wait_for(|s| *s).await;
    }));
    let mut helpers = Vec::new();
    if writes {
        let absolute = std::path::absolute(data_dir).context("failed to resolve the data dir")?;
        helpers.push(tokio::spawn(Arc::new(Promoter::new(store.clone(), &absolute).recording_only()).run(stop_rx)));
        let controller = Controller::new(store.clone(), Arc::new(LocalExecutor::new(Vec::new())), absolute);
        helpers.push(tokio::spawn(settle(store.clone(), controller, command_name(&command))));
    }
    let client = Client::new(&format!("http://{address}"), None);
    let promotes = matches!(command, Command::Promote { .. } | Command::Rollback { .. });
    let result = super::remote::answer(&client, command).await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    for helper in helpers {
        helper.abort();
        let _ = helper.await;
    }
    if promotes && result.is_ok() {
        eprintln!(
            "recorded in {}; no process serves this data dir now: `tuna serve --data-dir {}` serves the current version",
            data_dir.display(),
            data_dir.display()
        );
    }
    result
}

/// The experiment a write names.
fn command_name(command: &Command) -> String {
    match command {
        Command::Stop { name, .. }
        | Command::Delete { name, .. }
        | Command::Promote { name, .. }
        | Command::Rollback { name, .. }
        | Command::Resume { name, .. } => name.clone(),
        _ => String::new(),
    }
}

/// Carries out a stop or delete recorded by the in-process API, as `tuna serve`'s supervisor
/// does for an experiment no task runs.
async fn settle(store: Store, controller: Controller<LocalExecutor>, name: String) {
    let changes = store.watch_experiments();
    loop {
        changes.next().await;
        if let Ok(Some(record)) = store.experiment(&name)
            && let Err(e) = controller.settle_idle(&record)
        {
            tracing::error!(experiment = %name, error = %e, "failed to carry out a stop or delete");
        }
    }
}
