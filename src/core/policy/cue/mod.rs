//! CUE attestation policies, evaluated as Sigstore policy-controller evaluates them
//! (`policy: {type: cue, data: …}` in a `ClusterImagePolicy`, cosign `pkg/policy/eval.go`
//! `evaluateCue`): the policy text is compiled **alone** (so every identifier must be declared
//! by the policy), unified with the JSON document, and `Validate()`d with no options. Conflicts,
//! failed bounds and builtin validators, closedness violations and list-length mismatches are
//! errors; incomplete values are not — a constraint on a field the data lacks, a `struct.MinFields`
//! on an open struct, an `if` whose guard reads an absent field (the comprehension is skipped), a
//! required field `x!:` that is missing. The corpus `tests/fixtures/policy-formats/cue`
//! (MANIFEST.md) pins these rules; `tests/cue_corpus.rs` runs it.
//!
//! Supported subset (anything else is a compile error naming the construct and its position):
//! * file: optional `package x`; `import "time" | "list" | "struct" | "strings"` (single, grouped
//!   in parentheses, or aliased); an import that is never used is an error
//!   (`imported and not used: "list"`), as in cuelang.org/go ≥ v0.13 (policy-controller v0.15)
//!   — [`compile_tolerant`] makes it a warning, as older versions accepted it;
//! * declarations: `label: value`, single-line nesting `a: b: c: v`, quoted labels (always
//!   regular fields: `"_type"` meets the JSON key, unquoted `_type` is a hidden field that never
//!   does), optional `x?:` and required `x!:` fields, definitions `#X` (closed, recursively, also
//!   through lists; `...` reopens a struct), embeddings, `if cond { … }` comprehensions;
//! * values: double-quoted strings with escapes, ints, floats, `true`/`false`, `null`, `_`,
//!   `_|_`, the kinds `string int float number bool bytes`, struct literals, closed lists
//!   `[a, b]` and open lists `[a, ...T]` / `[...T]`, references to fields in scope (`a`, `#D`,
//!   `a.b`, `a[0]`, `a["k"]`) which see the unified value (data included);
//! * operators: `&`; `|` with defaults `*` over non-struct alternatives; bounds
//!   `< <= > >= !=` (strings compare byte-wise: RFC 3339 times compare lexically, not as
//!   instants) and `=~ !~` (unanchored RE2-style match); `== != < <= > >= =~ !~`, `&& || !`,
//!   `+ - * /` (`+` also on strings), unary `-`/`+`;
//! * builtins: `len`; `time.Parse` (layouts `time.RFC3339`/`time.RFC3339Nano` only; returns the
//!   UTC RFC 3339 string, as CUE does), `time.RFC3339`, `time.RFC3339Nano`, `time.Time`;
//!   `list.MinItems`, `list.MaxItems`, `list.Contains`; `struct.MinFields`, `struct.MaxFields`;
//!   `strings.HasPrefix`, `HasSuffix`, `Contains` (as functions or validators), `ToLower`,
//!   `ToUpper`, `MinRunes`, `MaxRunes`.
//!
//! Not supported (compile errors): `for` and `let` clauses, list comprehensions, pattern
//! constraints `[K]: V`, dynamic labels, aliases, string interpolation, multi-line, raw and bytes
//! strings, attributes, `close`/`and`/`or`/`div`…, other packages and builtins, struct or list
//! literals inside expressions, disjunctions of definitions or struct literals (a disjunction
//! whose alternative turns out to be a struct at run time is an evaluation error).
//!
//! Bounds (each an error, never a pass): source ≤ 64 KiB, syntactic nesting ≤ 64, expression
//! height ≤ 128, ≤ 1,000,000 evaluation steps, ≤ 150,000 values touched, ≤ 128 nested
//! evaluations, values ≤ 256 levels deep (a structural cycle such as `a: {b: a}` ends there).
//!
//! Known differences from cuelang.org/go, all failing closed or outside the corpus: contradictory
//! bounds with no concrete value (`>5 & <3`) are not detected; the order of the two values in
//! `conflicting values A and B` (the data's first) and the field order of rendered structs
//! (sorted) differ; a struct embedding a definition together with extra fields rejects the extra
//! fields; a comprehension adding a field that its own guard already read is an error.

mod ast;
mod builtins;
mod eval;
mod expand;
mod lex;
mod names;
mod ops;
mod parse;
mod resolve;
mod value;

use std::collections::HashMap;

/// Largest policy source accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = parse::MAX_SOURCE;
/// Most evaluation steps one validation may take.
pub const MAX_STEPS: u64 = eval::MAX_STEPS;
/// Most values (field paths) one validation may touch.
pub const MAX_VALUES: usize = eval::MAX_VERTICES;

/// A compiled CUE policy.
#[derive(Clone)]
pub struct Cue {
    root: ast::StructLit,
    regexes: HashMap<String, regex::Regex>,
    bytes: usize,
}

impl std::fmt::Debug for Cue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cue").field("bytes", &self.bytes).field("declarations", &self.root.decls.len()).finish()
    }
}

/// Parses the policy and checks it stays inside the supported subset; errors name the construct
/// and its position (`… at line L, column C`).
pub fn compile(source: &str) -> Result<Cue, String> {
    match compile_tolerant(source)? {
        (_, unused) if !unused.is_empty() => Err(unused.join("; ")),
        (c, _) => Ok(c),
    }
}

/// [`compile`] as CUE before v0.13 (policy-controller before v0.15) compiled: an import that
/// is never used is returned as a warning rather than refused.
pub fn compile_tolerant(source: &str) -> Result<(Cue, Vec<String>), String> {
    let c = parse::compile(source)?;
    Ok((Cue { root: c.root, regexes: c.regexes, bytes: source.len() }, c.unused))
}

impl Cue {
    /// Unifies `input` with the policy and validates the result as `Value.Validate()` (no
    /// options) does. Each error names the field path and the conflict, e.g.
    /// `typemeta.kind: conflicting values "Job" and "Pod"`.
    pub fn validate(&self, input: &serde_json::Value) -> Result<(), Vec<String>> {
        eval::validate(&self.root, input, &self.regexes)
    }
}

/// policy-controller's `EvaluatePolicyAgainstJSON` for `type: cue`, with its error wording
/// (`name` is the attestation's name, or `ClusterImagePolicy` for a CIP-level policy).
pub fn evaluate(name: &str, source: &str, input: &serde_json::Value) -> Result<(), String> {
    let policy = compile(source)
        .map_err(|e| format!("failed evaluating cue policy for {name}: failed to compile the cue policy with error: {e}"))?;
    policy
        .validate(input)
        .map_err(|errs| format!("failed evaluating cue policy for {name}: failed to evaluate the policy with error: {}", errs.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(policy: &str, data: serde_json::Value) -> Result<(), Vec<String>> {
        compile(policy).unwrap_or_else(|e| panic!("{policy}: {e}")).validate(&data)
    }

    #[test]
    fn defaults_decide_guards_and_data_overrides_them() {
        let p = "x: *\"a\" | \"b\"\nif x == \"a\" {\n\ty: 1 & 2\n}\n";
        let e = check(p, json!({})).unwrap_err();
        assert!(e.iter().any(|m| m.starts_with("y: conflicting values 1 and 2")), "{e:?}");
        assert!(check(p, json!({"x": "b"})).is_ok());
        let e = check("x: \"a\" | \"b\"", json!({"x": "c"})).unwrap_err();
        assert!(e.iter().any(|m| m.starts_with("x: ") && m.contains("empty disjunction")), "{e:?}");
    }

    #[test]
    fn definitions_close_structs_and_open_lists_apply_to_every_element() {
        let p = "#S: {name: string, ...}\n#P: {kind: \"a\" | \"b\", items: [...#S]}\nv: #P";
        assert!(check(p, json!({"v": {"kind": "a", "items": [{"name": "x", "extra": 1}]}})).is_ok());
        let e = check(p, json!({"v": {"kind": "a", "other": 1}})).unwrap_err();
        assert!(e.iter().any(|m| m == "v.other: field not allowed"), "{e:?}");
        let e = check(p, json!({"v": {"items": [{"name": 1}]}})).unwrap_err();
        assert!(e.iter().any(|m| m.starts_with("v.items.0.name: conflicting values 1 and string")), "{e:?}");
    }

    #[test]
    fn builtins() {
        let p = "import \"strings\"\nimport \"list\"\nname: strings.HasPrefix(\"ghcr.io/\")\nif list.Contains(tags, \"latest\") {\n\tbad: true & false\n}\ntags: _";
        assert!(check(p, json!({"name": "ghcr.io/x", "tags": ["v1"]})).is_ok());
        let e = check(p, json!({"name": "docker.io/x", "tags": ["latest"]})).unwrap_err();
        assert!(
            e.iter().any(|m| m.starts_with("name: invalid value \"docker.io/x\" (does not satisfy strings.HasPrefix(\"ghcr.io/\"))")),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m.starts_with("bad: conflicting values")), "{e:?}");
        assert!(check("n: len(s) & 3\ns: \"abc\"", json!({})).is_ok());
        assert!(check("n: len(s) & 2\ns: \"abc\"", json!({})).is_err());
    }

    #[test]
    fn time_parse_returns_the_utc_rfc3339nano_string() {
        assert_eq!(value::parse_time("2049-10-09T17:10:27Z").unwrap(), "2049-10-09T17:10:27Z");
        assert_eq!(value::parse_time("2049-10-09T17:10:27+09:00").unwrap(), "2049-10-09T08:10:27Z");
        assert_eq!(value::parse_time("2022-03-09T17:10:27.120Z").unwrap(), "2022-03-09T17:10:27.12Z");
        assert_eq!(value::parse_time("2024-02-29T23:30:00-01:00").unwrap(), "2024-03-01T00:30:00Z");
        assert!(value::parse_time("2023-02-29T00:00:00Z").is_err());
        assert!(value::parse_time("2023-01-01 00:00:00Z").is_err());
        let e = check("import \"time\"\nt: time.Parse(time.RFC3339, \"yesterday\")", json!({})).unwrap_err();
        assert!(e.iter().any(|m| m.starts_with("t: error in call to time.Parse")), "{e:?}");
    }

    #[test]
    fn constructs_outside_the_subset_do_not_compile() {
        for (src, what) in [
            ("a: [for x in [1] {x}]", "for"),
            ("[string]: int", "pattern constraint"),
            ("a: \"\\(b)\"\nb: 1", "interpolation"),
            ("import \"math\"\na: math.Pi", "import"),
            ("import \"time\"\na: time.Now()", "time.Now"),
            ("a: close({})", "close"),
            ("let x = 1\na: x", "let"),
            ("#A: {}\n#B: {}\na: #A | #B", "disjunction"),
            ("x: {y: 1} | {z: 2}", "struct literal"),
            ("a: b", "reference \"b\" not found"),
            ("import \"list\"\na: 1", "imported and not used: \"list\""),
        ] {
            let e = compile(src).expect_err(src);
            assert!(e.contains(what), "{src}: {e}");
            assert!(e.contains("line "), "{src}: no position in {e}");
        }
    }

    #[test]
    fn hostile_policies_are_cut_off() {
        // exponential fan-out through references
        let mut p = String::from("a0: {x: 1}\n");
        for i in 1..40 {
            p.push_str(&format!("a{i}: {{l: a{}, r: a{}}}\n", i - 1, i - 1));
        }
        let t0 = std::time::Instant::now();
        let e = check(&p, json!({})).unwrap_err();
        assert!(e.iter().any(|m| m.contains("evaluation aborted")), "{e:?}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(20), "{:?}", t0.elapsed());
        // structural cycle
        let e = check("a: {b: a}", json!({})).unwrap_err();
        assert!(e.iter().any(|m| m.contains("nested deeper")), "{e:?}");
        // too deep, too big, too long a chain: refused at compile time, not a stack overflow
        assert!(compile(&format!("a: {}1{}", "[".repeat(100), "]".repeat(100))).is_err());
        assert!(compile(&"x: 1\n".repeat(20_000)).is_err());
        assert!(compile(&format!("a: 1{}", " & 1".repeat(5_000))).is_err());
        assert!(compile(&format!("a: b{}", ".c".repeat(5_000))).is_err());
    }
}
