//! JMESPath as Kyverno evaluates `{{ }}` variables: a port of github.com/kyverno/go-jmespath
//! (the fork Kyverno pins) over `serde_json::Value` — its lexer, its Pratt parser with the same
//! binding powers, and its tree interpreter. The whole JMESPath grammar parses (identifiers bare
//! and `"quoted"`, `.`, `[N]`/`[-N]`, slices, `[*]`, `[]`, `.*`, `[?filter]`, `|`, `||`, `&&`, `!`,
//! comparisons, `'raw'` and `` `json` `` literals, `@`, multi-select lists and hashes, functions).
//!
//! The fork's semantics, kept exactly:
//! * a field access on an object lacking the key is an error, `Unknown key "<key>" in path`
//!   ([`JpError::NotFound`]); on anything that is not an object it is `null`, no error;
//! * `a.b` and `a[0]` propagate that error; the left side of `||` and `&&`, both sides of `|`,
//!   `!`, comparisons, function arguments, projections, filters and multi-selects turn it into
//!   `null`. Hence `a || 'x'` is `'x'` when `a` is missing, null, false, empty or `""`, and
//!   `missing[*].x` / `missing[].x` are `null` while `missing.x` and `missing[0]` are errors;
//! * ordering comparisons (`<`, `>`, …) of anything but two numbers give `null` (so
//!   `impactScore > '8.0'` selects nothing); `==`/`!=` are deep equality;
//! * truthiness: `false`, `null`, `""`, `[]`, `{}` are false, every number is true.
//!
//! Functions: the standard set minus those taking expression references — abs, avg, ceil,
//! contains, ends_with, floor, join, keys, length, max, merge, min, not_null, reverse, sort,
//! starts_with, sum, to_array, to_number, to_string, type, values — plus Kyverno's to_upper and
//! to_lower. Anything else (`map`, `sort_by`, `&expr`, Kyverno's other custom functions such as
//! `split`, `regex_match`, `time_*`) is [`JpError::Unsupported`], never a guess. Expressions are
//! limited to [`MAX_EXPR_LEN`] bytes and 100 levels of syntax-tree depth.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::operators::{deep_eq, go_json, go_parse_float, go_sprint};

/// Longest expression accepted.
pub const MAX_EXPR_LEN: usize = 4096;
const MAX_NEST: usize = 128;
const MAX_TREE: usize = 100;

/// Why a JMESPath search failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JpError {
    /// Lexer or parser error (Kyverno: `incorrect query <q>: <err>`).
    Syntax(String),
    /// The fork's `NotFoundError`: the named key is missing from an object.
    NotFound(String),
    /// Runtime error (function arity or argument type, slice step 0).
    Eval(String),
    /// Outside the implemented subset (named).
    Unsupported(String),
}

impl std::fmt::Display for JpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JpError::Syntax(m) => write!(f, "SyntaxError: {m}"),
            JpError::NotFound(k) => write!(f, "Unknown key \"{k}\" in path"),
            JpError::Eval(m) => f.write_str(m),
            JpError::Unsupported(m) => write!(f, "unsupported JMESPath construct: {m}"),
        }
    }
}

impl std::error::Error for JpError {}

/// Evaluate `expression` against `data` as Kyverno's go-jmespath fork does.
pub fn search(expression: &str, data: &Value) -> Result<Value, JpError> {
    exec(&parse(expression)?, data)
}

/// Parse `expression` without evaluating it: syntax errors, and the constructs outside the
/// implemented subset (functions not in the list above, `&expr`) anywhere in the expression —
/// for checking policies when they are loaded.
pub fn check(expression: &str) -> Result<(), JpError> {
    unsupported(&parse(expression)?)
}

fn parse(expression: &str) -> Result<Node, JpError> {
    if expression.len() > MAX_EXPR_LEN {
        return Err(JpError::Unsupported(format!("expression longer than {MAX_EXPR_LEN} bytes")));
    }
    let mut p = Parser { toks: tokenize(expression)?, i: 0, nest: 0 };
    let node = p.expr(0)?;
    if p.cur() != T::Eof {
        return Err(syn(format!("Unexpected token at the end of the expression: {:?}", p.cur())));
    }
    if too_deep(&node, 0) {
        return Err(JpError::Unsupported(format!("expression nested deeper than {MAX_TREE} levels")));
    }
    Ok(node)
}

fn unsupported(n: &Node) -> Result<(), JpError> {
    match n {
        Node::ExpRef(_) => return Err(JpError::Unsupported("expression reference (&expr)".into())),
        Node::Function(name, _) if !SUPPORTED.contains(&name.as_str()) => {
            return Err(JpError::Unsupported(format!("function {name}() (implemented: {})", SUPPORTED.join(", "))));
        }
        _ => {}
    }
    children(n).into_iter().try_for_each(unsupported)
}

fn syn(msg: impl Into<String>) -> JpError {
    JpError::Syntax(msg.into())
}

// ---------------------------------------------------------------- lexer

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum T {
    Unknown,
    Star,
    Dot,
    Filter,
    Flatten,
    Lparen,
    Rparen,
    Lbracket,
    Rbracket,
    Lbrace,
    Rbrace,
    Or,
    Pipe,
    Number,
    Unquoted,
    Quoted,
    Comma,
    Colon,
    Lt,
    Lte,
    Gt,
    Gte,
    Eq,
    Ne,
    JsonLit,
    StrLit,
    Current,
    Expref,
    And,
    Not,
    Eof,
}

#[derive(Clone, Debug)]
struct Tok {
    t: T,
    v: String,
}

fn tok(t: T, v: &str) -> Tok {
    Tok { t, v: v.to_string() }
}

/// go-jmespath's rune cursor (`next`/`back`/`peek` with the last rune's width).
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
    lw: usize,
}

impl<'a> Lexer<'a> {
    fn next(&mut self) -> Option<char> {
        match self.s[self.pos..].chars().next() {
            Some(c) => {
                self.lw = c.len_utf8();
                self.pos += self.lw;
                Some(c)
            }
            None => {
                self.lw = 0;
                None
            }
        }
    }

    fn back(&mut self) {
        self.pos -= self.lw;
    }

    fn peek(&mut self) -> Option<char> {
        let c = self.next();
        self.back();
        c
    }

    fn consume_until(&mut self, end: char) -> Result<&'a str, JpError> {
        let s = self.s;
        let start = self.pos;
        let mut cur = self.next();
        while cur != Some(end) && cur.is_some() {
            if cur == Some('\\') && self.peek().is_some() {
                self.next();
            }
            cur = self.next();
        }
        if self.lw == 0 {
            return Err(syn(format!("Unclosed delimiter: {end}")));
        }
        Ok(&s[start..self.pos - self.lw])
    }

    fn raw_string(&mut self) -> Result<String, JpError> {
        let s = self.s;
        let mut idx = self.pos;
        let mut buf = String::new();
        let mut cur = self.next();
        while cur != Some('\'') && self.peek().is_some() {
            if cur == Some('\\') && self.peek() == Some('\'') {
                buf.push_str(&s[idx..self.pos - 1]);
                buf.push('\'');
                self.next();
                idx = self.pos;
            }
            cur = self.next();
        }
        if self.lw == 0 {
            return Err(syn("Unclosed delimiter: '"));
        }
        if idx < self.pos {
            buf.push_str(&s[idx..self.pos - 1]);
        }
        Ok(buf)
    }

    fn two(&mut self, first: char, second: char, matched: T, single: T) -> Tok {
        if self.next() == Some(second) {
            Tok { t: matched, v: format!("{first}{second}") }
        } else {
            self.back();
            Tok { t: single, v: first.to_string() }
        }
    }
}

fn tokenize(expr: &str) -> Result<Vec<Tok>, JpError> {
    let mut lx = Lexer { s: expr, pos: 0, lw: 0 };
    let mut out = Vec::new();
    while let Some(r) = lx.next() {
        let start = lx.pos - lx.lw;
        let t = match r {
            'A'..='Z' | 'a'..='z' | '_' => {
                loop {
                    match lx.next() {
                        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
                        _ => {
                            lx.back();
                            break;
                        }
                    }
                }
                tok(T::Unquoted, &expr[start..lx.pos])
            }
            '.' => tok(T::Dot, "."),
            '*' => tok(T::Star, "*"),
            ',' => tok(T::Comma, ","),
            ':' => tok(T::Colon, ":"),
            '{' => tok(T::Lbrace, "{"),
            '}' => tok(T::Rbrace, "}"),
            ']' => tok(T::Rbracket, "]"),
            '(' => tok(T::Lparen, "("),
            ')' => tok(T::Rparen, ")"),
            '@' => tok(T::Current, "@"),
            '-' | '0'..='9' => {
                loop {
                    match lx.next() {
                        Some(c) if c.is_ascii_digit() => {}
                        _ => {
                            lx.back();
                            break;
                        }
                    }
                }
                tok(T::Number, &expr[start..lx.pos])
            }
            '[' => match lx.next() {
                Some('?') => tok(T::Filter, "[?"),
                Some(']') => tok(T::Flatten, "[]"),
                _ => {
                    lx.back();
                    tok(T::Lbracket, "[")
                }
            },
            '"' => {
                let raw = lx.consume_until('"')?;
                let v: String = serde_json::from_str(&format!("\"{raw}\""))
                    .map_err(|e| syn(format!("invalid quoted identifier \"{raw}\": {e}")))?;
                Tok { t: T::Quoted, v }
            }
            '\'' => Tok { t: T::StrLit, v: lx.raw_string()? },
            '`' => Tok { t: T::JsonLit, v: lx.consume_until('`')?.replace("\\`", "`") },
            '|' => lx.two('|', '|', T::Or, T::Pipe),
            '<' => lx.two('<', '=', T::Lte, T::Lt),
            '>' => lx.two('>', '=', T::Gte, T::Gt),
            '!' => lx.two('!', '=', T::Ne, T::Not),
            '=' => lx.two('=', '=', T::Eq, T::Unknown),
            '&' => lx.two('&', '&', T::And, T::Expref),
            ' ' | '\t' | '\n' | '\r' => continue,
            other => return Err(syn(format!("Unknown char: {other:?}"))),
        };
        out.push(t);
    }
    out.push(tok(T::Eof, ""));
    Ok(out)
}

// ---------------------------------------------------------------- parser

#[derive(Debug, Clone)]
enum Node {
    Cmp(T, Box<Node>, Box<Node>),
    Current,
    Identity,
    ExpRef(Box<Node>),
    Function(String, Vec<Node>),
    Field(String),
    /// left, right, condition
    FilterProjection(Box<Node>, Box<Node>, Box<Node>),
    Flatten(Box<Node>),
    Index(i64),
    IndexExpr(Box<Node>, Box<Node>),
    Literal(Value),
    MultiHash(Vec<(String, Node)>),
    MultiList(Vec<Node>),
    Or(Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Pipe(Box<Node>, Box<Node>),
    Projection(Box<Node>, Box<Node>),
    Sub(Box<Node>, Box<Node>),
    Slice([Option<i64>; 3]),
    ValueProjection(Box<Node>, Box<Node>),
}

fn bx(n: Node) -> Box<Node> {
    Box::new(n)
}

fn bp(t: T) -> u8 {
    match t {
        T::Pipe => 1,
        T::Or => 2,
        T::And => 3,
        T::Eq | T::Lt | T::Lte | T::Gt | T::Gte | T::Ne => 5,
        T::Flatten => 9,
        T::Star => 20,
        T::Filter => 21,
        T::Dot => 40,
        T::Not => 45,
        T::Lbrace => 50,
        T::Lbracket => 55,
        T::Lparen => 60,
        _ => 0,
    }
}

fn children(n: &Node) -> Vec<&Node> {
    match n {
        Node::Cmp(_, a, b)
        | Node::Or(a, b)
        | Node::And(a, b)
        | Node::Pipe(a, b)
        | Node::Projection(a, b)
        | Node::Sub(a, b)
        | Node::IndexExpr(a, b)
        | Node::ValueProjection(a, b) => vec![&**a, &**b],
        Node::FilterProjection(a, b, c) => vec![&**a, &**b, &**c],
        Node::ExpRef(a) | Node::Flatten(a) | Node::Not(a) => vec![&**a],
        Node::Function(_, xs) | Node::MultiList(xs) => xs.iter().collect(),
        Node::MultiHash(pairs) => pairs.iter().map(|(_, x)| x).collect(),
        _ => Vec::new(),
    }
}

fn too_deep(n: &Node, d: usize) -> bool {
    d > MAX_TREE || children(n).into_iter().any(|c| too_deep(c, d + 1))
}

fn parse_int(s: &str) -> Result<i64, JpError> {
    s.parse::<i64>().map_err(|e| syn(format!("invalid index {s:?}: {e}")))
}

struct Parser {
    toks: Vec<Tok>,
    i: usize,
    nest: usize,
}

impl Parser {
    fn tok(&self, n: usize) -> &Tok {
        let i = (self.i + n).min(self.toks.len() - 1);
        &self.toks[i]
    }

    fn la(&self, n: usize) -> T {
        self.tok(n).t
    }

    fn cur(&self) -> T {
        self.la(0)
    }

    fn adv(&mut self) {
        self.i += 1;
    }

    fn expect(&mut self, t: T) -> Result<(), JpError> {
        if self.cur() == t {
            self.adv();
            Ok(())
        } else {
            Err(syn(format!("Expected {t:?}, received: {:?}", self.cur())))
        }
    }

    fn expr(&mut self, rbp: u8) -> Result<Node, JpError> {
        self.nest += 1;
        if self.nest > MAX_NEST {
            return Err(JpError::Unsupported(format!("expression nested deeper than {MAX_NEST} levels")));
        }
        let left_tok = self.tok(0).clone();
        self.adv();
        let mut left = self.nud(left_tok)?;
        while rbp < bp(self.cur()) {
            let t = self.cur();
            self.adv();
            left = self.led(t, left)?;
        }
        self.nest -= 1;
        Ok(left)
    }

    fn nud(&mut self, t: Tok) -> Result<Node, JpError> {
        Ok(match t.t {
            T::JsonLit => Node::Literal(
                serde_json::from_str(&t.v).map_err(|e| syn(format!("invalid JSON literal `{}`: {e}", t.v)))?,
            ),
            T::StrLit => Node::Literal(Value::String(t.v)),
            T::Unquoted => Node::Field(t.v),
            T::Quoted => {
                if self.cur() == T::Lparen {
                    return Err(syn("Can't have quoted identifier as function Name."));
                }
                Node::Field(t.v)
            }
            T::Star => {
                let right = if self.cur() == T::Rbracket { Node::Identity } else { self.proj_rhs(bp(T::Star))? };
                Node::ValueProjection(bx(Node::Identity), bx(right))
            }
            T::Filter => self.filter(Node::Identity)?,
            T::Lbrace => self.multi_hash()?,
            T::Flatten => {
                let right = self.proj_rhs(bp(T::Flatten))?;
                Node::Projection(bx(Node::Flatten(bx(Node::Identity))), bx(right))
            }
            T::Lbracket => {
                let c = self.cur();
                if c == T::Number || c == T::Colon {
                    let right = self.index_expr()?;
                    self.project_if_slice(Node::Identity, right)?
                } else if c == T::Star && self.la(1) == T::Rbracket {
                    self.adv();
                    self.adv();
                    let right = self.proj_rhs(bp(T::Star))?;
                    Node::Projection(bx(Node::Identity), bx(right))
                } else {
                    self.multi_list()?
                }
            }
            T::Current => Node::Current,
            T::Expref => Node::ExpRef(bx(self.expr(bp(T::Expref))?)),
            T::Not => Node::Not(bx(self.expr(bp(T::Not))?)),
            T::Lparen => {
                let e = self.expr(0)?;
                self.expect(T::Rparen)?;
                e
            }
            T::Eof => return Err(syn("Incomplete expression")),
            other => return Err(syn(format!("Invalid token: {other:?}"))),
        })
    }

    fn led(&mut self, t: T, left: Node) -> Result<Node, JpError> {
        Ok(match t {
            T::Dot => {
                if self.cur() != T::Star {
                    let right = self.dot_rhs(bp(T::Dot))?;
                    Node::Sub(bx(left), bx(right))
                } else {
                    self.adv();
                    let right = self.proj_rhs(bp(T::Dot))?;
                    Node::ValueProjection(bx(left), bx(right))
                }
            }
            T::Pipe => Node::Pipe(bx(left), bx(self.expr(bp(T::Pipe))?)),
            T::Or => Node::Or(bx(left), bx(self.expr(bp(T::Or))?)),
            T::And => Node::And(bx(left), bx(self.expr(bp(T::And))?)),
            T::Lparen => {
                let Node::Field(name) = left else {
                    return Err(syn("a function name must be an identifier"));
                };
                let mut args = Vec::new();
                while self.cur() != T::Rparen {
                    let e = self.expr(0)?;
                    if self.cur() == T::Comma {
                        self.expect(T::Comma)?;
                    }
                    args.push(e);
                }
                self.expect(T::Rparen)?;
                Node::Function(name, args)
            }
            T::Filter => self.filter(left)?,
            T::Flatten => {
                let right = self.proj_rhs(bp(T::Flatten))?;
                Node::Projection(bx(Node::Flatten(bx(left))), bx(right))
            }
            T::Eq | T::Ne | T::Gt | T::Gte | T::Lt | T::Lte => {
                let right = self.expr(bp(t))?;
                Node::Cmp(t, bx(left), bx(right))
            }
            T::Lbracket => {
                let c = self.cur();
                if c == T::Number || c == T::Colon {
                    let right = self.index_expr()?;
                    self.project_if_slice(left, right)?
                } else {
                    self.expect(T::Star)?;
                    self.expect(T::Rbracket)?;
                    let right = self.proj_rhs(bp(T::Star))?;
                    Node::Projection(bx(left), bx(right))
                }
            }
            other => return Err(syn(format!("Unexpected token: {other:?}"))),
        })
    }

    fn index_expr(&mut self) -> Result<Node, JpError> {
        if self.la(0) == T::Colon || self.la(1) == T::Colon {
            return self.slice_expr();
        }
        let n = parse_int(&self.tok(0).v)?;
        self.adv();
        self.expect(T::Rbracket)?;
        Ok(Node::Index(n))
    }

    fn slice_expr(&mut self) -> Result<Node, JpError> {
        let mut parts: [Option<i64>; 3] = [None, None, None];
        let mut idx = 0usize;
        let mut c = self.cur();
        while c != T::Rbracket && idx < 3 {
            if c == T::Colon {
                idx += 1;
                self.adv();
            } else if c == T::Number {
                parts[idx] = Some(parse_int(&self.tok(0).v)?);
                self.adv();
            } else {
                return Err(syn(format!("Expected tColon or tNumber, received: {c:?}")));
            }
            c = self.cur();
        }
        self.expect(T::Rbracket)?;
        Ok(Node::Slice(parts))
    }

    fn project_if_slice(&mut self, left: Node, right: Node) -> Result<Node, JpError> {
        let is_slice = matches!(right, Node::Slice(_));
        let ie = Node::IndexExpr(bx(left), bx(right));
        if is_slice {
            let r = self.proj_rhs(bp(T::Star))?;
            Ok(Node::Projection(bx(ie), bx(r)))
        } else {
            Ok(ie)
        }
    }

    fn filter(&mut self, left: Node) -> Result<Node, JpError> {
        let cond = self.expr(0)?;
        self.expect(T::Rbracket)?;
        let right = if self.cur() == T::Flatten { Node::Identity } else { self.proj_rhs(bp(T::Filter))? };
        Ok(Node::FilterProjection(bx(left), bx(right), bx(cond)))
    }

    fn dot_rhs(&mut self, rbp: u8) -> Result<Node, JpError> {
        match self.cur() {
            T::Quoted | T::Unquoted | T::Star => self.expr(rbp),
            T::Lbracket => {
                self.adv();
                self.multi_list()
            }
            T::Lbrace => {
                self.adv();
                self.multi_hash()
            }
            _ => Err(syn("Expected identifier, lbracket, or lbrace")),
        }
    }

    fn proj_rhs(&mut self, rbp: u8) -> Result<Node, JpError> {
        let c = self.cur();
        if bp(c) < 10 {
            Ok(Node::Identity)
        } else if c == T::Lbracket || c == T::Filter {
            self.expr(rbp)
        } else if c == T::Dot {
            self.adv();
            self.dot_rhs(rbp)
        } else {
            Err(syn(format!("unexpected token after a projection: {c:?}")))
        }
    }

    fn multi_list(&mut self) -> Result<Node, JpError> {
        let mut items = Vec::new();
        loop {
            items.push(self.expr(0)?);
            if self.cur() == T::Rbracket {
                break;
            }
            self.expect(T::Comma)?;
        }
        self.expect(T::Rbracket)?;
        Ok(Node::MultiList(items))
    }

    fn multi_hash(&mut self) -> Result<Node, JpError> {
        let mut pairs = Vec::new();
        loop {
            let k = self.tok(0).clone();
            if k.t != T::Unquoted && k.t != T::Quoted {
                return Err(syn("Expected tQuotedIdentifier or tUnquotedIdentifier"));
            }
            self.adv();
            self.expect(T::Colon)?;
            let v = self.expr(0)?;
            pairs.push((k.v, v));
            if self.cur() == T::Comma {
                self.adv();
            } else if self.cur() == T::Rbrace {
                self.adv();
                break;
            }
        }
        Ok(Node::MultiHash(pairs))
    }
}

// ---------------------------------------------------------------- interpreter

fn is_false(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Null => true,
        Value::Number(_) => false,
    }
}

/// The fork's `if _, ok := err.(NotFoundError); !ok { return err }`: a missing key becomes null.
fn nf_null(r: Result<Value, JpError>) -> Result<Value, JpError> {
    match r {
        Err(JpError::NotFound(_)) => Ok(Value::Null),
        other => other,
    }
}

fn exec(n: &Node, v: &Value) -> Result<Value, JpError> {
    match n {
        Node::Cmp(op, l, r) => {
            let a = nf_null(exec(l, v))?;
            let b = nf_null(exec(r, v))?;
            Ok(match op {
                T::Eq => Value::Bool(deep_eq(&a, &b)),
                T::Ne => Value::Bool(!deep_eq(&a, &b)),
                _ => match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => Value::Bool(match op {
                        T::Gt => x > y,
                        T::Gte => x >= y,
                        T::Lt => x < y,
                        _ => x <= y,
                    }),
                    _ => Value::Null,
                },
            })
        }
        Node::ExpRef(_) => Err(JpError::Unsupported("expression reference (&expr)".into())),
        Node::Function(name, args) => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                if matches!(a, Node::ExpRef(_)) {
                    return Err(JpError::Unsupported(format!("function {name}() with an expression reference (&expr)")));
                }
                vals.push(nf_null(exec(a, v))?);
            }
            call(name, &vals)
        }
        Node::Field(k) => match v {
            Value::Object(m) => m.get(k).cloned().ok_or_else(|| JpError::NotFound(k.clone())),
            _ => Ok(Value::Null),
        },
        Node::FilterProjection(l, r, c) => {
            let Ok(Value::Array(items)) = exec(l, v) else { return Ok(Value::Null) };
            let mut out = Vec::new();
            for el in &items {
                let t = nf_null(exec(c, el))?;
                if !is_false(&t) {
                    let cur = nf_null(exec(r, el))?;
                    if !cur.is_null() {
                        out.push(cur);
                    }
                }
            }
            Ok(Value::Array(out))
        }
        Node::Flatten(l) => {
            let Ok(Value::Array(items)) = exec(l, v) else { return Ok(Value::Null) };
            let mut out = Vec::new();
            for el in items {
                match el {
                    Value::Array(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            Ok(Value::Array(out))
        }
        Node::Identity | Node::Current => Ok(v.clone()),
        Node::Index(i) => match v {
            Value::Array(a) => {
                let len = a.len() as i64;
                let idx = if *i < 0 { i + len } else { *i };
                Ok(if (0..len).contains(&idx) { a[idx as usize].clone() } else { Value::Null })
            }
            _ => Ok(Value::Null),
        },
        Node::Literal(x) => Ok(x.clone()),
        Node::MultiHash(pairs) => {
            if v.is_null() {
                return Ok(Value::Null);
            }
            let mut m = Map::new();
            for (k, e) in pairs {
                m.insert(k.clone(), nf_null(exec(e, v))?);
            }
            Ok(Value::Object(m))
        }
        Node::MultiList(items) => {
            if v.is_null() {
                return Ok(Value::Null);
            }
            let mut out = Vec::with_capacity(items.len());
            for e in items {
                out.push(nf_null(exec(e, v))?);
            }
            Ok(Value::Array(out))
        }
        Node::Or(l, r) => {
            let m = nf_null(exec(l, v))?;
            if is_false(&m) { nf_null(exec(r, v)) } else { Ok(m) }
        }
        Node::And(l, r) => {
            let m = nf_null(exec(l, v))?;
            if is_false(&m) { Ok(m) } else { exec(r, v) }
        }
        Node::Not(e) => {
            let m = nf_null(exec(e, v))?;
            Ok(Value::Bool(is_false(&m)))
        }
        Node::Pipe(l, r) => {
            let left = nf_null(exec(l, v))?;
            nf_null(exec(r, &left))
        }
        Node::Projection(l, r) => {
            let Value::Array(items) = nf_null(exec(l, v))? else { return Ok(Value::Null) };
            let mut out = Vec::new();
            for el in &items {
                let cur = nf_null(exec(r, el))?;
                if !cur.is_null() {
                    out.push(cur);
                }
            }
            Ok(Value::Array(out))
        }
        Node::Sub(l, r) | Node::IndexExpr(l, r) => {
            let left = exec(l, v)?;
            exec(r, &left)
        }
        Node::Slice(parts) => match v {
            Value::Array(a) => slice(a, parts),
            _ => Ok(Value::Null),
        },
        Node::ValueProjection(l, r) => {
            let Ok(Value::Object(m)) = exec(l, v) else { return Ok(Value::Null) };
            // go-jmespath builds make([]T, len(m)) and then appends the values: len(m) nulls first
            let mut vals: Vec<Value> = vec![Value::Null; m.len()];
            vals.extend(m.into_iter().map(|(_, x)| x));
            let mut out = Vec::new();
            for el in &vals {
                let cur = nf_null(exec(r, el))?;
                if !cur.is_null() {
                    out.push(cur);
                }
            }
            Ok(Value::Array(out))
        }
    }
}

fn slice(a: &[Value], parts: &[Option<i64>; 3]) -> Result<Value, JpError> {
    let len = a.len() as i64;
    let step = match parts[2] {
        None => 1,
        Some(0) => return Err(JpError::Eval("Invalid slice, step cannot be 0".into())),
        Some(s) => s,
    };
    let cap = |actual: i64| -> i64 {
        if actual < 0 {
            let x = actual.saturating_add(len);
            if x < 0 {
                if step < 0 { -1 } else { 0 }
            } else {
                x
            }
        } else if actual >= len {
            if step < 0 { len - 1 } else { len }
        } else {
            actual
        }
    };
    let start = match parts[0] {
        None => {
            if step < 0 {
                len - 1
            } else {
                0
            }
        }
        Some(x) => cap(x),
    };
    let stop = match parts[1] {
        None => {
            if step < 0 {
                -1
            } else {
                len
            }
        }
        Some(x) => cap(x),
    };
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(a[i as usize].clone());
        match i.checked_add(step) {
            Some(n) => i = n,
            None => break,
        }
    }
    Ok(Value::Array(out))
}

// ---------------------------------------------------------------- functions

#[derive(Debug, Clone, Copy)]
enum Ty {
    Num,
    Str,
    Arr,
    Obj,
    ArrNum,
    ArrStr,
    Any,
}

impl Ty {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Ty::Num => v.is_number(),
            Ty::Str => v.is_string(),
            Ty::Arr => v.is_array(),
            Ty::Obj => v.is_object(),
            Ty::ArrNum => v.as_array().is_some_and(|a| a.iter().all(Value::is_number)),
            Ty::ArrStr => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            Ty::Any => true,
        }
    }
}

/// go-jmespath `resolveArgs` for fixed-arity functions.
fn check_args(name: &str, args: &[Value], specs: &[&[Ty]]) -> Result<(), JpError> {
    if args.len() != specs.len() {
        return Err(JpError::Eval(format!("{name}(): incorrect number of args")));
    }
    for (a, tys) in args.iter().zip(specs) {
        if !tys.iter().any(|t| t.accepts(a)) {
            return Err(JpError::Eval(format!("{name}(): Invalid type for: {}, expected: {tys:?}", go_sprint(a))));
        }
    }
    Ok(())
}

fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn fnum(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn st(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

const SUPPORTED: &[&str] = &[
    "abs", "avg", "ceil", "contains", "ends_with", "floor", "join", "keys", "length", "max", "merge", "min", "not_null", "reverse",
    "sort", "starts_with", "sum", "to_array", "to_lower", "to_number", "to_string", "to_upper", "type", "values",
];

fn call(name: &str, a: &[Value]) -> Result<Value, JpError> {
    use Ty::*;
    match name {
        "abs" | "ceil" | "floor" => {
            check_args(name, a, &[&[Num]])?;
            let x = fnum(&a[0]);
            Ok(num(match name {
                "abs" => x.abs(),
                "ceil" => x.ceil(),
                _ => x.floor(),
            }))
        }
        "avg" | "sum" => {
            check_args(name, a, &[&[ArrNum]])?;
            let xs: Vec<f64> = a[0].as_array().map(|v| v.iter().map(fnum).collect()).unwrap_or_default();
            let total: f64 = xs.iter().sum();
            Ok(num(if name == "sum" { total } else { total / xs.len() as f64 }))
        }
        "contains" => {
            check_args(name, a, &[&[Arr, Str], &[Any]])?;
            match (&a[0], &a[1]) {
                (Value::String(s), Value::String(e)) => Ok(Value::Bool(s.contains(e.as_str()))),
                (Value::Array(items), el) => {
                    for it in items {
                        let uncomparable = matches!(
                            (it, el),
                            (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_))
                        );
                        if uncomparable {
                            return Err(JpError::Eval("contains(): runtime error: comparing uncomparable type".into()));
                        }
                        if deep_eq(it, el) {
                            return Ok(Value::Bool(true));
                        }
                    }
                    Ok(Value::Bool(false))
                }
                _ => Ok(Value::Bool(false)),
            }
        }
        "ends_with" | "starts_with" => {
            check_args(name, a, &[&[Str], &[Str]])?;
            let (x, y) = (st(&a[0]), st(&a[1]));
            Ok(Value::Bool(if name == "ends_with" { x.ends_with(y) } else { x.starts_with(y) }))
        }
        "join" => {
            check_args(name, a, &[&[Str], &[ArrStr]])?;
            let parts: Vec<&str> = a[1].as_array().map(|v| v.iter().map(st).collect()).unwrap_or_default();
            Ok(Value::String(parts.join(st(&a[0]))))
        }
        "keys" | "values" => {
            check_args(name, a, &[&[Obj]])?;
            let m = a[0].as_object().cloned().unwrap_or_default();
            Ok(Value::Array(if name == "keys" {
                m.keys().cloned().map(Value::String).collect()
            } else {
                m.values().cloned().collect()
            }))
        }
        "length" => {
            check_args(name, a, &[&[Str, Arr, Obj]])?;
            let n = match &a[0] {
                Value::String(s) => s.chars().count(),
                Value::Array(x) => x.len(),
                Value::Object(m) => m.len(),
                _ => 0,
            };
            Ok(num(n as f64))
        }
        "max" | "min" => {
            check_args(name, a, &[&[ArrNum, ArrStr]])?;
            let items = a[0].as_array().cloned().unwrap_or_default();
            let best = items.into_iter().reduce(|x, y| {
                let better = match (&x, &y) {
                    (Value::Number(_), Value::Number(_)) => {
                        if name == "max" { fnum(&y) > fnum(&x) } else { fnum(&y) < fnum(&x) }
                    }
                    (Value::String(p), Value::String(q)) => {
                        if name == "max" { q > p } else { q < p }
                    }
                    _ => false,
                };
                if better { y } else { x }
            });
            Ok(best.unwrap_or(Value::Null))
        }
        "merge" => {
            if a.is_empty() {
                return Err(JpError::Eval("merge(): Invalid arity.".into()));
            }
            let mut out = Map::new();
            for x in a {
                let Value::Object(m) = x else {
                    return Err(JpError::Eval(format!("merge(): {} is not an object", go_sprint(x))));
                };
                for (k, v) in m {
                    out.insert(k.clone(), v.clone());
                }
            }
            Ok(Value::Object(out))
        }
        "not_null" => {
            if a.is_empty() {
                return Err(JpError::Eval("not_null(): Invalid arity.".into()));
            }
            Ok(a.iter().find(|x| !x.is_null()).cloned().unwrap_or(Value::Null))
        }
        "reverse" => {
            check_args(name, a, &[&[Arr, Str]])?;
            Ok(match &a[0] {
                Value::String(s) => Value::String(s.chars().rev().collect()),
                Value::Array(x) => Value::Array(x.iter().rev().cloned().collect()),
                _ => Value::Null,
            })
        }
        "sort" => {
            check_args(name, a, &[&[ArrNum, ArrStr]])?;
            let mut items = a[0].as_array().cloned().unwrap_or_default();
            items.sort_by(|x, y| match (x, y) {
                (Value::String(p), Value::String(q)) => p.cmp(q),
                _ => fnum(x).partial_cmp(&fnum(y)).unwrap_or(Ordering::Equal),
            });
            Ok(Value::Array(items))
        }
        "to_array" => {
            check_args(name, a, &[&[Any]])?;
            Ok(match &a[0] {
                Value::Array(_) => a[0].clone(),
                other => Value::Array(vec![other.clone()]),
            })
        }
        "to_number" => {
            check_args(name, a, &[&[Any]])?;
            match &a[0] {
                Value::Number(_) => Ok(a[0].clone()),
                Value::String(s) => Ok(go_parse_float(s).map_or(Value::Null, num)),
                Value::Bool(_) => Err(JpError::Eval("to_number(): unknown type".into())),
                _ => Ok(Value::Null),
            }
        }
        "to_string" => {
            check_args(name, a, &[&[Any]])?;
            Ok(match &a[0] {
                Value::String(_) => a[0].clone(),
                other => Value::String(go_json(other)),
            })
        }
        "type" => {
            check_args(name, a, &[&[Any]])?;
            let t = match &a[0] {
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
                Value::Null => "null",
                Value::Bool(_) => "boolean",
            };
            Ok(Value::String(t.into()))
        }
        "to_upper" | "to_lower" => {
            check_args(name, a, &[&[Str]])?;
            let s = st(&a[0]);
            Ok(Value::String(if name == "to_upper" { s.to_uppercase() } else { s.to_lowercase() }))
        }
        "map" | "sort_by" | "max_by" | "min_by" => {
            Err(JpError::Unsupported(format!("function {name}() (takes an expression reference)")))
        }
        _ => Err(JpError::Unsupported(format!("function {name}() (implemented: {})", SUPPORTED.join(", ")))),
    }
}
