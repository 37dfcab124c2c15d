//! Joins the Lua files of the function library (`src/lua/`) into one library: each
//! `-- @include <file>` line of `library.lua` is replaced by that file, marked where it begins,
//! so that Redis's line numbers in an error can be traced back (`store::library::locate`).

use std::path::Path;

fn main() {
    let dir = Path::new("src/lua");
    println!("cargo:rerun-if-changed={}", dir.display());
    let entry = dir.join("library.lua");
    let source = std::fs::read_to_string(&entry)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", entry.display()));
    let mut joined = String::with_capacity(64 * 1024);
    for line in source.lines() {
        match line.strip_prefix("-- @include ") {
            Some(file) => {
                let path = dir.join(file.trim());
                println!("cargo:rerun-if-changed={}", path.display());
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("cannot include {}: {e}", path.display()));
                joined.push_str(&format!("-- @file {}\n", file.trim()));
                joined.push_str(&text);
                if !text.ends_with('\n') {
                    joined.push('\n');
                }
                joined.push_str("-- @file library.lua\n");
            }
            None => {
                joined.push_str(line);
                joined.push('\n');
            }
        }
    }
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("dispatch.lua");
    std::fs::write(&out, joined).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
