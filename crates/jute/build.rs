//! Generates the jute records from `jute-schemas/*.jute` (at the workspace root) into
//! `$OUT_DIR/records.rs`, which `src/lib.rs` includes.

#[allow(dead_code, missing_docs)]
#[path = "src/schema.rs"]
mod schema;

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dir = manifest.join("../../jute-schemas");
    println!("cargo:rerun-if-changed={}", dir.display());

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "jute"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .jute files in {}", dir.display());

    let mut modules = Vec::new();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        match schema::parse(&text) {
            Ok(mut m) => modules.append(&mut m),
            Err(e) => panic!("{}: {e}", file.display()),
        }
    }
    let code = schema::generate(&modules).unwrap_or_else(|e| panic!("{e}"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("records.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
