//! Connecting to NATS and the JetStream stream a bridge uses.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::error::{nats, BridgeError, Result};
use crate::format::BatchHeader;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Server URL(s), comma-separated (`nats://host:4222`, `tls://...`).
    pub url: String,
    /// A `.creds` file (JWT and nkey seed).
    pub creds: Option<PathBuf>,
    /// PEM root certificates to trust for TLS.
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate and key for mutual TLS.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Refuse to connect without TLS.
    pub require_tls: bool,
}

impl Connection {
    /// A plain connection to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Connection {
            url: url.into(),
            creds: None,
            tls_ca: None,
            tls_client: None,
            require_tls: false,
        }
    }

    pub(crate) async fn connect(&self, name: &str) -> Result<async_nats::Client> {
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            // Reconnect forever, at most every second: a server restart costs about that.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((50 * attempts as u64).min(1000))
            });
        if let Some(creds) = &self.creds {
            options = options.credentials_file(creds).await.map_err(|e| {
                BridgeError::Config(format!(
                    "cannot read the credentials file {}: {e}",
                    creds.display()
                ))
            })?;
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls_client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.require_tls {
            options = options.require_tls(true);
        }
        let servers: Vec<&str> = self
            .url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        options
            .connect(servers)
            .await
            .map_err(|e| nats(format!("connecting to {}", self.url), e))
    }
}

/// How the exporter creates a missing stream.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// JetStream's deduplication window: a batch resent within it is stored once.
    pub duplicate_window: Duration,
    /// Replicas (1 on a single server; 3 on a three-node cluster).
    pub replicas: usize,
    /// Bytes the stream keeps before discarding its oldest messages (-1: unlimited).
    pub max_bytes: i64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            duplicate_window: Duration::from_secs(120),
            replicas: 1,
            max_bytes: -1,
        }
    }
}

/// Checks that an existing stream suits a bridge: limits retention (interest or work
/// queue retention would delete batches once a consumer acks them, so a later import
/// or a re-import would find holes), and a duplicate window.
pub(crate) fn check_config(config: &stream::Config) -> Result<()> {
    if config.retention != stream::RetentionPolicy::Limits {
        return Err(BridgeError::Config(format!(
            "stream {} uses {:?} retention; a bridge needs limits retention (messages stay \
             until the stream's limits discard them): recreate the stream with \
             retention=limits",
            config.name, config.retention
        )));
    }
    if config.duplicate_window.is_zero() {
        return Err(BridgeError::Config(format!(
            "stream {} has no duplicate window; set one (e.g. 2m) so resent batches are \
             stored once",
            config.name
        )));
    }
    Ok(())
}

/// Gets the stream, creating it (file storage, limits retention) when `create` is set.
pub(crate) async fn stream(
    js: &jetstream::Context,
    name: &str,
    subject: &str,
    create: Option<&StreamSettings>,
) -> Result<stream::Stream> {
    match js.get_stream(name).await {
        Ok(s) => {
            // `get_stream` just read the stream's information: no second request.
            check_config(&s.cached_info().config)?;
            Ok(s)
        }
        Err(e) => {
            let missing = matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref js_err)
                    if js_err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            );
            if !missing {
                return Err(nats(format!("opening stream {name}"), e));
            }
            let Some(settings) = create else {
                return Err(BridgeError::Config(format!(
                    "stream {name} does not exist: export into it first (the exporter \
                     creates it), or create it with limits retention"
                )));
            };
            let config = stream::Config {
                name: name.to_owned(),
                subjects: vec![subject.to_owned()],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                duplicate_window: settings.duplicate_window,
                num_replicas: settings.replicas,
                max_bytes: settings.max_bytes,
                // Lets a single-replica stream answer "the last batch" as the raw
                // message (see `last_batch`) instead of base64 inside JSON.
                allow_direct: true,
                ..Default::default()
            };
            js.create_stream(config)
                .await
                .map_err(|e| nats(format!("creating stream {name}"), e))
        }
    }
}

/// The last batch on `subject`: its header and stream sequence; `None` when the subject
/// holds no message.
///
/// A stream of one replica that allows direct gets answers with the raw message (a
/// batch of up to a MiB costs a copy); any other stream is asked through its leader's
/// API, which wraps the payload in base64 inside JSON (several times the bytes, 3-60
/// ms for a MiB). Direct gets are not used with replicas: a follower may answer, and
/// a follower that is behind would name an older batch as the last.
pub(crate) async fn last_batch(
    stream: &stream::Stream,
    subject: &str,
) -> Result<Option<(BatchHeader, u64)>> {
    let config = &stream.cached_info().config;
    let what = || format!("reading the last message of {subject}");
    let found = if config.allow_direct && config.num_replicas <= 1 {
        match stream.direct_get_last_for_subject(subject).await {
            Ok(msg) => Some(msg),
            Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => None,
            Err(e) => return Err(nats(what(), e)),
        }
    } else {
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(msg) => Some(msg),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => None,
            Err(e) => return Err(nats(what(), e)),
        }
    };
    found
        .map(|msg| {
            BatchHeader::from_headers(Some(&msg.headers), msg.payload.len())
                .map(|header| (header, msg.sequence))
        })
        .transpose()
}
