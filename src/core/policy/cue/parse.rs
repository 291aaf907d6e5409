//! Recursive-descent parser for the CUE subset, and the compile entry point (tokens from `lex`,
//! the tree of `ast`, names resolved by `names`). Everything outside the subset stops here with an
//! error naming the construct and its position.

use std::collections::HashMap;

use regex::Regex;

use super::ast::{BinOp, Decl, Expr, Import, Label, Marker, Pos, StructLit, UnOp};
use super::lex::{Tok, describe, lex};
use super::names::Resolver;
use super::value::{self, BoundOp, Scalar};

/// Largest policy accepted.
pub(super) const MAX_SOURCE: usize = 64 * 1024;
/// Deepest syntactic nesting (structs, lists, parentheses, unary operators, call arguments).
pub(super) const MAX_DEPTH: usize = 64;
/// Highest expression tree (binary operator chains and selector chains included).
pub(super) const MAX_HEIGHT: usize = 128;

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
    let unused =
        r.imports.iter().filter(|i| !i.used).map(|i| format!("imported and not used: {} at {}", value::quote(&i.path), i.pos)).collect();
    Ok(Compiled { root, regexes: r.regexes, unused })
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
        if !self.field_start()
            && let Tok::Ident(kw) = self.tok()
        {
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
