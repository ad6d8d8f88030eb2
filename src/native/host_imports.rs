//! Host functions for native plugins: reading a library's
//! `fidius_get_host_imports` registry and binding the embedder's host
//! interfaces into it (fidius 0.5.7+).
//!
//! A library keeps the table it is bound to in a static for as long as it
//! is mapped, which is the life of the process (libraries are opened with
//! RTLD_NODELETE, see `library::dlopen`); so is each table. A table does not
//! own the embedder's implementation: it refers to it weakly, so the
//! implementation is released with the last host or plugin using it, and a
//! late call (from a thread the plugin left running) is answered with an
//! error instead of reaching freed state. Binding is once per library and
//! interface in the process: a later load binds the same table to the new
//! implementation, unless a live one is still bound there.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use libloading::Library;

use super::abi;
use crate::error::{fail, Error, Result, Status};
use crate::host_fn::{status, HostInterface, HostInterfaces};
use crate::wire;

const HOST_IMPORTS_SYMBOL: &[u8] = b"fidius_get_host_imports\0";
const HOST_IMPORTS_VERSION: u32 = 1;
const IMPORT_DESCRIPTOR_SIZE: u32 = 40;
/// More imports than any interface crate declares; bounds what a hostile
/// registry makes us read.
const MAX_IMPORTS: u32 = 1024;
const MAX_NAME: usize = 1024;
/// The plugin's bind shim: 0 bound, -2 already bound, else a refusal.
const BIND_OK: i32 = 0;

type BindFn = unsafe extern "C" fn(*const HostFunctionTable) -> i32;
type DispatchFn = unsafe extern "C" fn(*mut c_void, u32, *const u8, u32, *mut *mut u8, *mut u32) -> i32;

#[repr(C)]
struct HostImportRegistry {
    magic: [u8; 8],
    registry_version: u32,
    import_count: u32,
    imports: *const *const HostImportDescriptor,
}

#[repr(C)]
struct HostImportDescriptor {
    descriptor_size: u32,
    abi_version: u32,
    interface_name: *const c_char,
    interface_hash: u64,
    interface_version: u32,
    bind: Option<BindFn>,
}

/// Built by the host, read by the plugin for the rest of the process.
#[repr(C)]
struct HostFunctionTable {
    table_size: u32,
    abi_version: u32,
    interface_name: *const c_char,
    interface_hash: u64,
    interface_version: u32,
    fn_count: u32,
    ctx: *mut c_void,
    dispatch: DispatchFn,
    free_buffer: unsafe extern "C" fn(*mut u8, usize),
}

const _: () = {
    assert!(std::mem::size_of::<HostImportRegistry>() == 24);
    assert!(std::mem::size_of::<HostImportDescriptor>() == IMPORT_DESCRIPTOR_SIZE as usize);
    assert!(std::mem::size_of::<HostFunctionTable>() == 56);
};

/// One host interface a library imports.
#[derive(Debug, Clone)]
pub struct HostImport {
    pub name: String,
    pub hash: u64,
    pub version: u32,
    pub abi_version: u32,
    bind: BindFn,
    /// The descriptor's address: the library's identity for binding.
    key: usize,
}

/// The library's host imports; none when it does not export the registry.
pub fn read(library: &Library) -> Result<Vec<HostImport>> {
    let registry = unsafe {
        match library.get::<unsafe extern "C" fn() -> *const HostImportRegistry>(HOST_IMPORTS_SYMBOL) {
            Ok(get) => get(),
            Err(_) => return Ok(Vec::new()),
        }
    };
    let bad = |why: String| Error::new(Status::InvalidDescriptor, format!("host import registry: {why}"));
    let registry = unsafe { registry.as_ref() }.ok_or_else(|| bad("fidius_get_host_imports returned NULL".into()))?;
    if registry.magic != abi::REGISTRY_MAGIC {
        return Err(bad(format!("magic is {:02x?}, expected \"FIDIUS\\0\\0\"", registry.magic)));
    }
    if registry.registry_version != HOST_IMPORTS_VERSION {
        return Err(bad(format!(
            "version is {}, this host supports {HOST_IMPORTS_VERSION}",
            registry.registry_version
        )));
    }
    if registry.import_count > MAX_IMPORTS {
        return Err(bad(format!("{} imports (at most {MAX_IMPORTS})", registry.import_count)));
    }
    if registry.import_count > 0 && registry.imports.is_null() {
        return Err(bad(format!("{} imports but a NULL array", registry.import_count)));
    }
    (0..registry.import_count as usize)
        .map(|i| {
            let d = unsafe { *registry.imports.add(i) };
            let desc = unsafe { d.as_ref() }.ok_or_else(|| bad(format!("import {i} is NULL")))?;
            if desc.descriptor_size < IMPORT_DESCRIPTOR_SIZE {
                return Err(bad(format!("import {i} is {} bytes, expected {IMPORT_DESCRIPTOR_SIZE}", desc.descriptor_size)));
            }
            if desc.interface_name.is_null() {
                return Err(bad(format!("import {i} has no interface name")));
            }
            let name = unsafe { CStr::from_ptr(desc.interface_name) }.to_bytes();
            let name = std::str::from_utf8(&name[..name.len().min(MAX_NAME + 1)])
                .ok()
                .filter(|n| n.len() <= MAX_NAME)
                .ok_or_else(|| bad(format!("import {i}'s interface name is not UTF-8 of at most {MAX_NAME} bytes")))?;
            let bind = desc.bind.ok_or_else(|| bad(format!("import {name} has no bind function")))?;
            Ok(HostImport {
                name: name.to_string(),
                hash: desc.interface_hash,
                version: desc.interface_version,
                abi_version: desc.abi_version,
                bind,
                key: d as usize,
            })
        })
        .collect()
}

/// A library's imports and the interfaces bound for them.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub imports: Vec<HostImport>,
    /// Kept alive by the plugin that bound them.
    pub interfaces: Vec<Arc<HostInterface>>,
}

impl Bound {
    pub fn is_bound(&self, name: &str) -> bool {
        self.interfaces.iter().any(|i| i.name == name)
    }
}

/// Bind the offered interfaces a library imports (by name), checking the
/// identity the plugin was built against first. An import nothing offers
/// is left unbound: the plugin's calls to it fail with fidius' "not bound"
/// error.
pub fn bind(imports: &[HostImport], offered: &HostInterfaces) -> Result<Bound> {
    let mut bound = Vec::new();
    for import in imports {
        let Some(interface) = offered.get(&import.name) else { continue };
        check_identity(import, interface)?;
        let mut slots = slots().lock().unwrap_or_else(|p| p.into_inner());
        match slots.get(&import.key) {
            Some(slot) => {
                let mut current = slot.current.write().unwrap_or_else(|p| p.into_inner());
                if slot.table.fn_count != interface.fn_count {
                    return fail(
                        Status::HostInterface,
                        format!(
                            "host interface {}: this library was bound with {} functions, the host now provides {}",
                            import.name, slot.table.fn_count, interface.fn_count
                        ),
                    );
                }
                if current.upgrade().is_some_and(|c| !Arc::ptr_eq(&c, interface)) {
                    return fail(
                        Status::HostInterface,
                        format!(
                            "host interface {}: this library is already bound to another implementation that is \
                             still in use (binding is once per library in the process; free the plugins of the \
                             other host or load options first)",
                            import.name
                        ),
                    );
                }
                *current = Arc::downgrade(interface);
            }
            None => {
                let slot = Slot::leak(interface);
                let code = catch_unwind(AssertUnwindSafe(|| unsafe { (import.bind)(&slot.table) })).unwrap_or(-7);
                if code != BIND_OK {
                    return fail(
                        Status::HostInterface,
                        format!("host interface {}: the plugin refused the host's table: {}", import.name, bind_message(code)),
                    );
                }
                slots.insert(import.key, slot);
            }
        }
        bound.push(interface.clone());
    }
    Ok(Bound { imports: imports.to_vec(), interfaces: bound })
}

fn check_identity(import: &HostImport, interface: &HostInterface) -> Result<()> {
    let mismatch = |what: String| {
        fail(Status::HostInterface, format!("host interface {}: {what}", import.name))
    };
    if import.abi_version != abi::ABI_500 {
        return mismatch(format!("the plugin imports it with ABI {}, this host binds ABI {}", import.abi_version, abi::ABI_500));
    }
    if import.version != interface.version {
        return mismatch(format!(
            "version mismatch: the plugin was built against version {}, the host provides version {}",
            import.version, interface.version
        ));
    }
    if import.hash != interface.hash {
        return mismatch(format!(
            "signature hash mismatch: the plugin was built against {:#018x}, the host provides {:#018x}",
            import.hash, interface.hash
        ));
    }
    Ok(())
}

fn bind_message(code: i32) -> String {
    let what = match code {
        -1 => "NULL table",
        -2 => "a table is already bound (by another host in this process)",
        -3 => "hash mismatch",
        -4 => "version mismatch",
        -5 => "ABI mismatch",
        -6 => "function count mismatch",
        -7 => "its bind function panicked",
        -8 => "wrong backend",
        _ => "unknown bind status",
    };
    format!("{what} (status {code})")
}

/// A bound table and the implementation it currently dispatches to.
struct Slot {
    table: HostFunctionTable,
    current: RwLock<Weak<HostInterface>>,
    _name: CString,
}

// The raw pointers point into the slot itself and at static functions.
unsafe impl Send for Slot {}
unsafe impl Sync for Slot {}

impl Slot {
    fn leak(interface: &Arc<HostInterface>) -> &'static Slot {
        let name = CString::new(interface.name.replace('\0', "")).expect("NULs removed");
        let slot: &'static mut Slot = Box::leak(Box::new(Slot {
            table: HostFunctionTable {
                table_size: std::mem::size_of::<HostFunctionTable>() as u32,
                abi_version: abi::ABI_500,
                interface_name: name.as_ptr(),
                interface_hash: interface.hash,
                interface_version: interface.version,
                fn_count: interface.fn_count,
                ctx: std::ptr::null_mut(),
                dispatch,
                free_buffer,
            },
            current: RwLock::new(Arc::downgrade(interface)),
            _name: name,
        }));
        slot.table.ctx = slot as *mut Slot as *mut c_void;
        slot
    }
}

fn slots() -> &'static Mutex<HashMap<usize, &'static Slot>> {
    static SLOTS: OnceLock<Mutex<HashMap<usize, &'static Slot>>> = OnceLock::new();
    SLOTS.get_or_init(Default::default)
}

/// The table's dispatch: called by plugin code, on whatever thread it runs.
unsafe extern "C" fn dispatch(
    ctx: *mut c_void,
    index: u32,
    in_ptr: *const u8,
    in_len: u32,
    out_ptr: *mut *mut u8,
    out_len: *mut u32,
) -> i32 {
    if out_ptr.is_null() || out_len.is_null() || ctx.is_null() {
        return status::SERIALIZATION_ERROR;
    }
    *out_ptr = std::ptr::null_mut();
    *out_len = 0;
    let slot = &*(ctx as *const Slot);
    let input = if in_ptr.is_null() || in_len == 0 { &[][..] } else { std::slice::from_raw_parts(in_ptr, in_len as usize) };
    let (code, payload) = catch_unwind(AssertUnwindSafe(|| {
        let current = slot.current.read().unwrap_or_else(|p| p.into_inner()).upgrade();
        match current {
            Some(interface) => interface.dispatch(index, input),
            None => (
                status::PANIC,
                wire::encode(&format!(
                    "host interface {} is no longer provided: every host and plugin that offered it was freed",
                    slot._name.to_string_lossy()
                )),
            ),
        }
    }))
    .unwrap_or_else(|_| (status::PANIC, wire::encode("the host's dispatch panicked")));
    if payload.is_empty() {
        return code;
    }
    let Ok(len) = u32::try_from(payload.len()) else {
        return status::SERIALIZATION_ERROR;
    };
    *out_len = len;
    *out_ptr = Box::into_raw(payload.into_boxed_slice()) as *mut u8;
    code
}

/// Frees what `dispatch` handed out (the plugin copies it first).
unsafe extern "C" fn free_buffer(ptr: *mut u8, len: usize) {
    if !ptr.is_null() {
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)));
    }
}
