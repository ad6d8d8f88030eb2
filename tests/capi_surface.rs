//! The C surface's structural promises, checked on the source:
//! every entry point runs inside the panic guard, and every one is documented.

use std::path::Path;

/// Calls that open with `catch_unwind` (directly or through a helper that does).
const GUARDS: [&str; 11] = [
    "guard(", "guard_or(", "guard_value(", "with_builder(", "with_info(", "with_options(", "with_request(", "with_socket(", "with_response(", "edit(", "answer(",
];

/// An exported function definition (not a callback type alias).
fn is_entry_point(line: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("pub unsafe extern \"C\" fn ") || l.starts_with("pub extern \"C\" fn ")
}

#[test]
fn every_entry_point_is_guarded_and_documented() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/capi");
    let mut checked = 0;
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !is_entry_point(line) {
                continue;
            }
            checked += 1;
            let name = line.split("fn ").nth(1).unwrap().split('(').next().unwrap();
            assert!(name.starts_with("fidius_"), "{name}: C names start with fidius_");
            assert!(lines[i - 1].trim() == "#[no_mangle]", "{name}: not exported");
            assert!(lines[i - 2].trim_start().starts_with("///"), "{name}: no doc comment for the header");
            // The body starts after the signature's opening brace.
            let body_start = (i..lines.len()).find(|&j| lines[j].trim_end().ends_with('{')).unwrap() + 1;
            let first = lines[body_start].trim();
            assert!(
                GUARDS.iter().any(|g| first.starts_with(g)),
                "{}:{}: {name} does not start with a panic guard: `{first}`",
                path.display(),
                body_start + 1
            );
        }
    }
    assert!(checked >= 50, "only {checked} entry points found");
}

#[test]
fn the_checked_in_header_declares_every_entry_point() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(root.join("include/fidius.h")).unwrap();
    for file in std::fs::read_dir(root.join("src/capi")).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        for line in text.lines().filter(|l| is_entry_point(l)) {
            let name = line.split("fn ").nth(1).unwrap().split('(').next().unwrap();
            assert!(header.contains(&format!("{name}(")), "{name} missing from include/fidius.h");
        }
    }
}
