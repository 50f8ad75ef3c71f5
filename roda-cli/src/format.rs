//! Decoding a record's bytes for display: the tool does not know the record type, so
//! the user says how to read it (`--format`).

/// How to show a record's bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Format {
    /// Every byte in hex, in groups of 8.
    Hex,
    /// Every whole 8-byte word as an unsigned integer (trailing bytes in hex).
    U64,
    /// Every whole 8-byte word as a float (trailing bytes in hex).
    F64,
    /// The given fields, read back to back from the first byte (the rest is not shown).
    Fields(Vec<Field>),
}

/// One field of `fields=...`: a native-endian number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "u8" => Field::U8,
            "u16" => Field::U16,
            "u32" => Field::U32,
            "u64" => Field::U64,
            "i8" => Field::I8,
            "i16" => Field::I16,
            "i32" => Field::I32,
            "i64" => Field::I64,
            "f32" => Field::F32,
            "f64" => Field::F64,
            _ => return None,
        })
    }

    /// Bytes the field takes.
    pub fn size(self) -> usize {
        match self {
            Field::U8 | Field::I8 => 1,
            Field::U16 | Field::I16 => 2,
            Field::U32 | Field::I32 | Field::F32 => 4,
            Field::U64 | Field::I64 | Field::F64 => 8,
        }
    }

    fn decode(self, b: &[u8]) -> Value {
        fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
            b[..N].try_into().expect("field size checked")
        }
        match self {
            Field::U8 => Value::Unsigned(u64::from(b[0])),
            Field::U16 => Value::Unsigned(u64::from(u16::from_ne_bytes(arr(b)))),
            Field::U32 => Value::Unsigned(u64::from(u32::from_ne_bytes(arr(b)))),
            Field::U64 => Value::Unsigned(u64::from_ne_bytes(arr(b))),
            Field::I8 => Value::Signed(i64::from(b[0] as i8)),
            Field::I16 => Value::Signed(i64::from(i16::from_ne_bytes(arr(b)))),
            Field::I32 => Value::Signed(i64::from(i32::from_ne_bytes(arr(b)))),
            Field::I64 => Value::Signed(i64::from_ne_bytes(arr(b))),
            Field::F32 => Value::Float(f64::from(f32::from_ne_bytes(arr(b)))),
            Field::F64 => Value::Float(f64::from_ne_bytes(arr(b))),
        }
    }
}

/// One decoded value; in JSON a number (`null` for a float that is not finite) or, for
/// hex, a string.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    /// Bytes as lowercase hex, groups of 8 bytes separated by spaces.
    Hex(String),
}

impl Value {
    /// The value as text for people.
    pub fn human(&self) -> String {
        match self {
            Value::Unsigned(v) => v.to_string(),
            Value::Signed(v) => v.to_string(),
            Value::Float(v) => format!("{v:?}"),
            Value::Hex(s) => s.clone(),
        }
    }
}

impl Format {
    /// Parses `hex`, `u64`, `f64` or `fields=TYPE,TYPE,...`.
    pub fn parse(text: &str) -> Result<Format, String> {
        match text {
            "hex" => return Ok(Format::Hex),
            "u64" => return Ok(Format::U64),
            "f64" => return Ok(Format::F64),
            _ => {}
        }
        let list = text
            .strip_prefix("fields=")
            .ok_or_else(|| "not one of hex, u64, f64, fields=TYPE,TYPE,...".to_owned())?;
        let fields = list
            .split(',')
            .map(|name| {
                Field::parse(name.trim()).ok_or_else(|| {
                    format!(
                        "unknown field type '{name}' (use u8 u16 u32 u64 i8 i16 i32 i64 f32 f64)"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Format::Fields(fields))
    }

    /// The format used when none is given: words when the record is made of them.
    pub fn default_for(record_size: u64) -> Format {
        if record_size.is_multiple_of(8) {
            Format::U64
        } else {
            Format::Hex
        }
    }

    /// Checks that the format fits a record of `record_size` bytes.
    pub fn check(&self, record_size: u64) -> Result<(), String> {
        if let Format::Fields(fields) = self {
            let need: usize = fields.iter().map(|f| f.size()).sum();
            if need as u64 > record_size {
                return Err(format!(
                    "--format: the fields take {need} bytes but a record has only {record_size}"
                ));
            }
        }
        Ok(())
    }

    /// Decodes one record's bytes.
    pub fn decode(&self, bytes: &[u8]) -> Vec<Value> {
        match self {
            Format::Hex => vec![Value::Hex(hex(bytes))],
            Format::U64 | Format::F64 => {
                let mut chunks = bytes.chunks_exact(8);
                let mut out: Vec<Value> = (&mut chunks)
                    .map(|c| {
                        let word: [u8; 8] = c.try_into().expect("8-byte chunk");
                        if *self == Format::U64 {
                            Value::Unsigned(u64::from_ne_bytes(word))
                        } else {
                            Value::Float(f64::from_ne_bytes(word))
                        }
                    })
                    .collect();
                if !chunks.remainder().is_empty() {
                    out.push(Value::Hex(hex(chunks.remainder())));
                }
                out
            }
            Format::Fields(fields) => {
                let mut at = 0;
                fields
                    .iter()
                    .map(|f| {
                        let v = f.decode(&bytes[at..]);
                        at += f.size();
                        v
                    })
                    .collect()
            }
        }
    }
}

/// Bytes as lowercase hex, a space between groups of 8.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2 + bytes.len() / 8);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 8 == 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Values for people: right-aligned in columns of at least 12 characters.
pub fn human_values(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| format!("{:>12}", v.human()))
        .collect::<Vec<_>>()
        .join("  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&7u64.to_ne_bytes());
        b.extend_from_slice(&100.25f64.to_ne_bytes());
        b.extend_from_slice(&(-3i32).to_ne_bytes());
        b.extend_from_slice(&[0xab, 0xcd, 0, 1]);
        b
    }

    #[test]
    fn formats() {
        let b = record();
        assert_eq!(
            Format::parse("fields=u64,f64,i32").unwrap().decode(&b),
            vec![Value::Unsigned(7), Value::Float(100.25), Value::Signed(-3)]
        );
        let words = Format::U64.decode(&b);
        assert_eq!(words[0], Value::Unsigned(7));
        assert_eq!(words.len(), 3);
        assert_eq!(Format::F64.decode(&b)[1], Value::Float(100.25));
        assert_eq!(
            Format::Hex.decode(&b[..9]),
            vec![Value::Hex("0700000000000000 00".into())]
        );
        assert_eq!(Format::U64.decode(&b[..10])[1], Value::Hex("0000".into()));
        assert!(Format::parse("fields=u64,x").is_err());
        assert!(Format::parse("u32").is_err());
        assert!(Format::parse("fields=u64,u64,u64,u64")
            .unwrap()
            .check(24)
            .is_err());
        assert!(Format::parse("fields=u64,f64").unwrap().check(24).is_ok());
        assert_eq!(Format::default_for(24), Format::U64);
        assert_eq!(Format::default_for(3), Format::Hex);
    }

    #[test]
    fn rendering() {
        let v = vec![
            Value::Unsigned(1),
            Value::Float(f64::NAN),
            Value::Hex("ab".into()),
        ];
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"[1,null,"ab"]"#);
        assert_eq!(
            serde_json::to_string(&[Value::Signed(-3), Value::Float(2.0)]).unwrap(),
            "[-3,2.0]"
        );
        assert_eq!(Value::Float(2.0).human(), "2.0");
        assert_eq!(human_values(&v[..1]), format!("{:>12}", 1));
    }
}
