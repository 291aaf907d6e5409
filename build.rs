//! Embeds `bundles/demo-tuf/` (every file, with its relative path) into the binary.
use std::path::Path;

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("bundles/demo-tuf").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(base, &p, out);
        } else {
            let rel = p.strip_prefix(base).expect("under base").to_string_lossy().replace('\\', "/");
            out.push(format!("({rel:?}, include_bytes!({:?}) as &[u8])", p.canonicalize().expect("path").display().to_string()));
        }
    }
}

fn main() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/demo-tuf");
    println!("cargo:rerun-if-changed={}", base.display());
    let mut items = Vec::new();
    if base.is_dir() {
        walk(&base, &base, &mut items);
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("demo_tuf.rs");
    std::fs::write(out, format!("[{}]", items.join(",\n"))).expect("write");
}
