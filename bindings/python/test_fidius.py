"""Tests of the Python bindings against the fixture plugins.

    make test-python     (builds the wheel, installs it into a fresh venv, runs these there)

or against the source tree:

    cd bindings/python && FIDIUS_LIBRARY=../../target/debug/libfidius.so \
        FIDIUS_PLUGIN_DIR=../../examples-c/build/plugins python3 -m unittest -v test_fidius

The Python plugin package is looked for in examples-c/build/python-plugins (beside
FIDIUS_PLUGIN_DIR; FIDIUS_PYTHON_PLUGIN_DIR overrides it).
"""

import asyncio
import dataclasses
import gc
import http.server
import json
import os
import pathlib
import shutil
import socket
import stat
import struct
import sys
import tarfile
import tempfile
import threading
import time
import unittest
import weakref
from typing import Optional

import fidius
from fidius import FidiusError, PluginError, Runtime, Status, Verdict

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN_DIR = os.environ.get("FIDIUS_PLUGIN_DIR", os.path.join(HERE, "..", "..", "examples-c", "build", "plugins"))
# The `pycalc` Python plugin package (make -C examples-c build/python-plugins), beside PLUGIN_DIR.
PYTHON_PLUGIN_DIR = os.environ.get("FIDIUS_PYTHON_PLUGIN_DIR",
                                   os.path.join(os.path.dirname(os.path.abspath(PLUGIN_DIR)), "python-plugins"))

CALC_ADD, CALC_GREET, CALC_DIVIDE = 0, 1, 3


# Fidius wire format: bincode 1.3, little-endian fixed-width integers, u64 lengths.
def wire_i64_pair(a, b):
    return struct.pack("<qq", a, b)


def wire_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def read_wire_string(b):
    (n,) = struct.unpack_from("<Q", b)
    return b[8:8 + n].decode()


def new_host(**kw):
    return fidius.Host([PLUGIN_DIR], **kw)


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(PLUGIN_DIR):
            raise RuntimeError(
                f"fixture plugins not found at {PLUGIN_DIR} (make -C examples-c build/plugins)")

    def assert_div_zero(self, call):
        with self.assertRaises(PluginError) as cm:
            call()
        e = cm.exception
        self.assertEqual(e.status, Status.PLUGIN_ERROR)
        self.assertEqual(e.code, "DIV_ZERO")
        self.assertEqual(e.plugin_message, "division by zero")
        self.assertEqual(e.details.replace(" ", ""), '{"dividend":7}')


class TestHost(Base):
    def test_version(self):
        self.assertRegex(fidius.version(), r"^\d+\.\d+\.\d+$")

    def test_discover(self):
        with new_host() as host:
            d = host.discover()
        found = {p.name: p for p in d.plugins}
        for name in ["BasicCalc", "OtherCalc", "ArenaImpl", "ConfiguredGreeter", "LegacyCalc", "LegacyArena",
                     "TypedImpl", "calc", "caps", "fetch"]:
            self.assertIn(name, found, f"skipped: {d.skipped}")
        # The schema beside libfixture_typed.so is no plugin, and not reported as one.
        self.assertEqual(d.skipped, ())
        self.assertEqual((found["TypedImpl"].runtime, found["TypedImpl"].interface_name,
                          found["TypedImpl"].method_count), (Runtime.NATIVE, "Typed", 11))
        self.assertEqual(found["BasicCalc"].abi_version, 500)
        self.assertEqual(found["BasicCalc"].runtime, Runtime.NATIVE)
        self.assertEqual(found["LegacyCalc"].abi_version, 400)
        self.assertEqual(found["calc"].runtime, Runtime.WASM)

    def test_status_names(self):
        self.assertEqual(Status.FILE_REFUSED, 61)
        self.assertEqual(Status.ARCHIVE, 60)
        self.assertEqual(fidius._s(fidius._lib.fidius_status_name(61)), "file refused")
        self.assertEqual(fidius._s(fidius._lib.fidius_status_name(int(Status.FILE_REFUSED))), "file refused")
        # Every status the binding knows is one libfidius knows (bindings/check_drift.py checks
        # the other direction against the header).
        for s in Status:
            self.assertNotEqual(fidius._s(fidius._lib.fidius_status_name(int(s))), "unknown status", s)

    def test_error_status(self):
        with new_host() as host:
            with self.assertRaises(FidiusError) as cm:
                host.load("NoSuchPlugin")
        self.assertIsInstance(cm.exception.status, Status)
        self.assertEqual(cm.exception.status, Status.PLUGIN_NOT_FOUND)

    def test_file_refused(self):
        # A FIFO in a search path is refused before it is opened (reading it would block).
        with tempfile.TemporaryDirectory(prefix="fidius-py-") as tmp:
            fifo = os.path.join(tmp, "libfifo.so")
            os.mkfifo(fifo)
            with fidius.Host([tmp]) as host:
                with self.assertRaises(FidiusError) as cm:
                    host.load_path(fifo)
                self.assertEqual(cm.exception.status, Status.FILE_REFUSED)
                self.assertIn("FIFO", cm.exception.message)
                skipped = host.discover().skipped
                self.assertEqual([(s.path, s.status) for s in skipped], [(fifo, Status.FILE_REFUSED)])

    def test_trust_precompiled(self):
        # Behaviour (an unsigned .cwasm is used only with this on) is tested on the Rust side.
        with new_host(trust_precompiled=True) as host, host.load("calc") as calc:
            self.assertEqual(calc.invoke("add", 2, 40), 42)

    def test_not_found(self):
        with new_host() as host:
            with self.assertRaises(FidiusError) as cm:
                host.load("NoSuchPlugin")
        self.assertEqual(cm.exception.status, Status.PLUGIN_NOT_FOUND)
        self.assertNotIsInstance(cm.exception, PluginError)


class TestVersionCheck(unittest.TestCase):
    """import fidius refuses a libfidius whose version says its C API may differ."""

    def test_version_mismatch(self):
        ok = [("0.1.0", "0.1.0"), ("0.1.7", "0.1.0"), ("0.1.0", "0.1.3"),  # patch either way
              ("1.4.2", "1.2.0"),                                          # minor after 1.0
              ("0.1.0-rc.1", "0.1.0"), ("0.1.0+build.5", "0.1.0")]         # semver suffixes
        for library, binding in ok:
            self.assertIsNone(fidius.version_mismatch(library, binding), (library, binding))
        refused = [("0.2.0", "0.1.0", "minor"), ("0.1.0", "0.2.0", "minor"),
                   ("1.0.0", "0.1.0", "major"), ("2.0.0", "1.9.9", "major"),
                   ("", "0.1.0", "not MAJOR.MINOR.PATCH"), ("0.1", "0.1.0", "not MAJOR"),
                   ("0.1.0.0", "0.1.0", "not MAJOR"), ("0.x.0", "0.1.0", "not MAJOR"),
                   ("v0.1.0", "0.1.0", "not MAJOR"), ("0.1.0-", "0.1.0", "not MAJOR"),
                   ("0.1.0", "garbage", "binding version")]
        for library, binding, why in refused:
            reason = fidius.version_mismatch(library, binding)
            self.assertIsNotNone(reason, (library, binding))
            self.assertIn(why, reason)

    def test_the_loaded_library_is_accepted(self):
        self.assertRegex(fidius.BINDING_VERSION, r"^\d+\.\d+\.\d+$")
        self.assertIsNone(fidius.version_mismatch(fidius.version()))

    def test_import_refuses_a_mismatched_library(self):
        # A stand-in library with nothing but fidius_version(), loaded through $FIDIUS_LIBRARY
        # by a fresh interpreter: the import must fail naming both versions and the file.
        import subprocess
        import sys
        cc = shutil.which("cc")
        if cc is None:
            self.skipTest("no C compiler")
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(fidius.__file__)))
        with tempfile.TemporaryDirectory() as tmp:
            for fake in ("0.2.0", "1.1.0", "0.1"):
                src, lib = os.path.join(tmp, "fake.c"), os.path.join(tmp, f"libfake-{fake}.so")
                with open(src, "w") as f:
                    f.write(f'const char *fidius_version(void) {{ return "{fake}"; }}\n')
                subprocess.run([cc, "-shared", "-fPIC", "-o", lib, src], check=True)
                env = dict(os.environ, FIDIUS_LIBRARY=lib)
                code = f"import sys; sys.path.insert(0, {package_parent!r}); import fidius"
                run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
                self.assertNotEqual(run.returncode, 0, f"{fake}: imported")
                self.assertIn("ImportError", run.stderr)
                for needle in (f"libfidius {fake} ", fidius.BINDING_VERSION, lib):
                    self.assertIn(needle, run.stderr, f"{fake}: {run.stderr}")


@unittest.skipUnless(os.environ.get("FIDIUS_TEST_INSTALLED"), "the installed wheel's checks (make test-python)")
class TestInstalledPackage(Base):
    def test_loads_the_bundled_library(self):
        import sys
        pkg = os.path.dirname(os.path.abspath(fidius.__file__))
        self.assertTrue(pkg.startswith(os.path.realpath(sys.prefix)) or pkg.startswith(sys.prefix),
                        f"fidius imported from {pkg}, not the venv {sys.prefix}")
        self.assertNotIn("FIDIUS_LIBRARY", os.environ)
        self.assertEqual(fidius.library_path, os.path.join(pkg, "libfidius.so"))
        self.assertTrue(os.path.exists(os.path.join(pkg, "py.typed")))
        self.assertRegex(fidius.version(), r"^\d+\.\d+\.\d+")


class TestReview(Base):
    def test_unknown_enum_values(self):
        # A newer libfidius may append statuses and enum values: no ValueError.
        s = Status(9999)
        self.assertEqual(int(s), 9999)
        self.assertEqual(s.name, "UNKNOWN_9999")
        self.assertIs(Status(9999), s)
        self.assertIsInstance(s, Status)
        self.assertEqual(Status(42), Status.PLUGIN_ERROR)
        for cls in (Runtime, fidius.Format, fidius.BufferStrategy, fidius.LoadPolicy, Verdict):
            self.assertEqual(int(cls(77)), 77)
        e = FidiusError(9999, "from the future")
        self.assertEqual(e.status, 9999)
        self.assertIn("UNKNOWN_9999", str(e))
        with self.assertRaises(ValueError):
            Status("OK")

    def test_int_is_not_a_buffer(self):
        # bytes(3) would be b"\0\0\0": the binding refuses ints where it takes bytes.
        with new_host() as host, host.load("calc") as calc:
            with self.assertRaises(TypeError):
                calc.call_wire(CALC_ADD, 16)
            with self.assertRaises(TypeError):
                calc.call(CALC_ADD, fidius.Format.WIRE, True)
            self.assertEqual(calc.call_wire(CALC_ADD, bytearray(wire_i64_pair(2, 40))),
                             struct.pack("<q", 42))
            with self.assertRaises(TypeError):
                host.precompile_component(8)
        with self.assertRaises(TypeError):
            new_host(trusted_keys=[32])
        with self.assertRaises(TypeError):
            new_host(schemas=[5])
        with new_host() as host:
            with self.assertRaises(TypeError):
                host.load("calc", fidius.LoadOptions(config=4))


class TestNative(Base):
    def test_basic_calc(self):
        with new_host() as host, host.load("BasicCalc") as basic:
            out = basic.call_wire(CALC_ADD, wire_i64_pair(2, 3))
            self.assertEqual(struct.unpack("<q", out)[0], 5)
            self.assertEqual(read_wire_string(basic.call_wire(CALC_GREET, wire_string("Python"))), "Hello, Python!")
            self.assert_div_zero(lambda: basic.call_wire(CALC_DIVIDE, wire_i64_pair(7, 0)))
            with self.assertRaises(FidiusError) as cm:
                basic.call_json(CALC_ADD, "[2, 3]")
            self.assertEqual(cm.exception.status, Status.UNSUPPORTED)
            with self.assertRaises(FidiusError) as cm:
                basic.call_wire(99, b"")
            self.assertEqual(cm.exception.status, Status.METHOD_INDEX)
            self.assertEqual(basic.method_metadata(CALC_ADD)[0], ("kind", "math"))
            self.assertIsNone(basic.method_name(CALC_ADD))

    def test_legacy_calc(self):
        with new_host() as host, host.load("LegacyCalc") as legacy:
            self.assertEqual(legacy.info.abi_version, 400)
            out = legacy.call_wire(CALC_ADD, wire_i64_pair(40, 2))
            self.assertEqual(struct.unpack("<q", out)[0], 42)

    def test_threads(self):
        with new_host() as host, host.load("BasicCalc") as basic:
            errors = []

            def work(g):
                for i in range(100):
                    out = basic.call_wire(CALC_ADD, wire_i64_pair(g, i))
                    if struct.unpack("<q", out)[0] != g + i:
                        errors.append((g, i))

            threads = [threading.Thread(target=work, args=(g,)) for g in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])

    def test_close(self):
        host = new_host()
        p = host.load("BasicCalc")
        host.close()
        self.assertEqual(struct.unpack("<q", p.call_wire(CALC_ADD, wire_i64_pair(1, 1)))[0], 2)
        p.close()
        p.close()
        with self.assertRaises(fidius.ClosedError):
            p.call_wire(CALC_ADD, wire_i64_pair(1, 1))
        with self.assertRaises(fidius.ClosedError):
            host.load("BasicCalc")
        self.assertEqual(p.info.name, "BasicCalc")


class TestWasm(Base):
    def test_calc(self):
        opts = fidius.LoadOptions(timeout=5, memory_limit=64 << 20)
        with new_host() as host, host.load("calc", opts) as calc:
            self.assertEqual(calc.info.runtime, Runtime.WASM)
            add = calc.method_index("add")
            self.assertEqual(calc.method_name(add), "add")
            self.assertEqual(calc.call_json(add, "[2, 40]"), "42")
            self.assertEqual(calc.invoke("add", 2, 40), 42)
            self.assertEqual(struct.unpack("<q", calc.call_wire(add, wire_i64_pair(20, 22)))[0], 42)
            divide = calc.method_index("divide")
            self.assert_div_zero(lambda: calc.call_json(divide, "[7, 0]"))
            self.assert_div_zero(lambda: calc.invoke("divide", 7, 0))
            self.assertEqual(calc.invoke("shift", {"x": 1, "y": 2, "label": "p"}, 3), {"x": 4, "y": 2, "label": "p+3"})
            self.assertEqual(calc.invoke("maybe_double", None), None)
            with self.assertRaises(FidiusError) as cm:
                calc.method_index("no-such-method")
            self.assertEqual(cm.exception.status, Status.METHOD_INDEX)


class TestCompileCache(Base):
    """Host(compile_cache=dir): compiled WASM components persist as private .cwasm files.
    Which entry is read, and when one is refused, is tested on the Rust side
    (tests/compile_cache.rs)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="fidius-py-")   # mode 0700: private to this user

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def host(self, cache):
        return fidius.Host([PLUGIN_DIR], compile_cache=cache)

    def test_compiled_calc_persists(self):
        # The WASM engine, and the components it compiled in memory, live as long as any host
        # or plugin using it: collect what earlier tests dropped, so this load compiles.
        gc.collect()
        cache = self.tmp
        with self.host(cache) as host, host.load("calc") as calc:
            self.assertEqual(calc.invoke("add", 1, 2), 3)
            self.assertEqual(calc.warnings(), [])
        entries = os.listdir(cache)
        self.assertEqual(len(entries), 1, f"one entry, no partial files (none: another host in this "
                                          f"process kept calc compiled in memory): {entries}")
        entry = os.path.join(cache, entries[0])
        self.assertTrue(entry.endswith(".cwasm"), entry)
        st = os.lstat(entry)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        # A second host (a path-like this time) loads calc from the entry; a miss would have
        # compiled and renamed a fresh file into place.
        with self.host(pathlib.Path(cache)) as host, host.load("calc") as calc:
            self.assertEqual(calc.invoke("add", 1, 2), 3)
            self.assertEqual(calc.warnings(), [])
        self.assertEqual(os.listdir(cache), entries)
        self.assertEqual(os.lstat(entry).st_ino, st.st_ino, "the entry was read, not replaced")

    def test_a_missing_directory_is_made_private(self):
        cache = os.path.join(self.tmp, "a", "compiled")
        with self.host(cache):
            pass
        self.assertEqual(stat.S_IMODE(os.stat(cache).st_mode), 0o700)

    def test_a_directory_others_can_write_is_refused(self):
        os.chmod(self.tmp, 0o777)
        with self.assertRaises(FidiusError) as cm:
            self.host(self.tmp)
        self.assertEqual(cm.exception.status, Status.FILE_REFUSED)
        self.assertIn("writable by others", cm.exception.message)

    def test_a_relative_path_is_refused(self):
        # The binding passes the path through unresolved: libfidius refuses it.
        with self.assertRaises(FidiusError) as cm:
            self.host("relative/cache")
        self.assertEqual(cm.exception.status, Status.INVALID_ARGUMENT)
        self.assertIn("absolute", cm.exception.message)


class TestCapabilities(Base):
    def test_default_allow_list_refuses_env(self):
        with new_host() as host:
            with self.assertRaises(FidiusError) as cm:
                host.load("caps")
            self.assertEqual(cm.exception.status, Status.CAPABILITY)
            self.assertIn("env:FIDIUS_FIXTURE_VAR", cm.exception.message)
            # Discovery still lists it.
            self.assertIn("caps", [p.name for p in host.discover().plugins])

    def test_allow_list_lets_caps_load(self):
        os.environ["FIDIUS_FIXTURE_VAR"] = "python-value"
        try:
            with new_host(allow_capabilities=["env:FIDIUS_*", "stdout", "clocks"]) as host, \
                    host.load("caps") as caps:
                self.assertEqual(caps.invoke("read_env", "FIDIUS_FIXTURE_VAR"), "python-value")
        finally:
            del os.environ["FIDIUS_FIXTURE_VAR"]

    def test_allow_list_replaces_the_default(self):
        # One pattern replaces the default: "stdout" alone does not allow clocks or the env var.
        with new_host(allow_capabilities=["stdout"]) as host:
            with self.assertRaises(FidiusError) as cm:
                host.load("caps")
            self.assertEqual(cm.exception.status, Status.CAPABILITY)

    def test_empty_pattern(self):
        with self.assertRaises(FidiusError) as cm:
            new_host(allow_capabilities=[""])
        self.assertEqual(cm.exception.status, Status.INVALID_ARGUMENT)
        with self.assertRaises(TypeError):
            new_host(allow_capabilities="stdout")

    def test_grants_replace_the_manifest(self):
        os.environ["FIDIUS_FIXTURE_VAR"] = "secret"
        try:
            with new_host() as host, host.load("caps", fidius.LoadOptions(grants=["stdout"])) as caps:
                idx = caps.method_index("read_env")
                self.assertEqual(caps.call_json(idx, '["FIDIUS_FIXTURE_VAR"]'), "null")
            # No grants at all is a grant list too.
            with new_host() as host, host.load("caps", fidius.LoadOptions(grants=[])) as caps:
                self.assertIsNone(caps.invoke("read_env", "FIDIUS_FIXTURE_VAR"))
        finally:
            del os.environ["FIDIUS_FIXTURE_VAR"]


# --- interface schemas, describe, invoke, cancellation ---------------------

TYPED_WIT = os.path.join(PLUGIN_DIR, "libfixture_typed.so.wit")  # TypedImpl's schema, beside its library
PRICE_JSON = '[{"id": 1, "sku": "tea", "qty": 3, "unit_cents": 250}]'
SHORT_WIT = "package fixture:short;\ninterface typed {\n  greet: func(name: string) -> string;\n}\n"


@dataclasses.dataclass
class Order:
    id: int
    sku: str
    qty: int
    unit_cents: int
    note: Optional[str] = None


class TestSchemas(Base):
    def setUp(self):
        # libfixture_typed.so without its sidecar schema: no names, no types.
        self.tmp = tempfile.mkdtemp(prefix="fidius-py-")
        shutil.copy(os.path.join(PLUGIN_DIR, "libfixture_typed.so"), self.tmp)
        with open(TYPED_WIT, "rb") as f:
            self.wit = f.read()

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def assert_price(self, plugin):
        self.assertEqual(plugin.method_index("price"), 2)
        self.assertEqual(plugin.call_json(2, PRICE_JSON), "750")
        self.assertEqual(plugin.method_name(6), "totals")

    def test_without_a_schema(self):
        with fidius.Host([self.tmp]) as host, host.load("TypedImpl") as typed:
            with self.assertRaises(FidiusError) as cm:
                typed.call_json(2, PRICE_JSON)
            self.assertEqual(cm.exception.status, Status.UNSUPPORTED)
            with self.assertRaises(FidiusError) as cm:
                typed.method_index("price")
            self.assertEqual(cm.exception.status, Status.METHOD_INDEX)

    def test_load_options_schema(self):
        with fidius.Host([self.tmp]) as host:
            for opts in (fidius.LoadOptions(schema=self.wit.decode()), fidius.LoadOptions(schema=self.wit),
                         fidius.LoadOptions(schema_file=TYPED_WIT)):
                with host.load("TypedImpl", opts) as typed:
                    self.assert_price(typed)

    def test_host_schemas(self):
        for kw in (dict(schemas=[self.wit.decode()]), dict(schemas=[self.wit]), dict(schema_files=[TYPED_WIT])):
            with fidius.Host([self.tmp], **kw) as host, host.load("TypedImpl") as typed:
                self.assert_price(typed)

    def test_schema_errors(self):
        with self.assertRaises(FidiusError) as cm:
            fidius.Host([self.tmp], schemas=["not wit {"])
        self.assertEqual(cm.exception.status, Status.INVALID_ARGUMENT)
        with self.assertRaises(FidiusError) as cm:
            fidius.Host([self.tmp], schema_files=[os.path.join(self.tmp, "missing.wit")])
        self.assertEqual(cm.exception.status, Status.IO)
        with self.assertRaises(TypeError):
            fidius.Host([self.tmp], schemas="not a list")
        with fidius.Host([self.tmp]) as host:
            for opts, status in ((fidius.LoadOptions(schema="not wit {"), Status.INVALID_ARGUMENT),
                                 (fidius.LoadOptions(schema=self.wit, schema_file=TYPED_WIT), Status.INVALID_ARGUMENT),
                                 (fidius.LoadOptions(schema=SHORT_WIT), Status.SCHEMA_MISMATCH)):
                with self.assertRaises(FidiusError) as cm:
                    host.load("TypedImpl", opts)
                self.assertEqual(cm.exception.status, status, cm.exception)


class TestTyped(Base):
    """TypedImpl from the shared search path: its schema comes from libfixture_typed.so.wit."""

    def setUp(self):
        self.host = new_host()
        self.typed = self.host.load("TypedImpl")

    def tearDown(self):
        self.typed.close()
        self.host.close()

    def test_json_by_name(self):
        t = self.typed
        self.assertEqual(t.call_json(t.method_index("price"), PRICE_JSON), "750")
        out = t.call_json(t.method_index("totals"), '[[{"id": 1, "sku": "tea", "qty": 2, "unit_cents": 5}, '
                                                    '{"id": 2, "sku": "cup", "qty": 1, "unit_cents": 7, "note": "blue"}]]')
        self.assertEqual(out.replace(" ", ""), '[{"sku":"tea","cents":10},{"sku":"cup","cents":7}]')
        self.assertEqual(t.call_json(2, '{"order": {"id": 1, "sku": "x", "qty": 2, "unit_cents": -4}}'), "-8")
        with self.assertRaises(FidiusError) as cm:
            t.call_json(2, '[{"id": 1, "sku": "x", "qty": -1, "unit_cents": 1}]')
        self.assertIn("qty", cm.exception.message)

    def test_describe(self):
        d = self.typed.describe()
        self.assertEqual((d["name"], d["interface"], d["runtime"], d["abi_version"], d["buffer_strategy"]),
                         ("TypedImpl", "Typed", "native", 500, "plugin-allocated"))
        self.assertEqual(int(d["interface_hash"], 16), self.typed.info.interface_hash)
        self.assertTrue(d["types_from"].endswith("libfixture_typed.so.wit"), d["types_from"])
        self.assertEqual(len(d["methods"]), 11)
        self.assertEqual(d["methods"][2]["name"], "price")
        self.assertEqual(d["methods"][2]["params"], [{"name": "order", "type": "order"}])
        self.assertEqual(d["methods"][8]["result"], "result<s64, plugin-error>")
        self.assertTrue(d["methods"][8]["fallible"])
        types = {t["name"]: t for t in d["types"]}
        self.assertEqual(types["order"]["kind"], "record")
        self.assertIn({"name": "unit-cents", "type": "s64"}, types["order"]["fields"])
        self.assertEqual(types["shape"]["kind"], "variant")
        # Without a schema: names and types unknown. A component: its own types.
        with self.host.load("BasicCalc") as basic:
            d = basic.describe()
            self.assertIsNone(d["types_from"])
            self.assertIsNone(d["methods"][0]["name"])
            self.assertEqual(d["metadata"]["owner"], "fixtures")
        with self.host.load("calc") as calc:
            d = calc.describe()
            self.assertEqual((d["runtime"], d["types_from"], d["methods"][0]["name"]), ("wasm", "component", "add"))
        with self.assertRaises(fidius.ClosedError):
            basic.describe()

    def test_invoke(self):
        t = self.typed
        self.assertEqual(t.invoke("price", {"id": 1, "sku": "tea", "qty": 3, "unit_cents": 250}), 750)
        self.assertEqual(t.invoke("price", Order(1, "tea", 3, 250)), 750)  # a dataclass is a record
        self.assertEqual(t.invoke("totals", [Order(1, "tea", 2, 5), Order(2, "cup", 1, 7, note="blue")]),
                         [{"sku": "tea", "cents": 10}, {"sku": "cup", "cents": 7}])
        self.assertEqual(t.invoke("greet", "Python"), "Hello, Python!")
        self.assertEqual(t.invoke("widths", -1, -2, -3, -4, 5, 6, 7, 2**64 - 1), "-1,-2,-3,-4,5,6,7,18446744073709551615")
        self.assertEqual(t.invoke("maybe_double", 21), 42)
        self.assertIsNone(t.invoke("maybe-double", None))
        self.assertEqual(t.invoke("area", {"Rect": {"w": 2, "h": 3}}), 6.0)
        self.assertEqual(t.invoke("area", "Empty"), 0.0)
        self.assertEqual(t.invoke("scale", {"Circle": 1.5}, 2), {"Circle": 3.0})
        self.assertEqual(sorted(map(tuple, t.invoke("tally", ["a", "b", "a"]))), [("a", 2), ("b", 1)])
        self.assertEqual(t.invoke("reverse", b"\x01\x02\x03"), [3, 2, 1])
        self.assertIsNone(t.invoke("nothing"))
        # Beyond 2**53 a 64-bit integer comes back as a decimal string.
        self.assertEqual(t.invoke("price", Order(1, "x", 2, 2**53 + 1)), str(2 * (2**53 + 1)))
        self.assert_div_zero(lambda: t.invoke("divide", 7, 0))
        self.assertEqual(t.invoke("divide", 7, 2), 3)
        with self.assertRaises(FidiusError) as cm:
            t.invoke("no-such-method")
        self.assertEqual(cm.exception.status, Status.METHOD_INDEX)
        with self.assertRaises(TypeError):
            t.invoke("greet", object())


def caps_host():
    """caps' manifest asks for env:FIDIUS_FIXTURE_VAR, which the default allow-list refuses;
    @default keeps the default allowance."""
    return new_host(allow_capabilities=["@default", "env:FIDIUS_FIXTURE_VAR"])


class TestCancel(Base):
    SLEEP = 5      # caps sleep_ms(ms: u64) -> u64: blocks in a host call (wasi:clocks)
    FOREVER = 10**12
    SPIN = 7       # caps spin(rounds: u64) -> u64: loops in guest code, never calling the host
    SPIN_FOREVER = 2**64 - 1

    def setUp(self):
        self.host = caps_host()
        self.caps = self.host.load("caps")

    def tearDown(self):
        self.caps.close()
        self.host.close()

    def cancel_later(self, token, delay=0.1):
        at = []

        def fire():
            time.sleep(delay)
            at.append(time.monotonic())
            token.cancel()

        thread = threading.Thread(target=fire)
        thread.start()
        return thread, at

    def test_cancel_token(self):
        self.assertEqual(self.caps.method_index("sleep_ms"), self.SLEEP)
        calls = [
            lambda c: self.caps.invoke("sleep_ms", self.FOREVER, cancel=c),
            lambda c: self.caps.call_json(self.SLEEP, f"[{self.FOREVER}]", cancel=c),
            lambda c: self.caps.call_wire(self.SLEEP, struct.pack("<Q", self.FOREVER), cancel=c),
        ]
        for call in calls:
            with fidius.Cancel() as token:
                self.assertFalse(token.cancelled)
                thread, at = self.cancel_later(token)
                start = time.monotonic()
                with self.assertRaises(FidiusError) as cm:
                    call(token)
                returned = time.monotonic()
                thread.join()
                self.assertEqual(cm.exception.status, Status.CANCELLED)
                self.assertTrue(token.cancelled)
                self.assertGreaterEqual(returned - start, 0.09)
                self.assertLess(returned - at[0], 1.0, "the call did not stop promptly")
            # The plugin serves the next call.
            self.assertEqual(self.caps.invoke("sleep_ms", 1), 1)
        with fidius.Cancel() as fresh:
            self.assertEqual(self.caps.invoke("sleep_ms", 2, cancel=fresh), 2)
        closed = fidius.Cancel()
        closed.close()
        with self.assertRaises(fidius.ClosedError):
            closed.cancel()

    def test_cancel_spinning_call(self):
        # A WASM call looping in guest code with no timeout, cancelled from another thread,
        # stops (10 s is a bound against a hang, not a timing check), and the plugin serves
        # the next call.
        self.assertEqual(self.caps.method_index("spin"), self.SPIN)
        calls = [
            lambda c: self.caps.invoke("spin", self.SPIN_FOREVER, cancel=c),
            lambda c: self.caps.call_wire(self.SPIN, struct.pack("<Q", self.SPIN_FOREVER), cancel=c),
        ]
        for call in calls:
            with fidius.Cancel() as token:
                outcome = []

                def run():
                    try:
                        outcome.append(call(token))
                    except BaseException as e:
                        outcome.append(e)

                worker = threading.Thread(target=run, daemon=True)
                worker.start()
                canceller, _ = self.cancel_later(token)
                worker.join(10.0)
                canceller.join()
                self.assertFalse(worker.is_alive(), "spin(u64::MAX) still running 10 s after the cancel")
                self.assertIsInstance(outcome[0], FidiusError, outcome)
                self.assertEqual(outcome[0].status, Status.CANCELLED)
            self.assertEqual(self.caps.invoke("spin", 1000), 1000)
            self.assertEqual(self.caps.call_wire(self.SPIN, struct.pack("<Q", 1000)), struct.pack("<Q", 1000))

    def test_native_observes_a_triggered_token(self):
        with new_host() as host, host.load("BasicCalc") as basic, fidius.Cancel() as token:
            self.assertEqual(struct.unpack("<q", basic.call_wire(CALC_ADD, wire_i64_pair(2, 3), cancel=token))[0], 5)
            token.cancel()
            token.cancel()  # any number of times
            with self.assertRaises(FidiusError) as cm:
                basic.call_wire(CALC_ADD, wire_i64_pair(2, 3), cancel=token)
            self.assertEqual(cm.exception.status, Status.CANCELLED)
            with host.load("TypedImpl") as typed:
                with self.assertRaises(FidiusError) as cm:
                    typed.invoke("greet", "x", cancel=token)
                self.assertEqual(cm.exception.status, Status.CANCELLED)

    def test_async(self):
        caps = self.caps

        async def main():
            self.assertEqual(await caps.invoke_async("sleep_ms", 3), 3)
            self.assertEqual(await caps.call_async(self.SLEEP, fidius.Format.JSON, b"[4]"), b"4")
            # Cancelling the awaiting task stops the call.
            task = asyncio.ensure_future(caps.invoke_async("sleep_ms", self.FOREVER))
            await asyncio.sleep(0.1)
            start = time.monotonic()
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            self.assertLess(time.monotonic() - start, 1.0)
            # A timeout is a cancellation too.
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(caps.invoke_async("sleep_ms", self.FOREVER), 0.1)
            # A token of the caller's: triggering it is a FidiusError, as for invoke().
            with fidius.Cancel() as token:
                loop = asyncio.get_running_loop()
                loop.call_later(0.1, token.cancel)
                with self.assertRaises(FidiusError) as cm:
                    await caps.invoke_async("sleep_ms", self.FOREVER, cancel=token)
                self.assertEqual(cm.exception.status, Status.CANCELLED)
            return await caps.invoke_async("sleep_ms", 1)

        self.assertEqual(asyncio.run(main()), 1)

    def test_async_spin(self):
        # Cancelling the task awaiting a spinning WASM call stops the call. The loop runs on a
        # thread of its own, so a call that never stops fails the test instead of hanging it
        # (asyncio.run would wait for the cancelled task forever).
        caps, result = self.caps, []

        async def main():
            task = asyncio.ensure_future(caps.invoke_async("spin", self.SPIN_FOREVER))
            await asyncio.sleep(0.1)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=10.0)
            self.assertIn(task, done, "spin(u64::MAX) still running 10 s after the task was cancelled")
            self.assertTrue(task.cancelled())
            result.append(await caps.invoke_async("spin", 1000))

        failed = []

        def run():
            try:
                asyncio.run(main())
            except BaseException as e:
                failed.append(e)

        loop_thread = threading.Thread(target=run, daemon=True)
        loop_thread.start()
        loop_thread.join(20.0)
        self.assertFalse(loop_thread.is_alive(), "the event loop did not finish")
        if failed:
            raise failed[0]
        self.assertEqual(result, [1000])


def pack_fid(package_dir, fid_path, top="calc-0.1.0"):
    """A .fid archive (tar + bzip2) of a package directory, under a top-level directory."""
    with tarfile.open(fid_path, "w:bz2") as tar:
        tar.add(package_dir, arcname=top)



class TestHostFunctions(Base):
    """Plugins (native KvUserImpl and WASM hostfn, fidius 0.5.9) calling a Kv host
    interface written in Python: get(key) -> Option<String> (0), put(key, value) (1)."""
    FETCH, STORE, COPY, HOST_HASH, HOST_VERSION = range(5)

    @staticmethod
    def wire_option_string(v):
        return b"\x00" if v is None else b"\x01" + wire_string(v)

    @staticmethod
    def read_option_string(b):
        return None if b[0] == 0 else read_wire_string(b[1:])

    def kv(self, identity, store):
        def function(index, args):
            (n,) = struct.unpack_from("<Q", args)
            key = args[8:8 + n].decode()
            if index == 0:
                if key == "explode":
                    raise RuntimeError("kv exploded")
                return self.wire_option_string(store.get(key))
            value = read_wire_string(args[8 + n:])
            if key == "forbidden":
                raise fidius.HostFunctionError("DENIED", "that key is not yours", '{"key":"forbidden"}')
            store[key] = value
            return None
        return fidius.HostInterface("Kv", identity[0], identity[1], 2, function)

    def identity(self, name):
        with new_host() as host, host.load(name) as p:
            with self.assertRaises(PluginError) as cm:
                p.call_wire(self.FETCH, wire_string("k"))
            self.assertEqual(cm.exception.code, "HOST_NOT_BOUND")
            return (struct.unpack("<Q", p.call_wire(self.HOST_HASH))[0],
                    struct.unpack("<I", p.call_wire(self.HOST_VERSION))[0])

    def exercise(self, p, store):
        p.call_wire(self.STORE, wire_string("k") + wire_string("from python"))
        self.assertEqual(store["k"], "from python")
        store["h"] = "set by the host"
        self.assertEqual(self.read_option_string(p.call_wire(self.FETCH, wire_string("h"))), "set by the host")
        self.assertIsNone(self.read_option_string(p.call_wire(self.FETCH, wire_string("missing"))))
        with self.assertRaises(PluginError) as cm:
            p.call_wire(self.STORE, wire_string("forbidden") + wire_string("x"))
        self.assertEqual((cm.exception.code, cm.exception.plugin_message, cm.exception.details),
                         ("DENIED", "that key is not yours", '{"key":"forbidden"}'))
        with self.assertRaises(PluginError) as cm:
            p.call_wire(self.FETCH, wire_string("explode"))
        self.assertEqual(cm.exception.code, "HOST_PANIC")
        self.assertIn("kv exploded", cm.exception.plugin_message)
        self.assertEqual(self.read_option_string(p.call_wire(self.FETCH, wire_string("k"))), "from python")

    def test_native_and_wasm(self):
        before = fidius._live_callbacks()
        for name in ("KvUserImpl", "hostfn"):
            identity = self.identity(name)
            store = {}
            kv = self.kv(identity, store)
            with new_host(host_interfaces=[kv]) as host:
                kv.close()  # the host holds its own reference
                with host.load(name) as p:
                    self.exercise(p, store)
                    if name == "KvUserImpl":
                        self.assertEqual(p.describe()["host_imports"],
                                         [{"name": "Kv", "hash": f"0x{identity[0]:016x}", "version": 1, "bound": True}])
            gc.collect()
            self.assertEqual(fidius._live_callbacks(), before, f"{name}: released with the host and plugin")

    def test_per_load_and_mismatch(self):
        identity = self.identity("hostfn")
        with self.kv((identity[0] ^ 1, identity[1]), {}) as wrong, new_host() as host:
            with host.load("hostfn", fidius.LoadOptions(host_interfaces=[wrong])) as p:
                with self.assertRaises(PluginError) as cm:
                    p.call_wire(self.FETCH, wire_string("k"))
                self.assertEqual(cm.exception.code, "HOST_HASH_MISMATCH")
        self.assertEqual(Status(64), Status.HOST_INTERFACE)
        with self.assertRaises(TypeError):
            fidius.HostInterface("Kv", 1, 1, 2, None)

class TestFid(Base):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="fidius-py-")
        self.fid = os.path.join(self.tmp, "calc-0.1.0.fid")
        pack_fid(os.path.join(PLUGIN_DIR, "calc"), self.fid)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_load_fid(self):
        with new_host() as host, host.load_fid(self.fid) as calc:
            self.assertEqual(calc.info.name, "calc")
            self.assertEqual(calc.invoke("add", 2, 40), 42)
        with new_host() as host, host.load_fid(self.fid, fidius.LoadOptions(timeout=5)) as calc:
            self.assertEqual(calc.invoke("add", 1, 2), 3)

    def test_unpack_fid(self):
        dest = os.path.join(self.tmp, "dest")
        with new_host() as host:
            package_dir = host.unpack_fid(self.fid, dest)
        self.assertEqual(os.path.realpath(package_dir), os.path.realpath(os.path.join(dest, "calc-0.1.0")))
        self.assertTrue(os.path.isfile(os.path.join(package_dir, "package.toml")))
        with fidius.Host([dest]) as host, host.load("calc") as calc:
            self.assertEqual(calc.invoke("add", 40, 2), 42)

    def test_bad_archive(self):
        bad = os.path.join(self.tmp, "bad.fid")
        with open(bad, "wb") as f:
            f.write(b"not an archive")
        with new_host() as host:
            with self.assertRaises(FidiusError) as cm:
                host.load_fid(bad)
            self.assertEqual(cm.exception.status, Status.ARCHIVE)
            with self.assertRaises(FidiusError) as cm:
                host.unpack_fid(bad, os.path.join(self.tmp, "dest"))
            self.assertEqual(cm.exception.status, Status.ARCHIVE)


class Recorder(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.seen.append((self.path, dict(self.headers)))
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class AuthRecorder(http.server.BaseHTTPRequestHandler):
    """Answers 401 unless the request carries "Authorization: Bearer 2"; records (headers, body)."""

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
        ok = self.headers.get("Authorization") == "Bearer 2"
        reply = b"ok" if ok else b"expired"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(reply)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


class TestSockets(Base):
    """tcp/udp through the policy's socket callback, and the response hook, with the
    `net` fixture (fidius 0.5.9 guest crates) against loopback servers."""

    def setUp(self):
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.tcp.settimeout(0.2)
        self.tcp_port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.udp_port = self.udp.getsockname()[1]
        self.udp_seen = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._serve_tcp, self._serve_udp)]
        for t in self.threads:
            t.start()

    def tearDown(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.tcp.close()
        self.udp.close()

    def _serve_tcp(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(10)
                line = conn.makefile("rb").readline().decode().rstrip("\n")
                conn.sendall(f"echo: {line}\n".encode())

    def _serve_udp(self):
        while not self.stop.is_set():
            try:
                data, peer = self.udp.recvfrom(2048)
            except OSError:
                continue
            self.udp_seen.append(data)
            self.udp.sendto(b"echo: " + data, peer)

    def load_net(self, host, grants):
        return host.load("net", fidius.LoadOptions(grants=grants, timeout=30.0))

    def test_enum_values(self):
        self.assertEqual([int(u) for u in fidius.SocketUse], [1, 2, 3, 4])
        self.assertEqual((int(fidius.ResponseDirective.FORWARD), int(fidius.ResponseDirective.RETRY_ONCE)), (0, 1))

    def test_tcp_by_name_and_dns(self):
        seen = []

        def sockets(req):
            seen.append((req.use, req.host, req.address, req.port, req.plugin))
            if req.use in (fidius.SocketUse.DNS_LOOKUP, fidius.SocketUse.TCP_CONNECT) and req.host == "localhost":
                return Verdict.ALLOW
            req.set_deny_reason("python says no")
            return Verdict.DENY

        with fidius.EgressPolicy(lambda r: Verdict.DENY, allow_private_ranges=True, socket=sockets) as egress, \
                new_host(egress=egress) as host, self.load_net(host, ["tcp", "http"]) as net:
            self.assertEqual(net.invoke("tcp_echo", "localhost", self.tcp_port, "hi"), "echo: hi")
            self.assertIn((fidius.SocketUse.DNS_LOOKUP, "localhost", None, 0, "net"), seen)
            connect = [s for s in seen if s[0] == fidius.SocketUse.TCP_CONNECT][0]
            self.assertEqual((connect[1], connect[3], connect[4]), ("localhost", self.tcp_port, "net"))
            self.assertIn(connect[2], ("127.0.0.1", "::1"))
            # A bare address has no name (fresh instance per call): denied, the reason reaches the host.
            with self.assertRaises(PluginError) as cm:
                net.invoke("tcp_echo", "127.0.0.1", self.tcp_port, "x")
            self.assertEqual(cm.exception.code, "IO")
            self.assertIn("socket denied for plugin net", cm.exception.message)
            self.assertIn("python says no", cm.exception.message)
            # DNS denial: a resolver failure, and no connect asked.
            seen.clear()
            with self.assertRaises(PluginError) as cm:
                net.invoke("resolve", "ip6-localhost")
            self.assertEqual(cm.exception.code, "IO")
            self.assertEqual([s[0] for s in seen], [fidius.SocketUse.DNS_LOOKUP])

    def test_udp(self):
        seen = []

        def sockets(req):
            seen.append(req.use)
            ok = req.use == fidius.SocketUse.UDP_BIND or (
                req.use == fidius.SocketUse.UDP_SEND and req.address == "127.0.0.1" and req.port == self.udp_port)
            return Verdict.ALLOW if ok else Verdict.DENY

        with fidius.EgressPolicy(lambda r: Verdict.DENY, allow_private_ranges=True, socket=sockets) as egress, \
                new_host(egress=egress) as host, self.load_net(host, ["udp", "http"]) as net:
            self.assertEqual(net.invoke("udp_echo", "127.0.0.1", self.udp_port, "ping"), "echo: ping")
            self.assertEqual(self.udp_seen, [b"ping"])
            self.assertIn(fidius.SocketUse.UDP_BIND, seen)
            self.assertIn(fidius.SocketUse.UDP_SEND, seen)

    def test_missing_socket_callback_fails_closed(self):
        with fidius.EgressPolicy(lambda r: Verdict.ALLOW) as egress, new_host(egress=egress) as host:
            with self.assertRaises(FidiusError) as cm:
                self.load_net(host, ["tcp", "http"])
            self.assertEqual(cm.exception.status, Status.CAPABILITY)
            self.assertIn("fidius_egress_policy_set_socket_callback", cm.exception.message)

    def test_raising_socket_callback_denies(self):
        with fidius.EgressPolicy(lambda r: Verdict.DENY, allow_private_ranges=True, socket=lambda req: 1 / 0) as egress, \
                new_host(egress=egress) as host, self.load_net(host, ["tcp", "http"]) as net:
            with self.assertRaises(PluginError) as cm:
                net.invoke("tcp_echo", "127.0.0.1", self.tcp_port, "x")
            self.assertIn("ZeroDivisionError", cm.exception.message)

    def test_response_hook_retries_once(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AuthRecorder)
        server.seen = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        asks, responses = [], []

        def egress_fn(req):
            asks.append(1)
            req.set_header("authorization", f"Bearer {len(asks)}")
            return Verdict.ALLOW

        def on_response(req, resp):
            try:
                req.set_header("x-late", "1")
                edit = "allowed"
            except FidiusError as e:
                edit = e.status
            auth = dict(req.headers).get("authorization")
            responses.append((resp.status, resp.retry_available, auth, edit))
            return fidius.ResponseDirective.RETRY_ONCE if resp.status == 401 else fidius.ResponseDirective.FORWARD

        try:
            with fidius.EgressPolicy(egress_fn, allow_private_ranges=True, response=on_response) as egress, \
                    new_host(egress=egress) as host, self.load_net(host, ["http"]) as net:
                url = f"http://127.0.0.1:{server.server_address[1]}/api"
                self.assertEqual(net.invoke("post", url, "payload"), "200 ok")
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual([body for _, body in server.seen], [b"payload", b"payload"])
        self.assertEqual([h.get("authorization") for h, _ in server.seen], ["Bearer 1", "Bearer 2"])
        self.assertEqual(responses, [(401, True, b"Bearer 1", Status.INVALID_ARGUMENT),
                                     (200, False, b"Bearer 2", Status.INVALID_ARGUMENT)])


class TestEgress(Base):
    def setUp(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        self.server.seen = []
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.port = self.server.server_address[1]

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()

    def test_policy(self):
        before = fidius._live_callbacks()
        allowed = f"127.0.0.1:{self.port}"
        asked, logs, guest_headers, destinations = [], [], [], []

        def policy(req):
            asked.append(f"{req.method} {req.scheme}://{req.authority}{req.path_and_query} by {req.plugin}")
            destinations.append((req.host, req.port, req.addresses))
            if req.authority != allowed:
                req.set_deny_reason("only the test server is allowed")
                return Verdict.DENY
            req.set_header("authorization", "Bearer python-token")
            for name, value in req.headers:
                if name == "x-guest":
                    guest_headers.append(value)
                    req.remove_header("x-guest")
            return Verdict.ALLOW

        egress = fidius.EgressPolicy(policy, allow_private_ranges=True)  # the test server is on 127.0.0.1
        host = new_host(egress=egress, log=lambda level, msg: logs.append(msg))
        egress.close()  # the host holds its own reference
        del egress, policy
        gc.collect()
        fetch = host.load("fetch")
        idx = fetch.method_index("fetch")

        self.assertEqual(fetch.call_json(idx, f'["http://{allowed}/data"]'), '"200 hello"')
        self.assertEqual(len(self.server.seen), 1)
        path, headers = self.server.seen[0]
        self.assertEqual(path, "/data")
        self.assertEqual(headers.get("authorization"), "Bearer python-token")
        self.assertEqual(destinations[0], ("127.0.0.1", self.port, ["127.0.0.1"]))

        # A header the guest sets is visible to the policy, which strips it.
        self.assertEqual(fetch.invoke("fetch_with_headers", f"http://{allowed}/h", [["x-guest", "from-plugin"]]),
                         "200 hello")
        self.assertEqual(guest_headers, [b"from-plugin"])
        path, headers = self.server.seen[1]
        self.assertNotIn("x-guest", {k.lower() for k in headers})
        self.assertEqual(headers.get("authorization"), "Bearer python-token")

        with self.assertRaises(PluginError) as cm:
            fetch.invoke("fetch", f"http://localhost:{self.port}/other")
        self.assertIn("only the test server is allowed", cm.exception.message)
        self.assertEqual(len(self.server.seen), 2, "the denied request arrived")
        self.assertEqual(len(asked), 3)
        self.assertEqual(destinations[2][0], "localhost")
        self.assertEqual(destinations[2][1], self.port)
        self.assertIn("127.0.0.1", destinations[2][2])
        self.assertTrue(any("only the test server is allowed" in l for l in logs), logs)

        host.close()
        self.assertGreater(fidius._live_callbacks(), before, "released while the plugin uses the policy")
        fetch.close()
        self.assertEqual(fidius._live_callbacks(), before)

    def test_raising_or_sloppy_policy_denies(self):
        for policy in (lambda req: 1 / 0, lambda req: None, lambda req: False, lambda req: 0):
            with fidius.EgressPolicy(policy, allow_private_ranges=True) as egress, new_host() as host, \
                    host.load("fetch", fidius.LoadOptions(egress=egress)) as fetch:
                with self.assertRaises(PluginError):
                    fetch.invoke("fetch", f"http://127.0.0.1:{self.port}/")
        self.assertEqual(self.server.seen, [])

    def test_ssrf_floor(self):
        asked = []

        def policy(req):
            asked.append(req.host)
            return Verdict.ALLOW

        with fidius.EgressPolicy(policy) as egress, new_host(egress=egress) as host, host.load("fetch") as fetch:
            with self.assertRaises(PluginError) as cm:
                fetch.invoke("fetch", f"http://127.0.0.1:{self.port}/floor")
            self.assertEqual(cm.exception.status, Status.PLUGIN_ERROR)
            self.assertIn("SSRF floor", cm.exception.message)
            self.assertEqual(asked, [], "the floor decides before the policy is asked")
            self.assertEqual(self.server.seen, [])
            # Lifting the floor applies to the requests decided afterwards.
            egress.set_allow_private_ranges(True)
            self.assertEqual(fetch.invoke("fetch", f"http://127.0.0.1:{self.port}/lifted"), "200 hello")
            self.assertEqual(asked, ["127.0.0.1"])
            self.assertEqual([p for p, _ in self.server.seen], ["/lifted"])

    def test_callback_thread(self):
        # The callback runs on a thread libfidius starts for it while the calling thread waits.
        threads = []

        def policy(req):
            threads.append(threading.get_ident())
            return Verdict.ALLOW

        with fidius.EgressPolicy(policy, allow_private_ranges=True) as egress, new_host(egress=egress) as host, \
                host.load("fetch") as fetch:
            self.assertEqual(fetch.invoke("fetch", f"http://127.0.0.1:{self.port}/t"), "200 hello")
        self.assertEqual(len(threads), 1)
        self.assertNotEqual(threads[0], threading.get_ident())

    def test_request_guard_across_threads(self):
        # A request kept past its callback (or used from another thread) raises
        # ClosedError; a thread using it during the callback holds it valid.
        kept, hammer_results, stop = [], [], threading.Event()

        def hammer(req):
            while not stop.is_set():
                try:
                    hammer_results.append(req.host)
                except fidius.ClosedError:
                    hammer_results.append(None)

        def policy(req):
            kept.append(req)
            t = threading.Thread(target=hammer, args=(req,))
            t.start()
            time.sleep(0.05)
            kept.append(t)
            return Verdict.ALLOW

        with fidius.EgressPolicy(policy, allow_private_ranges=True) as egress, new_host(egress=egress) as host, \
                host.load("fetch") as fetch:
            self.assertEqual(fetch.invoke("fetch", f"http://127.0.0.1:{self.port}/g"), "200 hello")
        req, t = kept
        time.sleep(0.02)
        stop.set()
        t.join()
        self.assertIn("127.0.0.1", hammer_results)
        self.assertEqual(hammer_results[-1], None, "used after the callback: ClosedError")
        self.assertEqual(set(hammer_results), {"127.0.0.1", None})
        for use in (lambda: req.method, lambda: req.headers, lambda: req.set_header("a", "b")):
            with self.assertRaises(fidius.ClosedError):
                use()

    def test_log_registration_failure_releases_the_callback(self):
        # Force fidius_host_builder_set_log_callback to fail for real (a NULL callback:
        # NULL_ARGUMENT); destroy is not called on failure, so the binding must drop its entry.
        real = fidius._lib.fidius_host_builder_set_log_callback

        def failing(builder, callback, user_data, destroy, err):
            return real(builder, fidius._LOG_FN(), user_data, destroy, err)

        before = fidius._live_callbacks()
        fidius._lib.fidius_host_builder_set_log_callback = failing
        try:
            with self.assertRaises(FidiusError) as cm:
                new_host(log=lambda level, msg: None)
        finally:
            fidius._lib.fidius_host_builder_set_log_callback = real
        self.assertEqual(cm.exception.status, Status.NULL_ARGUMENT)
        self.assertEqual(fidius._live_callbacks(), before, "the log callback's entry leaked")
        with new_host(log=lambda level, msg: None):
            self.assertEqual(fidius._live_callbacks(), before + 1)
        gc.collect()
        self.assertEqual(fidius._live_callbacks(), before)

    def test_finalizers_release(self):
        before = fidius._live_callbacks()

        def scope():
            egress = fidius.EgressPolicy(lambda req: Verdict.DENY)
            host = new_host(egress=egress)
            host.load("fetch")

        scope()
        gc.collect()
        self.assertEqual(fidius._live_callbacks(), before)


def wire_u64(n):
    return struct.pack("<Q", n)


def read_u64(b):
    return struct.unpack("<Q", b)[0]


class SourceFailed(Exception):
    pass


class TestStreams(Base):
    """Streaming methods of the Streamer fixtures (native StreamerImpl, fidius 0.5.9, and the
    WASM package "stream"): count(n, marker) -> Stream<u64> (0), blobs(count, size) ->
    Stream<String> (1), explode(at) -> Stream<u64> (2, panics at `at`), sum(start,
    Stream<u64>) -> u64 (3), shout(prefix, Stream<String>) -> Stream<String> (4), add(a, b)
    (5), points(n) -> Stream<Point> (6), sum_checked(Stream<u64>) -> Result<u64> (7),
    forever(marker) -> Stream<u64> (8). `marker`: a file that gets one line "dropped" when
    the producer is dropped (its end or cancel)."""
    COUNT, BLOBS, EXPLODE, SUM, SHOUT, ADD, POINTS, SUM_CHECKED, FOREVER = range(9)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="fidius-py-streams-")
        self.callbacks = fidius._live_callbacks()
        self.strays = fidius._stray_source_destroys

    def tearDown(self):
        gc.collect()
        # Every source was destroyed (its registry entry, the GC pin, gone), none twice.
        self.assertEqual(fidius._live_callbacks(), self.callbacks, "a stream source leaked")
        self.assertEqual(fidius._stray_source_destroys, self.strays, "a source destroyed twice")
        shutil.rmtree(self.tmp)

    def wasm_options(self):
        return fidius.LoadOptions(grants=[f"fs:rw:{self.tmp}"])

    def runtimes(self):
        """(runtime name, plugin) for the native plugin (its .wit lies beside it) and the
        WASM one, granted the scratch directory for its markers; closed afterwards."""
        for runtime in ("native", "wasm"):
            with new_host() as host:
                plugin = host.load("StreamerImpl") if runtime == "native" else host.load("stream", self.wasm_options())
            with plugin:
                yield runtime, plugin

    def marker(self, name):
        return os.path.join(self.tmp, name)

    def dropped(self, path):
        try:
            with open(path) as f:
                return sum(1 for line in f if line.strip() == "dropped")
        except FileNotFoundError:
            return 0

    @staticmethod
    def count_input(n, marker=""):
        return wire_u64(n) + wire_string(marker)

    def test_status_values(self):
        self.assertEqual((int(Status.STREAM_END), int(Status.STREAM_SOURCE)), (65, 66))
        self.assertEqual(Status(65), Status.STREAM_END)
        self.assertEqual(Status(66), Status.STREAM_SOURCE)
        for s in (Status.STREAM_END, Status.STREAM_SOURCE):
            self.assertNotEqual(fidius._s(fidius._lib.fidius_status_name(int(s))), "unknown status")

    def test_server_stream_in_order(self):
        for runtime, p in self.runtimes():
            for n in (0, 1, 10_000):
                marker = self.marker(f"order-{runtime}-{n}")
                s = p.stream(self.COUNT, fidius.Format.WIRE, self.count_input(n, marker))
                self.assertIsInstance(s, fidius.Stream)
                self.assertEqual([read_u64(b) for b in s], list(range(n)), f"{runtime}: count({n})")
                self.assertEqual(self.dropped(marker), 1, f"{runtime}: dropped once, at the end")
                self.assertTrue(s.closed, "an ended stream releases its handle")
                with self.assertRaises(StopIteration):
                    next(s)  # the end is answered again
                s.close()
                s.close()
                self.assertEqual(self.dropped(marker), 1, f"{runtime}: nothing dropped twice")
            # By name, and stream_wire().
            with p.stream_wire("count", self.count_input(3)) as s:
                self.assertEqual([read_u64(b) for b in s], [0, 1, 2])

    def test_large_items(self):
        for runtime, p in self.runtimes():
            for size in (1, 5_000, 300_000):
                with p.stream_wire(self.BLOBS, struct.pack("<II", 4, size)) as s:
                    items = [read_wire_string(b) for b in s]
                self.assertEqual(len(items), 4, runtime)
                for i, item in enumerate(items):
                    self.assertEqual(item, chr(ord("a") + i) * size, f"{runtime}: item {i} of {size}")

    def test_early_close_drops_the_producer_once(self):
        for runtime, p in self.runtimes():
            endless = self.marker(f"forever-{runtime}")
            with p.stream_wire(self.FOREVER, wire_string(endless)) as s:
                self.assertEqual([read_u64(next(s)) for _ in range(5)], [0, 1, 2, 3, 4], runtime)
                self.assertEqual(self.dropped(endless), 0, f"{runtime}: not dropped while open")
            self.assertEqual(self.dropped(endless), 1, f"{runtime}: close() drops the producer once")
            self.assertTrue(s.closed)
            s.close()  # idempotent
            with self.assertRaises(fidius.ClosedError):
                next(s)
            self.assertEqual(self.dropped(endless), 1, runtime)

            counted = self.marker(f"count-{runtime}")
            s = p.stream_wire(self.COUNT, self.count_input(100, counted))
            next(s)
            s.close()
            self.assertEqual(self.dropped(counted), 1, runtime)

            unpulled = self.marker(f"unpulled-{runtime}")
            p.stream_wire(self.COUNT, self.count_input(100, unpulled)).close()
            self.assertEqual(self.dropped(unpulled), 1, runtime)

            # Never closed: the finalizer frees it when the stream is collected.
            collected = self.marker(f"collected-{runtime}")
            s = p.stream_wire(self.FOREVER, wire_string(collected))
            for item in s:
                if read_u64(item) == 2:
                    break
            del s, item
            gc.collect()
            self.assertEqual(self.dropped(collected), 1, f"{runtime}: the finalizer frees a dropped stream")

    def test_explode_midway(self):
        for runtime, p in self.runtimes():
            s = p.stream_wire(self.EXPLODE, wire_u64(3))
            items = []
            with self.assertRaises(FidiusError) as cm:
                for item in s:
                    items.append(read_u64(item))
            self.assertEqual(items, [0, 1, 2], runtime)
            expected = Status.PLUGIN_PANIC if runtime == "native" else Status.TRAP
            self.assertEqual(cm.exception.status, expected, f"{runtime}: {cm.exception}")
            self.assertNotIsInstance(cm.exception, PluginError)
            self.assertEqual(list(s), [], f"{runtime}: ended after the failure")
            with self.assertRaises(StopIteration):
                next(s)
            # The plugin serves on.
            self.assertEqual(struct.unpack("<q", p.call_wire(self.ADD, wire_i64_pair(2, 40)))[0], 42, runtime)

    def test_client_stream_sum(self):
        for runtime, p in self.runtimes():
            caller = threading.get_ident()
            pulled_on = set()
            closed = []

            def items():
                try:
                    for i in range(1, 101):
                        pulled_on.add(threading.get_ident())
                        yield wire_u64(i)
                finally:
                    closed.append(True)

            gen = items()
            alive = weakref.ref(gen)
            out = p.call_streaming(self.SUM, gen, fidius.Format.WIRE, wire_u64(10))
            del gen
            self.assertEqual(read_u64(out), 10 + 5050, runtime)
            self.assertEqual(pulled_on, {caller}, f"{runtime}: pulled on the calling thread")
            gc.collect()
            self.assertIsNone(alive(), f"{runtime}: the binding released the iterable")
            self.assertEqual(closed, [True], runtime)
            self.assertEqual(fidius._live_callbacks(), self.callbacks, f"{runtime}: destroyed by the time it returns")
            # Any iterable: a list, an empty one, a generator expression, bytearrays.
            self.assertEqual(read_u64(p.call_streaming(self.SUM, [], data=wire_u64(7))), 7, runtime)
            self.assertEqual(read_u64(p.call_streaming("sum", (bytearray(wire_u64(i)) for i in range(4)),
                                                       data=wire_u64(0))), 6, runtime)
            # JSON arguments and result, wire items.
            self.assertEqual(p.call_streaming(self.SUM, [wire_u64(2), wire_u64(3)], fidius.Format.JSON, b"[10]"), b"15")
            self.assertEqual(p.invoke_streaming("sum", map(wire_u64, [2, 3]), 10), 15, runtime)
            with self.assertRaises(TypeError):
                p.call_streaming(self.SUM, wire_u64(1), data=wire_u64(0))  # one bytes object is no iterable of items
            with self.assertRaises(TypeError):
                p.call_streaming(self.SUM, 5, data=wire_u64(0))
        self.assertEqual(fidius._live_callbacks(), self.callbacks)

    def test_failing_source(self):
        for runtime, p in self.runtimes():
            def failing():
                yield wire_u64(1)
                yield wire_u64(2)
                raise SourceFailed("the disk is on fire")

            with self.assertRaises(FidiusError) as cm:
                p.call_streaming(self.SUM, failing(), data=wire_u64(0))
            e = cm.exception
            self.assertEqual(e.status, Status.STREAM_SOURCE, f"{runtime}: {e}")
            self.assertIsInstance(e.__cause__, SourceFailed, "raised from the iterable's exception")
            self.assertEqual(str(e.__cause__), "the disk is on fire")
            self.assertIn("SourceFailed", e.message)
            self.assertIn("-1", e.message)  # libfidius' message carries the source's code

            # An item that is not bytes-like is the iterable's failure too.
            with self.assertRaises(FidiusError) as cm:
                p.call_streaming(self.SUM, [wire_u64(1), 2], data=wire_u64(0))
            self.assertEqual(cm.exception.status, Status.STREAM_SOURCE)
            self.assertIsInstance(cm.exception.__cause__, TypeError)

            # KeyboardInterrupt (or SystemExit) comes out as itself.
            def interrupted():
                yield wire_u64(1)
                raise KeyboardInterrupt

            with self.assertRaises(KeyboardInterrupt):
                p.call_streaming(self.SUM, interrupted(), data=wire_u64(0))

            # A bidirectional stream: the items before the failure, then the failure, then the end.
            def words():
                yield wire_string("a")
                yield wire_string("b")
                raise SourceFailed("no more words")

            with p.stream_wire(self.SHOUT, wire_string(""), input=words()) as s:
                got = []
                with self.assertRaises(FidiusError) as cm:
                    for item in s:
                        got.append(read_wire_string(item))
                self.assertEqual(got, ["A", "B"], runtime)
                self.assertEqual(cm.exception.status, Status.STREAM_SOURCE, runtime)
                self.assertIsInstance(cm.exception.__cause__, SourceFailed)
                self.assertEqual(list(s), [])

            # An input that pulls its own stream: RuntimeError, not a deadlock.
            own = {}

            def reentrant():
                yield wire_string("x")
                next(own["s"])
                yield wire_string("never")

            with p.stream_wire(self.SHOUT, wire_string(""), input=reentrant()) as s:
                own["s"] = s
                self.assertEqual(read_wire_string(next(s)), "X")
                with self.assertRaises(FidiusError) as cm:
                    next(s)
                self.assertEqual(cm.exception.status, Status.STREAM_SOURCE)
                self.assertIsInstance(cm.exception.__cause__, RuntimeError)
            del own

    def test_sum_checked_plugin_error(self):
        for runtime, p in self.runtimes():
            with self.assertRaises(PluginError) as cm:
                p.call_streaming(self.SUM_CHECKED, map(wire_u64, [1, 2, 13, 4]))
            e = cm.exception
            self.assertEqual((e.status, e.code, e.plugin_message), (Status.PLUGIN_ERROR, "UNLUCKY", "item 13"), runtime)
            self.assertIsNone(e.__cause__)
            self.assertEqual(read_u64(p.call_streaming(self.SUM_CHECKED, map(wire_u64, [1, 2, 4]))), 7, runtime)
            with self.assertRaises(PluginError) as cm:
                p.invoke_streaming("sum_checked", map(wire_u64, [13]))
            self.assertEqual(cm.exception.code, "UNLUCKY")

    def test_bidirectional_shout(self):
        for runtime, p in self.runtimes():
            words = [wire_string(w) for w in ("hi", "yo", "", "fidius")]
            with p.stream_wire(self.SHOUT, wire_string(">"), input=words) as s:
                self.assertEqual(read_wire_string(next(s)), ">HI", runtime)
                self.assertEqual([read_wire_string(b) for b in s], [">YO", ">", ">FIDIUS"], runtime)
            self.assertEqual(fidius._live_callbacks(), self.callbacks, f"{runtime}: the input released at the end")

            # Pulled lazily: the input is read as the output is.
            fed = []

            def lazy():
                for i in range(50):
                    fed.append(i)
                    yield wire_string(f"w{i}")

            with p.stream_wire(self.SHOUT, wire_string("-"), input=lazy()) as s:
                self.assertEqual(read_wire_string(next(s)), "-W0")
                self.assertLess(len(fed), 50, runtime)
                # Moved to another thread.
                rest = []
                t = threading.Thread(target=lambda: rest.extend(read_wire_string(b) for b in s))
                t.start()
                t.join(60)
                self.assertFalse(t.is_alive())
                self.assertEqual(rest, [f"-W{i}" for i in range(1, 50)], runtime)

            # Closed early: the input is released with it.
            gen = lazy()
            alive = weakref.ref(gen)
            s = p.stream_wire(self.SHOUT, wire_string("-"), input=gen)
            del gen
            next(s)
            self.assertGreater(fidius._live_callbacks(), self.callbacks)
            s.close()
            gc.collect()
            self.assertIsNone(alive(), runtime)
            self.assertEqual(fidius._live_callbacks(), self.callbacks, runtime)

            # JSON: arguments and items in JSON, the input in wire bytes.
            with p.stream_json(self.SHOUT, '{"prefix": "+"}', input=[wire_string("a")]) as s:
                self.assertEqual(list(s), ['"+A"'], runtime)
            with p.invoke_stream("shout", "+", input=[wire_string("b"), wire_string("c")]) as s:
                self.assertEqual(list(s), ["+B", "+C"], runtime)

    def check_json_streams(self, p, runtime):
        points = [{"x": 0, "y": 0, "label": "p0"}, {"x": 1, "y": -1, "label": "p1"}, {"x": 2, "y": -2, "label": "p2"}]
        with p.invoke_stream("points", 3) as s:
            self.assertEqual(list(s), points, runtime)
        with p.stream(self.POINTS, fidius.Format.JSON, b'{"n": 3}') as s:
            self.assertEqual([json.loads(b) for b in s], points, runtime)
        with p.stream_json("count", '[4, ""]') as s:
            self.assertEqual([json.loads(t) for t in s], [0, 1, 2, 3], runtime)
        self.assertEqual(list(p.invoke_stream("count", 3, "")), [0, 1, 2], runtime)
        # Wrong argument types are refused before anything starts.
        with self.assertRaises(FidiusError) as cm:
            p.invoke_stream("count", "four", "")
        self.assertEqual(cm.exception.status, Status.SERIALIZATION, runtime)
        # Not a stream: refused (a schema or a component says so).
        with self.assertRaises(FidiusError) as cm:
            p.stream_wire(self.ADD, wire_i64_pair(1, 2))
        self.assertEqual(cm.exception.status, Status.UNSUPPORTED, runtime)
        with self.assertRaises(FidiusError) as cm:
            p.call_streaming(self.SHOUT, [wire_string("x")], data=wire_string("x"))
        self.assertEqual(cm.exception.status, Status.UNSUPPORTED, f"{runtime}: bidirectional as a client call")
        with self.assertRaises(FidiusError) as cm:
            p.stream_wire(99)
        self.assertEqual(cm.exception.status, Status.METHOD_INDEX, runtime)
        with self.assertRaises(FidiusError) as cm:
            p.invoke_stream("no-such-method")
        self.assertEqual(cm.exception.status, Status.METHOD_INDEX, runtime)

    def test_json_points(self):
        # The native library alone, without the .wit beside it: its schema comes from the load
        # options.
        lib = os.path.join(self.tmp, "libfixture_stream.so")
        shutil.copy(os.path.join(PLUGIN_DIR, "libfixture_stream.so"), lib)
        wit = os.path.join(PLUGIN_DIR, "libfixture_stream.so.wit")
        with fidius.Host([self.tmp]) as host:
            with host.load_path(lib, "StreamerImpl") as bare:
                with self.assertRaises(FidiusError) as cm:
                    bare.stream(self.POINTS, fidius.Format.JSON, b'{"n": 3}')
                self.assertEqual(cm.exception.status, Status.UNSUPPORTED, "no item types without a schema")
                with self.assertRaises(FidiusError) as cm:
                    bare.invoke_stream("points", 3)
                self.assertEqual(cm.exception.status, Status.METHOD_INDEX, "no names without a schema")
                self.assertEqual([read_u64(b) for b in bare.stream_wire(self.COUNT, self.count_input(3))], [0, 1, 2])
            with host.load_path(lib, "StreamerImpl", fidius.LoadOptions(schema_file=wit)) as typed:
                self.check_json_streams(typed, "native with schema")
        with new_host() as host, host.load("stream", self.wasm_options()) as wasm:
            self.check_json_streams(wasm, "wasm")

    def test_eight_threads(self):
        # Each thread pulls with the GIL released in fidius_stream_next; a bidirectional
        # stream's input and a client stream's items run back on the pulling thread, which
        # ctypes gives the GIL again for the callback: no deadlock, nothing crossed.
        for runtime, p in self.runtimes():
            errors, done = [], []

            def work(t):
                try:
                    n = 2_000 + t
                    marker = self.marker(f"threads-{runtime}-{t}")
                    with p.stream_wire(self.COUNT, self.count_input(n, marker)) as s:
                        items = [read_u64(b) for b in s]
                    if items != list(range(n)) or self.dropped(marker) != 1:
                        errors.append((t, "server", len(items)))
                    words = (wire_string(f"t{t}w{i}") for i in range(200))
                    with p.stream_wire(self.SHOUT, wire_string(f"{t}:"), input=words) as s:
                        shouted = [read_wire_string(b) for b in s]
                    if shouted != [f"{t}:T{t}W{i}" for i in range(200)]:
                        errors.append((t, "bidi", shouted[:3]))
                    total = read_u64(p.call_streaming(self.SUM, map(wire_u64, range(500)), data=wire_u64(t)))
                    if total != t + sum(range(500)):
                        errors.append((t, "client", total))
                    done.append(t)
                except BaseException as e:
                    errors.append((t, repr(e)))

            threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(8)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(120)
            self.assertFalse(any(th.is_alive() for th in threads), f"{runtime}: a thread is stuck (deadlock?)")
            self.assertEqual(errors, [], runtime)
            self.assertEqual(sorted(done), list(range(8)), runtime)

    def test_cancel_from_another_thread(self):
        # forever() never ends: cancel() from another thread stops the next() in progress (a
        # WASM item wherever it is, a native stream before its next item), which raises
        # CANCELLED once; the plugin serves on.
        for runtime, p in self.runtimes():
            marker = self.marker(f"cancel-{runtime}")
            s = p.stream_wire(self.FOREVER, wire_string(marker))
            got = []

            def pull():
                try:
                    for item in s:
                        got.append(read_u64(item))
                except BaseException as e:
                    got.append(e)

            puller = threading.Thread(target=pull, daemon=True)
            puller.start()
            time.sleep(0.1)
            s.cancel()
            puller.join(10)
            self.assertFalse(puller.is_alive(), f"{runtime}: next() still running 10 s after cancel()")
            error = got.pop()
            self.assertIsInstance(error, FidiusError, (runtime, error))
            self.assertEqual(error.status, Status.CANCELLED, (runtime, error.message))
            self.assertEqual(got, list(range(len(got))), runtime)
            self.assertEqual(list(s), [])
            s.close()
            s.cancel()
            self.assertEqual([read_u64(b) for b in p.stream_wire(self.COUNT, self.count_input(3))], [0, 1, 2], runtime)

    def test_stream_outlives_its_plugin(self):
        for runtime, p in self.runtimes():
            s = p.stream_wire(self.COUNT, self.count_input(10))
            p.close()
            with self.assertRaises(fidius.ClosedError):
                p.stream_wire(self.COUNT, self.count_input(1))
            with self.assertRaises(fidius.ClosedError):
                p.call_streaming(self.SUM, [wire_u64(1)], data=wire_u64(0))
            self.assertEqual([read_u64(b) for b in s], list(range(10)), runtime)

    def test_failed_start_destroys_the_source(self):
        # libfidius destroys the source when the start fails (tearDown checks the registry
        # and that nothing was destroyed twice).
        with new_host() as host, host.load("stream", self.wasm_options()) as p:
            gen = (wire_u64(i) for i in range(3))
            alive = weakref.ref(gen)
            with self.assertRaises(FidiusError) as cm:
                p.stream_wire(self.ADD, wire_i64_pair(1, 2), input=gen)
            self.assertEqual(cm.exception.status, Status.UNSUPPORTED)
            del gen
            gc.collect()
            self.assertIsNone(alive())
            self.assertEqual(fidius._live_callbacks(), self.callbacks)
        with new_host() as host, host.load("calc") as calc:
            with self.assertRaises(FidiusError) as cm:
                calc.call_streaming(0, [wire_u64(1)], data=wire_i64_pair(1, 2))
            self.assertEqual(cm.exception.status, Status.UNSUPPORTED, "a component that pulls no stream")


class TestPythonPlugins(Base):
    """The `pycalc` Python plugin package (``runtime = "python"``, made with fidius-cli 0.5.9),
    hosted from this Python process through ctypes. libfidius runs each Python plugin in a
    runner process of its own, so these tests are also the Python-host case: no second
    interpreter is loaded into this process, and no GIL is shared with the plugin (calls
    release ours while the runner works: eight threads calling at once cannot deadlock).

    Interface Pycalc, in its schema's order: add(a, b) (0), greet(name) (1; through a
    vendored requirement), echo(raw bytes, reversed) (2), divide(a, b) -> Result (3; DIV_ZERO),
    count(n) -> Stream<u64> (4), total(Stream<u64>) -> u64 (5), crash() (6; ValueError("boom")),
    spin() (7; never returns), whoami() (8; "module", or the configured name). Without the
    schema, methods are the module's functions, found by name, and calls take JSON only."""
    ADD, GREET, ECHO, DIVIDE, COUNT, TOTAL, CRASH, SPIN, WHOAMI = range(9)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.wit = os.path.join(PYTHON_PLUGIN_DIR, "pycalc.wit")
        cls.fid = os.path.join(PYTHON_PLUGIN_DIR, "pycalc.fid")
        for needed in ("pycalc", "pycalc.wit", "pycalc.fid", "pycalc.hash"):
            if not os.path.exists(os.path.join(PYTHON_PLUGIN_DIR, needed)):
                raise RuntimeError(f"Python plugin fixture {needed} not found in {PYTHON_PLUGIN_DIR} "
                                   "(make -C examples-c build/python-plugins)")
        with open(os.path.join(PYTHON_PLUGIN_DIR, "pycalc.hash")) as f:
            cls.hash = int(f.read().strip(), 16)

    def setUp(self):
        self.host = fidius.Host([PYTHON_PLUGIN_DIR])
        self.addCleanup(self.host.close)

    def load(self, *, schema=True, **options):
        """pycalc by name from the search path; with its schema unless schema=False."""
        if schema:
            options["schema_file"] = self.wit
        plugin = self.host.load("pycalc", fidius.LoadOptions(**options))
        self.addCleanup(plugin.close)
        return plugin

    def test_load_by_name_and_json_calls(self):
        """Load by name without a schema: the module's functions by name, JSON in and out."""
        p = self.load(schema=False)
        self.assertEqual((p.info.name, p.info.runtime, p.info.interface_name), ("pycalc", Runtime.PYTHON, "pycalc"))
        self.assertEqual(p.info.interface_hash, self.hash, "__interface_hash__ from fidius python-stub")
        self.assertEqual(self.hash, 0x9967cef57cdd10cb)
        add = p.method_index("add")
        self.assertEqual(p.method_name(add), "add")
        self.assertEqual(p.call_json(add, "[2, 40]"), "42")
        self.assertEqual(json.loads(p.call_json(add, '{"a": 1, "b": 2}')), 3, "arguments by name")
        self.assertEqual(p.invoke("add", 2, 40), 42)
        self.assertEqual(p.invoke("greet", "Ada"), "Hello, Ada!", "the vendored requirement")
        self.assertEqual(p.invoke("whoami"), "module")
        self.assertEqual(p.call(p.method_index("greet"), fidius.Format.JSON, b'["Bo"]'), b'"Hello, Bo!"')
        # Without a schema there are no types to turn wire bytes into Python values.
        with self.assertRaises(FidiusError) as cm:
            p.call_wire(add, wire_i64_pair(1, 2))
        self.assertEqual(cm.exception.status, Status.UNSUPPORTED, cm.exception.message)
        with self.assertRaises(FidiusError) as cm:
            p.method_index("no_such_function")
        self.assertEqual(cm.exception.status, Status.METHOD_INDEX)
        d = p.describe()
        self.assertEqual((d["runtime"], d["types_from"], d["interface_hash"]), ("python", None, "0x9967cef57cdd10cb"))
        # The module's functions in definition order (it may define more than the interface).
        self.assertEqual([m["name"] for m in d["methods"]][:9],
                         ["add", "greet", "echo", "divide", "count", "total", "crash", "spin", "whoami"])
        # Discovery lists the package as a Python plugin (without starting an interpreter).
        found = {i.name: i for i in self.host.discover().plugins}
        self.assertEqual(found["pycalc"].runtime, Runtime.PYTHON)

    def test_async_invoke(self):
        p = self.load(schema=False)

        async def main():
            return await asyncio.gather(*(p.invoke_async("add", i, i) for i in range(4)))

        self.assertEqual(asyncio.run(main()), [0, 2, 4, 6])

    def test_schema_wire_calls_and_raw_echo(self):
        """With the schema: its method order, wire bytes converted by its types, raw bytes."""
        p = self.load()
        self.assertEqual([p.method_index(n) for n in ("add", "greet", "echo", "divide", "count", "total",
                                                     "crash", "spin", "whoami")], list(range(9)))
        self.assertEqual(struct.unpack("<q", p.call_wire(self.ADD, wire_i64_pair(40, 2)))[0], 42)
        self.assertEqual(struct.unpack("<q", p.call_wire(self.ADD, wire_i64_pair(-50, 8)))[0], -42)
        self.assertEqual(read_wire_string(p.call_wire(self.GREET, wire_string("Bo"))), "Hello, Bo!")
        self.assertEqual(p.call_wire(self.ECHO, b"\x01\x02\x03"), b"\x03\x02\x01", "raw: bytes as they are")
        self.assertEqual(p.call_wire(self.ECHO, b""), b"")
        self.assertEqual(p.call_wire(self.ECHO, bytes(range(256))), bytes(reversed(range(256))))
        self.assertEqual(p.invoke("echo", b"\x01\x02\x03"), [3, 2, 1], "list<u8> through JSON")
        self.assertEqual(struct.unpack("<q", p.call_wire(self.DIVIDE, wire_i64_pair(9, 2)))[0], 4)
        self.assertEqual(p.invoke("add", 2, 40), 42, "JSON still works")
        # The result is checked against the declared type (s64) on the wire.
        with self.assertRaises(FidiusError) as cm:
            p.call_wire(self.ADD, wire_i64_pair(2**63 - 1, 1))
        self.assertEqual(cm.exception.status, Status.SERIALIZATION, cm.exception.message)
        self.assertEqual(p.invoke("add", 1, 1), 2, "the plugin serves on")
        d = p.describe()
        self.assertEqual(d["types_from"], self.wit)
        self.assertEqual(d["methods"][self.DIVIDE]["result"], "result<s64, plugin-error>")
        self.assertEqual(d["methods"][self.COUNT]["stream_item"], "u64")
        # The schema as text, and from the host, are the same schema.
        with open(self.wit) as f:
            wit = f.read()
        inline = self.host.load("pycalc", fidius.LoadOptions(schema=wit))
        self.addCleanup(inline.close)
        self.assertEqual(inline.call_wire(self.ECHO, b"ab"), b"ba")
        with fidius.Host([PYTHON_PLUGIN_DIR], schema_files=[self.wit]) as host, host.load("pycalc") as hosted:
            self.assertEqual(struct.unpack("<q", hosted.call_wire(self.ADD, wire_i64_pair(1, 2)))[0], 3)

    def test_divide_by_zero_is_a_plugin_error(self):
        with_schema, without = self.load(), self.load(schema=False)
        self.assert_div_zero(lambda: with_schema.call_wire(self.DIVIDE, wire_i64_pair(7, 0)))
        self.assert_div_zero(lambda: with_schema.invoke("divide", 7, 0))
        self.assert_div_zero(lambda: without.invoke("divide", 7, 0))
        self.assert_div_zero(lambda: without.call_json(without.method_index("divide"), "[7, 0]"))
        with self.assertRaises(PluginError) as cm:
            without.invoke("divide", -3, 0)
        self.assertEqual(json.loads(cm.exception.details), {"dividend": -3})
        self.assertEqual(without.invoke("divide", 7, 2), 3)

    def test_crash_is_a_plugin_error_with_a_traceback(self):
        for p in (self.load(), self.load(schema=False)):
            with self.assertRaises(PluginError) as cm:
                p.invoke("crash")
            e = cm.exception
            self.assertEqual((e.status, e.code, e.plugin_message), (Status.PLUGIN_ERROR, "ValueError", "boom"))
            traceback = json.loads(e.details)["traceback"]
            self.assertIn("pycalc_plugin.py", traceback)
            self.assertIn("ValueError: boom", traceback)
            self.assertNotIn('File "<string>"', traceback, "the runner's own frames are left out")
            self.assertEqual(p.invoke("add", 1, 1), 2, "the plugin serves on")
        # Wrong arguments: with the schema, refused by its types (as for WASM);
        # without, the module's own TypeError, reported as any exception is.
        with self.assertRaises(FidiusError) as cm:
            self.load().invoke("add", 1)
        self.assertEqual(cm.exception.status, Status.SERIALIZATION)
        with self.assertRaises(PluginError) as cm:
            self.load(schema=False).invoke("add", 1)
        self.assertEqual(cm.exception.code, "TypeError")
        with self.assertRaises(PluginError) as cm:
            self.load().call_wire(self.CRASH, b"")
        self.assertEqual(cm.exception.code, "ValueError")

    def test_configured_instance(self):
        ada = self.load(config=b'{"name": "ada"}')
        self.assertEqual(ada.invoke("whoami"), "ada")
        self.assertEqual(read_wire_string(ada.call_wire(self.WHOAMI, b"")), "ada")
        self.assertEqual(ada.invoke("add", 2, 3), 5)
        self.assertEqual(self.load(config=bytearray(b'{"name": "bo"}'), schema=False).invoke("whoami"), "bo")
        self.assertEqual(self.load().invoke("whoami"), "module", "instances are independent")
        self.assertEqual(ada.invoke("whoami"), "ada")
        # A config the module rejects (KeyError in __fidius_configure__), and one that is not JSON.
        with self.assertRaises(FidiusError) as cm:
            self.load(config=b'{"nom": 1}')
        self.assertEqual(cm.exception.status, Status.CONFIG_REJECTED, cm.exception.message)
        self.assertIn("KeyError", cm.exception.message)
        with self.assertRaises(FidiusError) as cm:
            self.load(config=b"\x00\x01")
        self.assertEqual(cm.exception.status, Status.INVALID_ARGUMENT, cm.exception.message)

    def test_interface_hash_is_checked(self):
        self.assertEqual(self.load(interface_hash=self.hash).invoke("add", 1, 2), 3)
        with self.assertRaises(FidiusError) as cm:
            self.load(interface_hash=0x1234)
        self.assertEqual(cm.exception.status, Status.INTERFACE_HASH_MISMATCH, cm.exception.message)

    def test_timeout_then_a_fresh_runner(self):
        """spin() never returns: the timeout kills the runner (TIMEOUT), the next call starts a
        fresh one. 20 s is a bound against a hang, not a timing check."""
        p = self.load(timeout=0.5)
        for call in (lambda: p.invoke("spin"), lambda: p.call_wire(self.SPIN, b"")):
            outcome = []

            def run():
                started = time.monotonic()
                try:
                    outcome.append(call())
                except BaseException as e:
                    outcome.append(e)
                outcome.append(time.monotonic() - started)

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            worker.join(20)
            self.assertFalse(worker.is_alive(), "spin() still running 20 s past a 0.5 s timeout")
            error, took = outcome
            self.assertIsInstance(error, FidiusError, outcome)
            self.assertEqual(error.status, Status.TIMEOUT, error.message)
            self.assertGreaterEqual(took, 0.45)
            self.assertEqual(p.invoke("add", 20, 22), 42, "a fresh runner after the timeout")
            self.assertEqual(p.invoke("greet", "again"), "Hello, again!")

    def test_cancel_token(self):
        """A Cancel token stops a Python call wherever it is (its runner is stopped), and the
        next call gets a fresh runner; one triggered before the call stops it from starting."""
        p = self.load()
        with fidius.Cancel() as token:
            token.cancel()
            for call in (lambda: p.invoke("add", 1, 2, cancel=token),
                         lambda: p.call_wire(self.ADD, wire_i64_pair(1, 2), cancel=token)):
                with self.assertRaises(FidiusError) as cm:
                    call()
                self.assertEqual(cm.exception.status, Status.CANCELLED)
        for call in (lambda c: p.invoke("spin", cancel=c), lambda c: p.call_wire(self.SPIN, b"", cancel=c)):
            with fidius.Cancel() as token:
                outcome = []

                def run():
                    try:
                        outcome.append(call(token))
                    except BaseException as e:
                        outcome.append(e)

                worker = threading.Thread(target=run, daemon=True)
                worker.start()
                time.sleep(0.2)
                token.cancel()
                worker.join(10)
                self.assertFalse(worker.is_alive(), "spin() still running 10 s after the cancel")
                self.assertIsInstance(outcome[0], FidiusError, outcome)
                self.assertEqual(outcome[0].status, Status.CANCELLED, outcome[0].message)
            self.assertEqual(p.invoke("add", 20, 22), 42, "a fresh runner after the cancel")

        async def main():
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(p.invoke_async("spin"), 0.3)   # cancels the call's token
            return await p.invoke_async("greet", "async")

        self.assertEqual(asyncio.run(main()), "Hello, async!")

    def test_stream_cancel(self):
        """Stream.cancel() from another thread stops a Python stream while it is being pulled."""
        p = self.load()
        s = p.invoke_stream("count", 10**12)
        got = []

        def pull():
            try:
                for item in s:
                    got.append(item)
            except BaseException as e:
                got.append(e)

        puller = threading.Thread(target=pull, daemon=True)
        puller.start()
        time.sleep(0.2)
        s.cancel()
        puller.join(10)
        self.assertFalse(puller.is_alive(), "next() still running 10 s after cancel()")
        error = got.pop()
        self.assertIsInstance(error, FidiusError, error)
        self.assertEqual(error.status, Status.CANCELLED, error.message)
        self.assertEqual(got, list(range(len(got))), "the items before the cancel, in order")
        self.assertEqual(list(s), [], "ended")
        s.cancel()   # idempotent, also once ended
        s.close()
        s.cancel()
        self.assertEqual(p.invoke("add", 1, 2), 3, "a fresh runner after the cancel")
        # Cancelled before it is pulled.
        with p.invoke_stream("count", 10) as s:
            self.assertEqual(next(s), 0)
            s.cancel()
            with self.assertRaises(FidiusError) as cm:
                next(s)
            self.assertEqual(cm.exception.status, Status.CANCELLED)
            self.assertEqual(list(s), [])

    def test_server_stream(self):
        for p in (self.load(), self.load(schema=False)):
            self.assertEqual(list(p.invoke_stream("count", 4)), [0, 1, 2, 3])
            self.assertEqual(list(p.invoke_stream("count", 0)), [])
            with p.stream_json("count", "[3]") as s:
                self.assertIsInstance(s, fidius.Stream)
                self.assertEqual(list(s), ["0", "1", "2"])
            self.assertEqual(list(p.stream(p.method_index("count"), fidius.Format.JSON, b"[2]")), [b"0", b"1"])
            # Closed early, with items left: the runner drops the generator and serves on.
            with p.stream_json("count", "[1000000]") as s:
                self.assertEqual([next(s), next(s)], ["0", "1"])
            self.assertTrue(s.closed)
            self.assertEqual(p.invoke("add", 1, 2), 3)
        # With the schema, items can be wire bytes too.
        p = self.load()
        self.assertEqual([read_u64(b) for b in p.stream_wire(self.COUNT, wire_u64(3))], [0, 1, 2])
        # A method that returns no stream: the schema says so.
        with self.assertRaises(FidiusError) as cm:
            p.stream_json("add", "[1, 2]")
        self.assertEqual(cm.exception.status, Status.UNSUPPORTED)

    def test_client_stream(self):
        """total(Stream<u64>): the items are JSON texts for Python plugins, not wire bytes."""
        callbacks = fidius._live_callbacks()
        for p in (self.load(), self.load(schema=False)):
            self.assertEqual(p.invoke_streaming("total", [b"3", b"2", b"1"]), 6)
            self.assertEqual(p.invoke_streaming("total", iter([])), 0)
            items = (str(i).encode() for i in range(1000))
            self.assertEqual(p.call_streaming("total", items, fidius.Format.JSON, b"[]"), str(sum(range(1000))).encode())
            # Wire items are not JSON: the input fails (STREAM_SOURCE) and the plugin serves on.
            with self.assertRaises(FidiusError) as cm:
                p.call_streaming("total", [wire_u64(3)], fidius.Format.JSON, b"[]")
            self.assertEqual(cm.exception.status, Status.STREAM_SOURCE, cm.exception.message)
            self.assertEqual(p.invoke("add", 1, 2), 3)
            # An iterable that raises: chained as the FidiusError's cause.
            def failing():
                yield b"1"
                raise SourceFailed("no more")
            with self.assertRaises(FidiusError) as cm:
                p.invoke_streaming("total", failing())
            self.assertEqual(cm.exception.status, Status.STREAM_SOURCE)
            self.assertIsInstance(cm.exception.__cause__, SourceFailed)
            self.assertEqual(p.invoke_streaming("total", [b"40", b"2"]), 42)
        # The result in wire bytes, by the schema's type (u64).
        self.assertEqual(read_u64(self.load().call_streaming(self.TOTAL, [b"5", b"6"])), 11)
        gc.collect()
        self.assertEqual(fidius._live_callbacks(), callbacks, "a stream source leaked")

    def test_eight_threads(self):
        """Eight threads calling add at once (wire and JSON): every result checked, none stuck.
        The Python-host case: this interpreter hosts a Python plugin through ctypes, and the
        plugin runs in its runner process, not in here (no second interpreter in-process, no
        GIL shared with it). Calls to one Python plugin are serialized by libfidius (one
        runner); each waits with our GIL released, so the other threads run: no deadlock."""
        p = self.load()
        errors, done = [], []

        def work(t):
            try:
                for i in range(100):
                    if i % 2:
                        got = struct.unpack("<q", p.call_wire(self.ADD, wire_i64_pair(t, i)))[0]
                    else:
                        got = p.invoke("add", t, i)
                    if got != t + i:
                        errors.append((t, i, got))
                done.append(t)
            except BaseException as e:
                errors.append((t, repr(e)))

        threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        self.assertFalse(any(th.is_alive() for th in threads), "a thread is stuck (deadlock?)")
        self.assertEqual(errors, [])
        self.assertEqual(sorted(done), list(range(8)))

    def test_load_fid(self):
        with fidius.Host() as host:
            with host.load_fid(self.fid) as p:
                self.assertEqual((p.info.name, p.info.runtime), ("pycalc", Runtime.PYTHON))
                self.assertEqual(p.invoke("greet", "Fid"), "Hello, Fid!", "the vendored requirement, from memory")
                self.assertEqual(p.invoke("add", 2, 40), 42)
            options = fidius.LoadOptions(schema_file=self.wit, config=b'{"name": "ada"}')
            with host.load_fid(self.fid, options) as p:
                self.assertEqual(p.call_wire(self.ECHO, b"xyz"), b"zyx")
                self.assertEqual(p.invoke("whoami"), "ada")

    def test_python_interpreter(self):
        """Host(python_interpreter=...): a missing interpreter fails only Python loads
        (LIBRARY_LOAD, naming it); native and WASM plugins of the same host still work."""
        missing = "/nonexistent/python3"
        with fidius.Host([PLUGIN_DIR, PYTHON_PLUGIN_DIR], python_interpreter=missing) as host:
            with self.assertRaises(FidiusError) as cm:
                host.load("pycalc")
            self.assertEqual(cm.exception.status, Status.LIBRARY_LOAD)
            self.assertIn(missing, cm.exception.message)
            with self.assertRaises(FidiusError) as cm:
                host.load_fid(self.fid)
            self.assertEqual(cm.exception.status, Status.LIBRARY_LOAD)
            with host.load("BasicCalc") as basic:
                self.assertEqual(struct.unpack("<q", basic.call_wire(CALC_ADD, wire_i64_pair(1, 2)))[0], 3)
            with host.load("calc") as calc:
                self.assertEqual(calc.invoke("add", 1, 2), 3)
            # Discovery needs no interpreter.
            found = {i.name: i.runtime for i in host.discover().plugins}
            self.assertEqual(found["pycalc"], Runtime.PYTHON)
        # An explicit interpreter, as a path or a path-like: the python3 the default finds,
        # named by its full path (see test_an_interpreter_with_this_binding_installed for why
        # not this process' own under make test-python).
        python3 = shutil.which("python3")
        self.assertIsNotNone(python3, "no python3 on the PATH")
        for interpreter in (os.path.realpath(python3), pathlib.Path(python3)):
            with fidius.Host([PYTHON_PLUGIN_DIR], python_interpreter=interpreter) as host, \
                    host.load("pycalc") as p:
                self.assertEqual(p.invoke("greet", "venv"), "Hello, venv!")
        # An empty name is refused when the host is built.
        with self.assertRaises(FidiusError) as cm:
            fidius.Host([PYTHON_PLUGIN_DIR], python_interpreter="")
        self.assertEqual(cm.exception.status, Status.INVALID_ARGUMENT)
        self.assertIn("empty", cm.exception.message)

    @unittest.skipUnless(os.environ.get("FIDIUS_TEST_INSTALLED"), "needs an interpreter with this binding installed")
    def test_an_interpreter_with_this_binding_installed(self):
        """This binding's package is also named ``fidius``. The runner never takes a
        ``fidius`` from the interpreter's site-packages for the plugin SDK (only one the
        package itself brings), so an interpreter with this binding installed (the test
        venv's, or ``python3`` in an activated venv) still runs the plugin."""
        self.assertIn(os.path.realpath(sys.prefix), os.path.realpath(fidius.__file__))
        with fidius.Host([PYTHON_PLUGIN_DIR], python_interpreter=sys.executable) as host, \
                host.load("pycalc") as p:
            self.assertEqual(p.invoke("greet", "venv"), "Hello, venv!")

    def test_memory_limit_bounds_the_runner(self):
        """LoadOptions.memory_limit is the runner's address space: a MemoryError past it (a
        plugin error), and the runner serves on. hog(mib) is a module function outside the
        interface, callable by name."""
        p = self.load(schema=False, memory_limit=256 << 20)
        self.assertEqual(p.invoke("hog", 16), 16 << 20)
        with self.assertRaises(PluginError) as cm:
            p.invoke("hog", 1024)
        self.assertEqual(cm.exception.code, "MemoryError")
        self.assertEqual(p.invoke("add", 1, 2), 3, "the runner serves on")
        self.assertEqual(self.load(schema=False).invoke("hog", 512), 512 << 20, "no limit by default")


if __name__ == "__main__":
    unittest.main()
