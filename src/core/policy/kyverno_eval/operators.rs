//! Kyverno's condition operators (`pkg/engine/variables/operator`), go-wildcard v1.0.3, and the
//! `pkg/engine/pattern` range patterns (`"1-10"`, `"1!-10"`) that the `AnyIn`/`AllIn` family
//! accepts as a value. The Go value parsing they rely on is in [`super::gocompat`].
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

use super::gocompat::*;

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
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| deep_eq(p, q))),
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
            if s != "0"
                && let Some(vd) = go_parse_duration(s)
            {
                return cmp_by(dur_secs(secs_dur(k)), dur_secs(vd), op);
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
            if let (Some(qk), Value::String(v)) = (parse_quantity(k), value)
                && let Some(qv) = parse_quantity(v)
            {
                return cmp_by(ord_f(qk.compare(&qv)), 0.0, op);
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
                        Some(arr) => (false, arr.contains(&k)),
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

static IN_RANGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([-|+]?[0-9]+(?:\.[0-9]+)?[A-Za-z]*)-([-|+]?[0-9]+(?:\.[0-9]+)?[A-Za-z]*)$").expect("valid regex"));
static NOT_IN_RANGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([-|+]?[0-9]+(?:\.[0-9]+)?[A-Za-z]*)!-([-|+]?[0-9]+(?:\.[0-9]+)?[A-Za-z]*)$").expect("valid regex"));

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
    pattern.split('|').any(|alt| alt.trim_matches(' ').split('&').all(|c| validate_string_pattern(value, c.trim_matches(' '))))
}

fn validate_string_pattern(value: &str, pattern: &str) -> bool {
    let op = pattern_operator(pattern);
    let range = |re: &Regex| re.captures(pattern).map(|c| (c[1].to_string(), c[2].to_string()));
    match op {
        PatOp::InRange => match range(&IN_RANGE) {
            Some((l, r)) => validate_string_pattern(value, &format!(">= {l}")) && validate_string_pattern(value, &format!("<= {r}")),
            None => false,
        },
        PatOp::NotInRange => match range(&NOT_IN_RANGE) {
            Some((l, r)) => validate_string_pattern(value, &format!("< {l}")) || validate_string_pattern(value, &format!("> {r}")),
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
