//! Reference resolution: a reference, selector or index expression resolved to a vertex in scope.

use super::ast::{Expr, Label};
use super::eval::{C, Engine, St, Target, concrete};
use super::value::{Scalar, V};

impl<'a> Engine<'a> {
    pub(super) fn resolve(&mut self, e: &'a Expr, env: Option<usize>) -> Target {
        match e {
            Expr::Ref { up, label } => {
                let Some(mut f) = env else { return Target::Val(V::Bot("internal error: reference outside a scope".into())) };
                for _ in 0..*up {
                    match self.frames[f].parent {
                        Some(p) => f = p,
                        None => return Target::Val(V::Bot("internal error: scope chain too short".into())),
                    }
                }
                let base = self.frames[f].vertex;
                self.lookup(base, label)
            }
            Expr::Sel(x, label, _) => match self.resolve(x, env) {
                Target::Vertex(b) => self.lookup(b, label),
                Target::Val(V::Bot(m)) => Target::Val(V::Bot(m)),
                Target::Val(V::Inc(m)) => Target::Val(V::Inc(m)),
                Target::Val(other) => Target::Val(V::Bot(format!("invalid selector .{label} on {other}"))),
            },
            Expr::Index(x, i) => {
                let base = self.resolve(x, env);
                let iv = self.eval_expr(i, env);
                let label = match concrete(iv) {
                    Ok(C::S(Scalar::Int(n))) => match usize::try_from(n) {
                        Ok(n) => Label::Index(n),
                        Err(_) => return Target::Val(V::Bot(format!("invalid index {n}"))),
                    },
                    Ok(C::S(Scalar::Str(s))) => Label::Regular(s),
                    Ok(_) => return Target::Val(V::Bot("invalid index: want an int or a string".into())),
                    Err(x) => return Target::Val(x),
                };
                match base {
                    Target::Vertex(b) => self.lookup(b, &label),
                    Target::Val(V::Bot(m)) => Target::Val(V::Bot(m)),
                    Target::Val(V::Inc(m)) => Target::Val(V::Inc(m)),
                    Target::Val(other) => Target::Val(V::Bot(format!("invalid index [{label}] on {other}"))),
                }
            }
            Expr::Paren(x) => self.resolve(x, env),
            other => Target::Val(self.eval_expr(other, env)),
        }
    }

    fn lookup(&mut self, b: usize, label: &Label) -> Target {
        self.expand(b);
        if let Some(a) = self.vs[b].index.get(label).copied()
            && self.vs[a].regular
        {
            return Target::Vertex(a);
        }
        if !self.vs[b].is_struct
            && !self.vs[b].is_list
            && self.vs[b].st == St::Done
            && let V::Atom(s) = &self.vs[b].result
        {
            return Target::Val(V::Bot(format!("invalid selector {label}: {s} is not a struct")));
        }
        Target::Val(V::Inc(format!("undefined field: {label}")))
    }
}
