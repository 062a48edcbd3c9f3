//! The configuration every command shares: flags with `TUNA_…` environment fallbacks.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Where the store and the trials' files live.
    #[arg(long, global = true, env = "TUNA_DATA_DIR", default_value = ".tuna")]
    pub data_dir: PathBuf,

    /// GPU indices trials may use, e.g. `0,1` (default: what `nvidia-smi` lists; `none` for none).
    #[arg(long, global = true, env = "TUNA_GPUS")]
    pub gpus: Option<String>,

    /// Log filter for tuna's own diagnostics (e.g. `info`, `tuna=debug`).
    #[arg(long, global = true, env = "TUNA_LOG", default_value = "warn")]
    pub log: String,
}

impl Config {
    /// The GPU list given, or `None` to detect.
    pub fn gpu_list(&self) -> Result<Option<Vec<u32>>, String> {
        let Some(text) = self.gpus.as_deref() else { return Ok(None) };
        if text.trim().is_empty() || text.trim() == "none" {
            return Ok(Some(Vec::new()));
        }
        let mut devices = text
            .split(',')
            .map(|d| {
                d.trim().parse::<u32>().map_err(|_| format!("--gpus: {d:?} is not a device index; write e.g. 0,1"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        devices.sort_unstable();
        devices.dedup();
        Ok(Some(devices))
    }
}
