//! A real `tuna serve` process for end-to-end tests.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tuna::client::Client;

/// A running `tuna serve` on a free loopback port; killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub data: PathBuf,
}

impl Server {
    pub fn start(data: &Path, workdir: &Path) -> Self {
        Self::start_with(data, workdir, &[], &[])
    }

    /// A server with extra flags and environment (e.g. `--watch-crds` with a `KUBECONFIG`).
    pub fn start_with(data: &Path, workdir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tuna"))
            .args(["serve", "--listen", "127.0.0.1:0", "--gpus", "none", "--data-dir"])
            .arg(data)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .current_dir(workdir)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("the server says where it listens").unwrap();
            if let Some(rest) = line.strip_prefix("tuna serving on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep the pipe drained, and the log where a failed test can be looked into:
        // Beside the data dir (a test's own temporary folder), never in the working dir it runs in.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(data.with_extension("log"));
        std::thread::spawn(move || {
            let mut log = log.ok();
            for line in lines.map_while(Result::ok) {
                if let Some(file) = log.as_mut() {
                    let _ = writeln!(file, "{line}");
                }
            }
        });
        Self { child, url, data: data.to_path_buf() }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tuna")).args(args).env("TUNA_SERVER", &self.url).output().unwrap()
    }

    /// GET /metrics over plain HTTP/1.1: the OpenMetrics text.
    pub fn metrics(&self) -> String {
        use std::io::Read;
        let address = self.url.strip_prefix("http://").unwrap().trim_end_matches('/');
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.to_lowercase().contains("content-type: application/openmetrics-text"), "{head}");
        body.to_string()
    }

    /// The value of the `/metrics` sample whose line starts with `start` (0 when there is none).
    pub fn metric(text: &str, start: &str) -> f64 {
        text.lines().find(|l| l.starts_with(start)).map_or(0.0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url, None)
    }

    /// Polls until the experiment reaches a final phase.
    pub fn wait_finished(&self, name: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.cli(&["get", name, "--json"]);
            let experiment: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let phase = experiment["status"]["phase"].as_str().unwrap_or_default().to_string();
            if phase == "Succeeded" || phase == "Failed" {
                return experiment;
            }
            assert!(Instant::now() < deadline, "{name} did not finish: {experiment}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    /// SIGTERM first, so the server stops what it started (serving processes too), then SIGKILL.
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
