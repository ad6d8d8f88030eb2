//! The `wasm` module of a libfidius built without the `wasm` feature
//! (`--no-default-features`): no wasmtime, so native and Python plugins
//! only. The C surface is unchanged; loading a WASM package, precompiling a
//! component or setting a compile cache fails with `UNSUPPORTED`. The fuzz
//! crate builds this way, so its parsers build in minutes, not with a
//! second wasmtime.
//!
//! The types are uninhabited: no value of them can exist, so the host's code
//! paths that would use one are unreachable and type-checked all the same.

use std::path::Path;
use std::sync::Arc;

pub use crate::egress::{Destination, EgressPolicy, RequestParts, ResponseDirective, ResponseHead, SocketRequest, SocketUse};
use crate::cancel::Cancel;
use crate::error::{Error, Result, Status};
use crate::package::{Manifest, PackageFiles};
use crate::stream::Feed;

#[path = "options.rs"]
mod options;
pub use options::WasmOptions;

fn unsupported() -> Error {
    Error::new(Status::Unsupported, "this libfidius was built without WASM support (the `wasm` cargo feature)")
}

pub enum WasmRuntime {}

impl WasmRuntime {
    pub fn shared(_fuel: bool) -> Result<Arc<WasmRuntime>> {
        Err(unsupported())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileCache {}

impl CompileCache {
    pub fn open(_dir: &Path) -> Result<CompileCache> {
        Err(unsupported())
    }
}

pub enum WasmPlugin {}
pub enum WasmStream {}

impl WasmPlugin {
    pub fn interface_hash(&self) -> u64 {
        match *self {}
    }
    pub fn granted(&self) -> &[String] {
        match *self {}
    }
    pub fn method_infos(&self) -> Vec<crate::info::MethodInfo> {
        match *self {}
    }
    pub fn call(&self, _index: u32, _input: &[u8], _cancel: Option<Arc<Cancel>>) -> Result<Vec<u8>> {
        match *self {}
    }
    pub fn call_with(&self, _index: u32, _input: &[u8], _cancel: Option<Arc<Cancel>>, _feed: Option<Arc<Feed>>) -> Result<Vec<u8>> {
        match *self {}
    }
    pub fn stream(&self, _index: u32, _input: &[u8], _feed: Option<Arc<Feed>>, _cancel: Option<Arc<Cancel>>) -> Result<WasmStream> {
        match *self {}
    }
}

impl crate::stream::ItemStream for WasmStream {
    fn next(&mut self) -> Result<Option<Vec<u8>>> {
        match *self {}
    }
}

pub struct Loaded {
    pub plugin: WasmPlugin,
    pub warnings: Vec<String>,
}

pub fn load_package(runtime: Arc<WasmRuntime>, _: &PackageFiles, _: &Manifest, _: WasmOptions) -> Result<Loaded> {
    match *runtime {}
}

pub fn precompile(runtime: &WasmRuntime, _wasm: &[u8]) -> Result<Vec<u8>> {
    match *runtime {}
}
