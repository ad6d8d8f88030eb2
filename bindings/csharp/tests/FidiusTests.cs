// Tests of the C# bindings against the fixture plugins (examples-c/build/plugins).
//
//   mono FidiusTests.exe PLUGIN_DIR        (libfidius.so on LD_LIBRARY_PATH)
//
// Prints one line per check and closes with "N passed, N failed".

using System;
using System.Collections.Generic;
using System.IO;
using System.Net;
using System.Net.Sockets;
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
        HostConfig config = new HostConfig();
        config.SearchPaths.Add(pluginDir);
        return new Host(config);
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
            EgressPolicy policy = new EgressPolicy(req =>
            {
                lock (asked) asked.Add(req.Method + " " + req.Scheme + "://" + req.Authority + req.PathAndQuery + " by " + req.Plugin);
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
        using (EgressPolicy policy = new EgressPolicy(req => { throw new InvalidOperationException("policy bug"); }))
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
        Run("discover", TestDiscover);
        Run("native plugins", TestNative);
        Run("WASM plugin", TestWasm);
        Run("not found", TestNotFound);
        Run("egress policy", TestEgress);
        Run("throwing egress policy", TestThrowingPolicyDenies);
        Run("threads", TestThreads);
        Run("dispose", TestDispose);
        Console.WriteLine("csharp: {0} passed, {1} failed", passed, failed);
        return failed == 0 ? 0 : 1;
    }
}
