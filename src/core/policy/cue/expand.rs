//! Expansion: a vertex's conjuncts turned into child vertices, pending values and comprehensions.

use std::collections::HashSet;

use serde_json::Value as Json;

use super::ast::{BinOp, Decl, Expr, Label, Marker, StructLit};
use super::eval::{Conj, Engine, Flags, Frame, Group, PLAIN, Pending, Src, St, Target};
use super::value::{Scalar, V};

impl<'a> Engine<'a> {
    pub(super) fn expand(&mut self, v: usize) {
        if self.vs[v].st != St::New {
            return;
        }
        if let Some(p) = self.vs[v].parent {
            self.expand(p);
            if self.vs[v].st != St::New {
                return;
            }
        }
        if !self.enter() {
            self.vs[v].st = St::Expanded;
            return;
        }
        self.vs[v].st = St::Expanding;
        loop {
            while self.vs[v].processed < self.vs[v].conjs.len() && self.fatal.is_none() {
                let c = self.vs[v].conjs[self.vs[v].processed];
                self.vs[v].processed += 1;
                self.process(v, c);
            }
            self.apply_patterns(v);
            let comps = std::mem::take(&mut self.vs[v].comps);
            if comps.is_empty() || self.fatal.is_some() {
                break;
            }
            for (cond, body, env, fl) in comps {
                match self.guard(cond, env) {
                    Ok(true) => self.vs[v].conjs.push(Conj { src: Src::Lit(body, env), fl: Flags { derived: true, ..fl } }),
                    Ok(false) | Err(None) => {}
                    Err(Some(m)) => self.err(v, m),
                }
            }
        }
        self.vs[v].st = St::Expanded;
        self.nest -= 1;
    }

    fn process(&mut self, v: usize, c: Conj<'a>) {
        if !self.step() {
            return;
        }
        let child = Flags { close: c.fl.close, ..PLAIN };
        match c.src {
            Src::Json(j) => match j {
                Json::Object(m) => {
                    self.vs[v].is_struct = true;
                    for (k, x) in m {
                        let a = self.arc(v, &Label::Regular(k.clone()));
                        self.add(a, Conj { src: Src::Json(x), fl: child });
                    }
                }
                Json::Array(xs) => {
                    self.vs[v].is_list = true;
                    self.vs[v].closed_lens.push(xs.len());
                    for (i, x) in xs.iter().enumerate() {
                        let a = self.arc(v, &Label::Index(i));
                        self.add(a, Conj { src: Src::Json(x), fl: child });
                    }
                }
                other => self.vs[v].values.push(Pending::Val(V::Atom(Scalar::from_json(other)))),
            },
            Src::Lit(s, env) => self.process_struct(v, s, env, c.fl),
            Src::Expr(e, env) => match e {
                Expr::Struct(s) => self.process_struct(v, s, env, c.fl),
                Expr::Paren(x) => self.process(v, Conj { src: Src::Expr(x, env), fl: c.fl }),
                Expr::Binary(BinOp::And, a, b) => {
                    self.process(v, Conj { src: Src::Expr(a, env), fl: c.fl });
                    self.process(v, Conj { src: Src::Expr(b, env), fl: c.fl });
                }
                Expr::List(xs, ell, _) => {
                    self.vs[v].is_list = true;
                    for (i, x) in xs.iter().enumerate() {
                        let a = self.arc(v, &Label::Index(i));
                        self.add(a, Conj { src: Src::Expr(x, env), fl: child });
                    }
                    match ell {
                        None => self.vs[v].closed_lens.push(xs.len()),
                        Some(t) => {
                            let m = self.vs[v].min_len.max(xs.len());
                            self.vs[v].min_len = m;
                            if let Some(t) = t {
                                self.vs[v].patterns.push((xs.len(), &**t, env, child));
                            }
                        }
                    }
                }
                Expr::Ref { .. } | Expr::Sel(..) | Expr::Index(..) => match self.resolve(e, env) {
                    Target::Vertex(t) => self.copy_from(v, t, c.fl),
                    Target::Val(x) => self.vs[v].values.push(Pending::Val(x)),
                },
                _ => self.vs[v].values.push(Pending::Expr(e, env)),
            },
        }
    }

    fn process_struct(&mut self, v: usize, s: &'a StructLit, env: Option<usize>, fl: Flags) {
        self.vs[v].is_struct = true;
        let f = self.frames.len();
        self.frames.push(Frame { parent: env, vertex: v });
        if let Some(cid) = fl.close {
            let labels: Vec<Label> = s.field_labels().cloned().collect();
            let groups = &mut self.vs[v].groups;
            let idx = match groups.iter().position(|(k, _)| *k == cid) {
                Some(i) => i,
                None => {
                    groups.push((cid, Group { labels: HashSet::new(), open: false }));
                    groups.len() - 1
                }
            };
            groups[idx].1.labels.extend(labels);
            if s.open {
                groups[idx].1.open = true;
            }
        }
        for d in &s.decls {
            match d {
                Decl::Field { label, marker, value } => {
                    let a = self.arc(v, label);
                    let close = if matches!(label, Label::Def(_)) { Some(a) } else { fl.close };
                    let cf = Flags { close, optional: *marker != Marker::Regular, derived: false, embed: false };
                    self.add(a, Conj { src: Src::Expr(value, Some(f)), fl: cf });
                }
                Decl::Embed(e) => self.process(v, Conj { src: Src::Expr(e, Some(f)), fl: Flags { derived: true, embed: true, ..fl } }),
                Decl::If { cond, body } => self.vs[v].comps.push((cond, body, Some(f), fl)),
            }
        }
    }

    fn apply_patterns(&mut self, v: usize) {
        let from = self.vs[v].patterned;
        self.vs[v].patterned = self.vs[v].arcs.len();
        if self.vs[v].patterns.is_empty() {
            return;
        }
        let pats = self.vs[v].patterns.clone();
        let arcs = self.vs[v].arcs[from..].to_vec();
        for a in arcs {
            if let Label::Index(i) = self.vs[a].label {
                for &(from, t, env, fl) in &pats {
                    if i >= from {
                        self.add(a, Conj { src: Src::Expr(t, env), fl });
                    }
                }
            }
        }
    }

    /// `v: t` with `t` a field: `v` gets `t`'s conjuncts, evaluated in their own scopes.
    fn copy_from(&mut self, v: usize, t: usize, fl: Flags) {
        if t == v {
            return;
        }
        if let Some(p) = self.vs[t].parent {
            self.expand(p);
        }
        let def = matches!(self.vs[t].label, Label::Def(_));
        let src: Vec<Conj<'a>> = self.vs[t].conjs.iter().filter(|k| !k.fl.derived).copied().collect();
        for k in src {
            let close = if fl.embed && fl.close.is_some() {
                fl.close
            } else if def {
                Some(t)
            } else {
                k.fl.close.or(fl.close)
            };
            let nf = Flags { close, optional: fl.optional, derived: true, embed: fl.embed };
            self.vs[v].conjs.push(Conj { src: k.src, fl: nf });
        }
    }
}
