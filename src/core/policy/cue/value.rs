//! Values of the CUE subset: scalars, non-concrete constraints (kinds, bounds, regular expressions,
//! builtin validators) and their meet (unification). Struct and list values live in the evaluator's
//! vertex tree ([`super::eval`]); here they appear only as [`V::Vertex`].

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;

pub(super) const K_NULL: u8 = 1;
pub(super) const K_BOOL: u8 = 2;
pub(super) const K_INT: u8 = 4;
pub(super) const K_FLOAT: u8 = 8;
pub(super) const K_STRING: u8 = 16;
pub(super) const K_BYTES: u8 = 32;
pub(super) const K_LIST: u8 = 64;
pub(super) const K_STRUCT: u8 = 128;
pub(super) const K_NUMBER: u8 = K_INT | K_FLOAT;
pub(super) const K_TOP: u8 = 0xff;

/// Go's `time.RFC3339` and `time.RFC3339Nano` layouts (the only `time.Parse` layouts supported).
pub(super) const RFC3339: &str = "2006-01-02T15:04:05Z07:00";
pub(super) const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";

/// Most alternatives a disjunction may have, and most parts of a conjunction of constraints.
const MAX_ALTS: usize = 256;
/// Longest string `+` may build.
const MAX_STR: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Scalar {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
}

impl Scalar {
    pub(super) fn kind(&self) -> u8 {
        match self {
            Scalar::Null => K_NULL,
            Scalar::Bool(_) => K_BOOL,
            Scalar::Int(_) => K_INT,
            Scalar::Float(_) => K_FLOAT,
            Scalar::Str(_) => K_STRING,
        }
    }

    pub(super) fn num(&self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// A JSON scalar (numbers as CUE reads JSON: integers are ints, anything else a float).
    pub(super) fn from_json(v: &serde_json::Value) -> Scalar {
        match v {
            serde_json::Value::Bool(b) => Scalar::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Scalar::Int(i128::from(i))
                } else if let Some(u) = n.as_u64() {
                    Scalar::Int(i128::from(u))
                } else {
                    Scalar::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Scalar::Str(s.clone()),
            _ => Scalar::Null,
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("null"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e21 => write!(f, "{x:.1}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Str(s) => f.write_str(&quote(s)),
        }
    }
}

/// A string as a CUE (Go-style) double-quoted literal.
pub(super) fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

pub(super) fn kind_name(k: u8) -> String {
    if k == K_TOP {
        return "_".into();
    }
    let mut parts = Vec::new();
    let mut rest = k;
    if rest & K_NUMBER == K_NUMBER {
        parts.push("number");
        rest &= !K_NUMBER;
    }
    for (bit, n) in [
        (K_NULL, "null"),
        (K_BOOL, "bool"),
        (K_INT, "int"),
        (K_FLOAT, "float"),
        (K_STRING, "string"),
        (K_BYTES, "bytes"),
        (K_LIST, "list"),
        (K_STRUCT, "struct"),
    ] {
        if rest & bit != 0 {
            parts.push(n);
        }
    }
    if parts.is_empty() { "_|_".into() } else { parts.join("|") }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BoundOp {
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
}

impl BoundOp {
    pub(super) fn sym(self) -> &'static str {
        match self {
            BoundOp::Lt => "<",
            BoundOp::Le => "<=",
            BoundOp::Gt => ">",
            BoundOp::Ge => ">=",
            BoundOp::Ne => "!=",
        }
    }
}

/// The builtin functions and validators of the subset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Builtin {
    Len,
    TimeParse,
    TimeTime,
    ListMinItems,
    ListMaxItems,
    ListContains,
    StructMinFields,
    StructMaxFields,
    StrHasPrefix,
    StrHasSuffix,
    StrContains,
    StrToLower,
    StrToUpper,
    StrMinRunes,
    StrMaxRunes,
}

impl Builtin {
    pub(super) fn name(self) -> &'static str {
        match self {
            Builtin::Len => "len",
            Builtin::TimeParse => "time.Parse",
            Builtin::TimeTime => "time.Time",
            Builtin::ListMinItems => "list.MinItems",
            Builtin::ListMaxItems => "list.MaxItems",
            Builtin::ListContains => "list.Contains",
            Builtin::StructMinFields => "struct.MinFields",
            Builtin::StructMaxFields => "struct.MaxFields",
            Builtin::StrHasPrefix => "strings.HasPrefix",
            Builtin::StrHasSuffix => "strings.HasSuffix",
            Builtin::StrContains => "strings.Contains",
            Builtin::StrToLower => "strings.ToLower",
            Builtin::StrToUpper => "strings.ToUpper",
            Builtin::StrMinRunes => "strings.MinRunes",
            Builtin::StrMaxRunes => "strings.MaxRunes",
        }
    }

    /// Arguments of the function form, and of the validator form (the value being constrained
    /// is the missing first argument), if there is one.
    pub(super) fn arity(self) -> (usize, Option<usize>) {
        match self {
            Builtin::Len | Builtin::StrToLower | Builtin::StrToUpper => (1, None),
            Builtin::TimeParse | Builtin::ListContains => (2, None),
            Builtin::TimeTime => (1, Some(0)),
            _ => (2, Some(1)),
        }
    }

    /// The kinds a validator applies to.
    pub(super) fn subject_kind(self) -> u8 {
        match self {
            Builtin::ListMinItems | Builtin::ListMaxItems | Builtin::ListContains => K_LIST,
            Builtin::StructMinFields | Builtin::StructMaxFields => K_STRUCT,
            Builtin::Len => K_TOP,
            _ => K_STRING,
        }
    }
}

/// A builtin validator with its (concrete) arguments, e.g. `list.MinItems(2)`.
#[derive(Clone, Debug)]
pub(super) struct Validator {
    pub(super) b: Builtin,
    pub(super) args: Vec<Scalar>,
}

impl fmt::Display for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.args.is_empty() && self.b == Builtin::TimeTime {
            return f.write_str(self.b.name());
        }
        let args: Vec<String> = self.args.iter().map(|a| a.to_string()).collect();
        write!(f, "{}({})", self.b.name(), args.join(", "))
    }
}

/// A value as far as expressions are concerned.
#[derive(Clone, Debug)]
pub(super) enum V {
    /// `_`
    Top,
    /// An error (conflict, failed bound, …): reported by validation.
    Bot(String),
    /// Not known yet (undefined field, cycle, unresolved disjunction): not an error under `Validate()`.
    Inc(String),
    Atom(Scalar),
    Kind(u8),
    Bound(BoundOp, Scalar),
    Re {
        re: Regex,
        src: String,
        neg: bool,
    },
    Val(Validator),
    /// Several non-concrete constraints, with the kinds all of them allow.
    And(Vec<V>, u8),
    /// Alternatives, each marked default or not.
    Or(Vec<(V, bool)>),
    /// A struct or list: the vertex of the evaluator holding it.
    Vertex(usize),
}

impl fmt::Display for V {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V::Top | V::Inc(_) => f.write_str("_"),
            V::Bot(_) => f.write_str("_|_"),
            V::Atom(s) => write!(f, "{s}"),
            V::Kind(k) => f.write_str(&kind_name(*k)),
            V::Bound(op, s) => write!(f, "{}{s}", op.sym()),
            V::Re { src, neg, .. } => write!(f, "{}{}", if *neg { "!~" } else { "=~" }, quote(src)),
            V::Val(v) => write!(f, "{v}"),
            V::And(xs, _) => {
                let parts: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
                f.write_str(&parts.join(" & "))
            }
            V::Or(xs) => {
                let parts: Vec<String> = xs.iter().map(|(x, d)| format!("{}{x}", if *d { "*" } else { "" })).collect();
                f.write_str(&parts.join(" | "))
            }
            V::Vertex(_) => f.write_str("{...}"),
        }
    }
}

/// The kinds a value allows.
pub(super) fn mask(v: &V) -> u8 {
    match v {
        V::Top | V::Inc(_) => K_TOP,
        V::Bot(_) => 0,
        V::Atom(s) => s.kind(),
        V::Kind(k) => *k,
        V::Bound(BoundOp::Ne, _) => K_TOP,
        V::Bound(_, s) => match s {
            Scalar::Str(_) => K_STRING,
            s if s.num().is_some() => K_NUMBER,
            _ => 0,
        },
        V::Re { .. } => K_STRING,
        V::Val(val) => val.b.subject_kind(),
        V::And(_, m) => *m,
        V::Or(xs) => xs.iter().fold(0, |a, (x, _)| a | mask(x)),
        V::Vertex(_) => K_LIST | K_STRUCT,
    }
}

/// Equality of concrete scalars (numbers by value, across int and float).
pub(super) fn scalar_eq(a: &Scalar, b: &Scalar) -> bool {
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => x == y,
        _ => match (a.num(), b.num()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

fn cmp_num(a: &Scalar, b: &Scalar) -> Option<Ordering> {
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => Some(x.cmp(y)),
        _ => a.num()?.partial_cmp(&b.num()?),
    }
}

/// Whether `s op t` holds; `None` when the two cannot be compared (mismatched kinds).
/// Strings compare byte-wise, as CUE does (so RFC 3339 times compare lexically, not as instants).
pub(super) fn bound_ok(s: &Scalar, op: BoundOp, t: &Scalar) -> Option<bool> {
    if op == BoundOp::Ne {
        return Some(!scalar_eq(s, t));
    }
    let ord = match (s, t) {
        (Scalar::Str(a), Scalar::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
        _ => cmp_num(s, t)?,
    };
    Some(match op {
        BoundOp::Lt => ord.is_lt(),
        BoundOp::Le => ord.is_le(),
        BoundOp::Gt => ord.is_gt(),
        BoundOp::Ge | BoundOp::Ne => ord.is_ge(),
    })
}

fn conflict(a: String, ka: u8, b: String, kb: u8, a_first: bool) -> V {
    let (l, lk, r, rk) = if a_first { (a, ka, b, kb) } else { (b, kb, a, ka) };
    if lk & rk == 0 {
        V::Bot(format!("conflicting values {l} and {r} (mismatched types {} and {})", kind_name(lk), kind_name(rk)))
    } else {
        V::Bot(format!("conflicting values {l} and {r}"))
    }
}

/// The meet of two values. Struct and list values are unified by the evaluator, not here.
pub(super) fn unify(a: V, b: V) -> V {
    match (a, b) {
        (V::Bot(m), _) | (_, V::Bot(m)) => V::Bot(m),
        (V::Inc(m), _) | (_, V::Inc(m)) => V::Inc(m),
        (V::Top, x) | (x, V::Top) => x,
        (V::Vertex(_), _) | (_, V::Vertex(_)) => {
            V::Bot("unifying a struct or list inside an expression is not supported (use it as a field value)".into())
        }
        (V::Or(xs), y) => distribute(xs, y, true),
        (x, V::Or(ys)) => distribute(ys, x, false),
        (V::Atom(s), y) => check(s, y, true),
        (x, V::Atom(s)) => check(s, x, false),
        (x, y) => meet(x, y),
    }
}

/// A concrete scalar against a constraint; `s_first` orders the two in a conflict message.
fn check(s: Scalar, c: V, s_first: bool) -> V {
    match c {
        V::Atom(t) => {
            if s.kind() == t.kind() && scalar_eq(&s, &t) {
                V::Atom(s)
            } else {
                let (ks, kt) = (s.kind(), t.kind());
                conflict(s.to_string(), ks, t.to_string(), kt, s_first)
            }
        }
        V::Kind(k) => {
            if s.kind() & k != 0 {
                V::Atom(s)
            } else {
                let ks = s.kind();
                conflict(s.to_string(), ks, kind_name(k), k, s_first)
            }
        }
        V::Bound(op, t) => match bound_ok(&s, op, &t) {
            Some(true) => V::Atom(s),
            Some(false) => V::Bot(format!("invalid value {s} (out of bound {}{t})", op.sym())),
            None => {
                let kt = if t.num().is_some() { K_NUMBER } else { K_STRING };
                let ks = s.kind();
                conflict(s.to_string(), ks, format!("{}{t}", op.sym()), kt, s_first)
            }
        },
        V::Re { re, src, neg } => {
            let op = if neg { "!~" } else { "=~" };
            let matched = match &s {
                Scalar::Str(x) => Some(re.is_match(x) != neg),
                _ => None,
            };
            match matched {
                Some(true) => V::Atom(s),
                Some(false) => V::Bot(format!("invalid value {s} (out of bound {op}{})", quote(&src))),
                None => {
                    let ks = s.kind();
                    conflict(s.to_string(), ks, format!("{op}{}", quote(&src)), K_STRING, s_first)
                }
            }
        }
        V::Val(val) => match check_scalar(&val, &s) {
            Ok(()) => V::Atom(s),
            Err(e) => e,
        },
        V::And(xs, _) => {
            let mut cur = V::Atom(s);
            for x in xs {
                cur = unify(cur, x);
                if matches!(cur, V::Bot(_)) {
                    break;
                }
            }
            cur
        }
        _ => V::Atom(s),
    }
}

/// Two non-concrete constraints (no `_`, atoms, disjunctions or structs).
fn meet(x: V, y: V) -> V {
    let (mx, my) = (mask(&x), mask(&y));
    let m = mx & my;
    if m == 0 {
        return V::Bot(format!("conflicting values {x} and {y} (mismatched types {} and {})", kind_name(mx), kind_name(my)));
    }
    if let (V::Kind(_), V::Kind(_)) = (&x, &y) {
        return V::Kind(m);
    }
    let mut items = Vec::new();
    for v in [x, y] {
        match v {
            V::And(xs, _) => items.extend(xs),
            v => items.push(v),
        }
    }
    if items.len() > MAX_ALTS {
        return V::Bot(format!("more than {MAX_ALTS} constraints on one value"));
    }
    V::And(items, m)
}

/// Adds an alternative, merging equal concrete ones.
pub(super) fn push_alt(out: &mut Vec<(V, bool)>, v: V, d: bool) {
    if let V::Atom(s) = &v
        && let Some(slot) = out.iter_mut().find(|(o, _)| matches!(o, V::Atom(t) if t.kind() == s.kind() && scalar_eq(t, s)))
    {
        slot.1 |= d;
        return;
    }
    out.push((v, d));
}

/// Alternatives that fail are dropped; none left is an error.
pub(super) fn finish_or(out: Vec<(V, bool)>, errs: Vec<String>) -> V {
    match out.len() {
        0 => V::Bot(format!("{} errors in empty disjunction: {}", errs.len(), errs.join("; "))),
        1 => out.into_iter().next().map(|(v, _)| v).unwrap_or(V::Top),
        n if n > MAX_ALTS => V::Bot(format!("disjunction with more than {MAX_ALTS} alternatives")),
        _ => V::Or(out),
    }
}

fn distribute(alts: Vec<(V, bool)>, x: V, alts_left: bool) -> V {
    let mut out: Vec<(V, bool)> = Vec::new();
    let mut errs: Vec<String> = Vec::new();
    for (a, d) in alts {
        let r = if alts_left { unify(a, x.clone()) } else { unify(x.clone(), a) };
        match r {
            V::Bot(m) => errs.push(m),
            V::Inc(m) => return V::Inc(m),
            V::Or(inner) => {
                let any = inner.iter().any(|(_, id)| *id);
                for (v, id) in inner {
                    push_alt(&mut out, v, d && (id || !any));
                }
            }
            v => push_alt(&mut out, v, d),
        }
        if out.len() > MAX_ALTS {
            return V::Bot(format!("disjunction with more than {MAX_ALTS} alternatives"));
        }
    }
    finish_or(out, errs)
}

fn arg_str(v: &Validator) -> Result<&str, V> {
    match v.args.first() {
        Some(Scalar::Str(a)) => Ok(a.as_str()),
        _ => Err(V::Bot(format!("invalid argument to {}: want a string", v.b.name()))),
    }
}

pub(super) fn arg_count(v: &Validator) -> Result<usize, V> {
    match v.args.first() {
        Some(Scalar::Int(n)) if *n >= 0 => Ok(usize::try_from(*n).unwrap_or(usize::MAX)),
        _ => Err(V::Bot(format!("invalid argument to {}: want a non-negative int", v.b.name()))),
    }
}

/// A string validator against a concrete scalar.
pub(super) fn check_scalar(v: &Validator, s: &Scalar) -> Result<(), V> {
    let want = v.b.subject_kind();
    if s.kind() & want == 0 {
        return Err(V::Bot(format!("conflicting values {s} and {v} (mismatched types {} and {})", kind_name(s.kind()), kind_name(want))));
    }
    let Scalar::Str(x) = s else { return Err(V::Bot(format!("{} cannot be applied to {s}", v.b.name()))) };
    let ok = match v.b {
        Builtin::StrHasPrefix => x.starts_with(arg_str(v)?),
        Builtin::StrHasSuffix => x.ends_with(arg_str(v)?),
        Builtin::StrContains => x.contains(arg_str(v)?),
        Builtin::StrMinRunes => x.chars().count() >= arg_count(v)?,
        Builtin::StrMaxRunes => x.chars().count() <= arg_count(v)?,
        Builtin::TimeTime => parse_time(x).is_ok(),
        _ => return Err(V::Bot(format!("{} is not a validator", v.b.name()))),
    };
    if ok { Ok(()) } else { Err(V::Bot(format!("invalid value {s} (does not satisfy {v})"))) }
}

/// `+ - * /` on concrete scalars (`/` always gives a float, as in CUE).
pub(super) fn arith(op: char, x: &Scalar, y: &Scalar) -> V {
    match (x, y) {
        (Scalar::Int(a), Scalar::Int(b)) if op != '/' => {
            let r = match op {
                '+' => a.checked_add(*b),
                '-' => a.checked_sub(*b),
                _ => a.checked_mul(*b),
            };
            r.map(|n| V::Atom(Scalar::Int(n))).unwrap_or_else(|| V::Bot(format!("integer overflow in {x} {op} {y}")))
        }
        (Scalar::Str(a), Scalar::Str(b)) if op == '+' => {
            if a.len() + b.len() > MAX_STR {
                V::Bot(format!("string longer than {MAX_STR} bytes"))
            } else {
                V::Atom(Scalar::Str(format!("{a}{b}")))
            }
        }
        _ => match (x.num(), y.num()) {
            (Some(a), Some(b)) => {
                if op == '/' && b == 0.0 {
                    return V::Bot(format!("division by zero in {x} / {y}"));
                }
                let r = match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    _ => a / b,
                };
                V::Atom(Scalar::Float(r))
            }
            _ => V::Bot(format!("invalid operands {x} and {y} to '{op}'")),
        },
    }
}

pub(super) fn compile_regex(src: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(src)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid regular expression {}: {e}", quote(src)))
}

/// Go's `time.Parse(time.RFC3339, s)` followed by `t.UTC().Format(time.RFC3339Nano)`, which is
/// what CUE's `time.Parse` returns (a string).
pub(super) fn parse_time(s: &str) -> Result<String, String> {
    let bad = || format!("parsing time {} as \"{RFC3339}\": cannot parse", quote(s));
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = b.get(r)?;
        if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(t.iter().fold(0i64, |a, d| a.saturating_mul(10).saturating_add(i64::from(*d - b'0'))))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return Err(bad());
    }
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) =
        (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19))
    else {
        return Err(bad());
    };
    let mut i = 19;
    let mut nanos: i64 = 0;
    if at(i, b'.') {
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let digits = j - start;
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        nanos = num(start..j).ok_or_else(bad)? * 10i64.pow((9 - digits) as u32);
        i = j;
    }
    let offset: i64 = if at(i, b'Z') && b.len() == i + 1 {
        0
    } else if (at(i, b'+') || at(i, b'-')) && b.len() == i + 6 && at(i + 3, b':') {
        let (Some(oh), Some(om)) = (num(i + 1..i + 3), num(i + 4..i + 6)) else { return Err(bad()) };
        if oh > 23 || om > 59 {
            return Err(bad());
        }
        let o = oh * 3600 + om * 60;
        if at(i, b'-') { -o } else { o }
    } else {
        return Err(bad());
    };
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59 {
        return Err(format!("parsing time {}: field out of range", quote(s)));
    }
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y2, m2, d2) = civil_from_days(days);
    if !(0..=9999).contains(&y2) {
        return Err(format!("parsing time {}: year outside 0000-9999 in UTC", quote(s)));
    }
    let mut out = format!("{y2:04}-{m2:02}-{d2:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    Ok(out)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}
