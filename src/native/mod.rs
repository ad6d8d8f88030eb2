//! Native (cdylib) Fidius plugins: ABI 400 (fidius 0.4) and 500 (fidius 0.5).

pub mod abi;
pub mod arch;
pub mod host_imports;
pub mod library;
pub mod plugin;
pub mod stream;

pub use library::{NativeEntry, NativeLibrary, Source};
pub use plugin::NativePlugin;
pub use stream::NativeStream;
