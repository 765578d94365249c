//! A real nginx in front of a graspd, running `docs/deploy/nginx.conf` — the file the
//! deployment guide tells operators to install — with its placeholders substituted.
//!
//! nginx runs as a child process on an ephemeral `127.0.0.1` port, with everything in a
//! temp dir (`-p <dir>`, its own top-level config, pid, logs and temp paths), `daemon
//! off` and a single process (`master_process off`, so killing the child stops it all);
//! it is killed when the [`Nginx`] is dropped, and its error log printed if the test
//! failed.
//!
//! Where the binary comes from: `GRASP_TESTS_NGINX=<path>`, else `nginx` on `PATH`, else
//! `/usr/sbin/nginx` (Debian's). Without one a test that needs it says so and passes,
//! unless `GRASP_TESTS_REQUIRE_NGINX=1` (set by `scripts/test`, which installs the
//! pinned Debian package) makes it fail instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::tls::TestTls;

/// How long nginx may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The deployment guide's nginx site file, relative to the workspace root.
pub const TEMPLATE: &str = "docs/deploy/nginx.conf";

/// The nginx binary, or `None` (after printing why) when the test should be skipped.
/// Panics when `GRASP_TESTS_REQUIRE_NGINX=1` and there is none.
pub fn nginx_binary() -> Option<PathBuf> {
    let found = match std::env::var_os("GRASP_TESTS_NGINX") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
        None => std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join("nginx"))
                    .find(|p| p.is_file())
            })
            .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file())),
    };
    if found.is_none() {
        let why = "nginx not found (install Debian's nginx-light, set GRASP_TESTS_NGINX, or \
                   run scripts/test, which installs the pinned package)";
        assert!(
            std::env::var("GRASP_TESTS_REQUIRE_NGINX").as_deref() != Ok("1"),
            "{why}"
        );
        eprintln!("skipped: {why}");
    }
    found
}

/// The template's text.
pub fn template() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(TEMPLATE);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A running nginx proxying `https://127.0.0.1:<port><location>` to a graspd.
#[derive(Debug)]
pub struct Nginx {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Nginx {
    /// Starts `binary` on `127.0.0.1:<port>` with TLS from `tls`, serving `location`
    /// (`/` or `/git`) from graspd at `upstream` (`127.0.0.1:<port>`).
    pub async fn start(
        binary: &Path,
        port: u16,
        tls: &TestTls,
        location: &str,
        upstream: &str,
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("grasp-nginx-")
            .tempdir()
            .expect("temp nginx dir");
        let site = template()
            .replace("@SERVER_NAME@", "127.0.0.1")
            .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
            .replace("@CERT@", &tls.cert().display().to_string())
            .replace("@KEY@", &tls.key().display().to_string())
            .replace("@LOCATION@", location)
            .replace("@UPSTREAM@", upstream);
        assert!(!site.contains('@'), "a placeholder left in:\n{site}");
        std::fs::write(dir.path().join("graspd.conf"), site).expect("site file");
        let d = dir.path().display();
        let main = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n\
               client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n  include {d}/graspd.conf;\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, main).expect("nginx.conf");
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let mut nginx = Self {
            child: Some(child),
            port,
            dir,
        };
        nginx.wait_listening().await;
        nginx
    }

    async fn wait_listening(&mut self) {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("nginx exited at start ({status}):\n{}", self.error_log());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not listen within {START_TIMEOUT:?}:\n{}",
                self.error_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// nginx's access log so far (one line per proxied request).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- nginx error log -----\n{}\n----- end of nginx error log -----",
                self.error_log()
            );
        }
    }
}
