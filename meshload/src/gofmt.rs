//! Go-compatible number and duration formatting, so that meshload's text and JSON output match
//! fortio's byte for byte.
//!
//! fortio prints with Go's `fmt` verbs (`%g`, `%.5g`, `%v` of a `time.Duration`) and encodes JSON
//! with `encoding/json`. Rust has none of these, so this module re-implements the few rules that
//! matter, following `strconv.FormatFloat` and `time.Duration.String` in Go's standard library.

use std::time::Duration;

/// Decimal digits of a float: `0.d1d2d3… × 10^dp`, trailing zeros removed.
struct Digits {
    neg: bool,
    digits: Vec<u8>,
    dp: i32,
}

/// Splits Rust's `{:e}` rendering (`-1.2345e-7`) into digits and decimal point position.
fn digits_from_exp(s: &str) -> Digits {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    Digits {
        neg,
        digits,
        dp: exp + 1,
    }
}

/// Non-finite and zero values, printed the way Go prints them.
fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else if v == 0.0 {
        Some(if v.is_sign_negative() { "-0" } else { "0" }.into())
    } else {
        None
    }
}

/// `%e` body with `frac` digits after the point and a signed exponent of at least 2 digits.
fn fmt_e(d: &Digits, frac: usize) -> String {
    let mut out = String::new();
    if d.neg {
        out.push('-');
    }
    out.push(d.digits.first().copied().unwrap_or(b'0') as char);
    if frac > 0 {
        out.push('.');
        for i in 1..=frac {
            out.push(d.digits.get(i).copied().unwrap_or(b'0') as char);
        }
    }
    let exp = if d.digits.is_empty() { 0 } else { d.dp - 1 };
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 {
        out.push('0');
    }
    out.push_str(&a.to_string());
    out
}

/// `%f` body with `frac` digits after the point.
fn fmt_f(d: &Digits, frac: usize) -> String {
    let mut out = String::new();
    if d.neg {
        out.push('-');
    }
    let digit = |i: i32| -> char {
        if i >= 0 {
            d.digits.get(i as usize).copied().unwrap_or(b'0') as char
        } else {
            '0'
        }
    };
    if d.dp > 0 {
        for i in 0..d.dp {
            out.push(digit(i));
        }
    } else {
        out.push('0');
    }
    if frac > 0 {
        out.push('.');
        for i in 0..frac as i32 {
            out.push(digit(d.dp + i));
        }
    }
    out
}

/// Go's `%g` (shortest representation that round-trips).
pub fn g(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let d = digits_from_exp(&format!("{v:e}"));
    let nd = d.digits.len() as i32;
    let exp = d.dp - 1;
    if !(-4..6).contains(&exp) {
        return fmt_e(&d, (nd - 1).max(0) as usize);
    }
    fmt_f(&d, (nd - d.dp).max(0) as usize)
}

/// Go's `%.{prec}g`: `prec` significant digits, trailing zeros removed.
pub fn g_prec(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let prec = prec.max(1);
    let d = digits_from_exp(&format!("{:.*e}", prec - 1, v));
    let nd = d.digits.len() as i32;
    let mut p = prec as i32;
    let mut eprec = p;
    if eprec > nd && nd >= d.dp {
        eprec = nd;
    }
    let exp = d.dp - 1;
    if exp < -4 || exp >= eprec {
        if p > nd {
            p = nd;
        }
        return fmt_e(&d, (p - 1).max(0) as usize);
    }
    if p > d.dp {
        p = nd;
    }
    fmt_f(&d, (p - d.dp).max(0) as usize)
}

/// A float as Go's `encoding/json` writes it: plain decimal between 1e-6 and 1e21, otherwise
/// exponent form with the shortest exponent (`8.583e-7`, `1e+21`).
pub fn json_float(v: f64) -> String {
    if !v.is_finite() {
        // encoding/json refuses these; fortio never produces them. Stay valid JSON.
        return "0".into();
    }
    let a = v.abs();
    if a == 0.0 || (1e-6..1e21).contains(&a) {
        return format!("{v}");
    }
    let s = format!("{v:e}");
    match s.split_once('e') {
        Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
        _ => s,
    }
}

/// Writes `v` with `prec` fractional digits, trailing zeros and a bare point removed, like Go's
/// `fmtFrac` inside `Duration.String`. Returns the integer part left over.
fn frac(out: &mut String, v: u64, prec: u32) -> u64 {
    let mut v = v;
    let mut digits = Vec::new();
    let mut printed = false;
    for _ in 0..prec {
        let digit = v % 10;
        printed = printed || digit != 0;
        if printed {
            digits.push(b'0' + digit as u8);
        }
        v /= 10;
    }
    if printed {
        out.push('.');
        out.extend(digits.iter().rev().map(|&b| b as char));
    }
    v
}

/// Go's `time.Duration.String()`: `0s`, `850ns`, `1.5µs`, `44.811527ms`, `1m0.00112695s`.
pub fn duration(d: Duration) -> String {
    duration_ns(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// [`duration`] for a signed nanosecond count (Go durations can be negative).
pub fn duration_ns(ns: i128) -> String {
    let neg = ns < 0;
    let u = ns.unsigned_abs().min(u64::MAX as u128) as u64;
    if u == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            _ if u < 1_000 => (0, "ns"),
            _ if u < 1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let mut f = String::new();
        let int = frac(&mut f, u, prec);
        out.push_str(&int.to_string());
        out.push_str(&f);
        out.push_str(unit);
    } else {
        let mut f = String::new();
        let secs = frac(&mut f, u, 9);
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if secs >= 60 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{s}{f}s"));
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// Parses a Go duration (`300ms`, `1.5h`, `2h45m`, `-1s`, `0`), plus fortio's `d` (days) and
/// `w` (weeks). Returns signed nanoseconds, or a reason.
pub fn parse_duration(s: &str) -> Result<i128, String> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return Err(format!("invalid duration {s:?}"));
        }
        let value: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "w" => 7.0 * 86400e9,
            "" => return Err(format!("missing unit in duration {s:?}")),
            other => return Err(format!("unknown unit {other:?} in duration {s:?}")),
        };
        total += value * scale;
        rest = tail;
    }
    if total > 9.2e18 {
        return Err(format!("duration {s:?} is too large"));
    }
    let ns = total.round() as i128;
    Ok(if neg { -ns } else { ns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_shortest_matches_go_samples() {
        assert_eq!(g(6.4519e-05), "6.4519e-05");
        assert_eq!(g(1.2716293e+07), "1.2716293e+07");
        assert_eq!(g(2.883584e+06), "2.883584e+06");
        assert_eq!(g(0.0095), "0.0095");
        assert_eq!(g(8.0), "8");
        assert_eq!(g(0.0), "0");
        assert_eq!(g(-1.0), "-1");
        assert_eq!(g(123456.0), "123456");
        assert_eq!(g(1e6), "1e+06");
        assert_eq!(g(0.0001), "0.0001");
        assert_eq!(g(0.00001), "1e-05");
        assert_eq!(g(241.0), "241");
    }

    #[test]
    fn g_prec_matches_go_samples() {
        assert_eq!(g_prec(118546.0, 5), "1.1855e+05");
        assert_eq!(g_prec(1.03316104e9, 9), "1.03316104e+09");
        assert_eq!(g_prec(0.0095, 6), "0.0095");
        assert_eq!(g_prec(446.3125, 5), "446.31");
        assert_eq!(g_prec(177.75, 8), "177.75");
        assert_eq!(g_prec(102.6034, 4), "102.6");
        assert_eq!(g_prec(268.9, 8), "268.9");
        assert_eq!(g_prec(16.5739, 4), "16.57");
        assert_eq!(g_prec(3555.0, 9), "3555");
        assert_eq!(g_prec(100.0, 5), "100");
        assert_eq!(g_prec(0.0, 4), "0");
        assert_eq!(g_prec(1000.0, 3), "1e+03");
        assert_eq!(g_prec(0.019134899, 6), "0.0191349");
        assert_eq!(g_prec(0.0001234567, 4), "0.0001235");
        assert_eq!(g_prec(0.00001234567, 4), "1.235e-05");
    }

    #[test]
    fn json_floats_match_encoding_json() {
        assert_eq!(json_float(100.0), "100");
        assert_eq!(json_float(413.0), "413");
        assert_eq!(json_float(0.001), "0.001");
        assert_eq!(json_float(8.583e-7), "8.583e-7");
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(0.0), "0");
        assert_eq!(json_float(-2.5), "-2.5");
    }

    #[test]
    fn durations_match_go_string() {
        let ns = |n: u64| duration(Duration::from_nanos(n));
        assert_eq!(ns(0), "0s");
        assert_eq!(ns(850), "850ns");
        assert_eq!(ns(1_500), "1.5µs");
        assert_eq!(ns(44_811_527), "44.811527ms");
        assert_eq!(ns(5_059_691_387), "5.059691387s");
        assert_eq!(ns(60_001_126_950), "1m0.00112695s");
        assert_eq!(ns(86_400_000_000_000), "24h0m0s");
        assert_eq!(ns(5_000_000_000), "5s");
        assert_eq!(ns(3_600_000_000_000), "1h0m0s");
        assert_eq!(duration_ns(-1_000_000), "-1ms");
    }

    #[test]
    fn parses_go_and_fortio_durations() {
        assert_eq!(parse_duration("5s"), Ok(5_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("2h45m"), Ok(9_900_000_000_000));
        assert_eq!(parse_duration("1d4h"), Ok(100_800_000_000_000));
        assert_eq!(parse_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_duration("10us"), Ok(10_000));
        assert_eq!(parse_duration("-1s"), Ok(-1_000_000_000));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
