//! Name resolution for the CUE subset: identifiers become field references, kinds or builtins.

use std::collections::{HashMap, HashSet};

use regex::Regex;

use super::ast::Import;
use super::ast::{BinOp, Decl, Expr, Label, Pos, StructLit, UnOp};
use super::value::{self, Builtin, K_BOOL, K_BYTES, K_FLOAT, K_INT, K_NUMBER, K_STRING, RFC3339, RFC3339_NANO, Scalar};

// Name resolution: identifiers become field references (`up` scopes out), kinds or builtins;
// struct and list literals are only accepted where their value is unified into a field.

pub(super) struct Resolver {
    pub(super) scopes: Vec<HashSet<Label>>,
    pub(super) imports: Vec<Import>,
    pub(super) regexes: HashMap<String, Regex>,
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

    pub(super) fn structure(&mut self, s: &mut StructLit) -> Result<(), String> {
        let labels: HashSet<Label> = s.field_labels().cloned().collect();
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
            "uint"
                | "int8"
                | "int16"
                | "int32"
                | "int64"
                | "int128"
                | "uint8"
                | "uint16"
                | "uint32"
                | "uint64"
                | "uint128"
                | "rune"
                | "float32"
                | "float64"
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
        if let Expr::Lit(Scalar::Str(s)) = e
            && !self.regexes.contains_key(s)
        {
            let re = value::compile_regex(s)?;
            self.regexes.insert(s.clone(), re);
        }
        Ok(())
    }

    /// `conj`: the expression's value is unified into a field (a field value, an embedding, an
    /// operand of `&` there, a list element); only there may struct and list literals appear.
    fn expr(&mut self, e: &mut Expr, conj: bool) -> Result<(), String> {
        match e {
            Expr::Ident(name, pos) => {
                let r = self.lookup(name, *pos)?;
                if let Expr::Builtin(b) = &r
                    && b.arity().1 != Some(0)
                {
                    return Err(format!("{} must be called at {pos}", b.name()));
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
                    let layout_ok =
                        matches!(args.first(), Some(Expr::Lit(Scalar::Str(s))) if s.as_str() == RFC3339 || s.as_str() == RFC3339_NANO);
                    if !layout_ok {
                        return Err(format!(
                            "unsupported construct: time.Parse layout other than time.RFC3339 or time.RFC3339Nano at {pos}"
                        ));
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
                        if let Expr::Ident(n, p) = side
                            && matches!(Label::of_ident(n), Label::Def(_))
                            && self.in_scope(n)
                        {
                            return Err(format!(
                                "unsupported construct: disjunction with the definition {n} at {p} (disjunctions of structs are not supported)"
                            ));
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
