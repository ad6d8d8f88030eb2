//! Opening a native plugin library and reading its registry.
//!
//! Every check that can fail is done here, once, with a message that names
//! the values involved; a [`NativeEntry`] that comes out is safe to call.

use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libloading::Library;

use super::abi::{self, PluginDescriptor, PluginRegistry};
use super::arch;
use super::host_imports::{self, HostImport};
use crate::error::{fail, Error, Result, Status};
use crate::info::{BufferStrategy, Meta, PluginInfo, Runtime};


/// A dlopen'ed library and what its registry says. Dropping the last
/// `Arc<Library>` (held by this and by every plugin made from it) unmaps it.
pub struct NativeLibrary {
    pub path: PathBuf,
    pub library: Arc<Library>,
    /// One result per descriptor: a bad descriptor does not hide its neighbours.
    pub entries: Vec<Result<Arc<NativeEntry>, BadEntry>>,
    /// The host interfaces it imports (`fidius_get_host_imports`); an
    /// unreadable registry fails the loads, not discovery.
    pub host_imports: Result<Vec<HostImport>>,
}

/// A descriptor that failed validation.
#[derive(Debug, Clone)]
pub struct BadEntry {
    /// The plugin's name, when it could be read.
    pub plugin: Option<String>,
    pub error: Error,
}

/// A validated descriptor.
pub struct NativeEntry {
    pub info: PluginInfo,
    pub(crate) strategy: BufferStrategy,
    pub(crate) vtable: *const *const (),
    pub(crate) free_buffer: Option<abi::FreeBufferFn>,
    pub(crate) construct: Option<abi::ConstructFn>,
    pub(crate) destroy: Option<abi::DestroyFn>,
    pub method_metadata: Vec<Meta>,
    pub trait_metadata: Meta,
}

// The pointers are to immutable statics in a library kept mapped by the
// `Arc<Library>` that always travels with an entry.
unsafe impl Send for NativeEntry {}
unsafe impl Sync for NativeEntry {}

/// Where the loader should take the library from.
pub enum Source<'a> {
    /// dlopen the file at its path.
    Path,
    /// dlopen exactly these bytes (already verified), through an anonymous
    /// in-memory file, so the file on disk cannot be swapped in between.
    Bytes(&'a [u8]),
}

/// Check the header, dlopen, and read the registry of the library at `path`.
pub fn open(path: &Path, source: Source<'_>) -> Result<NativeLibrary> {
    match source {
        Source::Bytes(bytes) => {
            arch::check(&bytes[..bytes.len().min(64)])?;
            arch::check_complete(bytes, bytes.len() as u64, |offset, len| {
                Ok(bytes[offset as usize..offset as usize + len].to_vec())
            })?;
        }
        Source::Path => check_file(path)?,
    }
    let library = match source {
        Source::Path => Arc::new(dlopen(path)?),
        Source::Bytes(bytes) => {
            use sha2::Digest;
            let digest: [u8; 32] = sha2::Sha256::digest(bytes).into();
            let mut staged = staged_libraries().lock().unwrap_or_else(|p| p.into_inner());
            match staged.get(&digest) {
                Some(library) => library.clone(),
                None => staged.entry(digest).or_insert(Arc::new(dlopen_bytes(path, bytes)?)).clone(),
            }
        }
    };
    let registry = unsafe {
        let get: libloading::Symbol<'_, abi::RegistryFn> = library.get(abi::REGISTRY_SYMBOL).map_err(|_| {
            Error::new(Status::NotAPlugin, "library does not export fidius_get_registry")
        })?;
        get()
    };
    let entries = unsafe { read_entries(registry, path)? };
    let host_imports = host_imports::read(&library);
    Ok(NativeLibrary { path: path.to_path_buf(), library, entries, host_imports })
}

/// The pre-dlopen checks, reading only the parts of the file they need.
fn check_file(path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e: std::io::Error| Error::new(Status::Io, format!("cannot read: {e}"));
    let (mut file, file_len) = crate::files::open_regular(path, crate::files::MAX_LIBRARY_BYTES)?;
    let mut header = Vec::with_capacity(64);
    file.by_ref().take(64).read_to_end(&mut header).map_err(io)?;
    arch::check(&header)?;
    arch::check_complete(&header, file_len, |offset, len| {
        let mut buf = vec![0; len];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut buf)?;
        Ok(buf)
    })
}

/// dlopen with RTLD_NODELETE: a plugin library, once mapped, stays mapped.
///
/// Why: fidius plugins leak their registry array into a static on first
/// `fidius_get_registry` (so every dlopen/dlclose cycle would leak it again),
/// and Rust libraries may leave thread-local destructors behind. Keeping the
/// mapping costs one mapping per distinct library file; dlopen of a file
/// already mapped reuses it. Plugins' static constructors run on first load.
#[cfg(unix)]
fn dlopen(path: &Path) -> Result<Library> {
    use libloading::os::unix::{Library as UnixLibrary, RTLD_LAZY, RTLD_LOCAL};
    unsafe { UnixLibrary::open(Some(path), RTLD_LAZY | RTLD_LOCAL | libc::RTLD_NODELETE) }
        .map(Library::from)
        .map_err(|e| Error::new(Status::LibraryLoad, format!("dlopen failed: {e}")))
}

#[cfg(not(unix))]
fn dlopen(path: &Path) -> Result<Library> {
    unsafe { Library::new(path) }.map_err(|e| Error::new(Status::LibraryLoad, format!("dlopen failed: {e}")))
}

/// Verified bytes already staged and mapped, by SHA-256: loading the same
/// signed library again reuses its mapping instead of mapping a new copy
/// (copies are never unmapped, see [`dlopen`]).
fn staged_libraries() -> &'static std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<Library>>> {
    static STAGED: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<Library>>>> =
        std::sync::OnceLock::new();
    STAGED.get_or_init(Default::default)
}

#[cfg(target_os = "linux")]
fn dlopen_bytes(path: &Path, bytes: &[u8]) -> Result<Library> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    let name = c"fidius-verified-plugin";
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return fail(Status::Io, format!("memfd_create failed: {}", std::io::Error::last_os_error()));
    }
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(bytes).map_err(|e| Error::new(Status::Io, format!("cannot stage verified library: {e}")))?;
    // Sealed before it is mapped: nothing (another thread of this process
    // with the descriptor, or anyone opening /proc/PID/fd/N) can change the
    // verified bytes, and the seals themselves cannot be lifted.
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
        return fail(Status::Io, format!("cannot seal the staged library: {}", std::io::Error::last_os_error()));
    }
    let staged = PathBuf::from(format!("/proc/self/fd/{fd}"));
    let library = dlopen(&staged).map_err(|e| e.context(format!("verified copy of {}", path.display())))?;
    // Keep the descriptor open for as long as the mapping (the process, see
    // [`dlopen`]): the dynamic loader knows a library by the name it was
    // opened with, so were this fd number reused, the next staged library's
    // "/proc/self/fd/N" would be taken for this one and not loaded at all.
    let _ = std::os::fd::IntoRawFd::into_raw_fd(file);
    Ok(library)
}

#[cfg(not(target_os = "linux"))]
fn dlopen_bytes(path: &Path, _bytes: &[u8]) -> Result<Library> {
    fail(
        Status::Unsupported,
        format!("{}: loading verified bytes is only implemented on Linux", path.display()),
    )
}

/// Validate the registry `fidius_get_registry` returned: one result per
/// descriptor, so a bad descriptor does not hide its neighbours.
///
/// # Safety
/// `registry` is NULL or points to a registry whose pointers are NULL or
/// point to memory of the sizes the ABI gives (as a loaded library's
/// statics do); the values in it may be anything. The fuzz target
/// `descriptor` synthesizes such registries.
#[doc(hidden)]
pub unsafe fn read_entries(registry: *const PluginRegistry, path: &Path) -> Result<Vec<Result<Arc<NativeEntry>, BadEntry>>> {
    let descriptors = read_registry(registry)?;
    Ok(descriptors
        .into_iter()
        .map(|d| {
            read_descriptor(d, path).map(Arc::new).map_err(|error| BadEntry {
                plugin: (!d.is_null()).then(|| string((*d).plugin_name, "").ok()).flatten(),
                error,
            })
        })
        .collect())
}

fn read_registry(registry: *const PluginRegistry) -> Result<Vec<*const PluginDescriptor>> {
    if registry.is_null() {
        return fail(Status::InvalidMagic, "fidius_get_registry returned NULL");
    }
    let registry = unsafe { &*registry };
    if registry.magic != abi::REGISTRY_MAGIC {
        return fail(
            Status::InvalidMagic,
            format!("registry magic is {:02x?}, expected \"FIDIUS\\0\\0\"", registry.magic),
        );
    }
    if registry.registry_version != abi::REGISTRY_VERSION {
        return fail(
            Status::RegistryVersion,
            format!(
                "registry version is {}, this host supports {}",
                registry.registry_version,
                abi::REGISTRY_VERSION
            ),
        );
    }
    let count = registry.plugin_count;
    if count > abi::MAX_PLUGINS_PER_LIBRARY || (count > 0 && registry.descriptors.is_null()) {
        return fail(Status::InvalidDescriptor, format!("registry lists {count} plugins at {:p}", registry.descriptors));
    }
    Ok((0..count as usize).map(|i| unsafe { *registry.descriptors.add(i) }).collect())
}

unsafe fn string(ptr: *const c_char, what: &str) -> Result<String> {
    if ptr.is_null() {
        return fail(Status::InvalidDescriptor, format!("{what} is NULL"));
    }
    CStr::from_ptr(ptr)
        .to_str()
        .map(str::to_owned)
        .map_err(|_| Error::new(Status::InvalidDescriptor, format!("{what} is not valid UTF-8")))
}

unsafe fn meta(kvs: *const abi::MetaKv, count: u32, what: &str) -> Result<Meta> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if kvs.is_null() || count > 4096 {
        return fail(Status::InvalidDescriptor, format!("{what}: {count} entries at {kvs:p}"));
    }
    (0..count as usize)
        .map(|i| {
            let kv = &*kvs.add(i);
            Ok((string(kv.key, what)?, string(kv.value, what)?))
        })
        .collect()
}

unsafe fn read_descriptor(desc: *const PluginDescriptor, path: &Path) -> Result<NativeEntry> {
    if desc.is_null() {
        return fail(Status::InvalidDescriptor, "registry holds a NULL descriptor");
    }
    let d = &*desc;
    let name = string(d.plugin_name, "plugin name")?;
    let in_plugin = |e: Error| e.context(format!("plugin {name}"));
    let min_size = match d.abi_version {
        abi::ABI_400 => abi::DESCRIPTOR_SIZE_400,
        abi::ABI_500 => abi::DESCRIPTOR_SIZE_500,
        other => {
            return Err(in_plugin(Error::new(
                Status::AbiVersion,
                format!(
                    "ABI version is {other}, this host supports {} (fidius 0.4.x) and {} (fidius 0.5.x)",
                    abi::ABI_400,
                    abi::ABI_500
                ),
            )))
        }
    };
    if d.descriptor_size < min_size {
        return Err(in_plugin(Error::new(
            Status::InvalidDescriptor,
            format!("descriptor_size is {}, ABI {} needs at least {min_size}", d.descriptor_size, d.abi_version),
        )));
    }
    let buffer_strategy = match d.buffer_strategy {
        1 => BufferStrategy::PluginAllocated,
        2 => BufferStrategy::Arena,
        other => {
            return Err(in_plugin(Error::new(
                Status::BufferStrategy,
                format!("unknown buffer strategy {other} (1 = PluginAllocated, 2 = Arena)"),
            )))
        }
    };
    if buffer_strategy == BufferStrategy::PluginAllocated && d.free_buffer.is_none() {
        return Err(in_plugin(Error::new(Status::InvalidDescriptor, "PluginAllocated plugin has no free_buffer")));
    }
    if d.method_count > abi::MAX_METHODS {
        return Err(in_plugin(Error::new(
            Status::InvalidDescriptor,
            format!("method_count is {}, more than the {} methods a descriptor may have", d.method_count, abi::MAX_METHODS),
        )));
    }
    if d.vtable.is_null() && d.method_count > 0 {
        return Err(in_plugin(Error::new(Status::InvalidDescriptor, "vtable is NULL")));
    }
    let (construct, destroy) = if d.abi_version == abi::ABI_500 {
        let tail = &*(desc.add(1) as *const abi::DescriptorTail500);
        if tail.construct.is_none() {
            return Err(in_plugin(Error::new(Status::InvalidDescriptor, "ABI 500 descriptor has no construct function")));
        }
        (tail.construct, tail.destroy)
    } else {
        (None, None)
    };
    let method_metadata = if d.method_metadata.is_null() {
        vec![Vec::new(); d.method_count as usize]
    } else {
        (0..d.method_count as usize)
            .map(|i| {
                let entry = &*d.method_metadata.add(i);
                meta(entry.kvs, entry.kv_count, "method metadata")
            })
            .collect::<Result<_>>()
            .map_err(&in_plugin)?
    };
    let trait_metadata = meta(d.trait_metadata, d.trait_metadata_count, "trait metadata").map_err(&in_plugin)?;
    let info = PluginInfo {
        interface_name: string(d.interface_name, "interface name").map_err(&in_plugin)?,
        name,
        interface_hash: d.interface_hash,
        interface_version: d.interface_version,
        runtime: Runtime::Native,
        buffer_strategy: Some(buffer_strategy),
        capabilities: d.capabilities,
        method_count: d.method_count,
        abi_version: d.abi_version,
        path: path.to_path_buf(),
    };
    Ok(NativeEntry {
        info,
        strategy: buffer_strategy,
        vtable: d.vtable as *const *const (),
        free_buffer: d.free_buffer,
        construct,
        destroy,
        method_metadata,
        trait_metadata,
    })
}
