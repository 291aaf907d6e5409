//! The syntax tree of the CUE subset: positions, labels, declarations and expressions.

use std::fmt;

use super::value::{self, BoundOp, Builtin, Scalar};

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

impl StructLit {
    /// The labels of the regular fields the struct declares.
    pub(super) fn field_labels(&self) -> impl Iterator<Item = &Label> {
        self.decls.iter().filter_map(|d| match d {
            Decl::Field { label, .. } => Some(label),
            _ => None,
        })
    }
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
    Ref {
        up: usize,
        label: Label,
    },
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

/// An `import` declaration of the file, and whether any reference used it.
#[derive(Debug)]
pub(super) struct Import {
    pub(super) name: String,
    pub(super) path: String,
    pub(super) pos: Pos,
    pub(super) used: bool,
}
