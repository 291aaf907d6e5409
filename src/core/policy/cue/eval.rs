//! Evaluation: the data and the policy unified into one tree of vertices (one per field path),
//! then validated as `Value.Validate()` with no options does.
//!
//! Every vertex collects conjuncts — JSON values, struct literals and expressions, each with the
//! scope (a chain of frames, one per struct literal) it is evaluated in. Expanding a vertex turns
//! its conjuncts into child vertices (struct fields, list elements) and pending values; a
//! reference used as a field value copies the referenced vertex's conjuncts (so a definition's
//! fields re-bind to the place it is used, and closedness travels with them); a reference inside
//! an expression evaluates the referenced vertex (data included). `if` comprehensions run after
//! the other conjuncts of their struct; a guard that cannot be decided yet is skipped, as in CUE.

use std::collections::{HashMap, HashSet};

use regex::Regex;
use serde_json::Value as Json;

use super::ast::{BinOp, Expr, Label, StructLit};
use super::value::{self, K_LIST, K_STRUCT, Scalar, V, Validator, unify};

/// Most evaluation steps for one validation.
pub(super) const MAX_STEPS: u64 = 1_000_000;
/// Most nested evaluations (reference chains, nested expressions).
const MAX_NEST: usize = 128;
/// Deepest field path.
const MAX_PATH: usize = 256;
/// Longest rendering of a struct or list in an error message.
const RENDER_LIMIT: usize = 200;
/// Most errors reported.
const MAX_ERRORS: usize = 100;
/// Most vertices (field paths touched) for one validation (about 100 MB at most).
pub(super) const MAX_VERTICES: usize = 150_000;

#[derive(Clone, Copy)]
pub(super) struct Flags {
    /// The definition (its vertex) that closes the structs of this conjunct.
    pub(super) close: Option<usize>,
    /// From an optional (`?`) or required (`!`) field: not a regular field by itself.
    pub(super) optional: bool,
    /// Produced while expanding its vertex (not copied when the vertex is referenced).
    pub(super) derived: bool,
    /// An embedding: its fields join the closedness of the enclosing literal.
    pub(super) embed: bool,
}

pub(super) const PLAIN: Flags = Flags { close: None, optional: false, derived: false, embed: false };

#[derive(Clone, Copy)]
pub(super) enum Src<'a> {
    Json(&'a Json),
    Lit(&'a StructLit, Option<usize>),
    Expr(&'a Expr, Option<usize>),
}

#[derive(Clone, Copy)]
pub(super) struct Conj<'a> {
    pub(super) src: Src<'a>,
    pub(super) fl: Flags,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum St {
    New,
    Expanding,
    Expanded,
    Evaluating,
    Done,
}

pub(super) enum Pending<'a> {
    Expr(&'a Expr, Option<usize>),
    Val(V),
}

pub(super) struct Group {
    pub(super) labels: HashSet<Label>,
    pub(super) open: bool,
}

pub(super) type Comprehension<'a> = (&'a Expr, &'a StructLit, Option<usize>, Flags);
pub(super) type Pattern<'a> = (usize, &'a Expr, Option<usize>, Flags);

pub(super) struct Vertex<'a> {
    pub(super) label: Label,
    pub(super) parent: Option<usize>,
    pub(super) conjs: Vec<Conj<'a>>,
    /// Conjuncts already processed (a comprehension may add more after an expansion).
    pub(super) processed: usize,
    pub(super) arcs: Vec<usize>,
    /// Arcs the list element patterns were applied to.
    pub(super) patterned: usize,
    pub(super) index: HashMap<Label, usize>,
    pub(super) st: St,
    /// Has a conjunct that makes it a regular field (not only `?`/`!` constraints).
    pub(super) regular: bool,
    pub(super) is_struct: bool,
    pub(super) is_list: bool,
    pub(super) closed_lens: Vec<usize>,
    pub(super) min_len: usize,
    pub(super) patterns: Vec<Pattern<'a>>,
    pub(super) groups: Vec<(usize, Group)>,
    pub(super) values: Vec<Pending<'a>>,
    pub(super) comps: Vec<Comprehension<'a>>,
    pub(super) result: V,
}

pub(super) struct Frame {
    pub(super) parent: Option<usize>,
    pub(super) vertex: usize,
}

pub(super) enum Target {
    Vertex(usize),
    Val(V),
}

/// A concrete value: a scalar or a struct/list vertex.
pub(super) enum C {
    S(Scalar),
    Vertex(usize),
}

pub(super) fn concrete(v: V) -> Result<C, V> {
    match v {
        V::Atom(s) => Ok(C::S(s)),
        V::Vertex(t) => Ok(C::Vertex(t)),
        V::Or(alts) => {
            let mut defs: Vec<V> = alts.into_iter().filter(|(_, d)| *d).map(|(x, _)| x).collect();
            if defs.len() == 1
                && let Some(x) = defs.pop()
            {
                return concrete(x);
            }
            Err(V::Inc("unresolved disjunction".into()))
        }
        V::Bot(m) => Err(V::Bot(m)),
        V::Inc(m) => Err(V::Inc(m)),
        other => Err(V::Inc(format!("non-concrete value {other}"))),
    }
}

/// Unifies `input` with the compiled policy and validates the result; the errors name field paths.
pub(super) fn validate<'a>(root: &'a StructLit, input: &'a Json, regexes: &'a HashMap<String, Regex>) -> Result<(), Vec<String>> {
    let mut e = Engine {
        vs: Vec::new(),
        frames: Vec::new(),
        regexes,
        dyn_regexes: HashMap::new(),
        steps: 0,
        nest: 0,
        errors: Vec::new(),
        seen: HashSet::new(),
        fatal: None,
    };
    let r = e.new_vertex(Label::Regular(String::new()), None);
    e.vs[r].regular = true;
    // the data first: conflict messages then read "<data> and <policy>", as upstream's do
    e.vs[r].conjs.push(Conj { src: Src::Json(input), fl: PLAIN });
    e.vs[r].conjs.push(Conj { src: Src::Lit(root, None), fl: PLAIN });
    e.walk(r, 0);
    if let Some(f) = e.fatal.take() {
        e.errors.push(f);
    }
    if e.errors.is_empty() { Ok(()) } else { Err(e.errors) }
}

pub(super) struct Engine<'a> {
    pub(super) vs: Vec<Vertex<'a>>,
    pub(super) frames: Vec<Frame>,
    pub(super) regexes: &'a HashMap<String, Regex>,
    pub(super) dyn_regexes: HashMap<String, Regex>,
    steps: u64,
    pub(super) nest: usize,
    errors: Vec<String>,
    seen: HashSet<String>,
    pub(super) fatal: Option<String>,
}

impl<'a> Engine<'a> {
    fn new_vertex(&mut self, label: Label, parent: Option<usize>) -> usize {
        if self.vs.len() >= MAX_VERTICES && self.fatal.is_none() {
            self.fatal = Some(format!("evaluation aborted: more than {MAX_VERTICES} values"));
        }
        self.vs.push(Vertex {
            label,
            parent,
            conjs: Vec::new(),
            processed: 0,
            arcs: Vec::new(),
            patterned: 0,
            index: HashMap::new(),
            st: St::New,
            regular: false,
            is_struct: false,
            is_list: false,
            closed_lens: Vec::new(),
            min_len: 0,
            patterns: Vec::new(),
            groups: Vec::new(),
            values: Vec::new(),
            comps: Vec::new(),
            result: V::Top,
        });
        self.vs.len() - 1
    }

    pub(super) fn arc(&mut self, v: usize, label: &Label) -> usize {
        if let Some(&a) = self.vs[v].index.get(label) {
            return a;
        }
        let a = self.new_vertex(label.clone(), Some(v));
        self.vs[v].arcs.push(a);
        self.vs[v].index.insert(label.clone(), a);
        a
    }

    pub(super) fn add(&mut self, a: usize, c: Conj<'a>) {
        match self.vs[a].st {
            St::New | St::Expanding => {}
            // expanded for a comprehension guard but not evaluated: expand the rest later
            St::Expanded => self.vs[a].st = St::New,
            St::Evaluating | St::Done => {
                let m = "field added by a comprehension after its value was used (by the guard or a reference): not supported";
                self.err(a, m.to_string());
                return;
            }
        }
        if !c.fl.optional {
            self.vs[a].regular = true;
        }
        self.vs[a].conjs.push(c);
    }

    fn path(&self, v: usize) -> String {
        let mut parts = Vec::new();
        let mut cur = v;
        while let Some(p) = self.vs[cur].parent {
            parts.push(self.vs[cur].label.to_string());
            cur = p;
        }
        parts.reverse();
        parts.join(".")
    }

    pub(super) fn err(&mut self, v: usize, msg: String) {
        let p = self.path(v);
        let s = if p.is_empty() { msg } else { format!("{p}: {msg}") };
        if self.errors.len() < MAX_ERRORS && self.seen.insert(s.clone()) {
            self.errors.push(s);
        }
    }

    pub(super) fn step(&mut self) -> bool {
        if self.fatal.is_some() {
            return false;
        }
        self.steps += 1;
        if self.steps > MAX_STEPS {
            self.fatal = Some(format!("evaluation aborted: more than {MAX_STEPS} steps"));
            return false;
        }
        true
    }

    pub(super) fn enter(&mut self) -> bool {
        if self.nest >= MAX_NEST {
            if self.fatal.is_none() {
                self.fatal = Some(format!("evaluation aborted: nested deeper than {MAX_NEST} levels (reference chain or cycle)"));
            }
            return false;
        }
        self.nest += 1;
        true
    }

    // -- evaluation -------------------------------------------------------------------------------

    pub(super) fn eval(&mut self, v: usize) -> V {
        match self.vs[v].st {
            St::Done => return self.vs[v].result.clone(),
            St::Evaluating => return V::Inc("cycle".into()),
            St::Expanding => {
                return V::Bot("the value of a struct is used by a comprehension inside it (not supported)".into());
            }
            St::New | St::Expanded => {}
        }
        self.expand(v);
        match self.vs[v].st {
            St::Expanded => {}
            // evaluated meanwhile (a comprehension guard of an ancestor read it)
            St::Done => return self.vs[v].result.clone(),
            _ => return V::Inc("evaluation in progress".into()),
        }
        if !self.enter() {
            return V::Bot("evaluation nested too deeply".into());
        }
        self.vs[v].st = St::Evaluating;
        let pending = std::mem::take(&mut self.vs[v].values);
        let mut acc = V::Top;
        let mut inc: Option<String> = None;
        for p in pending {
            let x = match p {
                Pending::Val(x) => x,
                Pending::Expr(e, env) => self.eval_expr(e, env),
            };
            match x {
                V::Inc(m) => {
                    inc.get_or_insert(m);
                }
                x => acc = unify(acc, x),
            }
        }
        if let Some(m) = inc
            && !matches!(acc, V::Bot(_))
        {
            acc = V::Inc(m);
        }
        if self.vs[v].is_struct || self.vs[v].is_list {
            acc = self.composite(v, acc);
        } else if let V::Vertex(_) = acc {
            acc = V::Bot(
                "a struct or list reached through an expression is not supported here (use the reference alone as the field value)".into(),
            );
        }
        if let V::Bot(m) = &acc {
            let m = m.clone();
            self.err(v, m);
        }
        self.check_closed(v);
        self.vs[v].result = acc.clone();
        self.vs[v].st = St::Done;
        self.nest -= 1;
        acc
    }

    fn composite(&mut self, v: usize, acc: V) -> V {
        let (is_s, is_l) = (self.vs[v].is_struct, self.vs[v].is_list);
        if is_s && is_l {
            return V::Bot("conflicting values: a struct and a list (mismatched types struct and list)".into());
        }
        if is_l {
            let lens = self.vs[v].closed_lens.clone();
            if let Some(&n) = lens.first() {
                if let Some(&m) = lens.iter().find(|&&m| m != n) {
                    return V::Bot(format!("incompatible list lengths ({n} and {m})"));
                }
                let min = self.vs[v].min_len;
                if min > n {
                    return V::Bot(format!("incompatible list lengths ({n} and {min})"));
                }
            }
        }
        let kind = if is_l { K_LIST } else { K_STRUCT };
        match acc {
            V::Or(alts) => {
                let mut errs = Vec::new();
                let mut inc = None;
                let mut ok = false;
                for (a, _) in alts {
                    match self.composite_one(v, kind, a) {
                        V::Bot(m) => errs.push(m),
                        V::Inc(m) => inc = Some(m),
                        _ => ok = true,
                    }
                }
                if ok {
                    V::Vertex(v)
                } else if let Some(m) = inc {
                    V::Inc(m)
                } else {
                    V::Bot(format!("{} errors in empty disjunction: {}", errs.len(), errs.join("; ")))
                }
            }
            V::And(xs, _) => {
                let mut inc = None;
                for x in xs {
                    match self.composite_one(v, kind, x) {
                        V::Bot(m) => return V::Bot(m),
                        V::Inc(m) => inc = Some(m),
                        _ => {}
                    }
                }
                inc.map(V::Inc).unwrap_or(V::Vertex(v))
            }
            other => self.composite_one(v, kind, other),
        }
    }

    fn composite_one(&mut self, v: usize, kind: u8, x: V) -> V {
        match x {
            V::Top => V::Vertex(v),
            V::Bot(m) => V::Bot(m),
            V::Inc(m) => V::Inc(m),
            V::Kind(k) if k & kind != 0 => V::Vertex(v),
            V::Val(val) if val.b.subject_kind() & kind != 0 => match self.check_vertex(v, &val) {
                Ok(()) => V::Vertex(v),
                Err(e) => e,
            },
            V::Vertex(_) => V::Bot("unifying a struct or list reached through an expression is not supported".into()),
            other => {
                let r = self.render(v);
                let ko = value::mask(&other);
                V::Bot(format!(
                    "conflicting values {r} and {other} (mismatched types {} and {})",
                    value::kind_name(kind),
                    value::kind_name(ko)
                ))
            }
        }
    }

    fn check_closed(&mut self, v: usize) {
        let groups: Vec<HashSet<Label>> = self.vs[v].groups.iter().filter(|(_, g)| !g.open).map(|(_, g)| g.labels.clone()).collect();
        if groups.is_empty() {
            return;
        }
        let arcs = self.vs[v].arcs.clone();
        for a in arcs {
            let lab = self.vs[a].label.clone();
            if !matches!(lab, Label::Regular(_)) || !self.vs[a].regular {
                continue;
            }
            if groups.iter().any(|g| !g.contains(&lab)) {
                self.err(a, "field not allowed".to_string());
            }
        }
    }

    fn walk(&mut self, v: usize, depth: usize) {
        if self.fatal.is_some() {
            return;
        }
        if depth > MAX_PATH {
            self.err(v, format!("value nested deeper than {MAX_PATH} levels (structural cycle?)"));
            if self.fatal.is_none() {
                self.fatal = Some(format!("evaluation aborted: value nested deeper than {MAX_PATH} levels"));
            }
            return;
        }
        self.eval(v);
        let arcs = self.vs[v].arcs.clone();
        for a in arcs {
            if self.fatal.is_some() {
                return;
            }
            let x = &self.vs[a];
            if !x.regular {
                continue;
            }
            // data the policy does not touch cannot conflict with anything
            if x.st == St::New && x.conjs.len() == 1 && matches!(x.conjs[0].src, Src::Json(_)) {
                continue;
            }
            self.walk(a, depth + 1);
        }
    }

    pub(super) fn render(&mut self, v: usize) -> String {
        let mut out = String::new();
        self.render_into(v, &mut out, 0);
        out
    }

    fn render_into(&mut self, v: usize, out: &mut String, depth: usize) {
        if out.len() > RENDER_LIMIT || depth > 8 {
            out.push_str("...");
            return;
        }
        self.expand(v);
        let is_list = self.vs[v].is_list;
        out.push(if is_list { '[' } else { '{' });
        let arcs = self.vs[v].arcs.clone();
        let mut first = true;
        for a in arcs {
            let lab = self.vs[a].label.clone();
            if !self.vs[a].regular || !matches!(lab, Label::Regular(_) | Label::Index(_)) {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            if out.len() > RENDER_LIMIT {
                out.push_str("...");
                break;
            }
            if !is_list {
                out.push_str(&lab.to_string());
                out.push(':');
            }
            match self.eval(a) {
                V::Vertex(t) if t == a => self.render_into(a, out, depth + 1),
                other => out.push_str(&other.to_string()),
            }
        }
        out.push(if is_list { ']' } else { '}' });
    }

    pub(super) fn show(&mut self, c: &C) -> String {
        match c {
            C::S(s) => s.to_string(),
            C::Vertex(t) => self.render(*t),
        }
    }

    pub(super) fn guard(&mut self, cond: &'a Expr, env: Option<usize>) -> Result<bool, Option<String>> {
        let v = self.eval_expr(cond, env);
        match concrete(v) {
            Ok(C::S(Scalar::Bool(b))) => Ok(b),
            Ok(c) => {
                let s = self.show(&c);
                Err(Some(format!("cannot use {s} as the bool of an if condition")))
            }
            Err(V::Bot(m)) => Err(Some(m)),
            Err(_) => Err(None),
        }
    }

    pub(super) fn eval_expr(&mut self, e: &'a Expr, env: Option<usize>) -> V {
        if !self.step() {
            return V::Bot("evaluation step limit exceeded".into());
        }
        if !self.enter() {
            return V::Bot("expression evaluation nested too deeply".into());
        }
        let r = self.eval_inner(e, env);
        self.nest -= 1;
        r
    }

    fn eval_inner(&mut self, e: &'a Expr, env: Option<usize>) -> V {
        match e {
            Expr::Lit(s) => V::Atom(s.clone()),
            Expr::Top => V::Top,
            Expr::Bottom => V::Bot("explicit error (_|_ literal)".into()),
            Expr::Kind(k) => V::Kind(*k),
            Expr::Ref { .. } | Expr::Sel(..) | Expr::Index(..) => match self.resolve(e, env) {
                Target::Vertex(t) => self.eval(t),
                Target::Val(x) => x,
            },
            Expr::Builtin(b) => V::Val(Validator { b: *b, args: Vec::new() }),
            Expr::Call(f, args, _) => self.call(f, args, env),
            Expr::Unary(op, x) => {
                let x = self.eval_expr(x, env);
                self.unary(*op, x)
            }
            Expr::Default(x) | Expr::Paren(x) => self.eval_expr(x, env),
            Expr::Binary(BinOp::Or, ..) => self.disjunction(e, env),
            Expr::Binary(BinOp::And, a, b) => {
                let a = self.eval_expr(a, env);
                let b = self.eval_expr(b, env);
                unify(a, b)
            }
            Expr::Binary(op @ (BinOp::LAnd | BinOp::LOr), a, b) => {
                let a = self.eval_expr(a, env);
                match self.bool_of(a) {
                    Err(x) => x,
                    // `false && _` and `true || _` without evaluating the right side
                    Ok(x) if (*op == BinOp::LAnd) != x => V::Atom(Scalar::Bool(x)),
                    Ok(_) => {
                        let b = self.eval_expr(b, env);
                        match self.bool_of(b) {
                            Ok(y) => V::Atom(Scalar::Bool(y)),
                            Err(x) => x,
                        }
                    }
                }
            }
            Expr::Binary(op, a, b) => {
                let a = self.eval_expr(a, env);
                let b = self.eval_expr(b, env);
                self.binary(*op, a, b)
            }
            Expr::Struct(_) | Expr::List(..) => V::Bot("a struct or list literal inside an expression is not supported".into()),
            Expr::Ident(n, _) => V::Bot(format!("internal error: unresolved identifier {n}")),
        }
    }
}
