//! JMESPath as Kyverno evaluates `{{ }}` variables. Parsing and evaluation are the `jmespath`
//! crate's; what Kyverno's go-jmespath fork does differently is added here:
//!
//! * a field access on an object lacking the key is an error, `Unknown key "<key>" in path`
//!   ([`JpError::NotFound`]) — in a path (`a.b`, `a[0]`) and on the right of `&&` when it is
//!   evaluated. Everywhere else (either side of `||` and `|`, `!`, comparisons, function
//!   arguments, projections, filters, multi-selects) the missing key is `null`, as standard
//!   JMESPath has it. So `a || 'x'` is `'x'` when `a` is missing, and `missing[*].x` is `null`
//!   while `missing.x` and `missing[0]` are errors;
//! * Kyverno's `to_upper` and `to_lower` functions next to the standard ones. Kyverno's other
//!   custom functions (`split`, `regex_match`, `time_*`, …) are [`JpError::Unsupported`], named
//!   when the policy loads, never guessed.
//!
//! Expressions are limited to [`MAX_EXPR_LEN`] bytes and [`MAX_NEST`] levels of brackets (the
//! parser is recursive).

use std::sync::LazyLock;

use jmespath::ast::Ast;
use jmespath::functions::{ArgumentType, CustomFunction, Signature};
use jmespath::{Context, Rcvar, Runtime, Variable};
use serde_json::Value;

/// Longest expression accepted.
pub const MAX_EXPR_LEN: usize = 4096;
/// Deepest bracket / parenthesis nesting accepted.
pub const MAX_NEST: usize = 64;

/// Why a JMESPath search failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JpError {
    /// Lexer or parser error (Kyverno: `incorrect query <q>: <err>`).
    Syntax(String),
    /// The fork's `NotFoundError`: the named key is missing from an object.
    NotFound(String),
    /// Runtime error (function arity or argument type).
    Eval(String),
    /// Outside what is implemented (named).
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

fn case_fn(upper: bool) -> Box<CustomFunction> {
    Box::new(CustomFunction::new(
        Signature::new(vec![ArgumentType::String], None),
        Box::new(move |args: &[Rcvar], _: &mut Context<'_>| {
            let s = args[0].as_string().cloned().unwrap_or_default();
            Ok(Rcvar::new(Variable::String(if upper { s.to_uppercase() } else { s.to_lowercase() })))
        }),
    ))
}

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let mut r = Runtime::new();
    r.register_builtin_functions();
    r.register_function("to_upper", case_fn(true));
    r.register_function("to_lower", case_fn(false));
    r
});

/// Evaluate `expression` against `data` as Kyverno's go-jmespath fork does.
pub fn search(expression: &str, data: &Value) -> Result<Value, JpError> {
    let expr = compile(expression)?;
    let data = Rcvar::new(Variable::from_serializable(data).map_err(|e| JpError::Eval(e.to_string()))?);
    let mut ctx = Context::new(expression, &RUNTIME);
    strict(expr.as_ast(), &data, &mut ctx, expression)?;
    let out = expr.search(data).map_err(|e| JpError::Eval(e.to_string()))?;
    serde_json::to_value(&*out).map_err(|e| JpError::Eval(e.to_string()))
}

/// Parse `expression` without evaluating it: syntax errors and functions outside the runtime,
/// for checking policies when they load.
pub fn check(expression: &str) -> Result<(), JpError> {
    compile(expression).map(|_| ())
}

fn compile(expression: &str) -> Result<jmespath::Expression<'static>, JpError> {
    if expression.len() > MAX_EXPR_LEN {
        return Err(JpError::Unsupported(format!("expression longer than {MAX_EXPR_LEN} bytes")));
    }
    let (mut depth, mut max) = (0usize, 0usize);
    for c in expression.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if max > MAX_NEST {
        return Err(JpError::Unsupported(format!("expression nested deeper than {MAX_NEST} levels")));
    }
    let expr = RUNTIME.compile(expression).map_err(|e| JpError::Syntax(e.to_string()))?;
    functions(expr.as_ast())?;
    Ok(expr)
}

fn functions(n: &Ast) -> Result<(), JpError> {
    if let Ast::Function { name, .. } = n
        && RUNTIME.get_function(name).is_none()
    {
        return Err(JpError::Unsupported(format!(
            "function {name}() (the standard JMESPath functions, to_upper and to_lower are implemented)"
        )));
    }
    children(n).into_iter().try_for_each(functions)
}

fn children(n: &Ast) -> Vec<&Ast> {
    match n {
        Ast::Comparison { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. } => vec![lhs, rhs],
        Ast::Condition { predicate, then, .. } => vec![predicate, then],
        Ast::Expref { ast: node, .. } | Ast::Flatten { node, .. } | Ast::Not { node, .. } | Ast::ObjectValues { node, .. } => vec![node],
        Ast::Function { args, .. } | Ast::MultiList { elements: args, .. } => args.iter().collect(),
        Ast::MultiHash { elements, .. } => elements.iter().map(|kv| &kv.value).collect(),
        Ast::Identity { .. } | Ast::Field { .. } | Ast::Index { .. } | Ast::Literal { .. } | Ast::Slice { .. } => vec![],
    }
}

/// The fork's missing-key errors, on the positions where it raises them (see the module doc).
fn strict(n: &Ast, data: &Rcvar, ctx: &mut Context<'_>, text: &str) -> Result<(), JpError> {
    let eval = |n: &Ast, d: &Rcvar, ctx: &mut Context<'_>| jmespath::interpret(d, n, ctx).map_err(|e| JpError::Eval(e.to_string()));
    match n {
        Ast::Field { name, .. } => match data.as_object() {
            Some(o) if !o.contains_key(name) => Err(JpError::NotFound(name.clone())),
            _ => Ok(()),
        },
        // `a | b` parses as a sub-expression too; the fork tolerates missing keys on both sides
        Ast::Subexpr { offset, .. } if text.get(*offset..).is_some_and(|t| t.starts_with('|')) => Ok(()),
        Ast::Subexpr { lhs, rhs, .. } => {
            strict(lhs, data, ctx, text)?;
            let left = eval(lhs, data, ctx)?;
            strict(rhs, &left, ctx, text)
        }
        Ast::And { lhs, rhs, .. } => {
            if eval(lhs, data, ctx)?.is_truthy() {
                strict(rhs, data, ctx, text)
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_keys_are_errors_only_in_paths() {
        let d = json!({"runDetails": {"builder": {"id": "b"}}, "list": [{"x": 1}, {"y": 2}], "n": null});
        assert_eq!(search("runDetails.builder.id", &d), Ok(json!("b")));
        assert_eq!(search("predicate.builder.id", &d), Err(JpError::NotFound("predicate".into())));
        assert_eq!(search("runDetails.builder.name", &d), Err(JpError::NotFound("name".into())));
        assert_eq!(search("missing[0]", &d), Err(JpError::NotFound("missing".into())));
        assert_eq!(search("missing || 'x'", &d), Ok(json!("x")));
        assert_eq!(search("missing[*].x", &d), Ok(Value::Null));
        assert_eq!(search("list[*].x", &d), Ok(json!([1])), "projections skip elements without the key");
        assert_eq!(search("missing | length(@)", &d).map_err(|e| matches!(e, JpError::Eval(_))), Err(true));
        assert_eq!(search("n.x", &d), Ok(Value::Null), "a field of null is null");
        assert_eq!(search("runDetails && missing", &d), Err(JpError::NotFound("missing".into())));
        assert_eq!(search("n && missing", &d), Ok(Value::Null));
        assert_eq!(search("length(list[?x > `0`])", &d), Ok(json!(1)));
        assert_eq!(search("to_upper(runDetails.builder.id)", &d), Ok(json!("B")));
    }

    #[test]
    fn unsupported_and_hostile_expressions_are_refused() {
        assert!(matches!(check("split(a, '/')"), Err(JpError::Unsupported(m)) if m.contains("split")));
        assert!(matches!(check("a.["), Err(JpError::Syntax(_))));
        assert!(matches!(check(&"[".repeat(1000)), Err(JpError::Unsupported(_))));
        assert!(matches!(check(&"a.".repeat(3000)), Err(JpError::Unsupported(_))));
        assert!(check("sort_by(items, &name)").is_ok());
    }
}
