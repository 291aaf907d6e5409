//! Operators: unary and binary operators, regular-expression matches and disjunctions.

use regex::Regex;

use super::ast::{BinOp, Expr, UnOp};
use super::eval::{C, Engine, concrete};
use super::value::{self, BoundOp, Scalar, V, finish_or, push_alt};

fn both(a: V, b: V) -> Result<(C, C), V> {
    match (concrete(a), concrete(b)) {
        (Ok(x), Ok(y)) => Ok((x, y)),
        (Err(V::Bot(m)), _) | (_, Err(V::Bot(m))) => Err(V::Bot(m)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

fn flatten_or<'e>(e: &'e Expr, d: bool, out: &mut Vec<(&'e Expr, bool)>) {
    match e {
        Expr::Binary(BinOp::Or, a, b) => {
            flatten_or(a, d, out);
            flatten_or(b, d, out);
        }
        Expr::Default(x) => flatten_or(x, true, out),
        Expr::Paren(x) if matches!(**x, Expr::Binary(BinOp::Or, ..)) => flatten_or(x, d, out),
        _ => out.push((e, d)),
    }
}

fn op_sym(op: BinOp) -> &'static str {
    match op {
        BinOp::Or => "|",
        BinOp::And => "&",
        BinOp::LOr => "||",
        BinOp::LAnd => "&&",
        BinOp::Eq => "==",
        BinOp::Ne => "!=",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::Match => "=~",
        BinOp::NotMatch => "!~",
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
    }
}

impl<'a> Engine<'a> {
    pub(super) fn bool_of(&mut self, v: V) -> Result<bool, V> {
        match concrete(v) {
            Ok(C::S(Scalar::Bool(b))) => Ok(b),
            Ok(c) => {
                let s = self.show(&c);
                Err(V::Bot(format!("cannot use {s} as bool")))
            }
            Err(x) => Err(x),
        }
    }

    fn regex(&mut self, p: &str) -> Result<Regex, String> {
        if let Some(r) = self.regexes.get(p) {
            return Ok(r.clone());
        }
        if let Some(r) = self.dyn_regexes.get(p) {
            return Ok(r.clone());
        }
        let r = value::compile_regex(p)?;
        if self.dyn_regexes.len() < 256 {
            self.dyn_regexes.insert(p.to_string(), r.clone());
        }
        Ok(r)
    }

    pub(super) fn unary(&mut self, op: UnOp, x: V) -> V {
        let s = match concrete(x) {
            Ok(C::S(s)) => s,
            Ok(C::Vertex(_)) => return V::Bot("unary operator on a struct or list is not supported".into()),
            Err(e) => return e,
        };
        match op {
            UnOp::Neg => match s {
                Scalar::Int(i) => i.checked_neg().map(|n| V::Atom(Scalar::Int(n))).unwrap_or_else(|| V::Bot("integer overflow".into())),
                Scalar::Float(f) => V::Atom(Scalar::Float(-f)),
                other => V::Bot(format!("invalid operand {other} to '-'")),
            },
            UnOp::Plus => {
                if s.num().is_some() {
                    V::Atom(s)
                } else {
                    V::Bot(format!("invalid operand {s} to '+'"))
                }
            }
            UnOp::Not => match s {
                Scalar::Bool(b) => V::Atom(Scalar::Bool(!b)),
                other => V::Bot(format!("invalid operand {other} to '!'")),
            },
            UnOp::Bound(BoundOp::Ne) => V::Bound(BoundOp::Ne, s),
            UnOp::Bound(b) => {
                if s.num().is_some() || matches!(s, Scalar::Str(_)) {
                    V::Bound(b, s)
                } else {
                    V::Bot(format!("invalid bound {}{s}", b.sym()))
                }
            }
            UnOp::Match | UnOp::NotMatch => match s {
                Scalar::Str(p) => match self.regex(&p) {
                    Ok(re) => V::Re { re, src: p, neg: op == UnOp::NotMatch },
                    Err(m) => V::Bot(m),
                },
                other => V::Bot(format!("invalid regular expression {other}")),
            },
        }
    }

    pub(super) fn binary(&mut self, op: BinOp, a: V, b: V) -> V {
        let (x, y) = match both(a, b) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let (C::S(x), C::S(y)) = (x, y) else {
            return V::Bot(format!("operator {} on a struct or list is not supported", op_sym(op)));
        };
        match op {
            BinOp::Eq | BinOp::Ne => {
                let comparable = x.kind() == y.kind() || (x.num().is_some() && y.num().is_some()) || x == Scalar::Null || y == Scalar::Null;
                if !comparable {
                    return V::Bot(format!(
                        "invalid operands {x} and {y} to '{}' (mismatched types {} and {})",
                        op_sym(op),
                        value::kind_name(x.kind()),
                        value::kind_name(y.kind())
                    ));
                }
                V::Atom(Scalar::Bool(value::scalar_eq(&x, &y) == (op == BinOp::Eq)))
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let bop = match op {
                    BinOp::Lt => BoundOp::Lt,
                    BinOp::Le => BoundOp::Le,
                    BinOp::Gt => BoundOp::Gt,
                    _ => BoundOp::Ge,
                };
                match value::bound_ok(&x, bop, &y) {
                    Some(r) => V::Atom(Scalar::Bool(r)),
                    None => V::Bot(format!("invalid operands {x} and {y} to '{}'", op_sym(op))),
                }
            }
            BinOp::Match | BinOp::NotMatch => match (&x, &y) {
                (Scalar::Str(s), Scalar::Str(p)) => match self.regex(p) {
                    Ok(re) => V::Atom(Scalar::Bool(re.is_match(s) == (op == BinOp::Match))),
                    Err(m) => V::Bot(m),
                },
                _ => V::Bot(format!("invalid operands {x} and {y} to '{}'", op_sym(op))),
            },
            BinOp::Add => value::arith('+', &x, &y),
            BinOp::Sub => value::arith('-', &x, &y),
            BinOp::Mul => value::arith('*', &x, &y),
            BinOp::Div => value::arith('/', &x, &y),
            BinOp::Or | BinOp::And | BinOp::LAnd | BinOp::LOr => V::Bot(format!("internal error: operator {}", op_sym(op))),
        }
    }

    pub(super) fn disjunction(&mut self, e: &'a Expr, env: Option<usize>) -> V {
        let mut parts: Vec<(&'a Expr, bool)> = Vec::new();
        flatten_or(e, false, &mut parts);
        let mut alts: Vec<(V, bool)> = Vec::new();
        let mut errs: Vec<String> = Vec::new();
        for (x, d) in parts {
            match self.eval_expr(x, env) {
                V::Bot(m) => errs.push(m),
                V::Inc(m) => return V::Inc(m),
                V::Vertex(_) => return V::Bot("disjunctions of structs or lists are not supported".into()),
                V::Or(inner) => {
                    for (v, id) in inner {
                        push_alt(&mut alts, v, d || id);
                    }
                }
                v => push_alt(&mut alts, v, d),
            }
        }
        finish_or(alts, errs)
    }
}
