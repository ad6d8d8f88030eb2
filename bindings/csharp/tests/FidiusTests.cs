// Tests of the C# bindings against the fixture plugins (examples-c/build/plugins).
//
//   mono FidiusTests.exe PLUGIN_DIR        (libfidius.so on LD_LIBRARY_PATH)
//
// Prints one line per check and closes with "N passed, N failed".

using System;
using System.Collections.Generic;
using System.IO;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using Fidius;

static class FidiusTests
{
    static int passed, failed;
    static string pluginDir;

    const uint CalcAdd = 0, CalcGreet = 1, CalcDivide = 3;

    static void Check(bool ok, string what)
    {
        if (ok) { passed++; Console.WriteLine("  ok   " + what); }
        else { failed++; Console.WriteLine("  FAIL " + what); }
    }

    static void Run(string name, Action test)
    {
        Console.WriteLine(name);
        try { test(); }
        catch (Exception e) { failed++; Console.WriteLine("  FAIL " + name + " threw " + e); }
    }

    // Fidius wire format: bincode 1.3, little-endian fixed-width integers, u64 lengths.
    static byte[] WireI64Pair(long a, long b)
    {
        byte[] out_ = new byte[16];
        BitConverter.GetBytes(a).CopyTo(out_, 0);
        BitConverter.GetBytes(b).CopyTo(out_, 8);
        return out_;
    }

    static byte[] WireString(string s)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(s);
        byte[] out_ = new byte[8 + utf8.Length];
        BitConverter.GetBytes((ulong)utf8.Length).CopyTo(out_, 0);
        utf8.CopyTo(out_, 8);
        return out_;
    }

    static string ReadWireString(byte[] b)
    {
        ulong n = BitConverter.ToUInt64(b, 0);
        return Encoding.UTF8.GetString(b, 8, (int)n);
    }

    static Host NewHost()
    {
        return NewHost(new HostConfig());
    }

    static Host NewHost(HostConfig config)
    {
        config.SearchPaths.Add(pluginDir);
        return new Host(config);
    }

    static FidiusException Throws(Action call)
    {
        try { call(); }
        catch (FidiusException e) { return e; }
        return null;
    }

    static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "fidius-cs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    static void CheckDivZero(Action call, string label)
    {
        try
        {
            call();
            Check(false, label + ": divide(7, 0) throws PluginException");
        }
        catch (PluginException e)
        {
            Check(e.Status == Status.PluginError, label + ": status PluginError");
            Check(e.Code == "DIV_ZERO", label + ": code DIV_ZERO (" + e.Code + ")");
            Check(e.PluginMessage == "division by zero", label + ": message (" + e.PluginMessage + ")");
            Check(e.Details != null && e.Details.Replace(" ", "") == "{\"dividend\":7}", label + ": details (" + e.Details + ")");
        }
    }

    static void TestVersion()
    {
        Check(Library.Version == "0.1.0" || Library.Version.Split('.').Length == 3, "version " + Library.Version);
        Check(Library.StatusName(Status.PluginError) == "plugin error", "status name: " + Library.StatusName(Status.PluginError));
    }

    static void TestStatusNames()
    {
        Check((int)Status.FileRefused == 61 && Library.StatusName(Status.FileRefused) == "file refused",
              "status 61: " + Library.StatusName((Status)61));
        Check((int)Status.Archive == 60, "Status.Archive = 60");
        // Every status the enum declares is one libfidius knows (bindings/check_drift.py checks
        // the other direction against the header).
        List<string> unknown = new List<string>();
        foreach (Status s in Enum.GetValues(typeof(Status)))
            if (Library.StatusName(s) == "unknown status") unknown.Add(s.ToString());
        Check(unknown.Count == 0, "libfidius knows every Status value" + (unknown.Count == 0 ? "" : ": not " + string.Join(", ", unknown)));
    }

    [DllImport("libc", SetLastError = true)]
    static extern int mkfifo(string path, uint mode);

    static void TestFileRefused()
    {
        string dir = TempDir();
        try
        {
            string fifo = Path.Combine(dir, "libfifo.so");
            if (mkfifo(fifo, Convert.ToUInt32("600", 8)) != 0)
            {
                Check(false, "mkfifo failed: errno " + Marshal.GetLastWin32Error());
                return;
            }
            HostConfig config = new HostConfig();
            config.SearchPaths.Add(dir);
            using (Host host = new Host(config))
            {
                // Refused before it is opened (reading a FIFO would block).
                FidiusException e = Throws(() => host.LoadPath(fifo));
                Check(e != null && e.Status == Status.FileRefused && e.Message.Contains("FIFO"),
                      "a FIFO is refused: " + (e == null ? "no error" : e.Status + ": " + e.Message));
                IList<SkippedEntry> skipped = host.Discover().Skipped;
                Check(skipped.Count == 1 && skipped[0].Path == fifo && skipped[0].Status == Status.FileRefused,
                      "discovery skips the FIFO with FileRefused");
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    static void TestDiscover()
    {
        using (Host host = NewHost())
        {
            Discovery d = host.Discover();
            Dictionary<string, PluginInfo> found = new Dictionary<string, PluginInfo>();
            foreach (PluginInfo p in d.Plugins) found[p.Name] = p;
            foreach (string name in new[] { "BasicCalc", "OtherCalc", "ArenaImpl", "ConfiguredGreeter", "LegacyCalc", "LegacyArena", "calc", "caps", "fetch" })
                Check(found.ContainsKey(name), "discovered " + name);
            Check(found["BasicCalc"].AbiVersion == 500 && found["BasicCalc"].Runtime == PluginRuntime.Native, "BasicCalc: " + found["BasicCalc"]);
            Check(found["LegacyCalc"].AbiVersion == 400, "LegacyCalc: " + found["LegacyCalc"]);
            Check(found["calc"].Runtime == PluginRuntime.Wasm, "calc: " + found["calc"]);
        }
    }

    static void TestNative()
    {
        using (Host host = NewHost())
        using (Plugin basic = host.Load("BasicCalc"))
        using (Plugin legacy = host.Load("LegacyCalc"))
        {
            byte[] sum = basic.CallWire(CalcAdd, WireI64Pair(2, 3));
            Check(sum.Length == 8 && BitConverter.ToInt64(sum, 0) == 5, "BasicCalc add(2, 3) = 5");
            string greeting = ReadWireString(basic.CallWire(CalcGreet, WireString("C#")));
            Check(greeting == "Hello, C#!", "BasicCalc greet = " + greeting);
            CheckDivZero(() => basic.CallWire(CalcDivide, WireI64Pair(7, 0)), "BasicCalc");
            try
            {
                basic.CallJson(CalcAdd, "[2, 3]");
                Check(false, "JSON on a native plugin throws");
            }
            catch (FidiusException e)
            {
                Check(e.Status == Status.Unsupported && !(e is PluginException), "JSON on a native plugin: " + e.Status + ": " + e.Message);
            }
            IList<KeyValuePair<string, string>> meta = basic.MethodMetadata(CalcAdd);
            Check(meta.Count == 2 && meta[0].Key == "kind" && meta[0].Value == "math", "add metadata");

            Check(legacy.Info.AbiVersion == 400, "LegacyCalc ABI 400");
            byte[] lsum = legacy.CallWire(CalcAdd, WireI64Pair(40, 2));
            Check(BitConverter.ToInt64(lsum, 0) == 42, "LegacyCalc add(40, 2) = 42");
        }
    }

    static void TestWasm()
    {
        LoadOptions options = new LoadOptions { Timeout = TimeSpan.FromSeconds(5), MemoryLimit = 64 << 20 };
        using (Host host = NewHost())
        using (Plugin calc = host.Load("calc", options))
        {
            Check(calc.Info.Runtime == PluginRuntime.Wasm, "calc is WASM");
            uint add = calc.MethodIndex("add");
            Check(calc.MethodName(add) == "add", "method name of " + add);
            string json = calc.CallJson(add, "[2, 40]");
            Check(json == "42", "calc add [2, 40] = " + json);
            byte[] sum = calc.CallWire(add, WireI64Pair(20, 22));
            Check(BitConverter.ToInt64(sum, 0) == 42, "calc add wire = 42");
            uint divide = calc.MethodIndex("divide");
            CheckDivZero(() => calc.CallJson(divide, "[7, 0]"), "calc");
            try
            {
                calc.MethodIndex("no-such-method");
                Check(false, "unknown method name throws");
            }
            catch (FidiusException e)
            {
                Check(e.Status == Status.MethodIndex, "unknown method name: " + e.Message);
            }
        }
    }

    static void TestTrustPrecompiled()
    {
        // Behaviour (an unsigned .cwasm is used only with this on) is tested on the Rust side.
        using (Host host = NewHost(new HostConfig { TrustPrecompiled = true }))
        using (Plugin calc = host.Load("calc"))
            Check(calc.CallJson(calc.MethodIndex("add"), "[2, 40]") == "42", "TrustPrecompiled: calc loads and adds");
    }

    static void TestCapabilities()
    {
        Environment.SetEnvironmentVariable("FIDIUS_FIXTURE_VAR", "csharp-value");
        try
        {
            using (Host host = NewHost())
            {
                FidiusException e = Throws(() => host.Load("caps").Dispose());
                Check(e != null && e.Status == Status.Capability && e.Message.Contains("env:FIDIUS_FIXTURE_VAR"),
                      "default allow-list refuses caps: " + (e == null ? "loaded" : e.Status + ": " + e.Message));
                bool listed = false;
                foreach (PluginInfo p in host.Discover().Plugins) listed |= p.Name == "caps";
                Check(listed, "discovery still lists caps");
            }

            HostConfig config = new HostConfig();
            config.AllowCapabilities.AddRange(new[] { "env:FIDIUS_*", "stdout", "clocks" });
            using (Host host = NewHost(config))
            using (Plugin caps = host.Load("caps"))
            {
                string got = caps.CallJson(caps.MethodIndex("read_env"), "[\"FIDIUS_FIXTURE_VAR\"]");
                Check(got == "\"csharp-value\"", "allow-list env:FIDIUS_*, stdout, clocks: read_env = " + got);
            }

            // One pattern replaces the default: stdout alone does not allow the rest.
            HostConfig onlyStdout = new HostConfig();
            onlyStdout.AllowCapabilities.Add("stdout");
            using (Host host = NewHost(onlyStdout))
            {
                FidiusException e = Throws(() => host.Load("caps").Dispose());
                Check(e != null && e.Status == Status.Capability, "only stdout allowed: caps refused");
            }

            HostConfig empty = new HostConfig();
            empty.AllowCapabilities.Add("");
            FidiusException ee = Throws(() => NewHost(empty).Dispose());
            Check(ee != null && ee.Status == Status.InvalidArgument, "empty pattern: " + (ee == null ? "accepted" : ee.Status.ToString()));
        }
        finally
        {
            Environment.SetEnvironmentVariable("FIDIUS_FIXTURE_VAR", null);
        }
    }

    static void TestGrants()
    {
        Environment.SetEnvironmentVariable("FIDIUS_FIXTURE_VAR", "secret");
        try
        {
            using (Host host = NewHost())
            {
                foreach (List<string> grants in new[] { new List<string> { "stdout" }, new List<string>() })
                {
                    using (Plugin caps = host.Load("caps", new LoadOptions { Grants = grants }))
                    {
                        string got = caps.CallJson(caps.MethodIndex("read_env"), "[\"FIDIUS_FIXTURE_VAR\"]");
                        Check(got == "null", "grants [" + string.Join(", ", grants) + "]: read_env = " + got);
                    }
                }
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable("FIDIUS_FIXTURE_VAR", null);
        }
    }

    // A .fid archive (tar + bzip2) of the calc fixture package, made with tar(1).
    static string PackFid(string tmp)
    {
        string pkg = Path.Combine(tmp, "calc-0.1.0");
        Directory.CreateDirectory(pkg);
        foreach (string f in new[] { "package.toml", "calc.wasm" })
            File.Copy(Path.Combine(pluginDir, "calc", f), Path.Combine(pkg, f));
        string fid = Path.Combine(tmp, "calc-0.1.0.fid");
        ProcessStartInfo psi = new ProcessStartInfo("tar", "-cjf \"" + fid + "\" -C \"" + tmp + "\" calc-0.1.0") { UseShellExecute = false };
        using (Process tar = Process.Start(psi))
        {
            tar.WaitForExit();
            if (tar.ExitCode != 0) throw new Exception("tar -cjf failed: " + tar.ExitCode);
        }
        return fid;
    }

    static void TestFid()
    {
        string tmp = TempDir();
        try
        {
            string fid = PackFid(tmp);
            using (Host host = NewHost())
            {
                using (Plugin calc = host.LoadFid(fid, new LoadOptions { Timeout = TimeSpan.FromSeconds(5) }))
                    Check(calc.Info.Name == "calc" && calc.CallJson(calc.MethodIndex("add"), "[2, 40]") == "42", "LoadFid: calc adds");

                string dest = Path.Combine(tmp, "dest");
                string dir = host.UnpackFid(fid, dest);
                Check(dir == Path.Combine(dest, "calc-0.1.0") && File.Exists(Path.Combine(dir, "package.toml")), "UnpackFid = " + dir);
                HostConfig config = new HostConfig();
                config.SearchPaths.Add(dest);
                using (Host unpacked = new Host(config))
                using (Plugin calc = unpacked.Load("calc"))
                    Check(calc.CallJson(calc.MethodIndex("add"), "[40, 2]") == "42", "the unpacked package loads");

                string bad = Path.Combine(tmp, "bad.fid");
                File.WriteAllText(bad, "not an archive");
                FidiusException e = Throws(() => host.LoadFid(bad).Dispose());
                Check(e != null && e.Status == Status.Archive, "LoadFid(garbage): " + (e == null ? "loaded" : e.Status.ToString()));
                e = Throws(() => host.UnpackFid(bad, Path.Combine(tmp, "dest2")));
                Check(e != null && e.Status == Status.Archive, "UnpackFid(garbage): " + (e == null ? "unpacked" : e.Status.ToString()));
            }
        }
        finally
        {
            Directory.Delete(tmp, true);
        }
    }

    static void TestNotFound()
    {
        using (Host host = NewHost())
        {
            try
            {
                host.Load("NoSuchPlugin");
                Check(false, "NoSuchPlugin throws");
            }
            catch (FidiusException e)
            {
                Check(e.Status == Status.PluginNotFound, "NoSuchPlugin: " + e.Message);
            }
        }
    }

    // A one-connection-at-a-time HTTP server on 127.0.0.1 that records request heads.
    sealed class TinyServer : IDisposable
    {
        readonly TcpListener listener = new TcpListener(IPAddress.Loopback, 0);
        readonly Thread thread;
        public readonly List<string> Heads = new List<string>();
        public int Port { get { return ((IPEndPoint)listener.LocalEndpoint).Port; } }

        public TinyServer()
        {
            listener.Start();
            thread = new Thread(Serve) { IsBackground = true };
            thread.Start();
        }

        void Serve()
        {
            while (true)
            {
                TcpClient client;
                try { client = listener.AcceptTcpClient(); }
                catch { return; } // stopped
                using (client)
                using (NetworkStream s = client.GetStream())
                {
                    StringBuilder head = new StringBuilder();
                    byte[] buf = new byte[4096];
                    while (!head.ToString().Contains("\r\n\r\n"))
                    {
                        int n = s.Read(buf, 0, buf.Length);
                        if (n <= 0) break;
                        head.Append(Encoding.ASCII.GetString(buf, 0, n));
                    }
                    lock (Heads) Heads.Add(head.ToString());
                    byte[] reply = Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
                    s.Write(reply, 0, reply.Length);
                }
            }
        }

        public int Count { get { lock (Heads) return Heads.Count; } }

        public void Dispose() { listener.Stop(); thread.Join(); }
    }

    static void TestEgress()
    {
        int before = Native_LiveCallbacks();
        using (TinyServer server = new TinyServer())
        {
            string allowed = "127.0.0.1:" + server.Port;
            List<string> asked = new List<string>();
            List<string> logs = new List<string>();
            List<string> guestHeaders = new List<string>();
            List<string> destinations = new List<string>();
            EgressPolicy policy = new EgressPolicy(req =>
            {
                lock (asked) asked.Add(req.Method + " " + req.Scheme + "://" + req.Authority + req.PathAndQuery + " by " + req.Plugin);
                lock (destinations) destinations.Add(req.Host + " " + req.Port + " [" + string.Join(",", req.Addresses) + "]");
                if (req.Authority != allowed)
                {
                    req.SetDenyReason("only the test server is allowed");
                    return EgressVerdict.Deny;
                }
                req.SetHeader("authorization", "Bearer csharp-token");
                foreach (KeyValuePair<string, byte[]> h in req.Headers)
                {
                    if (h.Key != "x-guest") continue;
                    lock (guestHeaders) guestHeaders.Add(Encoding.UTF8.GetString(h.Value));
                    req.RemoveHeader("x-guest");
                }
                return EgressVerdict.Allow;
            });
            Check(!policy.AllowPrivateRanges, "AllowPrivateRanges is off by default");
            policy.AllowPrivateRanges = true; // the test server is on 127.0.0.1
            Check(policy.AllowPrivateRanges, "AllowPrivateRanges set");
            HostConfig config = new HostConfig { Egress = policy, Log = (level, msg) => { lock (logs) logs.Add(msg); } };
            config.SearchPaths.Add(pluginDir);
            Host host = new Host(config);
            policy.Dispose(); // the host holds its own reference
            policy = null;
            Plugin fetch = host.Load("fetch");
            uint idx = fetch.MethodIndex("fetch");

            string got = fetch.CallJson(idx, "[\"http://" + allowed + "/data\"]");
            Check(got == "\"200 hello\"", "allowed fetch = " + got);
            Check(server.Count == 1, "the allowed request arrived");
            Check(server.Count == 1 && server.Heads[0].StartsWith("GET /data ") &&
                  server.Heads[0].Contains("authorization: Bearer csharp-token\r\n"), "with the injected header");
            lock (destinations)
                Check(destinations.Count == 1 && destinations[0] == "127.0.0.1 " + server.Port + " [127.0.0.1]",
                      "policy saw host, port, addresses: " + string.Join("; ", destinations));

            // A header the guest sets is visible to the policy, which strips it.
            uint withHeaders = fetch.MethodIndex("fetch_with_headers");
            got = fetch.CallJson(withHeaders, "[\"http://" + allowed + "/h\", [[\"x-guest\", \"from-plugin\"]]]");
            Check(got == "\"200 hello\"", "fetch_with_headers = " + got);
            lock (guestHeaders) Check(guestHeaders.Count == 1 && guestHeaders[0] == "from-plugin", "policy saw the guest's header");
            Check(server.Count == 2 && !server.Heads[1].ToLowerInvariant().Contains("x-guest") &&
                  server.Heads[1].Contains("authorization: Bearer csharp-token\r\n"), "the policy stripped it");

            try
            {
                fetch.CallJson(idx, "[\"http://localhost:" + server.Port + "/other\"]");
                Check(false, "denied fetch throws");
            }
            catch (PluginException e)
            {
                Check(true, "denied fetch: " + e.Code + ": " + e.Message);
            }
            Check(server.Count == 2, "the denied request never arrived");
            lock (asked) Check(asked.Count == 3, "policy asked three times");
            lock (destinations)
                Check(destinations.Count == 3 && destinations[2].StartsWith("localhost " + server.Port + " [") && destinations[2].Contains("127.0.0.1"),
                      "a name: the policy sees it and its addresses: " + (destinations.Count == 3 ? destinations[2] : "?"));
            lock (logs) Check(logs.Exists(l => l.Contains("only the test server is allowed")), "log line with the deny reason");

            // Drop the last managed reference to the delegate: libfidius' references
            // must keep it alive (a collected delegate would crash the next request).
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Check(fetch.CallJson(idx, "[\"http://" + allowed + "/again\"]") == "\"200 hello\"", "policy alive after GC");

            host.Dispose();
            Check(Native_LiveCallbacks() > before, "callbacks alive while the plugin uses the policy");
            fetch.Dispose();
            Check(Native_LiveCallbacks() == before, "callbacks released after disposing everything (" + (Native_LiveCallbacks() - before) + " live)");
        }
    }

    static void TestThrowingPolicyDenies()
    {
        using (TinyServer server = new TinyServer())
        using (EgressPolicy policy = new EgressPolicy(req => { throw new InvalidOperationException("policy bug"); }, true))
        using (Host host = NewHost())
        using (Plugin fetch = host.Load("fetch", new LoadOptions { Egress = policy }))
        {
            try
            {
                fetch.CallJson(0, "[\"http://127.0.0.1:" + server.Port + "/\"]");
                Check(false, "request with a throwing policy fails");
            }
            catch (PluginException e)
            {
                Check(e.Message.Contains("policy bug"), "a throwing policy denies: " + e.Message);
            }
            Check(server.Count == 0, "nothing arrived");
        }
    }

    static void TestSsrfFloor()
    {
        int asked = 0;
        using (TinyServer server = new TinyServer())
        using (EgressPolicy policy = new EgressPolicy(req => { Interlocked.Increment(ref asked); return EgressVerdict.Allow; }))
        using (Host host = NewHost(new HostConfig { Egress = policy }))
        using (Plugin fetch = host.Load("fetch"))
        {
            // Private ranges not allowed: the floor denies 127.0.0.1 before the policy is asked.
            try
            {
                fetch.CallJson(0, "[\"http://127.0.0.1:" + server.Port + "/floor\"]");
                Check(false, "a request to 127.0.0.1 without AllowPrivateRanges fails");
            }
            catch (PluginException e)
            {
                Check(e.Status == Status.PluginError && e.Message.Contains("SSRF floor"), "the SSRF floor denies: " + e.Message);
            }
            Check(Volatile.Read(ref asked) == 0, "the policy was never asked");
            Check(server.Count == 0, "nothing arrived");
            // Lifting the floor applies to requests decided afterwards.
            policy.AllowPrivateRanges = true;
            Check(fetch.CallJson(0, "[\"http://127.0.0.1:" + server.Port + "/lifted\"]") == "\"200 hello\"", "allowed after AllowPrivateRanges = true");
            Check(Volatile.Read(ref asked) == 1 && server.Count == 1, "asked once, arrived once");
        }
    }

    static void TestThreads()
    {
        using (Host host = NewHost())
        using (Plugin basic = host.Load("BasicCalc"))
        {
            int errors = 0;
            Thread[] threads = new Thread[8];
            for (int t = 0; t < threads.Length; t++)
            {
                int g = t;
                threads[t] = new Thread(() =>
                {
                    for (int i = 0; i < 100; i++)
                    {
                        byte[] r = basic.CallWire(CalcAdd, WireI64Pair(g, i));
                        if (BitConverter.ToInt64(r, 0) != g + i) Interlocked.Increment(ref errors);
                    }
                });
                threads[t].Start();
            }
            foreach (Thread t in threads) t.Join();
            Check(errors == 0, "8 threads x 100 calls");
        }
    }

    static void TestDispose()
    {
        Host host = NewHost();
        Plugin p = host.Load("BasicCalc");
        host.Dispose();
        Check(BitConverter.ToInt64(p.CallWire(CalcAdd, WireI64Pair(1, 1)), 0) == 2, "plugin outlives its host");
        p.Dispose();
        p.Dispose();
        try
        {
            p.CallWire(CalcAdd, WireI64Pair(1, 1));
            Check(false, "call after Dispose throws");
        }
        catch (ObjectDisposedException)
        {
            Check(true, "call after Dispose: ObjectDisposedException");
        }
        Check(p.Info.Name == "BasicCalc", "info after Dispose");
    }

    static int Native_LiveCallbacks() { return Fidius.Native.LiveCallbacks; }

    [DllImport("libc")]
    static extern void _exit(int status);

    static int Main(string[] args)
    {
        pluginDir = args.Length > 0 ? args[0] : Environment.GetEnvironmentVariable("FIDIUS_PLUGIN_DIR");
        if (pluginDir == null || !Directory.Exists(pluginDir))
        {
            Console.WriteLine("usage: FidiusTests.exe PLUGIN_DIR (make -C examples-c build/plugins)");
            return 2;
        }
        Console.WriteLine("libfidius " + Library.Version + " from C#");
        Run("version", TestVersion);
        Run("status names", TestStatusNames);
        Run("file refused", TestFileRefused);
        Run("discover", TestDiscover);
        Run("native plugins", TestNative);
        Run("WASM plugin", TestWasm);
        Run("trust precompiled", TestTrustPrecompiled);
        Run("capability allow-list", TestCapabilities);
        Run("grants", TestGrants);
        Run(".fid archives", TestFid);
        Run("not found", TestNotFound);
        Run("egress policy", TestEgress);
        Run("throwing egress policy", TestThrowingPolicyDenies);
        Run("SSRF floor", TestSsrfFloor);
        Run("threads", TestThreads);
        Run("dispose", TestDispose);
        Console.WriteLine("csharp: {0} passed, {1} failed", passed, failed);
        int code = failed == 0 ? 0 : 1;
        // Mono waits at exit for every native thread that ever ran managed code, and the
        // libfidius worker threads that ran the egress and log callbacks live as long as the
        // process: returning from Main would hang (see README, "Mono and process exit").
        Console.Out.Flush();
        Console.Error.Flush();
        if (Type.GetType("Mono.Runtime") != null) _exit(code);
        return code;
    }
}
