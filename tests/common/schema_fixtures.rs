//! The typed native fixtures and their WIT schemas, all made by the published
//! Fidius toolchain (see tests/fixtures/native/{typed,typed_next,typed_v4}):
//!
//! - `TypedImpl` (fidius 0.5.9, ABI 500) and `TypedLegacy` (fidius 0.4.2,
//!   ABI 400): interface `Typed`, 11 methods, user types `Order`, `Line`,
//!   `Shape`, the same interface hash.
//! - `typed.wit` of `TypedImpl`, written by `fidius_build::emit_wit()` from
//!   the crate's build.rs into `typed/wit/` (gitignored).
//! - `typed.wit` of the newer revision (`typed_next`, not a plugin): the same
//!   11 methods plus an optional 12th, `extra() -> u32`, also by `emit_wit()`.
//! - `typed.wit` of `TypedLegacy`, written by the `fidius wit` CLI
//!   (fidius-cli 0.5.9). The CLI always writes `<dir>/wit/`, so it runs over a
//!   copy of the crate under the fixture target, leaving the source tree alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{fixture_target, native, repo};

pub struct TypedFixtures {
    /// `libfixture_typed.so`: `TypedImpl` (fidius 0.5.9).
    pub v5: PathBuf,
    /// Its schema, by `fidius_build::emit_wit()`.
    pub v5_wit: PathBuf,
    /// The newer revision's schema (one more, optional method), by `emit_wit()`.
    pub next_wit: PathBuf,
    /// `libfixture_typed_v4.so`: `TypedLegacy` (fidius 0.4.2).
    pub v4: PathBuf,
    /// Its schema, by `fidius wit`.
    pub v4_wit: PathBuf,
}

/// Build the native fixture workspace (all of it, typed members included),
/// and write the fidius 0.4.2 plugin's schema with the CLI, once per test binary.
pub fn typed() -> &'static TypedFixtures {
    static BUILT: OnceLock<TypedFixtures> = OnceLock::new();
    BUILT.get_or_init(|| {
        native();
        let dir = fixture_target().join("debug");
        let crates = repo().join("tests/fixtures/native");
        let fixtures = TypedFixtures {
            v5: dir.join("libfixture_typed.so"),
            v5_wit: crates.join("typed/wit/typed.wit"),
            next_wit: crates.join("typed_next/wit/typed.wit"),
            v4: dir.join("libfixture_typed_v4.so"),
            v4_wit: cli_wit(&crates.join("typed_v4"), "typed.wit"),
        };
        for f in [&fixtures.v5, &fixtures.v5_wit, &fixtures.next_wit, &fixtures.v4, &fixtures.v4_wit] {
            assert!(f.is_file(), "the fixture build did not make {}", f.display());
        }
        fixtures
    })
}

/// `fidius wit DIR` over a copy of the crate at `krate` (its Cargo.toml and
/// src/), returning the schema moved to `target/fixtures/<crate>-wit/<file>`.
/// Each process writes in its own directory and renames the result into
/// place, so test binaries running at once never read a half-written file.
fn cli_wit(krate: &Path, file: &str) -> PathBuf {
    let name = krate.file_name().unwrap().to_str().unwrap();
    let out_dir = fixture_target().join(format!("{name}-wit"));
    let work = out_dir.join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(krate.join("Cargo.toml"), work.join("Cargo.toml")).unwrap();
    super::sign::copy_dir(&krate.join("src"), &work.join("src"));

    let out = Command::new(super::sign::fidius_cli()).arg("wit").arg(&work).output().expect("fidius runs");
    assert!(
        out.status.success(),
        "fidius wit {} failed: {}\n{}",
        work.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let wit = out_dir.join(file);
    std::fs::rename(work.join("wit").join(file), &wit)
        .unwrap_or_else(|e| panic!("fidius wit did not write wit/{file} for {name}: {e}"));
    let _ = std::fs::remove_dir_all(&work);
    wit
}
