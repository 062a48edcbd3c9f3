//! A local trial's process, told apart from any later process given the same PID, and tied to
//! the tuna process that runs it.
//!
//! - **Identity**: the kernel's boot id and the process's start time in clock ticks since boot
//!   (`/proc/PID/stat`, field 22). A PID reused after the trial ended, or after a reboot, has
//!   another stamp, so a restarted controller never kills a stranger's process group.
//! - **Dying with the runner**: trials start under `setpriv --pdeathsig KILL` (util-linux, on every
//!   Debian-like system), so the kernel kills a trial whose tuna process died, even by `kill -9`.
//!   (The signal follows the thread that started the trial: tokio's worker threads live as long as
//!   the runtime.) Where `setpriv` is missing, trials start without it and a restarted controller
//!   reaps them as before.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `BOOT_ID@START_TICKS` of a running process; `None` when it is gone (or /proc is not there).
pub fn stamp(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')': fields after the
    // last ')' are plain. The start time is field 22, the 20th after the name.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let start: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    Some(format!("{}@{start}", boot.trim()))
}

/// Whether `pid` is still the process that had `recorded` as its stamp. Without a stamp (a record
/// from an older tuna) nothing can be proven, so the answer is no.
pub fn is_same(pid: u32, recorded: Option<&str>) -> bool {
    recorded.is_some_and(|recorded| stamp(pid).as_deref() == Some(recorded))
}

/// `setpriv`, when this system has it.
fn setpriv() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND.get_or_init(|| on_path("setpriv", Path::new("/"), None)).as_deref()
}

/// The program and arguments that start `program args…` so that it dies with this process.
pub fn tied(program: &Path, args: &[String]) -> (PathBuf, Vec<String>) {
    match setpriv() {
        Some(setpriv) => {
            let mut tied = vec!["--pdeathsig".to_string(), "KILL".to_string(), "--".to_string()];
            tied.push(program.display().to_string());
            tied.extend(args.iter().cloned());
            (setpriv.to_path_buf(), tied)
        }
        None => (program.to_path_buf(), args.to_vec()),
    }
}

/// Where `program` is: itself when it names a path (relative to `working_dir`), else the first
/// executable of that name on `path` (the trial's own PATH when its env sets one), or on ours.
pub fn on_path(program: &str, working_dir: &Path, path: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let path = working_dir.join(program);
        return executable(&path).then_some(path);
    }
    let path = path.map(std::ffi::OsString::from).or_else(|| std::env::var_os("PATH"))?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_known_by_its_stamp_and_a_stranger_is_not() {
        let me = std::process::id();
        let mine = stamp(me).expect("this process has a stamp");
        assert!(is_same(me, Some(&mine)));
        let (boot, ticks) = mine.split_once('@').unwrap();
        let later: u64 = ticks.parse::<u64>().unwrap() + 1;
        assert!(!is_same(me, Some(&format!("{boot}@{later}"))), "same PID, another start: a stranger");
        assert!(!is_same(me, Some(&format!("another-boot@{ticks}"))), "same start, another boot");
        assert!(!is_same(me, None), "no stamp, no proof");
        assert_eq!(stamp(u32::MAX), None);
    }

    #[test]
    fn programs_resolve_on_path_or_as_paths() {
        assert!(on_path("sh", Path::new("/"), None).is_some());
        assert!(on_path("sh", Path::new("/"), Some("/nowhere")).is_none(), "the trial's own PATH is used");
        assert!(on_path("./no-such-program", Path::new("/"), None).is_none());
        assert!(on_path("no-such-program-anywhere", Path::new("/"), None).is_none());
        assert_eq!(on_path("/bin/sh", Path::new("/tmp"), None).as_deref(), Some(Path::new("/bin/sh")));
    }
}
