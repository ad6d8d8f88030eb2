"""Tests of the Python bindings against the fixture plugins.

    FIDIUS_LIBRARY=target/debug/libfidius.so FIDIUS_PLUGIN_DIR=examples-c/build/plugins \
        python3 -m unittest -v test_fidius
"""

import gc
import http.server
import os
import shutil
import struct
import tarfile
import tempfile
import threading
import unittest

import fidius
from fidius import FidiusError, PluginError, Runtime, Status, Verdict

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN_DIR = os.environ.get("FIDIUS_PLUGIN_DIR", os.path.join(HERE, "..", "..", "examples-c", "build", "plugins"))

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
                     "calc", "caps", "fetch"]:
            self.assertIn(name, found, f"skipped: {d.skipped}")
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
            with self.assertRaises(FidiusError) as cm:
                calc.method_index("no-such-method")
            self.assertEqual(cm.exception.status, Status.METHOD_INDEX)


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


def pack_fid(package_dir, fid_path, top="calc-0.1.0"):
    """A .fid archive (tar + bzip2) of a package directory, under a top-level directory."""
    with tarfile.open(fid_path, "w:bz2") as tar:
        tar.add(package_dir, arcname=top)


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
        # The callback runs on a libfidius worker thread while the calling thread waits.
        threads = []

        def policy(req):
            threads.append(threading.get_ident())
            return Verdict.ALLOW

        with fidius.EgressPolicy(policy, allow_private_ranges=True) as egress, new_host(egress=egress) as host, \
                host.load("fetch") as fetch:
            self.assertEqual(fetch.invoke("fetch", f"http://127.0.0.1:{self.port}/t"), "200 hello")
        self.assertEqual(len(threads), 1)
        self.assertNotEqual(threads[0], threading.get_ident())

    def test_finalizers_release(self):
        before = fidius._live_callbacks()

        def scope():
            egress = fidius.EgressPolicy(lambda req: Verdict.DENY)
            host = new_host(egress=egress)
            host.load("fetch")

        scope()
        gc.collect()
        self.assertEqual(fidius._live_callbacks(), before)


if __name__ == "__main__":
    unittest.main()
