//! [`BridgeError`]: everything an export or an import can fail with, each message
//! saying what to do.

use std::fmt;

use roda_core::RodaError;

/// `std::result::Result<T, BridgeError>`.
pub type Result<T> = std::result::Result<T, BridgeError>;

/// Why an export or an import stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum BridgeError {
    /// The local journal failed (open, append, read).
    Store(RodaError),
    /// The NATS server could not be reached or refused a request that retrying cannot fix.
    Nats {
        /// What the bridge was doing.
        what: String,
        /// The client's error.
        detail: String,
    },
    /// The options, the stream's configuration or the journal do not fit together.
    Config(String),
    /// The subject carries records of another shape, byte order or journal than the local one.
    Mismatch {
        /// The field that differs (`record_size`, `record_align`, `schema`, `byte_order`,
        /// `journal_id`).
        field: &'static str,
        /// The local value.
        local: String,
        /// The value on the subject.
        remote: String,
    },
    /// The importer found records missing between the local journal and the stream.
    Gap {
        /// The next sequence the local journal needs.
        expected: u64,
        /// The first sequence the stream offers.
        found: u64,
    },
    /// The exporter fell behind a segmented journal's retention: records were recycled
    /// before they were exported.
    Lagged {
        /// The first record lost.
        from: u64,
        /// How many records are lost.
        missed: u64,
    },
    /// A message on the subject is not a Roda batch, or is inconsistent.
    Malformed(String),
    /// The subject was changed behind the exporter's back (another exporter, or a stored
    /// batch that differs from the one this exporter sent with the same id).
    Conflict(String),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Store(e) => write!(f, "local journal: {e}"),
            BridgeError::Nats { what, detail } => write!(
                f,
                "NATS: {what} failed: {detail}; check that the server runs with JetStream \
                 enabled (nats-server -js), its address and the credentials"
            ),
            BridgeError::Config(msg) => f.write_str(msg),
            BridgeError::Mismatch {
                field,
                local,
                remote,
            } => write!(
                f,
                "the subject's records differ from the local journal's in {field}: local \
                 {local}, subject {remote}; use another subject (or journal) or the matching \
                 record type"
            ),
            BridgeError::Gap { expected, found } => write!(
                f,
                "records {expected}..{found} are missing: the local journal needs record \
                 {expected} next but the stream's next batch starts at {found} (the stream \
                 discarded them under its limits, or the exporter skipped lagged records); \
                 import into a new journal, or raise the stream's limits and export again"
            ),
            BridgeError::Lagged { from, missed } => write!(
                f,
                "{missed} records from sequence {from} were recycled by the journal's \
                 retention before they were exported; keep more segments, or pass \
                 --skip-lagged (skip_lagged) to continue with the oldest retained record"
            ),
            BridgeError::Malformed(msg) => write!(f, "not a Roda batch: {msg}"),
            BridgeError::Conflict(msg) => write!(
                f,
                "{msg}; only one exporter may write a subject: stop the other one and restart"
            ),
        }
    }
}

impl std::error::Error for BridgeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BridgeError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RodaError> for BridgeError {
    fn from(e: RodaError) -> Self {
        BridgeError::Store(e)
    }
}

pub(crate) fn nats(what: impl Into<String>, detail: impl fmt::Display) -> BridgeError {
    BridgeError::Nats {
        what: what.into(),
        detail: detail.to_string(),
    }
}
