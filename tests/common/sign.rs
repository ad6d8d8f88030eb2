//! Keys, signatures and `.fid` archives made by the published `fidius-cli`
//! 0.5.9 (the `fidius` binary), installed once under `target/fidius-cli`
//! (a debug build: about a minute on two cores, cold).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::repo;

/// The `fidius` binary of fidius-cli 0.5.9, installed on first use.
pub fn fidius_cli() -> &'static Path {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let root = repo().join("target").join("fidius-cli");
        let bin = root.join("bin").join("fidius");
        if !bin.is_file() {
            let started = std::time::Instant::now();
            super::run(
                Command::new(env!("CARGO"))
                    .args(["install", "fidius-cli", "--version", "=0.5.9", "--locked", "--debug", "-j2", "--quiet", "--root"])
                    .arg(&root),
            );
            eprintln!("installed fidius-cli 0.5.9 in {:.0?}", started.elapsed());
        }
        bin
    })
}

fn fidius(args: &[&std::ffi::OsStr]) {
    let out = Command::new(fidius_cli()).args(args).output().expect("fidius runs");
    assert!(
        out.status.success(),
        "fidius {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key pair as `fidius keygen --out NAME` writes it.
pub struct Keypair {
    pub secret: PathBuf,
    pub public: PathBuf,
}

impl Keypair {
    /// The 32 raw bytes of the public key.
    pub fn public_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.public).unwrap()
    }
}

/// `fidius keygen --out dir/name`.
pub fn keygen(dir: &Path, name: &str) -> Keypair {
    let out = dir.join(name);
    fidius(&["keygen".as_ref(), "--out".as_ref(), out.as_os_str()]);
    let keys = Keypair { secret: dir.join(format!("{name}.secret")), public: dir.join(format!("{name}.public")) };
    assert_eq!(std::fs::read(&keys.public).unwrap().len(), 32);
    keys
}

/// `fidius sign --key K.secret FILE`: writes `FILE.sig`.
pub fn sign_file(key: &Keypair, file: &Path) {
    fidius(&["sign".as_ref(), "--key".as_ref(), key.secret.as_os_str(), file.as_os_str()]);
}

/// `fidius package sign --key K.secret DIR`: writes `DIR/package.sig`.
pub fn sign_package(key: &Keypair, dir: &Path) {
    fidius(&["package".as_ref(), "sign".as_ref(), "--key".as_ref(), key.secret.as_os_str(), dir.as_os_str()]);
}

/// `fidius package verify --key K.public DIR` succeeds.
pub fn verifies_package(key: &Keypair, dir: &Path) -> bool {
    Command::new(fidius_cli())
        .args(["package", "verify", "--key"])
        .arg(&key.public)
        .arg(dir)
        .output()
        .expect("fidius runs")
        .status
        .success()
}

/// `fidius package pack DIR --output OUT`: a `.fid` archive.
pub fn pack(dir: &Path, out: &Path) {
    fidius(&["package".as_ref(), "pack".as_ref(), dir.as_os_str(), "--output".as_ref(), out.as_os_str()]);
}

/// The library path's signature file, as `fidius sign` names it.
pub fn sig_of(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// Copy `src` to `dst` (a directory), with every file of every subdirectory.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let to = dst.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &to);
        } else {
            std::fs::copy(&path, &to).unwrap();
        }
    }
}
