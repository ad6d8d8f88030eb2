//! Generates include/fidius.h from the C surface (src/capi) with cbindgen.
//! The header is checked in; CI fails when it differs from what this writes.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    // An ELF soname carrying the major version, as an installed C library has
    // (`make install` adds the libfidius.so.MAJOR link; in-tree builds get one
    // beside target/*/libfidius.so from the Makefiles).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfidius.so.{}", env!("CARGO_PKG_VERSION_MAJOR"));
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let version = format!(
        "#define FIDIUS_VERSION_MAJOR {}\n#define FIDIUS_VERSION_MINOR {}\n#define FIDIUS_VERSION_PATCH {}\n#define FIDIUS_VERSION_STRING \"{}\"",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION"),
    );
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    let config = cbindgen::Config { after_includes: Some(version), ..config };
    match cbindgen::Builder::new().with_crate(&dir).with_config(config).generate() {
        Ok(bindings) => {
            bindings.write_to_file(format!("{dir}/include/fidius.h"));
        }
        // Leave the checked-in header alone; the compiler reports the real error.
        Err(e) => println!("cargo:warning=cbindgen could not generate include/fidius.h: {e}"),
    }
}
