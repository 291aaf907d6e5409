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

use super::parse::{BinOp, Decl, Expr, Label, Marker, StructLit, UnOp};
use super::value::{
    self, BoundOp, Builtin, K_LIST, K_STRUCT, RFC3339, RFC3339_NANO, Scalar, V, Validator, finish_or, push_alt, unify,
};

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
struct Flags {
    /// The definition (its vertex) that closes the structs of this conjunct.
    close: Option<usize>,
    /// From an optional (`?`) or required (`!`) field: not a regular field by itself.
    optional: bool,
    /// Produced while expanding its vertex (not copied when the vertex is referenced).
    derived: bool,
    /// An embedding: its fields join the closedness of the enclosing literal.
    embed: bool,
}

const PLAIN: Flags = Flags { close: None, optional: false, derived: false, embed: false };

#[derive(Clone, Copy)]
enum Src<'a> {
    Json(&'a Json),
    Lit(&'a StructLit, Option<usize>),
    Expr(&'a Expr, Option<usize>),
}

#[derive(Clone, Copy)]
struct Conj<'a> {
    src: Src<'a>,
    fl: Flags,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    New,
    Expanding,
    Expanded,
    Evaluating,
    Done,
}

enum Pending<'a> {
    Expr(&'a Expr, Option<usize>),
    Val(V),
}

struct Group {
    labels: HashSet<Label>,
    open: bool,
}

type Comprehension<'a> = (&'a Expr, &'a StructLit, Option<usize>, Flags);
type Pattern<'a> = (usize, &'a Expr, Option<usize>, Flags);

struct Vertex<'a> {
    label: Label,
    parent: Option<usize>,
    conjs: Vec<Conj<'a>>,
    /// Conjuncts already processed (a comprehension may add more after an expansion).
    processed: usize,
    arcs: Vec<usize>,
    /// Arcs the list element patterns were applied to.
    patterned: usize,
    index: HashMap<Label, usize>,
    st: St,
    /// Has a conjunct that makes it a regular field (not only `?`/`!` constraints).
    regular: bool,
    is_struct: bool,
    is_list: bool,
    closed_lens: Vec<usize>,
    min_len: usize,
    patterns: Vec<Pattern<'a>>,
    groups: Vec<(usize, Group)>,
    values: Vec<Pending<'a>>,
    comps: Vec<Comprehension<'a>>,
    result: V,
}

struct Frame {
    parent: Option<usize>,
    vertex: usize,
}

enum Target {
    Vertex(usize),
    Val(V),
}

/// A concrete value: a scalar or a struct/list vertex.
enum C {
    S(Scalar),
    Vertex(usize),
}

fn concrete(v: V) -> Result<C, V> {
    match v {
        V::Atom(s) => Ok(C::S(s)),
        V::Vertex(t) => Ok(C::Vertex(t)),
        V::Or(alts) => {
            let mut defs: Vec<V> = alts.into_iter().filter(|(_, d)| *d).map(|(x, _)| x).collect();
            if defs.len() == 1 {
                if let Some(x) = defs.pop() {
                    return concrete(x);
                }
            }
            Err(V::Inc("unresolved disjunction".into()))
        }
        V::Bot(m) => Err(V::Bot(m)),
        V::Inc(m) => Err(V::Inc(m)),
        other => Err(V::Inc(format!("non-concrete value {other}"))),
    }
}

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

struct Engine<'a> {
    vs: Vec<Vertex<'a>>,
    frames: Vec<Frame>,
    regexes: &'a HashMap<String, Regex>,
    dyn_regexes: HashMap<String, Regex>,
    steps: u64,
    nest: usize,
    errors: Vec<String>,
    seen: HashSet<String>,
    fatal: Option<String>,
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

    fn arc(&mut self, v: usize, label: &Label) -> usize {
        if let Some(&a) = self.vs[v].index.get(label) {
            return a;
        }
        let a = self.new_vertex(label.clone(), Some(v));
        self.vs[v].arcs.push(a);
        self.vs[v].index.insert(label.clone(), a);
        a
    }

    fn add(&mut self, a: usize, c: Conj<'a>) {
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

    fn err(&mut self, v: usize, msg: String) {
        let p = self.path(v);
        let s = if p.is_empty() { msg } else { format!("{p}: {msg}") };
        if self.errors.len() < MAX_ERRORS && self.seen.insert(s.clone()) {
            self.errors.push(s);
        }
    }

    fn step(&mut self) -> bool {
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

    fn enter(&mut self) -> bool {
        if self.nest >= MAX_NEST {
            if self.fatal.is_none() {
                self.fatal = Some(format!("evaluation aborted: nested deeper than {MAX_NEST} levels (reference chain or cycle)"));
            }
            return false;
        }
        self.nest += 1;
        true
    }

    // -- expansion ------------------------------------------------------------------------------

    fn expand(&mut self, v: usize) {
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
                Expr::Paren(x) => self.process(v, Conj { src: Src::Expr(&**x, env), fl: c.fl }),
                Expr::Binary(BinOp::And, a, b) => {
                    self.process(v, Conj { src: Src::Expr(&**a, env), fl: c.fl });
                    self.process(v, Conj { src: Src::Expr(&**b, env), fl: c.fl });
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
            let labels: Vec<Label> = s
                .decls
                .iter()
                .filter_map(|d| match d {
                    Decl::Field { label, .. } => Some(label.clone()),
                    _ => None,
                })
                .collect();
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

    // -- references -------------------------------------------------------------------------------

    fn resolve(&mut self, e: &'a Expr, env: Option<usize>) -> Target {
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
        if let Some(a) = self.vs[b].index.get(label).copied() {
            if self.vs[a].regular {
                return Target::Vertex(a);
            }
        }
        if !self.vs[b].is_struct && !self.vs[b].is_list && self.vs[b].st == St::Done {
            if let V::Atom(s) = &self.vs[b].result {
                return Target::Val(V::Bot(format!("invalid selector {label}: {s} is not a struct")));
            }
        }
        Target::Val(V::Inc(format!("undefined field: {label}")))
    }

    // -- evaluation -------------------------------------------------------------------------------

    fn eval(&mut self, v: usize) -> V {
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
        if let Some(m) = inc {
            if !matches!(acc, V::Bot(_)) {
                acc = V::Inc(m);
            }
        }
        if self.vs[v].is_struct || self.vs[v].is_list {
            acc = self.composite(v, acc);
        } else if let V::Vertex(_) = acc {
            acc = V::Bot("a struct or list reached through an expression is not supported here (use the reference alone as the field value)".into());
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
    fn check_vertex(&mut self, v: usize, val: &Validator) -> Result<(), V> {
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

    fn render(&mut self, v: usize) -> String {
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

    fn show(&mut self, c: &C) -> String {
        match c {
            C::S(s) => s.to_string(),
            C::Vertex(t) => self.render(*t),
        }
    }

    fn guard(&mut self, cond: &'a Expr, env: Option<usize>) -> Result<bool, Option<String>> {
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

    fn eval_expr(&mut self, e: &'a Expr, env: Option<usize>) -> V {
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

    fn bool_of(&mut self, v: V) -> Result<bool, V> {
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

    fn unary(&mut self, op: UnOp, x: V) -> V {
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

    fn binary(&mut self, op: BinOp, a: V, b: V) -> V {
        let (x, y) = match both(a, b) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let (C::S(x), C::S(y)) = (x, y) else {
            return V::Bot(format!("operator {} on a struct or list is not supported", op_sym(op)));
        };
        match op {
            BinOp::Eq | BinOp::Ne => {
                let comparable = x.kind() == y.kind()
                    || (x.num().is_some() && y.num().is_some())
                    || x == Scalar::Null
                    || y == Scalar::Null;
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

    fn disjunction(&mut self, e: &'a Expr, env: Option<usize>) -> V {
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

    fn call(&mut self, f: &'a Expr, args: &'a [Expr], env: Option<usize>) -> V {
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
                    if let V::Atom(s) = self.eval(a) {
                        if s.kind() == x.kind() && value::scalar_eq(&s, &x) {
                            found = true;
                            break;
                        }
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
                let shown: Vec<String> = cs.iter().map(|c| match c {
                    C::S(s) => s.to_string(),
                    C::Vertex(_) => "{...}".to_string(),
                }).collect();
                V::Bot(format!("invalid arguments to {}: {}", b.name(), shown.join(", ")))
            }
        }
    }
}
