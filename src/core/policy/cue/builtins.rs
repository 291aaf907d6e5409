//! The builtin functions: `len` and the `time`, `list`, `struct` and `strings` package functions and validators.

use super::ast::{Expr, Label};
use super::eval::{C, Engine, concrete};
use super::value::{self, Builtin, K_LIST, K_STRUCT, RFC3339, RFC3339_NANO, Scalar, V, Validator};

impl<'a> Engine<'a> {
    fn field_count(&mut self, v: usize) -> usize {
        self.expand(v);
        let vs = &self.vs;
        vs[v].arcs.iter().filter(|&&a| matches!(vs[a].label, Label::Regular(_)) && vs[a].regular).count()
    }

    /// The length of a list and whether it is open (`[...]` with no closed length).
    fn list_len(&mut self, v: usize) -> (usize, bool) {
        self.expand(v);
        let vs = &self.vs;
        match vs[v].closed_lens.first() {
            Some(&n) => (n, false),
            None => (vs[v].arcs.iter().filter(|&&a| matches!(vs[a].label, Label::Index(_)) && vs[a].regular).count(), true),
        }
    }

    /// A list or struct validator against a vertex of the right kind.
    pub(super) fn check_vertex(&mut self, v: usize, val: &Validator) -> Result<(), V> {
        let n = value::arg_count(val)?;
        match val.b {
            Builtin::ListMinItems | Builtin::ListMaxItems => {
                let (len, open) = self.list_len(v);
                if val.b == Builtin::ListMinItems && len < n {
                    if open {
                        return Err(V::Inc(format!("{val}: open list has {len} elements")));
                    }
                    let r = self.render(v);
                    return Err(V::Bot(format!("invalid value {r} (does not satisfy {val}): len(list) < MinItems({n}) ({len} < {n})")));
                }
                if val.b == Builtin::ListMaxItems && len > n {
                    let r = self.render(v);
                    return Err(V::Bot(format!("invalid value {r} (does not satisfy {val}): len(list) > MaxItems({n}) ({len} > {n})")));
                }
                Ok(())
            }
            Builtin::StructMinFields | Builtin::StructMaxFields => {
                let count = self.field_count(v);
                let closed = self.vs[v].groups.iter().any(|(_, g)| !g.open);
                if val.b == Builtin::StructMaxFields && count > n {
                    let r = self.render(v);
                    return Err(V::Bot(format!("invalid value {r} (does not satisfy {val})")));
                }
                if val.b == Builtin::StructMinFields && count < n {
                    // an open struct may still gain fields: incomplete, not an error (cue pkg/struct)
                    if !closed {
                        return Err(V::Inc(format!("{val}: open struct has {count} fields")));
                    }
                    let r = self.render(v);
                    return Err(V::Bot(format!("invalid value {r} (does not satisfy {val})")));
                }
                Ok(())
            }
            _ => Err(V::Bot(format!("{} cannot be applied to a struct or list", val.b.name()))),
        }
    }

    pub(super) fn call(&mut self, f: &'a Expr, args: &'a [Expr], env: Option<usize>) -> V {
        let Expr::Builtin(b) = f else { return V::Bot("only builtin functions can be called".into()) };
        let b = *b;
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            vals.push(self.eval_expr(a, env));
        }
        let (full, vform) = b.arity();
        if vals.len() == full {
            return self.apply(b, vals);
        }
        if Some(vals.len()) == vform {
            let mut sargs = Vec::new();
            for x in vals {
                match concrete(x) {
                    Ok(C::S(s)) => sargs.push(s),
                    Ok(C::Vertex(_)) => return V::Bot(format!("invalid argument to {}: a struct or list", b.name())),
                    Err(e) => return e,
                }
            }
            return V::Val(Validator { b, args: sargs });
        }
        V::Bot(format!("wrong number of arguments to {}", b.name()))
    }

    /// A builtin called with all its arguments.
    fn apply(&mut self, b: Builtin, vals: Vec<V>) -> V {
        let mut cs = Vec::with_capacity(vals.len());
        let mut inc = None;
        for x in vals {
            match concrete(x) {
                Ok(c) => cs.push(c),
                Err(V::Bot(m)) => return V::Bot(m),
                Err(e) => {
                    if inc.is_none() {
                        inc = Some(e);
                    }
                }
            }
        }
        if let Some(e) = inc {
            return e;
        }
        match (b, cs.as_slice()) {
            (Builtin::Len, [C::S(Scalar::Str(s))]) => V::Atom(Scalar::Int(s.len() as i128)),
            (Builtin::Len, [C::Vertex(t)]) => {
                let t = *t;
                let n = if self.vs[t].is_list { self.list_len(t).0 } else { self.field_count(t) };
                V::Atom(Scalar::Int(n as i128))
            }
            (Builtin::TimeParse, [C::S(Scalar::Str(layout)), C::S(Scalar::Str(s))]) => {
                if layout.as_str() != RFC3339 && layout.as_str() != RFC3339_NANO {
                    return V::Bot(format!("time.Parse: unsupported layout {}", value::quote(layout)));
                }
                match value::parse_time(s) {
                    Ok(t) => V::Atom(Scalar::Str(t)),
                    Err(m) => V::Bot(format!("error in call to time.Parse: {m}")),
                }
            }
            (Builtin::StrToLower, [C::S(Scalar::Str(s))]) => V::Atom(Scalar::Str(s.to_lowercase())),
            (Builtin::StrToUpper, [C::S(Scalar::Str(s))]) => V::Atom(Scalar::Str(s.to_uppercase())),
            (Builtin::ListContains, [C::Vertex(t), C::S(x)]) => {
                let (t, x) = (*t, x.clone());
                if !self.vs[t].is_list {
                    return V::Bot("list.Contains: first argument is not a list".into());
                }
                self.expand(t);
                let arcs = self.vs[t].arcs.clone();
                let mut found = false;
                for a in arcs {
                    if let V::Atom(s) = self.eval(a)
                        && s.kind() == x.kind()
                        && value::scalar_eq(&s, &x)
                    {
                        found = true;
                        break;
                    }
                }
                V::Atom(Scalar::Bool(found))
            }
            (b, [subject, rest @ ..]) if b.arity().1 == Some(rest.len()) => {
                let mut args = Vec::new();
                for r in rest {
                    match r {
                        C::S(s) => args.push(s.clone()),
                        C::Vertex(_) => return V::Bot(format!("invalid argument to {}: a struct or list", b.name())),
                    }
                }
                let val = Validator { b, args };
                let r = match subject {
                    C::S(s) => value::check_scalar(&val, s),
                    C::Vertex(t) => {
                        let t = *t;
                        let kind = if self.vs[t].is_list { K_LIST } else { K_STRUCT };
                        if b.subject_kind() & kind == 0 {
                            return V::Atom(Scalar::Bool(false));
                        }
                        self.check_vertex(t, &val)
                    }
                };
                match r {
                    Ok(()) => V::Atom(Scalar::Bool(true)),
                    Err(V::Inc(m)) => V::Inc(m),
                    Err(_) => V::Atom(Scalar::Bool(false)),
                }
            }
            _ => {
                let shown: Vec<String> = cs
                    .iter()
                    .map(|c| match c {
                        C::S(s) => s.to_string(),
                        C::Vertex(_) => "{...}".to_string(),
                    })
                    .collect();
                V::Bot(format!("invalid arguments to {}: {}", b.name(), shown.join(", ")))
            }
        }
    }
}
