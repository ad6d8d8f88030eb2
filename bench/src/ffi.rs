//! The slice of `include/fidius.h` the bench uses, declared by hand and linked
//! against the shipped `libfidius.so` (the main crate's release build).
//!
//! Why not depend on the `libfidius` crate: cargo would then compile libfidius
//! into this binary with wasmtime's features unified with fidius-host's (GC,
//! threads, component-model-async, ...), which makes libfidius's instantiation
//! ~30% slower than the library a C host actually links.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};

/// `enum fidius_status`, as a plain number (0 = OK).
pub type fidius_status = u32;
pub const FIDIUS_STATUS_OK: fidius_status = 0;

#[repr(C)]
pub struct fidius_error(c_void);
#[repr(C)]
pub struct fidius_host(c_void);
#[repr(C)]
pub struct fidius_host_builder(c_void);
#[repr(C)]
pub struct fidius_load_options(c_void);
#[repr(C)]
pub struct fidius_plugin(c_void);

#[repr(C)]
pub struct fidius_bytes {
    pub data: *mut u8,
    pub len: usize,
    pub release: *mut c_void,
}

impl fidius_bytes {
    pub const EMPTY: fidius_bytes = fidius_bytes { data: std::ptr::null_mut(), len: 0, release: std::ptr::null_mut() };
}

#[link(name = "fidius", kind = "dylib")]
extern "C" {
    pub fn fidius_version() -> *const c_char;
    pub fn fidius_status_name(status: u32) -> *const c_char;
    pub fn fidius_error_message(error: *const fidius_error) -> *const c_char;
    pub fn fidius_error_free(error: *mut fidius_error);

    pub fn fidius_host_builder_new() -> *mut fidius_host_builder;
    pub fn fidius_host_builder_free(builder: *mut fidius_host_builder);
    pub fn fidius_host_builder_add_search_path(
        builder: *mut fidius_host_builder,
        path: *const c_char,
        error: *mut *mut fidius_error,
    ) -> fidius_status;
    pub fn fidius_host_builder_set_trust_precompiled(
        builder: *mut fidius_host_builder,
        trust: bool,
        error: *mut *mut fidius_error,
    ) -> fidius_status;
    pub fn fidius_host_builder_build(
        builder: *const fidius_host_builder,
        host: *mut *mut fidius_host,
        error: *mut *mut fidius_error,
    ) -> fidius_status;
    pub fn fidius_host_free(host: *mut fidius_host);
    pub fn fidius_host_load(
        host: *const fidius_host,
        name: *const c_char,
        options: *const fidius_load_options,
        plugin: *mut *mut fidius_plugin,
        error: *mut *mut fidius_error,
    ) -> fidius_status;
    pub fn fidius_host_precompile_component(
        host: *const fidius_host,
        component: *const u8,
        component_len: usize,
        output: *mut fidius_bytes,
        error: *mut *mut fidius_error,
    ) -> fidius_status;

    pub fn fidius_load_options_new() -> *mut fidius_load_options;
    pub fn fidius_load_options_free(options: *mut fidius_load_options);
    pub fn fidius_load_options_set_interface_hash(
        options: *mut fidius_load_options,
        hash: u64,
        error: *mut *mut fidius_error,
    ) -> fidius_status;
    pub fn fidius_load_options_set_interface_export(
        options: *mut fidius_load_options,
        export: *const c_char,
        error: *mut *mut fidius_error,
    ) -> fidius_status;
    pub fn fidius_load_options_set_reuse_instance(
        options: *mut fidius_load_options,
        reuse: bool,
        error: *mut *mut fidius_error,
    ) -> fidius_status;

    pub fn fidius_plugin_free(plugin: *mut fidius_plugin);
    pub fn fidius_plugin_call(
        plugin: *const fidius_plugin,
        method: u32,
        format: u32,
        input: *const u8,
        input_len: usize,
        output: *mut fidius_bytes,
        error: *mut *mut fidius_error,
    ) -> fidius_status;
    pub fn fidius_bytes_free(bytes: *mut fidius_bytes);
    pub fn fidius_plugin_method_name(plugin: *const fidius_plugin, method: u32) -> *const c_char;
    pub fn fidius_plugin_warning_count(plugin: *const fidius_plugin) -> usize;
    pub fn fidius_plugin_warning(plugin: *const fidius_plugin, index: usize) -> *const c_char;
}
