"""fidius: host Fidius plugins (native cdylibs, sandboxed WASM components and
Python packages) from Python, through libfidius' C API (fidius.h), with ctypes.

    import fidius
    with fidius.Host(search_paths=["./plugins"]) as host:
        with host.load("calc") as calc:
            calc.invoke("add", 2, 40)            # 42 (through JSON)
            calc.call_wire(0, wire_bytes)        # Fidius wire bytes in and out

invoke() and call_json() work for WASM plugins, Python plugins and native
plugins with an interface schema (WIT: a "<library>.wit" beside the library,
LoadOptions(schema=...), Host(schemas=...)); describe() says what a plugin
has. A Python plugin (a ``runtime = "python"`` package) runs in a runner
process of its own (``Host(python_interpreter=...)``, default ``python3``),
never in this interpreter. Calls take ``cancel=fidius.Cancel()`` to be
stopped from another thread; invoke_async() and call_async() stop the call
when the awaiting task is cancelled.

Streaming methods: ``plugin.stream(...)`` / ``invoke_stream(...)`` return a Stream, an
iterator of the items (a context manager: close() cancels it); ``call_streaming(method,
items)`` / ``invoke_streaming(...)`` feed a client stream from any iterable of wire-byte items,
and ``stream(..., input=items)`` a bidirectional one.

Ownership: Host, Plugin, EgressPolicy and Stream own a C handle each; close() (or the
``with`` statement) releases it, and a weakref finalizer does if close() was
never called. Everything else (PluginInfo, Discovery, outputs, exceptions) is
copied into Python objects.

Threads: a Host and a Plugin may be used from any number of threads; calls
release the GIL. close() while calls are in flight waits for them: the handle
is freed by the last user. Callbacks (egress policy, log) run on libfidius'
threads, concurrently, holding the GIL while Python code runs. A stream's input
iterable runs on the thread pulling (the caller of call_streaming() or of the
Stream's next()); one thread at a time pulls a Stream.

Errors: FidiusError (with .status), or PluginError (.code, .plugin_message,
.details) when the plugin itself returned an error.

The library is $FIDIUS_LIBRARY (a path) if set, else the libfidius.so the
platform wheel bundles next to this package, else the loader's search for
libfidius.so.0 / libfidius.so. ``fidius.library_path`` says which was loaded.
"""

import ctypes
import contextlib
import ctypes.util
import dataclasses
import enum
import itertools
import json as _json
import os
import re
import threading
import weakref
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_bool, c_char_p, c_int32, c_size_t,
                    c_uint8, c_uint32, c_uint64, c_void_p)
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, Iterable, List, Optional, Sequence, Tuple, TypeVar, Union

__all__ = [
    "Status", "Format", "Runtime", "BufferStrategy", "LoadPolicy", "Verdict",
    "FidiusError", "PluginError", "ClosedError",
    "PluginInfo", "Skipped", "Discovery", "LoadOptions",
    "Host", "Plugin", "EgressPolicy", "HttpRequest", "Cancel", "version", "library_path",
    "SocketUse", "SocketRequest", "ResponseDirective", "HttpResponse",
    "HostInterface", "HostFunctionError", "BINDING_VERSION", "version_mismatch", "Stream",
]


class _OpenEnum(enum.IntEnum):
    """An IntEnum that accepts values a newer libfidius appends: ``Status(99)`` is a
    pseudo-member named ``UNKNOWN_99`` whose value (and int) is 99, instead of ValueError."""

    @classmethod
    def _missing_(cls, value):
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        with _unknown_lock:
            member = _unknown_members.get((cls, value))
            if member is None:
                member = int.__new__(cls, value)
                member._name_ = f"UNKNOWN_{value}"
                member._value_ = value
                _unknown_members[(cls, value)] = member
            return member


_unknown_members: Dict[Tuple[type, int], Any] = {}
_unknown_lock = threading.Lock()


class Status(_OpenEnum):
    """libfidius result codes (fidius_status); the numbers never change. Values this
    binding does not know (a newer library's) become ``UNKNOWN_<n>`` pseudo-members."""
    OK = 0
    NULL_ARGUMENT = 1
    INVALID_UTF8 = 2
    INVALID_ARGUMENT = 3
    INVALID_HANDLE = 4
    INTERNAL_PANIC = 5
    IO = 6
    UNSUPPORTED = 7
    PLUGIN_NOT_FOUND = 20
    NOT_A_PLUGIN = 21
    LIBRARY_LOAD = 22
    ARCHITECTURE_MISMATCH = 23
    INVALID_MAGIC = 24
    REGISTRY_VERSION = 25
    ABI_VERSION = 26
    INVALID_DESCRIPTOR = 27
    BUFFER_STRATEGY = 28
    INTERFACE_HASH_MISMATCH = 29
    CONFIG_REJECTED = 30
    SIGNATURE_REQUIRED = 31
    SIGNATURE_INVALID = 32
    INVALID_MANIFEST = 33
    CAPABILITY = 34
    METHOD_INDEX = 40
    NOT_IMPLEMENTED = 41
    PLUGIN_ERROR = 42
    PLUGIN_PANIC = 43
    SERIALIZATION = 44
    UNKNOWN_STATUS = 45
    BUFFER_TOO_SMALL = 46
    TIMEOUT = 50
    MEMORY_LIMIT = 51
    FUEL_EXHAUSTED = 52
    TRAP = 53
    STACK_OVERFLOW = 54
    ARCHIVE = 60
    FILE_REFUSED = 61
    SCHEMA_MISMATCH = 62
    CANCELLED = 63
    HOST_INTERFACE = 64
    STREAM_END = 65      #: Stream: no more items (not a failure; Stream raises StopIteration)
    STREAM_SOURCE = 66   #: the iterable feeding a plugin's input stream failed (raised)


class Format(_OpenEnum):
    WIRE = 0  #: Fidius wire bytes: the bincode (1.3, legacy) tuple of the arguments
    #: a JSON array (or object) of the arguments; WASM plugins and native plugins with a schema
    JSON = 1


class Runtime(_OpenEnum):
    UNKNOWN = 0
    NATIVE = 1
    WASM = 2
    PYTHON = 3


class BufferStrategy(_OpenEnum):
    NONE = 0
    PLUGIN_ALLOCATED = 1
    ARENA = 2


class LoadPolicy(_OpenEnum):
    LENIENT = 0
    STRICT = 1


class Verdict(_OpenEnum):
    DENY = 0
    ALLOW = 1


class SocketUse(_OpenEnum):
    """What a SocketRequest is about (fidius_socket_use)."""
    TCP_CONNECT = 1
    UDP_BIND = 2
    UDP_SEND = 3
    DNS_LOOKUP = 4


class ResponseDirective(_OpenEnum):
    """What a response callback returns (fidius_response_directive)."""
    FORWARD = 0
    RETRY_ONCE = 1


# ---------------------------------------------------------------- the library

_HERE = os.path.dirname(os.path.abspath(__file__))

#: The path (or soname) of the libfidius this module loaded.
library_path: str = ""


def _open_library() -> Tuple[ctypes.CDLL, str]:
    """$FIDIUS_LIBRARY (an explicit override) if set; else the copy bundled next to this
    package (the platform wheel's); else the loader's search (LD_LIBRARY_PATH, ldconfig)."""
    path = os.environ.get("FIDIUS_LIBRARY")
    if path:
        return ctypes.CDLL(path), path
    errors = []
    bundled = [os.path.join(_HERE, n) for n in ("libfidius.so", "libfidius.so.0")]
    for name in [p for p in bundled if os.path.exists(p)] + [
            ctypes.util.find_library("fidius"), "libfidius.so.0", "libfidius.so"]:
        if not name:
            continue
        try:
            return ctypes.CDLL(name), name
        except OSError as e:
            errors.append(str(e))
    raise OSError("libfidius not found (install the fidius wheel, which bundles it; or set "
                  "FIDIUS_LIBRARY to its path, or LD_LIBRARY_PATH): " + "; ".join(errors))


_lib, library_path = _open_library()

#: The libfidius version this binding was written for: include/fidius.h's
#: FIDIUS_VERSION_STRING (bindings/check_drift.py fails when they differ).
BINDING_VERSION = "0.1.0"

_VERSION = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)(?:[-+][0-9A-Za-z.+-]+)?")


def version_mismatch(library: str, binding: str = BINDING_VERSION) -> Optional[str]:
    """Why a libfidius of version ``library`` cannot be used by a binding written for
    ``binding`` (both "MAJOR.MINOR.PATCH"; a semver pre-release or build suffix is ignored),
    or None when it can: same MAJOR and, while MAJOR is 0, same MINOR (before 1.0 a minor
    release may change the C structs and functions); the PATCH may differ either way."""
    lib, bind = _VERSION.fullmatch(library or ""), _VERSION.fullmatch(binding or "")
    if lib is None:
        return f"library version {library!r} is not MAJOR.MINOR.PATCH"
    if bind is None:
        return f"binding version {binding!r} is not MAJOR.MINOR.PATCH"
    (lmaj, lmin), (bmaj, bmin) = (int(lib[1]), int(lib[2])), (int(bind[1]), int(bind[2]))
    if lmaj != bmaj:
        return f"major versions differ ({lmaj}, {bmaj})"
    if lmaj == 0 and lmin != bmin:
        return f"minor versions differ ({lmin}, {bmin}) before 1.0"
    return None


def _check_library_version() -> None:
    """Refuse (ImportError) a library whose version says its C API may differ from the one
    this module declares: calling it with the wrong struct layouts would corrupt memory.
    Runs before any other symbol is looked up, so even a library lacking some is named."""
    try:
        get = _lib.fidius_version
    except AttributeError:
        raise ImportError(f"{library_path} is not libfidius (it has no fidius_version)") from None
    get.restype, get.argtypes = c_char_p, []
    raw = get()
    found = raw.decode("utf-8", "replace") if raw is not None else ""
    why = version_mismatch(found, BINDING_VERSION)
    if why is not None:
        raise ImportError(f"libfidius {found} loaded from {library_path} is not compatible with "
                          f"this fidius binding, written for libfidius {BINDING_VERSION}: {why} "
                          f"(use the library the fidius package bundles, or point FIDIUS_LIBRARY "
                          f"at a matching one)")


_check_library_version()


class _Bytes(Structure):
    _fields_ = [("data", POINTER(c_uint8)), ("len", c_size_t), ("release", c_void_p)]


_EGRESS_FN = CFUNCTYPE(c_uint32, c_void_p, c_void_p)
_DESTROY_FN = CFUNCTYPE(None, c_void_p)
_LOG_FN = CFUNCTYPE(None, c_void_p, c_uint32, c_char_p)
_SOCKET_FN = CFUNCTYPE(c_uint32, c_void_p, c_void_p)
_RESPONSE_FN = CFUNCTYPE(c_uint32, c_void_p, c_void_p, c_void_p)
_HOST_FN = CFUNCTYPE(None, c_void_p, c_uint32, c_void_p, c_size_t, c_void_p)
_SOURCE_FN = CFUNCTYPE(c_int32, c_void_p, POINTER(POINTER(c_uint8)), POINTER(c_size_t))
_NO_SOURCE, _NO_DESTROY = _SOURCE_FN(), _DESTROY_FN()   # NULL function pointers

_P = c_void_p            # any opaque handle
_E = POINTER(c_void_p)   # fidius_error **
_S = c_int32             # fidius_status

_SIGNATURES = {
    # errors, versions
    "fidius_error_status": (_S, [_P]),
    "fidius_error_message": (c_char_p, [_P]),
    "fidius_error_plugin_code": (c_char_p, [_P]),
    "fidius_error_plugin_message": (c_char_p, [_P]),
    "fidius_error_plugin_details": (c_char_p, [_P]),
    "fidius_error_free": (None, [_P]),
    "fidius_status_name": (c_char_p, [c_uint32]),
    "fidius_version": (c_char_p, []),
    # builder, host
    "fidius_host_builder_new": (_P, []),
    "fidius_host_builder_free": (None, [_P]),
    "fidius_host_builder_add_search_path": (_S, [_P, c_char_p, _E]),
    "fidius_host_builder_set_load_policy": (_S, [_P, c_uint32, _E]),
    "fidius_host_builder_set_require_signature": (_S, [_P, c_bool, _E]),
    "fidius_host_builder_set_trust_precompiled": (_S, [_P, c_bool, _E]),
    "fidius_host_builder_set_python_interpreter": (_S, [_P, c_char_p, _E]),
    "fidius_host_builder_set_compile_cache": (_S, [_P, c_char_p, _E]),
    "fidius_host_builder_allow_capability": (_S, [_P, c_char_p, _E]),
    "fidius_host_builder_add_trusted_key": (_S, [_P, c_char_p, c_size_t, _E]),
    "fidius_host_builder_add_trusted_key_file": (_S, [_P, c_char_p, _E]),
    "fidius_host_builder_add_schema": (_S, [_P, c_char_p, c_size_t, _E]),
    "fidius_host_builder_add_schema_file": (_S, [_P, c_char_p, _E]),
    "fidius_host_builder_set_interface_hash": (_S, [_P, c_uint64, _E]),
    "fidius_host_builder_set_buffer_strategy": (_S, [_P, c_uint32, _E]),
    "fidius_host_builder_set_egress_policy": (_S, [_P, _P, _E]),
    "fidius_host_builder_set_log_callback": (_S, [_P, _LOG_FN, c_void_p, _DESTROY_FN, _E]),
    "fidius_host_builder_build": (_S, [_P, POINTER(c_void_p), _E]),
    "fidius_host_free": (None, [_P]),
    "fidius_host_precompile_component": (_S, [_P, c_char_p, c_size_t, POINTER(_Bytes), _E]),
    "fidius_host_load_fid": (_S, [_P, c_char_p, _P, POINTER(c_void_p), _E]),
    "fidius_host_unpack_fid": (_S, [_P, c_char_p, c_char_p, POINTER(_Bytes), _E]),
    # discovery, info
    "fidius_host_discover": (_S, [_P, POINTER(c_void_p), _E]),
    "fidius_discovery_free": (None, [_P]),
    "fidius_discovery_plugin_count": (c_size_t, [_P]),
    "fidius_discovery_plugin": (_P, [_P, c_size_t]),
    "fidius_discovery_skipped_count": (c_size_t, [_P]),
    "fidius_discovery_skipped_path": (c_char_p, [_P, c_size_t]),
    "fidius_discovery_skipped_plugin": (c_char_p, [_P, c_size_t]),
    "fidius_discovery_skipped_status": (_S, [_P, c_size_t]),
    "fidius_discovery_skipped_reason": (c_char_p, [_P, c_size_t]),
    "fidius_plugin_info_name": (c_char_p, [_P]),
    "fidius_plugin_info_interface_name": (c_char_p, [_P]),
    "fidius_plugin_info_interface_hash": (c_uint64, [_P]),
    "fidius_plugin_info_interface_version": (c_uint32, [_P]),
    "fidius_plugin_info_runtime": (c_uint32, [_P]),
    "fidius_plugin_info_buffer_strategy": (c_uint32, [_P]),
    "fidius_plugin_info_capabilities": (c_uint64, [_P]),
    "fidius_plugin_info_method_count": (c_uint32, [_P]),
    "fidius_plugin_info_abi_version": (c_uint32, [_P]),
    "fidius_plugin_info_path": (c_char_p, [_P]),
    # load options
    "fidius_load_options_new": (_P, []),
    "fidius_load_options_free": (None, [_P]),
    "fidius_load_options_set_config": (_S, [_P, c_char_p, c_size_t, _E]),
    "fidius_load_options_set_interface_hash": (_S, [_P, c_uint64, _E]),
    "fidius_load_options_set_egress_policy": (_S, [_P, _P, _E]),
    "fidius_load_options_set_interface_export": (_S, [_P, c_char_p, _E]),
    "fidius_load_options_set_grants": (_S, [_P, POINTER(c_char_p), c_size_t, _E]),
    "fidius_load_options_set_timeout_ms": (_S, [_P, c_uint64, _E]),
    "fidius_load_options_set_memory_limit": (_S, [_P, c_uint64, _E]),
    "fidius_load_options_set_fuel": (_S, [_P, c_uint64, _E]),
    "fidius_load_options_set_reuse_instance": (_S, [_P, c_bool, _E]),
    "fidius_load_options_set_wire_raw": (_S, [_P, c_char_p, c_bool, _E]),
    "fidius_load_options_set_schema": (_S, [_P, c_char_p, c_size_t, _E]),
    "fidius_load_options_set_schema_file": (_S, [_P, c_char_p, _E]),
    # plugins
    "fidius_host_load": (_S, [_P, c_char_p, _P, POINTER(c_void_p), _E]),
    "fidius_host_load_path": (_S, [_P, c_char_p, c_char_p, _P, POINTER(c_void_p), _E]),
    "fidius_plugin_free": (None, [_P]),
    "fidius_plugin_get_info": (_P, [_P]),
    "fidius_plugin_call": (_S, [_P, c_uint32, c_uint32, c_char_p, c_size_t, POINTER(_Bytes), _E]),
    "fidius_plugin_call_cancellable": (_S, [_P, c_uint32, c_uint32, c_char_p, c_size_t, _P, POINTER(_Bytes), _E]),
    "fidius_plugin_describe": (_S, [_P, POINTER(_Bytes), _E]),
    "fidius_bytes_free": (None, [POINTER(_Bytes)]),
    "fidius_plugin_method_metadata_count": (_S, [_P, c_uint32, POINTER(c_size_t), _E]),
    "fidius_plugin_method_metadata_get": (_S, [_P, c_uint32, c_size_t, POINTER(c_char_p), POINTER(c_char_p), _E]),
    "fidius_plugin_trait_metadata_count": (c_size_t, [_P]),
    "fidius_plugin_trait_metadata_get": (_S, [_P, c_size_t, POINTER(c_char_p), POINTER(c_char_p), _E]),
    "fidius_plugin_method_name": (c_char_p, [_P, c_uint32]),
    "fidius_plugin_method_index": (_S, [_P, c_char_p, POINTER(c_uint32), _E]),
    "fidius_plugin_warning_count": (c_size_t, [_P]),
    "fidius_plugin_warning": (c_char_p, [_P, c_size_t]),
    # cancel tokens
    "fidius_cancel_new": (_P, []),
    "fidius_cancel_trigger": (None, [_P]),
    "fidius_cancel_is_triggered": (c_bool, [_P]),
    "fidius_cancel_free": (None, [_P]),
    # egress
    "fidius_egress_policy_new": (_S, [_EGRESS_FN, c_void_p, _DESTROY_FN, POINTER(c_void_p), _E]),
    "fidius_egress_policy_set_allow_private_ranges": (_S, [_P, c_bool, _E]),
    "fidius_egress_policy_free": (None, [_P]),
    "fidius_egress_policy_set_socket_callback": (_S, [_P, _SOCKET_FN, _E]),
    "fidius_egress_policy_set_response_callback": (_S, [_P, _RESPONSE_FN, _E]),
    "fidius_socket_request_use": (c_uint32, [_P]),
    "fidius_socket_request_host": (c_char_p, [_P]),
    "fidius_socket_request_address": (c_char_p, [_P]),
    "fidius_socket_request_port": (ctypes.c_uint16, [_P]),
    "fidius_socket_request_plugin": (c_char_p, [_P]),
    "fidius_socket_request_set_deny_reason": (_S, [_P, c_char_p, _E]),
    "fidius_http_response_status": (ctypes.c_uint16, [_P]),
    "fidius_http_response_retry_available": (c_bool, [_P]),
    "fidius_http_response_header_count": (c_size_t, [_P]),
    "fidius_http_response_header": (_S, [_P, c_size_t, POINTER(c_char_p), POINTER(POINTER(c_uint8)), POINTER(c_size_t), _E]),
    "fidius_host_interface_new": (_S, [c_char_p, c_uint64, c_uint32, c_uint32, _HOST_FN, c_void_p, _DESTROY_FN,
                                       POINTER(c_void_p), _E]),
    "fidius_host_interface_free": (None, [_P]),
    "fidius_host_builder_add_host_interface": (_S, [_P, _P, _E]),
    "fidius_load_options_add_host_interface": (_S, [_P, _P, _E]),
    "fidius_host_call_set_output": (_S, [_P, c_char_p, c_size_t, _E]),
    "fidius_host_call_set_error": (_S, [_P, c_char_p, c_char_p, c_char_p, _E]),
    "fidius_host_call_set_failure": (_S, [_P, c_char_p, _E]),
    "fidius_http_request_method": (c_char_p, [_P]),
    "fidius_http_request_scheme": (c_char_p, [_P]),
    "fidius_http_request_authority": (c_char_p, [_P]),
    "fidius_http_request_host": (c_char_p, [_P]),
    "fidius_http_request_port": (ctypes.c_uint16, [_P]),
    "fidius_http_request_address_count": (c_size_t, [_P]),
    "fidius_http_request_address": (c_char_p, [_P, c_size_t]),
    "fidius_http_request_path_and_query": (c_char_p, [_P]),
    "fidius_http_request_plugin": (c_char_p, [_P]),
    "fidius_http_request_header_count": (c_size_t, [_P]),
    "fidius_http_request_header": (_S, [_P, c_size_t, POINTER(c_char_p), POINTER(POINTER(c_uint8)),
                                        POINTER(c_size_t), _E]),
    "fidius_http_request_set_header": (_S, [_P, c_char_p, c_char_p, c_size_t, _E]),
    "fidius_http_request_add_header": (_S, [_P, c_char_p, c_char_p, c_size_t, _E]),
    "fidius_http_request_remove_header": (_S, [_P, c_char_p, _E]),
    "fidius_http_request_set_deny_reason": (_S, [_P, c_char_p, _E]),
    # streams
    "fidius_plugin_stream": (_S, [_P, c_uint32, c_uint32, c_char_p, c_size_t, _SOURCE_FN, c_void_p, _DESTROY_FN,
                                  POINTER(c_void_p), _E]),
    "fidius_plugin_call_streaming": (_S, [_P, c_uint32, c_uint32, c_char_p, c_size_t, _SOURCE_FN, c_void_p,
                                          _DESTROY_FN, POINTER(_Bytes), _E]),
    "fidius_stream_next": (_S, [_P, POINTER(_Bytes), _E]),
    "fidius_stream_free": (None, [_P]),
    "fidius_stream_cancel": (_S, [_P, _E]),
}

for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _f = getattr(_lib, _name)
    _f.restype = _restype
    _f.argtypes = _argtypes


def _s(b: Optional[bytes]) -> Optional[str]:
    return None if b is None else b.decode("utf-8")


def _b(s: Optional[str]) -> Optional[bytes]:
    return None if s is None else s.encode("utf-8")


def _buf(value: Any, what: str) -> bytes:
    """Caller-given binary input as bytes. ``bytes(5)`` would be five zero bytes, so an int
    (or bool) is refused instead of silently becoming a buffer of that many zeros."""
    if isinstance(value, int):
        raise TypeError(f"{what} must be bytes-like (bytes, bytearray, memoryview), "
                        f"not {type(value).__name__}")
    if isinstance(value, str):
        raise TypeError(f"{what} must be bytes-like, not str (encode it first)")
    return bytes(value)


def version() -> str:
    """The loaded libfidius' version, "MAJOR.MINOR.PATCH"."""
    return _s(_lib.fidius_version())


# ---------------------------------------------------------------- errors

class FidiusError(Exception):
    """A failed libfidius call: .status and libfidius' message."""

    def __init__(self, status: int, message: str):
        try:
            status = Status(status)
        except ValueError:
            pass
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self):
        name = self.status.name if isinstance(self.status, Status) else str(self.status)
        return f"{name}: {self.message}"


class HostFunctionError(Exception):
    """Raised by a host function: the calling plugin sees its ``PluginError`` with this
    code, message and details (JSON text, or None)."""

    def __init__(self, code: str, message: str, details: Optional[str] = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


class PluginError(FidiusError):
    """An error the plugin itself returned (Status.PLUGIN_ERROR)."""

    def __init__(self, message: str, code: str, plugin_message: Optional[str], details: Optional[str]):
        super().__init__(Status.PLUGIN_ERROR, message)
        self.code = code                        #: PluginError.code, e.g. "DIV_ZERO"
        self.plugin_message = plugin_message    #: PluginError.message, as the plugin wrote it
        self.details = details                  #: PluginError.details (JSON by convention) or None


class ClosedError(ValueError):
    """Use of a Host, Plugin or EgressPolicy after close()."""


def _error(status: int, err: c_void_p) -> FidiusError:
    if not err.value:
        return FidiusError(status, _s(_lib.fidius_status_name(status)))
    try:
        message = _s(_lib.fidius_error_message(err))
        code = _s(_lib.fidius_error_plugin_code(err))
        if code is not None:
            return PluginError(message, code, _s(_lib.fidius_error_plugin_message(err)),
                               _s(_lib.fidius_error_plugin_details(err)))
        return FidiusError(_lib.fidius_error_status(err), message)
    finally:
        _lib.fidius_error_free(err)


def _check(call, *args):
    """Call a fallible C function with a trailing fidius_error** and raise on failure."""
    err = c_void_p()
    status = call(*args, byref(err))
    if status != Status.OK:
        raise _error(status, err)
    if err.value:
        _lib.fidius_error_free(err)


def _take_bytes(out: _Bytes) -> bytes:
    data = ctypes.string_at(out.data, out.len) if out.len else b""
    _lib.fidius_bytes_free(byref(out))
    return data


# ---------------------------------------------------------------- handles

class _Handle:
    """A C handle with a use count: close() marks it closed, and the last
    user frees it, so a free never races with a call (the C API's rule)."""

    def __init__(self, ptr: int, free):
        self._ptr = ptr
        self._free = free
        self._users = 0
        self._closed = False
        self._lock = threading.Lock()

    def __enter__(self) -> int:
        with self._lock:
            if self._closed:
                raise ClosedError("handle is closed")
            self._users += 1
            return self._ptr

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            self._users -= 1
            last = self._closed and self._users == 0
        if last:
            self._release()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            last = self._users == 0
        if last:
            self._release()

    def _release(self):
        ptr, self._ptr = self._ptr, None
        if ptr:
            self._free(ptr)


# ---------------------------------------------------------------- callbacks
#
# libfidius gets module-level ctypes trampolines (never collected) and, as
# user_data, an integer key into _callbacks. The key's entry keeps the Python
# callable alive until libfidius calls destroy.

_callbacks: Dict[int, Callable] = {}
_callbacks_lock = threading.Lock()
_next_key = itertools.count(1)


def _register(fn: Callable) -> int:
    key = next(_next_key)
    with _callbacks_lock:
        _callbacks[key] = fn
    return key


def _unregister(key: int):
    with _callbacks_lock:
        _callbacks.pop(key, None)


def _with_callback(fn: Callable, create: Callable[[int], None]) -> None:
    """Register ``fn`` and hand its key to ``create`` (a C call taking _destroy_trampoline);
    if that fails, libfidius does not call destroy (documented), so unregister here."""
    key = _register(fn)
    try:
        create(key)
    except BaseException:
        _unregister(key)
        raise


def _live_callbacks() -> int:
    with _callbacks_lock:
        return len(_callbacks)


@_DESTROY_FN
def _destroy_trampoline(user_data):
    try:
        _unregister(user_data)
    except BaseException:  # never unwind into libfidius
        pass


@_EGRESS_FN
def _egress_trampoline(user_data, request):
    # Anything but an explicit Verdict.ALLOW denies. ctypes would return 0
    # (= ALLOW) for an exception escaping this function, so nothing may.
    req = HttpRequest(request)
    try:
        with _callbacks_lock:
            fn = _callbacks[user_data]
        verdict = fn(req)
        return int(Verdict.ALLOW) if verdict is Verdict.ALLOW else int(Verdict.DENY)
    except BaseException as e:
        try:
            req.set_deny_reason(f"egress policy raised {type(e).__name__}: {e}")
        except BaseException:
            pass
        return int(Verdict.DENY)
    finally:
        req._invalidate()


@_SOCKET_FN
def _socket_trampoline(user_data, request):
    # As for egress: anything but an explicit Verdict.ALLOW denies, and nothing escapes.
    req = SocketRequest(request)
    try:
        with _callbacks_lock:
            fn = _callbacks[user_data].socket
        verdict = fn(req)
        return int(Verdict.ALLOW) if verdict is Verdict.ALLOW else int(Verdict.DENY)
    except BaseException as e:
        try:
            req.set_deny_reason(f"socket policy raised {type(e).__name__}: {e}")
        except BaseException:
            pass
        return int(Verdict.DENY)
    finally:
        req._invalidate()


@_RESPONSE_FN
def _response_trampoline(user_data, request, response):
    # Anything but an explicit ResponseDirective.RETRY_ONCE (an exception too) forwards.
    req, resp = HttpRequest(request), HttpResponse(response)
    try:
        with _callbacks_lock:
            fn = _callbacks[user_data].response
        directive = fn(req, resp)
        return int(ResponseDirective.RETRY_ONCE) if directive is ResponseDirective.RETRY_ONCE else int(ResponseDirective.FORWARD)
    except BaseException:
        return int(ResponseDirective.FORWARD)
    finally:
        req._invalidate()
        resp._invalidate()


@_HOST_FN
def _host_fn_trampoline(user_data, index, data, length, call):
    # Runs on the thread running the plugin's code; nothing may escape it.
    try:
        try:
            with _callbacks_lock:
                fn = _callbacks[user_data]
            out = fn(int(index), ctypes.string_at(data, length) if length else b"")
            out = b"" if out is None else _buf(out, "host function result")
            _lib.fidius_host_call_set_output(call, out, len(out), None)
        except HostFunctionError as e:
            _lib.fidius_host_call_set_error(call, _b(e.code), _b(e.message), _b(e.details), None)
        except BaseException as e:
            _lib.fidius_host_call_set_failure(call, _b(f"host function raised {type(e).__name__}: {e}"), None)
    except BaseException:
        pass


@_LOG_FN
def _log_trampoline(user_data, level, message):
    try:
        with _callbacks_lock:
            fn = _callbacks[user_data]
        fn(int(level), _s(message))
    except BaseException:
        pass


# Item sources (streams' input). A _Source is registered like any callback, under a key
# passed as user_data; libfidius calls _source_destroy_trampoline exactly once when it no
# longer needs the source: when the input ends, when the call returns or the stream ends or
# is freed, and ALSO when fidius_plugin_stream / fidius_plugin_call_streaming fail (unlike
# the other registrations, whose failure calls no destroy). The registry's entry is what
# keeps the user's iterable alive; destroy drops it (and the binding's reference to the
# iterator), so the iterable lives exactly as long as libfidius may pull from it.

_SOURCE_ITEM, _SOURCE_END, _SOURCE_RAISED, _SOURCE_GONE = 1, 0, -1, -2

#: Destroys of a source key that was not (or no longer) registered: a second destroy of one
#: source would show here. Tests check it stays unchanged.
_stray_source_destroys = 0


class _Source:
    """An iterable of wire-byte items feeding a plugin's ``Stream<T>`` argument."""

    def __init__(self, items: Iterable[bytes]):
        if isinstance(items, (bytes, bytearray, memoryview, str)):
            raise TypeError("items must be an iterable of items (each one bytes-like), "
                            f"not one {type(items).__name__}")
        self._it = iter(items)
        self._current: Optional[bytes] = None   # the last item, valid until the next pull
        self.error: Optional[BaseException] = None
        self.destroyed = False

    def pull(self, item, item_len) -> int:
        it = self._it
        if it is None:
            return _SOURCE_GONE
        try:
            data = _buf(next(it), "a stream item")
        except StopIteration:
            self._current = None
            return _SOURCE_END
        except BaseException as e:  # kept for the call (or next()) that reports STREAM_SOURCE
            self.error = e
            self._current = None
            return _SOURCE_RAISED
        self._current = data   # libfidius copies it before pulling again
        item[0] = ctypes.cast(data, POINTER(c_uint8))
        item_len[0] = len(data)
        return _SOURCE_ITEM

    def destroy(self) -> None:
        self.destroyed = True
        self._it, self._current = None, None

    def failure(self, status: int, err: c_void_p) -> BaseException:
        """The exception for a failed call or pull fed by this source: libfidius' error,
        raised from what the iterable raised (if it did)."""
        e = _error(status, err)
        exc, self.error = self.error, None
        if exc is None:
            return e
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: as they are
            return exc
        if e.status == Status.STREAM_SOURCE and not isinstance(e, PluginError):
            e = FidiusError(e.status, f"{e.message} (the items' iterable raised {type(exc).__name__}: {exc})")
        e.__cause__ = exc
        return e


def _failure(status: int, err: c_void_p, source: Optional[_Source]) -> BaseException:
    return _error(status, err) if source is None else source.failure(status, err)


def _fed(items: Iterable[bytes], run: Callable[[int], Any]) -> Tuple[_Source, Any]:
    """Register a _Source over ``items`` and return it with ``run(key)`` (the C call). If the
    C function was never reached (a closed plugin, a ctypes argument error), no destroy comes,
    so the entry is dropped here; once reached, libfidius destroys it (popping a key twice is
    harmless: keys are never reused)."""
    source = _Source(items)
    key = _register(source)
    try:
        return source, run(key)
    except BaseException:
        _unregister(key)
        raise


@_SOURCE_FN
def _source_trampoline(user_data, item, item_len):
    # Runs on the thread pulling (the caller of call_streaming or of next() on a bidirectional
    # stream), which released the GIL in the ctypes call: ctypes takes it back for this. An
    # exception escaping would make ctypes return 0 (= the end of the input, silently), so
    # nothing may: the iterable's exceptions are kept by _Source.pull and answered with -1.
    try:
        with _callbacks_lock:
            source = _callbacks.get(user_data)
        return _SOURCE_GONE if source is None else source.pull(item, item_len)
    except BaseException:
        return _SOURCE_GONE


@_DESTROY_FN
def _source_destroy_trampoline(user_data):
    global _stray_source_destroys
    try:
        with _callbacks_lock:
            source = _callbacks.pop(user_data, None)
            if source is None:
                _stray_source_destroys += 1
        if source is not None:
            source.destroy()
    except BaseException:  # never unwind into libfidius
        pass


class _Owner:
    """Owns one libfidius handle: close() releases it (also at garbage collection), and
    the object is its own context manager."""

    def _own(self, ptr: int, free) -> None:
        self._h = _Handle(ptr, free)
        self._finalizer = weakref.finalize(self, self._h.close)

    def close(self) -> None:
        """Release the caller's reference."""
        self._h.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------- values

@dataclass(frozen=True)
class PluginInfo:
    """What a plugin is (a copy of a fidius_plugin_info)."""
    name: str
    interface_name: Optional[str]
    interface_hash: int          #: 0 where not known (packages before loading)
    interface_version: int
    runtime: Runtime
    buffer_strategy: BufferStrategy
    capabilities: int
    method_count: int            #: 0 where not known (packages before loading)
    abi_version: int             #: 400 or 500 for native plugins, 0 for packages
    path: Optional[str]

    @classmethod
    def _from(cls, info) -> "PluginInfo":
        return cls(
            name=_s(_lib.fidius_plugin_info_name(info)),
            interface_name=_s(_lib.fidius_plugin_info_interface_name(info)),
            interface_hash=_lib.fidius_plugin_info_interface_hash(info),
            interface_version=_lib.fidius_plugin_info_interface_version(info),
            runtime=Runtime(_lib.fidius_plugin_info_runtime(info)),
            buffer_strategy=BufferStrategy(_lib.fidius_plugin_info_buffer_strategy(info)),
            capabilities=_lib.fidius_plugin_info_capabilities(info),
            method_count=_lib.fidius_plugin_info_method_count(info),
            abi_version=_lib.fidius_plugin_info_abi_version(info),
            path=_s(_lib.fidius_plugin_info_path(info)),
        )


@dataclass(frozen=True)
class Skipped:
    """A file or directory discovery passed over, and why."""
    path: str
    plugin: Optional[str]
    status: int
    reason: str


@dataclass(frozen=True)
class Discovery:
    plugins: Tuple[PluginInfo, ...]
    skipped: Tuple[Skipped, ...]


@dataclass
class LoadOptions:
    """Per-load settings; the defaults are libfidius' defaults."""
    config: Optional[bytes] = None        #: bincode of the plugin's config type (Python plugins: JSON text)
    interface_hash: int = 0               #: when not 0, required of the plugin
    egress: Optional["EgressPolicy"] = None  #: overrides the host's policy (WASM)
    interface_export: Optional[str] = None   #: the component's exported interface (WASM)
    #: seconds; stops longer WASM and Python calls (0: none). A Python plugin's runner is
    #: killed, and the next call starts a fresh one.
    timeout: float = 0.0
    memory_limit: int = 0                 #: bytes per WASM instance (0: 4 GiB); a Python runner's address space
    fuel: int = 0                         #: fuel per WASM call (0: unmetered)
    reuse_instance: bool = False
    wire_raw: Dict[str, bool] = None      #: per WASM method name: is it #[wire(raw)]
    #: packages: grant exactly these capabilities, replacing the manifest's list
    #: (None: the manifest's; ``[]``: nothing). Not checked against the host's allow-list.
    grants: Optional[Sequence[str]] = None
    #: native plugins: the interface schema, WIT text (str or UTF-8 bytes), or a file holding
    #: it (read when the load starts; at most 1 MiB); set at most one. Overrides a
    #: ``<library>.wit`` and the host's schemas; must list at least the plugin's methods
    #: (else Status.SCHEMA_MISMATCH). Ignored for WASM plugins.
    schema: Optional[Union[str, bytes]] = None
    schema_file: Optional[str] = None
    #: host interfaces offered to this plugin, before the host's of the same name
    host_interfaces: Sequence["HostInterface"] = ()

    def _build(self) -> int:
        opts = _lib.fidius_load_options_new()
        if not opts:
            raise MemoryError("fidius_load_options_new")
        try:
            if self.config is not None:
                config = _buf(self.config, "LoadOptions.config")
                _check(_lib.fidius_load_options_set_config, opts, config, len(config))
            if self.interface_hash:
                _check(_lib.fidius_load_options_set_interface_hash, opts, self.interface_hash)
            if self.egress is not None:
                with self.egress._h as p:
                    _check(_lib.fidius_load_options_set_egress_policy, opts, p)
            if self.interface_export is not None:
                _check(_lib.fidius_load_options_set_interface_export, opts, _b(self.interface_export))
            if self.timeout > 0:
                ms = max(1, int(-(-self.timeout * 1000 // 1)))
                _check(_lib.fidius_load_options_set_timeout_ms, opts, ms)
            if self.memory_limit:
                _check(_lib.fidius_load_options_set_memory_limit, opts, self.memory_limit)
            if self.fuel:
                _check(_lib.fidius_load_options_set_fuel, opts, self.fuel)
            if self.reuse_instance:
                _check(_lib.fidius_load_options_set_reuse_instance, opts, True)
            for name, raw in (self.wire_raw or {}).items():
                _check(_lib.fidius_load_options_set_wire_raw, opts, _b(name), bool(raw))
            if self.grants is not None:
                if isinstance(self.grants, str):
                    raise TypeError("grants must be a sequence of capability names, not a str")
                grants = [_b(g) for g in self.grants]
                array = (c_char_p * len(grants))(*grants) if grants else None
                _check(_lib.fidius_load_options_set_grants, opts, array, len(grants))
            if self.schema is not None and self.schema_file is not None:
                raise FidiusError(Status.INVALID_ARGUMENT, "LoadOptions: set schema or schema_file, not both")
            if self.schema is not None:
                wit = _b(self.schema) if isinstance(self.schema, str) else _buf(self.schema, "LoadOptions.schema")
                _check(_lib.fidius_load_options_set_schema, opts, wit, len(wit))
            if self.schema_file is not None:
                _check(_lib.fidius_load_options_set_schema_file, opts, _b(os.fspath(self.schema_file)))
            for interface in self.host_interfaces or ():
                with interface._h as p:
                    _check(_lib.fidius_load_options_add_host_interface, opts, p)
            return opts
        except BaseException:
            _lib.fidius_load_options_free(opts)
            raise


# ---------------------------------------------------------------- objects

class HostInterface(_Owner):
    """A host interface plugins call (fidius ``#[host_interface]``), implemented in Python.

    ``name``, ``hash``, ``version`` and ``fn_count`` are the identity the plugins were built
    against: the trait's name and the ``<Trait>_HOST_INTERFACE_HASH`` / ``_VERSION`` /
    ``<Trait>_HOST_FN_COUNT`` constants the macro generates (a native plugin's are listed by
    ``Plugin.describe()["host_imports"]``). ``function(index, args)`` gets the function's
    index in the trait and the wire bytes of its arguments (a tuple), and returns the wire
    bytes of its result (None for ``()``); raising HostFunctionError gives the plugin that
    PluginError, any other exception reaches it as the host panicking.

    It runs on the thread running the plugin's code (native) or on a thread libfidius starts
    for the call (WASM), holding the GIL only while Python runs, possibly concurrently; a WASM
    call's timeout or Cancel stops the guest waiting for it. It may call
    plugins, even the one calling it (not a WASM plugin with a reused instance). Native: a
    version or hash mismatch fails the load (Status.HOST_INTERFACE), and a library is bound
    to one live implementation of an interface per process. WASM: checked on every call.
    Hosts, load options and plugins using it hold their own references: close() it whenever.
    """

    def __init__(self, name: str, hash: int, version: int, fn_count: int,
                 function: Callable[[int, bytes], Optional[bytes]]):
        if not callable(function):
            raise TypeError("function must be callable")
        out = c_void_p()
        _with_callback(function, lambda key: _check(
            _lib.fidius_host_interface_new, _b(name), hash, version, fn_count, _host_fn_trampoline, key,
            _destroy_trampoline, byref(out)))
        self.name = name
        self._own(out.value, _lib.fidius_host_interface_free)


class EgressPolicy(_Owner):
    """An egress policy for WASM plugins' outbound HTTP.

    ``callback(request: HttpRequest)`` runs before each request is sent, on a
    thread libfidius starts for it, which ends afterwards (never the thread
    that called the plugin, which waits), concurrently when several requests are in flight; it must return
    ``Verdict.ALLOW`` to let the request through (anything else, or an
    exception, denies) and must not call into the plugin whose request it
    decides. Hosts, load options and plugins using the policy hold their own
    references: close() it whenever; the callback stays alive until libfidius
    releases its last reference.

    The SSRF floor: a request whose destination resolves only to private or
    special-purpose addresses (loopback, RFC 1918, link-local, ...) is denied
    before the callback is asked, unless ``allow_private_ranges`` is true
    (or set later with set_allow_private_ranges()).

    ``socket(request: SocketRequest) -> Verdict`` (optional) is the second key
    of the ``tcp``/``udp`` capabilities: it decides every TCP connect, UDP bind
    and send, and DNS lookup of those plugins (a package asking for them does not
    load under a policy without it). ``response(request: HttpRequest, response:
    HttpResponse) -> ResponseDirective`` (optional) sees each response's status
    and headers; ResponseDirective.RETRY_ONCE sends the request again, once, after
    asking ``callback`` again on a fresh copy (the request is read-only here).
    Both run like ``callback``; an exception denies (socket) or forwards (response).
    """

    def __init__(self, callback: Callable[["HttpRequest"], Verdict], *, allow_private_ranges: bool = False,
                 socket: Optional[Callable[["SocketRequest"], Verdict]] = None,
                 response: Optional[Callable[["HttpRequest", "HttpResponse"], "ResponseDirective"]] = None):
        for name, fn in (("callback", callback), ("socket", socket), ("response", response)):
            if fn is not None and not callable(fn) or (name == "callback" and fn is None):
                raise TypeError(f"{name} must be callable")
        out = c_void_p()
        hooks = _PolicyHooks(callback, socket, response)
        _with_callback(hooks, lambda key: _check(
            _lib.fidius_egress_policy_new, _egress_trampoline, key, _destroy_trampoline, byref(out)))
        self._own(out.value, _lib.fidius_egress_policy_free)
        if allow_private_ranges:
            self.set_allow_private_ranges(True)
        with self._h as p:
            if socket is not None:
                _check(_lib.fidius_egress_policy_set_socket_callback, p, _socket_trampoline)
            if response is not None:
                _check(_lib.fidius_egress_policy_set_response_callback, p, _response_trampoline)

    def set_allow_private_ranges(self, allow: bool) -> None:
        """Let (or stop letting) this policy's requests go to private and special-purpose
        addresses, which the SSRF floor otherwise removes before the callback is asked.
        Applies to requests decided afterwards, wherever the policy is registered."""
        with self._h as p:
            _check(_lib.fidius_egress_policy_set_allow_private_ranges, p, bool(allow))


class _PolicyHooks:
    """A policy's callbacks, registered under the policy's one user-data key."""

    def __init__(self, egress, socket, response):
        self.egress, self.socket, self.response = egress, socket, response

    def __call__(self, request):
        return self.egress(request)


class _Borrowed:
    """A C pointer valid only during one callback, guarded by a lock: a method called
    from another thread (or after the callback returned) either runs before the
    callback ends or raises ClosedError; it never reads a pointer libfidius freed."""

    _what = "a borrowed request"

    def __init__(self, ptr):
        self._ptr = ptr
        self._lock = threading.Lock()

    def _invalidate(self):
        with self._lock:
            self._ptr = None

    @contextlib.contextmanager
    def _p(self):
        with self._lock:
            if not self._ptr:
                raise ClosedError(f"{self._what} is valid only during its callback")
            yield self._ptr


class SocketRequest(_Borrowed):
    """One socket operation of a WASM plugin with ``tcp``/``udp``; valid only during
    its socket callback."""

    _what = "a SocketRequest"

    @property
    def use(self) -> SocketUse:
        with self._p() as p:
            return SocketUse(int(_lib.fidius_socket_request_use(p)))

    @property
    def host(self) -> Optional[str]:
        """The name looked up (DNS_LOOKUP), or the name this plugin instance looked up
        that resolved to the address (connect, send); None when there is none."""
        with self._p() as p:
            v = _lib.fidius_socket_request_host(p)
            return None if v is None else _s(v)

    @property
    def address(self) -> Optional[str]:
        """The peer's (or, for a bind, the local) address as text; None for a lookup."""
        with self._p() as p:
            v = _lib.fidius_socket_request_address(p)
            return None if v is None else _s(v)

    @property
    def port(self) -> int:
        with self._p() as p:
            return int(_lib.fidius_socket_request_port(p))

    @property
    def plugin(self) -> str:
        with self._p() as p:
            return _s(_lib.fidius_socket_request_plugin(p))

    def set_deny_reason(self, reason: str) -> None:
        """The reason for denying; reaches the host (error, log), never the guest."""
        with self._p() as p:
            _check(_lib.fidius_socket_request_set_deny_reason, p, _b(reason))


class HttpResponse(_Borrowed):
    """The status and headers of a response; valid only during its response callback."""

    _what = "an HttpResponse"

    @property
    def status(self) -> int:
        with self._p() as p:
            return int(_lib.fidius_http_response_status(p))

    @property
    def retry_available(self) -> bool:
        """Whether RETRY_ONCE would retry (False for a retry's response, or a body not kept)."""
        with self._p() as p:
            return bool(_lib.fidius_http_response_retry_available(p))

    @property
    def headers(self) -> List[Tuple[str, bytes]]:
        out = []
        with self._p() as p:
            for i in range(_lib.fidius_http_response_header_count(p)):
                name, value, length = c_char_p(), POINTER(c_uint8)(), c_size_t()
                _check(_lib.fidius_http_response_header, p, i, byref(name), byref(value), byref(length))
                out.append((_s(name.value), ctypes.string_at(value, length.value) if length.value else b""))
        return out


class HttpRequest:
    """One outbound HTTP request; valid only during its egress callback.

    The borrowed C pointer is guarded by a lock: a method called from another thread
    (or after the callback returned) either runs before the callback ends, holding the
    request valid, or raises ClosedError; it never reads a pointer libfidius freed."""

    def __init__(self, ptr):
        self._ptr = ptr
        self._lock = threading.Lock()

    def _invalidate(self):
        """End of the callback: waits for methods in flight, then makes the request unusable."""
        with self._lock:
            self._ptr = None

    @contextlib.contextmanager
    def _p(self):
        with self._lock:
            if not self._ptr:
                raise ClosedError("an HttpRequest is valid only during its egress callback")
            yield self._ptr

    def _str(self, fn) -> str:
        with self._p() as p:
            return _s(fn(p))

    @property
    def method(self) -> str:
        return self._str(_lib.fidius_http_request_method)

    @property
    def scheme(self) -> str:
        return self._str(_lib.fidius_http_request_scheme)

    @property
    def authority(self) -> str:
        """The authority as the guest wrote it, "host" or "host:port" (see host, addresses)."""
        return self._str(_lib.fidius_http_request_authority)

    @property
    def host(self) -> str:
        """The destination host, canonical: an IP address in standard form ("127.0.0.1",
        whatever spelling the guest used) or a lower-case DNS name without a final dot."""
        return self._str(_lib.fidius_http_request_host)

    @property
    def port(self) -> int:
        """The destination port (the scheme's default when the authority has none)."""
        with self._p() as p:
            return int(_lib.fidius_http_request_port(p))

    @property
    def addresses(self) -> List[str]:
        """The addresses the request will be sent to (and only to those), in the order tried."""
        with self._p() as p:
            return [_s(_lib.fidius_http_request_address(p, i))
                    for i in range(_lib.fidius_http_request_address_count(p))]

    @property
    def path_and_query(self) -> str:
        return self._str(_lib.fidius_http_request_path_and_query)

    @property
    def plugin(self) -> str:
        """The name of the plugin making the request."""
        return self._str(_lib.fidius_http_request_plugin)

    @property
    def headers(self) -> List[Tuple[str, bytes]]:
        """(lowercase name, value bytes as the guest sent them), one per value."""
        out = []
        with self._p() as p:
            for i in range(_lib.fidius_http_request_header_count(p)):
                name, value, length = c_char_p(), POINTER(c_uint8)(), c_size_t()
                _check(_lib.fidius_http_request_header, p, i, byref(name), byref(value), byref(length))
                out.append((_s(name.value), ctypes.string_at(value, length.value) if length.value else b""))
        return out

    def set_header(self, name: str, value: Union[str, bytes]) -> None:
        """Set a header, replacing every existing value (e.g. inject Authorization)."""
        v = value.encode("utf-8") if isinstance(value, str) else _buf(value, "header value")
        with self._p() as p:
            _check(_lib.fidius_http_request_set_header, p, _b(name), v, len(v))

    def add_header(self, name: str, value: Union[str, bytes]) -> None:
        v = value.encode("utf-8") if isinstance(value, str) else _buf(value, "header value")
        with self._p() as p:
            _check(_lib.fidius_http_request_add_header, p, _b(name), v, len(v))

    def remove_header(self, name: str) -> None:
        with self._p() as p:
            _check(_lib.fidius_http_request_remove_header, p, _b(name))

    def set_deny_reason(self, reason: str) -> None:
        """The reason for denying; reaches the host (error, log), never the guest."""
        with self._p() as p:
            _check(_lib.fidius_http_request_set_deny_reason, p, _b(reason))


class Host(_Owner):
    """Finds and loads plugins. Thread-safe. Plugins outlive the host they came from."""

    def __init__(self, search_paths: Sequence[str] = (), *, load_policy: LoadPolicy = LoadPolicy.LENIENT,
                 require_signature: bool = False, trusted_keys: Sequence[bytes] = (),
                 trusted_key_files: Sequence[str] = (), interface_hash: int = 0,
                 buffer_strategy: BufferStrategy = BufferStrategy.NONE,
                 egress: Optional[EgressPolicy] = None,
                 log: Optional[Callable[[int, str], None]] = None,
                 trust_precompiled: bool = False,
                 allow_capabilities: Sequence[str] = (),
                 schemas: Sequence[Union[str, bytes]] = (),
                 schema_files: Sequence[str] = (),
                 host_interfaces: Sequence[HostInterface] = (),
                 python_interpreter: Optional[Union[str, "os.PathLike[str]"]] = None,
                 compile_cache: Optional[Union[str, "os.PathLike[str]"]] = None):
        """``log(level, message)`` (1 error, 2 warning, 3 info) runs on any thread, concurrently.

        ``trust_precompiled``: deserialize a package's ``.cwasm`` even when no trusted key's
        signature covers it (by default an unsigned ``.cwasm`` is ignored, with a plugin
        warning, and the ``.wasm`` is compiled). Only when whoever can write the search paths
        is as trusted as the host itself.

        ``allow_capabilities``: the capabilities packages may have, as names or patterns
        where ``*`` matches any run of characters (``"env:LOG_*"``, ``"stdout"``). Empty
        (the default) allows everything but ``env:*``, ``args``, ``network`` and ``fs:*``; any pattern
        replaces that default (``"@default"`` stands for it: ``["@default", "env:LOG_*"]``
        extends it). A package asking for more fails to load (Status.CAPABILITY).

        ``schemas`` (WIT text, str or UTF-8 bytes) and ``schema_files`` (read now, at most
        1 MiB each): interface schemas, as ``fidius wit`` or ``fidius_build::emit_wit()`` write
        them. Native plugins whose interface one declares (the trait ``PriceEngine`` is the
        WIT interface ``price-engine``) get method names and types from it, so they can be
        called by name, with JSON and invoke(), and described; unless their load options or a
        ``<library>.wit`` beside the library give one. Not valid WIT: Status.INVALID_ARGUMENT.

        ``host_interfaces``: HostInterface objects offered to every plugin loaded.

        ``python_interpreter``: the interpreter that runs Python plugins (``runtime =
        "python"`` packages), a path or a command name looked up on the PATH (None: libfidius'
        default, ``python3``). Each loaded Python plugin runs in a process of its own started
        from it; no second interpreter is loaded into this process. It is not checked here: a
        missing one fails only Python loads (Status.LIBRARY_LOAD, naming it). ``""``:
        Status.INVALID_ARGUMENT.

        ``compile_cache``: a directory (absolute; made with mode 0700 when missing) where
        compiled WASM components are kept as ``.cwasm`` files named by the component's SHA-256
        and the engine's compatibility, so that the next process loading the same package
        deserializes instead of compiling (None, the default: no cache). A compiled component
        is machine code that runs in this process unchecked, so the directory must belong to
        this user and be writable by no one else (Status.FILE_REFUSED here; should it change
        later, each load compiles without it and says so in ``plugin.warnings()``); only
        regular 0600 files of this user are read. A relative path: Status.INVALID_ARGUMENT
        (libfidius checks it; it is not resolved against the working directory here).
        """
        b = _lib.fidius_host_builder_new()
        if not b:
            raise MemoryError("fidius_host_builder_new")
        try:
            for path in search_paths:
                _check(_lib.fidius_host_builder_add_search_path, b, _b(os.fspath(path)))
            if load_policy != LoadPolicy.LENIENT:
                _check(_lib.fidius_host_builder_set_load_policy, b, int(load_policy))
            if require_signature:
                _check(_lib.fidius_host_builder_set_require_signature, b, True)
            if trust_precompiled:
                _check(_lib.fidius_host_builder_set_trust_precompiled, b, True)
            if python_interpreter is not None:
                _check(_lib.fidius_host_builder_set_python_interpreter, b, _b(os.fspath(python_interpreter)))
            if compile_cache is not None:
                _check(_lib.fidius_host_builder_set_compile_cache, b, _b(os.fspath(compile_cache)))
            if isinstance(allow_capabilities, str):
                raise TypeError("allow_capabilities must be a sequence of patterns, not a str")
            for pattern in allow_capabilities:
                _check(_lib.fidius_host_builder_allow_capability, b, _b(pattern))
            for key in trusted_keys:
                key = _buf(key, "trusted key")
                _check(_lib.fidius_host_builder_add_trusted_key, b, key, len(key))
            for path in trusted_key_files:
                _check(_lib.fidius_host_builder_add_trusted_key_file, b, _b(os.fspath(path)))
            if isinstance(schemas, (str, bytes)):
                raise TypeError("schemas must be a sequence of WIT texts, not one")
            for wit in schemas:
                wit = _b(wit) if isinstance(wit, str) else _buf(wit, "schema")
                _check(_lib.fidius_host_builder_add_schema, b, wit, len(wit))
            if isinstance(schema_files, (str, bytes)):
                raise TypeError("schema_files must be a sequence of paths, not a str")
            for path in schema_files:
                _check(_lib.fidius_host_builder_add_schema_file, b, _b(os.fspath(path)))
            for interface in host_interfaces:
                with interface._h as p:
                    _check(_lib.fidius_host_builder_add_host_interface, b, p)
            if interface_hash:
                _check(_lib.fidius_host_builder_set_interface_hash, b, interface_hash)
            if buffer_strategy != BufferStrategy.NONE:
                _check(_lib.fidius_host_builder_set_buffer_strategy, b, int(buffer_strategy))
            if egress is not None:
                with egress._h as p:
                    _check(_lib.fidius_host_builder_set_egress_policy, b, p)
            if log is not None:
                _with_callback(log, lambda key: _check(
                    _lib.fidius_host_builder_set_log_callback, b, _log_trampoline, key, _destroy_trampoline))
            out = c_void_p()
            _check(_lib.fidius_host_builder_build, b, byref(out))
        finally:
            _lib.fidius_host_builder_free(b)
        self._own(out.value, _lib.fidius_host_free)

    def discover(self) -> Discovery:
        """Scan the search paths; problems with single files are entries in .skipped."""
        with self._h as h:
            d = c_void_p()
            _check(_lib.fidius_host_discover, h, byref(d))
        try:
            plugins = tuple(PluginInfo._from(_lib.fidius_discovery_plugin(d, i))
                            for i in range(_lib.fidius_discovery_plugin_count(d)))
            skipped = tuple(Skipped(path=_s(_lib.fidius_discovery_skipped_path(d, i)),
                                    plugin=_s(_lib.fidius_discovery_skipped_plugin(d, i)),
                                    status=_lib.fidius_discovery_skipped_status(d, i),
                                    reason=_s(_lib.fidius_discovery_skipped_reason(d, i)))
                            for i in range(_lib.fidius_discovery_skipped_count(d)))
            return Discovery(plugins, skipped)
        finally:
            _lib.fidius_discovery_free(d)

    def load(self, name: str, options: Optional[LoadOptions] = None) -> "Plugin":
        """Load the plugin named ``name`` (a native type name or a package name)."""
        return self._load(None, name, options)

    def load_path(self, path: str, name: Optional[str] = None, options: Optional[LoadOptions] = None) -> "Plugin":
        """Load a native plugin from a library file; ``name`` picks one of several."""
        return self._load(os.fspath(path), name, options)

    def load_fid(self, path: str, options: Optional[LoadOptions] = None) -> "Plugin":
        """Load the package in a ``.fid`` archive (tar + bzip2, as ``fidius package pack``
        writes it), extracted into memory: nothing is written to disk."""
        opts = options._build() if options is not None else None
        try:
            out = c_void_p()
            with self._h as h:
                _check(_lib.fidius_host_load_fid, h, _b(os.fspath(path)), opts, byref(out))
            return Plugin(out.value)
        finally:
            if opts:
                _lib.fidius_load_options_free(opts)

    def unpack_fid(self, path: str, dest_dir: str) -> str:
        """Extract the package in a ``.fid`` archive into ``dest_dir`` (created if missing) as
        ``dest_dir/<name>-<version>``, replacing a directory of that name; returns its path."""
        out = _Bytes()
        with self._h as h:
            _check(_lib.fidius_host_unpack_fid, h, _b(os.fspath(path)), _b(os.fspath(dest_dir)), byref(out))
        return _take_bytes(out).decode("utf-8")

    def _load(self, path, name, options):
        opts = options._build() if options is not None else None
        try:
            out = c_void_p()
            with self._h as h:
                if path is None:
                    _check(_lib.fidius_host_load, h, _b(name), opts, byref(out))
                else:
                    _check(_lib.fidius_host_load_path, h, _b(path), _b(name), opts, byref(out))
            return Plugin(out.value)
        finally:
            if opts:
                _lib.fidius_load_options_free(opts)

    def precompile_component(self, component: bytes) -> bytes:
        """Ahead-of-time compile component bytes into .cwasm bytes."""
        component = _buf(component, "component")
        out = _Bytes()
        with self._h as h:
            _check(_lib.fidius_host_precompile_component, h, component, len(component), byref(out))
        return _take_bytes(out)


class Plugin(_Owner):
    """A loaded plugin instance. Thread-safe; close() waits for calls in flight."""

    def __init__(self, ptr: int):
        self._own(ptr, _lib.fidius_plugin_free)
        with self._h as p:
            self.info = PluginInfo._from(_lib.fidius_plugin_get_info(p))  #: copied; valid after close()

    def call(self, method: int, fmt: Format, data: bytes = b"", *, cancel: Optional["Cancel"] = None) -> bytes:
        """Call ``method`` (its index, in declaration order) with ``data`` encoded as ``fmt``.

        ``cancel``: a Cancel token; once triggered (from any thread) the call stops with
        Status.CANCELLED: a WASM call wherever it is, a native call only if the token was
        triggered before it started."""
        data = _buf(data, "call input")
        out = _Bytes()
        with self._h as p:
            if cancel is None:
                _check(_lib.fidius_plugin_call, p, method, int(fmt), data, len(data), byref(out))
            else:
                with cancel._h as c:
                    _check(_lib.fidius_plugin_call_cancellable, p, method, int(fmt), data, len(data), c, byref(out))
        return _take_bytes(out)

    def call_wire(self, method: int, data: bytes = b"", *, cancel: Optional["Cancel"] = None) -> bytes:
        """Fidius wire bytes (the bincode tuple of the arguments) in and out."""
        return self.call(method, Format.WIRE, data, cancel=cancel)

    def call_json(self, method: int, args_json: str, *, cancel: Optional["Cancel"] = None) -> str:
        """JSON text in (an array or object of the arguments) and out. WASM plugins, and native
        plugins with an interface schema (else Status.UNSUPPORTED)."""
        return self.call(method, Format.JSON, args_json.encode("utf-8"), cancel=cancel).decode("utf-8")

    def invoke(self, method_name: str, *args, cancel: Optional["Cancel"] = None) -> Any:
        """Call a method by name (kebab- or snake_case) with Python values, through JSON.
        WASM plugins, and native plugins with an interface schema.

        Records are dicts with snake_case keys (dataclass instances are turned into dicts),
        variants ``{"Case": payload}`` or ``"Case"``, option none ``None``, a map a list of
        ``[key, value]`` pairs, ``list<u8>`` a list of ints (bytes are turned into one).
        64-bit integers beyond 2**53 come back as decimal strings."""
        out = self.call_json(self.method_index(method_name), _json.dumps(list(args), default=_json_default),
                             cancel=cancel)
        return _json.loads(out)

    async def call_async(self, method: int, fmt: Format, data: bytes = b"", *,
                         cancel: Optional["Cancel"] = None) -> bytes:
        """call() on the event loop's default executor. Cancelling the awaiting task triggers
        the call's token (``cancel``, or one of its own) and waits for the call to stop (a WASM
        call at once; a native call already running finishes) before CancelledError."""
        return await _in_executor(lambda c: self.call(method, fmt, data, cancel=c), cancel)

    async def invoke_async(self, method_name: str, *args, cancel: Optional["Cancel"] = None) -> Any:
        """invoke() on the event loop's default executor, cancelled with the awaiting task
        (see call_async())."""
        return await _in_executor(lambda c: self.invoke(method_name, *args, cancel=c), cancel)

    # ------------------------------------------------------------ streams

    def _index(self, method: Union[int, str]) -> int:
        return self.method_index(method) if isinstance(method, str) else method

    def stream(self, method: Union[int, str], fmt: Format = Format.WIRE, data: bytes = b"", *,
               input: Optional[Iterable[bytes]] = None) -> "Stream[bytes]":
        """Start ``method`` (its index, or its name) as an output stream, with ``data`` (the
        method's other arguments) encoded as ``fmt``; items come out encoded as ``fmt`` too, as
        bytes. Without ``input`` a server stream (``fn m(..) -> Stream<T>``); with ``input``,
        an iterable of wire-byte items (bincode of one ``In`` each, whatever ``fmt`` is), a
        bidirectional one (``fn m(.., Stream<In>) -> Stream<Out>``) pulling its input as the
        plugin needs it, on the thread calling ``next()``. libfidius releases the iterable when
        the plugin no longer needs it (its input ended, or the stream ended or was closed);
        an exception it raises ends the input and comes out of ``next()`` as FidiusError
        (Status.STREAM_SOURCE) raised from it.

        JSON needs the item types: WASM plugins, native plugins with an interface schema
        (else Status.UNSUPPORTED). Native plugins without a schema do not say which methods
        stream: opening a method that does not return one (or a bidirectional one without
        ``input``) is undefined behaviour there; WASM plugins and schemas refuse it
        (Status.UNSUPPORTED). No ``cancel=``: the Stream's cancel() stops it from any thread
        (close() cancels one that is not being pulled); a WASM stream's timeout and fuel
        apply to each item."""
        return self._open_stream(method, fmt, data, input, _identity)

    def stream_wire(self, method: Union[int, str], data: bytes = b"", *,
                    input: Optional[Iterable[bytes]] = None) -> "Stream[bytes]":
        """stream() with Fidius wire bytes in and out: each item the bincode of one ``T``."""
        return self._open_stream(method, Format.WIRE, data, input, _identity)

    def stream_json(self, method: Union[int, str], args_json: str = "[]", *,
                    input: Optional[Iterable[bytes]] = None) -> "Stream[str]":
        """stream() with JSON text in (an array or object of the arguments) and out (one
        JSON text per item). ``input`` items are still wire bytes."""
        return self._open_stream(method, Format.JSON, args_json.encode("utf-8"), input, _utf8)

    def invoke_stream(self, method_name: str, *args, input: Optional[Iterable[bytes]] = None) -> "Stream[Any]":
        """invoke() for a streaming method: the arguments as Python values (through JSON, as
        for invoke()), each item decoded into a Python value. ``input`` items are wire bytes
        (the ``Stream<In>`` argument's type appears in no interface schema)."""
        return self._open_stream(self.method_index(method_name), Format.JSON,
                                 _json.dumps(list(args), default=_json_default).encode("utf-8"), input,
                                 _json.loads)

    def _open_stream(self, method, fmt, data, input, decode) -> "Stream":
        index = self._index(method)
        data = _buf(data, "stream input")
        out, err = c_void_p(), c_void_p()

        def start(source_fn, key, destroy_fn):
            with self._h as p:
                return _lib.fidius_plugin_stream(p, index, int(fmt), data, len(data), source_fn, key, destroy_fn,
                                                 byref(out), byref(err))

        if input is None:
            source, status = None, start(_NO_SOURCE, None, _NO_DESTROY)
        else:
            source, status = _fed(input, lambda key: start(_source_trampoline, key, _source_destroy_trampoline))
        if status != Status.OK:
            raise _failure(status, err, source)
        if err.value:
            _lib.fidius_error_free(err)
        return Stream(out.value, decode, source)

    def call_streaming(self, method: Union[int, str], items: Iterable[bytes], fmt: Format = Format.WIRE,
                       data: bytes = b"") -> bytes:
        """Call client-streaming ``method`` (``fn m(.., Stream<T>) -> R``; its index or name):
        ``items``, any iterable of wire-byte items (bincode of one ``T`` each, whatever
        ``fmt`` is), feeds the ``Stream<T>`` argument, pulled on this thread while the plugin
        reads it; ``data`` holds the other arguments in ``fmt`` (for a method with none, an
        empty tuple: ``b""`` in wire bytes, ``"[]"`` in JSON); returns the result in ``fmt``.
        The iterable is released by the time this returns. An exception it raises ends the
        plugin's input and is raised from this call's FidiusError (Status.STREAM_SOURCE).

        Python plugins read each item as JSON text (``b"3"``), not wire bytes, and their
        ``Stream<T>`` argument is the first one: ``data`` holds the others (``"[]"``)."""
        index = self._index(method)
        data = _buf(data, "call input")
        out, err = _Bytes(), c_void_p()

        def run(key):
            with self._h as p:
                return _lib.fidius_plugin_call_streaming(p, index, int(fmt), data, len(data), _source_trampoline,
                                                         key, _source_destroy_trampoline, byref(out), byref(err))

        source, status = _fed(items, run)
        if status != Status.OK:
            raise _failure(status, err, source)
        if err.value:
            _lib.fidius_error_free(err)
        return _take_bytes(out)

    def invoke_streaming(self, method_name: str, items: Iterable[bytes], *args) -> Any:
        """invoke() for a client-streaming method: ``args`` (the other arguments) and the
        result as Python values through JSON; ``items`` wire bytes, as for call_streaming()."""
        out = self.call_streaming(self.method_index(method_name), items, Format.JSON,
                                  _json.dumps(list(args), default=_json_default).encode("utf-8"))
        return _json.loads(out)

    def describe(self) -> Dict[str, Any]:
        """What the plugin is, as a dict (fidius_plugin_describe's JSON document): name,
        interface, interface_hash ("0x..."), runtime ("native", "wasm" or "python"), abi_version,
        buffer_strategy, capability_bits, capabilities, types_from, metadata, methods (index,
        name, params [{name, type}], result, returns, fallible, raw, streaming, optional,
        implemented, metadata) and types (records, variants, enums, flags). None where
        unknown: a native plugin without an interface schema has no names or types."""
        out = _Bytes()
        with self._h as p:
            _check(_lib.fidius_plugin_describe, p, byref(out))
        return _json.loads(_take_bytes(out).decode("utf-8"))

    def method_index(self, name: str) -> int:
        """A method's index by name (kebab- or snake_case). A native plugin without an interface
        schema has no names (Status.METHOD_INDEX)."""
        index = c_uint32()
        with self._h as p:
            _check(_lib.fidius_plugin_method_index, p, _b(name), byref(index))
        return index.value

    def method_name(self, method: int) -> Optional[str]:
        """A method's name, or None (out of range, or a native plugin without a schema)."""
        with self._h as p:
            return _s(_lib.fidius_plugin_method_name(p, method))

    def method_metadata(self, method: int) -> List[Tuple[str, str]]:
        with self._h as p:
            n = c_size_t()
            _check(_lib.fidius_plugin_method_metadata_count, p, method, byref(n))
            out = []
            for i in range(n.value):
                k, v = c_char_p(), c_char_p()
                _check(_lib.fidius_plugin_method_metadata_get, p, method, i, byref(k), byref(v))
                out.append((_s(k.value), _s(v.value)))
            return out

    def trait_metadata(self) -> List[Tuple[str, str]]:
        with self._h as p:
            out = []
            for i in range(_lib.fidius_plugin_trait_metadata_count(p)):
                k, v = c_char_p(), c_char_p()
                _check(_lib.fidius_plugin_trait_metadata_get, p, i, byref(k), byref(v))
                out.append((_s(k.value), _s(v.value)))
            return out

    def warnings(self) -> List[str]:
        """Load warnings (e.g. an unusable .cwasm)."""
        with self._h as p:
            return [_s(_lib.fidius_plugin_warning(p, i)) for i in range(_lib.fidius_plugin_warning_count(p))]


def _identity(data: bytes) -> bytes:
    return data


def _utf8(data: bytes) -> str:
    return data.decode("utf-8")


T = TypeVar("T")


class Stream(_Owner, Generic[T]):
    """A plugin's output stream (a server-streaming or bidirectional method), as returned by
    Plugin.stream(), stream_wire(), stream_json() and invoke_stream().

    An iterator: ``next()`` pulls one item from the plugin (with the GIL released while the
    plugin works) and returns it decoded (bytes, str or a Python value, by the method that
    opened it); StopIteration at the end. A failure (the plugin's error, a panic, a trap, a
    timeout, the input's failure) is raised once as FidiusError / PluginError; the stream has
    ended then, and later ``next()`` raise StopIteration.

    A context manager: ``close()`` (idempotent; also the ``with`` statement's end, and a
    finalizer when the object is collected) releases it, cancelling it if items remain (the
    plugin's producer is dropped, a bidirectional stream's input released). ``next()`` after
    close() raises ClosedError. At its end the stream releases its handle by itself.

    One thread pulls at a time: a ``next()`` from another thread waits for the one in
    progress; one from the same thread (its own input iterable pulling it) raises
    RuntimeError. The stream may move between threads, and outlives its Plugin's close().
    ``cancel()`` stops a ``next()`` in progress on another thread (close() alone waits for it).
    """

    def __init__(self, ptr: int, decode: Callable[[bytes], T], source: Optional[_Source]):
        self._decode = decode
        self._source = source      # read for the exception its iterable raised
        self._ended = False
        self._pull = threading.Lock()
        self._puller: Optional[int] = None
        self._own(ptr, _lib.fidius_stream_free)

    def __iter__(self) -> "Stream[T]":
        return self

    def __next__(self) -> T:
        me = threading.get_ident()
        if self._puller == me:
            raise RuntimeError("the stream is already being pulled on this thread "
                               "(by its own input iterable?)")
        with self._pull:
            if self._ended:
                raise StopIteration
            item, err = _Bytes(), c_void_p()
            self._puller = me
            try:
                with self._h as s:
                    status = _lib.fidius_stream_next(s, byref(item), byref(err))
            finally:
                self._puller = None
            if status == Status.OK:
                if err.value:
                    _lib.fidius_error_free(err)
                data = _take_bytes(item)
            else:
                self._ended = True
        if status == Status.OK:
            return self._decode(data)
        self._h.close()  # ended: release now (outside the pull lock: it may run the source's destroy)
        if status == Status.STREAM_END:
            if err.value:
                _lib.fidius_error_free(err)
            raise StopIteration
        raise _failure(status, err, self._source)

    def cancel(self) -> None:
        """Cancel the stream from any thread, also while another thread is in ``next()``: that
        ``next()`` (or the next one) raises FidiusError with Status.CANCELLED, once, and later
        ones StopIteration. A WASM item is stopped wherever it is, a Python plugin's item too
        (when that stops its runner, the plugin's other open streams end with it and its next
        call starts a fresh runner), a native stream ends before its next item. Idempotent; a no-op once the stream has ended or was
        closed. Still close() it (or use ``with``)."""
        try:
            with self._h as s:
                _check(_lib.fidius_stream_cancel, s)
        except ClosedError:
            pass

    @property
    def closed(self) -> bool:
        """Whether close() was called (or the stream ended and released its handle)."""
        return self._h._closed


def _json_default(value):
    """JSON for what the json module does not write itself: bytes as a list of ints
    (``list<u8>``), dataclass instances as dicts."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return list(bytes(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class Cancel(_Owner):
    """A cancel token: ``cancel()`` (from any thread, any number of times) stops every call
    given it as ``cancel=`` with Status.CANCELLED, now and later:

    - a WASM call wherever it is (guest code within about 5 ms, a call blocked in a host
      function such as a sleep or a read at once); the plugin serves the next call;
    - a native call only if the token was triggered before the call started (native code
      cannot be interrupted safely: a running native call finishes);
    - a Python plugin's call wherever it is, within about 20 ms: its runner process is stopped
      (the plugin's open streams end with it) and the next call starts a fresh one.

    Once triggered it stays triggered: use a new token for new calls. Owns a C handle:
    close() (or ``with``) releases it, a finalizer does otherwise; calls in flight keep it.
    """

    def __init__(self):
        ptr = _lib.fidius_cancel_new()
        if not ptr:
            raise MemoryError("fidius_cancel_new")
        self._own(ptr, _lib.fidius_cancel_free)

    def cancel(self) -> None:
        """Trigger the token."""
        with self._h as c:
            _lib.fidius_cancel_trigger(c)

    @property
    def cancelled(self) -> bool:
        """Whether cancel() was called."""
        with self._h as c:
            return bool(_lib.fidius_cancel_is_triggered(c))


async def _in_executor(call, cancel: Optional[Cancel]):
    """Run ``call(token)`` on the default executor; if the awaiting task is cancelled, trigger
    the token and wait for the call to stop before re-raising CancelledError."""
    import asyncio
    token = cancel if cancel is not None else Cancel()
    try:
        future = asyncio.get_running_loop().run_in_executor(None, call, token)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            token.cancel()
            try:
                await future
            except BaseException:  # CANCELLED, or whatever the call ended with: the task is cancelled
                pass
            raise
    finally:
        if cancel is None:
            token.close()
