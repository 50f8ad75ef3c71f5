//! The message format: one NATS message carries a batch of consecutive records of one
//! journal, back to back in the journal's byte order, described by headers.
//!
//! | header | value |
//! |---|---|
//! | `Nats-Msg-Id` | `{journal id as 16 hex digits}:{first sequence}` (JetStream dedupe) |
//! | `Roda-Journal-Id` | the journal id, 16 hex digits |
//! | `Roda-First-Seq` | the sequence of the batch's first record (decimal) |
//! | `Roda-Count` | how many records the payload holds (decimal) |
//! | `Roda-Record-Size` | bytes per record (decimal); payload length = count × size |
//! | `Roda-Record-Align` | the record type's alignment (decimal) |
//! | `Roda-Schema` | the journal's schema id (decimal) |
//! | `Roda-Byte-Order` | `le` or `be` |

use async_nats::HeaderMap;

use crate::error::{BridgeError, Result};

/// Header carrying the journal id.
pub const JOURNAL_ID: &str = "Roda-Journal-Id";
/// Header carrying the first record's sequence.
pub const FIRST_SEQ: &str = "Roda-First-Seq";
/// Header carrying the number of records.
pub const COUNT: &str = "Roda-Count";
/// Header carrying the record size in bytes.
pub const RECORD_SIZE: &str = "Roda-Record-Size";
/// Header carrying the record alignment.
pub const RECORD_ALIGN: &str = "Roda-Record-Align";
/// Header carrying the schema id.
pub const SCHEMA: &str = "Roda-Schema";
/// Header carrying the byte order (`le` / `be`).
pub const BYTE_ORDER: &str = "Roda-Byte-Order";
/// JetStream's message id header (deduplication).
pub const MSG_ID: &str = "Nats-Msg-Id";

/// Room kept for headers when a batch is sized against the server's maximum payload.
pub(crate) const HEADER_ROOM: usize = 1024;

/// The shape of a journal's records: what must match between a source and a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Bytes per record.
    pub record_size: u64,
    /// The record type's alignment.
    pub record_align: u64,
    /// The journal's schema id (0 when unused).
    pub schema: u64,
    /// Whether records are little-endian (the byte order of the machine that wrote them).
    pub little_endian: bool,
}

impl Shape {
    /// The shape of records of type `T` on this machine, with `schema`.
    pub fn of<T>(schema: u64) -> Shape {
        Shape {
            record_size: std::mem::size_of::<T>() as u64,
            record_align: std::mem::align_of::<T>() as u64,
            schema,
            little_endian: cfg!(target_endian = "little"),
        }
    }

    /// Checks that `remote` (a batch's shape) equals this local shape.
    pub fn check(&self, remote: &Shape) -> Result<()> {
        let fields: [(&'static str, String, String); 4] = [
            (
                "record_size",
                self.record_size.to_string(),
                remote.record_size.to_string(),
            ),
            (
                "record_align",
                self.record_align.to_string(),
                remote.record_align.to_string(),
            ),
            ("schema", self.schema.to_string(), remote.schema.to_string()),
            (
                "byte_order",
                order(self.little_endian).into(),
                order(remote.little_endian).into(),
            ),
        ];
        for (field, local, remote) in fields {
            if local != remote {
                return Err(BridgeError::Mismatch {
                    field,
                    local,
                    remote,
                });
            }
        }
        Ok(())
    }
}

fn order(little: bool) -> &'static str {
    if little {
        "le"
    } else {
        "be"
    }
}

/// What a batch's headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// The source journal's id.
    pub journal_id: u64,
    /// Sequence of the first record.
    pub first: u64,
    /// Number of records.
    pub count: u64,
    /// The records' shape.
    pub shape: Shape,
}

/// The message id of the batch of journal `journal_id` starting at `first`.
pub fn message_id(journal_id: u64, first: u64) -> String {
    format!("{journal_id:016x}:{first}")
}

impl BatchHeader {
    /// One past the last record's sequence.
    pub fn end(&self) -> u64 {
        self.first + self.count
    }

    /// This batch's `Nats-Msg-Id`.
    pub fn message_id(&self) -> String {
        message_id(self.journal_id, self.first)
    }

    /// The headers of this batch (without the publish expectations).
    pub fn to_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(MSG_ID, self.message_id().as_str());
        h.insert(JOURNAL_ID, format!("{:016x}", self.journal_id).as_str());
        h.insert(FIRST_SEQ, self.first.to_string().as_str());
        h.insert(COUNT, self.count.to_string().as_str());
        h.insert(RECORD_SIZE, self.shape.record_size.to_string().as_str());
        h.insert(RECORD_ALIGN, self.shape.record_align.to_string().as_str());
        h.insert(SCHEMA, self.shape.schema.to_string().as_str());
        h.insert(BYTE_ORDER, order(self.shape.little_endian));
        h
    }

    /// Reads a batch's headers and checks them against the payload length.
    pub fn from_headers(headers: Option<&HeaderMap>, payload_len: usize) -> Result<BatchHeader> {
        let h =
            headers.ok_or_else(|| BridgeError::Malformed("the message has no headers".into()))?;
        // Borrowed: reading a batch's headers allocates nothing unless they are wrong.
        let text = |name: &str| -> Result<&str> {
            h.get(name)
                .map(|v| v.as_str())
                .ok_or_else(|| BridgeError::Malformed(format!("header {name} is missing")))
        };
        let num = |name: &str| -> Result<u64> {
            let v = text(name)?;
            v.parse().map_err(|_| {
                BridgeError::Malformed(format!("header {name} is not a number: {v:?}"))
            })
        };
        let id_text = text(JOURNAL_ID)?;
        let journal_id = u64::from_str_radix(id_text, 16).map_err(|_| {
            BridgeError::Malformed(format!(
                "header {JOURNAL_ID} is not hexadecimal: {id_text:?}"
            ))
        })?;
        let little_endian = match text(BYTE_ORDER)? {
            "le" => true,
            "be" => false,
            other => {
                return Err(BridgeError::Malformed(format!(
                    "header {BYTE_ORDER} is {other:?}, expected le or be"
                )))
            }
        };
        let header = BatchHeader {
            journal_id,
            first: num(FIRST_SEQ)?,
            count: num(COUNT)?,
            shape: Shape {
                record_size: num(RECORD_SIZE)?,
                record_align: num(RECORD_ALIGN)?,
                schema: num(SCHEMA)?,
                little_endian,
            },
        };
        let expected = header
            .count
            .checked_mul(header.shape.record_size)
            .filter(|&n| n == payload_len as u64);
        if header.shape.record_size == 0 || header.count == 0 || expected.is_none() {
            return Err(BridgeError::Malformed(format!(
                "{} records of {} bytes do not match a payload of {payload_len} bytes",
                header.count, header.shape.record_size
            )));
        }
        if header.first.checked_add(header.count).is_none() {
            return Err(BridgeError::Malformed(
                "the batch's sequences overflow".into(),
            ));
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let b = BatchHeader {
            journal_id: 0xabc,
            first: 42,
            count: 3,
            shape: Shape::of::<[u64; 3]>(7),
        };
        let h = b.to_headers();
        assert_eq!(h.get(MSG_ID).unwrap().as_str(), "0000000000000abc:42");
        assert_eq!(BatchHeader::from_headers(Some(&h), 72).unwrap(), b);
        assert!(matches!(
            BatchHeader::from_headers(Some(&h), 71),
            Err(BridgeError::Malformed(_))
        ));
        assert!(BatchHeader::from_headers(None, 72).is_err());
    }

    #[test]
    fn shape_mismatch_names_the_field() {
        let local = Shape::of::<u64>(0);
        let mut remote = local;
        remote.little_endian = !remote.little_endian;
        match local.check(&remote) {
            Err(BridgeError::Mismatch { field, .. }) => assert_eq!(field, "byte_order"),
            other => panic!("{other:?}"),
        }
        assert!(local.check(&local).is_ok());
    }
}
