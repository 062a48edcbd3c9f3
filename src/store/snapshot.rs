//! Opening a data dir that another process may hold: sled has no read-only mode and locks its
//! database, so a reader that finds the lock taken (a running `tuna run`) or the folder
//! unwritable (read-only media) opens a copy instead. Open errors say which of these it was.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{Error, Result, Store};

/// Whether sled refused because another process holds the database's lock. sled 0.34 wraps the
/// lock's `WouldBlock` in an error of kind `Other` whose text is all that is left of it.
fn lock_held(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::WouldBlock
        || (e.kind() == ErrorKind::Other && e.to_string().starts_with("could not acquire lock"))
}

/// Why sled could not open a database, in a user's words.
pub fn why(source: &sled::Error) -> String {
    match source {
        sled::Error::Io(e) if lock_held(e) => "another tuna process holds its lock".into(),
        sled::Error::Io(e) => match e.kind() {
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
                "permission denied: the folder cannot be written".into()
            }
            ErrorKind::NotFound => "it does not exist".into(),
            _ => e.to_string(),
        },
        other => other.to_string(),
    }
}

/// Whether an open failed only because the store cannot be written here (its lock is held, or
/// the folder is read-only), so that a copy can still be read.
pub fn only_unwritable(err: &Error) -> bool {
    match err {
        Error::Open { source: sled::Error::Io(e), .. } => {
            lock_held(e) || matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem)
        }
        _ => false,
    }
}

/// Whether opening failed only because another process holds the database's lock.
pub fn held_by_another(err: &Error) -> bool {
    matches!(err, Error::Open { source: sled::Error::Io(e), .. } if lock_held(e))
}

/// A store read from a copy of another's database; the copy is removed when this is dropped.
pub struct Snapshot {
    pub store: Store,
    copy: PathBuf,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.copy);
    }
}

impl Store {
    /// Copies the database under `dir` to a scratch folder and opens the copy (what sled last
    /// wrote to disk; a running experiment flushes every trial's changes).
    pub fn open_snapshot(dir: &Path) -> Result<Snapshot> {
        let source = dir.join("db");
        let copy = std::env::temp_dir().join(format!("tuna-snapshot-{}-{}", std::process::id(), rand::random::<u32>()));
        let failed = |e: std::io::Error| Error::Snapshot { path: source.clone(), source: e };
        copy_dir(&source, &copy.join("db")).map_err(failed)?;
        match Store::open(&copy) {
            Ok(store) => Ok(Snapshot { store, copy }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&copy);
                Err(e)
            }
        }
    }
}

/// Copies the folder `from` (and everything below it) to `to`.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_store_is_read_through_a_snapshot_and_the_error_says_the_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let held = Store::open(dir.path()).unwrap();
        held.flush_writes().unwrap();
        let err = Store::open(dir.path()).err().expect("sled's lock refuses a second open");
        assert!(err.to_string().contains("another tuna process holds its lock"), "{err}");
        assert!(only_unwritable(&err));
        let snapshot = Store::open_snapshot(dir.path()).unwrap();
        assert!(snapshot.store.experiments().unwrap().is_empty());
        let copy = snapshot.copy.clone();
        drop(snapshot);
        assert!(!copy.exists(), "the copy is removed");
    }
}
