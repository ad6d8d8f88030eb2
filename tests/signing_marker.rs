//! Refused means never mapped: the marker fixture's library constructor
//! writes `$FIDIUS_TEST_MARKER` whenever the dynamic loader maps the library.
//! Unsigned, tampered and wrongly signed copies are refused and leave no
//! marker; the copy signed by `fidius sign` (fidius-cli 0.5.9) loads and
//! leaves one. (Its own test binary: the test sets an environment variable.)

mod common;

use std::path::Path;

use common::sign::*;
use common::*;
use fidius::Status;

const LIB: &str = "libfixture_marker.so";

fn pong(plugin: &TestPlugin) -> String {
    unwire(&plugin.call(0, &[]).unwrap())
}

#[test]
fn libraries_refused_for_their_signature_are_never_mapped() {
    let marker_lib = &native().marker;
    let keys_dir = scratch("marker_keys");
    let (dev, other) = (keygen(&keys_dir, "dev"), keygen(&keys_dir, "other"));
    let marker = scratch("marker_file").join("constructor-ran");
    // Set before any library is mapped, while this test is the only thread that runs.
    std::env::set_var("FIDIUS_TEST_MARKER", &marker);

    let refused: [(&str, fn(&Path, &Keypair, &Keypair), Status); 4] = [
        ("unsigned", |_, _, _| {}, Status::SignatureRequired),
        ("wrong_key", |lib, _, other| sign_file(other, lib), Status::SignatureInvalid),
        ("short_sig", |lib, _, _| std::fs::write(sig_of(lib), [0u8; 32]).unwrap(), Status::SignatureInvalid),
        (
            "tampered",
            |lib, dev, _| {
                sign_file(dev, lib);
                let mut bytes = std::fs::read(lib).unwrap();
                bytes.extend_from_slice(b"appended");
                std::fs::write(lib, bytes).unwrap();
            },
            Status::SignatureInvalid,
        ),
    ];
    for (case, damage, status) in refused {
        let dir = search_path(&format!("marker_{case}"), &[marker_lib]);
        let lib = dir.join(LIB);
        damage(&lib, &dev, &other);
        let host = TestHost::requiring_signatures(&[&dir], &[TrustedKey::File(&dev.public)]);
        let e = host.load_path(&lib, None).err().unwrap();
        assert_eq!(e.status, status, "{case}: {}", e.message);
        assert_eq!(host.load("MarkerPlugin").err().unwrap().status, Status::PluginNotFound, "{case}");
        let found = host.discover();
        assert!(found.plugins().is_empty() && found.skipped()[0].status == status, "{case}");
        assert!(!marker.exists(), "{case}: the library was mapped although it was refused");
    }

    // Signed by the real toolchain: loaded, so mapped, so the constructor ran.
    let dir = search_path("marker_signed", &[marker_lib]);
    sign_file(&dev, &dir.join(LIB));
    let host = TestHost::requiring_signatures(&[&dir], &[TrustedKey::File(&dev.public)]);
    let plugin = host.load("MarkerPlugin").unwrap();
    assert!(marker.exists(), "the accepted library was mapped");
    assert_eq!(pong(&plugin), "pong");

    // Control: without signatures required, the tampered copy is mapped too
    // (so it was the signature check, not a broken constructor, that kept it out).
    std::fs::remove_file(&marker).unwrap();
    let tampered = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("marker_tampered");
    let lax = TestHost::new(&[&tampered]);
    assert_eq!(pong(&lax.load_path(&tampered.join(LIB), None).unwrap()), "pong");
    assert!(marker.exists(), "the tampered library's constructor runs once it is mapped");
}
