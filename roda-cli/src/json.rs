//! Hand-written JSON output: flat objects of strings, numbers, booleans and nulls are
//! all the tool prints, so a serializer would be a dependency for nothing.

/// `s` as a JSON string literal, quoted and escaped.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `v` as a JSON number; `null` when it is not finite (JSON has no NaN or infinity).
pub fn number(v: f64) -> String {
    if v.is_finite() {
        // `{:?}` keeps a decimal point or exponent and round-trips exactly.
        format!("{v:?}")
    } else {
        "null".into()
    }
}

/// A JSON object built field by field, in order.
#[derive(Default)]
pub struct Object {
    body: String,
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Object::default()
    }

    /// Adds `key` with an already-encoded JSON `value`.
    pub fn raw(mut self, key: &str, value: impl AsRef<str>) -> Self {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        self.body.push_str(&string(key));
        self.body.push(':');
        self.body.push_str(value.as_ref());
        self
    }

    /// Adds a string.
    pub fn str(self, key: &str, value: &str) -> Self {
        self.raw(key, string(value))
    }

    /// Adds an unsigned integer.
    pub fn u64(self, key: &str, value: u64) -> Self {
        self.raw(key, value.to_string())
    }

    /// Adds a float (`null` if not finite).
    pub fn f64(self, key: &str, value: f64) -> Self {
        self.raw(key, number(value))
    }

    /// Adds a float or `null`.
    pub fn opt_f64(self, key: &str, value: Option<f64>) -> Self {
        self.raw(key, value.map_or_else(|| "null".into(), number))
    }

    /// Adds a boolean.
    pub fn bool(self, key: &str, value: bool) -> Self {
        self.raw(key, if value { "true" } else { "false" })
    }

    /// The finished object.
    pub fn finish(self) -> String {
        format!("{{{}}}", self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(string("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#);
        assert_eq!(number(1.0), "1.0");
        assert_eq!(number(f64::INFINITY), "null");
        let o = Object::new()
            .str("path", "/tmp/x y")
            .u64("n", 3)
            .bool("ok", true)
            .opt_f64("eta", None)
            .finish();
        assert_eq!(o, r#"{"path":"/tmp/x y","n":3,"ok":true,"eta":null}"#);
    }
}
