//! One error type for the whole library, and the stable status codes C sees.

use std::fmt;

/// Result codes returned by every fallible libfidius function.
///
/// The numeric values are part of the ABI and never change; new codes are
/// only ever appended. `FIDIUS_STATUS_OK` (0) is success; anything else is a
/// failure, and the optional `fidius_error` out-parameter carries the
/// details.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 2,
    /// An argument was out of range or otherwise unusable (the message says which).
    InvalidArgument = 3,
    /// A handle was of the wrong kind, or was used after it was freed (where detectable).
    InvalidHandle = 4,
    /// libfidius itself panicked; the panic was caught at the C boundary. A bug: please report it.
    InternalPanic = 5,
    /// A file could not be read.
    Io = 6,
    /// The requested operation is not supported for this plugin (e.g. JSON on a native plugin).
    Unsupported = 7,

    /// No plugin with the requested name was found in the search paths.
    PluginNotFound = 20,
    /// The file is not a Fidius plugin (no `fidius_get_registry` export, or not a loadable library).
    NotAPlugin = 21,
    /// The shared library could not be loaded by the dynamic loader.
    LibraryLoad = 22,
    /// The file was built for another CPU architecture or object format.
    ArchitectureMismatch = 23,
    /// The plugin registry does not start with the Fidius magic bytes.
    InvalidMagic = 24,
    /// The plugin registry version is not one this host understands.
    RegistryVersion = 25,
    /// The plugin was built for a Fidius ABI this host does not support.
    AbiVersion = 26,
    /// The plugin descriptor is malformed (size, NULL fields, bad strings).
    InvalidDescriptor = 27,
    /// The plugin's buffer strategy is unknown, or differs from the one the host expects.
    BufferStrategy = 28,
    /// The plugin's interface hash differs from the one the host expects.
    InterfaceHashMismatch = 29,
    /// The plugin refused its configuration (its constructor returned NULL).
    ConfigRejected = 30,
    /// A signature was required and none was found.
    SignatureRequired = 31,
    /// A signature was found but no trusted key verifies it.
    SignatureInvalid = 32,
    /// A package manifest (`package.toml`) is missing or invalid, or its component is.
    InvalidManifest = 33,
    /// The component needs something the sandbox does not grant (e.g. wasi:http
    /// without the `http` capability and an egress policy); the message says which.
    Capability = 34,

    /// The method index is out of range for this plugin.
    MethodIndex = 40,
    /// The method exists in the interface but this plugin does not implement it.
    NotImplemented = 41,
    /// The plugin returned a `PluginError`; the error object carries its code, message and details.
    PluginError = 42,
    /// The plugin panicked while running the method; the error message carries the panic message.
    PluginPanic = 43,
    /// Input or output bytes did not match the method's types.
    Serialization = 44,
    /// The plugin returned a status code this host does not know.
    UnknownStatus = 45,
    /// The plugin's output did not fit even after one retry with the size it asked for (Arena).
    BufferTooSmall = 46,

    /// A WASM call ran past its timeout and was stopped.
    Timeout = 50,
    /// A WASM plugin tried to grow its memory past the limit and was stopped.
    MemoryLimit = 51,
    /// A WASM call used up its fuel budget and was stopped.
    FuelExhausted = 52,
    /// A WASM plugin trapped (or its runtime failed); the message carries the trap.
    Trap = 53,
    /// A WASM call exhausted its stack (unbounded recursion) and was stopped.
    StackOverflow = 54,

    /// A `.fid` archive is unreadable, or refused: a link, an absolute path or
    /// `..`, too many entries, too much content, no package in it (the message says which).
    Archive = 60,
    /// A file in a search path or package was refused before it was read: not
    /// a regular file (a FIFO, device or socket), larger than the limit for
    /// its kind, or a directory reached twice while walking a package (a
    /// link loop or join); the message says which.
    FileRefused = 61,
    /// An interface schema does not fit the plugin it was given for (fewer
    /// methods than the plugin has); the message names both.
    SchemaMismatch = 62,
    /// The call was cancelled through its `fidius_cancel` token, or the
    /// stream with `fidius_stream_cancel` (a WASM or Python call wherever it
    /// was; a native call only before it started).
    Cancelled = 63,
    /// A host interface a native plugin imports could not be bound: the
    /// plugin was built against another version or signature hash of it,
    /// it refused the host's table, or the library is already bound to
    /// another live implementation (the message names both sides).
    HostInterface = 64,
    /// `fidius_stream_next`: the stream has no more items. Not a failure:
    /// no error is set. Every later call answers it too.
    StreamEnd = 65,
    /// The host's own item source (the callback feeding a plugin's input
    /// stream) reported a failure; the plugin saw its input end there, and
    /// the call or stream fails with this status instead of its result.
    StreamSource = 66,
}

impl Status {
    /// Every status, for lookups by number.
    pub const ALL: [Status; 42] = {
        use Status::*;
        [
            Ok, NullArgument, InvalidUtf8, InvalidArgument, InvalidHandle, InternalPanic, Io, Unsupported,
            PluginNotFound, NotAPlugin, LibraryLoad, ArchitectureMismatch, InvalidMagic, RegistryVersion,
            AbiVersion, InvalidDescriptor, BufferStrategy, InterfaceHashMismatch, ConfigRejected,
            SignatureRequired, SignatureInvalid, InvalidManifest, MethodIndex, NotImplemented, PluginError,
            PluginPanic, Serialization, UnknownStatus, BufferTooSmall, Capability, Timeout, MemoryLimit,
            FuelExhausted, Trap, StackOverflow, Archive, FileRefused, SchemaMismatch, Cancelled,
            HostInterface, StreamEnd, StreamSource,
        ]
    };

    /// A short description, for messages and logs.
    pub fn name(self) -> &'static std::ffi::CStr {
        use Status::*;
        match self {
            Ok => c"ok",
            NullArgument => c"null argument",
            InvalidUtf8 => c"invalid UTF-8",
            InvalidArgument => c"invalid argument",
            InvalidHandle => c"invalid handle",
            InternalPanic => c"internal panic",
            Io => c"I/O error",
            Unsupported => c"unsupported",
            PluginNotFound => c"plugin not found",
            NotAPlugin => c"not a Fidius plugin",
            LibraryLoad => c"library load failed",
            ArchitectureMismatch => c"architecture mismatch",
            InvalidMagic => c"invalid registry magic",
            RegistryVersion => c"unsupported registry version",
            AbiVersion => c"unsupported ABI version",
            InvalidDescriptor => c"invalid plugin descriptor",
            BufferStrategy => c"buffer strategy",
            InterfaceHashMismatch => c"interface hash mismatch",
            ConfigRejected => c"configuration rejected",
            SignatureRequired => c"signature required",
            SignatureInvalid => c"signature invalid",
            InvalidManifest => c"invalid manifest",
            MethodIndex => c"method index out of range",
            NotImplemented => c"not implemented",
            PluginError => c"plugin error",
            PluginPanic => c"plugin panicked",
            Serialization => c"serialization error",
            UnknownStatus => c"unknown plugin status",
            BufferTooSmall => c"buffer too small",
            Capability => c"capability not granted",
            Timeout => c"timeout",
            MemoryLimit => c"memory limit",
            FuelExhausted => c"fuel exhausted",
            Trap => c"trap",
            StackOverflow => c"stack overflow",
            Archive => c"invalid archive",
            FileRefused => c"file refused",
            SchemaMismatch => c"schema mismatch",
            Cancelled => c"cancelled",
            HostInterface => c"host interface mismatch",
            StreamEnd => c"end of stream",
            StreamSource => c"stream source failed",
        }
    }
}

/// The error a plugin method returned: Fidius' `PluginError`
/// (`{ code: String, message: String, details: Option<String> }`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct PluginError {
    pub code: String,
    pub message: String,
    /// A JSON document, by Fidius convention.
    pub details: Option<String>,
}

/// Any libfidius failure: a status, a human-readable message, and for
/// [`Status::PluginError`] the plugin's own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub status: Status,
    pub message: String,
    /// Boxed: keeps `Result<T, Error>` small on the hot call path.
    pub plugin_error: Option<Box<PluginError>>,
}

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Error { status, message: message.into(), plugin_error: None }
    }

    pub fn plugin(err: PluginError) -> Self {
        let message = format!("plugin error {}: {}", err.code, err.message);
        Error { status: Status::PluginError, message, plugin_error: Some(Box::new(err)) }
    }

    /// Prefix the message with where it happened (a path, a plugin name).
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for building an `Err`.
pub(crate) fn fail<T>(status: Status, message: impl Into<String>) -> Result<T> {
    Err(Error::new(status, message))
}
