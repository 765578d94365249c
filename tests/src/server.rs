//! One running `graspd` process.
//!
//! Started with `--listen 127.0.0.1:0`: the kernel picks a free port and graspd prints
//! it (`graspd <version> listening on 127.0.0.1:<port>`), so there is no window in which
//! another test could take the port. Its public URL is then `http://127.0.0.1:<port>`
//! (graspd's default for the listen address); a restart passes that port and URL
//! explicitly. stdout and stderr go to a log file that is printed when the test panics.
//! The process is killed when the [`Graspd`] is dropped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nostr_sdk::prelude::{PublicKey, ToBech32};
use tempfile::TempDir;

use crate::binary;
use crate::http;

/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How a [`Graspd`] is started: graspd flags on top of the test defaults.
#[derive(Debug, Clone)]
pub struct Options {
    args: Vec<(String, Option<String>)>,
    /// Environment changes after the isolated defaults: `None` removes the variable.
    env: Vec<(String, Option<String>)>,
}

impl Default for Options {
    /// Test defaults: a 200 ms client sync delay, a 100 ms relay-sync delay, a 10 s
    /// fetch timeout, private (loopback) addresses allowed; everything else graspd's
    /// defaults (30 min purgatory expiry, 24 h announcement soft expiry).
    fn default() -> Self {
        let log = std::env::var("GRASP_TESTS_LOG").unwrap_or_else(|_| "info".to_owned());
        Self {
            args: Vec::new(),
            env: Vec::new(),
        }
        .flag("--client-sync-delay", "200ms")
        .flag("--sync-delay", "100ms")
        .flag("--fetch-timeout", "10s")
        .switch("--allow-private-addresses")
        .flag("--log-level", &log)
    }
}

impl Options {
    /// Sets `--<name> <value>` (replacing an earlier value of the same flag).
    pub fn flag(mut self, name: &str, value: &str) -> Self {
        self.args.retain(|(n, _)| n != name);
        self.args.push((name.to_owned(), Some(value.to_owned())));
        self
    }

    /// Adds a flag without a value.
    pub fn switch(mut self, name: &str) -> Self {
        self.args.retain(|(n, _)| n != name);
        self.args.push((name.to_owned(), None));
        self
    }

    /// Drops a flag or switch the defaults set (e.g. `--allow-private-addresses`).
    pub fn without(mut self, name: &str) -> Self {
        self.args.retain(|(n, _)| n != name);
        self
    }

    /// Removes `name` from graspd's environment (e.g. `NO_COLOR`, which the harness
    /// sets for every child by default).
    pub fn env_remove(mut self, name: &str) -> Self {
        self.env.push((name.to_owned(), None));
        self
    }

    /// Sets `name=value` in graspd's environment (e.g. a debug build's fault hook).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), Some(value.to_owned())));
        self
    }

    /// `--purgatory-expiry <value>` (e.g. `"3s"`).
    pub fn purgatory_expiry(self, value: &str) -> Self {
        self.flag("--purgatory-expiry", value)
    }

    /// `--announcement-soft-expiry <value>`.
    pub fn announcement_soft_expiry(self, value: &str) -> Self {
        self.flag("--announcement-soft-expiry", value)
    }

    /// The `--public-url` set, if any.
    fn public_url(&self) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| n == "--public-url")
            .and_then(|(_, v)| v.as_deref())
    }

    fn argv(&self) -> Vec<String> {
        let mut argv = Vec::new();
        for (name, value) in &self.args {
            argv.push(name.clone());
            if let Some(value) = value {
                argv.push(value.clone());
            }
        }
        argv
    }
}

/// A running graspd with its own data directory.
#[derive(Debug)]
pub struct Graspd {
    child: Option<Child>,
    port: u16,
    options: Options,
    data: TempDir,
    home: TempDir,
    log_path: PathBuf,
    _log_dir: TempDir,
}

impl Graspd {
    /// Starts graspd with the test defaults.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Starts graspd with `options`, waiting until it answers HTTP.
    pub async fn start_with(options: Options) -> Self {
        Self::start_with_port(options, None).await
    }

    /// Starts graspd with `options` listening on `127.0.0.1:<port>` (a port from
    /// [`free_port`]: for a `--public-url` that must name the port before graspd runs).
    pub async fn start_on(port: u16, options: Options) -> Self {
        Self::start_with_port(options, Some(port)).await
    }

    async fn start_with_port(options: Options, port: Option<u16>) -> Self {
        let mut server = Self::start_unspawned(options);
        server.spawn_and_wait(port).await;
        server
    }

    fn start_unspawned(options: Options) -> Self {
        let data = tempfile::Builder::new()
            .prefix("graspd-data-")
            .tempdir()
            .expect("temp data dir");
        let home = tempfile::Builder::new()
            .prefix("graspd-home-")
            .tempdir()
            .expect("temp home dir");
        let log_dir = tempfile::Builder::new()
            .prefix("graspd-log-")
            .tempdir()
            .expect("temp log dir");
        let log_path = log_dir.path().join("graspd.log");
        Self {
            child: None,
            port: 0,
            options,
            data,
            home,
            log_path,
            _log_dir: log_dir,
        }
    }

    /// The port graspd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The public base URL, no trailing slash: `--public-url` when the options set
    /// one (a reverse proxy's, or one with a base path), else `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        match self.options.public_url() {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// graspd itself, past any proxy: `http://127.0.0.1:<port><base path>`.
    pub fn direct_url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.base_path())
    }

    /// The path of the public URL without a trailing slash (`/git`), or empty.
    pub fn base_path(&self) -> String {
        let base = self.base_url();
        let after_scheme = base.split_once("://").map_or("", |(_, rest)| rest);
        after_scheme
            .find('/')
            .map_or(String::new(), |i| after_scheme[i..].to_owned())
    }

    /// The relay URL announcements must list: [`Self::base_url`] with `ws`/`wss`.
    pub fn relay_url(&self) -> String {
        let base = self.base_url();
        match base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", base.trim_start_matches("http://")),
        }
    }

    /// `http://127.0.0.1:<port>/<npub>/<d>.git` — the clone URL announcements must list.
    pub fn repo_url(&self, owner: &PublicKey, d: &str) -> String {
        format!("{}/{}/{d}.git", self.base_url(), npub(owner))
    }

    /// [`Self::repo_url`] with the identifier percent-encoded as clients encode it
    /// (every byte but `A-Z a-z 0-9 - . _ ~ +`): `my repo` → `my%20repo.git`.
    pub fn encoded_repo_url(&self, owner: &PublicKey, d: &str) -> String {
        format!(
            "{}/{}/{}.git",
            self.base_url(),
            npub(owner),
            percent_encode(d)
        )
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Where graspd keeps the bare repository of `(owner, d)`.
    pub fn repo_dir(&self, owner: &PublicKey, d: &str) -> PathBuf {
        self.data
            .path()
            .join("repos")
            .join(npub(owner))
            .join(format!("{d}.git"))
    }

    /// Everything graspd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The process id, while it runs (benchmarks read its CPU time and memory from
    /// `/proc/<pid>`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// `kill -9`: no chance to flush or shut down.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for a graceful exit (SIGKILL after that).
    pub fn terminate(&mut self, timeout: Duration) {
        let _ = self.terminate_status(timeout);
    }

    /// [`Self::terminate`], returning how graspd exited (`None` if it had to be
    /// killed, or was not running).
    pub fn terminate_status(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.as_ref()?.id();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        self.wait_exit(timeout)
    }

    /// Waits up to `timeout` for graspd to exit by itself and returns its status;
    /// `None` (after a SIGKILL) if it was still running, or was not running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Starts graspd again on the same port and data directory (after [`kill9`] or
    /// [`terminate`]; kills a still running process first).
    ///
    /// [`kill9`]: Self::kill9
    /// [`terminate`]: Self::terminate
    pub async fn restart(&mut self) {
        self.kill9();
        let port = self.port;
        self.spawn_and_wait(Some(port)).await;
    }

    async fn spawn_and_wait(&mut self, port: Option<u16>) {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn(port).await {
                Ok(port) => {
                    self.port = port;
                    break;
                }
                // The old port can stay busy for a moment after a kill.
                Err(why) if port.is_some() && tokio::time::Instant::now() < deadline => {
                    self.append_log(&format!("[harness] restart failed, retrying: {why}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(why) => panic!("graspd did not start: {why}\n{}", self.log_tail()),
            }
        }
        let url = format!("{}/", self.direct_url());
        crate::eventually(START_TIMEOUT, "graspd answers HTTP", || {
            let url = url.clone();
            async move {
                match http::get(&url, &[]).await {
                    Ok(response) if response.status == 200 => Some(()),
                    _ => None,
                }
            }
        })
        .await;
    }

    /// Spawns the process and waits for its "listening on" line; returns the port.
    async fn spawn(&mut self, port: Option<u16>) -> Result<u16, String> {
        let binary = binary::graspd();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("log file: {e}"))?;
        let mut command = Command::new(binary);
        command
            .args(self.options.argv())
            .arg("--data-dir")
            .arg(self.data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        match port {
            Some(port) => {
                command.arg("--listen").arg(format!("127.0.0.1:{port}"));
                if self.options.public_url().is_none() {
                    command
                        .arg("--public-url")
                        .arg(format!("http://127.0.0.1:{port}"));
                }
            }
            None => {
                command.arg("--listen").arg("127.0.0.1:0");
            }
        }
        isolate_env(&mut command, self.home.path());
        for (name, value) in &self.options.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        self.append_log(&format!("[harness] starting {command:?}"));
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let log_path = self.log_path.clone();
        std::thread::spawn(move || copy_stdout(stdout, &log_path, tx));
        self.child = Some(child);
        let waited = tokio::task::spawn_blocking(move || rx.recv_timeout(START_TIMEOUT))
            .await
            .map_err(|e| format!("join: {e}"))?;
        match waited {
            Ok(port) => Ok(port),
            Err(_) => {
                self.kill9();
                Err("no `listening on` line on stdout".to_owned())
            }
        }
    }

    fn append_log(&self, line: &str) {
        if let Ok(mut file) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
        {
            let _ = writeln!(file, "{line}");
        }
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(300);
        lines[start..].join("\n")
    }
}

impl Drop for Graspd {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "----- graspd log (port {}, data {}) -----\n{}\n----- end of graspd log -----",
                self.port,
                self.data.path().display(),
                self.log_tail()
            );
        }
    }
}

/// Copies graspd's stdout to the log; sends the port of the `listening on` line.
fn copy_stdout(stdout: std::process::ChildStdout, log_path: &Path, tx: mpsc::Sender<u16>) {
    let mut log: Option<File> = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .ok();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(log) = &mut log {
            let _ = writeln!(log, "[stdout] {line}");
        }
        if let Some((_, addr)) = line.split_once(" listening on ") {
            if let Some(port) = addr
                .trim()
                .rsplit_once(':')
                .and_then(|(_, port)| port.parse().ok())
            {
                let _ = tx.send(port);
            }
        }
    }
}

/// A port free on 127.0.0.1 right now (the kernel's pick, released at once), for a
/// server whose public URL must name its port before it starts; the caller retries if
/// another process takes it meanwhile.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The environment every child process (graspd, git) gets: no proxies (everything is
/// on loopback), no prompts, no user or system git configuration, no CA bundle from
/// the environment.
pub fn isolate_env(command: &mut Command, home: &Path) {
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_CONFIG",
        "GIT_CONFIG_PARAMETERS",
        "GIT_PROTOCOL",
        "GIT_ASKPASS",
        // A CA bundle from the environment would override a test's `http.sslCAInfo`.
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        "GIT_SSL_NO_VERIFY",
        "SSH_ASKPASS",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("NO_COLOR", "1");
}

/// Percent-encodes every byte of `text` except the unreserved characters and `+` (a
/// literal plus in a URL path), as UTF-8.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~+".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The bech32 `npub1…` of a key.
pub fn npub(key: &PublicKey) -> String {
    key.to_bech32().expect("npub encoding")
}
