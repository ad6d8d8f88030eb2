# libfidius' Python plugin runner: one process per loaded Python plugin,
# driven by the host over its stdin and stdout with frames of
#   u32 LE json_len, u32 LE bin_len, json_len bytes of JSON, bin_len bytes
# (the bytes carry raw methods' data). It imports the package's entry module
# as fidius-python does (<pkg>/vendor and <pkg> first on sys.path) and calls
# module-level callables by name (or the configured instance's methods).
# Embedded in libfidius and run as `python3 -I -c <this>`: nothing is
# installed, and the plugin's own prints go to stderr, off the protocol.
import json
import os
import struct
import sys
import traceback
import types

_proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
_proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
# The plugin sees an empty stdin and a stdout that is the host's stderr.
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.dup2(2, 1)
sys.stdin = open(os.devnull)
sys.stdout = sys.stderr


def _read_exact(n):
    parts = []
    while n:
        chunk = _proto_in.read(n)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def read_frame():
    json_len, bin_len = struct.unpack("<II", _read_exact(8))
    message = json.loads(_read_exact(json_len))
    return message, _read_exact(bin_len) if bin_len else b""


def write_frame(message, data=b""):
    text = json.dumps(message, default=_jsonable, allow_nan=False).encode()
    _proto_out.write(struct.pack("<II", len(text), len(data)) + text + data)


def _jsonable(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return list(bytes(value))
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError("%s is not JSON" % type(value).__name__)


def _fidius_shim():
    """A `fidius` module for plugins written against the stub
    (`from fidius import method`, `fidius.PluginError`) when the package
    does not bring its own."""
    module = types.ModuleType("fidius")

    class PluginError(Exception):
        def __init__(self, code, message="", details=None):
            Exception.__init__(self, message)
            self.code, self.message, self.details = code, message, details

    module.PluginError = PluginError
    module.method = lambda f: f
    return module


def plugin_error(exc):
    code, message = getattr(exc, "code", None), getattr(exc, "message", None)
    if isinstance(code, str) and isinstance(message, str):
        details = getattr(exc, "details", None)
        if details is not None and not isinstance(details, str):
            details = json.dumps(details, default=_jsonable)
        return {"code": code, "message": message, "details": details}
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
        tb = tb.tb_next  # the runner's own frames
    tb = "".join(traceback.format_exception(type(exc), exc, tb))
    return {"code": type(exc).__name__, "message": str(exc), "details": json.dumps({"traceback": tb})}


class HostFed:
    """A `Stream<T>` argument: each item is pulled from the host, on demand."""

    def __init__(self):
        self.ended = False

    def __iter__(self):
        return self

    def __next__(self):
        if self.ended:
            raise StopIteration
        write_frame({"pull": True})
        reply, _ = read_frame()
        if "item" in reply:
            return reply["item"]
        self.ended = True
        raise StopIteration


state = {"target": None, "methods": {}, "streams": {}}


def load(msg):
    pkg = msg["dir"]
    for entry in (pkg, os.path.join(pkg, "vendor")):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    # The package's own `fidius` (vendored) if it brings one; otherwise the
    # runner's, never one from the interpreter's site-packages (which may be
    # the libfidius ctypes binding, also called `fidius`).
    own = any(os.path.isfile(os.path.join(d, *rel)) for d in (pkg, os.path.join(pkg, "vendor"))
              for rel in (("fidius.py",), ("fidius", "__init__.py")))
    if not own:
        sys.modules["fidius"] = _fidius_shim()
    module = __import__(msg["module"], fromlist=["*"])
    digest = getattr(module, "__interface_hash__", None)
    target = module
    if msg.get("configured"):
        configure = getattr(module, "__fidius_configure__", None)
        if configure is None:
            return {"fail": "the entry module has no __fidius_configure__, so it takes no config"}
        try:
            target = configure(msg.get("config"))
        except Exception as exc:
            return {"error": plugin_error(exc), "phase": "configure"}
    if target is module:
        names = [n for n, v in vars(module).items()
                 if not n.startswith("_") and isinstance(v, types.FunctionType) and v.__module__ == module.__name__]
    else:
        names = [n for n in vars(type(target)) if not n.startswith("_") and callable(getattr(target, n, None))]
    state["target"] = target
    return {"ok": {"hash": digest if isinstance(digest, int) else None, "methods": names}}


def method(name):
    try:
        return getattr(state["target"], name)
    except AttributeError:
        raise LookupError("the plugin has no method %s" % name)


def arguments(args):
    if args is None:
        return (), {}
    if isinstance(args, dict):
        return (), args
    return tuple(args), {}


def handle(msg, data):
    op = msg["op"]
    if op == "load":
        return load(msg)
    if op == "call":
        if msg.get("raw"):
            out = method(msg["m"])(data)
            if not isinstance(out, (bytes, bytearray, memoryview)):
                return {"fail": "raw method %s returned %s, not bytes" % (msg["m"], type(out).__name__)}
            return {"ok_raw": True}, bytes(out)
        args, kwargs = arguments(msg.get("args"))
        if msg.get("fed"):
            args = (HostFed(),) + args
        return {"ok": method(msg["m"])(*args, **kwargs)}
    if op == "open":
        args, kwargs = arguments(msg.get("args"))
        if msg.get("fed"):
            args = (HostFed(),) + args
        state["streams"][msg["id"]] = iter(method(msg["m"])(*args, **kwargs))
        return {"ok": None}
    if op == "next":
        stream = state["streams"].get(msg["id"])
        if stream is None:
            return {"end": True}
        try:
            return {"item": next(stream)}
        except StopIteration:
            del state["streams"][msg["id"]]
            return {"end": True}
        except BaseException:
            del state["streams"][msg["id"]]
            raise
    if op == "close":
        stream = state["streams"].pop(msg["id"], None)
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        return {"ok": None}
    return {"fail": "unknown operation %r" % op}


def main():
    while True:
        try:
            msg, data = read_frame()
        except (EOFError, OSError):
            return
        try:
            reply = handle(msg, data)
        except Exception as exc:  # the plugin's failure, reported to the host
            reply = {"error": plugin_error(exc)}
        payload = b""
        if isinstance(reply, tuple):
            reply, payload = reply
        try:
            write_frame(reply, payload)
        except (TypeError, ValueError) as exc:
            write_frame({"fail": "the result is not JSON: %s" % exc})


try:
    main()
except OSError:
    pass  # the host closed the socket (it exited, or stopped this runner): nothing to say
finally:
    os._exit(0)
