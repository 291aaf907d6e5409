//! Lexer, recursive-descent parser and name resolution for the CUE subset. Everything outside the
//! subset stops here with an error naming the construct and its position.

use std::collections::{HashMap, HashSet};
use std::fmt;

use regex::Regex;

use super::value::{
    self, BoundOp, Builtin, K_BOOL, K_BYTES, K_FLOAT, K_INT, K_NUMBER, K_STRING, RFC3339, RFC3339_NANO, Scalar,
};

/// Largest policy accepted.
pub(super) const MAX_SOURCE: usize = 64 * 1024;
/// Deepest syntactic nesting (structs, lists, parentheses, unary operators, call arguments).
pub(super) const MAX_DEPTH: usize = 64;
/// Highest expression tree (binary operator chains and selector chains included).
pub(super) const MAX_HEIGHT: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(super) struct Pos {
    pub(super) line: u32,
    pub(super) col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.col)
    }
}

/// A field name: regular (`a`, `"a"`), hidden (`_a`), definition (`#A`), or a list index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Label {
    Regular(String),
    Hidden(String),
    Def(String),
    Index(usize),
}

impl Label {
    pub(super) fn of_ident(name: &str) -> Label {
        if name.starts_with('#') || name.starts_with("_#") {
            Label::Def(name.to_string())
        } else if name.starts_with('_') {
            Label::Hidden(name.to_string())
        } else {
            Label::Regular(name.to_string())
        }
    }
}

fn plain_ident(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '$') && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Regular(s) if plain_ident(s) => f.write_str(s),
            Label::Regular(s) => f.write_str(&value::quote(s)),
            Label::Hidden(s) | Label::Def(s) => f.write_str(s),
            Label::Index(i) => write!(f, "{i}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Marker {
    Regular,
    Optional,
    Required,
}

#[derive(Clone, Debug)]
pub(super) struct StructLit {
    pub(super) decls: Vec<Decl>,
    /// `...` among the declarations: not closed even inside a definition.
    pub(super) open: bool,
    pub(super) pos: Pos,
}

#[derive(Clone, Debug)]
pub(super) enum Decl {
    Field { label: Label, marker: Marker, value: Expr },
    Embed(Expr),
    If { cond: Expr, body: StructLit },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UnOp {
    Neg,
    Plus,
    Not,
    Bound(BoundOp),
    Match,
    NotMatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BinOp {
    Or,
    And,
    LOr,
    LAnd,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
    NotMatch,
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Debug)]
pub(super) enum Expr {
    Lit(Scalar),
    Top,
    Bottom,
    Kind(u8),
    /// Before name resolution only.
    Ident(String, Pos),
    /// A field `up` struct scopes out from the expression's own scope.
    Ref { up: usize, label: Label },
    Builtin(Builtin),
    Sel(Box<Expr>, Label, Pos),
    Index(Box<Expr>, Box<Expr>),
    Call(Box<Expr>, Vec<Expr>, Pos),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `*x` (a default inside a disjunction).
    Default(Box<Expr>),
    Paren(Box<Expr>),
    Struct(StructLit),
    /// Elements; `None` closed, `Some(None)` `...`, `Some(Some(t))` `...t`.
    List(Vec<Expr>, Option<Option<Box<Expr>>>, Pos),
}

/// A compiled policy: the file as one struct literal, and the regular expressions it spells out.
#[derive(Clone, Debug)]
pub(super) struct Compiled {
    pub(super) root: StructLit,
    pub(super) regexes: HashMap<String, Regex>,
    /// Imports never used (`imported and not used: …` with their position).
    pub(super) unused: Vec<String>,
}

pub(super) fn compile(src: &str) -> Result<Compiled, String> {
    if src.len() > MAX_SOURCE {
        return Err(format!("policy is {} bytes, more than the limit of {MAX_SOURCE}", src.len()));
    }
    let toks = lex(src)?;
    let mut p = Parser { toks, i: 0, depth: 0 };
    let (mut root, imports) = p.file()?;
    let mut r = Resolver { scopes: Vec::new(), imports, regexes: HashMap::new() };
    r.structure(&mut root)?;
    let unused = r.imports.iter().filter(|i| !i.used).map(|i| format!("imported and not used: {} at {}", value::quote(&i.path), i.pos)).collect();
    Ok(Compiled { root, regexes: r.regexes, unused })
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Clone, Debug, PartialEq)]
enum Tok {
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
    "...", "<=", ">=", "==", "!=", "=~", "!~", "&&", "||", "{", "}", "[", "]", "(", ")", ":", ".", "?", "!", "&", "|", "*", "+", "-",
    "/", "<", ">", "=",
];

/// Whether a newline after this token ends a declaration or element (an implicit comma).
fn ends_line(t: &Tok) -> bool {
    matches!(t, Tok::Ident(_) | Tok::Str(_) | Tok::Int(_) | Tok::Float(_) | Tok::Bottom | Tok::P(")" | "]" | "}" | "..."))
}

fn describe(t: &Tok) -> String {
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

fn lex(src: &str) -> Result<Vec<(Tok, Pos)>, String> {
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
            Tok::P(*p)
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

// ---------------------------------------------------------------------------------------------
// Parser

#[derive(Debug)]
struct Import {
    name: String,
    path: String,
    pos: Pos,
    used: bool,
}

struct Parser {
    toks: Vec<(Tok, Pos)>,
    i: usize,
    depth: usize,
}

fn height(e: &Expr) -> usize {
    match e {
        Expr::Sel(x, ..) | Expr::Unary(_, x) | Expr::Default(x) | Expr::Paren(x) => 1 + height(x),
        Expr::Index(a, b) | Expr::Binary(_, a, b) => 1 + height(a).max(height(b)),
        Expr::Call(f, args, _) => 1 + args.iter().map(height).max().unwrap_or(0).max(height(f)),
        Expr::Struct(s) => 1 + struct_height(s),
        Expr::List(xs, ell, _) => {
            let t = match ell {
                Some(Some(t)) => height(t),
                _ => 0,
            };
            1 + xs.iter().map(height).max().unwrap_or(0).max(t)
        }
        _ => 1,
    }
}

fn struct_height(s: &StructLit) -> usize {
    s.decls
        .iter()
        .map(|d| match d {
            Decl::Field { value, .. } => height(value),
            Decl::Embed(e) => height(e),
            Decl::If { cond, body } => height(cond).max(1 + struct_height(body)),
        })
        .max()
        .unwrap_or(0)
}

impl Parser {
    fn tok(&self) -> &Tok {
        &self.toks[self.i].0
    }

    fn tok_at(&self, k: usize) -> &Tok {
        &self.toks[(self.i + k).min(self.toks.len() - 1)].0
    }

    fn pos(&self) -> Pos {
        self.toks[self.i].1
    }

    fn bump(&mut self) -> Tok {
        let t = self.toks[self.i].0.clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn is(&self, p: &str) -> bool {
        matches!(self.tok(), Tok::P(q) if *q == p)
    }

    fn is_comma(&self) -> bool {
        matches!(self.tok(), Tok::Comma)
    }

    fn is_ident(&self, name: &str) -> bool {
        matches!(self.tok(), Tok::Ident(n) if n == name)
    }

    fn expect(&mut self, p: &'static str) -> Result<(), String> {
        if self.is(p) {
            self.bump();
            Ok(())
        } else {
            Err(format!("expected '{p}', found {} at {}", describe(self.tok()), self.pos()))
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(format!("nesting deeper than {MAX_DEPTH} levels at {}", self.pos())) } else { Ok(()) }
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn skip_commas(&mut self) {
        while self.is_comma() {
            self.bump();
        }
    }

    /// After a declaration: a comma (or newline), or the end of the enclosing struct or file.
    fn end_decl(&mut self) -> Result<(), String> {
        if self.is_comma() {
            self.bump();
            return Ok(());
        }
        if self.is("}") || matches!(self.tok(), Tok::Eof) {
            return Ok(());
        }
        Err(format!("expected ',' or newline, found {} at {}", describe(self.tok()), self.pos()))
    }

    fn file(&mut self) -> Result<(StructLit, Vec<Import>), String> {
        self.skip_commas();
        let pos = self.pos();
        if self.is_ident("package") && matches!(self.tok_at(1), Tok::Ident(_)) {
            self.bump();
            self.bump();
            self.end_decl()?;
        }
        let mut imports = Vec::new();
        loop {
            self.skip_commas();
            if !(self.is_ident("import") && matches!(self.tok_at(1), Tok::Str(_) | Tok::Ident(_) | Tok::P("("))) {
                break;
            }
            self.bump();
            if self.is("(") {
                self.bump();
                loop {
                    self.skip_commas();
                    if self.is(")") {
                        self.bump();
                        break;
                    }
                    imports.push(self.import_spec()?);
                }
            } else {
                imports.push(self.import_spec()?);
            }
            self.end_decl()?;
        }
        let mut root = self.decls(false)?;
        root.pos = pos;
        Ok((root, imports))
    }

    fn import_spec(&mut self) -> Result<Import, String> {
        let pos = self.pos();
        let alias = if let Tok::Ident(a) = self.tok() {
            let a = a.clone();
            self.bump();
            Some(a)
        } else {
            None
        };
        let Tok::Str(path) = self.tok().clone() else {
            return Err(format!("expected an import path string, found {} at {}", describe(self.tok()), self.pos()));
        };
        self.bump();
        if !matches!(path.as_str(), "time" | "list" | "struct" | "strings") {
            return Err(format!("unsupported construct: import {} at {pos} (supported: time, list, struct, strings)", value::quote(&path)));
        }
        let name = alias.unwrap_or_else(|| path.clone());
        Ok(Import { name, path, pos, used: false })
    }

    /// Declarations up to `}` (`closing`) or the end of the file.
    fn decls(&mut self, closing: bool) -> Result<StructLit, String> {
        let pos = self.pos();
        let mut decls = Vec::new();
        let mut open = false;
        loop {
            self.skip_commas();
            if closing && self.is("}") {
                break;
            }
            if matches!(self.tok(), Tok::Eof) {
                if closing {
                    return Err(format!("expected '}}', found end of input at {}", self.pos()));
                }
                break;
            }
            if self.is("...") {
                self.bump();
                open = true;
                self.end_decl()?;
                continue;
            }
            let d = self.decl()?;
            decls.push(d);
            self.end_decl()?;
        }
        Ok(StructLit { decls, open, pos })
    }

    /// `label:`, `label?:` or `label!:` ahead.
    fn field_start(&self) -> bool {
        let label = match self.tok() {
            Tok::Ident(n) => n != "_",
            Tok::Str(_) => true,
            _ => false,
        };
        label
            && (matches!(self.tok_at(1), Tok::P(":"))
                || (matches!(self.tok_at(1), Tok::P("?" | "!")) && matches!(self.tok_at(2), Tok::P(":"))))
    }

    fn decl(&mut self) -> Result<Decl, String> {
        let pos = self.pos();
        if !self.field_start() {
            if let Tok::Ident(kw) = self.tok() {
                let kw = kw.clone();
                match kw.as_str() {
                    "if" => {
                        self.bump();
                        let cond = self.expr()?;
                        if !self.is("{") {
                            return Err(format!("expected '{{' after the if condition, found {} at {}", describe(self.tok()), self.pos()));
                        }
                        let body = self.struct_lit()?;
                        return Ok(Decl::If { cond, body });
                    }
                    "for" => return Err(format!("unsupported construct: for comprehension at {pos}")),
                    "let" => return Err(format!("unsupported construct: let declaration at {pos}")),
                    "import" | "package" => return Err(format!("unsupported construct: {kw} after other declarations at {pos}")),
                    _ => {}
                }
                if matches!(self.tok_at(1), Tok::P("=")) {
                    return Err(format!("unsupported construct: alias {kw}= at {pos}"));
                }
            }
        }
        if self.field_start() {
            return self.field();
        }
        let e = self.expr()?;
        if self.is(":") || self.is("?") || self.is("!") {
            return Err(format!("unsupported construct: pattern constraint or dynamic label ([...]: or (...):) at {pos}"));
        }
        Ok(Decl::Embed(e))
    }

    fn field(&mut self) -> Result<Decl, String> {
        let pos = self.pos();
        let label = match self.bump() {
            Tok::Ident(n) => Label::of_ident(&n),
            Tok::Str(s) => Label::Regular(s),
            t => return Err(format!("expected a label, found {} at {pos}", describe(&t))),
        };
        let marker = if self.is("?") {
            self.bump();
            Marker::Optional
        } else if self.is("!") {
            self.bump();
            Marker::Required
        } else {
            Marker::Regular
        };
        self.expect(":")?;
        let value = if self.field_start() {
            let vpos = self.pos();
            self.enter()?;
            let inner = self.field()?;
            self.leave();
            Expr::Struct(StructLit { decls: vec![inner], open: false, pos: vpos })
        } else {
            self.expr()?
        };
        Ok(Decl::Field { label, marker, value })
    }

    fn struct_lit(&mut self) -> Result<StructLit, String> {
        self.expect("{")?;
        self.enter()?;
        let s = self.decls(true)?;
        self.expect("}")?;
        self.leave();
        Ok(s)
    }

    fn expr(&mut self) -> Result<Expr, String> {
        self.binary(1)
    }

    fn binop(&self) -> Option<(BinOp, u8)> {
        let Tok::P(p) = self.tok() else { return None };
        Some(match *p {
            "|" => (BinOp::Or, 1),
            "&" => (BinOp::And, 2),
            "||" => (BinOp::LOr, 3),
            "&&" => (BinOp::LAnd, 4),
            "==" => (BinOp::Eq, 5),
            "!=" => (BinOp::Ne, 5),
            "<" => (BinOp::Lt, 5),
            "<=" => (BinOp::Le, 5),
            ">" => (BinOp::Gt, 5),
            ">=" => (BinOp::Ge, 5),
            "=~" => (BinOp::Match, 5),
            "!~" => (BinOp::NotMatch, 5),
            "+" => (BinOp::Add, 6),
            "-" => (BinOp::Sub, 6),
            "*" => (BinOp::Mul, 7),
            "/" => (BinOp::Div, 7),
            _ => return None,
        })
    }

    fn binary(&mut self, min: u8) -> Result<Expr, String> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.binop() {
            if prec < min {
                break;
            }
            let pos = self.pos();
            self.bump();
            let rhs = self.binary(prec + 1)?;
            if 1 + height(&lhs).max(height(&rhs)) > MAX_HEIGHT {
                return Err(format!("expression nested deeper than {MAX_HEIGHT} levels at {pos}"));
            }
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        let op = match self.tok() {
            Tok::P("*") => None,
            Tok::P("-") => Some(UnOp::Neg),
            Tok::P("+") => Some(UnOp::Plus),
            Tok::P("!") => Some(UnOp::Not),
            Tok::P("<") => Some(UnOp::Bound(BoundOp::Lt)),
            Tok::P("<=") => Some(UnOp::Bound(BoundOp::Le)),
            Tok::P(">") => Some(UnOp::Bound(BoundOp::Gt)),
            Tok::P(">=") => Some(UnOp::Bound(BoundOp::Ge)),
            Tok::P("!=") => Some(UnOp::Bound(BoundOp::Ne)),
            Tok::P("=~") => Some(UnOp::Match),
            Tok::P("!~") => Some(UnOp::NotMatch),
            _ => return self.postfix(),
        };
        self.bump();
        self.enter()?;
        let x = self.unary()?;
        self.leave();
        Ok(match op {
            None => Expr::Default(Box::new(x)),
            Some(op) => Expr::Unary(op, Box::new(x)),
        })
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let mut e = self.operand()?;
        loop {
            let pos = self.pos();
            if self.is(".") {
                self.bump();
                match self.bump() {
                    Tok::Ident(n) => e = Expr::Sel(Box::new(e), Label::of_ident(&n), pos),
                    t => return Err(format!("expected an identifier after '.', found {} at {pos}", describe(&t))),
                }
            } else if self.is("[") {
                self.bump();
                self.enter()?;
                let i = self.expr()?;
                self.leave();
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(i));
            } else if self.is("(") {
                self.bump();
                self.enter()?;
                let mut args = Vec::new();
                loop {
                    self.skip_commas();
                    if self.is(")") {
                        break;
                    }
                    args.push(self.expr()?);
                    if !self.is_comma() && !self.is(")") {
                        return Err(format!("expected ',' or ')' in the call, found {} at {}", describe(self.tok()), self.pos()));
                    }
                }
                self.bump();
                self.leave();
                e = Expr::Call(Box::new(e), args, pos);
            } else {
                break;
            }
            if height(&e) > MAX_HEIGHT {
                return Err(format!("expression nested deeper than {MAX_HEIGHT} levels at {pos}"));
            }
        }
        Ok(e)
    }

    fn operand(&mut self) -> Result<Expr, String> {
        let pos = self.pos();
        if self.is("{") {
            return Ok(Expr::Struct(self.struct_lit()?));
        }
        if self.is("[") {
            return self.list();
        }
        if self.is("(") {
            self.bump();
            self.enter()?;
            let e = self.expr()?;
            self.expect(")")?;
            self.leave();
            return Ok(Expr::Paren(Box::new(e)));
        }
        Ok(match self.bump() {
            Tok::Str(s) => Expr::Lit(Scalar::Str(s)),
            Tok::Int(i) => Expr::Lit(Scalar::Int(i)),
            Tok::Float(f) => Expr::Lit(Scalar::Float(f)),
            Tok::Bottom => Expr::Bottom,
            Tok::Ident(n) => match n.as_str() {
                "true" => Expr::Lit(Scalar::Bool(true)),
                "false" => Expr::Lit(Scalar::Bool(false)),
                "null" => Expr::Lit(Scalar::Null),
                "_" => Expr::Top,
                "for" | "if" | "let" => return Err(format!("unsupported construct: {n} clause (list comprehension) at {pos}")),
                _ => Expr::Ident(n, pos),
            },
            t => return Err(format!("unexpected {} at {pos}", describe(&t))),
        })
    }

    fn list(&mut self) -> Result<Expr, String> {
        let pos = self.pos();
        self.expect("[")?;
        self.enter()?;
        let mut elems = Vec::new();
        let mut ell = None;
        loop {
            self.skip_commas();
            if self.is("]") {
                break;
            }
            if self.is("...") {
                self.bump();
                let t = if self.is_comma() || self.is("]") { None } else { Some(Box::new(self.expr()?)) };
                ell = Some(t);
                self.skip_commas();
                if !self.is("]") {
                    return Err(format!("expected ']' after '...' in a list, found {} at {}", describe(self.tok()), self.pos()));
                }
                break;
            }
            elems.push(self.expr()?);
            if !self.is_comma() && !self.is("]") {
                return Err(format!("expected ',' or ']' in a list, found {} at {}", describe(self.tok()), self.pos()));
            }
        }
        self.expect("]")?;
        self.leave();
        Ok(Expr::List(elems, ell, pos))
    }
}

// ---------------------------------------------------------------------------------------------
// Name resolution: identifiers become field references (`up` scopes out), kinds or builtins;
// struct and list literals are only accepted where their value is unified into a field.

struct Resolver {
    scopes: Vec<HashSet<Label>>,
    imports: Vec<Import>,
    regexes: HashMap<String, Regex>,
}

fn kind_of(name: &str) -> Option<u8> {
    Some(match name {
        "string" => K_STRING,
        "int" => K_INT,
        "float" => K_FLOAT,
        "number" => K_NUMBER,
        "bool" => K_BOOL,
        "bytes" => K_BYTES,
        _ => return None,
    })
}

impl Resolver {
    fn in_scope(&self, name: &str) -> bool {
        let l = Label::of_ident(name);
        self.scopes.iter().any(|s| s.contains(&l))
    }

    fn is_import(&self, name: &str) -> bool {
        !self.in_scope(name) && self.imports.iter().any(|i| i.name == name)
    }

    fn structure(&mut self, s: &mut StructLit) -> Result<(), String> {
        let labels: HashSet<Label> = s
            .decls
            .iter()
            .filter_map(|d| match d {
                Decl::Field { label, .. } => Some(label.clone()),
                _ => None,
            })
            .collect();
        self.scopes.push(labels);
        for d in &mut s.decls {
            match d {
                Decl::Field { value, .. } => self.expr(value, true)?,
                Decl::Embed(e) => self.expr(e, true)?,
                Decl::If { cond, body } => {
                    self.expr(cond, false)?;
                    self.structure(body)?;
                }
            }
        }
        self.scopes.pop();
        Ok(())
    }

    fn lookup(&self, name: &str, pos: Pos) -> Result<Expr, String> {
        let label = Label::of_ident(name);
        for (up, scope) in self.scopes.iter().rev().enumerate() {
            if scope.contains(&label) {
                return Ok(Expr::Ref { up, label });
            }
        }
        if let Some(k) = kind_of(name) {
            return Ok(Expr::Kind(k));
        }
        if name == "len" {
            return Ok(Expr::Builtin(Builtin::Len));
        }
        if self.imports.iter().any(|i| i.name == name) {
            return Err(format!("package {name} used as a value at {pos}"));
        }
        if matches!(name, "close" | "and" | "or" | "div" | "mod" | "quo" | "rem" | "error") {
            return Err(format!("unsupported construct: builtin {name} at {pos}"));
        }
        if matches!(
            name,
            "uint" | "int8" | "int16" | "int32" | "int64" | "int128" | "uint8" | "uint16" | "uint32" | "uint64" | "uint128" | "rune" | "float32" | "float64"
        ) {
            return Err(format!("unsupported construct: predeclared type {name} at {pos}"));
        }
        Err(format!("reference {} not found at {pos}", value::quote(name)))
    }

    /// `pkg.name` of an import.
    fn builtin(&mut self, pkg: &str, name: &Label, pos: Pos, called: bool) -> Result<Expr, String> {
        let Some(imp) = self.imports.iter_mut().find(|i| i.name == pkg) else {
            return Err(format!("reference {} not found at {pos}", value::quote(pkg)));
        };
        imp.used = true;
        let path = imp.path.clone();
        let Label::Regular(n) = name else { return Err(format!("unsupported construct: {pkg}.{name} at {pos}")) };
        let b = match (path.as_str(), n.as_str()) {
            ("time", "RFC3339") => return Ok(Expr::Lit(Scalar::Str(RFC3339.into()))),
            ("time", "RFC3339Nano") => return Ok(Expr::Lit(Scalar::Str(RFC3339_NANO.into()))),
            ("time", "Parse") => Builtin::TimeParse,
            ("time", "Time") => Builtin::TimeTime,
            ("list", "MinItems") => Builtin::ListMinItems,
            ("list", "MaxItems") => Builtin::ListMaxItems,
            ("list", "Contains") => Builtin::ListContains,
            ("struct", "MinFields") => Builtin::StructMinFields,
            ("struct", "MaxFields") => Builtin::StructMaxFields,
            ("strings", "HasPrefix") => Builtin::StrHasPrefix,
            ("strings", "HasSuffix") => Builtin::StrHasSuffix,
            ("strings", "Contains") => Builtin::StrContains,
            ("strings", "ToLower") => Builtin::StrToLower,
            ("strings", "ToUpper") => Builtin::StrToUpper,
            ("strings", "MinRunes") => Builtin::StrMinRunes,
            ("strings", "MaxRunes") => Builtin::StrMaxRunes,
            _ => return Err(format!("unsupported construct: {path}.{n} at {pos} (not in the supported builtin subset)")),
        };
        if !called && b.arity().1 != Some(0) {
            return Err(format!("{} must be called at {pos}", b.name()));
        }
        Ok(Expr::Builtin(b))
    }

    fn regex_lit(&mut self, e: &Expr) -> Result<(), String> {
        if let Expr::Lit(Scalar::Str(s)) = e {
            if !self.regexes.contains_key(s) {
                let re = value::compile_regex(s)?;
                self.regexes.insert(s.clone(), re);
            }
        }
        Ok(())
    }

    /// `conj`: the expression's value is unified into a field (a field value, an embedding, an
    /// operand of `&` there, a list element); only there may struct and list literals appear.
    fn expr(&mut self, e: &mut Expr, conj: bool) -> Result<(), String> {
        match e {
            Expr::Ident(name, pos) => {
                let r = self.lookup(name, *pos)?;
                if let Expr::Builtin(b) = &r {
                    if b.arity().1 != Some(0) {
                        return Err(format!("{} must be called at {pos}", b.name()));
                    }
                }
                *e = r;
            }
            Expr::Sel(x, label, pos) => {
                let pkg = match &**x {
                    Expr::Ident(n, _) if self.is_import(n) => Some(n.clone()),
                    _ => None,
                };
                match pkg {
                    Some(pkg) => {
                        let (label, pos) = (label.clone(), *pos);
                        let r = self.builtin(&pkg, &label, pos, false)?;
                        *e = r;
                    }
                    None => self.expr(x, false)?,
                }
            }
            Expr::Call(f, args, pos) => {
                let pos = *pos;
                let b = match &**f {
                    Expr::Sel(x, label, spos) => {
                        let pkg = match &**x {
                            Expr::Ident(n, _) if self.is_import(n) => n.clone(),
                            _ => return Err(format!("unsupported construct: call of a non-builtin function at {pos}")),
                        };
                        let (label, spos) = (label.clone(), *spos);
                        match self.builtin(&pkg, &label, spos, true)? {
                            Expr::Builtin(b) => b,
                            _ => return Err(format!("{pkg}.{label} is not a function at {pos}")),
                        }
                    }
                    Expr::Ident(n, _) if n.as_str() == "len" && !self.in_scope(n) => Builtin::Len,
                    Expr::Ident(n, ipos) => {
                        let ipos = *ipos;
                        self.lookup(n, ipos)?;
                        return Err(format!("unsupported construct: call of {n} at {pos} (only builtin functions can be called)"));
                    }
                    _ => return Err(format!("unsupported construct: call of a non-builtin function at {pos}")),
                };
                **f = Expr::Builtin(b);
                let (full, vform) = b.arity();
                if args.len() != full && Some(args.len()) != vform {
                    return Err(format!("{} called with {} arguments at {pos}", b.name(), args.len()));
                }
                for a in args.iter_mut() {
                    self.expr(a, false)?;
                }
                if b == Builtin::TimeParse {
                    let layout_ok = matches!(args.first(), Some(Expr::Lit(Scalar::Str(s))) if s.as_str() == RFC3339 || s.as_str() == RFC3339_NANO);
                    if !layout_ok {
                        return Err(format!("unsupported construct: time.Parse layout other than time.RFC3339 or time.RFC3339Nano at {pos}"));
                    }
                }
            }
            Expr::Index(x, i) => {
                self.expr(x, false)?;
                self.expr(i, false)?;
            }
            Expr::Unary(op, x) => {
                self.expr(x, false)?;
                if matches!(op, UnOp::Match | UnOp::NotMatch) {
                    self.regex_lit(x)?;
                }
            }
            Expr::Binary(op, a, b) => {
                if *op == BinOp::Or {
                    for side in [&**a, &**b] {
                        let side = match side {
                            Expr::Default(x) => &**x,
                            other => other,
                        };
                        if let Expr::Ident(n, p) = side {
                            if matches!(Label::of_ident(n), Label::Def(_)) && self.in_scope(n) {
                                return Err(format!(
                                    "unsupported construct: disjunction with the definition {n} at {p} (disjunctions of structs are not supported)"
                                ));
                            }
                        }
                    }
                }
                let sub = *op == BinOp::And && conj;
                self.expr(a, sub)?;
                self.expr(b, sub)?;
                if matches!(op, BinOp::Match | BinOp::NotMatch) {
                    self.regex_lit(b)?;
                }
            }
            Expr::Default(x) => self.expr(x, false)?,
            Expr::Paren(x) => self.expr(x, conj)?,
            Expr::Struct(s) => {
                if !conj {
                    return Err(format!("unsupported construct: struct literal inside an expression at {}", s.pos));
                }
                self.structure(s)?;
            }
            Expr::List(xs, ell, pos) => {
                if !conj {
                    return Err(format!("unsupported construct: list literal inside an expression at {pos}"));
                }
                for x in xs.iter_mut() {
                    self.expr(x, true)?;
                }
                if let Some(Some(t)) = ell {
                    self.expr(t, true)?;
                }
            }
            Expr::Lit(_) | Expr::Top | Expr::Bottom | Expr::Kind(_) | Expr::Ref { .. } | Expr::Builtin(_) => {}
        }
        Ok(())
    }
}
