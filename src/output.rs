//! A call's output bytes: owned by libfidius, or still in the buffer a
//! native plugin allocated (handed on without a copy, and returned to the
//! plugin's own `free_buffer` when dropped).

use std::ops::Deref;

use crate::native::abi::FreeBufferFn;

pub enum Output {
    Owned(Vec<u8>),
    Plugin(PluginBuffer),
}

/// A buffer allocated by a native plugin.
pub struct PluginBuffer {
    ptr: *mut u8,
    len: usize,
    free: FreeBufferFn,
}

// The plugin's allocator is its global allocator; freeing from any thread is
// what fidius-host does as well.
unsafe impl Send for PluginBuffer {}
unsafe impl Sync for PluginBuffer {}

impl PluginBuffer {
    /// # Safety
    /// `ptr`/`len` came from the plugin whose `free` this is, and its library
    /// stays mapped (libraries are loaded with RTLD_NODELETE).
    pub(crate) unsafe fn new(ptr: *mut u8, len: usize, free: FreeBufferFn) -> Self {
        PluginBuffer { ptr, len, free }
    }

    /// Give up ownership: (data, len, free function).
    pub(crate) fn into_raw(self) -> (*mut u8, usize, FreeBufferFn) {
        let raw = (self.ptr, self.len, self.free);
        std::mem::forget(self);
        raw
    }
}

impl Drop for PluginBuffer {
    fn drop(&mut self) {
        unsafe { (self.free)(self.ptr, self.len) }
    }
}

impl Deref for Output {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Output::Owned(v) => v,
            Output::Plugin(b) => unsafe { std::slice::from_raw_parts(b.ptr, b.len) },
        }
    }
}

impl Output {
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Output::Owned(v) => v,
            Output::Plugin(b) => b.to_vec(),
        }
    }
}

impl PluginBuffer {
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn to_vec(&self) -> Vec<u8> {
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }.to_vec()
    }
}

impl From<Vec<u8>> for Output {
    fn from(v: Vec<u8>) -> Self {
        Output::Owned(v)
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Output").field(&&**self).finish()
    }
}
