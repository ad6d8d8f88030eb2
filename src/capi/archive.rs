//! `.fid` archives: load a package from one, or extract it.

use std::ffi::c_char;

use super::{c_str, fidius_bytes, fidius_error, fidius_host, fidius_load_options, fidius_plugin, guard, Handle};
use crate::error::Status;

/// Load the plugin package in the `.fid` archive at `path` (as `fidius
/// package pack` writes it: tar + bzip2). `options` may be NULL.
///
/// The archive is read once and extracted into memory, refusing links,
/// absolute paths, `..`, more than 10,000 entries, and more than 500 MiB (or
/// ten times the archive's size) of content. With signatures required, the
/// archive's `package.sig` must verify the extracted content by a trusted
/// key. The package is then loaded from those same bytes: nothing is written
/// to disk, no temporary directory is made, and the archive file is not
/// needed after this returns. The plugin's info path is the archive's path.
///
/// On success `*plugin` receives a new plugin owned by the caller (release
/// with `fidius_plugin_free`); on failure it is set to NULL. Errors: ARCHIVE
/// (the message says which entry and which rule), IO, SIGNATURE_REQUIRED,
/// SIGNATURE_INVALID, INVALID_MANIFEST, UNSUPPORTED (a rust (source)
/// package), and those of loading a package by name. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_load_fid(
    host: *const fidius_host,
    path: *const c_char,
    options: *const fidius_load_options,
    plugin: *mut *mut fidius_plugin,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        super::host::load_into(plugin, || {
            fidius_host::get(host)?.load_fid(c_str(path, "path")?.as_ref(), &super::host::options_or_default(options)?)
        })
    })
}

/// Extract the package in the `.fid` archive at `path` into the directory
/// `dest_dir` (created if missing), e.g. to make it loadable from a search
/// path. The package lands in `dest_dir/<name>-<version>`, named from its
/// (verified) manifest whatever the archive's top-level directory is called,
/// replacing a directory of that name, as `fidius package unpack` does. Only
/// the package's content is written: the files a package signature covers
/// and `package.sig` (never `.git/`, `target/` or other `*.sig` files an
/// archive may carry). It is staged in a temporary directory inside
/// `dest_dir` and renamed into place, so a refused or failed extraction
/// leaves nothing behind. The same checks as `fidius_host_load_fid` apply,
/// and with signatures required nothing is written unless `package.sig`
/// verifies (it is checked again whenever the package is loaded).
///
/// `package_dir` may be NULL; otherwise on success it receives the path of
/// the extracted package directory as UTF-8 bytes (not NUL-terminated),
/// owned by the caller: release with `fidius_bytes_free`. On failure it is
/// set to `{NULL, 0}`. Errors: ARCHIVE, IO, FILE_REFUSED, SIGNATURE_REQUIRED,
/// SIGNATURE_INVALID, INVALID_MANIFEST (a name or version that would not stay
/// one directory), NULL_ARGUMENT, INVALID_UTF8, INVALID_HANDLE.
/// Thread-safe, except that two extractions into the same `dest_dir` of
/// packages with the same name race to replace each other.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_unpack_fid(
    host: *const fidius_host,
    path: *const c_char,
    dest_dir: *const c_char,
    package_dir: *mut fidius_bytes,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        if let Some(out) = package_dir.as_mut() {
            *out = fidius_bytes::from_vec(Vec::new());
        }
        let host = fidius_host::get(host)?;
        let dir = host.unpack_fid(c_str(path, "path")?.as_ref(), c_str(dest_dir, "dest_dir")?.as_ref())?;
        if let Some(out) = package_dir.as_mut() {
            *out = fidius_bytes::from_vec(dir.to_string_lossy().into_owned().into_bytes());
        }
        Ok(())
    })
}
