//! Numbers, sizes, times and durations for people.

/// `n` with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count with a binary unit: `96.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A part of a whole as a percentage: `25.0%`.
pub fn percent(part: u64, whole: u64) -> String {
    format!("{:.1}%", fraction(part, whole) * 100.0)
}

/// `part / whole` (0 when `whole` is 0).
pub fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A duration in seconds, coarsened to what a person needs: `850ms`, `42.0s`,
/// `3m 12s`, `5h 07m`, `12d 4h`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "never".into();
    }
    if seconds < 1.0 {
        return format!("{:.0}ms", seconds * 1e3);
    }
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let s = seconds as u64;
    match s {
        0..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Unix nanoseconds as a UTC date and time: `2026-11-25 03:31:07.123 UTC`.
pub fn utc(unix_nanos: u64) -> String {
    let secs = unix_nanos / 1_000_000_000;
    let millis = unix_nanos % 1_000_000_000 / 1_000_000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{millis:03} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Unix nanoseconds as the UTC time of day: `03:31:07`.
pub fn time_of_day(unix_nanos: u64) -> String {
    let rem = unix_nanos / 1_000_000_000 % 86_400;
    format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the well-known
/// era-based conversion: 400-year eras of 146,097 days, years starting in March).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Now, in Unix nanoseconds.
pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(bytes(100), "100 bytes");
        assert_eq!(bytes(96 * 1024 * 1024 + 4096), "96.0 MiB");
        assert_eq!(percent(1, 4), "25.0%");
        assert_eq!(percent(1, 0), "0.0%");
        assert_eq!(duration(0.25), "250ms");
        assert_eq!(duration(42.0), "42.0s");
        assert_eq!(duration(192.0), "3m 12s");
        assert_eq!(duration(5.0 * 3600.0 + 7.0 * 60.0), "5h 07m");
        assert_eq!(duration(f64::INFINITY), "never");
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        // 2000-02-29 12:34:56.789
        assert_eq!(utc(951_827_696_789_000_000), "2000-02-29 12:34:56.789 UTC");
        // 2026-11-25 00:00:00
        assert_eq!(
            utc(1_795_564_800_000_000_000),
            "2026-11-25 00:00:00.000 UTC"
        );
        assert_eq!(time_of_day(3_723_000_000_000), "01:02:03");
    }
}
