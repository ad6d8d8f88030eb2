//! Link the shipped libfidius.so from the main crate's release build
//! (bench/run.sh builds it first), and find it at run time by rpath.
fn main() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let dir = std::env::var("LIBFIDIUS_DIR").map(std::path::PathBuf::from).unwrap_or(repo.join("target/release"));
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    println!("cargo:rerun-if-env-changed=LIBFIDIUS_DIR");
    println!("cargo:rerun-if-changed={}", dir.join("libfidius.so").display());
}
