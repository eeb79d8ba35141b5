//! RFC 3339 date-times that keep their original text, so a parsed message prints back
//! byte for byte.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An RFC 3339 `date-time` (e.g. `2021-09-30T16:25:24Z` or `2021-09-30T18:25:24.123+02:00`)
/// with its text as written and the instant it denotes.
#[derive(Clone, Debug)]
pub struct TimeStamp {
    text: String,
    /// Nanoseconds since the Unix epoch (negative before 1970).
    nanos: i128,
}

impl TimeStamp {
    /// Parses an RFC 3339 `date-time`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<TimeStamp, String> {
        let nanos = parse_rfc3339(text)?;
        Ok(TimeStamp {
            text: text.to_owned(),
            nanos,
        })
    }

    /// A time stamp for `time`, written in UTC with second precision (`...Z`); sub-second
    /// parts are dropped.
    pub fn from_system_time(time: SystemTime) -> TimeStamp {
        let secs = match time.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64) - i64::from(e.duration().subsec_nanos() > 0),
        };
        TimeStamp::from_unix(secs)
    }

    /// The current time, in UTC with second precision.
    pub fn now() -> TimeStamp {
        TimeStamp::from_system_time(SystemTime::now())
    }

    /// A time stamp `secs` after the Unix epoch, in UTC.
    pub fn from_unix(secs: i64) -> TimeStamp {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let text = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        );
        TimeStamp {
            text,
            nanos: i128::from(secs) * 1_000_000_000,
        }
    }

    /// This time plus `d`, in UTC with second precision.
    pub fn plus(&self, d: Duration) -> TimeStamp {
        TimeStamp::from_unix(self.unix_seconds() + d.as_secs() as i64)
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub fn unix_seconds(&self) -> i64 {
        self.nanos.div_euclid(1_000_000_000) as i64
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        self.nanos
    }
}

impl PartialEq for TimeStamp {
    /// Same instant (the texts may differ, e.g. in their offsets).
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for TimeStamp {}

impl PartialOrd for TimeStamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TimeStamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl fmt::Display for TimeStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for TimeStamp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TimeStamp::parse(s)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// RFC 3339 §5.6 `date-time`; "T" and "Z" in either case (RFC 3339 §5.6 note, RFC 5234
/// strings are case-insensitive). Returns nanoseconds since the epoch.
fn parse_rfc3339(s: &str) -> Result<i128, String> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize, what: &str| -> Result<u32, String> {
        let part = b
            .get(from..from + len)
            .ok_or_else(|| format!("too short: missing {what}"))?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(format!("{what} must be {len} digits"));
        }
        Ok(part.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0')))
    };
    let expect = |at: usize, c: &[u8], what: &str| -> Result<(), String> {
        match b.get(at) {
            Some(x) if c.contains(x) => Ok(()),
            _ => Err(format!("expected {what} at offset {at}")),
        }
    };
    let year = i64::from(num(0, 4, "year")?);
    expect(4, b"-", "'-'")?;
    let month = num(5, 2, "month")?;
    expect(7, b"-", "'-'")?;
    let day = num(8, 2, "day")?;
    expect(10, b"Tt", "'T'")?;
    let hour = num(11, 2, "hour")?;
    expect(13, b":", "':'")?;
    let minute = num(14, 2, "minute")?;
    expect(16, b":", "':'")?;
    let second = num(17, 2, "second")?;
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} out of range"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(format!("day {day} out of range for {year:04}-{month:02}"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time out of range".into());
    }
    let mut i = 19;
    let mut frac_nanos: i128 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err("empty fraction of a second".into());
        }
        let digits = &s[start..i];
        let mut n: i128 = 0;
        for (k, c) in digits.bytes().enumerate() {
            if k < 9 {
                n = n * 10 + i128::from(c - b'0');
            }
        }
        for _ in digits.len()..9 {
            n *= 10;
        }
        frac_nanos = n;
    }
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(i + 1, 2, "offset hour")?;
            expect(i + 3, b":", "':' in the offset")?;
            let om = num(i + 4, 2, "offset minute")?;
            if oh > 23 || om > 59 {
                return Err("offset out of range".into());
            }
            i += 6;
            let o = i64::from(oh * 3600 + om * 60);
            if sign == b'+' { o } else { -o }
        }
        _ => return Err("missing time offset ('Z' or +hh:mm)".into()),
    };
    if i != b.len() {
        return Err(format!("unexpected {:?} after the date-time", &s[i..]));
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    Ok(i128::from(secs) * 1_000_000_000 + frac_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339() {
        let t = TimeStamp::parse("2021-09-30T16:25:24Z").unwrap();
        assert_eq!(t.unix_seconds(), 1_633_019_124);
        let u = TimeStamp::parse("2021-09-30T18:25:24.000+02:00").unwrap();
        assert_eq!(t, u, "same instant");
        assert_eq!(u.as_str(), "2021-09-30T18:25:24.000+02:00", "text kept");
        let f = TimeStamp::parse("1970-01-01t00:00:00.5z").unwrap();
        assert_eq!(f.unix_nanos(), 500_000_000);
        assert_eq!(
            TimeStamp::parse("2000-02-29T00:00:00Z")
                .unwrap()
                .unix_seconds(),
            951_782_400
        );
        assert_eq!(
            TimeStamp::parse("1969-12-31T23:59:59Z")
                .unwrap()
                .unix_seconds(),
            -1
        );
    }

    #[test]
    fn rejects_bad_date_times() {
        for bad in [
            "2021-09-30 16:25:24Z",
            "2021-09-30T16:25:24",
            "2021-13-01T00:00:00Z",
            "2021-02-29T00:00:00Z",
            "2021-04-31T00:00:00Z",
            "2021-01-01T24:00:00Z",
            "2021-01-01T00:60:00Z",
            "2021-01-01T00:00:00.Z",
            "2021-01-01T00:00:00+1:00",
            "2021-01-01T00:00:00Zjunk",
            "21-01-01T00:00:00Z",
            "",
        ] {
            assert!(TimeStamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips_unix_seconds() {
        for secs in [
            0i64,
            1,
            86_399,
            951_782_400,
            1_700_000_000,
            4_102_444_800,
            -86_401,
        ] {
            let t = TimeStamp::from_unix(secs);
            assert_eq!(
                TimeStamp::parse(t.as_str()).unwrap().unix_seconds(),
                secs,
                "{t}"
            );
        }
    }
}
