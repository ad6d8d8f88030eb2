//! The `pycalc` Python plugin package, made as its author would with the
//! published toolchain by tests/fixtures/python/build.sh: `fidius
//! python-stub` for the interface hash, `fidius package pack` (which vendors
//! requirements.txt into vendor/ with pip) for the `.fid`, and `fidius wit`
//! for the schema.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::sign::fidius_cli;
use super::{fixture_target, repo};

pub struct PythonFixtures {
    /// The package directory, with vendor/ filled by `fidius package pack`.
    pub dir: PathBuf,
    /// The `.fid` archive `fidius package pack` wrote.
    pub fid: PathBuf,
    /// The interface's schema, by `fidius wit`.
    pub wit: PathBuf,
    /// `__interface_hash__`, by `fidius python-stub`.
    pub hash: u64,
}

pub fn python() -> &'static PythonFixtures {
    static BUILT: OnceLock<PythonFixtures> = OnceLock::new();
    BUILT.get_or_init(|| {
        // Per process, so test binaries running at once never share a half-made package.
        let out = fixture_target().join("python").join(format!("run-{}", std::process::id()));
        let status = Command::new("bash")
            .arg(repo().join("tests/fixtures/python/build.sh"))
            .arg(fidius_cli())
            .arg(&out)
            .status()
            .expect("bash runs");
        assert!(status.success(), "tests/fixtures/python/build.sh failed");
        let hash = std::fs::read_to_string(out.join("pycalc.hash")).unwrap();
        let hash = u64::from_str_radix(hash.trim().trim_start_matches("0x"), 16).unwrap();
        PythonFixtures { dir: out.join("pycalc"), fid: out.join("pycalc.fid"), wit: out.join("pycalc.wit"), hash }
    })
}
