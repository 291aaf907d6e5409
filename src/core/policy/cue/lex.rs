//! The lexer of the CUE subset: tokens, with string and number literals decoded.

use super::ast::Pos;
use super::value;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    Int(i128),
    Float(f64),
    Bottom,
    P(&'static str),
    Comma,
    Eof,
}

const PUNCTS: &[&str] = &[
    "...", "<=", ">=", "==", "!=", "=~", "!~", "&&", "||", "{", "}", "[", "]", "(", ")", ":", ".", "?", "!", "&", "|", "*", "+", "-", "/",
    "<", ">", "=",
];

/// Whether a newline after this token ends a declaration or element (an implicit comma).
fn ends_line(t: &Tok) -> bool {
    matches!(t, Tok::Ident(_) | Tok::Str(_) | Tok::Int(_) | Tok::Float(_) | Tok::Bottom | Tok::P(")" | "]" | "}" | "..."))
}

pub(super) fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(n) => format!("identifier {n}"),
        Tok::Str(s) => format!("string {}", value::quote(s)),
        Tok::Int(i) => format!("number {i}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::Bottom => "_|_".into(),
        Tok::P(p) => format!("'{p}'"),
        Tok::Comma => "',' or newline".into(),
        Tok::Eof => "end of input".into(),
    }
}

pub(super) fn lex(src: &str) -> Result<Vec<(Tok, Pos)>, String> {
    let b = src.as_bytes();
    let mut out: Vec<(Tok, Pos)> = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    while i < b.len() {
        let c = b[i];
        let pos = Pos { line, col };
        match c {
            b'\n' => {
                if out.last().is_some_and(|(t, _)| ends_line(t)) {
                    out.push((Tok::Comma, pos));
                }
                i += 1;
                line += 1;
                col = 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                col += 1;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        let start = i;
        let tok = if b[i..].starts_with(b"_|_") {
            i += 3;
            Tok::Bottom
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c == b'#' {
            if c == b'#' && matches!(b.get(i + 1), Some(b'"' | b'#')) {
                return Err(format!("unsupported construct: raw string #\"...\"# at {pos}"));
            }
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'$' | b'#')) {
                i += 1;
            }
            Tok::Ident(src[start..i].to_string())
        } else if c.is_ascii_digit() {
            lex_number(src, &mut i, pos)?
        } else if c == b'"' {
            if b[i..].starts_with(b"\"\"\"") {
                return Err(format!("unsupported construct: multi-line string \"\"\" at {pos}"));
            }
            let (s, next) = lex_string(src, i, pos)?;
            i = next;
            Tok::Str(s)
        } else if c == b'\'' {
            return Err(format!("unsupported construct: bytes literal '...' at {pos}"));
        } else if c == b'@' {
            return Err(format!("unsupported construct: attribute @... at {pos}"));
        } else if c == b',' {
            i += 1;
            Tok::Comma
        } else if let Some(p) = PUNCTS.iter().find(|p| b[i..].starts_with(p.as_bytes())) {
            i += p.len();
            Tok::P(p)
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(format!("unexpected character {ch:?} at {pos}"));
        };
        col += u32::try_from(i - start).unwrap_or(u32::MAX);
        out.push((tok, pos));
    }
    let pos = Pos { line, col };
    if out.last().is_some_and(|(t, _)| ends_line(t)) {
        out.push((Tok::Comma, pos));
    }
    out.push((Tok::Eof, pos));
    Ok(out)
}

fn lex_number(src: &str, i: &mut usize, pos: Pos) -> Result<Tok, String> {
    let b = src.as_bytes();
    let start = *i;
    let invalid = || format!("invalid number literal at {pos}");
    if b[start] == b'0' && matches!(b.get(start + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')) {
        let radix = match b[start + 1] {
            b'x' | b'X' => 16,
            b'o' | b'O' => 8,
            _ => 2,
        };
        *i += 2;
        let ds = *i;
        while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == b'_') {
            *i += 1;
        }
        let digits: String = src[ds..*i].chars().filter(|c| *c != '_').collect();
        return i128::from_str_radix(&digits, radix).map(Tok::Int).map_err(|_| invalid());
    }
    let mut float = false;
    while *i < b.len() && (b[*i].is_ascii_digit() || b[*i] == b'_') {
        *i += 1;
    }
    if *i + 1 < b.len() && b[*i] == b'.' && b[*i + 1].is_ascii_digit() {
        float = true;
        *i += 1;
        while *i < b.len() && (b[*i].is_ascii_digit() || b[*i] == b'_') {
            *i += 1;
        }
    }
    if *i < b.len() && (b[*i] == b'e' || b[*i] == b'E') {
        let mut j = *i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            float = true;
            *i = j;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
        }
    }
    if *i < b.len() && (b[*i].is_ascii_alphabetic() || b[*i] == b'_') {
        return Err(format!("unsupported construct: number with a multiplier or suffix at {pos}"));
    }
    let text: String = src[start..*i].chars().filter(|c| *c != '_').collect();
    if float {
        text.parse::<f64>().map(Tok::Float).map_err(|_| invalid())
    } else {
        text.parse::<i128>().map(Tok::Int).map_err(|_| invalid())
    }
}

/// A double-quoted string starting at byte `start`; returns it and the index after its quote.
fn lex_string(src: &str, start: usize, pos: Pos) -> Result<(String, usize), String> {
    let unterminated = || format!("string literal not terminated at {pos}");
    let mut out = String::new();
    let mut it = src[start + 1..].char_indices();
    loop {
        let Some((off, ch)) = it.next() else { return Err(unterminated()) };
        match ch {
            '"' => return Ok((out, start + 1 + off + 1)),
            '\n' => return Err(unterminated()),
            '\\' => {
                let Some((_, e)) = it.next() else { return Err(unterminated()) };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    'a' => out.push('\u{7}'),
                    '\\' | '"' | '/' | '\'' => out.push(e),
                    'u' | 'U' => {
                        let n = if e == 'u' { 4 } else { 8 };
                        let mut v: u32 = 0;
                        for _ in 0..n {
                            let Some((_, h)) = it.next() else { return Err(unterminated()) };
                            let d = h.to_digit(16).ok_or_else(|| format!("invalid \\u escape in string literal at {pos}"))?;
                            v = v.wrapping_mul(16).wrapping_add(d);
                        }
                        out.push(char::from_u32(v).ok_or_else(|| format!("invalid Unicode escape in string literal at {pos}"))?);
                    }
                    '(' => return Err(format!("unsupported construct: string interpolation \\(...) at {pos}")),
                    '\n' => return Err(unterminated()),
                    other => return Err(format!("unknown escape sequence \\{other} in string literal at {pos}")),
                }
            }
            c => out.push(c),
        }
    }
}
