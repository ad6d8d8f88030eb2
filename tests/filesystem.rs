//! `fs:ro:<path>` / `fs:rw:<path>` through the C ABI, with the `files` fixture
//! (published fidius 0.5.9 guest crates): granted access works, every escape
//! attempt fails, and the host's allow-list decides.
//!
//! Fixture methods: 0 read(path), 1 write(path, text), 2 list(dir),
//! 3 hard_link(from, to), 4 remove(path); I/O errors are PluginError "IO".

mod common;

use std::path::{Path, PathBuf};

use common::*;
use fidius::capi::*;
use fidius::Status;
use serde_json::json;

const READ: u32 = 0;
const WRITE: u32 = 1;
const LIST: u32 = 2;
const HARD_LINK: u32 = 3;

/// A scratch tree: `granted/` (the preopen, holding `inside.txt` and links
/// pointing out of it) beside `secret.txt`, which must stay out of reach.
struct Tree {
    root: PathBuf,
    granted: PathBuf,
    secret: PathBuf,
}

fn tree(name: &str) -> Tree {
    let root = scratch(name);
    let granted = root.join("granted");
    std::fs::create_dir(&granted).unwrap();
    std::fs::write(granted.join("inside.txt"), "inside").unwrap();
    let secret = root.join("secret.txt");
    std::fs::write(&secret, "the secret").unwrap();
    std::os::unix::fs::symlink(&secret, granted.join("link-out")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", granted.join("relative-link-out")).unwrap();
    std::os::unix::fs::symlink(&root, granted.join("dir-link-out")).unwrap();
    Tree { root, granted, secret }
}

/// A search path holding the `files` package with these capabilities, and a
/// host allowing `fs:*` (the default allow-list refuses host directories).
fn files_host(name: &str, caps: &[String]) -> (PathBuf, TestHost) {
    let list = caps.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
    let dir = wasm_search_path(name, &["files"], |_, t| t.replace("capabilities = []", &format!("capabilities = [{list}]")));
    let host = TestHost::configured(&[&dir], |b| {
        for p in ["@default", "fs:*"] {
            let p = cstr(p);
            ok(|e| unsafe { fidius_host_builder_allow_capability(b, p.as_ptr(), e) });
        }
    });
    (dir, host)
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn io_error(r: Result<serde_json::Value, Failure>, what: &str) -> String {
    let f = r.expect_err(what);
    assert_eq!(f.status, Status::PluginError, "{what}: {}", f.message);
    assert_eq!(f.plugin_code.as_deref(), Some("IO"), "{what}: {}", f.message);
    f.plugin_message.unwrap()
}

#[test]
fn read_only_access_works_and_every_escape_fails() {
    let t = tree("fs_ro");
    let (_dir, host) = files_host("fs_ro_path", &[format!("fs:ro:{}", s(&t.granted))]);
    for reuse in [false, true] {
        let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_reuse_instance(o, reuse, e) });
        let files = host.load_opts("files", Some(&opts)).unwrap();
        let g = s(&t.granted);
        assert_eq!(files.json(READ, &json!([format!("{g}/inside.txt")]).to_string()).unwrap(), json!("inside"));
        assert_eq!(
            files.json(LIST, &json!([g]).to_string()).unwrap(),
            json!(["dir-link-out", "inside.txt", "link-out", "relative-link-out"])
        );
        // Writes through a read-only preopen.
        io_error(files.json(WRITE, &json!([format!("{g}/new.txt"), "x"]).to_string()), "create in ro");
        io_error(files.json(WRITE, &json!([format!("{g}/inside.txt"), "x"]).to_string()), "overwrite in ro");
        assert_eq!(std::fs::read_to_string(t.granted.join("inside.txt")).unwrap(), "inside");
        assert!(!t.granted.join("new.txt").exists());
        // Escapes: `..`, absolute paths elsewhere, symlinks out (absolute,
        // relative, to a directory), and the secret by its own path.
        for path in [
            format!("{g}/../secret.txt"),
            format!("{g}/link-out"),
            format!("{g}/relative-link-out"),
            format!("{g}/dir-link-out/secret.txt"),
            s(&t.secret),
            "/etc/passwd".to_string(),
            "/proc/self/environ".to_string(),
        ] {
            let r = files.json(READ, &json!([path]).to_string());
            let message = io_error(r, &path);
            assert!(!message.contains("the secret"), "{path}: {message}");
        }
        io_error(files.json(LIST, &json!([s(&t.root)]).to_string()), "list the parent");
        // Hard links: to the secret from inside, and from inside to outside.
        io_error(files.json(HARD_LINK, &json!([s(&t.secret), format!("{g}/h")]).to_string()), "link the secret in");
        io_error(files.json(HARD_LINK, &json!([format!("{g}/inside.txt"), s(&t.root.join("h"))]).to_string()), "link out");
        assert!(!t.root.join("h").exists() && !t.granted.join("h").exists());
    }
}

#[test]
fn read_write_access_stays_inside_its_directory() {
    let t = tree("fs_rw");
    let (_dir, host) = files_host("fs_rw_path", &[format!("fs:rw:{}", s(&t.granted))]);
    let files = host.load("files").unwrap();
    let g = s(&t.granted);
    files.json(WRITE, &json!([format!("{g}/new.txt"), "written by the guest"]).to_string()).unwrap();
    assert_eq!(std::fs::read_to_string(t.granted.join("new.txt")).unwrap(), "written by the guest");
    // A hard link inside the preopen is fine; its content is the granted file's.
    files.json(HARD_LINK, &json!([format!("{g}/new.txt"), format!("{g}/again.txt")]).to_string()).unwrap();
    assert_eq!(std::fs::read_to_string(t.granted.join("again.txt")).unwrap(), "written by the guest");
    // Writing through links out of it, or beside it, fails and leaves the secret alone.
    for path in [format!("{g}/link-out"), format!("{g}/relative-link-out"), format!("{g}/../secret.txt"), s(&t.secret)] {
        io_error(files.json(WRITE, &json!([path, "overwritten"]).to_string()), &path);
    }
    io_error(files.json(WRITE, &json!([s(&t.root.join("beside.txt")), "x"]).to_string()), "write beside");
    io_error(files.json(HARD_LINK, &json!([s(&t.secret), format!("{g}/stolen")]).to_string()), "link the secret in");
    assert_eq!(std::fs::read_to_string(&t.secret).unwrap(), "the secret");
    assert!(!t.root.join("beside.txt").exists() && !t.granted.join("stolen").exists());
}

#[test]
fn a_directory_swapped_for_a_symlink_is_not_preopened() {
    let t = tree("fs_swap");
    let (_dir, host) = files_host("fs_swap_path", &[format!("fs:ro:{}", s(&t.granted))]);
    let files = host.load("files").unwrap();
    let g = s(&t.granted);
    assert_eq!(files.json(READ, &json!([format!("{g}/inside.txt")]).to_string()).unwrap(), json!("inside"));
    // Between calls, the granted directory becomes a link to its parent (which holds the secret).
    std::fs::rename(&t.granted, t.root.join("moved")).unwrap();
    std::os::unix::fs::symlink(&t.root, &t.granted).unwrap();
    let message = io_error(files.json(READ, &json!([format!("{g}/secret.txt")]).to_string()), "read through the swapped link");
    assert!(!message.contains("the secret"), "{message}");
    io_error(files.json(READ, &json!([format!("{g}/moved/inside.txt")]).to_string()), "read through the swapped link");
    // A component further up swapped for a link is refused too.
    let deep = scratch("fs_swap_deep");
    std::fs::create_dir_all(deep.join("a/b")).unwrap();
    std::fs::write(deep.join("a/b/f.txt"), "deep").unwrap();
    let (_d, host) = files_host("fs_swap_deep_path", &[format!("fs:ro:{}", s(&deep.join("a/b")))]);
    let files = host.load("files").unwrap();
    let b = s(&deep.join("a/b"));
    assert_eq!(files.json(READ, &json!([format!("{b}/f.txt")]).to_string()).unwrap(), json!("deep"));
    std::fs::rename(deep.join("a"), deep.join("a-moved")).unwrap();
    std::fs::create_dir_all(deep.join("elsewhere/b")).unwrap();
    std::fs::write(deep.join("elsewhere/b/f.txt"), "elsewhere").unwrap();
    std::os::unix::fs::symlink(deep.join("elsewhere"), deep.join("a")).unwrap();
    io_error(files.json(READ, &json!([format!("{b}/f.txt")]).to_string()), "a parent swapped for a link");
}

#[test]
fn filesystem_capabilities_are_checked_and_refused_by_default() {
    let t = tree("fs_policy");
    let cap = format!("fs:ro:{}", s(&t.granted));
    // The default allow-list refuses host directories, naming the capability.
    let (dir, _) = files_host("fs_policy_path", &[cap.clone()]);
    let e = TestHost::new(&[&dir]).load("files").err().expect("refused");
    assert_eq!(e.status, Status::Capability, "{}", e.message);
    assert!(e.message.contains(&format!("\"{cap}\"")), "{}", e.message);
    // An allow-list naming exactly that directory read-only allows it, and
    // refuses the same directory read-write.
    let exact = |c: &str| {
        let c = cstr(c);
        TestHost::configured(&[&dir], |b| ok(|e| unsafe { fidius_host_builder_allow_capability(b, c.as_ptr(), e) }))
    };
    assert!(exact(&cap).load("files").is_ok());
    let (rw_dir, _) = files_host("fs_policy_rw", &[format!("fs:rw:{}", s(&t.granted))]);
    let c = cstr(&cap);
    let ro_only = TestHost::configured(&[&rw_dir], |b| ok(|e| unsafe { fidius_host_builder_allow_capability(b, c.as_ptr(), e) }));
    assert_eq!(ro_only.load("files").err().expect("rw refused").status, Status::Capability);
    // Malformed paths fail the load: `..`, relative, bare `fs`, an empty path.
    for bad in [format!("fs:ro:{}/../secret.txt", s(&t.granted)), "fs:ro:granted".into(), "fs".into(), "fs:rw:".into()] {
        let (d, host) = files_host(&format!("fs_bad_{}", bad.len()), &[bad.clone()]);
        let _ = d;
        let e = host.load("files").err().expect("malformed");
        assert_eq!(e.status, Status::InvalidManifest, "{bad}: {}", e.message);
    }
    // A missing directory loads, is not preopened, and a warning says so.
    let missing = t.root.join("missing");
    let (_d, host) = files_host("fs_missing", &[format!("fs:ro:{}", s(&missing))]);
    let files = host.load("files").unwrap();
    assert!(files.warnings().iter().any(|w| w.contains("not preopened")), "{:?}", files.warnings());
    io_error(files.json(READ, &json!([format!("{}/x", s(&missing))]).to_string()), "read the missing dir");
    // Grants at load: the embedder's word, not checked against the allow-list.
    let grants = [cstr(&cap)];
    let ptrs: Vec<*const std::ffi::c_char> = grants.iter().map(|g| g.as_ptr()).collect();
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_grants(o, ptrs.as_ptr(), ptrs.len(), e) });
    let granted = TestHost::new(&[&dir]).load_opts("files", Some(&opts)).unwrap();
    let inside = format!("{}/inside.txt", s(&t.granted));
    assert_eq!(granted.json(READ, &json!([inside]).to_string()).unwrap(), json!("inside"));
}
