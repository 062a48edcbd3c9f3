//! A real headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! JSON messages ending in NUL on file descriptors 3 and 4, here two named pipes that `sh` opens),
//! so the tests need no WebDriver and no crate beyond serde_json. Chromium must be installed
//! (`scripts/test.sh` installs Debian's `chromium`); without it the test fails, naming the fix.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each suite uses a part; a failed step is a failed test

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long a page gets to show what a test waits for (a debug build serving, a cold browser).
const PATIENCE: Duration = Duration::from_secs(60);

pub struct Browser {
    child: Child,
    to: File,
    from: BufReader<File>,
    next: u64,
    session: String,
    /// Console errors, uncaught exceptions and error log entries (CSP violations among them).
    pub errors: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with a fresh profile and opens one blank tab.
    pub fn start() -> Self {
        let version = Command::new(CHROMIUM).arg("--version").output();
        assert!(
            version.as_ref().is_ok_and(|o| o.status.success()),
            "the dashboard tests need Chromium at {CHROMIUM} (apt-get install -y chromium; scripts/test.sh does it): {version:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let (to_browser, from_browser) = (dir.path().join("in"), dir.path().join("out"));
        for fifo in [&to_browser, &from_browser] {
            assert!(Command::new("mkfifo").arg(fifo).status().unwrap().success(), "mkfifo {}", fifo.display());
        }
        let profile = dir.path().join("profile");
        let child = Command::new("sh")
            .args(["-c", r#"exec "$0" "$@" 3<"$IN" 4>"$OUT""#, CHROMIUM])
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-pipe",
                "--window-size=1280,2000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .env("IN", &to_browser)
            .env("OUT", &from_browser)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The shell opens its end of `in` first, then `out`: open ours in the same order.
        let to = File::options().write(true).open(&to_browser).unwrap();
        let from = BufReader::new(File::open(&from_browser).unwrap());
        let mut browser = Browser { child, to, from, next: 0, session: String::new(), errors: Vec::new(), _dir: dir };
        let target = browser.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().unwrap().to_string();
        let attached = browser.call(None, "Target.attachToTarget", json!({"targetId": target, "flatten": true}));
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            browser.call_page(domain, json!({}));
        }
        browser
    }

    /// One command; its result. Events that arrive meanwhile are kept if they are errors.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        self.to.write_all(message.to_string().as_bytes()).unwrap();
        self.to.write_all(b"\0").unwrap();
        loop {
            let mut raw = Vec::new();
            let n = self.from.read_until(0, &mut raw).unwrap();
            assert!(n > 0, "Chromium closed the DevTools pipe (while waiting for {method})");
            raw.pop();
            let answer: Value = serde_json::from_slice(&raw).unwrap();
            if answer["id"] == json!(id) {
                assert!(answer.get("error").is_none(), "{method} failed: {answer}");
                return answer["result"].clone();
            }
            self.keep_error(&answer);
        }
    }

    fn call_page(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call(Some(&session), method, params)
    }

    fn keep_error(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => self.errors.push(format!("exception: {}", params["exceptionDetails"])),
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                self.errors.push(format!("console.error: {}", params["args"]));
            }
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                self.errors.push(format!("log: {}", params["entry"]));
            }
            _ => {}
        }
    }

    /// Loads `url` in the tab and waits until its document (not the one before) has loaded.
    pub fn open(&mut self, url: &str) {
        self.call_page("Page.navigate", json!({"url": url}));
        let loaded = format!("location.href === {url:?} && document.readyState === 'complete'");
        self.wait_for(&loaded, &format!("{url} loads"));
    }

    /// The value of a JavaScript expression in the page (awaited when it is a promise).
    pub fn eval(&mut self, expression: &str) -> Value {
        let answer = self.call_page(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(answer.get("exceptionDetails").is_none(), "{expression} threw: {answer}");
        answer["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page; fails with `why` and the page's text.
    pub fn wait_for(&mut self, expression: &str, why: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            // An element not there yet (or a document between two pages) is a "not yet".
            let check =
                format!("(() => {{ try {{ return Boolean({expression}); }} catch (e) {{ return false; }} }})()");
            if self.eval(&check) == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!("{why}: `{expression}` never held; the page shows:\n{}", text.as_str().unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    /// Asks Chromium to close (it takes its helper processes along), then makes sure it did.
    fn drop(&mut self) {
        let close = json!({"id": u64::MAX, "method": "Browser.close"}).to_string();
        if self.to.write_all(close.as_bytes()).and_then(|()| self.to.write_all(b"\0")).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
