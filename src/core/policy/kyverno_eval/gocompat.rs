//! Go and Kubernetes value handling that Kyverno's operators lean on, reproduced value for
//! value: `strconv.ParseFloat`, `time.ParseDuration`, `resource.ParseQuantity` + `Quantity.Cmp`,
//! blang/semver v4 `Parse`, `fmt.Sprint` and `encoding/json` number formatting. Hand-written
//! because the comparisons must give Go's answers (a Rust duration, quantity or semver parser
//! accepts and orders different strings), and each is small.

use std::cmp::Ordering;

use serde_json::Value;

/// A JSON number as Go's float64.
pub(super) fn fnum(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}
// ---------------------------------------------------------------- Go parsing

/// `strconv.ParseFloat(s, 64)` without error (range errors are errors, as in Go).
pub(super) fn go_parse_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(if s.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    if lower == "nan" {
        return (body.len() == s.len()).then_some(f64::NAN);
    }
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

/// `time.ParseDuration`, in nanoseconds.
pub(super) fn go_parse_duration(orig: &str) -> Option<i64> {
    const LIM: u64 = 1 << 63;
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return None;
        }
        let pl = s.len();
        let (v0, rest) = leading_int(s)?;
        s = rest;
        let pre = pl != s.len();
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if !s.is_empty() && s[0] == b'.' {
            s = &s[1..];
            let pl = s.len();
            let (ff, sc, rest) = leading_fraction(s);
            f = ff;
            scale = sc;
            s = rest;
            post = pl != s.len();
        }
        if !pre && !post {
            return None;
        }
        let i = s.iter().position(|&c| c == b'.' || c.is_ascii_digit()).unwrap_or(s.len());
        if i == 0 {
            return None;
        }
        let unit: u64 = match &s[..i] {
            b"ns" => 1,
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => return None,
        };
        s = &s[i..];
        if v0 > LIM / unit {
            return None;
        }
        let mut v = v0 * unit;
        if f > 0 {
            v = v.wrapping_add((f as f64 * (unit as f64 / scale)) as u64);
            if v > LIM {
                return None;
            }
        }
        d = d.wrapping_add(v);
        if d > LIM {
            return None;
        }
    }
    if neg {
        return Some((d as i64).wrapping_neg());
    }
    if d > LIM - 1 {
        return None;
    }
    Some(d as i64)
}

pub(super) fn leading_int(s: &[u8]) -> Option<(u64, &[u8])> {
    let mut x: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        if x > (1u64 << 63) / 10 {
            return None;
        }
        x = x * 10 + u64::from(s[i] - b'0');
        if x > 1u64 << 63 {
            return None;
        }
        i += 1;
    }
    Some((x, &s[i..]))
}

pub(super) fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let (mut x, mut scale, mut overflow, mut i) = (0u64, 1f64, false, 0usize);
    while i < s.len() && s[i].is_ascii_digit() {
        if !overflow {
            if x > ((1u64 << 63) - 1) / 10 {
                overflow = true;
            } else {
                let y = x * 10 + u64::from(s[i] - b'0');
                if y > 1u64 << 63 {
                    overflow = true;
                } else {
                    x = y;
                    scale *= 10.0;
                }
            }
        }
        i += 1;
    }
    (x, scale, &s[i..])
}

/// A Kubernetes `resource.Quantity` as exact decimal: `|value| = digits × 10^exp`
/// (digits without leading or trailing zeros; empty = 0), after ParseQuantity's rounding up to
/// whole nano units and its cap of binary-SI values at 2^63-1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Quantity {
    neg: bool,
    digits: Vec<u8>,
    exp: i64,
}

impl Quantity {
    fn new(mut digits: Vec<u8>, mut exp: i64, neg: bool) -> Quantity {
        let lead = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..lead);
        while digits.last() == Some(&0) {
            digits.pop();
            exp += 1;
        }
        if digits.is_empty() {
            exp = 0;
        }
        let neg = neg && !digits.is_empty();
        Quantity { neg, digits, exp }
    }

    fn cmp_mag(&self, o: &Quantity) -> Ordering {
        match (self.digits.is_empty(), o.digits.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => {
                let a = self.digits.len() as i64 + self.exp;
                let b = o.digits.len() as i64 + o.exp;
                a.cmp(&b).then_with(|| self.digits.cmp(&o.digits))
            }
        }
    }

    /// `Quantity.Cmp`.
    pub(crate) fn compare(&self, o: &Quantity) -> Ordering {
        match (self.neg, o.neg) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_mag(o),
            (true, true) => o.cmp_mag(self),
        }
    }
}

pub(super) fn mul_small(d: &mut Vec<u8>, m: u32) {
    let mut carry = 0u32;
    for x in d.iter_mut().rev() {
        let v = u32::from(*x) * m + carry;
        *x = (v % 10) as u8;
        carry = v / 10;
    }
    while carry > 0 {
        d.insert(0, (carry % 10) as u8);
        carry /= 10;
    }
}

pub(super) fn add_one(d: &mut Vec<u8>) {
    for x in d.iter_mut().rev() {
        if *x == 9 {
            *x = 0;
        } else {
            *x += 1;
            return;
        }
    }
    d.insert(0, 1);
}

/// `resource.ParseQuantity` (k8s.io/apimachinery).
pub(super) fn parse_quantity(s: &str) -> Option<Quantity> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let zero = Quantity { neg: false, digits: Vec::new(), exp: 0 };
    if s == "0" {
        return Some(zero);
    }
    let end = b.len();
    let (mut pos, mut positive) = (0usize, true);
    if b[0] == b'-' {
        positive = false;
        pos = 1;
    } else if b[0] == b'+' {
        pos = 1;
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Some(zero);
    }
    let ns = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = &b[ns..pos];
    let mut denom: &[u8] = &[];
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let ds = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &b[ds..pos];
    }
    let ss = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return None;
    }
    let suffix = &s[ss..];
    let (binary, exp): (bool, i64) = match suffix {
        "" => (false, 0),
        "n" => (false, -9),
        "u" => (false, -6),
        "m" => (false, -3),
        "k" => (false, 3),
        "M" => (false, 6),
        "G" => (false, 9),
        "T" => (false, 12),
        "P" => (false, 15),
        "E" => (false, 18),
        "Ki" => (true, 10),
        "Mi" => (true, 20),
        "Gi" => (true, 30),
        "Ti" => (true, 40),
        "Pi" => (true, 50),
        "Ei" => (true, 60),
        x if x.len() > 1 && (x.starts_with('e') || x.starts_with('E')) => (false, i64::from(x[1..].parse::<i64>().ok()? as i32)),
        _ => return None,
    };
    let mut digits: Vec<u8> = num.iter().chain(denom.iter()).map(|c| c - b'0').collect();
    let mut e10 = -(denom.len() as i64);
    if binary {
        for _ in 0..exp / 10 {
            mul_small(&mut digits, 1024);
        }
    } else {
        e10 += exp;
    }
    let mut q = Quantity::new(digits, e10, !positive);
    if !q.digits.is_empty() && q.exp < -9 {
        // round up (away from zero) to whole nano units; the dropped part is non-zero
        let cut = -9 - q.exp;
        let keep = (q.digits.len() as i64 - cut).max(0) as usize;
        let mut kept = q.digits[..keep].to_vec();
        add_one(&mut kept);
        q = Quantity::new(kept, -9, q.neg);
    }
    if binary {
        let max = Quantity::new(b"9223372036854775807".iter().map(|c| c - b'0').collect(), 0, false);
        if q.cmp_mag(&max) == Ordering::Greater {
            q = Quantity { neg: q.neg, ..max };
        }
    }
    Some(q)
}

#[derive(Debug)]
pub(super) enum Pre {
    Num(u64),
    Str(String),
}

#[derive(Debug)]
pub(super) struct SemVer {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<Pre>,
}

pub(super) fn semver_num(p: &str) -> Option<u64> {
    if !p.bytes().all(|b| b.is_ascii_digit()) || (p.len() > 1 && p.starts_with('0')) {
        return None;
    }
    p.parse().ok()
}

/// blang/semver v4 `Parse` (strict: no `v` prefix, three components).
pub(super) fn parse_semver(s: &str) -> Option<SemVer> {
    let mut parts = s.splitn(3, '.');
    let (ma, mi, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let (major, minor) = (semver_num(ma)?, semver_num(mi)?);
    let (rest, build) = match rest.find('+') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (patch_s, pre_s) = match rest.find('-') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let patch = semver_num(patch_s)?;
    let mut pre = Vec::new();
    if let Some(p) = pre_s {
        for id in p.split('.') {
            if id.is_empty() {
                return None;
            }
            if id.bytes().all(|b| b.is_ascii_digit()) {
                if id.len() > 1 && id.starts_with('0') {
                    return None;
                }
                pre.push(Pre::Num(id.parse().ok()?));
            } else if id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                pre.push(Pre::Str(id.to_string()));
            } else {
                return None;
            }
        }
    }
    if let Some(bm) = build {
        for id in bm.split('.') {
            if id.is_empty() || !id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
                return None;
            }
        }
    }
    Some(SemVer { major, minor, patch, pre })
}

pub(super) fn semver_cmp(a: &SemVer, b: &SemVer) -> Ordering {
    a.major.cmp(&b.major).then(a.minor.cmp(&b.minor)).then(a.patch.cmp(&b.patch)).then_with(|| match (a.pre.is_empty(), b.pre.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => {
            for (x, y) in a.pre.iter().zip(&b.pre) {
                let o = match (x, y) {
                    (Pre::Num(p), Pre::Num(q)) => p.cmp(q),
                    (Pre::Num(_), Pre::Str(_)) => Ordering::Less,
                    (Pre::Str(_), Pre::Num(_)) => Ordering::Greater,
                    (Pre::Str(p), Pre::Str(q)) => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.pre.len().cmp(&b.pre.len())
        }
    })
}

// ---------------------------------------------------------------- Go formatting

/// Shortest round-trip decimal digits of |f| (finite, non-zero) and the decimal point position:
/// |f| = 0.d1d2… × 10^dp.
pub(super) fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    (digits.to_string(), exp + 1)
}

pub(super) fn fixed(d: &str, dp: i32) -> String {
    if dp <= 0 {
        format!("0.{}{d}", "0".repeat(dp.unsigned_abs() as usize))
    } else if dp as usize >= d.len() {
        format!("{d}{}", "0".repeat(dp as usize - d.len()))
    } else {
        format!("{}.{}", &d[..dp as usize], &d[dp as usize..])
    }
}

pub(super) fn exponent_form(d: &str, exp: i32, two_digits: bool) -> String {
    let mut out = d[..1].to_string();
    if d.len() > 1 {
        out.push('.');
        out.push_str(&d[1..]);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 && two_digits {
        out.push('0');
    }
    out.push_str(&a.to_string());
    out
}

/// `fmt.Sprint(float64)` (`%v` = `%g` with the shortest precision: exponent form below 1e-4 or from 1e6).
pub(super) fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0");
    }
    let (d, dp) = shortest_digits(f);
    let exp = dp - 1;
    if !(-4..6).contains(&exp) { format!("{sign}{}", exponent_form(&d, exp, true)) } else { format!("{sign}{}", fixed(&d, dp)) }
}

/// `encoding/json` float64 encoding (fixed notation from 1e-6 up to 1e21, else `1e+21` / `1e-7`).
pub(super) fn go_json_number(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0");
    }
    let (d, dp) = shortest_digits(f);
    let a = f.abs();
    if !(1e-6..1e21).contains(&a) {
        // 'e' format, then encoding/json turns e-07 into e-7
        format!("{sign}{}", exponent_form(&d, dp - 1, dp > 0))
    } else {
        format!("{sign}{}", fixed(&d, dp))
    }
}

/// `fmt.Sprint(v)` of a JSON-decoded Go value.
pub(super) fn go_sprint(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(_) => go_format_float(fnum(v)),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(go_sprint).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let parts: Vec<String> = entries.into_iter().map(|(k, x)| format!("{k}:{}", go_sprint(x))).collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// `json.Marshal(v)` as Go writes it (sorted keys, HTML-safe escaping, Go float format).
pub(super) fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

pub(super) fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(_) => out.push_str(&go_json_number(fnum(v))),
        Value::String(s) => write_json_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(k, out);
                out.push(':');
                write_json(x, out);
            }
            out.push('}');
        }
    }
}

pub(super) fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
