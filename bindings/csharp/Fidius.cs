// Fidius for C#: P/Invoke bindings over libfidius' C API (fidius.h).
//
// Ownership: every C handle lives in a SafeHandle (HostHandle, PluginHandle,
// ...), so it is released exactly once, by Dispose or by the runtime's
// critical finalizer, and never while a P/Invoke using it is in flight.
// Host, Plugin, PluginStream, EgressPolicy and HostInterface are IDisposable. Everything else (PluginInfo,
// Discovery, call outputs, exceptions) is copied into managed memory.
//
// Errors: a failed call throws FidiusException (with its Status), or
// PluginException (Code, PluginMessage, Details) when the plugin itself
// returned an error. A call stopped through its CancellationToken throws
// FidiusException with Status.Cancelled.
//
// Streams: Plugin.Stream opens a server or bidirectional stream as a PluginStream
// (IEnumerable<byte[]>, IDisposable; fidius_stream_next per item, fidius_stream_cancel from any
// thread by Cancel, fidius_stream_free on Dispose);
// Plugin.CallStreaming feeds a client stream from an IEnumerable<byte[]>. An item source is a
// GCHandle to an ItemFeed, freed by libfidius' destroy callback; what the IEnumerable throws is
// caught in the callback and surfaces as the InnerException of FidiusException(StreamSource).
//
// Threads: a Host and a Plugin may be used from any number of threads.
// Callbacks (egress policy, log) run on libfidius' threads, concurrently: an
// egress callback on a thread libfidius starts for it (never the thread that
// called the plugin, which waits for it), the log callback on the thread of
// the call that logs or on such a thread (see README.md, "Mono and process exit").
//
// JSON: Plugin.Invoke and Plugin.Describe use the small JSON writer and
// reader in this file (class Json): the base class library of Mono has none.

using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;

[assembly: InternalsVisibleTo("FidiusTests")]

namespace Fidius
{
    /// <summary>libfidius result codes (fidius_status); the numbers never change.</summary>
    public enum Status : int
    {
        Ok = 0,
        NullArgument = 1,
        InvalidUtf8 = 2,
        InvalidArgument = 3,
        InvalidHandle = 4,
        InternalPanic = 5,
        Io = 6,
        Unsupported = 7,
        PluginNotFound = 20,
        NotAPlugin = 21,
        LibraryLoad = 22,
        ArchitectureMismatch = 23,
        InvalidMagic = 24,
        RegistryVersion = 25,
        AbiVersion = 26,
        InvalidDescriptor = 27,
        BufferStrategy = 28,
        InterfaceHashMismatch = 29,
        ConfigRejected = 30,
        SignatureRequired = 31,
        SignatureInvalid = 32,
        InvalidManifest = 33,
        Capability = 34,
        MethodIndex = 40,
        NotImplemented = 41,
        PluginError = 42,
        PluginPanic = 43,
        Serialization = 44,
        UnknownStatus = 45,
        BufferTooSmall = 46,
        Timeout = 50,
        MemoryLimit = 51,
        FuelExhausted = 52,
        Trap = 53,
        StackOverflow = 54,
        Archive = 60,
        FileRefused = 61,
        SchemaMismatch = 62,
        Cancelled = 63,
        HostInterface = 64,
        /// <summary>PluginStream: the stream has no more items. Not a failure (never thrown).</summary>
        StreamEnd = 65,
        /// <summary>The host's item source (the IEnumerable feeding a plugin's input stream) failed:
        /// the plugin saw its input end there, and the call or stream fails with this status.</summary>
        StreamSource = 66,
    }

    /// <summary>The encoding of a call's input and output.</summary>
    public enum Format : uint
    {
        /// <summary>Fidius wire bytes: the bincode (1.3, legacy) tuple of the arguments.</summary>
        Wire = 0,
        /// <summary>A JSON array (or object) of the arguments; the output is the JSON of the result.
        /// WASM and Python plugins, and native plugins with an interface schema (else Status.Unsupported).</summary>
        Json = 1,
    }

    public enum PluginRuntime : uint { Unknown = 0, Native = 1, Wasm = 2, Python = 3 }

    public enum BufferStrategy : uint { None = 0, PluginAllocated = 1, Arena = 2 }

    public enum LoadPolicy : uint { Lenient = 0, Strict = 1 }

    public enum EgressVerdict : uint { Deny = 0, Allow = 1 }

    /// <summary>What a SocketRequest is about (fidius_socket_use).</summary>
    public enum SocketUse : uint { TcpConnect = 1, UdpBind = 2, UdpSend = 3, DnsLookup = 4 }

    /// <summary>What a ResponseCallback wants done with a response (fidius_response_directive).</summary>
    public enum ResponseDirective : uint { Forward = 0, RetryOnce = 1 }

    /// <summary>A failed libfidius call.</summary>
    public class FidiusException : Exception
    {
        public Status Status { get; private set; }

        public FidiusException(Status status, string message) : base(message) { Status = status; }

        /// <summary>A failure caused by inner: Status.StreamSource carries the exception the item
        /// source (the caller's IEnumerable) threw.</summary>
        public FidiusException(Status status, string message, Exception inner) : base(message, inner) { Status = status; }
    }

    /// <summary>An error the plugin itself returned (Status.PluginError).</summary>
    public class PluginException : FidiusException
    {
        /// <summary>PluginError.code, e.g. "DIV_ZERO".</summary>
        public string Code { get; private set; }
        /// <summary>PluginError.message, as the plugin wrote it.</summary>
        public string PluginMessage { get; private set; }
        /// <summary>PluginError.details (JSON by convention), or null.</summary>
        public string Details { get; private set; }

        public PluginException(string hostMessage, string code, string pluginMessage, string details)
            : base(Status.PluginError, hostMessage)
        {
            Code = code;
            PluginMessage = pluginMessage;
            Details = details;
        }

        /// <summary>A plugin error for a HostFunction to throw: the calling plugin sees a PluginError with
        /// this code, message and details (a JSON document, or null).</summary>
        public PluginException(string code, string message, string details = null)
            : this(code + ": " + message, code, message, details) { }
    }

    /// <summary>The libfidius loaded is not compatible with the version this binding was written
    /// for (Library.BindingVersion): its C structs and functions may differ, so the binding
    /// refuses to call it rather than corrupt memory. Thrown by Library.CheckVersion(); any other
    /// use of libfidius throws a TypeInitializationException whose InnerException is this.</summary>
    public class LibraryVersionException : Exception
    {
        /// <summary>The loaded library's version (fidius_version()), "" if it gave none.</summary>
        public string LibraryVersion { get; private set; }
        /// <summary>Library.BindingVersion.</summary>
        public string BindingVersion { get; private set; }
        /// <summary>The file the library was loaded from, or null if not known.</summary>
        public string LibraryPath { get; private set; }
        /// <summary>Why the versions are incompatible.</summary>
        public string Reason { get; private set; }

        public LibraryVersionException(string libraryVersion, string bindingVersion, string libraryPath, string reason)
            : base("libfidius " + libraryVersion + (libraryPath == null ? "" : " (" + libraryPath + ")") +
                   " is not compatible with this Fidius binding, written for libfidius " + bindingVersion + ": " + reason)
        {
            LibraryVersion = libraryVersion;
            BindingVersion = bindingVersion;
            LibraryPath = libraryPath;
            Reason = reason;
        }
    }

    // ---------------------------------------------------------------- handles

    internal abstract class FidiusHandle : SafeHandle
    {
        protected FidiusHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
    }

    internal sealed class HostBuilderHandle : FidiusHandle
    {
        protected override bool ReleaseHandle() { Native.fidius_host_builder_free(handle); return true; }
    }

    internal sealed class HostHandle : FidiusHandle
    {
        protected override bool ReleaseHandle() { Native.fidius_host_free(handle); return true; }
    }

    internal sealed class DiscoveryHandle : FidiusHandle
    {
        protected override bool ReleaseHandle() { Native.fidius_discovery_free(handle); return true; }
    }

    internal sealed class LoadOptionsHandle : FidiusHandle
    {
        protected override bool ReleaseHandle() { Native.fidius_load_options_free(handle); return true; }
    }

    internal sealed class PluginHandle : FidiusHandle
    {
        protected override bool ReleaseHandle() { Native.fidius_plugin_free(handle); return true; }
    }

    internal sealed class EgressPolicyHandle : FidiusHandle
    {
        protected override bool ReleaseHandle() { Native.fidius_egress_policy_free(handle); return true; }
    }

    internal sealed class HostInterfaceHandle : FidiusHandle
    {
        protected override bool ReleaseHandle() { Native.fidius_host_interface_free(handle); return true; }
    }

    internal sealed class CancelHandle : FidiusHandle
    {
        protected override bool ReleaseHandle() { Native.fidius_cancel_free(handle); return true; }
    }

    internal sealed class StreamHandle : FidiusHandle
    {
        // Cancels a stream that has not ended (the plugin's producer is dropped) and destroys a
        // bidirectional stream's source, exactly once: by PluginStream.Dispose or the finalizer.
        protected override bool ReleaseHandle() { Native.fidius_stream_free(handle); return true; }
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct FidiusBytes
    {
        public IntPtr Data;
        public UIntPtr Len;
        public IntPtr Release; // libfidius' own: how to free Data
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate uint EgressFn(IntPtr userData, IntPtr request);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate uint SocketFn(IntPtr userData, IntPtr request);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate uint ResponseFn(IntPtr userData, IntPtr request, IntPtr response);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void DestroyFn(IntPtr userData);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void LogFn(IntPtr userData, uint level, IntPtr message);

    /// <summary>fidius_stream_source_fn: item and itemLen point at the `const uint8_t *` and
    /// `size_t` to fill in (written with Marshal.WriteIntPtr: size_t is pointer-sized).</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate int StreamSourceFn(IntPtr userData, IntPtr item, IntPtr itemLen);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void HostFn(IntPtr userData, uint index, IntPtr input, UIntPtr inputLen, IntPtr call);

    /// <summary>Where libfidius comes from under .NET (Core 3.0+, 5+): a DllImport resolver for
    /// this assembly that tries the runtime's own probe for "fidius" (the app directory, a NuGet
    /// package's runtimes/RID/native, the loader's path), then the versioned soname
    /// libfidius.so.0, the only name a system install without the development symlink has.
    /// Reached through reflection, so this assembly (built with mcs against the .NET Framework
    /// profile) compiles on Mono and installs the resolver wherever NativeLibrary exists. Mono
    /// has no NativeLibrary: it probes libfidius.so beside the assembly and on the loader's path,
    /// and a dllmap (Fidius.dll.config, see README) maps "fidius" to libfidius.so.0.</summary>
    internal static class NativeResolver
    {
        static readonly Type NativeLibrary =
            typeof(Marshal).Assembly.GetType("System.Runtime.InteropServices.NativeLibrary");

        /// <summary>Whether the resolver is registered (false on Mono).</summary>
        internal static bool Installed;

        internal static void Install()
        {
            try
            {
                Type resolverType = typeof(Marshal).Assembly.GetType("System.Runtime.InteropServices.DllImportResolver");
                if (NativeLibrary == null || resolverType == null)
                    return;
                MethodInfo set = NativeLibrary.GetMethod("SetDllImportResolver", new[] { typeof(Assembly), resolverType });
                MethodInfo resolve = typeof(NativeResolver).GetMethod("Resolve", BindingFlags.NonPublic | BindingFlags.Static);
                if (set == null || resolve == null)
                    return;
                set.Invoke(null, new object[] { typeof(NativeResolver).Assembly, Delegate.CreateDelegate(resolverType, resolve) });
                Installed = true;
            }
            catch (Exception)
            {
                // Another resolver is registered for this assembly (the application's): it wins.
            }
        }

        static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
        {
            if (name != "fidius")
                return IntPtr.Zero;
            foreach (string candidate in new[] { "fidius", "libfidius.so.0" })
            {
                IntPtr handle = TryLoad(candidate, assembly, searchPath);
                if (handle != IntPtr.Zero)
                    return handle;
            }
            return IntPtr.Zero; // the runtime's default probing, and its DllNotFoundException
        }

        static IntPtr TryLoad(string name, Assembly assembly, DllImportSearchPath? searchPath)
        {
            // NativeLibrary.TryLoad(string, Assembly, DllImportSearchPath?, out IntPtr); it does
            // not call this resolver again.
            MethodInfo tryLoad = NativeLibrary.GetMethod("TryLoad", new[] {
                typeof(string), typeof(Assembly), typeof(DllImportSearchPath?), typeof(IntPtr).MakeByRefType() });
            if (tryLoad == null)
                return IntPtr.Zero;
            object[] args = { name, assembly, searchPath, IntPtr.Zero };
            return (bool)tryLoad.Invoke(null, args) ? (IntPtr)args[3] : IntPtr.Zero;
        }
    }

    internal static class Native
    {
        const string Lib = "fidius"; // libfidius.so (NativeResolver: also libfidius.so.0 under .NET)

        // Every use of libfidius goes through this class, so its initialization is the load-time
        // version check: a mismatched library makes every later use throw a
        // TypeInitializationException wrapping the LibraryVersionException.
        static Native()
        {
            NativeResolver.Install();
            LibraryVersionException mismatch = Library.CheckLoadedVersion();
            if (mismatch != null)
                throw mismatch;
        }

        // errors
        [DllImport(Lib)] public static extern Status fidius_error_status(IntPtr error);
        [DllImport(Lib)] public static extern IntPtr fidius_error_message(IntPtr error);
        [DllImport(Lib)] public static extern IntPtr fidius_error_plugin_code(IntPtr error);
        [DllImport(Lib)] public static extern IntPtr fidius_error_plugin_message(IntPtr error);
        [DllImport(Lib)] public static extern IntPtr fidius_error_plugin_details(IntPtr error);
        [DllImport(Lib)] public static extern void fidius_error_free(IntPtr error);
        [DllImport(Lib)] public static extern IntPtr fidius_status_name(uint status);
        [DllImport(Lib)] public static extern IntPtr fidius_version();

        // builder and host
        [DllImport(Lib)] public static extern HostBuilderHandle fidius_host_builder_new();
        [DllImport(Lib)] public static extern void fidius_host_builder_free(IntPtr builder);
        [DllImport(Lib)] public static extern Status fidius_host_builder_add_search_path(HostBuilderHandle b, byte[] path, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_set_load_policy(HostBuilderHandle b, uint policy, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_set_require_signature(HostBuilderHandle b, [MarshalAs(UnmanagedType.U1)] bool require, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_set_python_interpreter(HostBuilderHandle b, byte[] interpreter, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_set_trust_precompiled(HostBuilderHandle b, [MarshalAs(UnmanagedType.U1)] bool trust, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_set_compile_cache(HostBuilderHandle b, byte[] dir, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_allow_capability(HostBuilderHandle b, byte[] pattern, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_add_trusted_key(HostBuilderHandle b, byte[] key, UIntPtr len, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_add_trusted_key_file(HostBuilderHandle b, byte[] path, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_add_schema(HostBuilderHandle b, byte[] wit, UIntPtr len, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_add_schema_file(HostBuilderHandle b, byte[] path, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_set_interface_hash(HostBuilderHandle b, ulong hash, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_set_buffer_strategy(HostBuilderHandle b, uint strategy, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_set_egress_policy(HostBuilderHandle b, EgressPolicyHandle policy, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_set_log_callback(HostBuilderHandle b, LogFn callback, IntPtr userData, DestroyFn destroy, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_builder_build(HostBuilderHandle b, out HostHandle host, out IntPtr error);
        [DllImport(Lib)] public static extern void fidius_host_free(IntPtr host);
        [DllImport(Lib)] public static extern Status fidius_host_precompile_component(HostHandle host, byte[] component, UIntPtr len, out FidiusBytes output, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_load_fid(HostHandle host, byte[] path, LoadOptionsHandle options, out PluginHandle plugin, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_unpack_fid(HostHandle host, byte[] path, byte[] destDir, out FidiusBytes packageDir, out IntPtr error);

        // discovery
        [DllImport(Lib)] public static extern Status fidius_host_discover(HostHandle host, out DiscoveryHandle discovery, out IntPtr error);
        [DllImport(Lib)] public static extern void fidius_discovery_free(IntPtr discovery);
        [DllImport(Lib)] public static extern UIntPtr fidius_discovery_plugin_count(DiscoveryHandle d);
        [DllImport(Lib)] public static extern IntPtr fidius_discovery_plugin(DiscoveryHandle d, UIntPtr index);
        [DllImport(Lib)] public static extern UIntPtr fidius_discovery_skipped_count(DiscoveryHandle d);
        [DllImport(Lib)] public static extern IntPtr fidius_discovery_skipped_path(DiscoveryHandle d, UIntPtr index);
        [DllImport(Lib)] public static extern IntPtr fidius_discovery_skipped_plugin(DiscoveryHandle d, UIntPtr index);
        [DllImport(Lib)] public static extern Status fidius_discovery_skipped_status(DiscoveryHandle d, UIntPtr index);
        [DllImport(Lib)] public static extern IntPtr fidius_discovery_skipped_reason(DiscoveryHandle d, UIntPtr index);

        // plugin info (borrowed pointers: read while the owner is referenced)
        [DllImport(Lib)] public static extern IntPtr fidius_plugin_info_name(IntPtr info);
        [DllImport(Lib)] public static extern IntPtr fidius_plugin_info_interface_name(IntPtr info);
        [DllImport(Lib)] public static extern ulong fidius_plugin_info_interface_hash(IntPtr info);
        [DllImport(Lib)] public static extern uint fidius_plugin_info_interface_version(IntPtr info);
        [DllImport(Lib)] public static extern PluginRuntime fidius_plugin_info_runtime(IntPtr info);
        [DllImport(Lib)] public static extern BufferStrategy fidius_plugin_info_buffer_strategy(IntPtr info);
        [DllImport(Lib)] public static extern ulong fidius_plugin_info_capabilities(IntPtr info);
        [DllImport(Lib)] public static extern uint fidius_plugin_info_method_count(IntPtr info);
        [DllImport(Lib)] public static extern uint fidius_plugin_info_abi_version(IntPtr info);
        [DllImport(Lib)] public static extern IntPtr fidius_plugin_info_path(IntPtr info);

        // load options
        [DllImport(Lib)] public static extern LoadOptionsHandle fidius_load_options_new();
        [DllImport(Lib)] public static extern void fidius_load_options_free(IntPtr options);
        [DllImport(Lib)] public static extern Status fidius_load_options_set_config(LoadOptionsHandle o, byte[] config, UIntPtr len, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_load_options_set_interface_hash(LoadOptionsHandle o, ulong hash, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_load_options_set_egress_policy(LoadOptionsHandle o, EgressPolicyHandle policy, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_load_options_set_interface_export(LoadOptionsHandle o, byte[] name, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_load_options_set_grants(LoadOptionsHandle o, IntPtr[] grants, UIntPtr count, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_load_options_set_timeout_ms(LoadOptionsHandle o, ulong ms, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_load_options_set_memory_limit(LoadOptionsHandle o, ulong bytes, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_load_options_set_fuel(LoadOptionsHandle o, ulong fuel, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_load_options_set_reuse_instance(LoadOptionsHandle o, [MarshalAs(UnmanagedType.U1)] bool reuse, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_load_options_set_wire_raw(LoadOptionsHandle o, byte[] method, [MarshalAs(UnmanagedType.U1)] bool raw, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_load_options_set_schema(LoadOptionsHandle o, byte[] wit, UIntPtr len, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_load_options_set_schema_file(LoadOptionsHandle o, byte[] path, out IntPtr error);

        // plugins
        [DllImport(Lib)] public static extern Status fidius_host_load(HostHandle host, byte[] name, LoadOptionsHandle options, out PluginHandle plugin, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_load_path(HostHandle host, byte[] path, byte[] name, LoadOptionsHandle options, out PluginHandle plugin, out IntPtr error);
        [DllImport(Lib)] public static extern void fidius_plugin_free(IntPtr plugin);
        [DllImport(Lib)] public static extern IntPtr fidius_plugin_get_info(PluginHandle plugin);
        [DllImport(Lib)] public static extern Status fidius_plugin_call(PluginHandle plugin, uint method, uint format, byte[] input, UIntPtr len, out FidiusBytes output, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_plugin_call_cancellable(PluginHandle plugin, uint method, uint format, byte[] input, UIntPtr len, CancelHandle cancel, out FidiusBytes output, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_plugin_describe(PluginHandle plugin, out FidiusBytes description, out IntPtr error);
        [DllImport(Lib)] public static extern void fidius_bytes_free(ref FidiusBytes bytes);
        [DllImport(Lib)] public static extern Status fidius_plugin_method_metadata_count(PluginHandle plugin, uint method, out UIntPtr count, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_plugin_method_metadata_get(PluginHandle plugin, uint method, UIntPtr index, out IntPtr key, out IntPtr value, out IntPtr error);
        [DllImport(Lib)] public static extern UIntPtr fidius_plugin_trait_metadata_count(PluginHandle plugin);
        [DllImport(Lib)] public static extern Status fidius_plugin_trait_metadata_get(PluginHandle plugin, UIntPtr index, out IntPtr key, out IntPtr value, out IntPtr error);
        [DllImport(Lib)] public static extern IntPtr fidius_plugin_method_name(PluginHandle plugin, uint method);
        [DllImport(Lib)] public static extern Status fidius_plugin_method_index(PluginHandle plugin, byte[] name, out uint index, out IntPtr error);
        [DllImport(Lib)] public static extern UIntPtr fidius_plugin_warning_count(PluginHandle plugin);
        [DllImport(Lib)] public static extern IntPtr fidius_plugin_warning(PluginHandle plugin, UIntPtr index);

        // streams
        [DllImport(Lib)] public static extern Status fidius_plugin_stream(PluginHandle plugin, uint method, uint format, byte[] input, UIntPtr len, StreamSourceFn source, IntPtr userData, DestroyFn destroy, out StreamHandle stream, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_plugin_call_streaming(PluginHandle plugin, uint method, uint format, byte[] input, UIntPtr len, StreamSourceFn source, IntPtr userData, DestroyFn destroy, out FidiusBytes output, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_stream_next(StreamHandle stream, out FidiusBytes item, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_stream_cancel(StreamHandle stream, out IntPtr error);
        [DllImport(Lib)] public static extern void fidius_stream_free(IntPtr stream);

        // cancel tokens
        [DllImport(Lib)] public static extern CancelHandle fidius_cancel_new();
        [DllImport(Lib)] public static extern void fidius_cancel_trigger(CancelHandle cancel);
        [DllImport(Lib)] [return: MarshalAs(UnmanagedType.U1)] public static extern bool fidius_cancel_is_triggered(CancelHandle cancel);
        [DllImport(Lib)] public static extern void fidius_cancel_free(IntPtr cancel);

        // egress
        [DllImport(Lib)] public static extern Status fidius_egress_policy_new(EgressFn callback, IntPtr userData, DestroyFn destroy, out EgressPolicyHandle policy, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_egress_policy_set_allow_private_ranges(EgressPolicyHandle policy, [MarshalAs(UnmanagedType.U1)] bool allow, out IntPtr error);
        [DllImport(Lib)] public static extern void fidius_egress_policy_free(IntPtr policy);
        [DllImport(Lib)] public static extern Status fidius_egress_policy_set_socket_callback(EgressPolicyHandle policy, SocketFn callback, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_egress_policy_set_response_callback(EgressPolicyHandle policy, ResponseFn callback, out IntPtr error);
        [DllImport(Lib)] public static extern uint fidius_socket_request_use(IntPtr request);
        [DllImport(Lib)] public static extern IntPtr fidius_socket_request_host(IntPtr request);
        [DllImport(Lib)] public static extern IntPtr fidius_socket_request_address(IntPtr request);
        [DllImport(Lib)] public static extern ushort fidius_socket_request_port(IntPtr request);
        [DllImport(Lib)] public static extern IntPtr fidius_socket_request_plugin(IntPtr request);
        [DllImport(Lib)] public static extern Status fidius_socket_request_set_deny_reason(IntPtr request, byte[] reason, out IntPtr error);
        [DllImport(Lib)] public static extern ushort fidius_http_response_status(IntPtr response);
        [DllImport(Lib)] [return: MarshalAs(UnmanagedType.U1)] public static extern bool fidius_http_response_retry_available(IntPtr response);
        [DllImport(Lib)] public static extern UIntPtr fidius_http_response_header_count(IntPtr response);
        [DllImport(Lib)] public static extern Status fidius_http_response_header(IntPtr response, UIntPtr index, out IntPtr name, out IntPtr value, out UIntPtr valueLen, out IntPtr error);

        // host functions
        [DllImport(Lib)] public static extern Status fidius_host_interface_new(byte[] name, ulong hash, uint version, uint fnCount, HostFn callback, IntPtr userData, DestroyFn destroy, out HostInterfaceHandle iface, out IntPtr error);
        [DllImport(Lib)] public static extern void fidius_host_interface_free(IntPtr iface);
        [DllImport(Lib)] public static extern Status fidius_host_builder_add_host_interface(HostBuilderHandle b, HostInterfaceHandle iface, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_load_options_add_host_interface(LoadOptionsHandle o, HostInterfaceHandle iface, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_call_set_output(IntPtr call, byte[] output, UIntPtr len, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_call_set_error(IntPtr call, byte[] code, byte[] message, byte[] details, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_host_call_set_failure(IntPtr call, byte[] message, out IntPtr error);
        [DllImport(Lib)] public static extern IntPtr fidius_http_request_method(IntPtr request);
        [DllImport(Lib)] public static extern IntPtr fidius_http_request_scheme(IntPtr request);
        [DllImport(Lib)] public static extern IntPtr fidius_http_request_authority(IntPtr request);
        [DllImport(Lib)] public static extern IntPtr fidius_http_request_host(IntPtr request);
        [DllImport(Lib)] public static extern ushort fidius_http_request_port(IntPtr request);
        [DllImport(Lib)] public static extern UIntPtr fidius_http_request_address_count(IntPtr request);
        [DllImport(Lib)] public static extern IntPtr fidius_http_request_address(IntPtr request, UIntPtr index);
        [DllImport(Lib)] public static extern IntPtr fidius_http_request_path_and_query(IntPtr request);
        [DllImport(Lib)] public static extern IntPtr fidius_http_request_plugin(IntPtr request);
        [DllImport(Lib)] public static extern UIntPtr fidius_http_request_header_count(IntPtr request);
        [DllImport(Lib)] public static extern Status fidius_http_request_header(IntPtr request, UIntPtr index, out IntPtr name, out IntPtr value, out UIntPtr valueLen, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_http_request_set_header(IntPtr request, byte[] name, byte[] value, UIntPtr len, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_http_request_add_header(IntPtr request, byte[] name, byte[] value, UIntPtr len, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_http_request_remove_header(IntPtr request, byte[] name, out IntPtr error);
        [DllImport(Lib)] public static extern Status fidius_http_request_set_deny_reason(IntPtr request, byte[] reason, out IntPtr error);

        // --- marshalling helpers

        /// <summary>A NUL-terminated UTF-8 copy of s (null stays null).</summary>
        public static byte[] Utf8z(string s)
        {
            if (s == null) return null;
            byte[] bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
            return bytes;
        }

        /// <summary>A borrowed NUL-terminated UTF-8 string, copied (NULL gives null).</summary>
        public static string Str(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            byte[] bytes = new byte[n];
            Marshal.Copy(p, bytes, 0, n);
            return Encoding.UTF8.GetString(bytes);
        }

        /// <summary>Throw the exception for a failed status, releasing the error object.</summary>
        public static void Check(Status status, IntPtr error)
        {
            if (status == Status.Ok)
            {
                if (error != IntPtr.Zero) fidius_error_free(error);
                return;
            }
            throw TakeException(status, error);
        }

        public static FidiusException TakeException(Status status, IntPtr error)
        {
            if (error == IntPtr.Zero)
                return new FidiusException(status, StatusName(status));
            try
            {
                string message = Str(fidius_error_message(error));
                string code = Str(fidius_error_plugin_code(error));
                if (code != null)
                    return new PluginException(message, code, Str(fidius_error_plugin_message(error)),
                                               Str(fidius_error_plugin_details(error)));
                return new FidiusException(fidius_error_status(error), message);
            }
            finally
            {
                fidius_error_free(error);
            }
        }

        public static string StatusName(Status status) { return Str(fidius_status_name((uint)status)); }

        /// <summary>The largest output copied into a byte[] (its length is an int).</summary>
        internal const long MaxManagedBytes = int.MaxValue;

        /// <summary>Copy a libfidius buffer into a byte[] and free it. The native buffer is
        /// freed on every path, also when it is too long for a byte[] (2 GiB or more):
        /// that throws FidiusException(Status.BufferTooSmall) instead of leaking or truncating.</summary>
        public static byte[] TakeBytes(ref FidiusBytes bytes)
        {
            try
            {
                ulong len = bytes.Len.ToUInt64();
                if (len > (ulong)MaxManagedBytes)
                    throw new FidiusException(Status.BufferTooSmall,
                        "output of " + len + " bytes is larger than a .NET byte[] can hold (" + MaxManagedBytes + ")");
                int n = (int)len;
                byte[] managed = new byte[n];
                if (n > 0) Marshal.Copy(bytes.Data, managed, 0, n);
                return managed;
            }
            finally
            {
                fidius_bytes_free(ref bytes);
            }
        }

        /// <summary>Run f with the handle referenced, so borrowed pointers stay valid while read.</summary>
        public static T With<T>(SafeHandle handle, Func<T> f)
        {
            bool added = false;
            try
            {
                handle.DangerousAddRef(ref added);
                return f();
            }
            finally
            {
                if (added) handle.DangerousRelease();
            }
        }

        // --- callbacks: the delegates libfidius calls live in static fields
        // (never collected); each registration's managed state is kept alive
        // by a GCHandle whose IntPtr is the C user_data, freed by Destroy.

        public static readonly EgressFn EgressThunk = OnEgress;
        public static readonly SocketFn SocketThunk = OnSocket;
        public static readonly ResponseFn ResponseThunk = OnResponse;
        public static readonly LogFn LogThunk = OnLog;
        public static readonly DestroyFn DestroyThunk = OnDestroy;
        public static readonly HostFn HostFnThunk = OnHostFn;
        public static readonly StreamSourceFn SourceThunk = OnSource;
        public static readonly DestroyFn SourceDestroyThunk = OnSourceDestroy;

        static int liveCallbacks;

        /// <summary>Tests: register the log callback as NULL, so libfidius refuses it.</summary>
        internal static bool FailLogRegistration = false;

        /// <summary>Managed callbacks libfidius still references (for tests).</summary>
        internal static int LiveCallbacks { get { return Volatile.Read(ref liveCallbacks); } }

        public static IntPtr Pin(object state)
        {
            Interlocked.Increment(ref liveCallbacks);
            return GCHandle.ToIntPtr(GCHandle.Alloc(state));
        }

        public static void Unpin(IntPtr userData)
        {
            GCHandle.FromIntPtr(userData).Free();
            Interlocked.Decrement(ref liveCallbacks);
        }

        static void OnDestroy(IntPtr userData)
        {
            try { Unpin(userData); } catch { /* never unwind into libfidius */ }
        }

        static uint OnEgress(IntPtr userData, IntPtr request)
        {
            HttpRequest req = new HttpRequest(request);
            try
            {
                EgressCallback callback = ((PolicyHooks)GCHandle.FromIntPtr(userData).Target).Egress;
                return (uint)callback(req);
            }
            catch (Exception e)
            {
                try { req.SetDenyReason("egress policy threw " + e.GetType().Name + ": " + e.Message); } catch { }
                return (uint)EgressVerdict.Deny;
            }
            finally
            {
                req.Invalidate();
            }
        }

        static uint OnSocket(IntPtr userData, IntPtr request)
        {
            SocketRequest req = new SocketRequest(request);
            try
            {
                SocketCallback callback = ((PolicyHooks)GCHandle.FromIntPtr(userData).Target).Socket;
                return callback == null ? (uint)EgressVerdict.Deny : (uint)callback(req);
            }
            catch (Exception e)
            {
                try { req.SetDenyReason("socket policy threw " + e.GetType().Name + ": " + e.Message); } catch { }
                return (uint)EgressVerdict.Deny;
            }
            finally
            {
                req.Invalidate();
            }
        }

        static uint OnResponse(IntPtr userData, IntPtr request, IntPtr response)
        {
            HttpRequest req = new HttpRequest(request);
            HttpResponse resp = new HttpResponse(response);
            try
            {
                ResponseCallback callback = ((PolicyHooks)GCHandle.FromIntPtr(userData).Target).Response;
                return callback == null ? (uint)ResponseDirective.Forward : (uint)callback(req, resp);
            }
            catch
            {
                return (uint)ResponseDirective.Forward;
            }
            finally
            {
                req.Invalidate();
                resp.Invalidate();
            }
        }

        /// <summary>A host function call: the delegate gets a copy of the input; its answer (or
        /// exception) is handed to libfidius. Nothing escapes into native code.</summary>
        static void OnHostFn(IntPtr userData, uint index, IntPtr input, UIntPtr inputLen, IntPtr call)
        {
            try
            {
                byte[] output;
                try
                {
                    HostFunction function = (HostFunction)GCHandle.FromIntPtr(userData).Target;
                    ulong len = inputLen.ToUInt64();
                    if (len > (ulong)MaxManagedBytes)
                        throw new FidiusException(Status.BufferTooSmall,
                            "host function input of " + len + " bytes is larger than a .NET byte[] can hold");
                    byte[] args = new byte[(int)len];
                    if (len > 0) Marshal.Copy(input, args, 0, (int)len);
                    output = function(index, args);
                }
                catch (PluginException e)
                {
                    IntPtr err;
                    Status st = fidius_host_call_set_error(call, Utf8z(e.Code ?? ""), Utf8z(e.PluginMessage ?? ""), Utf8z(e.Details), out err);
                    if (err != IntPtr.Zero) fidius_error_free(err);
                    if (st != Status.Ok)
                        HostCallFail(call, "host function threw PluginException " + e.Code + " (not passed on: " + StatusName(st) + ")");
                    return;
                }
                catch (Exception e)
                {
                    HostCallFail(call, "host function threw " + e.GetType().Name + ": " + e.Message);
                    return;
                }
                if (output != null && output.Length > 0)
                {
                    IntPtr err;
                    Status st = fidius_host_call_set_output(call, output, (UIntPtr)output.Length, out err);
                    if (err != IntPtr.Zero) fidius_error_free(err);
                    if (st != Status.Ok) HostCallFail(call, "host function output refused: " + StatusName(st));
                }
            }
            catch { /* never unwind into libfidius */ }
        }

        static void HostCallFail(IntPtr call, string message)
        {
            IntPtr err;
            fidius_host_call_set_failure(call, Utf8z(message), out err);
            if (err != IntPtr.Zero) fidius_error_free(err);
        }

        /// <summary>One item for a plugin's input stream, from the ItemFeed behind userData. The
        /// feed catches what the caller's IEnumerable throws (kept for the exception the call
        /// raises) and answers -1; this catch is the last guard: nothing unwinds into libfidius.</summary>
        static int OnSource(IntPtr userData, IntPtr item, IntPtr itemLen)
        {
            try { return ((ItemFeed)GCHandle.FromIntPtr(userData).Target).Next(item, itemLen); }
            catch { return ItemFeed.Broken; }
        }

        /// <summary>libfidius is done with the source (its input ended, the call returned, the
        /// stream ended or was freed, or the start failed): dispose the enumerator, unpin.</summary>
        static void OnSourceDestroy(IntPtr userData)
        {
            try { ((ItemFeed)GCHandle.FromIntPtr(userData).Target).Release(); }
            catch { /* never unwind into libfidius */ }
        }

        static void OnLog(IntPtr userData, uint level, IntPtr message)
        {
            try
            {
                Action<int, string> log = (Action<int, string>)GCHandle.FromIntPtr(userData).Target;
                log((int)level, Str(message));
            }
            catch { /* never unwind into libfidius */ }
        }
    }

    // ---------------------------------------------------------------- public API

    public static class Library
    {
        /// <summary>The loaded libfidius' version, "MAJOR.MINOR.PATCH".</summary>
        public static string Version { get { return Native.Str(Native.fidius_version()); } }

        /// <summary>libfidius' description of a status ("plugin error", ...).</summary>
        public static string StatusName(Status status) { return Native.StatusName(status); }

        /// <summary>The libfidius version this binding was written for: include/fidius.h's
        /// FIDIUS_VERSION_STRING (bindings/check_drift.py fails when they differ).</summary>
        public const string BindingVersion = "0.1.0";

        /// <summary>Why a libfidius of version <paramref name="library"/> cannot be used by a
        /// binding written for <paramref name="binding"/> (both "MAJOR.MINOR.PATCH"; a semver
        /// pre-release or build suffix is ignored), or null when it can: same MAJOR and, while
        /// MAJOR is 0, same MINOR (before 1.0 a minor release may change the C structs and
        /// functions); the PATCH may differ either way.</summary>
        public static string VersionMismatch(string library, string binding)
        {
            int[] lib = ParseVersion(library), bind = ParseVersion(binding);
            if (lib == null)
                return "library version \"" + library + "\" is not MAJOR.MINOR.PATCH";
            if (bind == null)
                return "binding version \"" + binding + "\" is not MAJOR.MINOR.PATCH";
            if (lib[0] != bind[0])
                return "major versions differ (" + lib[0] + ", " + bind[0] + ")";
            if (lib[0] == 0 && lib[1] != bind[1])
                return "minor versions differ (" + lib[1] + ", " + bind[1] + ") before 1.0";
            return null;
        }

        /// <summary>Throws LibraryVersionException unless the libfidius loaded is compatible with
        /// BindingVersion. The Host, EgressPolicy and HostInterface constructors call it first;
        /// any other use of a mismatched library (Library.Version, ...) throws a
        /// TypeInitializationException wrapping the LibraryVersionException, as the check runs
        /// when the native class is first used. (A missing library throws DllNotFoundException
        /// as usual.)</summary>
        public static void CheckVersion()
        {
            try
            {
                RuntimeHelpers.RunClassConstructor(typeof(Native).TypeHandle);
            }
            catch (TypeInitializationException e)
            {
                LibraryVersionException mismatch = e.InnerException as LibraryVersionException;
                if (mismatch == null)
                    throw;
                throw new LibraryVersionException(mismatch.LibraryVersion, mismatch.BindingVersion, mismatch.LibraryPath, mismatch.Reason);
            }
        }

        static readonly Regex VersionPattern = new Regex(@"^([0-9]+)\.([0-9]+)\.([0-9]+)(?:[-+][0-9A-Za-z.+-]+)?$");

        static int[] ParseVersion(string version)
        {
            Match m = VersionPattern.Match(version ?? "");
            if (!m.Success || m.Value != version)
                return null;
            int[] parts = new int[3];
            for (int i = 0; i < 3; i++)
                if (!int.TryParse(m.Groups[i + 1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out parts[i]))
                    return null;
            return parts;
        }

        /// <summary>Native's static constructor: null when the library loaded is compatible, else
        /// the exception to refuse it with. A library that cannot be found is left to the call
        /// that needs it (DllNotFoundException, as without this check).</summary>
        internal static LibraryVersionException CheckLoadedVersion()
        {
            string found;
            try
            {
                found = Native.Str(Native.fidius_version()) ?? "";
            }
            catch (DllNotFoundException)
            {
                return null;
            }
            catch (EntryPointNotFoundException)
            {
                return new LibraryVersionException("(none)", BindingVersion, LoadedLibraryPath(),
                                                   "the library has no fidius_version: not libfidius");
            }
            string reason = VersionMismatch(found, BindingVersion);
            return reason == null ? null : new LibraryVersionException(found, BindingVersion, LoadedLibraryPath(), reason);
        }

        /// <summary>The libfidius file mapped into this process (Linux: /proc/self/maps), or null.</summary>
        static string LoadedLibraryPath()
        {
            try
            {
                foreach (string line in System.IO.File.ReadAllLines("/proc/self/maps"))
                {
                    int slash = line.IndexOf('/');
                    if (slash < 0)
                        continue;
                    string path = line.Substring(slash);
                    if (System.IO.Path.GetFileName(path).StartsWith("libfidius", StringComparison.Ordinal))
                        return path;
                }
            }
            catch (Exception)
            {
                // not Linux, or /proc unavailable: the message goes without the path
            }
            return null;
        }
    }

    /// <summary>What a plugin is (a copy of a fidius_plugin_info).</summary>
    public sealed class PluginInfo
    {
        public string Name { get; private set; }
        public string InterfaceName { get; private set; }
        /// <summary>0 where not known (packages before loading).</summary>
        public ulong InterfaceHash { get; private set; }
        public uint InterfaceVersion { get; private set; }
        public PluginRuntime Runtime { get; private set; }
        public BufferStrategy BufferStrategy { get; private set; }
        public ulong Capabilities { get; private set; }
        /// <summary>0 where not known (packages before loading).</summary>
        public uint MethodCount { get; private set; }
        /// <summary>400 or 500 for native plugins, 0 for packages.</summary>
        public uint AbiVersion { get; private set; }
        public string Path { get; private set; }

        internal PluginInfo(IntPtr info)
        {
            Name = Native.Str(Native.fidius_plugin_info_name(info));
            InterfaceName = Native.Str(Native.fidius_plugin_info_interface_name(info));
            InterfaceHash = Native.fidius_plugin_info_interface_hash(info);
            InterfaceVersion = Native.fidius_plugin_info_interface_version(info);
            Runtime = Native.fidius_plugin_info_runtime(info);
            BufferStrategy = Native.fidius_plugin_info_buffer_strategy(info);
            Capabilities = Native.fidius_plugin_info_capabilities(info);
            MethodCount = Native.fidius_plugin_info_method_count(info);
            AbiVersion = Native.fidius_plugin_info_abi_version(info);
            Path = Native.Str(Native.fidius_plugin_info_path(info));
        }

        public override string ToString()
        {
            return string.Format("{0} ({1}, {2}, ABI {3})", Name, InterfaceName, Runtime, AbiVersion);
        }
    }

    /// <summary>A file or directory discovery passed over, and why.</summary>
    public sealed class SkippedEntry
    {
        public string Path { get; internal set; }
        /// <summary>The plugin's name when the file got far enough to tell, else null.</summary>
        public string Plugin { get; internal set; }
        public Status Status { get; internal set; }
        public string Reason { get; internal set; }
    }

    /// <summary>What a scan of the search paths found.</summary>
    public sealed class Discovery
    {
        public IList<PluginInfo> Plugins { get; internal set; }
        public IList<SkippedEntry> Skipped { get; internal set; }
    }

    /// <summary>A host's settings (the C API's fidius_host_builder).</summary>
    public sealed class HostConfig
    {
        public List<string> SearchPaths = new List<string>();
        public LoadPolicy LoadPolicy = LoadPolicy.Lenient;
        public bool RequireSignature;
        public List<byte[]> TrustedKeys = new List<byte[]>();
        public List<string> TrustedKeyFiles = new List<string>();
        /// <summary>Deserialize a package's .cwasm even when no trusted key's signature covers it.
        /// Off by default: such a .cwasm is ignored (with a plugin warning) and the .wasm compiled.
        /// Only when whoever can write the search paths is as trusted as the host itself.</summary>
        public bool TrustPrecompiled;
        /// <summary>The capabilities packages may have: names ("stdout", "env:HOME") or patterns where
        /// * matches any run of characters ("env:LOG_*"). Empty (the default) allows everything but
        /// env:*, args, network and fs:*; any pattern replaces that default ("@default" stands for it:
        /// { "@default", "env:LOG_*" } extends it). A package asking for more
        /// fails to load with Status.Capability; an empty pattern is Status.InvalidArgument.</summary>
        public List<string> AllowCapabilities = new List<string>();
        /// <summary>Interface schemas: WIT text (Schemas) or files holding it (SchemaFiles, read when the
        /// host is built, at most 1 MiB each), as `fidius wit` or fidius_build::emit_wit() write them.
        /// Native plugins whose interface one declares (the trait PriceEngine is the WIT interface
        /// price-engine) get method names and types from it, so they can be called by name, with JSON and
        /// Invoke, and described; unless their LoadOptions.Schema or a "&lt;library&gt;.wit" beside the
        /// library gives one. Not valid WIT: Status.InvalidArgument.</summary>
        public List<string> Schemas = new List<string>();
        public List<string> SchemaFiles = new List<string>();
        /// <summary>When not 0, required of native plugins.</summary>
        public ulong InterfaceHash;
        /// <summary>When not None, required of native plugins.</summary>
        public BufferStrategy BufferStrategy = BufferStrategy.None;
        /// <summary>The default egress policy of WASM plugins (null: no outbound HTTP).</summary>
        public EgressPolicy Egress;
        /// <summary>Host interfaces (host functions) offered to every plugin the host loads; one
        /// named like an earlier one replaces it.</summary>
        public List<HostInterface> HostInterfaces = new List<HostInterface>();
        /// <summary>Receives log lines (level 1 error, 2 warning, 3 info) on any thread, concurrently.</summary>
        public Action<int, string> Log;
        /// <summary>The Python interpreter that runs Python plugins (runtime = "python" packages): a path,
        /// or a command name looked up on the PATH; null (the default) is "python3". Each Python plugin
        /// runs in a process of its own started from it; libfidius never loads libpython, so a host that
        /// loads no Python plugin needs no Python, and a missing interpreter fails only Python loads
        /// (Status.LibraryLoad, naming it). Empty: Status.InvalidArgument when the host is built.</summary>
        public string PythonInterpreter;
        /// <summary>A persistent compilation cache for WASM components (null, the default: none): an
        /// absolute directory (made with mode 0700 when missing) where compiled components are kept as
        /// .cwasm files named by the component's SHA-256 and the engine's compatibility, so the next
        /// process loading the same component deserializes it instead of compiling it. The files are
        /// machine code that runs in the host unchecked, so the directory must belong to this user and be
        /// writable by no one else: Status.FileRefused when the host is built otherwise (and, should it
        /// change later, each load compiles without it and says so in Plugin.Warnings()); entries are read
        /// only as regular 0600 files of this user. A relative path (or "") is Status.InvalidArgument when
        /// the host is built; a directory that cannot be made, Status.Io.</summary>
        public string CompileCache;
    }

    /// <summary>Per-load settings.</summary>
    public sealed class LoadOptions
    {
        /// <summary>The bincode of the plugin's config type (Python plugins: UTF-8 JSON text, passed to the
        /// module's __fidius_configure__); null for none.</summary>
        public byte[] Config;
        /// <summary>When not 0, required of the plugin.</summary>
        public ulong InterfaceHash;
        /// <summary>Overrides the host's egress policy for this WASM plugin.</summary>
        public EgressPolicy Egress;
        /// <summary>Host interfaces (host functions) offered to this plugin, before the host's
        /// interfaces of the same name.</summary>
        public List<HostInterface> HostInterfaces = new List<HostInterface>();
        /// <summary>The component's exported interface to use (WASM).</summary>
        public string InterfaceExport;
        /// <summary>Stops WASM calls that run longer (zero: none); rounded up to milliseconds. Python plugins:
        /// per call and per stream item, by killing the runner process (the next call starts a fresh one).</summary>
        public TimeSpan Timeout = TimeSpan.Zero;
        /// <summary>Caps each WASM instance's memory, in bytes (0: 4 GiB); a Python plugin's runner
        /// process's address space (RLIMIT_AS).</summary>
        public ulong MemoryLimit;
        /// <summary>Fuel per WASM call (0: unmetered). Does not apply to Python plugins.</summary>
        public ulong Fuel;
        public bool ReuseInstance;
        /// <summary>Per WASM method name: whether it is #[wire(raw)].</summary>
        public Dictionary<string, bool> WireRaw = new Dictionary<string, bool>();
        /// <summary>Packages: when not null, exactly the capabilities this load gets, replacing the
        /// manifest's list (empty: none). Not checked against HostConfig.AllowCapabilities.</summary>
        public List<string> Grants;
        /// <summary>Native and Python plugins: the interface schema, WIT text (Schema) or a file holding it (SchemaFile,
        /// read when the load starts, at most 1 MiB); set at most one. Overrides a "&lt;library&gt;.wit" and
        /// HostConfig.Schemas; must list at least the plugin's methods (else Status.SchemaMismatch); methods
        /// beyond them are optional ones the plugin lacks (Status.NotImplemented when called). WIT cannot
        /// pin the interface hash: set InterfaceHash where it matters. Ignored for WASM plugins. A Python
        /// plugin takes the schema's method order and types (wire calls, raw methods), and every method
        /// it lists must be in the module (else Status.SchemaMismatch).</summary>
        public string Schema;
        public string SchemaFile;

        internal LoadOptionsHandle Build()
        {
            LoadOptionsHandle o = Native.fidius_load_options_new();
            if (o.IsInvalid) throw new OutOfMemoryException("fidius_load_options_new");
            try
            {
                IntPtr err;
                if (Config != null)
                    Native.Check(Native.fidius_load_options_set_config(o, Config, (UIntPtr)Config.Length, out err), err);
                if (InterfaceHash != 0)
                    Native.Check(Native.fidius_load_options_set_interface_hash(o, InterfaceHash, out err), err);
                if (Egress != null)
                    Native.Check(Native.fidius_load_options_set_egress_policy(o, Egress.Handle, out err), err);
                foreach (HostInterface hi in HostInterfaces)
                {
                    if (hi == null) throw new ArgumentNullException("HostInterfaces", "a null host interface");
                    Native.Check(Native.fidius_load_options_add_host_interface(o, hi.Handle, out err), err);
                }
                if (InterfaceExport != null)
                    Native.Check(Native.fidius_load_options_set_interface_export(o, Native.Utf8z(InterfaceExport), out err), err);
                if (Timeout > TimeSpan.Zero)
                {
                    ulong ms = (ulong)((Timeout.Ticks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond);
                    Native.Check(Native.fidius_load_options_set_timeout_ms(o, ms, out err), err);
                }
                if (MemoryLimit != 0)
                    Native.Check(Native.fidius_load_options_set_memory_limit(o, (ulong)MemoryLimit, out err), err);
                if (Fuel != 0)
                    Native.Check(Native.fidius_load_options_set_fuel(o, Fuel, out err), err);
                if (ReuseInstance)
                    Native.Check(Native.fidius_load_options_set_reuse_instance(o, true, out err), err);
                foreach (KeyValuePair<string, bool> kv in WireRaw)
                    Native.Check(Native.fidius_load_options_set_wire_raw(o, Native.Utf8z(kv.Key), kv.Value, out err), err);
                if (Grants != null)
                    SetGrants(o, Grants);
                if (Schema != null && SchemaFile != null)
                    throw new FidiusException(Status.InvalidArgument, "LoadOptions: set Schema or SchemaFile, not both");
                if (Schema != null)
                {
                    byte[] wit = Encoding.UTF8.GetBytes(Schema);
                    Native.Check(Native.fidius_load_options_set_schema(o, wit, (UIntPtr)wit.Length, out err), err);
                }
                if (SchemaFile != null)
                    Native.Check(Native.fidius_load_options_set_schema_file(o, Native.Utf8z(SchemaFile), out err), err);
                return o;
            }
            catch
            {
                o.Dispose();
                throw;
            }
        }

        // The C API takes a `const char *const *`: an array of NUL-terminated UTF-8 strings in
        // unmanaged memory, copied by libfidius before it returns.
        static void SetGrants(LoadOptionsHandle o, List<string> grants)
        {
            IntPtr[] strings = new IntPtr[grants.Count];
            try
            {
                for (int i = 0; i < strings.Length; i++)
                {
                    if (grants[i] == null) throw new ArgumentNullException("Grants", "a null capability");
                    byte[] utf8 = Native.Utf8z(grants[i]);
                    strings[i] = Marshal.AllocHGlobal(utf8.Length);
                    Marshal.Copy(utf8, 0, strings[i], utf8.Length);
                }
                IntPtr err;
                Native.Check(Native.fidius_load_options_set_grants(o, strings.Length > 0 ? strings : null, (UIntPtr)strings.Length, out err), err);
            }
            finally
            {
                foreach (IntPtr s in strings)
                    if (s != IntPtr.Zero) Marshal.FreeHGlobal(s);
            }
        }
    }

    /// <summary>Finds and loads plugins. Thread-safe. Plugins outlive the host they came from.</summary>
    public sealed class Host : IDisposable
    {
        readonly HostHandle handle;

        /// <summary>Builds a host. Throws LibraryVersionException when the libfidius loaded is not
        /// compatible with Library.BindingVersion.</summary>
        public Host(HostConfig config)
        {
            Library.CheckVersion();
            using (HostBuilderHandle b = Native.fidius_host_builder_new())
            {
                if (b.IsInvalid) throw new OutOfMemoryException("fidius_host_builder_new");
                IntPtr err;
                foreach (string p in config.SearchPaths)
                    Native.Check(Native.fidius_host_builder_add_search_path(b, Native.Utf8z(p), out err), err);
                if (config.LoadPolicy != LoadPolicy.Lenient)
                    Native.Check(Native.fidius_host_builder_set_load_policy(b, (uint)config.LoadPolicy, out err), err);
                if (config.RequireSignature)
                    Native.Check(Native.fidius_host_builder_set_require_signature(b, true, out err), err);
                if (config.TrustPrecompiled)
                    Native.Check(Native.fidius_host_builder_set_trust_precompiled(b, true, out err), err);
                if (config.PythonInterpreter != null)
                    Native.Check(Native.fidius_host_builder_set_python_interpreter(b, Native.Utf8z(config.PythonInterpreter), out err), err);
                if (config.CompileCache != null)
                    Native.Check(Native.fidius_host_builder_set_compile_cache(b, Native.Utf8z(config.CompileCache), out err), err);
                foreach (string pattern in config.AllowCapabilities)
                {
                    if (pattern == null) throw new ArgumentNullException("AllowCapabilities", "a null capability pattern");
                    Native.Check(Native.fidius_host_builder_allow_capability(b, Native.Utf8z(pattern), out err), err);
                }
                foreach (byte[] k in config.TrustedKeys)
                    Native.Check(Native.fidius_host_builder_add_trusted_key(b, k, (UIntPtr)k.Length, out err), err);
                foreach (string f in config.TrustedKeyFiles)
                    Native.Check(Native.fidius_host_builder_add_trusted_key_file(b, Native.Utf8z(f), out err), err);
                foreach (string schema in config.Schemas)
                {
                    if (schema == null) throw new ArgumentNullException("Schemas", "a null schema");
                    byte[] wit = Encoding.UTF8.GetBytes(schema);
                    Native.Check(Native.fidius_host_builder_add_schema(b, wit, (UIntPtr)wit.Length, out err), err);
                }
                foreach (string f in config.SchemaFiles)
                    Native.Check(Native.fidius_host_builder_add_schema_file(b, Native.Utf8z(f), out err), err);
                if (config.InterfaceHash != 0)
                    Native.Check(Native.fidius_host_builder_set_interface_hash(b, config.InterfaceHash, out err), err);
                if (config.BufferStrategy != BufferStrategy.None)
                    Native.Check(Native.fidius_host_builder_set_buffer_strategy(b, (uint)config.BufferStrategy, out err), err);
                if (config.Egress != null)
                    Native.Check(Native.fidius_host_builder_set_egress_policy(b, config.Egress.Handle, out err), err);
                foreach (HostInterface hi in config.HostInterfaces)
                {
                    if (hi == null) throw new ArgumentNullException("HostInterfaces", "a null host interface");
                    Native.Check(Native.fidius_host_builder_add_host_interface(b, hi.Handle, out err), err);
                }
                if (config.Log != null)
                {
                    IntPtr state = Native.Pin(config.Log);
                    Status st = Native.fidius_host_builder_set_log_callback(
                        b, Native.FailLogRegistration ? null : Native.LogThunk, state, Native.DestroyThunk, out err);
                    if (st != Status.Ok)
                        Native.Unpin(state); // documented: on failure destroy is not called
                    Native.Check(st, err);
                }
                Native.Check(Native.fidius_host_builder_build(b, out handle, out err), err);
            }
        }

        /// <summary>Scan the search paths; problems with single files are entries in Skipped.</summary>
        public Discovery Discover()
        {
            DiscoveryHandle d;
            IntPtr err;
            Native.Check(Native.fidius_host_discover(handle, out d, out err), err);
            using (d)
            {
                List<PluginInfo> plugins = new List<PluginInfo>();
                ulong n = Native.fidius_discovery_plugin_count(d).ToUInt64();
                for (ulong i = 0; i < n; i++)
                    plugins.Add(new PluginInfo(Native.fidius_discovery_plugin(d, (UIntPtr)i)));
                List<SkippedEntry> skipped = new List<SkippedEntry>();
                n = Native.fidius_discovery_skipped_count(d).ToUInt64();
                for (ulong i = 0; i < n; i++)
                {
                    UIntPtr idx = (UIntPtr)i;
                    skipped.Add(new SkippedEntry
                    {
                        Path = Native.Str(Native.fidius_discovery_skipped_path(d, idx)),
                        Plugin = Native.Str(Native.fidius_discovery_skipped_plugin(d, idx)),
                        Status = Native.fidius_discovery_skipped_status(d, idx),
                        Reason = Native.Str(Native.fidius_discovery_skipped_reason(d, idx)),
                    });
                }
                return new Discovery { Plugins = plugins.AsReadOnly(), Skipped = skipped.AsReadOnly() };
            }
        }

        /// <summary>Load the plugin named name (native type name or package name).</summary>
        public Plugin Load(string name, LoadOptions options = null)
        {
            using (LoadOptionsHandle o = options != null ? options.Build() : new LoadOptionsHandle())
            {
                PluginHandle p;
                IntPtr err;
                Native.Check(Native.fidius_host_load(handle, Native.Utf8z(name), o, out p, out err), err);
                return new Plugin(p);
            }
        }

        /// <summary>Load a native plugin from a library file; name (may be null) picks one of several.</summary>
        public Plugin LoadPath(string path, string name = null, LoadOptions options = null)
        {
            using (LoadOptionsHandle o = options != null ? options.Build() : new LoadOptionsHandle())
            {
                PluginHandle p;
                IntPtr err;
                Native.Check(Native.fidius_host_load_path(handle, Native.Utf8z(path), Native.Utf8z(name), o, out p, out err), err);
                return new Plugin(p);
            }
        }

        /// <summary>Load the package in a .fid archive (tar + bzip2, as `fidius package pack` writes it),
        /// extracted into memory: nothing is written to disk.</summary>
        public Plugin LoadFid(string path, LoadOptions options = null)
        {
            using (LoadOptionsHandle o = options != null ? options.Build() : new LoadOptionsHandle())
            {
                PluginHandle p;
                IntPtr err;
                Native.Check(Native.fidius_host_load_fid(handle, Native.Utf8z(path), o, out p, out err), err);
                return new Plugin(p);
            }
        }

        /// <summary>Extract the package in a .fid archive into destDir (created if missing), as
        /// destDir/&lt;name&gt;-&lt;version&gt; (replacing a directory of that name); returns its path.</summary>
        public string UnpackFid(string path, string destDir)
        {
            FidiusBytes output;
            IntPtr err;
            Native.Check(Native.fidius_host_unpack_fid(handle, Native.Utf8z(path), Native.Utf8z(destDir), out output, out err), err);
            return Encoding.UTF8.GetString(Native.TakeBytes(ref output));
        }

        /// <summary>Ahead-of-time compile component bytes into .cwasm bytes.</summary>
        public byte[] PrecompileComponent(byte[] component)
        {
            FidiusBytes output;
            IntPtr err;
            Native.Check(Native.fidius_host_precompile_component(handle, component, (UIntPtr)component.Length, out output, out err), err);
            return Native.TakeBytes(ref output);
        }

        public void Dispose() { handle.Dispose(); }
    }

    /// <summary>A loaded plugin instance. Thread-safe.</summary>
    public sealed class Plugin : IDisposable
    {
        readonly PluginHandle handle;

        /// <summary>What the plugin is (copied at load; still readable after Dispose).</summary>
        public PluginInfo Info { get; private set; }

        internal Plugin(PluginHandle handle)
        {
            this.handle = handle;
            Info = Native.With(handle, () => new PluginInfo(Native.fidius_plugin_get_info(handle)));
        }

        /// <summary>Call method (its index, in declaration order) with input encoded as format.</summary>
        public byte[] Call(uint method, Format format, byte[] input)
        {
            if (input == null) input = new byte[0];
            FidiusBytes output;
            IntPtr err;
            Native.Check(Native.fidius_plugin_call(handle, method, (uint)format, input, (UIntPtr)input.Length, out output, out err), err);
            return Native.TakeBytes(ref output);
        }

        /// <summary>Call, stopped with FidiusException(Status.Cancelled) once cancellationToken is cancelled:
        /// a WASM call wherever it is (guest code within about 5 ms, a call blocked in a host function such
        /// as a sleep or a read at once; the plugin serves the next call), a native call only if the token
        /// was cancelled before it started (native code cannot be interrupted: a running one finishes).
        /// A Python call wherever it is, within about 20 ms: its runner process is stopped (the plugin's
        /// open streams end with it) and the next call starts a fresh one.
        /// The token's registration triggers a libfidius cancel token for the duration of the call.</summary>
        public byte[] Call(uint method, Format format, byte[] input, CancellationToken cancellationToken)
        {
            if (!cancellationToken.CanBeCanceled) return Call(method, format, input);
            if (input == null) input = new byte[0];
            using (CancelHandle token = Native.fidius_cancel_new())
            {
                if (token.IsInvalid) throw new OutOfMemoryException("fidius_cancel_new");
                FidiusBytes output;
                IntPtr err;
                Status st;
                // Register runs the callback at once when the token is already cancelled, so even a
                // native call sees it; disposing the registration waits for a callback in progress.
                using (cancellationToken.Register(Trigger, token))
                    st = Native.fidius_plugin_call_cancellable(handle, method, (uint)format, input, (UIntPtr)input.Length, token, out output, out err);
                Native.Check(st, err);
                return Native.TakeBytes(ref output);
            }
        }

        static void Trigger(object token)
        {
            try { Native.fidius_cancel_trigger((CancelHandle)token); }
            catch (ObjectDisposedException) { /* the call is over */ }
        }

        /// <summary>Call with Fidius wire bytes (the bincode tuple of the arguments).</summary>
        public byte[] CallWire(uint method, byte[] input) { return Call(method, Format.Wire, input); }

        /// <summary>CallWire, stopped when cancellationToken is cancelled (see Call).</summary>
        public byte[] CallWire(uint method, byte[] input, CancellationToken cancellationToken)
        {
            return Call(method, Format.Wire, input, cancellationToken);
        }

        /// <summary>Call with a JSON array (or object) of the arguments; returns the JSON of the result.
        /// WASM and Python plugins, and native plugins with an interface schema (else Status.Unsupported).</summary>
        public string CallJson(uint method, string json)
        {
            return CallJson(method, json, CancellationToken.None);
        }

        /// <summary>CallJson, stopped when cancellationToken is cancelled (see Call).</summary>
        public string CallJson(uint method, string json, CancellationToken cancellationToken)
        {
            return Encoding.UTF8.GetString(Call(method, Format.Json, Encoding.UTF8.GetBytes(json), cancellationToken));
        }

        /// <summary>Call the method named name (kebab- or snake_case) with .NET values, through JSON, and
        /// convert its result to T (object: the parsed JSON as Json.Parse gives it). WASM and Python plugins,
        /// and native plugins with an interface schema. Arguments are written by Json.Serialize: records from objects
        /// (public properties and fields, names in snake_case: UnitCents is unit_cents) or dictionaries,
        /// variants as {"Case": payload} dictionaries or "Case" strings (or enum values), option none as null,
        /// a map (list&lt;tuple&lt;K, V&gt;&gt;) as KeyValuePairs or [key, value] arrays, list&lt;u8&gt; as
        /// a byte[]. The result is converted by Json.Deserialize (a map into a Dictionary from its pairs;
        /// 64-bit integers, which come back as decimal strings beyond 2^53, into long or ulong).
        /// A plugin's own error throws PluginException; a failed call FidiusException.</summary>
        public T Invoke<T>(string name, params object[] args)
        {
            return Invoke<T>(name, CancellationToken.None, args);
        }

        /// <summary>Invoke, stopped when cancellationToken is cancelled (see Call).</summary>
        public T Invoke<T>(string name, CancellationToken cancellationToken, params object[] args)
        {
            string input = Json.Serialize(args ?? new object[0]);
            string output = CallJson(MethodIndex(name), input, cancellationToken);
            return Json.Deserialize<T>(output);
        }

        // ------------------------------------------------------------ streams

        /// <summary>Open method (`fn m(..) -&gt; Stream&lt;T&gt;`) as an output stream: input holds its
        /// arguments encoded as format, and its items come out in format too (wire bytes, the bincode
        /// of one item; or the JSON text of each, UTF-8, where the item type is known: WASM and Python
        /// plugins and native plugins with an interface schema, else Status.Unsupported; wire items from
        /// a Python plugin need its schema). With items, a
        /// bidirectional stream (`fn m(.., Stream&lt;In&gt;) -&gt; Stream&lt;Out&gt;`) whose input the items
        /// feed, pulled as the plugin needs them on the thread that pulls the stream; each item is
        /// the wire bytes of one In, whatever the format (the input stream is in no schema); for a
        /// Python plugin, the JSON text of one In.
        /// Dispose the stream to cancel it early (the plugin's producer is dropped). A method that
        /// does not return a stream is refused with Status.Unsupported where that is known (WASM,
        /// a native schema); on a native plugin without a schema, the wrong kind is undefined
        /// behaviour, as with any mismatched call. The stream may outlive this Plugin.</summary>
        public PluginStream Stream(uint method, Format format, byte[] input, IEnumerable<byte[]> items = null)
        {
            if (input == null) input = new byte[0];
            ItemFeed feed = items == null ? null : new ItemFeed(items);
            StreamHandle stream;
            IntPtr err;
            Status st;
            try
            {
                st = Native.fidius_plugin_stream(handle, method, (uint)format, input, (UIntPtr)input.Length,
                    feed == null ? null : Native.SourceThunk, feed == null ? IntPtr.Zero : feed.Pin(),
                    feed == null ? null : Native.SourceDestroyThunk, out stream, out err);
            }
            catch
            {
                // Thrown before libfidius ran (a disposed Plugin): it never took the feed.
                if (feed != null) feed.Release();
                throw;
            }
            if (st != Status.Ok)
            {
                stream.Dispose();
                throw feed == null ? Native.TakeException(st, err) : feed.TakeException(st, err);
            }
            return new PluginStream(stream, format, feed);
        }

        /// <summary>Stream with wire bytes (the bincode tuple of the arguments); items are wire bytes.</summary>
        public PluginStream StreamWire(uint method, byte[] input, IEnumerable<byte[]> items = null)
        {
            return Stream(method, Format.Wire, input, items);
        }

        /// <summary>Stream with a JSON array (or object) of the arguments; each item is the UTF-8 JSON
        /// text of one item (PluginStream.As&lt;T&gt;() converts them). Source items stay wire bytes
        /// (JSON text for a Python plugin).</summary>
        public PluginStream StreamJson(uint method, string json, IEnumerable<byte[]> items = null)
        {
            return Stream(method, Format.Json, Encoding.UTF8.GetBytes(json), items);
        }

        /// <summary>Stream the method named name (kebab- or snake_case; see MethodIndex).</summary>
        public PluginStream StreamByName(string name, Format format, byte[] input, IEnumerable<byte[]> items = null)
        {
            return Stream(MethodIndex(name), format, input, items);
        }

        /// <summary>Open the server stream named name with .NET values as its arguments, through JSON
        /// (written as for Invoke); read its items with As&lt;T&gt;(). WASM and Python plugins, and native
        /// plugins with an interface schema.</summary>
        public PluginStream InvokeStream(string name, params object[] args)
        {
            return StreamJson(MethodIndex(name), Json.Serialize(args ?? new object[0]));
        }

        /// <summary>Call client-streaming method (`fn m(.., Stream&lt;T&gt;) -&gt; R`): items feed its
        /// Stream&lt;T&gt; argument (each the wire bytes of one T, whatever the format; for a Python
        /// plugin the JSON text of one T, else Status.StreamSource), pulled on this thread while the
        /// call runs (a Python plugin's items must not call that same plugin: its calls are
        /// serialized, and the call holds it while the items are pulled, so such a call never
        /// returns); input holds its other arguments in format, and the result comes back in
        /// format, as for Call. The items' enumerator is disposed by the time this
        /// returns. If the items throw, the plugin sees its input end there and the call throws
        /// FidiusException(Status.StreamSource) with the exception as its InnerException, whatever
        /// the plugin made of its shortened input. A method that returns a stream is refused with
        /// Status.Unsupported (open it with Stream and items).</summary>
        public byte[] CallStreaming(uint method, Format format, byte[] input, IEnumerable<byte[]> items)
        {
            if (items == null) throw new ArgumentNullException("items");
            if (input == null) input = new byte[0];
            ItemFeed feed = new ItemFeed(items);
            FidiusBytes output;
            IntPtr err;
            Status st;
            try
            {
                st = Native.fidius_plugin_call_streaming(handle, method, (uint)format, input, (UIntPtr)input.Length,
                    Native.SourceThunk, feed.Pin(), Native.SourceDestroyThunk, out output, out err);
            }
            catch
            {
                feed.Release(); // thrown before libfidius ran: it never took the feed
                throw;
            }
            if (st != Status.Ok)
                throw feed.TakeException(st, err);
            return Native.TakeBytes(ref output);
        }

        /// <summary>CallStreaming with a JSON array (or object) of the other arguments; returns the
        /// JSON of the result. The items stay wire bytes (JSON text for a Python plugin).</summary>
        public string CallStreamingJson(uint method, string json, IEnumerable<byte[]> items)
        {
            return Encoding.UTF8.GetString(CallStreaming(method, Format.Json, Encoding.UTF8.GetBytes(json), items));
        }

        /// <summary>Call the client-streaming method named name with .NET values as its other
        /// arguments (through JSON, as Invoke) and items (wire bytes) feeding its stream argument;
        /// convert its result to T.</summary>
        public T InvokeStreaming<T>(string name, IEnumerable<byte[]> items, params object[] args)
        {
            string output = CallStreamingJson(MethodIndex(name), Json.Serialize(args ?? new object[0]), items);
            return Json.Deserialize<T>(output);
        }

        /// <summary>What the plugin is, as libfidius' JSON document (see Describe).</summary>
        public string DescribeJson()
        {
            FidiusBytes output;
            IntPtr err;
            Native.Check(Native.fidius_plugin_describe(handle, out output, out err), err);
            return Encoding.UTF8.GetString(Native.TakeBytes(ref output));
        }

        /// <summary>What the plugin is, parsed (Json.Parse): "name", "interface", "interface_hash" ("0x..."),
        /// "runtime" ("native" or "wasm"), "abi_version", "buffer_strategy", "capability_bits",
        /// "capabilities", "types_from", "metadata", "methods" (each with "index", "name", "params" [{"name",
        /// "type"}], "result", "returns", "fallible", "raw", "streaming" (returns a stream),
        /// "stream_item" (its item type), "optional", "implemented", "metadata") and "types" (records, variants, enums, flags). null where unknown: a native plugin
        /// without an interface schema has no method names or types.</summary>
        public IDictionary<string, object> Describe()
        {
            return (IDictionary<string, object>)Json.Parse(DescribeJson());
        }

        /// <summary>A method's index by name (kebab- or snake_case). A native plugin without an interface
        /// schema has no names (Status.MethodIndex).</summary>
        public uint MethodIndex(string name)
        {
            uint index;
            IntPtr err;
            Native.Check(Native.fidius_plugin_method_index(handle, Native.Utf8z(name), out index, out err), err);
            return index;
        }

        /// <summary>A method's name, or null (out of range, or a native plugin without a schema).</summary>
        public string MethodName(uint method)
        {
            return Native.With(handle, () => Native.Str(Native.fidius_plugin_method_name(handle, method)));
        }

        public IList<KeyValuePair<string, string>> MethodMetadata(uint method)
        {
            return Native.With(handle, () =>
            {
                UIntPtr n;
                IntPtr err;
                Native.Check(Native.fidius_plugin_method_metadata_count(handle, method, out n, out err), err);
                List<KeyValuePair<string, string>> list = new List<KeyValuePair<string, string>>();
                for (ulong i = 0; i < n.ToUInt64(); i++)
                {
                    IntPtr k, v;
                    Native.Check(Native.fidius_plugin_method_metadata_get(handle, method, (UIntPtr)i, out k, out v, out err), err);
                    list.Add(new KeyValuePair<string, string>(Native.Str(k), Native.Str(v)));
                }
                return (IList<KeyValuePair<string, string>>)list;
            });
        }

        public IList<KeyValuePair<string, string>> TraitMetadata()
        {
            return Native.With(handle, () =>
            {
                List<KeyValuePair<string, string>> list = new List<KeyValuePair<string, string>>();
                ulong n = Native.fidius_plugin_trait_metadata_count(handle).ToUInt64();
                for (ulong i = 0; i < n; i++)
                {
                    IntPtr k, v, err;
                    Native.Check(Native.fidius_plugin_trait_metadata_get(handle, (UIntPtr)i, out k, out v, out err), err);
                    list.Add(new KeyValuePair<string, string>(Native.Str(k), Native.Str(v)));
                }
                return (IList<KeyValuePair<string, string>>)list;
            });
        }

        /// <summary>Load warnings (e.g. an unusable .cwasm).</summary>
        public IList<string> Warnings()
        {
            return Native.With(handle, () =>
            {
                List<string> list = new List<string>();
                ulong n = Native.fidius_plugin_warning_count(handle).ToUInt64();
                for (ulong i = 0; i < n; i++)
                    list.Add(Native.Str(Native.fidius_plugin_warning(handle, (UIntPtr)i)));
                return (IList<string>)list;
            });
        }

        /// <summary>Release the plugin; calls in flight finish first (SafeHandle reference counting).</summary>
        public void Dispose() { handle.Dispose(); }
    }

    /// <summary>A plugin's output stream (a server-streaming or bidirectional method), from
    /// Plugin.Stream and its variants. Enumerating it pulls the items one by one (fidius_stream_next):
    /// wire bytes, or UTF-8 JSON text when opened with Format.Json. It is one pass: every enumeration
    /// (and TryNext) continues where the stream is, and after its end yields nothing. A failure (the
    /// plugin's error: PluginException with Code, PluginMessage, Details; a panic, a trap, a timeout;
    /// Status.StreamSource when a bidirectional stream's items threw, with that exception as
    /// InnerException) is thrown once, by the pull that meets it, and ends the stream.
    /// Dispose (or Close) releases it, cancelling it if it has not ended: the plugin's producer is
    /// dropped and a bidirectional stream's items are disposed; twice is harmless, and an abandoned
    /// stream is released by the finalizer. Ending an enumeration early (break, Take) does not
    /// cancel: dispose the stream (using). Used by one thread at a time (a second thread pulling at
    /// once, or its own items pulling it, throws InvalidOperationException), but Cancel may be called
    /// from any thread while another pulls; it may move between threads, and outlives the Plugin it
    /// came from.</summary>
    public sealed class PluginStream : IEnumerable<byte[]>, IDisposable
    {
        readonly StreamHandle handle;
        /// <summary>A bidirectional stream's input: its exception goes into a StreamSource failure.</summary>
        readonly ItemFeed feed;
        int busy;
        volatile bool ended;

        internal PluginStream(StreamHandle handle, Format format, ItemFeed feed)
        {
            this.handle = handle;
            this.feed = feed;
            Format = format;
        }

        /// <summary>The format of the items: Wire (bincode) or Json (UTF-8 JSON text).</summary>
        public Format Format { get; private set; }

        /// <summary>Whether items feed the plugin's input stream.</summary>
        public bool IsBidirectional { get { return feed != null; } }

        /// <summary>Whether the stream has ended: at its end, or after the failure it threw.</summary>
        public bool Ended { get { return ended; } }

        /// <summary>The next item: true with it, false at the end (and ever after). A failure throws
        /// (see the class) and ends the stream. ObjectDisposedException after Dispose.</summary>
        public bool TryNext(out byte[] item)
        {
            item = null;
            if (handle.IsClosed) throw new ObjectDisposedException("PluginStream");
            if (ended) return false;
            if (Interlocked.CompareExchange(ref busy, 1, 0) != 0)
                throw new InvalidOperationException("PluginStream: pulled by two threads at once, or by its own items");
            try
            {
                FidiusBytes bytes;
                IntPtr err;
                Status st = Native.fidius_stream_next(handle, out bytes, out err);
                if (st == Status.StreamEnd)
                {
                    ended = true;
                    if (err != IntPtr.Zero) Native.fidius_error_free(err); // none is set: the end is no error
                    return false;
                }
                if (st != Status.Ok)
                {
                    ended = true;
                    throw feed == null ? Native.TakeException(st, err) : feed.TakeException(st, err);
                }
                if (err != IntPtr.Zero) Native.fidius_error_free(err);
                item = Native.TakeBytes(ref bytes);
                return true;
            }
            finally
            {
                Volatile.Write(ref busy, 0);
            }
        }

        public IEnumerator<byte[]> GetEnumerator()
        {
            byte[] item;
            while (TryNext(out item))
                yield return item;
        }

        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }

        /// <summary>The items of a JSON stream (Format.Json) converted to T by Json.Deserialize
        /// (object: the parsed JSON). InvalidOperationException for a wire stream.</summary>
        public IEnumerable<T> As<T>()
        {
            if (Format != Format.Json)
                throw new InvalidOperationException("PluginStream.As<T>: the stream's items are wire bytes; open it with Format.Json");
            return Converted<T>();
        }

        IEnumerable<T> Converted<T>()
        {
            foreach (byte[] item in this)
                yield return Json.Deserialize<T>(Encoding.UTF8.GetString(item));
        }

        /// <summary>Cancel the stream from any thread, also while another thread pulls it: the pull it
        /// interrupts (or the next one) throws FidiusException(Status.Cancelled), once, and the stream
        /// ends. A WASM item stops wherever it is (guest code within about 5 ms, a blocked host call
        /// at once); a Python plugin's runner is stopped (its other streams end too, and its next call
        /// starts a fresh runner); a native item cannot be interrupted, so a native stream ends before
        /// its next item. Idempotent, and nothing after Dispose. Dispose the stream as ever. With a
        /// CancellationToken: token.Register(stream.Cancel).</summary>
        public void Cancel()
        {
            if (handle.IsClosed) return;
            IntPtr err;
            Status st;
            try { st = Native.fidius_stream_cancel(handle, out err); }
            catch (ObjectDisposedException) { return; } // disposed meanwhile: already cancelled
            Native.Check(st, err);
        }

        /// <summary>Dispose.</summary>
        public void Close() { Dispose(); }

        /// <summary>Release the stream, cancelling it if it has not ended; a pull in progress on
        /// another thread finishes first (SafeHandle reference counting).</summary>
        public void Dispose() { handle.Dispose(); }
    }

    /// <summary>The items feeding a plugin's Stream&lt;T&gt; argument: the C source's user_data (a
    /// GCHandle to this), pulled on the thread that makes the plugin pull (the caller of
    /// CallStreaming, the puller of a bidirectional PluginStream; only a native plugin pulling from
    /// a thread it started pulls elsewhere), never by two threads at once. It must not reference
    /// its PluginStream: the GCHandle would keep that alive until the stream is released.</summary>
    internal sealed class ItemFeed
    {
        /// <summary>The source's answer when the items threw (kept in Failure).</summary>
        internal const int Threw = -1;
        /// <summary>The answer when the binding itself failed (no feed behind user_data, or a pull
        /// after release): never expected.</summary>
        internal const int Broken = -2;

        readonly IEnumerable<byte[]> items;
        IEnumerator<byte[]> enumerator;
        /// <summary>The item libfidius reads, pinned until the next pull or the release.</summary>
        GCHandle current;
        IntPtr userData;
        int released;
        Exception failure;

        internal ItemFeed(IEnumerable<byte[]> items) { this.items = items; }

        /// <summary>The user_data for libfidius, whose destroy callback (Release) frees it.</summary>
        internal IntPtr Pin()
        {
            userData = Native.Pin(this);
            return userData;
        }

        /// <summary>What the items threw, if they did.</summary>
        internal Exception Failure { get { return Volatile.Read(ref failure); } }

        /// <summary>Whether Release has run (libfidius' destroy, or the binding's own).</summary>
        internal bool Released { get { return Volatile.Read(ref released) != 0; } }

        internal int Next(IntPtr item, IntPtr itemLen)
        {
            UnpinCurrent();
            if (Released) return Broken;
            byte[] next;
            try
            {
                if (enumerator == null) enumerator = items.GetEnumerator();
                if (!enumerator.MoveNext()) return 0;
                next = enumerator.Current;
                if (next == null)
                    throw new InvalidOperationException("the items yielded null (an empty item is new byte[0])");
            }
            catch (Exception e)
            {
                Volatile.Write(ref failure, e);
                return Threw;
            }
            IntPtr data = IntPtr.Zero;
            if (next.Length > 0)
            {
                current = GCHandle.Alloc(next, GCHandleType.Pinned);
                data = current.AddrOfPinnedObject();
            }
            Marshal.WriteIntPtr(item, data);
            Marshal.WriteIntPtr(itemLen, new IntPtr(next.Length));
            return 1;
        }

        void UnpinCurrent()
        {
            if (current.IsAllocated) current.Free();
        }

        /// <summary>Exactly once, later calls do nothing: unpin the last item, dispose the
        /// enumerator (what it throws then is dropped: the call's outcome is settled), free the
        /// GCHandle. Called by libfidius' destroy, or by the binding when the P/Invoke threw
        /// before libfidius ran (a disposed Plugin), so libfidius never took the feed.</summary>
        internal void Release()
        {
            if (Interlocked.Exchange(ref released, 1) != 0) return;
            try
            {
                UnpinCurrent();
                if (enumerator != null) enumerator.Dispose();
            }
            catch { }
            finally
            {
                if (userData != IntPtr.Zero) Native.Unpin(userData);
            }
        }

        /// <summary>The exception for a failed call or pull fed by these items: a StreamSource
        /// failure caused by the items' exception carries it as InnerException (reported once).</summary>
        internal FidiusException TakeException(Status status, IntPtr error)
        {
            FidiusException e = Native.TakeException(status, error);
            if (e.Status != Status.StreamSource) return e;
            Exception thrown = Interlocked.Exchange(ref failure, null);
            if (thrown == null) return e;
            return new FidiusException(e.Status, e.Message + " (the items threw " + thrown.GetType().FullName + ": " + thrown.Message + ")", thrown);
        }
    }

    /// <summary>Decides on one outbound HTTP request of a WASM plugin. Runs on a thread libfidius starts
    /// for it, which ends afterwards (never the thread that called the plugin, which waits for the verdict), concurrently
    /// when several requests are in flight; must not call into the plugin whose request it decides.
    /// An exception denies.</summary>
    public delegate EgressVerdict EgressCallback(HttpRequest request);

    /// <summary>Decides on one socket operation of a WASM plugin whose package has the tcp or udp
    /// capability: the second key of those capabilities (a package asking for them does not load
    /// under a policy without one). Runs like an EgressCallback; an exception denies.</summary>
    public delegate EgressVerdict SocketCallback(SocketRequest request);

    /// <summary>Sees the status and headers of each HTTP response to a request the policy allowed,
    /// before the guest does. The request is the one sent, read-only (its setters throw with
    /// Status.InvalidArgument). Runs like an EgressCallback; an exception forwards.</summary>
    public delegate ResponseDirective ResponseCallback(HttpRequest request, HttpResponse response);

    /// <summary>A policy's delegates, behind the one GCHandle libfidius passes to each callback.</summary>
    internal sealed class PolicyHooks
    {
        internal readonly EgressCallback Egress;
        internal volatile SocketCallback Socket;
        internal volatile ResponseCallback Response;
        internal PolicyHooks(EgressCallback egress) { Egress = egress; }
    }

    /// <summary>Implements a host interface (fidius #[host_interface]) plugins call back into: one
    /// delegate for the whole interface, dispatching on index (the function's position in the trait,
    /// from 0). input is the wire encoding (bincode) of the function's arguments as a tuple (a copy:
    /// it may be kept); the result is the wire bytes of the return value (null or empty for a
    /// function returning () or Result&lt;(), _&gt;). Throwing a PluginException makes the plugin
    /// see a PluginError with its Code, PluginMessage and Details; any other exception makes it see
    /// the host function panicking, with the exception's type and message. No exception reaches
    /// native code. A native plugin calls it on whichever thread runs the plugin's code (the
    /// caller's, or one the plugin started); a WASM plugin on a thread libfidius starts for the call,
    /// which ends when it returns, while the guest waits (the call's timeout or CancellationToken
    /// stops the waiting guest; the delegate runs on to its end). It runs concurrently when several
    /// threads call plugins, and may call plugins itself (re-entering a WASM plugin loaded with
    /// ReuseInstance from within its own call fails with Status.Unsupported). An index past the
    /// function count is answered by libfidius, without calling.</summary>
    public delegate byte[] HostFunction(uint index, byte[] input);

    /// <summary>A host interface: the identity plugins were built against (name, hash, version and
    /// function count: the constants #[host_interface] generates, Kv_HOST_INTERFACE_HASH, ...;
    /// Describe() lists a native plugin's under "host_imports") and the HostFunction implementing
    /// it, for HostConfig.HostInterfaces or LoadOptions.HostInterfaces. Hosts, load options and
    /// plugins using it hold their own references: it may be disposed right after registering it,
    /// and the delegate stays alive until libfidius releases its last reference.
    /// Native plugins: a library importing the interface is bound to it when loaded (a version or
    /// hash mismatch fails the load with Status.HostInterface); binding is once per library in the
    /// process, so while one implementation is in use, loading the library with another fails with
    /// Status.HostInterface. WASM plugins: each call names the interface, version and hash, checked
    /// on every call.</summary>
    public sealed class HostInterface : IDisposable
    {
        internal readonly HostInterfaceHandle Handle;

        public string Name { get; private set; }
        public ulong Hash { get; private set; }
        public uint Version { get; private set; }
        public uint FunctionCount { get; private set; }

        public HostInterface(string name, ulong hash, uint version, uint fnCount, HostFunction function)
        {
            Library.CheckVersion();
            if (name == null) throw new ArgumentNullException("name");
            if (function == null) throw new ArgumentNullException("function");
            Name = name;
            Hash = hash;
            Version = version;
            FunctionCount = fnCount;
            IntPtr state = Native.Pin(function);
            IntPtr err;
            Status st = Native.fidius_host_interface_new(Native.Utf8z(name), hash, version, fnCount, Native.HostFnThunk,
                                                         state, Native.DestroyThunk, out Handle, out err);
            if (st != Status.Ok)
            {
                Native.Unpin(state); // documented: destroy is not called on failure
                throw Native.TakeException(st, err);
            }
        }

        /// <summary>Release the caller's reference.</summary>
        public void Dispose() { Handle.Dispose(); }
    }

    /// <summary>An egress policy. Hosts, load options and plugins using it hold their own
    /// references: it may be disposed right after registering it, and the callback stays alive
    /// until libfidius releases its last reference (its destroy callback).
    /// The SSRF floor: a request whose destination resolves only to private or special-purpose
    /// addresses (loopback, RFC 1918, link-local, ...) is denied before the callback is asked,
    /// unless AllowPrivateRanges is set.</summary>
    public sealed class EgressPolicy : IDisposable
    {
        internal readonly EgressPolicyHandle Handle;
        readonly PolicyHooks hooks;
        bool allowPrivateRanges;

        public EgressPolicy(EgressCallback callback, bool allowPrivateRanges) : this(callback)
        {
            if (allowPrivateRanges)
            {
                try { AllowPrivateRanges = true; }
                catch { Dispose(); throw; }
            }
        }

        public EgressPolicy(EgressCallback callback)
        {
            Library.CheckVersion();
            if (callback == null) throw new ArgumentNullException("callback");
            hooks = new PolicyHooks(callback);
            IntPtr state = Native.Pin(hooks);
            IntPtr err;
            Status st = Native.fidius_egress_policy_new(Native.EgressThunk, state, Native.DestroyThunk, out Handle, out err);
            if (st != Status.Ok)
            {
                Native.Unpin(state); // documented: destroy is not called on failure
                throw Native.TakeException(st, err);
            }
        }

        /// <summary>Whether this policy's requests may go to private and special-purpose addresses
        /// (loopback, RFC 1918, link-local with the cloud metadata service, carrier-grade NAT,
        /// unique-local, multicast), which the SSRF floor otherwise removes before the callback is
        /// asked. Off by default; setting it applies to requests decided afterwards, wherever the
        /// policy is registered.</summary>
        public bool AllowPrivateRanges
        {
            get { return Volatile.Read(ref allowPrivateRanges); }
            set
            {
                IntPtr err;
                Native.Check(Native.fidius_egress_policy_set_allow_private_ranges(Handle, value, out err), err);
                Volatile.Write(ref allowPrivateRanges, value);
            }
        }

        /// <summary>Make the policy decide on sockets: the second key of the tcp and udp capabilities.
        /// null removes it (plugins already loaded then have every socket denied). Set it before loading
        /// the plugins it is for.</summary>
        public void SetSocketCallback(SocketCallback callback)
        {
            hooks.Socket = callback;
            IntPtr err;
            Native.Check(Native.fidius_egress_policy_set_socket_callback(Handle, callback == null ? null : Native.SocketThunk, out err), err);
        }

        /// <summary>Have the policy see every HTTP response head, and choose to forward it or retry the
        /// request once (the egress callback is asked again on a fresh copy). null removes it.</summary>
        public void SetResponseCallback(ResponseCallback callback)
        {
            hooks.Response = callback;
            IntPtr err;
            Native.Check(Native.fidius_egress_policy_set_response_callback(Handle, callback == null ? null : Native.ResponseThunk, out err), err);
        }

        /// <summary>Release the caller's reference.</summary>
        public void Dispose() { Handle.Dispose(); }
    }

    /// <summary>One socket operation of a WASM plugin, valid only during the socket callback it was
    /// passed to.</summary>
    public sealed class SocketRequest
    {
        IntPtr request;

        internal SocketRequest(IntPtr request) { this.request = request; }

        internal void Invalidate() { request = IntPtr.Zero; }

        IntPtr Ptr
        {
            get
            {
                if (request == IntPtr.Zero)
                    throw new InvalidOperationException("a SocketRequest is valid only during its socket callback");
                return request;
            }
        }

        public SocketUse Use { get { return (SocketUse)Native.fidius_socket_request_use(Ptr); } }
        /// <summary>The name looked up (DnsLookup), or the name this plugin instance looked up that
        /// resolved to the address (connect, send); null when there is none (a bare address, a bind).</summary>
        public string Host { get { return Native.Str(Native.fidius_socket_request_host(Ptr)); } }
        /// <summary>The peer's (for a bind, the local) address as text; null for a lookup.</summary>
        public string Address { get { return Native.Str(Native.fidius_socket_request_address(Ptr)); } }
        public ushort Port { get { return Native.fidius_socket_request_port(Ptr); } }
        public string Plugin { get { return Native.Str(Native.fidius_socket_request_plugin(Ptr)); } }

        /// <summary>The reason for a Deny verdict; reaches the host (error, log), never the guest.</summary>
        public void SetDenyReason(string reason)
        {
            IntPtr err;
            Native.Check(Native.fidius_socket_request_set_deny_reason(Ptr, Native.Utf8z(reason), out err), err);
        }
    }

    /// <summary>The head of an HTTP response, valid only during the response callback it was passed to.</summary>
    public sealed class HttpResponse
    {
        IntPtr response;

        internal HttpResponse(IntPtr response) { this.response = response; }

        internal void Invalidate() { response = IntPtr.Zero; }

        IntPtr Ptr
        {
            get
            {
                if (response == IntPtr.Zero)
                    throw new InvalidOperationException("an HttpResponse is valid only during its response callback");
                return response;
            }
        }

        public ushort Status { get { return Native.fidius_http_response_status(Ptr); } }
        /// <summary>Whether RetryOnce would retry (false for a retry's response, or a body not kept).</summary>
        public bool RetryAvailable { get { return Native.fidius_http_response_retry_available(Ptr); } }

        public IList<KeyValuePair<string, byte[]>> Headers
        {
            get
            {
                List<KeyValuePair<string, byte[]>> list = new List<KeyValuePair<string, byte[]>>();
                ulong n = Native.fidius_http_response_header_count(Ptr).ToUInt64();
                for (ulong i = 0; i < n; i++)
                {
                    IntPtr name, value, err;
                    UIntPtr len;
                    Native.Check(Native.fidius_http_response_header(Ptr, (UIntPtr)i, out name, out value, out len, out err), err);
                    byte[] v = new byte[checked((int)len.ToUInt64())];
                    if (v.Length > 0) Marshal.Copy(value, v, 0, v.Length);
                    list.Add(new KeyValuePair<string, byte[]>(Native.Str(name), v));
                }
                return list;
            }
        }
    }

    /// <summary>One outbound HTTP request, valid only during the egress callback it was passed to.</summary>
    public sealed class HttpRequest
    {
        IntPtr request;

        internal HttpRequest(IntPtr request) { this.request = request; }

        internal void Invalidate() { request = IntPtr.Zero; }

        IntPtr Ptr
        {
            get
            {
                if (request == IntPtr.Zero)
                    throw new InvalidOperationException("an HttpRequest is valid only during its egress callback");
                return request;
            }
        }

        public string Method { get { return Native.Str(Native.fidius_http_request_method(Ptr)); } }
        public string Scheme { get { return Native.Str(Native.fidius_http_request_scheme(Ptr)); } }
        /// <summary>The authority as the guest wrote it, "host" or "host:port" (see Host, Port, Addresses).</summary>
        public string Authority { get { return Native.Str(Native.fidius_http_request_authority(Ptr)); } }
        /// <summary>The destination host, canonical: an IP address in standard form ("127.0.0.1",
        /// whatever spelling the guest used) or a lower-case DNS name without a final dot.</summary>
        public string Host { get { return Native.Str(Native.fidius_http_request_host(Ptr)); } }
        /// <summary>The destination port (the scheme's default when the authority has none).</summary>
        public ushort Port { get { return Native.fidius_http_request_port(Ptr); } }
        /// <summary>The addresses the request will be sent to (and only to those), in the order tried.</summary>
        public IList<string> Addresses
        {
            get
            {
                IntPtr p = Ptr;
                List<string> list = new List<string>();
                ulong n = Native.fidius_http_request_address_count(p).ToUInt64();
                for (ulong i = 0; i < n; i++)
                {
                    string a = Native.Str(Native.fidius_http_request_address(p, (UIntPtr)i));
                    if (a != null) list.Add(a);
                }
                return list.AsReadOnly();
            }
        }
        public string PathAndQuery { get { return Native.Str(Native.fidius_http_request_path_and_query(Ptr)); } }
        /// <summary>The name of the plugin making the request.</summary>
        public string Plugin { get { return Native.Str(Native.fidius_http_request_plugin(Ptr)); } }

        /// <summary>The header fields (lowercase names; values as the guest sent them).</summary>
        public IList<KeyValuePair<string, byte[]>> Headers
        {
            get
            {
                List<KeyValuePair<string, byte[]>> list = new List<KeyValuePair<string, byte[]>>();
                ulong n = Native.fidius_http_request_header_count(Ptr).ToUInt64();
                for (ulong i = 0; i < n; i++)
                {
                    IntPtr name, value, err;
                    UIntPtr len;
                    Native.Check(Native.fidius_http_request_header(Ptr, (UIntPtr)i, out name, out value, out len, out err), err);
                    byte[] v = new byte[checked((int)len.ToUInt64())];
                    if (v.Length > 0) Marshal.Copy(value, v, 0, v.Length);
                    list.Add(new KeyValuePair<string, byte[]>(Native.Str(name), v));
                }
                return list;
            }
        }

        /// <summary>Set a header, replacing every existing value (e.g. inject Authorization).</summary>
        public void SetHeader(string name, string value)
        {
            byte[] v = Encoding.UTF8.GetBytes(value);
            IntPtr err;
            Native.Check(Native.fidius_http_request_set_header(Ptr, Native.Utf8z(name), v, (UIntPtr)v.Length, out err), err);
        }

        /// <summary>Add a value for a header, keeping existing ones.</summary>
        public void AddHeader(string name, string value)
        {
            byte[] v = Encoding.UTF8.GetBytes(value);
            IntPtr err;
            Native.Check(Native.fidius_http_request_add_header(Ptr, Native.Utf8z(name), v, (UIntPtr)v.Length, out err), err);
        }

        public void RemoveHeader(string name)
        {
            IntPtr err;
            Native.Check(Native.fidius_http_request_remove_header(Ptr, Native.Utf8z(name), out err), err);
        }

        /// <summary>The reason for a Deny verdict; reaches the host (error, log), never the guest.</summary>
        public void SetDenyReason(string reason)
        {
            IntPtr err;
            Native.Check(Native.fidius_http_request_set_deny_reason(Ptr, Native.Utf8z(reason), out err), err);
        }
    }

    /// <summary>The JSON Plugin.Invoke and Plugin.Describe use: a small writer, reader and converter,
    /// since Mono's base class library has none (no System.Text.Json, DataContractJsonSerializer or
    /// JavaScriptSerializer in its core assemblies). Errors: ArgumentException for a value it cannot
    /// write, FormatException for text it cannot read or a value it cannot convert.</summary>
    public static class Json
    {
        const int MaxDepth = 128;

        // ------------------------------------------------------------ writing

        /// <summary>JSON text for value: null, bool, strings and chars, numbers (NaN and the infinities
        /// as the strings "NaN", "Infinity", "-Infinity", which libfidius takes for floats), enum values as
        /// their names, KeyValuePair and System.Tuple / ValueTuple as arrays, dictionaries as objects (keys
        /// by ToString), other enumerables (byte[] too) as arrays, and any other object as an object of its
        /// public properties and fields, names in snake_case (UnitCents: "unit_cents").</summary>
        public static string Serialize(object value)
        {
            StringBuilder sb = new StringBuilder();
            Write(sb, value, 0);
            return sb.ToString();
        }

        static void Write(StringBuilder sb, object value, int depth)
        {
            if (depth > MaxDepth) throw new ArgumentException("JSON: nesting deeper than " + MaxDepth + " (a cycle?)");
            if (value == null) { sb.Append("null"); return; }
            Type t = value.GetType();
            if (value is string) { WriteString(sb, (string)value); return; }
            if (value is char) { WriteString(sb, value.ToString()); return; }
            if (value is bool) { sb.Append((bool)value ? "true" : "false"); return; }
            if (t.IsEnum) { WriteString(sb, value.ToString()); return; }
            if (value is sbyte || value is byte || value is short || value is ushort || value is int || value is uint ||
                value is long || value is ulong || value is decimal)
            {
                sb.Append(((IFormattable)value).ToString(null, CultureInfo.InvariantCulture));
                return;
            }
            if (value is float || value is double)
            {
                double d = System.Convert.ToDouble(value, CultureInfo.InvariantCulture);
                if (double.IsNaN(d)) WriteString(sb, "NaN");
                else if (double.IsPositiveInfinity(d)) WriteString(sb, "Infinity");
                else if (double.IsNegativeInfinity(d)) WriteString(sb, "-Infinity");
                else sb.Append(value is float ? ((float)value).ToString("R", CultureInfo.InvariantCulture)
                                               : d.ToString("R", CultureInfo.InvariantCulture));
                return;
            }
            if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(KeyValuePair<,>))
            {
                WriteArray(sb, new object[] { t.GetProperty("Key").GetValue(value, null), t.GetProperty("Value").GetValue(value, null) }, depth);
                return;
            }
            if (IsTuple(t))
            {
                List<object> items = new List<object>();
                for (int i = 1; ; i++)
                {
                    PropertyInfo p = t.GetProperty("Item" + i);
                    FieldInfo f = t.GetField("Item" + i);
                    if (p != null) items.Add(p.GetValue(value, null));
                    else if (f != null) items.Add(f.GetValue(value));
                    else break;
                }
                WriteArray(sb, items, depth);
                return;
            }
            IDictionary dict = value as IDictionary;
            if (dict != null)
            {
                sb.Append('{');
                bool first = true;
                foreach (DictionaryEntry e in dict)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    WriteString(sb, System.Convert.ToString(e.Key, CultureInfo.InvariantCulture));
                    sb.Append(':');
                    Write(sb, e.Value, depth + 1);
                }
                sb.Append('}');
                return;
            }
            IEnumerable list = value as IEnumerable;
            if (list != null) { WriteArray(sb, list, depth); return; }
            if (t.IsPrimitive || value is IntPtr || value is UIntPtr || value is Delegate)
                throw new ArgumentException("JSON: cannot write a " + t.FullName);

            sb.Append('{');
            bool firstMember = true;
            foreach (MemberInfo m in Members(t))
            {
                if (!firstMember) sb.Append(',');
                firstMember = false;
                WriteString(sb, SnakeCase(m.Name));
                sb.Append(':');
                PropertyInfo p = m as PropertyInfo;
                Write(sb, p != null ? p.GetValue(value, null) : ((FieldInfo)m).GetValue(value), depth + 1);
            }
            sb.Append('}');
        }

        static void WriteArray(StringBuilder sb, IEnumerable items, int depth)
        {
            sb.Append('[');
            bool first = true;
            foreach (object item in items)
            {
                if (!first) sb.Append(',');
                first = false;
                Write(sb, item, depth + 1);
            }
            sb.Append(']');
        }

        static void WriteString(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                        else sb.Append(c); // surrogate pairs pass through as the UTF-16 they are
                        break;
                }
            }
            sb.Append('"');
        }

        static bool IsTuple(Type t)
        {
            return t.IsGenericType && t.Namespace == "System" && (t.Name.StartsWith("Tuple`") || t.Name.StartsWith("ValueTuple`"));
        }

        /// <summary>Public instance fields and readable, non-indexed properties, declaration order.</summary>
        static IEnumerable<MemberInfo> Members(Type t)
        {
            foreach (PropertyInfo p in t.GetProperties(BindingFlags.Public | BindingFlags.Instance))
                if (p.CanRead && p.GetIndexParameters().Length == 0) yield return p;
            foreach (FieldInfo f in t.GetFields(BindingFlags.Public | BindingFlags.Instance))
                yield return f;
        }

        /// <summary>"UnitCents" is "unit_cents", "HTTPCode" "http_code", "sku" stays.</summary>
        public static string SnakeCase(string name)
        {
            StringBuilder sb = new StringBuilder(name.Length + 4);
            for (int i = 0; i < name.Length; i++)
            {
                char c = name[i];
                if (char.IsUpper(c))
                {
                    if (i > 0 && name[i - 1] != '_' &&
                        (char.IsLower(name[i - 1]) || char.IsDigit(name[i - 1]) ||
                         (i + 1 < name.Length && char.IsLower(name[i + 1]))))
                        sb.Append('_');
                    sb.Append(char.ToLowerInvariant(c));
                }
                else sb.Append(c);
            }
            return sb.ToString();
        }

        // ------------------------------------------------------------ reading

        /// <summary>Parse JSON text: objects become Dictionary&lt;string, object&gt; (in document order),
        /// arrays List&lt;object&gt;, strings string, true/false bool, null null; integers long (or ulong
        /// above long.MaxValue), other numbers double.</summary>
        public static object Parse(string json)
        {
            if (json == null) throw new ArgumentNullException("json");
            int pos = 0;
            object value = ReadValue(json, ref pos, 0);
            SkipSpace(json, ref pos);
            if (pos != json.Length) throw Error(json, pos, "text after the value");
            return value;
        }

        static FormatException Error(string json, int pos, string what)
        {
            return new FormatException("JSON: " + what + " at offset " + pos);
        }

        static void SkipSpace(string s, ref int pos)
        {
            while (pos < s.Length && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r')) pos++;
        }

        static object ReadValue(string s, ref int pos, int depth)
        {
            if (depth > MaxDepth) throw Error(s, pos, "nesting deeper than " + MaxDepth);
            SkipSpace(s, ref pos);
            if (pos >= s.Length) throw Error(s, pos, "unexpected end");
            char c = s[pos];
            if (c == '{')
            {
                pos++;
                Dictionary<string, object> obj = new Dictionary<string, object>();
                SkipSpace(s, ref pos);
                if (pos < s.Length && s[pos] == '}') { pos++; return obj; }
                while (true)
                {
                    SkipSpace(s, ref pos);
                    if (pos >= s.Length || s[pos] != '"') throw Error(s, pos, "expected a key");
                    string key = ReadString(s, ref pos);
                    SkipSpace(s, ref pos);
                    if (pos >= s.Length || s[pos] != ':') throw Error(s, pos, "expected ':'");
                    pos++;
                    obj[key] = ReadValue(s, ref pos, depth + 1);
                    SkipSpace(s, ref pos);
                    if (pos < s.Length && s[pos] == ',') { pos++; continue; }
                    if (pos < s.Length && s[pos] == '}') { pos++; return obj; }
                    throw Error(s, pos, "expected ',' or '}'");
                }
            }
            if (c == '[')
            {
                pos++;
                List<object> arr = new List<object>();
                SkipSpace(s, ref pos);
                if (pos < s.Length && s[pos] == ']') { pos++; return arr; }
                while (true)
                {
                    arr.Add(ReadValue(s, ref pos, depth + 1));
                    SkipSpace(s, ref pos);
                    if (pos < s.Length && s[pos] == ',') { pos++; continue; }
                    if (pos < s.Length && s[pos] == ']') { pos++; return arr; }
                    throw Error(s, pos, "expected ',' or ']'");
                }
            }
            if (c == '"') return ReadString(s, ref pos);
            if (string.CompareOrdinal(s, pos, "true", 0, 4) == 0) { pos += 4; return true; }
            if (string.CompareOrdinal(s, pos, "false", 0, 5) == 0) { pos += 5; return false; }
            if (string.CompareOrdinal(s, pos, "null", 0, 4) == 0) { pos += 4; return null; }
            if (c == '-' || (c >= '0' && c <= '9')) return ReadNumber(s, ref pos);
            throw Error(s, pos, "unexpected '" + c + "'");
        }

        static string ReadString(string s, ref int pos)
        {
            pos++; // the opening quote
            StringBuilder sb = new StringBuilder();
            while (true)
            {
                if (pos >= s.Length) throw Error(s, pos, "unterminated string");
                char c = s[pos++];
                if (c == '"') return sb.ToString();
                if (c != '\\') { sb.Append(c); continue; }
                if (pos >= s.Length) throw Error(s, pos, "unterminated escape");
                char e = s[pos++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        int code;
                        if (pos + 4 > s.Length || !int.TryParse(s.Substring(pos, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out code))
                            throw Error(s, pos, "bad \\u escape");
                        sb.Append((char)code);
                        pos += 4;
                        break;
                    default: throw Error(s, pos - 1, "bad escape");
                }
            }
        }

        static object ReadNumber(string s, ref int pos)
        {
            int start = pos;
            bool integral = true;
            if (s[pos] == '-') pos++;
            while (pos < s.Length)
            {
                char c = s[pos];
                if (c >= '0' && c <= '9') pos++;
                else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') { integral = false; pos++; }
                else break;
            }
            string text = s.Substring(start, pos - start);
            long l;
            ulong u;
            double d;
            if (integral && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out l)) return l;
            if (integral && ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out u)) return u;
            if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out d)) return d;
            throw Error(s, start, "bad number '" + text + "'");
        }

        // ------------------------------------------------------------ converting

        /// <summary>Parse json and convert it to T (see Convert).</summary>
        public static T Deserialize<T>(string json)
        {
            return (T)Convert(Parse(json), typeof(T));
        }

        /// <summary>Convert a parsed JSON value (Parse) to type: object keeps it as it is; numbers to any
        /// numeric type (in range, else FormatException; 64-bit integers also from decimal strings; floats
        /// also from "NaN", "Infinity", "-Infinity"); strings to string, char, or an enum (by case name,
        /// PascalCase, snake_case or kebab-case); arrays to T[], List&lt;T&gt; (and the collection
        /// interfaces it implements), KeyValuePair, Tuple and ValueTuple, or a Dictionary from [key, value]
        /// pairs; objects to Dictionary&lt;string, T&gt; or to a class or struct with a parameterless
        /// constructor, matching keys to public fields and settable properties by name, ignoring case,
        /// '_' and '-' (unit_cents: UnitCents). null to reference types and Nullable&lt;T&gt;.</summary>
        public static object Convert(object value, Type type)
        {
            if (type == typeof(object)) return value;
            Type under = Nullable.GetUnderlyingType(type);
            if (value == null)
            {
                if (!type.IsValueType || under != null) return null;
                throw new FormatException("JSON: null for a " + type.Name);
            }
            if (under != null) return Convert(value, under);
            if (type.IsInstanceOfType(value) && !(value is IList) && !(value is IDictionary)) return value;
            try
            {
                if (type == typeof(string))
                {
                    if (value is string) return value;
                }
                else if (type == typeof(char))
                {
                    string cs = value as string;
                    if (cs != null && cs.Length == 1) return cs[0];
                }
                else if (type == typeof(bool))
                {
                    if (value is bool) return value;
                }
                else if (type.IsEnum)
                {
                    string name = value as string;
                    if (name != null)
                        foreach (string n in Enum.GetNames(type))
                            if (Normalize(n) == Normalize(name)) return Enum.Parse(type, n);
                }
                else if (type == typeof(float) || type == typeof(double) || type == typeof(decimal))
                {
                    string fs = value as string;
                    double d;
                    if (fs == "NaN") d = double.NaN;
                    else if (fs == "Infinity") d = double.PositiveInfinity;
                    else if (fs == "-Infinity") d = double.NegativeInfinity;
                    else if (fs != null) d = double.Parse(fs, NumberStyles.Float, CultureInfo.InvariantCulture);
                    else if (value is long || value is ulong || value is double) d = System.Convert.ToDouble(value, CultureInfo.InvariantCulture);
                    else return Fail(value, type);
                    if (type == typeof(decimal)) return fs == null && !(value is double) ? System.Convert.ToDecimal(value, CultureInfo.InvariantCulture) : (decimal)d;
                    return type == typeof(float) ? (object)(float)d : d;
                }
                else if (type.IsPrimitive && type != typeof(IntPtr) && type != typeof(UIntPtr))
                {
                    // Integers: from a whole number, or a decimal string (64-bit values beyond 2^53).
                    if (value is double && Math.Floor((double)value) != (double)value) return Fail(value, type);
                    if (value is string)
                    {
                        decimal dec;
                        if (!decimal.TryParse((string)value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out dec)) return Fail(value, type);
                        value = dec;
                    }
                    if (value is long || value is ulong || value is double || value is decimal)
                        return System.Convert.ChangeType(value, type, CultureInfo.InvariantCulture); // checked: OverflowException
                }
                else
                {
                    object composite = ConvertComposite(value, type);
                    if (composite != null) return composite;
                }
            }
            catch (OverflowException) { }
            catch (InvalidCastException) { }
            return Fail(value, type);
        }

        static object Fail(object value, Type type)
        {
            string shown = value is string ? "\"" + value + "\"" : value is IList ? "an array" : value is IDictionary ? "an object" : System.Convert.ToString(value, CultureInfo.InvariantCulture);
            throw new FormatException("JSON: cannot convert " + shown + " to " + type.FullName);
        }

        static string Normalize(string name)
        {
            return name.Replace("_", "").Replace("-", "").ToLowerInvariant();
        }

        static object ConvertComposite(object value, Type type)
        {
            List<object> arr = value as List<object>;
            Dictionary<string, object> obj = value as Dictionary<string, object>;
            if (type.IsArray && arr != null)
            {
                Type elem = type.GetElementType();
                Array result = Array.CreateInstance(elem, arr.Count);
                for (int i = 0; i < arr.Count; i++) result.SetValue(Convert(arr[i], elem), i);
                return result;
            }
            if (type.IsGenericType)
            {
                Type def = type.GetGenericTypeDefinition();
                Type[] args = type.GetGenericArguments();
                if (def == typeof(KeyValuePair<,>) && arr != null && arr.Count == 2)
                    return Activator.CreateInstance(type, Convert(arr[0], args[0]), Convert(arr[1], args[1]));
                if (IsTuple(type) && arr != null && arr.Count == args.Length)
                {
                    object[] items = new object[args.Length];
                    for (int i = 0; i < args.Length; i++) items[i] = Convert(arr[i], args[i]);
                    return Activator.CreateInstance(type, items);
                }
                if (args.Length == 2 && (def == typeof(Dictionary<,>) || def == typeof(IDictionary<,>) || def == typeof(IReadOnlyDictionary<,>)))
                {
                    IDictionary dict = (IDictionary)Activator.CreateInstance(typeof(Dictionary<,>).MakeGenericType(args));
                    if (obj != null)
                        foreach (KeyValuePair<string, object> kv in obj) dict[Convert(kv.Key, args[0])] = Convert(kv.Value, args[1]);
                    else if (arr != null)
                        foreach (object pair in arr) // a map: [key, value] pairs
                        {
                            List<object> kv = pair as List<object>;
                            if (kv == null || kv.Count != 2) return null;
                            dict[Convert(kv[0], args[0])] = Convert(kv[1], args[1]);
                        }
                    else return null;
                    return dict;
                }
                if (args.Length == 1 && arr != null)
                {
                    Type listType = typeof(List<>).MakeGenericType(args);
                    if (type.IsAssignableFrom(listType))
                    {
                        IList list = (IList)Activator.CreateInstance(listType);
                        foreach (object item in arr) list.Add(Convert(item, args[0]));
                        return list;
                    }
                }
            }
            if (obj != null && !type.IsInterface && !type.IsAbstract && !type.IsPrimitive && type != typeof(string) &&
                (type.IsValueType || type.GetConstructor(Type.EmptyTypes) != null))
            {
                object result = Activator.CreateInstance(type);
                foreach (KeyValuePair<string, object> kv in obj)
                {
                    string key = Normalize(kv.Key);
                    foreach (MemberInfo m in type.GetMembers(BindingFlags.Public | BindingFlags.Instance))
                    {
                        if (Normalize(m.Name) != key) continue;
                        PropertyInfo p = m as PropertyInfo;
                        FieldInfo f = m as FieldInfo;
                        if (p != null && p.CanWrite && p.GetIndexParameters().Length == 0) { p.SetValue(result, Convert(kv.Value, p.PropertyType), null); break; }
                        if (f != null && !f.IsInitOnly) { f.SetValue(result, Convert(kv.Value, f.FieldType)); break; }
                    }
                }
                return result;
            }
            return null;
        }
    }
}
