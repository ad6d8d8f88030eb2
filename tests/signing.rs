//! Signatures in the formats of the published fidius toolchain: plugins and
//! packages signed (and `.fid` archives packed) by `fidius-cli` 0.5.9, loaded
//! through the C entry points with `fidius_host_builder_set_require_signature`;
//! unsigned, tampered and wrongly signed ones refused before they are loaded;
//! hostile `.fid` archives refused before anything is extracted.

mod common;

use std::path::{Path, PathBuf};

use common::sign::*;
use common::*;
use fidius::capi::*;
use fidius::Status;

/// Calc (native) and calc (WASM) both have `add(a, b)` at index 0.
const ADD: u32 = 0;

/// Keys made by `fidius keygen`: the trusted `dev` key and an untrusted `other` one.
struct Keys {
    dev: Keypair,
    other: Keypair,
}

fn keys(name: &str) -> Keys {
    let dir = scratch(&format!("{name}_keys"));
    Keys { dev: keygen(&dir, "dev"), other: keygen(&dir, "other") }
}

fn signed_host(paths: &[&Path], keys: &Keys) -> TestHost {
    TestHost::requiring_signatures(paths, &[TrustedKey::File(&keys.dev.public)])
}

fn add_native(plugin: &TestPlugin) -> i64 {
    unwire(&plugin.call(ADD, &wire(&(2i64, 3i64))).unwrap())
}

fn add_wasm(plugin: &TestPlugin) -> i64 {
    plugin.json(ADD, "[2, 40]").unwrap().as_i64().unwrap()
}

// ───────────────────────────── native libraries ─────────────────────────────

#[test]
fn native_libraries_signed_by_fidius_cli_load_with_signatures_required() {
    let keys = keys("sig_native_ok");
    let f = native();
    let dir = search_path("sig_native_ok", &[&f.v5, &f.v4]);
    for lib in ["libfixture_v5.so", "libfixture_v4.so"] {
        sign_file(&keys.dev, &dir.join(lib));
        assert_eq!(std::fs::read(dir.join(format!("{lib}.sig"))).unwrap().len(), 64, "a raw 64-byte signature");
    }
    // Several trusted keys, from a file and from raw bytes: any one verifying is enough.
    let dev = keys.dev.public_bytes();
    let host = TestHost::requiring_signatures(&[&dir], &[TrustedKey::File(&keys.other.public), TrustedKey::Bytes(&dev)]);
    let found = host.discover();
    let mut names: Vec<String> = found.plugins().into_iter().map(|p| p.name).collect();
    names.sort();
    assert_eq!(names, ["ArenaImpl", "BasicCalc", "ConfiguredGreeter", "LegacyArena", "LegacyCalc", "OtherCalc"]);
    assert!(found.skipped().is_empty(), "{:?}", found.skipped());
    // ABI 500 and ABI 400, by name and by path.
    assert_eq!(add_native(&host.load("BasicCalc").unwrap()), 5);
    assert_eq!(add_native(&host.load("LegacyCalc").unwrap()), 5);
    assert_eq!(add_native(&host.load_path(&dir.join("libfixture_v4.so"), Some("LegacyCalc")).unwrap()), 5);
    // Only the untrusted key: refused.
    let other_only = TestHost::requiring_signatures(&[&dir], &[TrustedKey::File(&keys.other.public)]);
    let e = other_only.load_path(&dir.join("libfixture_v5.so"), Some("BasicCalc")).err().unwrap();
    assert_eq!(e.status, Status::SignatureInvalid, "{}", e.message);
}

/// One way of getting a library's signature wrong: what it does to the
/// library and its `.sig`, the status, and a word the message must contain.
struct BadNative {
    case: &'static str,
    damage: fn(&Path, &Keys),
    status: Status,
    says: &'static str,
}

const BAD_NATIVE: &[BadNative] = &[
    BadNative { case: "unsigned", damage: |_, _| {}, status: Status::SignatureRequired, says: "is missing" },
    BadNative {
        case: "short_sig",
        damage: |lib, _| std::fs::write(sig_of(lib), [7u8; 63]).unwrap(),
        status: Status::SignatureInvalid,
        says: "is 63 bytes, a signature is 64",
    },
    BadNative {
        case: "long_sig",
        damage: |lib, keys| {
            sign_file(&keys.dev, lib);
            let mut sig = std::fs::read(sig_of(lib)).unwrap();
            sig.push(0);
            std::fs::write(sig_of(lib), sig).unwrap();
        },
        status: Status::SignatureInvalid,
        says: "is 65 bytes, a signature is 64",
    },
    BadNative {
        case: "wrong_key",
        damage: |lib, keys| sign_file(&keys.other, lib),
        status: Status::SignatureInvalid,
        says: "is not a valid signature by any of the 1 trusted keys",
    },
    BadNative {
        case: "tampered",
        damage: |lib, keys| {
            sign_file(&keys.dev, lib);
            // One byte appended: still a loadable library (see the control below), no longer the signed one.
            let mut bytes = std::fs::read(lib).unwrap();
            bytes.push(0);
            std::fs::write(lib, bytes).unwrap();
        },
        status: Status::SignatureInvalid,
        says: "the file was changed since it was signed",
    },
];

#[test]
fn unsigned_tampered_and_wrongly_signed_libraries_are_refused_with_the_reason() {
    let keys = keys("sig_native_bad");
    let f = native();
    for (lib_path, plugin) in [(&f.v5, "BasicCalc"), (&f.v4, "LegacyCalc")] {
        let lib_name = lib_path.file_name().unwrap().to_str().unwrap();
        for bad in BAD_NATIVE {
            let dir = search_path(&format!("sig_native_{}_{lib_name}", bad.case), &[lib_path]);
            let lib = dir.join(lib_name);
            (bad.damage)(&lib, &keys);
            let host = signed_host(&[&dir], &keys);
            let what = format!("{} {lib_name}", bad.case);
            // By path: the verification error itself, naming the signature file.
            let e = host.load_path(&lib, Some(plugin)).err().unwrap();
            assert_eq!(e.status, bad.status, "{what}: {}", e.message);
            assert!(e.message.contains(&format!("{lib_name}.sig")) && e.message.contains(bad.says), "{what}: {}", e.message);
            // Discovery lists it as skipped, with the same reason.
            let found = host.discover();
            assert!(found.plugins().is_empty(), "{what}");
            let skipped = found.skipped();
            assert_eq!(skipped.len(), 1, "{what}: {skipped:?}");
            assert_eq!(skipped[0].status, bad.status, "{what}");
            assert!(skipped[0].path.ends_with(lib_name) && skipped[0].reason.contains(bad.says), "{what}: {skipped:?}");
            // By name: not found, and the message says why the library was passed over.
            let e = host.load(plugin).err().unwrap();
            assert_eq!(e.status, Status::PluginNotFound, "{what}");
            assert!(e.message.contains(bad.says), "{what}: {}", e.message);
        }
    }
    // Control: the tampered library is still a working plugin, so it was the signature check that refused it.
    let tampered = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sig_native_tampered_libfixture_v5.so");
    let host = TestHost::new(&[&tampered]);
    let calc = host.load_path(&tampered.join("libfixture_v5.so"), Some("BasicCalc")).unwrap();
    assert_eq!(add_native(&calc), 5);
}

#[test]
fn an_unsigned_file_beside_a_signed_library_does_not_block_it() {
    let keys = keys("sig_native_mixed");
    let f = native();
    let junk = hostile("not_a_plugin", &[]);
    let dir = search_path("sig_native_mixed", &[&f.v5, &f.v4, &junk]);
    sign_file(&keys.dev, &dir.join("libfixture_v5.so"));
    std::fs::write(dir.join("notes.txt"), "not a plugin").unwrap();
    let host = signed_host(&[&dir], &keys);
    assert_eq!(add_native(&host.load("BasicCalc").unwrap()), 5, "signed v5 loads past the unsigned v4");
    let found = host.discover();
    let mut names: Vec<String> = found.plugins().into_iter().map(|p| p.name).collect();
    names.sort();
    assert_eq!(names, ["ArenaImpl", "BasicCalc", "ConfiguredGreeter", "OtherCalc"]);
    let mut skipped = found.skipped();
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped.iter().all(|s| s.status == Status::SignatureRequired), "{skipped:?}");
    assert!(skipped[0].path.ends_with("libfixture_v4.so") && skipped[1].path.ends_with("libnot_a_plugin.so"), "{skipped:?}");
    assert_eq!(host.load("LegacyCalc").err().unwrap().status, Status::PluginNotFound);
}

// ───────────────────────────── WASM packages ─────────────────────────────

/// A search path holding a copy of the calc fixture package, its manifest passed through `edit`.
fn calc_package(name: &str, edit: impl Fn(&str) -> String) -> (PathBuf, PathBuf) {
    let dir = wasm_search_path(name, &["calc"], |_, t| edit(t));
    let pkg = dir.join("calc");
    (dir, pkg)
}

#[test]
fn a_wasm_package_signed_by_fidius_cli_loads_with_signatures_required() {
    let keys = keys("sig_wasm_ok");
    // Beside it, the caps package, unsigned.
    let dir = wasm_search_path("sig_wasm_ok", &["calc", "caps"], |_, t| t.to_string());
    let pkg = dir.join("calc");
    std::fs::create_dir_all(pkg.join("docs")).unwrap();
    std::fs::write(pkg.join("docs/README"), "covered by the signature too").unwrap();
    sign_package(&keys.dev, &pkg);
    assert_eq!(std::fs::read(pkg.join("package.sig")).unwrap().len(), 64);
    assert!(verifies_package(&keys.dev, &pkg), "fidius package verify agrees");
    // What the toolchain's digest leaves out may change without breaking the signature.
    for (path, content) in [("target/debug/junk", "x"), ("docs/target/junk", "x"), (".git/HEAD", "x"), ("docs/extra.sig", "x")] {
        std::fs::create_dir_all(pkg.join(path).parent().unwrap()).unwrap();
        std::fs::write(pkg.join(path), content).unwrap();
    }
    assert!(verifies_package(&keys.dev, &pkg), "fidius package verify still agrees");
    let host = signed_host(&[&dir], &keys);
    let found = host.discover();
    assert_eq!(found.plugins().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["calc"]);
    let skipped = found.skipped();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!((skipped[0].status, skipped[0].plugin.as_deref()), (Status::SignatureRequired, Some("caps")));
    assert!(skipped[0].reason.contains("caps/package.sig is missing"), "{skipped:?}");
    assert_eq!(host.load("caps").err().unwrap().status, Status::SignatureRequired);
    let calc = host.load("calc").unwrap();
    assert_eq!(add_wasm(&calc), 42);
    assert!(calc.warnings().is_empty(), "{:?}", calc.warnings());
}

struct BadPackage {
    case: &'static str,
    damage: fn(&Path, &Keys),
    status: Status,
    says: &'static str,
}

fn edit_file(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

const BAD_PACKAGES: &[BadPackage] = &[
    BadPackage { case: "unsigned", damage: |_, _| {}, status: Status::SignatureRequired, says: "package.sig is missing" },
    BadPackage {
        case: "short_sig",
        damage: |pkg, _| std::fs::write(pkg.join("package.sig"), [1u8; 10]).unwrap(),
        status: Status::SignatureInvalid,
        says: "package.sig is 10 bytes, a signature is 64",
    },
    BadPackage {
        case: "wrong_key",
        damage: |pkg, keys| sign_package(&keys.other, pkg),
        status: Status::SignatureInvalid,
        says: "package.sig does not verify package",
    },
    BadPackage {
        case: "tampered_component",
        damage: |pkg, keys| {
            sign_package(&keys.dev, pkg);
            edit_file(&pkg.join("calc.wasm"), |b| {
                let mid = b.len() / 2;
                b[mid] ^= 0x01;
            });
        },
        status: Status::SignatureInvalid,
        says: "a file was changed, added or removed since it was signed",
    },
    BadPackage {
        case: "tampered_manifest",
        damage: |pkg, keys| {
            sign_package(&keys.dev, pkg);
            edit_file(&pkg.join("package.toml"), |b| b.extend_from_slice(b"\n# edited after signing\n"));
        },
        status: Status::SignatureInvalid,
        says: "package.sig does not verify package",
    },
    BadPackage {
        case: "extra_file",
        damage: |pkg, keys| {
            sign_package(&keys.dev, pkg);
            std::fs::write(pkg.join("smuggled.py"), "print('hi')").unwrap();
        },
        status: Status::SignatureInvalid,
        says: "smuggled.py",
    },
    BadPackage {
        case: "removed_file",
        damage: |pkg, keys| {
            std::fs::write(pkg.join("LICENSE"), "signed, then removed").unwrap();
            sign_package(&keys.dev, pkg);
            std::fs::remove_file(pkg.join("LICENSE")).unwrap();
        },
        status: Status::SignatureInvalid,
        says: "over 2 files: calc.wasm, package.toml",
    },
    BadPackage {
        case: "unsigned_cwasm_beside",
        // A .cwasm dropped in after signing is picked up by its default name; it must never be deserialized.
        damage: |pkg, keys| {
            sign_package(&keys.dev, pkg);
            std::fs::write(pkg.join("calc.cwasm"), b"\x7fELF anything").unwrap();
        },
        status: Status::SignatureInvalid,
        says: "calc.cwasm",
    },
];

#[test]
fn unsigned_and_tampered_wasm_packages_are_refused_with_the_reason() {
    let keys = keys("sig_wasm_bad");
    for bad in BAD_PACKAGES {
        let (dir, pkg) = calc_package(&format!("sig_wasm_{}", bad.case), str::to_owned);
        (bad.damage)(&pkg, &keys);
        let host = signed_host(&[&dir], &keys);
        let e = host.load("calc").err().unwrap();
        assert_eq!(e.status, bad.status, "{}: {}", bad.case, e.message);
        assert!(e.message.contains(bad.says), "{}: {}", bad.case, e.message);
        assert!(e.message.contains(&pkg.display().to_string()), "{}: names the package: {}", bad.case, e.message);
        let found = host.discover();
        assert!(found.plugins().is_empty(), "{}", bad.case);
        let skipped = found.skipped();
        assert_eq!(skipped.len(), 1, "{}: {skipped:?}", bad.case);
        assert_eq!((skipped[0].status, skipped[0].plugin.as_deref()), (bad.status, Some("calc")), "{}", bad.case);
        assert!(skipped[0].path.ends_with("calc") && skipped[0].reason.contains(bad.says), "{}: {skipped:?}", bad.case);
    }
}

#[test]
fn a_precompiled_cwasm_is_covered_by_the_package_signature() {
    let keys = keys("sig_cwasm");
    let with_cwasm = |t: &str| t.replace("[wasm]", "[wasm]\nprecompiled = \"calc.cwasm\"");
    let (dir, pkg) = calc_package("sig_cwasm", with_cwasm);
    let host = signed_host(&[&dir], &keys);
    let cwasm = host.precompile(&std::fs::read(pkg.join("calc.wasm")).unwrap());
    std::fs::write(pkg.join("calc.cwasm"), &cwasm).unwrap();
    sign_package(&keys.dev, &pkg);
    let calc = host.load("calc").unwrap();
    assert_eq!(add_wasm(&calc), 42);
    assert!(calc.warnings().is_empty(), "the signed .cwasm was used: {:?}", calc.warnings());
    drop(calc);

    // The .cwasm replaced after signing: refused before it is deserialized.
    std::fs::write(pkg.join("calc.cwasm"), b"\x7fELF not the signed cwasm").unwrap();
    let e = host.load("calc").err().unwrap();
    assert_eq!(e.status, Status::SignatureInvalid, "{}", e.message);
    // Without signatures required the same package loads, and the host says
    // it ignored that unsigned .cwasm (machine code) without reading it.
    let lax = TestHost::new(&[&dir]);
    let calc = lax.load("calc").unwrap();
    assert!(calc.warnings().iter().any(|w| w.contains("calc.cwasm ignored")), "{:?}", calc.warnings());
    // A signed .fid carrying a .cwasm: covered by its signature, so deserialized.
    std::fs::write(pkg.join("calc.cwasm"), &cwasm).unwrap();
    sign_package(&keys.dev, &pkg);
    let fid = scratch("sig_cwasm_fid").join("calc-0.1.0.fid");
    pack(&pkg, &fid);
    let calc = host.load_fid(&fid, None).unwrap();
    assert!(calc.warnings().is_empty(), "{:?}", calc.warnings());
    assert_eq!(add_wasm(&calc), 42);
    // The same .fid without signatures required: not verified, so not deserialized.
    let calc = lax.load_fid(&fid, None).unwrap();
    assert!(calc.warnings().iter().any(|w| w.contains("calc.cwasm ignored")), "{:?}", calc.warnings());
}

#[test]
fn files_the_signature_does_not_cover_are_never_loaded() {
    // A manifest may name a component under target/, which the package digest skips:
    // with signatures required it is not part of the package.
    let keys = keys("sig_uncovered");
    let (dir, pkg) = calc_package("sig_uncovered", |t| t.replace("component = \"calc.wasm\"", "component = \"target/calc.wasm\""));
    std::fs::create_dir_all(pkg.join("target")).unwrap();
    std::fs::rename(pkg.join("calc.wasm"), pkg.join("target/calc.wasm")).unwrap();
    sign_package(&keys.dev, &pkg);
    let host = signed_host(&[&dir], &keys);
    let e = host.load("calc").err().unwrap();
    assert_eq!(e.status, Status::Io, "{}", e.message);
    assert!(e.message.contains("target/calc.wasm") && e.message.contains("not in the package's signed content"), "{}", e.message);
}

// ───────────────────────────── .fid archives ─────────────────────────────

#[test]
fn a_fid_signed_and_packed_by_fidius_cli_loads_from_memory_and_unpacks() {
    let keys = keys("sig_fid_ok");
    let (_, pkg) = calc_package("sig_fid_ok_src", str::to_owned);
    sign_package(&keys.dev, &pkg);
    let out = scratch("sig_fid_ok");
    let fid = out.join("calc-0.1.0.fid");
    pack(&pkg, &fid);
    let host = signed_host(&[], &keys);
    let calc = host.load_fid(&fid, None).unwrap();
    assert_eq!(calc.info().path, fid.display().to_string());
    // Loaded from memory: the archive is not needed any more, and nothing was extracted.
    std::fs::remove_file(&fid).unwrap();
    assert_eq!(add_wasm(&calc), 42);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing written beside the archive");
    drop(calc);

    // Extracted into a directory, it is a signed package a search path can hold.
    pack(&pkg, &fid);
    let dest = out.join("plugins");
    let extracted = host.unpack_fid(&fid, &dest).unwrap();
    assert_eq!(extracted, dest.join("calc-0.1.0"));
    assert!(extracted.join("package.sig").is_file() && extracted.join("calc.wasm").is_file());
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1, "no staging directory left behind");
    assert!(verifies_package(&keys.dev, &extracted));
    let from_dir = signed_host(&[&dest], &keys);
    assert_eq!(add_wasm(&from_dir.load("calc").unwrap()), 42);
    // Unpacking again replaces the directory.
    std::fs::write(extracted.join("stale"), "x").unwrap();
    assert_eq!(host.unpack_fid(&fid, &dest).unwrap(), extracted);
    assert!(!extracted.join("stale").exists());
}

#[test]
fn unsigned_and_tampered_fid_archives_are_refused() {
    let keys = keys("sig_fid_bad");
    let host = signed_host(&[], &keys);
    let out = scratch("sig_fid_bad");
    let cases: [(&str, fn(&Path, &Keys), Status, &str); 4] = [
        ("unsigned", |_, _| {}, Status::SignatureRequired, "package.sig is missing"),
        ("wrong_key", |pkg, keys| sign_package(&keys.other, pkg), Status::SignatureInvalid, "does not verify"),
        (
            "tampered",
            |pkg, keys| {
                sign_package(&keys.dev, pkg);
                edit_file(&pkg.join("calc.wasm"), |b| b.push(0));
            },
            Status::SignatureInvalid,
            "does not verify",
        ),
        (
            "extra_file",
            |pkg, keys| {
                sign_package(&keys.dev, pkg);
                std::fs::write(pkg.join("extra.txt"), "added after signing").unwrap();
            },
            Status::SignatureInvalid,
            "extra.txt",
        ),
    ];
    for (case, damage, status, says) in cases {
        let (_, pkg) = calc_package(&format!("sig_fid_{case}_src"), str::to_owned);
        damage(&pkg, &keys);
        let fid = out.join(format!("{case}.fid"));
        pack(&pkg, &fid);
        let e = host.load_fid(&fid, None).err().unwrap();
        assert_eq!(e.status, status, "{case}: {}", e.message);
        assert!(e.message.contains(says) && e.message.contains(&format!("{case}.fid")), "{case}: {}", e.message);
        let dest = out.join(format!("{case}_dest"));
        let e = host.unpack_fid(&fid, &dest).err().unwrap();
        assert_eq!(e.status, status, "{case}: {}", e.message);
        assert!(!dest.exists() || std::fs::read_dir(&dest).unwrap().count() == 0, "{case}: nothing written");
    }
    // Without signatures required an unsigned archive loads.
    let lax = TestHost::new(&[]);
    assert_eq!(add_wasm(&lax.load_fid(&out.join("unsigned.fid"), None).unwrap()), 42);
}

/// A `.fid` built entry by entry with the tar crate, headers written raw so
/// that hostile names and types get through.
struct FidBuilder {
    tar: Vec<u8>,
}

impl FidBuilder {
    fn new() -> Self {
        FidBuilder { tar: Vec::new() }
    }

    fn entry(mut self, path: &str, kind: tar::EntryType, content: &[u8], link: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        {
            let raw = h.as_old_mut();
            raw.name[..path.len()].copy_from_slice(path.as_bytes());
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.tar.extend_from_slice(h.as_bytes());
        self.tar.extend_from_slice(content);
        self.tar.resize(self.tar.len().div_ceil(512) * 512, 0);
        self
    }

    fn file(self, path: &str, content: &[u8]) -> Self {
        self.entry(path, tar::EntryType::Regular, content, "")
    }

    /// An entry whose header declares `size` bytes that never follow.
    fn declared(mut self, path: &str, size: u64) -> Self {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        self.tar.extend_from_slice(h.as_bytes());
        self
    }

    /// The calc package's files under `calc-0.1.0/`.
    fn calc(self) -> Self {
        let src = wasm_packages().join("calc");
        self.file("calc-0.1.0/package.toml", &std::fs::read(src.join("package.toml")).unwrap())
            .file("calc-0.1.0/calc.wasm", &std::fs::read(src.join("calc.wasm")).unwrap())
    }

    fn write(mut self, path: &Path) -> PathBuf {
        use std::io::Write;
        self.tar.extend_from_slice(&[0; 1024]);
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&self.tar).unwrap();
        std::fs::write(path, bz.finish().unwrap()).unwrap();
        path.to_path_buf()
    }
}

#[test]
fn hostile_fid_archives_are_refused_before_anything_is_extracted() {
    use tar::EntryType::{Directory, Link, Symlink};
    let out = scratch("fid_hostile");
    // The builder makes loadable archives; each hostile one adds one thing to this.
    let good = FidBuilder::new().entry("calc-0.1.0/", Directory, b"", "").calc().write(&out.join("good.fid"));
    let host = TestHost::new(&[]);
    assert_eq!(add_wasm(&host.load_fid(&good, None).unwrap()), 42);

    let many = (0..10_001).fold(FidBuilder::new(), |b, i| b.file(&format!("calc-0.1.0/f{i}"), b""));
    let cases: Vec<(&str, FidBuilder, &str)> = vec![
        ("absolute", FidBuilder::new().calc().file("/tmp/fidius-evil", b"x"), "entry /tmp/fidius-evil is an absolute path"),
        ("dotdot", FidBuilder::new().calc().file("calc-0.1.0/../../evil", b"x"), "entry calc-0.1.0/../../evil has a `..` component"),
        ("symlink", FidBuilder::new().calc().entry("calc-0.1.0/link", Symlink, b"", "/etc/passwd"), "entry calc-0.1.0/link is a symbolic link"),
        ("hardlink", FidBuilder::new().calc().entry("calc-0.1.0/link", Link, b"", "/etc/passwd"), "entry calc-0.1.0/link is a hard link"),
        ("too_many", many.calc(), "more than 10000 entries"),
        ("oversized", FidBuilder::new().calc().declared("calc-0.1.0/huge", 600 << 20), "content exceeds 524288000 bytes"),
        (
            "pax_oversized",
            // The size in a pax record, not the header's 0, is what a tar reader delivers.
            FidBuilder::new().calc().entry("calc-0.1.0/PaxHeader", tar::EntryType::XHeader, b"18 size=629145600\n", "").file("calc-0.1.0/huge", b""),
            "content exceeds 524288000 bytes (entry calc-0.1.0/huge brings it to",
        ),
        (
            "long_name_bomb",
            // A GNU long name is read whole before its entry is seen: the decompressed stream is capped.
            FidBuilder::new().calc().entry("././@LongLink", tar::EntryType::GNULongName, &vec![b'a'; 32 << 20], "").file("calc-0.1.0/x", b""),
            "decompresses to more than its content budget",
        ),
        ("bomb", FidBuilder::new().calc().file("calc-0.1.0/zeros", &vec![0; 16 << 20]), "content exceeds 10 times the archive's size"),
        ("duplicate", FidBuilder::new().calc().file("calc-0.1.0/package.toml", b"x"), "entry calc-0.1.0/package.toml appears twice"),
        ("no_package", FidBuilder::new().file("calc-0.1.0/calc.wasm", b"\0asm"), "no top-level directory holds a package.toml"),
        ("fifo", FidBuilder::new().calc().entry("calc-0.1.0/pipe", tar::EntryType::Fifo, b"", ""), "neither a file nor a directory"),
        ("not_bzip2", FidBuilder::new(), "not a readable .fid archive"),
    ];
    for (case, builder, says) in cases {
        let fid = out.join(format!("{case}.fid"));
        if case == "not_bzip2" {
            std::fs::write(&fid, b"PK\x03\x04 a zip file").unwrap();
        } else {
            builder.write(&fid);
        }
        let e = host.load_fid(&fid, None).err().unwrap();
        assert_eq!(e.status, Status::Archive, "{case}: {}", e.message);
        assert!(e.message.contains(says) && e.message.contains(&format!("{case}.fid")), "{case}: {}", e.message);
        let dest = out.join(format!("{case}_dest"));
        let e = host.unpack_fid(&fid, &dest).err().unwrap();
        assert_eq!(e.status, Status::Archive, "{case}: {}", e.message);
        assert!(!dest.exists(), "{case}: nothing is written for a refused archive");
    }
    assert!(!Path::new("/tmp/fidius-evil").exists());
}

#[test]
fn unpacking_writes_only_what_the_signature_covers_under_the_manifest_name() {
    let keys = keys("sig_fid_unpack");
    let (_, pkg) = calc_package("sig_fid_unpack_src", str::to_owned);
    sign_package(&keys.dev, &pkg);
    let read = |f: &str| std::fs::read(pkg.join(f)).unwrap();
    // A validly signed package re-packed by hand under another top-level name,
    // with extra files the signature does not cover.
    let out = scratch("sig_fid_unpack");
    let fid = FidBuilder::new()
        .file("sibling-1.0.0/package.toml", &read("package.toml"))
        .file("sibling-1.0.0/calc.wasm", &read("calc.wasm"))
        .file("sibling-1.0.0/package.sig", &read("package.sig"))
        .file("sibling-1.0.0/.git/config", b"[core]\n\thooksPath = /tmp/evil\n")
        .file("sibling-1.0.0/.git/hooks/post-checkout", b"#!/bin/sh\necho owned\n")
        .file("sibling-1.0.0/target/debug/x", b"stale")
        .file("sibling-1.0.0/extra.sig", b"not a signature")
        .write(&out.join("repacked.fid"));
    let dest = out.join("plugins");
    std::fs::create_dir_all(dest.join("sibling-1.0.0")).unwrap();
    std::fs::write(dest.join("sibling-1.0.0/keep"), "a sibling package's file").unwrap();
    let host = signed_host(&[], &keys);
    let extracted = host.unpack_fid(&fid, &dest).unwrap();
    // Named by the verified manifest, so the sibling directory is untouched.
    assert_eq!(extracted, dest.join("calc-0.1.0"));
    assert!(dest.join("sibling-1.0.0/keep").is_file());
    let mut written: Vec<String> = std::fs::read_dir(&extracted).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    written.sort();
    assert_eq!(written, ["calc.wasm", "package.sig", "package.toml"]);
    assert!(verifies_package(&keys.dev, &extracted));
    // Without signatures required, the same rule: only the package's content, under its manifest's name.
    let lax = TestHost::new(&[]);
    let dest2 = out.join("lax");
    let extracted = lax.unpack_fid(&fid, &dest2).unwrap();
    assert_eq!(extracted, dest2.join("calc-0.1.0"));
    assert!(!extracted.join(".git").exists() && !extracted.join("target").exists() && !extracted.join("extra.sig").exists());
    // A manifest whose name would not stay one directory is refused.
    let bad = FidBuilder::new()
        .file("x-1/package.toml", String::from_utf8(read("package.toml")).unwrap().replace("name = \"calc\"", "name = \"../up\"").as_bytes())
        .file("x-1/calc.wasm", &read("calc.wasm"))
        .write(&out.join("badname.fid"));
    let e = lax.unpack_fid(&bad, &out.join("bad")).err().unwrap();
    assert_eq!(e.status, Status::InvalidManifest, "{}", e.message);
}

#[test]
fn a_verified_library_is_mapped_from_a_sealed_memory_file() {
    let keys = keys("sig_sealed");
    let dir = search_path("sig_sealed", &[&native().v5]);
    sign_file(&keys.dev, &dir.join("libfixture_v5.so"));
    let host = signed_host(&[&dir], &keys);
    let calc = host.load("BasicCalc").unwrap();
    assert_eq!(add_native(&calc), 5);
    // Every staged copy this process holds is sealed against change.
    let mut staged = 0;
    for fd in std::fs::read_dir("/proc/self/fd").unwrap() {
        let fd = fd.unwrap();
        let Ok(target) = std::fs::read_link(fd.path()) else { continue };
        if !target.to_string_lossy().starts_with("/memfd:fidius-verified-plugin") {
            continue;
        }
        let n: i32 = fd.file_name().to_str().unwrap().parse().unwrap();
        let seals = unsafe { libc::fcntl(n, libc::F_GET_SEALS) };
        let all = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        assert_eq!(seals & all, all, "fd {n} seals {seals:#x}");
        // A write through /proc is refused.
        assert!(std::fs::OpenOptions::new().write(true).open(fd.path()).and_then(|mut f| std::io::Write::write_all(&mut f, b"x")).is_err());
        staged += 1;
    }
    assert!(staged >= 1, "the library was staged in a memory file");
}

#[test]
fn a_schema_beside_a_signed_library_must_be_signed_too() {
    let keys = keys("sig_schema");
    let typed = common::schema_fixtures::typed();
    let dir = search_path("sig_schema", &[&typed.v5]);
    let lib = dir.join(typed.v5.file_name().unwrap());
    sign_file(&keys.dev, &lib);
    let mut wit = lib.clone().into_os_string();
    wit.push(".wit");
    let wit = PathBuf::from(wit);
    std::fs::copy(&typed.v5_wit, &wit).unwrap();
    let host = signed_host(&[&dir], &keys);
    // An unsigned schema could rename methods under a signed library: refused.
    let e = host.load("TypedImpl").err().unwrap();
    assert_eq!(e.status, Status::SignatureRequired, "{}", e.message);
    assert!(e.message.contains(".so.wit.sig"), "{}", e.message);
    // Signed with `fidius sign`, it is used.
    sign_file(&keys.dev, &wit);
    let plugin = host.load("TypedImpl").unwrap();
    assert_eq!(plugin.json(plugin.index("greet").unwrap(), "[\"Di\"]").unwrap(), serde_json::json!("Hello, Di!"));
    // Changed after signing: refused.
    std::fs::write(&wit, std::fs::read_to_string(&typed.v5_wit).unwrap().replace("greet", "welcome")).unwrap();
    assert_eq!(host.load("TypedImpl").err().unwrap().status, Status::SignatureInvalid);
}
