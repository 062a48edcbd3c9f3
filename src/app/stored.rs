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

use anyhow::{Context, bail};

use crate::api::{self, ApiState};
use crate::cli::Command;
use crate::client::Client;
use crate::config::{Config, DEFAULT_DATA_DIR};
use crate::store::Store;
use crate::store::snapshot::{Snapshot, only_unwritable};
use crate::token::TrialSecret;

/// The data dir a command reads instead of a server, when no server is given: the one given (it
/// must exist), or ./.tuna when it exists; `None` for the commands that need a server.
pub fn data_dir_for(config: &Config, command: &Command) -> anyhow::Result<Option<PathBuf>> {
    let reads = matches!(
        command,
        Command::List
            | Command::Get { .. }
            | Command::Trials { .. }
            | Command::Logs { .. }
            | Command::Leaderboard { .. }
            | Command::Promotions { .. }
            | Command::Plot { .. }
    );
    // A server given by name is asked, even where a data dir is set too (a server's own
    // TUNA_DATA_DIR in the environment, say).
    if !reads || config.server.is_some() {
        return Ok(None);
    }
    match &config.data_dir {
        Some(dir) if !dir.join("db").is_dir() => bail!(
            "{} is not a tuna data dir ({}); `tuna run` creates one, or check the path",
            dir.display(),
            if dir.exists() { "it holds no store" } else { "it does not exist" }
        ),
        Some(dir) => Ok(Some(dir.clone())),
        None if Path::new(DEFAULT_DATA_DIR).join("db").is_dir() => Ok(Some(PathBuf::from(DEFAULT_DATA_DIR))),
        None => Ok(None),
    }
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

fn open(data_dir: &Path) -> anyhow::Result<Opened> {
    match Store::open(data_dir) {
        Ok(store) => Ok(Opened::Own(store)),
        Err(e) if only_unwritable(&e) => {
            let snapshot =
                Store::open_snapshot(data_dir).with_context(|| format!("{e}; reading a copy of it failed too"))?;
            Ok(Opened::Copy(snapshot))
        }
        Err(e) => Err(e).context("failed to open the data dir"),
    }
}

/// Answers a read command from the store in `data_dir`.
pub async fn answer(data_dir: &Path, command: Command) -> anyhow::Result<ExitCode> {
    let opened = open(data_dir)?;
    if let Opened::Copy(_) = &opened {
        let following =
            matches!(command, Command::Logs { follow: true, .. } | Command::Leaderboard { watch: true, .. });
        if following {
            bail!(
                "the store in {} is held by another tuna process, so only a copy can be read, and a copy does \
                 not change: run without --follow/--watch, or ask the server that runs it (--server)",
                data_dir.display()
            );
        }
    }
    let secret = TrialSecret::from_bytes(rand::random());
    let state = Arc::new(ApiState::new(opened.store().clone(), None, secret, 0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("failed to open a loopback port")?;
    let address = listener.local_addr().context("failed to read the loopback port")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, state, api::Bounds::default(), None, async move {
        let _ = stop_rx.await;
    }));
    let client = Client::new(&format!("http://{address}"), None);
    let result = super::remote::answer(&client, command).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    result
}
