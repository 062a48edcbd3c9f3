//! Diagnostics: a tracing subscriber writing to stderr, filtered by `--log` / `TUNA_LOG`. While a
//! live display owns the terminal, log lines go through its hook (`route_logs_through`), so that
//! they are printed above it instead of into it.

use std::io::Write;
use std::sync::{Arc, RwLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Runs a write with the terminal to itself (a live display clears itself, writes, redraws).
pub type Suspend = Arc<dyn Fn(&mut dyn FnMut()) + Send + Sync>;

static SUSPEND: RwLock<Option<Suspend>> = RwLock::new(None);

/// Installs the subscriber once; later calls do nothing.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(Stderr).with_target(false).try_init();
}

/// Sends every later log line through `suspend` (or straight to stderr again with `None`).
pub fn route_logs_through(suspend: Option<Suspend>) {
    if let Ok(mut slot) = SUSPEND.write() {
        *slot = suspend;
    }
}

/// stderr, through the installed hook when there is one.
struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Self::Writer {
        Stderr
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let hook = SUSPEND.read().ok().and_then(|s| s.clone());
        let mut result = Ok(());
        match hook {
            Some(suspend) => suspend(&mut || result = std::io::stderr().write_all(buf)),
            None => result = std::io::stderr().write_all(buf),
        }
        result.map(|()| buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
