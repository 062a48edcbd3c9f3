//! The configuration every command shares: flags with `TUNA_…` environment fallbacks.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// Where the data dir is when none is given.
pub const DEFAULT_DATA_DIR: &str = ".tuna";

/// What a command was given, gathered from the flags it takes (see [`crate::cli::Command::config`]):
/// each subcommand lists only the flags that apply to it, and a flag it does not take is `None`
/// here.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub data_dir: Option<PathBuf>,
    pub gpus: Option<String>,
    pub server: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub token: Option<String>,
    pub log: String,
}

/// `--data-dir`: for the commands that keep or read a store.
#[derive(Args, Clone, Debug, Default)]
pub struct StoreArgs {
    /// Where the store and the trials' files live [default: .tuna].
    #[arg(long, env = "TUNA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `--gpus`: for the commands that start trials on this machine.
#[derive(Args, Clone, Debug, Default)]
pub struct GpuArgs {
    /// GPU indices trials may use, e.g. `0,1` (default: what `nvidia-smi` lists; `none` for none).
    #[arg(long, env = "TUNA_GPUS", value_name = "LIST")]
    pub gpus: Option<String>,
}

/// Where a client command sends its request: a server, or else the data dir.
#[derive(Args, Clone, Debug, Default)]
pub struct ServerArgs {
    /// The server to ask [default: http://127.0.0.1:8080]. Where a command also takes
    /// --data-dir, without --server it is answered from the data dir (--data-dir, or ./.tuna when
    /// it exists): through the loopback API of the `tuna run` that holds it, or from the store.
    #[arg(long, env = "TUNA_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// A PEM file of certificate authorities to trust, besides the system's, for an https:// server
    /// (a private CA).
    #[arg(long, env = "TUNA_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// The server's API token (sent as `Authorization: Bearer`).
    #[arg(long, env = "TUNA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `tuna serve`'s own settings.
#[derive(Args, Clone, Debug)]
pub struct ServeConfig {
    /// The API token every /api call must carry (`Authorization: Bearer`); required unless
    /// --listen is a loopback address or --insecure-no-auth is given.
    #[arg(long, env = "TUNA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub gpus: GpuArgs,

    /// The address the API listens on.
    #[arg(long, env = "TUNA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Listen on a non-loopback address without a token (anyone who reaches it can run commands).
    #[arg(long)]
    pub insecure_no_auth: bool,

    /// Reconcile `Experiment` custom resources (in-cluster config, or the kubeconfig).
    #[arg(long)]
    pub watch_crds: bool,

    /// The namespaces to watch, comma-separated; the first holds the leader Lease and is the
    /// default --trial-namespace [default: the kubeconfig's or the pod's namespace].
    #[arg(long, env = "TUNA_NAMESPACE", value_delimiter = ',', value_name = "NAMESPACE[,…]")]
    pub namespace: Vec<String>,

    /// Where Kubernetes experiments submitted through the REST API run [default: --namespace;
    /// without either, the API refuses them, rather than run them in the controller's own].
    #[arg(long, env = "TUNA_TRIAL_NAMESPACE", value_name = "NAMESPACE")]
    pub trial_namespace: Option<String>,

    /// The ServiceAccounts those trials may run as (comma-separated); the first is the default.
    #[arg(long, env = "TUNA_TRIAL_SERVICE_ACCOUNTS", value_delimiter = ',', default_value = "tuna-trial")]
    pub trial_service_accounts: Vec<String>,

    /// Watch Experiments in every namespace.
    #[arg(long, conflicts_with = "namespace")]
    pub all_namespaces: bool,

    /// The URL trials use to reach this server (TUNA_API); in a cluster, its Service's URL
    /// [default: the listening address].
    #[arg(long, env = "TUNA_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// Seconds a client may take to send a request's headers before the connection is closed.
    #[arg(long, env = "TUNA_HEADER_TIMEOUT", default_value_t = 10, value_name = "SECONDS")]
    pub header_timeout: u64,

    /// Seconds a client may take to send a request's body before it is answered 408.
    #[arg(long, env = "TUNA_BODY_TIMEOUT", default_value_t = 30, value_name = "SECONDS")]
    pub body_timeout: u64,

    /// Connections served at once; more are closed as they arrive (the server stays responsive to
    /// the ones it has).
    #[arg(long, env = "TUNA_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Serve HTTPS with this PEM certificate chain (the server's certificate first), so tokens
    /// never cross a network in clear; needs --tls-key.
    #[arg(long, env = "TUNA_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, env = "TUNA_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

/// The server the client commands talk to when none is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

impl Config {
    pub fn server(&self) -> &str {
        self.server.as_deref().unwrap_or(DEFAULT_SERVER)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

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
