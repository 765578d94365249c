//! A self-signed certificate for `127.0.0.1`, made by the `openssl` CLI for one test,
//! and the TLS client that trusts exactly it (for `wss://` through a TLS proxy; git
//! gets the same file as `http.sslCAInfo`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};

/// The certificate, its key, and a client config trusting it.
#[derive(Debug)]
pub struct TestTls {
    dir: TempDir,
    config: Arc<ClientConfig>,
}

/// The `openssl req` configuration: an end-entity (not CA) certificate for the
/// address 127.0.0.1, which rustls and git both accept as their only trust anchor.
const OPENSSL_CONFIG: &str = "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n\
    [dn]\nCN = 127.0.0.1\n\
    [ext]\nsubjectAltName = IP:127.0.0.1\nbasicConstraints = critical,CA:FALSE\n\
    keyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = serverAuth\n";

impl TestTls {
    /// Makes a fresh key and certificate (valid two days) in a temp dir.
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("grasp-tls-")
            .tempdir()
            .expect("temp tls dir");
        let conf = dir.path().join("openssl.cnf");
        std::fs::write(&conf, OPENSSL_CONFIG).expect("openssl.cnf");
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:prime256v1")
            .args(["-nodes", "-days", "2", "-config"])
            .arg(&conf)
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .output()
            .expect("run openssl (scripts/test installs it)");
        assert!(
            out.status.success(),
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cert = CertificateDer::from_pem_file(dir.path().join("cert.pem")).expect("cert");
        let mut roots = RootCertStore::empty();
        roots.add(cert).expect("trust the test certificate");
        let config =
            ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        Self {
            dir,
            config: Arc::new(config),
        }
    }

    /// The certificate (PEM): `ssl_certificate` for nginx, `http.sslCAInfo` for git.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The private key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// The directory holding both.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A TLS connection to the `host:port` of `url` (`wss://127.0.0.1:<port>/…`).
    pub async fn connect(&self, url: &str) -> TlsStream<TcpStream> {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let name = ServerName::try_from(host.to_owned()).expect("server name");
        let tcp = TcpStream::connect(authority)
            .await
            .unwrap_or_else(|e| panic!("connect {authority}: {e}"));
        TlsConnector::from(Arc::clone(&self.config))
            .connect(name, tcp)
            .await
            .unwrap_or_else(|e| panic!("TLS handshake with {authority}: {e}"))
    }

    /// `GET url` (`https://127.0.0.1:<port>/…`) with extra headers, one request per
    /// connection: the status code and the body (not de-chunked; for small answers).
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let rest = url.strip_prefix("https://").expect("an https:// URL");
        let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let target = if target.is_empty() { "/" } else { target };
        let mut stream = self.connect(url).await;
        let mut head =
            format!("GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .expect("send request");
        let mut answer = Vec::new();
        // A TLS peer that closes without close_notify is an error here; what was read
        // before it counts.
        let _ = stream.read_to_end(&mut answer).await;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status from {url}: {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, b)| b.to_owned());
        (status, body)
    }
}
