//! End to end through the real binary: the client speaks TLS to an `https://` server, trusting a
//! private CA given with `--ca-cert`. The server is `openssl s_server` (its `-www` page is not
//! tuna's JSON, so a request that gets through fails to decode, which is what shows the TLS
//! handshake succeeded).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step is a failed test
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("this test needs the openssl command (apt-get install openssl): {e}"));
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA, and a certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=tuna-test-ca",
            "-days",
            "1",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "ext",
        ],
    );
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls_server(dir: &Path) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("openssl")
        .args(["s_server", "-accept", &port.to_string(), "-cert", "server.pem", "-key", "server.key", "-www", "-quiet"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Server(child), port)
}

fn tuna(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tuna")).args(args).current_dir(dir).env_remove("TUNA_CA_CERT").output().unwrap()
}

#[test]
fn the_client_reaches_an_https_server_through_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (_server, port) = tls_server(dir.path());
    let url = format!("https://127.0.0.1:{port}");

    let out = tuna(dir.path(), &["list", "--server", &url, "--ca-cert", "ca.pem"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("scheme is not http") && !stderr.contains("certificate"), "{stderr}");
    assert!(stderr.contains("was not what this client expects"), "the request got through TLS: {stderr}");

    let out = tuna(dir.path(), &["list", "--server", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("UnknownIssuer"), "an unknown CA is refused: {stderr}");

    let out = tuna(dir.path(), &["list", "--server", &url, "--ca-cert", "ext"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds no certificate"), "{stderr}");
}

/// `tuna serve` terminating TLS itself; the URL it says it serves on.
fn tuna_serve_tls(dir: &Path, key: &str) -> (Server, Result<String, String>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tuna"))
        .args(["serve", "--listen", "127.0.0.1:0", "--gpus", "none", "--data-dir", "data"])
        .args(["--tls-cert", "server.pem", "--tls-key", key])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = String::new();
    for line in lines.map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("tuna serving on ") {
            let url = rest.split_whitespace().next().unwrap().to_string();
            return (Server(child), Ok(url));
        }
        said.push_str(&line);
        said.push('\n');
    }
    (Server(child), Err(said))
}

#[test]
fn tuna_serve_terminates_tls_itself_and_speaks_no_clear_text() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (_server, url) = tuna_serve_tls(dir.path(), "server.key");
    let url = url.unwrap();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let doc = "apiVersion: tuna.dev/v1alpha1\nkind: Experiment\nmetadata: {name: tls}\nspec:\n  \
               objective: {metric: value, goal: minimize}\n  executor: external\n  maxTrials: 2\n  \
               parameters: [{name: x, type: double, min: 0, max: 1}]\n";
    std::fs::write(dir.path().join("tls.yaml"), doc).unwrap();
    let out = tuna(dir.path(), &["submit", "tls.yaml", "--server", &url, "--ca-cert", "ca.pem"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tuna(dir.path(), &["list", "--server", &url, "--ca-cert", "ca.pem"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("tls"), "{}", String::from_utf8_lossy(&out.stderr));
    let plain = url.replacen("https://", "http://", 1);
    let out = tuna(dir.path(), &["list", "--server", &plain]);
    assert!(!out.status.success(), "no API in clear text: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn tuna_serve_refuses_a_tls_key_that_is_not_one_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (_server, said) = tuna_serve_tls(dir.path(), "ext");
    let said = said.expect_err("no server with a broken key");
    assert!(said.contains("--tls-key ext"), "{said}");
}
