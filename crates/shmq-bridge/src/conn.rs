//! Connecting to NATS (address, credentials, TLS) and making sure the stream exists.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::jetstream;

use crate::{Backoff, BridgeError};

/// TLS settings; all off by default.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// Refuse a connection that is not TLS.
    pub require: bool,
    /// Extra root certificates (PEM) to trust the server by.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Where and how to connect.
///
/// # Examples
///
/// ```
/// let c = shmq_bridge::Connection::default();
/// assert_eq!(c.server, "nats://127.0.0.1:4222");
/// ```
#[derive(Debug, Clone)]
pub struct Connection {
    /// Server address(es), comma-separated (`nats://host:port`, `tls://host:port`).
    pub server: String,
    /// A NATS credentials file (`.creds`: user JWT and nkey seed).
    pub credentials: Option<PathBuf>,
    /// TLS settings.
    pub tls: Tls,
    /// How long the first connection may take, retries included, before the bridge gives up
    /// with [`BridgeError::Connect`]. After it, lost connections are retried for ever.
    pub connect_timeout: Duration,
}

impl Default for Connection {
    /// `nats://127.0.0.1:4222`, no credentials, no TLS, 10 s to connect.
    fn default() -> Self {
        Connection {
            server: "nats://127.0.0.1:4222".into(),
            credentials: None,
            tls: Tls::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Connects, retrying with backoff until [`Connection::connect_timeout`]; after that first
/// connection the client reconnects by itself for ever.
///
/// # Errors
///
/// [`BridgeError::Connect`] naming the server and the last reason.
pub async fn connect(c: &Connection) -> Result<async_nats::Client, BridgeError> {
    let fail = |reason: String| BridgeError::Connect {
        server: c.server.clone(),
        reason,
    };
    let deadline = Instant::now() + c.connect_timeout;
    let mut backoff = Backoff::new();
    loop {
        let mut opts = async_nats::ConnectOptions::new()
            .name("shmq-bridge")
            .connection_timeout(
                c.connect_timeout
                    .clamp(Duration::from_millis(100), Duration::from_secs(5)),
            )
            .max_reconnects(None::<usize>)
            .require_tls(c.tls.require);
        if let Some(path) = &c.credentials {
            opts = opts
                .credentials_file(path)
                .await
                .map_err(|e| fail(format!("credentials file {}: {e}", path.display())))?;
        }
        if let Some(ca) = &c.tls.ca {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &c.tls.client_cert {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        match opts.connect(c.server.as_str()).await {
            Ok(client) => return Ok(client),
            Err(e) => {
                let kind = e.kind();
                let permanent = matches!(
                    kind,
                    async_nats::ConnectErrorKind::ServerParse
                        | async_nats::ConnectErrorKind::AuthorizationViolation
                        | async_nats::ConnectErrorKind::Authentication
                );
                if permanent || Instant::now() >= deadline {
                    return Err(fail(e.to_string()));
                }
            }
        }
        backoff.wait().await;
    }
}

/// A stream name made from a subject (stream names may not hold `.`, `*`, `>` or spaces):
/// `SHMQ_` and the subject with those replaced by `_`.
///
/// # Examples
///
/// ```
/// assert_eq!(shmq_bridge::stream_name_for("jobs.eu.>"), "SHMQ_jobs_eu__");
/// ```
pub fn stream_name_for(subject: &str) -> String {
    let body: String = subject
        .chars()
        .map(|c| match c {
            '.' | '*' | '>' | ' ' | '\t' | '/' | '\\' => '_',
            c => c,
        })
        .collect();
    format!("SHMQ_{body}")
}

/// Gets the stream `name`, or creates it on `subject` (file storage, duplicate window
/// `window`). Retries with backoff while JetStream does not answer (a server that restarts).
///
/// # Errors
///
/// [`BridgeError::JetStream`] when the server answers with an error for good.
pub async fn ensure_stream(
    js: &jetstream::Context,
    name: &str,
    subject: &str,
    window: Duration,
) -> Result<jetstream::stream::Stream, BridgeError> {
    let cfg = jetstream::stream::Config {
        name: name.to_owned(),
        subjects: vec![subject.to_owned()],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: window,
        ..Default::default()
    };
    let mut backoff = Backoff::new();
    let mut tries = 0;
    loop {
        match js.get_or_create_stream(cfg.clone()).await {
            Ok(s) => return Ok(s),
            Err(e) => {
                tries += 1;
                if tries >= 40 {
                    return Err(BridgeError::JetStream(format!(
                        "stream {name} on {subject}: {e}"
                    )));
                }
            }
        }
        backoff.wait().await;
    }
}
