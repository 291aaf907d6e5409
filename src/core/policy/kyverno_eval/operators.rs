//! Kyverno's condition operators (`pkg/engine/variables/operator`), go-wildcard v1.0.3, and the
//! Go / Kubernetes pieces they lean on, reproduced value for value: `time.ParseDuration`,
//! `resource.ParseQuantity` + `Quantity.Cmp`, `strconv.ParseFloat`, blang/semver v4 `Parse`,
//! `fmt.Sprint` and `encoding/json` formatting, and the `pkg/engine/pattern` range patterns
//! (`"1-10"`, `"1!-10"`) that the `AnyIn`/`AllIn` family accepts as a value.
//!
//! Every JSON number is a Go `float64` here (Kyverno decodes conditions through JSON), so the
//! `int`/`int64` branches of the Go handlers are never taken and are not reproduced.
//!
//! Kept quirks: the numeric and `Duration*` comparisons look the operator up case-sensitively
//! (`greaterthan` creates a handler but always yields false, as in Kyverno); `In`/`NotIn` with a
//! list key holding a non-string panics in Kyverno (unchecked type assertion) — an `Err` here;
//! `NotIn` with a one-element list key equal to a string value is true (Kyverno's bug).
//! Known deviations: hexadecimal floats (`0x1p-2`) are not numbers here; float→duration
//! conversions of out-of-range values saturate instead of Go's platform-defined result.

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// go-wildcard v1.0.3 Match: whole string, `*` any run (incl. '/', ':', '@', empty), `?` exactly one char, no escapes, case-sensitive.
pub fn wildcard_match(pattern: &str, s: &str) -> bool {
    if pattern.is_empty() {
        return s.is_empty();
    }
    if pattern == "*" {
        return true;
    }
    // Same language as go-wildcard's recursive deepMatchRune (runes, `?` never matches empty),
    // with the linear single-backtrack algorithm instead of exponential recursion.
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi + 1, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// One condition's operator applied to resolved key and value (JSON values), exactly as Kyverno's pkg/engine/variables/operator does (names case-insensitive; unknown operator -> Err).
pub fn apply_operator(key: &Value, operator: &str, value: &Value) -> Result<bool, String> {
    Ok(match operator.to_lowercase().as_str() {
        "equal" | "equals" => equals(key, value),
        "notequal" | "notequals" => not_equals(key, value),
        "in" => in_op(key, value, false)?,
        "notin" => in_op(key, value, true)?,
        "anyin" => any_in(key, value, false),
        "anynotin" => any_in(key, value, true),
        "allin" => all_in(key, value, false),
        "allnotin" => all_in(key, value, true),
        "greaterthan" | "greaterthanorequals" | "lessthan" | "lessthanorequals" => numeric(key, value, operator),
        "durationgreaterthan" | "durationgreaterthanorequals" | "durationlessthan" | "durationlessthanorequals" => {
            duration_op(key, value, operator)
        }
        _ => return Err(format!("failed to create handler for condition operator {operator:?}: not a Kyverno operator")),
    })
}

// ---------------------------------------------------------------- Equals / NotEquals

fn fnum(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn equals(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(k) => value.as_bool() == Some(*k),
        Value::Number(_) => {
            let k = fnum(key);
            match value {
                Value::Number(_) => fnum(value) == k,
                Value::String(s) => go_parse_float(s) == Some(k),
                _ => false,
            }
        }
        Value::String(k) => {
            if let Some((a, b)) = duration_pair(key, value) {
                return a == b;
            }
            if let (Some(qk), Value::String(v)) = (parse_quantity(k), value) {
                return parse_quantity(v).is_some_and(|qv| qk.compare(&qv) == Ordering::Equal);
            }
            match value {
                // the VALUE is the pattern
                Value::String(v) => wildcard_match(v, k),
                _ => false,
            }
        }
        Value::Array(_) | Value::Object(_) => deep_eq(key, value),
        Value::Null => false,
    }
}

fn not_equals(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(k) => match value {
            Value::Bool(v) => k != v,
            _ => true,
        },
        Value::Number(_) => {
            let k = fnum(key);
            match value {
                Value::Number(_) => fnum(value) != k,
                Value::String(s) => go_parse_float(s).is_none_or(|f| f != k),
                _ => true,
            }
        }
        Value::String(k) => {
            if let Some((a, b)) = duration_pair(key, value) {
                return a != b;
            }
            if let (Some(qk), Value::String(v)) = (parse_quantity(k), value) {
                if v.is_empty() {
                    return !wildcard_match(v, k);
                }
                return parse_quantity(v).is_none_or(|qv| qk.compare(&qv) != Ordering::Equal);
            }
            match value {
                Value::String(v) => !wildcard_match(v, k),
                _ => true,
            }
        }
        Value::Array(_) | Value::Object(_) => !deep_eq(key, value),
        Value::Null => false,
    }
}

/// `reflect.DeepEqual` over JSON-decoded Go values (all numbers float64).
pub(crate) fn deep_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| deep_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| deep_eq(p, q)))
        }
        _ => false,
    }
}

// ---------------------------------------------------------------- numeric, durations

fn secs_dur(f: f64) -> i64 {
    // time.Duration(f) * time.Second: truncation, then int64 multiply (wrapping)
    (f as i64).wrapping_mul(1_000_000_000)
}

fn dur_secs(d: i64) -> f64 {
    (d / 1_000_000_000) as f64 + (d % 1_000_000_000) as f64 / 1e9
}

/// operator.go `parseDuration`: at least one side a duration string (not `"0"`), the other a
/// duration string or a number of seconds. Returns both in seconds.
fn duration_pair(key: &Value, value: &Value) -> Option<(f64, f64)> {
    let str_dur = |v: &Value| match v {
        Value::String(s) if s != "0" => go_parse_duration(s),
        _ => None,
    };
    let num_dur = |v: &Value| match v {
        Value::Number(_) => Some(secs_dur(fnum(v))),
        _ => None,
    };
    let (kd, vd) = (str_dur(key), str_dur(value));
    if kd.is_none() && vd.is_none() {
        return None;
    }
    let kd = match kd {
        Some(d) => d,
        None => num_dur(key)?,
    };
    let vd = match vd {
        Some(d) => d,
        None => num_dur(value)?,
    };
    Some((dur_secs(kd), dur_secs(vd)))
}

/// `compareByCondition`: the operator constant is compared case-sensitively in Kyverno.
fn cmp_by(a: f64, b: f64, op: &str) -> bool {
    match op {
        "GreaterThanOrEquals" => a >= b,
        "GreaterThan" => a > b,
        "LessThanOrEquals" => a <= b,
        "LessThan" => a < b,
        _ => false,
    }
}

fn ord_f(o: Ordering) -> f64 {
    match o {
        Ordering::Less => -1.0,
        Ordering::Equal => 0.0,
        Ordering::Greater => 1.0,
    }
}

/// numeric.go `validateValueWithFloatPattern` (the int fallbacks are subsumed by ParseFloat).
fn num_vs(k: f64, value: &Value, op: &str) -> bool {
    match value {
        Value::Number(_) => cmp_by(k, fnum(value), op),
        Value::String(s) => {
            if s != "0" {
                if let Some(vd) = go_parse_duration(s) {
                    return cmp_by(dur_secs(secs_dur(k)), dur_secs(vd), op);
                }
            }
            go_parse_float(s).is_some_and(|f| cmp_by(k, f, op))
        }
        _ => false,
    }
}

fn numeric(key: &Value, value: &Value, op: &str) -> bool {
    match key {
        Value::Number(_) => num_vs(fnum(key), value, op),
        Value::String(k) => {
            if let Some((a, b)) = duration_pair(key, value) {
                return cmp_by(a, b, op);
            }
            if let (Some(qk), Value::String(v)) = (parse_quantity(k), value) {
                if let Some(qv) = parse_quantity(v) {
                    return cmp_by(ord_f(qk.compare(&qv)), 0.0, op);
                }
            }
            if let Some(f) = go_parse_float(k) {
                return num_vs(f, value, op);
            }
            if let Some(vk) = parse_semver(k) {
                return match value {
                    Value::String(v) => parse_semver(v).is_some_and(|vv| cmp_by(ord_f(semver_cmp(&vk, &vv)), 0.0, op)),
                    _ => false,
                };
            }
            false
        }
        _ => false,
    }
}

/// The deprecated `Duration*` operators (duration.go).
fn duration_op(key: &Value, value: &Value, op: &str) -> bool {
    let kd = match key {
        Value::Number(_) => secs_dur(fnum(key)),
        Value::String(s) => match go_parse_duration(s) {
            Some(d) => d,
            None => return false,
        },
        _ => return false,
    };
    let vd = match value {
        Value::Number(_) => secs_dur(fnum(value)),
        Value::String(s) => match go_parse_duration(s) {
            Some(d) => d,
            None => return false,
        },
        _ => return false,
    };
    match op {
        "DurationGreaterThanOrEquals" => kd >= vd,
        "DurationGreaterThan" => kd > vd,
        "DurationLessThanOrEquals" => kd <= vd,
        "DurationLessThan" => kd < vd,
        _ => false,
    }
}

// ---------------------------------------------------------------- In family

fn scalar_key(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(go_sprint(key)),
        _ => None,
    }
}

fn bidir(a: &str, b: &str) -> bool {
    wildcard_match(a, b) || wildcard_match(b, a)
}

/// `json.Unmarshal(s, &[]string)`: a JSON array of strings (null elements become ""), or `null`.
fn json_string_array(s: &str) -> Option<Vec<String>> {
    match serde_json::from_str::<Value>(s).ok()? {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|x| match x {
                Value::String(t) => Some(t),
                Value::Null => Some(String::new()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// `json.Valid(s)` ? unmarshal as a string array (failure = invalid type) : `[s]`.
fn string_values(s: &str) -> Option<Vec<String>> {
    if serde_json::from_str::<Value>(s).is_ok() { json_string_array(s) } else { Some(vec![s.to_string()]) }
}

/// Deprecated `In` / `NotIn` (in.go, notin.go).
fn in_op(key: &Value, value: &Value, not: bool) -> Result<bool, String> {
    if let Some(k) = scalar_key(key) {
        // keyExistsInArray
        let (invalid, exists) = match value {
            Value::Array(vals) => (false, vals.iter().any(|v| bidir(&go_sprint(v), &k))),
            Value::String(s) => {
                if wildcard_match(s, &k) {
                    (false, true)
                } else {
                    match json_string_array(s) {
                        Some(arr) => (false, arr.iter().any(|x| *x == k)),
                        None => (true, false),
                    }
                }
            }
            _ => (true, false),
        };
        return Ok(!invalid && (exists != not));
    }
    let Value::Array(items) = key else { return Ok(false) };
    let mut keys = Vec::with_capacity(items.len());
    for it in items {
        match it {
            Value::String(s) => keys.push(s.clone()),
            other => {
                return Err(format!(
                    "operator {}: key list element {} is not a string (Kyverno's unchecked type assertion panics here)",
                    if not { "NotIn" } else { "In" },
                    go_json(other)
                ));
            }
        }
    }
    // setExistsInArray: exact membership, no wildcards
    let set: Vec<String> = match value {
        Value::Array(vals) => {
            let mut out = Vec::with_capacity(vals.len());
            for v in vals {
                match v {
                    Value::String(s) => out.push(s.clone()),
                    _ => return Ok(false),
                }
            }
            out
        }
        Value::String(s) => {
            if keys.len() == 1 && keys[0] == *s {
                return Ok(true);
            }
            match json_string_array(s) {
                Some(arr) => arr,
                None => return Ok(false),
            }
        }
        _ => return Ok(false),
    };
    Ok(if not { keys.iter().any(|k| !set.contains(k)) } else { keys.iter().all(|k| set.contains(k)) })
}

/// `anyKeyExistsInArray` (= `allKeyExistsInArray`): (invalid type, exists).
fn key_in_values(key: &str, value: &Value) -> (bool, bool) {
    match value {
        Value::Array(vals) => (false, vals.iter().any(|v| bidir(&go_sprint(v), key))),
        Value::String(s) => {
            if wildcard_match(s, key) {
                return (false, true);
            }
            if pattern_operator(s) == PatOp::InRange {
                return (false, pattern_validate(key, s));
            }
            match string_values(s) {
                Some(arr) => (false, arr.iter().any(|x| x == key)),
                None => (true, false),
            }
        }
        _ => (true, false),
    }
}

/// `AnyIn` / `AnyNotIn` (anyin.go, anynotin.go).
fn any_in(key: &Value, value: &Value, not: bool) -> bool {
    if let Some(k) = scalar_key(key) {
        let (invalid, exists) = key_in_values(&k, value);
        return !invalid && (exists != not);
    }
    let Value::Array(items) = key else { return false };
    let keys: Vec<String> = items.iter().map(go_sprint).collect();
    let vals: Vec<String> = match value {
        Value::Array(vs) => vs.iter().map(go_sprint).collect(),
        Value::Number(_) | Value::Bool(_) => vec![go_sprint(value)],
        Value::String(s) => {
            if keys.len() == 1 && keys[0] == *s {
                return !not;
            }
            if pattern_operator(s) == PatOp::InRange {
                if not {
                    let negated = s.replacen('-', "!-", 1);
                    return keys.iter().any(|k| pattern_validate(k, &negated));
                }
                return keys.iter().any(|k| pattern_validate(k, s));
            }
            match string_values(s) {
                Some(arr) => arr,
                None => return false,
            }
        }
        _ => return false,
    };
    let found = |k: &String| vals.iter().any(|v| bidir(k, v));
    if not { keys.iter().any(|k| !found(k)) } else { keys.iter().any(found) }
}

/// `AllIn` / `AllNotIn` (allin.go, allnotin.go).
fn all_in(key: &Value, value: &Value, not: bool) -> bool {
    if let Some(k) = scalar_key(key) {
        let (invalid, exists) = key_in_values(&k, value);
        return !invalid && (exists != not);
    }
    let Value::Array(items) = key else { return false };
    let keys: Vec<String> = items.iter().map(go_sprint).collect();
    let vals: Vec<String> = match value {
        Value::Array(vs) => vs.iter().map(go_sprint).collect(),
        Value::String(s) => {
            if keys.len() == 1 && keys[0] == *s {
                return !not;
            }
            if pattern_operator(s) == PatOp::InRange {
                if not {
                    return !keys.iter().any(|k| pattern_validate(k, s));
                }
                return keys.iter().all(|k| pattern_validate(k, s));
            }
            match string_values(s) {
                Some(arr) => arr,
                None => return false,
            }
        }
        _ => return false,
    };
    let found = |k: &String| vals.iter().any(|v| bidir(k, v));
    if not { !keys.iter().any(found) } else { keys.iter().all(found) }
}

// ---------------------------------------------------------------- pkg/engine/pattern (ranges)

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PatOp {
    Equal,
    MoreEqual,
    LessEqual,
    NotEqual,
    More,
    Less,
    InRange,
    NotInRange,
}

static IN_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([-|+]?[0-9]+(?:\.[0-9]+)?[A-Za-z]*)-([-|+]?[0-9]+(?:\.[0-9]+)?[A-Za-z]*)$").expect("valid regex")
});
static NOT_IN_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([-|+]?[0-9]+(?:\.[0-9]+)?[A-Za-z]*)!-([-|+]?[0-9]+(?:\.[0-9]+)?[A-Za-z]*)$").expect("valid regex")
});

/// `operator.GetOperatorFromStringPattern`.
fn pattern_operator(p: &str) -> PatOp {
    let b = p.as_bytes();
    if b.len() < 2 {
        PatOp::Equal
    } else if b.starts_with(b">=") {
        PatOp::MoreEqual
    } else if b.starts_with(b"<=") {
        PatOp::LessEqual
    } else if b[0] == b'>' {
        PatOp::More
    } else if b[0] == b'<' {
        PatOp::Less
    } else if b[0] == b'!' {
        PatOp::NotEqual
    } else if NOT_IN_RANGE.is_match(p) {
        PatOp::NotInRange
    } else if IN_RANGE.is_match(p) {
        PatOp::InRange
    } else {
        PatOp::Equal
    }
}

/// `pattern.Validate(log, value, pattern)` for a string value and a string pattern.
fn pattern_validate(value: &str, pattern: &str) -> bool {
    if value == pattern {
        return true;
    }
    pattern
        .split('|')
        .any(|alt| alt.trim_matches(' ').split('&').all(|c| validate_string_pattern(value, c.trim_matches(' '))))
}

fn validate_string_pattern(value: &str, pattern: &str) -> bool {
    let op = pattern_operator(pattern);
    let range = |re: &Regex| re.captures(pattern).map(|c| (c[1].to_string(), c[2].to_string()));
    match op {
        PatOp::InRange => match range(&*IN_RANGE) {
            Some((l, r)) => {
                validate_string_pattern(value, &format!(">= {l}")) && validate_string_pattern(value, &format!("<= {r}"))
            }
            None => false,
        },
        PatOp::NotInRange => match range(&*NOT_IN_RANGE) {
            Some((l, r)) => {
                validate_string_pattern(value, &format!("< {l}")) || validate_string_pattern(value, &format!("> {r}"))
            }
            None => false,
        },
        _ => {
            let n = match op {
                PatOp::MoreEqual | PatOp::LessEqual => 2,
                PatOp::NotEqual | PatOp::More | PatOp::Less => 1,
                _ => 0,
            };
            validate_string(value, pattern[n..].trim(), op)
        }
    }
}

fn validate_string(value: &str, pattern: &str, op: PatOp) -> bool {
    let by = |o: Ordering| match op {
        PatOp::Equal => o == Ordering::Equal,
        PatOp::NotEqual => o != Ordering::Equal,
        PatOp::More => o == Ordering::Greater,
        PatOp::Less => o == Ordering::Less,
        PatOp::MoreEqual => o != Ordering::Less,
        PatOp::LessEqual => o != Ordering::Greater,
        PatOp::InRange | PatOp::NotInRange => false,
    };
    if let (Some(p), Some(v)) = (go_parse_duration(pattern), go_parse_duration(value)) {
        return by(v.cmp(&p));
    }
    if let (Some(p), Some(v)) = (parse_quantity(pattern), parse_quantity(value)) {
        return by(v.compare(&p));
    }
    match op {
        PatOp::Equal => wildcard_match(pattern, value),
        PatOp::NotEqual => !wildcard_match(pattern, value),
        _ => false,
    }
}

// ---------------------------------------------------------------- Go parsing

/// `strconv.ParseFloat(s, 64)` without error (range errors are errors, as in Go).
pub(crate) fn go_parse_float(s: &str) -> Option<f64> {
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
pub(crate) fn go_parse_duration(orig: &str) -> Option<i64> {
    const LIM: u64 = 1 << 63;
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            s = &s[1..];
        }
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

fn leading_int(s: &[u8]) -> Option<(u64, &[u8])> {
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

fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
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
pub(crate) struct Quantity {
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

fn mul_small(d: &mut Vec<u8>, m: u32) {
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

fn add_one(d: &mut Vec<u8>) {
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
pub(crate) fn parse_quantity(s: &str) -> Option<Quantity> {
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
        x if x.len() > 1 && (x.starts_with('e') || x.starts_with('E')) => {
            (false, i64::from(x[1..].parse::<i64>().ok()? as i32))
        }
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
enum Pre {
    Num(u64),
    Str(String),
}

#[derive(Debug)]
struct SemVer {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<Pre>,
}

fn semver_num(p: &str) -> Option<u64> {
    if !p.bytes().all(|b| b.is_ascii_digit()) || (p.len() > 1 && p.starts_with('0')) {
        return None;
    }
    p.parse().ok()
}

/// blang/semver v4 `Parse` (strict: no `v` prefix, three components).
fn parse_semver(s: &str) -> Option<SemVer> {
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

fn semver_cmp(a: &SemVer, b: &SemVer) -> Ordering {
    a.major.cmp(&b.major).then(a.minor.cmp(&b.minor)).then(a.patch.cmp(&b.patch)).then_with(|| {
        match (a.pre.is_empty(), b.pre.is_empty()) {
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
        }
    })
}

// ---------------------------------------------------------------- Go formatting

/// Shortest round-trip decimal digits of |f| (finite, non-zero) and the decimal point position:
/// |f| = 0.d1d2… × 10^dp.
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    (digits.to_string(), exp + 1)
}

fn fixed(d: &str, dp: i32) -> String {
    if dp <= 0 {
        format!("0.{}{d}", "0".repeat(dp.unsigned_abs() as usize))
    } else if dp as usize >= d.len() {
        format!("{d}{}", "0".repeat(dp as usize - d.len()))
    } else {
        format!("{}.{}", &d[..dp as usize], &d[dp as usize..])
    }
}

fn exponent_form(d: &str, exp: i32, two_digits: bool) -> String {
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
fn go_format_float(f: f64) -> String {
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
fn go_json_number(f: f64) -> String {
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
        format!("{sign}{}", exponent_form(&d, dp - 1, dp - 1 >= 0))
    } else {
        format!("{sign}{}", fixed(&d, dp))
    }
}

/// `fmt.Sprint(v)` of a JSON-decoded Go value.
pub(crate) fn go_sprint(v: &Value) -> String {
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
pub(crate) fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
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

fn write_json_str(s: &str, out: &mut String) {
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
