// Tests of the C# bindings against the fixture plugins (examples-c/build/plugins) and the
// Python plugin package beside them (examples-c/build/python-plugins, or FIDIUS_PYTHON_PLUGIN_DIR).
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

    // The rule the binding applies when it loads libfidius: same MAJOR and, before 1.0, same MINOR.
    static void TestVersionCheck()
    {
        string[][] accepted = {
            new[] { "0.1.0", "0.1.0" }, new[] { "0.1.7", "0.1.0" }, new[] { "0.1.0", "0.1.3" }, // patch either way
            new[] { "1.4.2", "1.2.0" },                                                         // minor after 1.0
            new[] { "0.1.0-rc.1", "0.1.0" }, new[] { "0.1.0+build.5", "0.1.0" },                // semver suffixes
        };
        foreach (string[] c in accepted)
            Check(Library.VersionMismatch(c[0], c[1]) == null, "library " + c[0] + ", binding " + c[1] + ": accepted");
        string[][] refused = {
            new[] { "0.2.0", "0.1.0", "minor" }, new[] { "0.1.0", "0.2.0", "minor" },
            new[] { "1.0.0", "0.1.0", "major" }, new[] { "2.0.0", "1.9.9", "major" },
            new[] { "", "0.1.0", "not MAJOR.MINOR.PATCH" }, new[] { null, "0.1.0", "not MAJOR" },
            new[] { "0.1", "0.1.0", "not MAJOR" }, new[] { "0.1.0.0", "0.1.0", "not MAJOR" },
            new[] { "0.x.0", "0.1.0", "not MAJOR" }, new[] { "v0.1.0", "0.1.0", "not MAJOR" },
            new[] { "0.1.0-", "0.1.0", "not MAJOR" }, new[] { "0.1.0\n", "0.1.0", "not MAJOR" },
            new[] { "0.1.0", "garbage", "binding version" },
        };
        foreach (string[] c in refused)
        {
            string reason = Library.VersionMismatch(c[0], c[1]);
            Check(reason != null && reason.Contains(c[2]), ("library " + (c[0] ?? "null") + ", binding " + c[1] + ": refused (" + reason + ")").Replace("\n", "\\n"));
        }
        Check(Library.VersionMismatch(Library.Version, Library.BindingVersion) == null,
              "the library loaded (" + Library.Version + ") is accepted by the binding (" + Library.BindingVersion + ")");
        Library.CheckVersion(); // throws on a mismatch
        LibraryVersionException e = new LibraryVersionException("0.2.0", "0.1.0", "/x/libfidius.so", "minor versions differ");
        Check(e.Message.Contains("0.2.0") && e.Message.Contains("0.1.0") && e.Message.Contains("/x/libfidius.so"),
              "the exception names both versions and the file: " + e.Message);
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
            foreach (string name in new[] { "BasicCalc", "OtherCalc", "ArenaImpl", "ConfiguredGreeter", "LegacyCalc", "LegacyArena", "TypedImpl", "calc", "caps", "fetch" })
                Check(found.ContainsKey(name), "discovered " + name);
            // The schema beside libfixture_typed.so is no plugin, and not reported as one.
            Check(d.Skipped.Count == 0, "nothing skipped (" + d.Skipped.Count + ")");
            Check(found.ContainsKey("TypedImpl") && found["TypedImpl"].Runtime == PluginRuntime.Native &&
                  found["TypedImpl"].InterfaceName == "Typed" && found["TypedImpl"].MethodCount == 11, "TypedImpl: native, Typed, 11 methods");
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
            CheckDivZero(() => calc.Invoke<long>("divide", 7, 0), "calc Invoke");
            Check(calc.Invoke<long>("add", 2, 40) == 42, "calc Invoke<long>(add, 2, 40) = 42");
            Point moved = calc.Invoke<Point>("shift", new Point { X = 1, Y = 2, Label = "p" }, 3);
            Check(moved.X == 4 && moved.Y == 2 && moved.Label == "p+3", "calc Invoke shift = " + Json.Serialize(moved));
            Check(calc.Invoke<uint?>("maybe_double", (object)null) == null, "calc Invoke maybe_double(null) = null");
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

    [DllImport("libc", SetLastError = true)]
    static extern int chmod(string path, uint mode);

    // statx(2) (glibc 2.28+), whose struct has the same layout on every architecture, unlike stat's:
    // stx_uid at byte 20, stx_mode (u16) at byte 28.
    [DllImport("libc", SetLastError = true)]
    static extern int statx(int dirfd, string path, int flags, uint mask, byte[] buf);

    const int AtFdcwd = -100, AtSymlinkNofollow = 0x100;
    const uint StatxType = 1, StatxMode = 2;

    // The file's type and permission bits (lstat: a link is not followed), or -1 with errno.
    static int Mode(string path)
    {
        byte[] buf = new byte[256];
        if (statx(AtFdcwd, path, AtSymlinkNofollow, StatxType | StatxMode, buf) != 0) return -1;
        return BitConverter.ToUInt16(buf, 28);
    }

    static string Octal(int mode) { return mode < 0 ? "none" : Convert.ToString(mode & 0xfff, 8); }

    static Host CachedHost(string cache)
    {
        return NewHost(new HostConfig { CompileCache = cache });
    }

    // Run before any other test loads a WASM plugin: hosts share the process's WASM engine and its
    // in-memory compiled components while any host or plugin lives, and a component compiled there
    // is neither written to nor read from the cache directory (as tests/compile_cache.rs).
    static void TestCompileCache()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        const int IsDir = 0x4000, IsReg = 0x8000, TypeMask = 0xf000;
        string root = TempDir();
        try
        {
            string cache = Path.Combine(root, "compiled");   // missing: libfidius makes it, 0700
            using (Host host = CachedHost(cache))
            {
                int dirMode = Mode(cache);
                Check((dirMode & TypeMask) == IsDir && (dirMode & 0xfff) == Convert.ToInt32("700", 8),
                      "the cache directory is made with mode 0700 (" + Octal(dirMode) + ")");
                using (Plugin calc = host.Load("calc"))
                {
                    Check(calc.CallJson(calc.MethodIndex("add"), "[1, 2]") == "3", "a cached host: calc add(1, 2) = 3");
                    IList<string> warnings = calc.Warnings();
                    Check(warnings.Count == 0, "no warnings (" + string.Join("; ", warnings) + ")");
                }
            }
            string[] entries = Directory.GetFileSystemEntries(cache);
            Check(entries.Length == 1 && entries[0].EndsWith(".cwasm", StringComparison.Ordinal),
                  "the host freed, the directory holds exactly one .cwasm (" + string.Join(", ", entries) + ")");
            if (entries.Length == 1)
            {
                int mode = Mode(entries[0]);
                Check((mode & TypeMask) == IsReg && (mode & 0xfff) == Convert.ToInt32("600", 8),
                      "the entry is a regular file with mode 0600 (" + Octal(mode) + ")");
                Check(new FileInfo(entries[0]).Length > 1000, "the entry holds a compiled component (" + new FileInfo(entries[0]).Length + " bytes)");
            }
            using (Host host = CachedHost(cache))
            using (Plugin calc = host.Load("calc"))
            {
                Check(calc.CallJson(calc.MethodIndex("add"), "[1, 2]") == "3", "a second host with the same cache: calc add(1, 2) = 3");
                IList<string> warnings = calc.Warnings();
                Check(warnings.Count == 0, "no warnings (" + string.Join("; ", warnings) + ")");
            }
            entries = Directory.GetFileSystemEntries(cache);
            Check(entries.Length == 1 && entries[0].EndsWith(".cwasm", StringComparison.Ordinal),
                  "still exactly one entry (" + string.Join(", ", entries) + ")");

            // The entry is what a new host reads (no engine of an earlier host lingers in memory): a
            // corrupt one is seen, reported, compiled afresh and replaced.
            if (entries.Length == 1)
            {
                File.WriteAllText(entries[0], "not a cwasm");
                using (Host host = CachedHost(cache))
                using (Plugin calc = host.Load("calc"))
                {
                    Check(calc.CallJson(calc.MethodIndex("add"), "[2, 2]") == "4", "a corrupt entry: calc still compiles and adds");
                    IList<string> warnings = calc.Warnings();
                    Check(warnings.Count == 1 && warnings[0].Contains("not used"),
                          "and warns that the entry was not used (" + string.Join("; ", warnings) + ")");
                }
                Check(new FileInfo(entries[0]).Length > 1000 && (Mode(entries[0]) & 0xfff) == Convert.ToInt32("600", 8),
                      "the corrupt entry is replaced by a valid 0600 one");
                Check(Directory.GetFileSystemEntries(cache).Length == 1, "still exactly one entry");
            }

            // A directory others can write is refused when the host is built.
            if (chmod(cache, Convert.ToUInt32("777", 8)) != 0)
            {
                Check(false, "chmod 0777 failed: errno " + Marshal.GetLastWin32Error());
                return;
            }
            FidiusException e = Throws(() => CachedHost(cache).Dispose());
            Check(e != null && e.Status == Status.FileRefused && e.Message.Contains("writable by others"),
                  "a cache directory with mode 0777: FileRefused, writable by others (" + (e == null ? "built" : e.Status + ": " + e.Message) + ")");
            chmod(cache, Convert.ToUInt32("700", 8));

            // A relative path (the binding passes it on: libfidius checks it).
            e = Throws(() => CachedHost("relative/cache").Dispose());
            Check(e != null && e.Status == Status.InvalidArgument && e.Message.Contains("absolute"),
                  "a relative cache path: InvalidArgument (" + (e == null ? "built" : e.Status + ": " + e.Message) + ")");
            Check(!Directory.Exists("relative"), "and nothing is made for it");
            e = Throws(() => CachedHost("").Dispose());
            Check(e != null && e.Status == Status.InvalidArgument, "an empty cache path: InvalidArgument (" + (e == null ? "built" : e.Message) + ")");
        }
        finally
        {
            chmod(Path.Combine(root, "compiled"), Convert.ToUInt32("700", 8));
            Directory.Delete(root, true);
        }
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

    // --- tcp/udp through the policy's socket callback, and the response hook, with the `net`
    // fixture (fidius 0.5.9 guest crates) against loopback servers.

    static Plugin LoadNet(Host host, params string[] grants)
    {
        return host.Load("net", new LoadOptions { Grants = new List<string>(grants), Timeout = TimeSpan.FromSeconds(30) });
    }

    /// <summary>A TCP server on 127.0.0.1 answering one line with "echo: line".</summary>
    sealed class EchoServer : IDisposable
    {
        readonly TcpListener listener = new TcpListener(IPAddress.Loopback, 0);
        public int Port { get { return ((IPEndPoint)listener.LocalEndpoint).Port; } }

        public EchoServer()
        {
            listener.Start();
            new Thread(() =>
            {
                while (true)
                {
                    TcpClient client;
                    try { client = listener.AcceptTcpClient(); } catch { return; }
                    using (client)
                    using (NetworkStream s = client.GetStream())
                    {
                        s.ReadTimeout = 10000;
                        StringBuilder line = new StringBuilder();
                        int b;
                        while ((b = s.ReadByte()) >= 0 && b != '\n') line.Append((char)b);
                        byte[] reply = Encoding.ASCII.GetBytes("echo: " + line + "\n");
                        s.Write(reply, 0, reply.Length);
                    }
                }
            }) { IsBackground = true }.Start();
        }

        public void Dispose() { listener.Stop(); }
    }

    static void TestSocketEnums()
    {
        Check((uint)SocketUse.TcpConnect == 1 && (uint)SocketUse.UdpBind == 2 && (uint)SocketUse.UdpSend == 3 &&
              (uint)SocketUse.DnsLookup == 4, "SocketUse values");
        Check((uint)ResponseDirective.Forward == 0 && (uint)ResponseDirective.RetryOnce == 1, "ResponseDirective values");
    }

    static void TestSockets()
    {
        using (EchoServer server = new EchoServer())
        using (EgressPolicy policy = new EgressPolicy(req => EgressVerdict.Deny, true))
        {
            List<string> seen = new List<string>();
            policy.SetSocketCallback(req =>
            {
                lock (seen) seen.Add(req.Use + " " + (req.Host ?? "-") + " " + (req.Address ?? "-") + " " + req.Port + " " + req.Plugin);
                if ((req.Use == SocketUse.DnsLookup || req.Use == SocketUse.TcpConnect) && req.Host == "localhost")
                    return EgressVerdict.Allow;
                req.SetDenyReason("csharp says no");
                return EgressVerdict.Deny;
            });
            using (Host host = NewHost(new HostConfig { Egress = policy }))
            using (Plugin net = LoadNet(host, "tcp", "http"))
            {
                string got = net.Invoke<string>("tcp_echo", "localhost", server.Port, "hi");
                Check(got == "echo: hi", "tcp_echo localhost = " + got);
                lock (seen)
                {
                    Check(seen.Contains("DnsLookup localhost - 0 net"), "the lookup was asked: " + string.Join("; ", seen));
                    Check(seen.Exists(x => x == "TcpConnect localhost 127.0.0.1 " + server.Port + " net" || x == "TcpConnect localhost ::1 " + server.Port + " net"),
                          "the connect carried the name: " + string.Join("; ", seen));
                }
                try
                {
                    net.Invoke<string>("tcp_echo", "127.0.0.1", server.Port, "x");
                    Check(false, "a bare address is denied");
                }
                catch (PluginException e)
                {
                    Check(e.Code == "IO" && e.Message.Contains("socket denied for plugin net") && e.Message.Contains("csharp says no"),
                          "a bare address is denied, with the reason: " + e.Message);
                }
                lock (seen) seen.Clear();
                try
                {
                    net.Invoke<string[]>("resolve", "ip6-localhost");
                    Check(false, "a denied lookup fails");
                }
                catch (PluginException e)
                {
                    Check(e.Code == "IO", "a denied lookup is a resolver failure: " + e.Message);
                }
                lock (seen) Check(seen.Count == 1 && seen[0].StartsWith("DnsLookup "), "nothing but the lookup was asked");
            }
        }
    }

    static void TestUdp()
    {
        using (UdpClient udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0)))
        using (EgressPolicy policy = new EgressPolicy(req => EgressVerdict.Deny, true))
        {
            int port = ((IPEndPoint)udp.Client.LocalEndPoint).Port;
            List<string> got = new List<string>();
            new Thread(() =>
            {
                try
                {
                    IPEndPoint peer = new IPEndPoint(IPAddress.Any, 0);
                    byte[] data = udp.Receive(ref peer);
                    lock (got) got.Add(Encoding.UTF8.GetString(data));
                    byte[] reply = Encoding.UTF8.GetBytes("echo: " + Encoding.UTF8.GetString(data));
                    udp.Send(reply, reply.Length, peer);
                }
                catch { }
            }) { IsBackground = true }.Start();
            bool bindAsked = false;
            policy.SetSocketCallback(req =>
            {
                if (req.Use == SocketUse.UdpBind) { bindAsked = true; return EgressVerdict.Allow; }
                return req.Use == SocketUse.UdpSend && req.Address == "127.0.0.1" && req.Port == port ? EgressVerdict.Allow : EgressVerdict.Deny;
            });
            using (Host host = NewHost(new HostConfig { Egress = policy }))
            using (Plugin net = LoadNet(host, "udp", "http"))
            {
                string echo = net.Invoke<string>("udp_echo", "127.0.0.1", port, "ping");
                Check(echo == "echo: ping", "udp_echo = " + echo);
                lock (got) Check(got.Count == 1 && got[0] == "ping", "the server got one datagram");
                Check(bindAsked, "the UDP bind was asked");
            }
        }
    }

    static void TestSocketsNeedTheSecondKey()
    {
        using (EgressPolicy policy = new EgressPolicy(req => EgressVerdict.Allow))
        using (Host host = NewHost(new HostConfig { Egress = policy }))
        {
            FidiusException e = Throws(() => LoadNet(host, "tcp", "http").Dispose());
            Check(e != null && e.Status == Status.Capability && e.Message.Contains("fidius_egress_policy_set_socket_callback"),
                  "no socket callback: " + (e == null ? "loaded" : e.Message));
        }
    }

    /// <summary>Answers 401 unless "authorization: Bearer 2" came (then 200 "ok"); records each
    /// request's authorization header and (de-chunked) body.</summary>
    static List<string> ServeAuth(TcpListener listener, int requests)
    {
        List<string> seen = new List<string>();
        new Thread(() =>
        {
            for (int i = 0; i < requests; i++)
            {
                TcpClient client;
                try { client = listener.AcceptTcpClient(); } catch { return; }
                using (client)
                using (NetworkStream s = client.GetStream())
                {
                    s.ReadTimeout = 10000;
                    StringBuilder text = new StringBuilder();
                    byte[] buf = new byte[65536];
                    while (true)
                    {
                        string t = text.ToString();
                        int end = t.IndexOf("\r\n\r\n");
                        if (end >= 0 && (t.ToLowerInvariant().Contains("transfer-encoding: chunked") ? t.EndsWith("0\r\n\r\n") : true)) break;
                        int n = s.Read(buf, 0, buf.Length);
                        if (n <= 0) break;
                        text.Append(Encoding.ASCII.GetString(buf, 0, n));
                    }
                    string all = text.ToString();
                    string head = all.Substring(0, all.IndexOf("\r\n\r\n"));
                    string rest = all.Substring(head.Length + 4);
                    StringBuilder body = new StringBuilder();
                    if (head.ToLowerInvariant().Contains("transfer-encoding: chunked"))
                    {
                        while (true)
                        {
                            int nl = rest.IndexOf("\r\n");
                            int size = Convert.ToInt32(rest.Substring(0, nl), 16);
                            if (size == 0) break;
                            body.Append(rest.Substring(nl + 2, size));
                            rest = rest.Substring(nl + 2 + size + 2);
                        }
                    }
                    else body.Append(rest);
                    string auth = "-";
                    foreach (string line in head.Split(new[] { "\r\n" }, StringSplitOptions.None))
                        if (line.ToLowerInvariant().StartsWith("authorization:")) auth = line.Substring(14).Trim();
                    lock (seen) seen.Add(auth + " " + body);
                    string reply = auth == "Bearer 2"
                        ? "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        : "HTTP/1.1 401 Unauthorized\r\nContent-Length: 7\r\nConnection: close\r\n\r\nexpired";
                    byte[] r = Encoding.ASCII.GetBytes(reply);
                    s.Write(r, 0, r.Length);
                }
            }
        }) { IsBackground = true }.Start();
        return seen;
    }

    static void TestResponseHook()
    {
        TcpListener listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            List<string> seen = ServeAuth(listener, 2);
            int asks = 0;
            List<string> responses = new List<string>();
            using (EgressPolicy policy = new EgressPolicy(req =>
            {
                req.SetHeader("authorization", "Bearer " + Interlocked.Increment(ref asks));
                return EgressVerdict.Allow;
            }, true))
            {
                policy.SetResponseCallback((req, resp) =>
                {
                    Status edit = Status.Ok;
                    try { req.SetHeader("x-late", "1"); } catch (FidiusException e) { edit = e.Status; }
                    lock (responses) responses.Add(resp.Status + " " + resp.RetryAvailable + " " + edit);
                    return resp.Status == 401 ? ResponseDirective.RetryOnce : ResponseDirective.Forward;
                });
                using (Host host = NewHost(new HostConfig { Egress = policy }))
                using (Plugin net = LoadNet(host, "http"))
                {
                    string url = "http://127.0.0.1:" + ((IPEndPoint)listener.LocalEndpoint).Port + "/api";
                    string got = net.Invoke<string>("post", url, "payload");
                    Check(got == "200 ok", "post after one retry = " + got);
                }
            }
            lock (seen) Check(string.Join("|", seen) == "Bearer 1 payload|Bearer 2 payload", "the server saw exactly two POSTs: " + string.Join("|", seen));
            lock (responses)
                Check(string.Join("|", responses) == "401 True InvalidArgument|200 False InvalidArgument",
                      "the response callback saw 401 (retry available) then 200, read-only: " + string.Join("|", responses));
        }
        finally
        {
            listener.Stop();
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

    // --- interface schemas, describe, Invoke, cancellation

    // TypedImpl's records; Json writes the names in snake_case and matches them back.
    sealed class Order
    {
        public ulong Id;
        public string Sku;
        public uint Qty;
        public long UnitCents;
        public string Note; // option<string>: null is none
    }

    sealed class Line
    {
        public string Sku { get; set; }
        public long Cents { get; set; }
    }

    sealed class Point
    {
        public int X, Y;
        public string Label;
    }

    const string PriceJson = "[{\"id\": 1, \"sku\": \"tea\", \"qty\": 3, \"unit_cents\": 250}]";

    static string TypedWit { get { return Path.Combine(pluginDir, "libfixture_typed.so.wit"); } }

    static void CheckPrice(Plugin typed, string label)
    {
        Check(typed.MethodIndex("price") == 2 && typed.CallJson(2, PriceJson) == "750" && typed.MethodName(6) == "totals",
              label + ": price by name = 750");
    }

    static void TestSchemas()
    {
        string wit = File.ReadAllText(TypedWit);
        // libfixture_typed.so without its sidecar schema: no names, no types.
        string alone = TempDir();
        try
        {
            File.Copy(Path.Combine(pluginDir, "libfixture_typed.so"), Path.Combine(alone, "libfixture_typed.so"));
            HostConfig bareConfig = new HostConfig();
            bareConfig.SearchPaths.Add(alone);
            using (Host bare = new Host(bareConfig))
            {
                using (Plugin typed = bare.Load("TypedImpl"))
                {
                    FidiusException e = Throws(() => typed.CallJson(2, PriceJson));
                    Check(e != null && e.Status == Status.Unsupported, "no schema: JSON is Unsupported");
                    e = Throws(() => typed.MethodIndex("price"));
                    Check(e != null && e.Status == Status.MethodIndex, "no schema: no method names");
                }
                using (Plugin typed = bare.Load("TypedImpl", new LoadOptions { Schema = wit }))
                    CheckPrice(typed, "LoadOptions.Schema");
                using (Plugin typed = bare.Load("TypedImpl", new LoadOptions { SchemaFile = TypedWit }))
                    CheckPrice(typed, "LoadOptions.SchemaFile");

                FidiusException err = Throws(() => bare.Load("TypedImpl", new LoadOptions { Schema = "not wit {" }).Dispose());
                Check(err != null && err.Status == Status.InvalidArgument, "load schema that is not WIT: " + (err == null ? "loaded" : err.Status.ToString()));
                err = Throws(() => bare.Load("TypedImpl", new LoadOptions { Schema = wit, SchemaFile = TypedWit }).Dispose());
                Check(err != null && err.Status == Status.InvalidArgument, "Schema and SchemaFile: " + (err == null ? "loaded" : err.Message));
                string shortWit = "package fixture:short;\ninterface typed {\n  greet: func(name: string) -> string;\n}\n";
                err = Throws(() => bare.Load("TypedImpl", new LoadOptions { Schema = shortWit }).Dispose());
                Check(err != null && err.Status == Status.SchemaMismatch, "a schema with fewer methods: " + (err == null ? "loaded" : err.Status + ": " + err.Message));
            }

            HostConfig withText = new HostConfig();
            withText.SearchPaths.Add(alone);
            withText.Schemas.Add(wit);
            using (Host host = new Host(withText))
            using (Plugin typed = host.Load("TypedImpl"))
                CheckPrice(typed, "HostConfig.Schemas");
            HostConfig withFile = new HostConfig();
            withFile.SearchPaths.Add(alone);
            withFile.SchemaFiles.Add(TypedWit);
            using (Host host = new Host(withFile))
            using (Plugin typed = host.Load("TypedImpl"))
                CheckPrice(typed, "HostConfig.SchemaFiles");

            HostConfig notWit = new HostConfig();
            notWit.Schemas.Add("not wit {");
            FidiusException he = Throws(() => new Host(notWit).Dispose());
            Check(he != null && he.Status == Status.InvalidArgument, "host schema that is not WIT: " + (he == null ? "built" : he.Status.ToString()));
            HostConfig missing = new HostConfig();
            missing.SchemaFiles.Add(Path.Combine(alone, "missing.wit"));
            he = Throws(() => new Host(missing).Dispose());
            Check(he != null && he.Status == Status.Io, "missing schema file: " + (he == null ? "built" : he.Status.ToString()));
        }
        finally
        {
            Directory.Delete(alone, true);
        }
    }

    static void TestTypedJson()
    {
        // TypedImpl from the shared search path: its schema comes from libfixture_typed.so.wit.
        using (Host host = NewHost())
        using (Plugin typed = host.Load("TypedImpl"))
        {
            uint price = typed.MethodIndex("price");
            Check(typed.CallJson(price, PriceJson) == "750", "price = 750");
            string totals = typed.CallJson(typed.MethodIndex("totals"),
                "[[{\"id\": 1, \"sku\": \"tea\", \"qty\": 2, \"unit_cents\": 5}, {\"id\": 2, \"sku\": \"cup\", \"qty\": 1, \"unit_cents\": 7, \"note\": \"blue\"}]]");
            Check(totals.Replace(" ", "") == "[{\"sku\":\"tea\",\"cents\":10},{\"sku\":\"cup\",\"cents\":7}]", "totals = " + totals);
            Check(typed.CallJson(price, "{\"order\": {\"id\": 1, \"sku\": \"x\", \"qty\": 2, \"unit_cents\": -4}}") == "-8", "arguments by name");
            FidiusException e = Throws(() => typed.CallJson(price, "[{\"id\": 1, \"sku\": \"x\", \"qty\": -1, \"unit_cents\": 1}]"));
            Check(e != null && e.Message.Contains("qty"), "qty -1: " + (e == null ? "accepted" : e.Message));
        }
    }

    static void TestDescribe()
    {
        using (Host host = NewHost())
        using (Plugin typed = host.Load("TypedImpl"))
        using (Plugin basic = host.Load("BasicCalc"))
        using (Plugin calc = host.Load("calc"))
        {
            IDictionary<string, object> d = typed.Describe();
            Check((string)d["name"] == "TypedImpl" && (string)d["interface"] == "Typed" && (string)d["runtime"] == "native" &&
                  (long)d["abi_version"] == 500 && (string)d["buffer_strategy"] == "plugin-allocated", "TypedImpl: name, interface, runtime, ABI");
            Check(Convert.ToUInt64(((string)d["interface_hash"]).Substring(2), 16) == typed.Info.InterfaceHash, "interface_hash = " + d["interface_hash"]);
            Check(((string)d["types_from"]).EndsWith("libfixture_typed.so.wit"), "types_from = " + d["types_from"]);
            IList<object> methods = (IList<object>)d["methods"];
            IDictionary<string, object> price = (IDictionary<string, object>)methods[2];
            Check(methods.Count == 11 && (string)price["name"] == "price" && (string)price["returns"] == "s64", "methods[2] is price -> s64");
            IDictionary<string, object> param = (IDictionary<string, object>)((IList<object>)price["params"])[0];
            Check((string)param["name"] == "order" && (string)param["type"] == "order", "price(order: order)");
            IDictionary<string, object> divide = (IDictionary<string, object>)methods[8];
            Check((bool)divide["fallible"] && (string)divide["result"] == "result<s64, plugin-error>", "divide is fallible");
            IDictionary<string, object> order = null;
            foreach (object t in (IList<object>)d["types"])
            {
                IDictionary<string, object> type = (IDictionary<string, object>)t;
                if ((string)type["name"] == "order") order = type;
            }
            Check(order != null && (string)order["kind"] == "record" && ((IList<object>)order["fields"]).Count == 5, "a record type named order");

            IDictionary<string, object> b = basic.Describe();
            IDictionary<string, object> m0 = (IDictionary<string, object>)((IList<object>)b["methods"])[0];
            Check(b["types_from"] == null && m0["name"] == null && m0["params"] == null &&
                  (string)((IDictionary<string, object>)b["metadata"])["owner"] == "fixtures", "BasicCalc (no schema): names and types unknown");
            IDictionary<string, object> c = calc.Describe();
            Check((string)c["runtime"] == "wasm" && (string)c["types_from"] == "component", "calc: wasm, types from the component");
            Check(typed.DescribeJson().StartsWith("{"), "DescribeJson is the JSON text");
            basic.Dispose();
            try { basic.Describe(); Check(false, "Describe after Dispose throws"); }
            catch (ObjectDisposedException) { Check(true, "Describe after Dispose: ObjectDisposedException"); }
        }
    }

    static void TestInvoke()
    {
        using (Host host = NewHost())
        using (Plugin typed = host.Load("TypedImpl"))
        {
            Check(typed.Invoke<long>("price", new Order { Id = 1, Sku = "tea", Qty = 3, UnitCents = 250 }) == 750, "price(Order) = 750");
            Check(typed.Invoke<long>("price", new { id = 1, sku = "tea", qty = 3, unit_cents = 250 }) == 750, "price(anonymous) = 750");
            List<Line> lines = typed.Invoke<List<Line>>("totals", (object)new[] {
                new Order { Id = 1, Sku = "tea", Qty = 2, UnitCents = 5 },
                new Order { Id = 2, Sku = "cup", Qty = 1, UnitCents = 7, Note = "blue" } });
            Check(lines.Count == 2 && lines[0].Sku == "tea" && lines[0].Cents == 10 && lines[1].Sku == "cup" && lines[1].Cents == 7,
                  "totals = " + Json.Serialize(lines));
            Check(typed.Invoke<string>("greet", "C#") == "Hello, C#!", "greet");
            string widths = typed.Invoke<string>("widths", (sbyte)-1, (short)-2, -3, -4L, (byte)5, (ushort)6, 7u, ulong.MaxValue);
            Check(widths == "-1,-2,-3,-4,5,6,7,18446744073709551615", "widths = " + widths);
            Check(typed.Invoke<uint?>("maybe_double", 21) == 42 && typed.Invoke<uint?>("maybe-double", (object)null) == null, "maybe_double");
            Dictionary<string, object> rect = new Dictionary<string, object> { { "Rect", new { w = 2.0, h = 3.0 } } };
            Check(typed.Invoke<double>("area", rect) == 6.0 && typed.Invoke<double>("area", "Empty") == 0.0, "area of variants");
            Dictionary<string, double> scaled = typed.Invoke<Dictionary<string, double>>("scale", new Dictionary<string, double> { { "Circle", 1.5 } }, 2.0);
            Check(scaled.Count == 1 && scaled["Circle"] == 3.0, "scale = " + Json.Serialize(scaled));
            Dictionary<string, uint> tally = typed.Invoke<Dictionary<string, uint>>("tally", (object)new[] { "a", "b", "a" });
            Check(tally.Count == 2 && tally["a"] == 2 && tally["b"] == 1, "tally (pairs into a Dictionary) = " + Json.Serialize(tally));
            byte[] reversed = typed.Invoke<byte[]>("reverse", (object)new byte[] { 1, 2, 3 });
            Check(reversed.Length == 3 && reversed[0] == 3 && reversed[2] == 1, "reverse(byte[])");
            Check(typed.Invoke<object>("nothing") == null, "nothing() = null");
            // Beyond 2^53 a 64-bit integer is a decimal string, either way.
            long big = typed.Invoke<long>("price", new Order { Id = 1, Sku = "x", Qty = 2, UnitCents = (1L << 53) + 1 });
            Check(big == 2 * ((1L << 53) + 1), "price beyond 2^53 = " + big);
            CheckDivZero(() => typed.Invoke<long>("divide", 7, 0), "TypedImpl Invoke");
            Check(typed.Invoke<long>("divide", 7, 2) == 3, "divide(7, 2) = 3");
            FidiusException e = Throws(() => typed.Invoke<object>("no-such-method"));
            Check(e != null && e.Status == Status.MethodIndex, "unknown method: MethodIndex");
            try { typed.Invoke<long>("greet", "x"); Check(false, "a result of the wrong type throws"); }
            catch (FormatException ex) { Check(true, "a result of the wrong type: " + ex.Message); }
        }
    }

    static void TestJson()
    {
        Check(Json.Serialize(new object[] { null, true, "a\"\\\n\u0001", 'c', -5, 18446744073709551615UL, 1.5, double.NaN, float.PositiveInfinity }) ==
              "[null,true,\"a\\\"\\\\\\n\\u0001\",\"c\",-5,18446744073709551615,1.5,\"NaN\",\"Infinity\"]", "Serialize scalars");
        Check(Json.Serialize(new Order { Id = 1, Sku = "s", Qty = 2, UnitCents = 3 }) == "{\"id\":1,\"sku\":\"s\",\"qty\":2,\"unit_cents\":3,\"note\":null}",
              "Serialize a record: " + Json.Serialize(new Order { Id = 1, Sku = "s", Qty = 2, UnitCents = 3 }));
        Check(Json.Serialize(new KeyValuePair<string, int>("k", 1)) == "[\"k\",1]" && Json.Serialize(Tuple.Create("t", 2)) == "[\"t\",2]" &&
              Json.Serialize(PluginRuntime.Wasm) == "\"Wasm\"", "Serialize pairs, tuples, enums");
        Check(Json.SnakeCase("UnitCents") == "unit_cents" && Json.SnakeCase("HTTPCode") == "http_code" && Json.SnakeCase("sku") == "sku", "SnakeCase");
        object parsed = Json.Parse(" {\"a\": [1, -2, 18446744073709551615, 2.5e1, \"\\u00e9\\n\"], \"b\": null, \"c\": false} ");
        IDictionary<string, object> o = (IDictionary<string, object>)parsed;
        IList<object> a = (IList<object>)o["a"];
        Check((long)a[0] == 1 && (long)a[1] == -2 && (ulong)a[2] == ulong.MaxValue && (double)a[3] == 25.0 && (string)a[4] == "\u00e9\n" &&
              o["b"] == null && (bool)o["c"] == false, "Parse");
        Check(Json.Deserialize<long>("\"9007199254740993\"") == 9007199254740993L && Json.Deserialize<double>("\"-Infinity\"") == double.NegativeInfinity &&
              Json.Deserialize<PluginRuntime>("\"native\"") == PluginRuntime.Native, "Deserialize strings into numbers and enums");
        foreach (string bad in new[] { "[1,", "{\"a\" 1}", "tru", "\"open", "1 2" })
        {
            try { Json.Parse(bad); Check(false, "Parse(" + bad + ") throws"); }
            catch (FormatException) { Check(true, "Parse(" + bad + "): FormatException"); }
        }
        try { Json.Deserialize<byte>("300"); Check(false, "300 into a byte throws"); }
        catch (FormatException) { Check(true, "300 into a byte: FormatException"); }
    }

    static void TestCancel()
    {
        HostConfig config = new HostConfig();
        // caps' manifest asks for env:FIDIUS_FIXTURE_VAR, which the default allow-list refuses;
        // @default keeps the default allowance.
        config.AllowCapabilities.AddRange(new[] { "@default", "env:FIDIUS_FIXTURE_VAR" });
        using (Host host = NewHost(config))
        using (Plugin caps = host.Load("caps"))
        {
            uint sleep = caps.MethodIndex("sleep_ms"); // blocks in a host call (wasi:clocks)
            Check(sleep == 5, "caps sleep_ms is method 5");
            const ulong forever = 1000000000000;
            Dictionary<string, Action<CancellationToken>> calls = new Dictionary<string, Action<CancellationToken>>
            {
                { "CallJson", ct => caps.CallJson(sleep, "[" + forever + "]", ct) },
                { "Invoke", ct => caps.Invoke<ulong>("sleep_ms", ct, forever) },
                { "CallWire", ct => caps.CallWire(sleep, BitConverter.GetBytes(forever), ct) },
            };
            foreach (KeyValuePair<string, Action<CancellationToken>> call in calls)
            {
                using (CancellationTokenSource cts = new CancellationTokenSource())
                {
                    cts.CancelAfter(100);
                    Stopwatch sw = Stopwatch.StartNew();
                    FidiusException e = Throws(() => call.Value(cts.Token));
                    long ms = sw.ElapsedMilliseconds;
                    Check(e != null && e.Status == Status.Cancelled, call.Key + ": sleep_ms cancelled: " + (e == null ? "returned" : e.Status + ": " + e.Message));
                    Check(ms >= 90 && ms < 1100, call.Key + ": stopped promptly after the cancel (" + ms + " ms after the start)");
                }
                Check(caps.Invoke<ulong>("sleep_ms", 1) == 1, call.Key + ": the plugin serves the next call: sleep_ms(1) = 1");
            }
            using (CancellationTokenSource live = new CancellationTokenSource())
                Check(caps.Invoke<ulong>("sleep_ms", live.Token, 2) == 2, "a token never cancelled changes nothing");
        }

        // A WASM call looping in guest code (caps spin: never calls the host) with no timeout,
        // cancelled from another thread, stops, and the plugin serves the next call. The call runs
        // on a thread of its own so that one that never stops fails this check (10 s: a bound
        // against a hang, not a timing check) instead of hanging the tests.
        using (Host host = NewHost(config))
        using (Plugin caps = host.Load("caps"))
        {
            uint spin = caps.MethodIndex("spin");
            Check(spin == 7, "caps spin is method 7");
            Dictionary<string, Action<CancellationToken>> calls = new Dictionary<string, Action<CancellationToken>>
            {
                { "Invoke", ct => caps.Invoke<ulong>("spin", ct, ulong.MaxValue) },
                { "CallWire", ct => caps.CallWire(spin, BitConverter.GetBytes(ulong.MaxValue), ct) },
            };
            foreach (KeyValuePair<string, Action<CancellationToken>> call in calls)
            {
                using (CancellationTokenSource cts = new CancellationTokenSource())
                {
                    Exception thrown = null;
                    bool returned = false;
                    Thread worker = new Thread(() =>
                    {
                        try { call.Value(cts.Token); returned = true; }
                        catch (Exception ex) { thrown = ex; }
                    });
                    worker.IsBackground = true;
                    worker.Start();
                    Thread canceller = new Thread(() => { Thread.Sleep(100); cts.Cancel(); });
                    canceller.Start();
                    bool stopped = worker.Join(10000);
                    canceller.Join();
                    Check(stopped, call.Key + ": spin(u64::MAX) stopped within 10 s of the start");
                    FidiusException e = thrown as FidiusException;
                    Check(e != null && e.Status == Status.Cancelled, call.Key + ": spin(u64::MAX) cancelled: " +
                          (returned ? "returned" : thrown == null ? "?" : thrown.GetType().Name + ": " + thrown.Message));
                }
                Check(caps.Invoke<ulong>("spin", 1000UL) == 1000, call.Key + ": the plugin serves the next call: spin(1000) = 1000");
                Check(BitConverter.ToUInt64(caps.CallWire(spin, BitConverter.GetBytes(1000UL)), 0) == 1000, call.Key + ": spin(1000) through the wire");
            }
        }

        using (Host host = NewHost())
        using (Plugin basic = host.Load("BasicCalc"))
        using (Plugin typed = host.Load("TypedImpl"))
        using (CancellationTokenSource cts = new CancellationTokenSource())
        {
            Check(BitConverter.ToInt64(basic.CallWire(CalcAdd, WireI64Pair(2, 3), cts.Token), 0) == 5, "native call with a live token");
            cts.Cancel();
            FidiusException e = Throws(() => basic.CallWire(CalcAdd, WireI64Pair(2, 3), cts.Token));
            Check(e != null && e.Status == Status.Cancelled, "native call with a cancelled token: " + (e == null ? "ran" : e.Status.ToString()));
            e = Throws(() => typed.Invoke<string>("greet", cts.Token, "x"));
            Check(e != null && e.Status == Status.Cancelled, "native Invoke with a cancelled token: " + (e == null ? "ran" : e.Status.ToString()));
        }
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate void FakeRelease(IntPtr data, UIntPtr len);

    // A fidius_bytes claiming 2 GiB (+1): TakeBytes must throw a FidiusException and still
    // hand the buffer back to libfidius (which calls its release function), not leak it.
    static void TestHugeOutput()
    {
        IntPtr data = Marshal.AllocHGlobal(16);
        IntPtr releasedData = IntPtr.Zero;
        ulong releasedLen = 0;
        FakeRelease release = (d, n) => { releasedData = d; releasedLen = n.ToUInt64(); Marshal.FreeHGlobal(d); };
        Fidius.FidiusBytes bytes = new Fidius.FidiusBytes
        {
            Data = data,
            Len = (UIntPtr)((ulong)int.MaxValue + 1),
            Release = Marshal.GetFunctionPointerForDelegate(release),
        };
        FidiusException e = Throws(() => Fidius.Native.TakeBytes(ref bytes));
        Check(e != null && e.Status == Status.BufferTooSmall && e.Message.Contains("2147483648"),
              "over-long output: FidiusException(BufferTooSmall) " + (e == null ? "none" : e.Message));
        Check(releasedData == data && releasedLen == (ulong)int.MaxValue + 1, "the native buffer was released");
        Check(bytes.Data == IntPtr.Zero && bytes.Len == UIntPtr.Zero, "the fidius_bytes was emptied");
        GC.KeepAlive(release);
    }

    // libfidius does not call destroy when registering the log callback fails (forced
    // here: a NULL callback): the Host constructor must free the GCHandle it pinned.
    static void TestLogRegistrationFailure()
    {
        int before = Native_LiveCallbacks();
        Fidius.Native.FailLogRegistration = true;
        FidiusException e;
        try { e = Throws(() => NewHost(new HostConfig { Log = (level, msg) => { } })); }
        finally { Fidius.Native.FailLogRegistration = false; }
        Check(e != null && e.Status == Status.NullArgument, "refused log callback: NullArgument");
        Check(Native_LiveCallbacks() == before, "no pinned state left (" + (Native_LiveCallbacks() - before) + " live)");
        using (Host host = NewHost(new HostConfig { Log = (level, msg) => { } }))
            Check(Native_LiveCallbacks() == before + 1, "a registered log callback stays pinned");
        Check(Native_LiveCallbacks() == before, "released after Dispose");
    }

    // make test-csharp runs these from the NuGet package's files: the libfidius.so loaded must
    // be the package's (FIDIUS_EXPECT_LIBRARY), found without LD_LIBRARY_PATH.
    static void TestLibraryLocation()
    {
        string expect = Environment.GetEnvironmentVariable("FIDIUS_EXPECT_LIBRARY");
        if (string.IsNullOrEmpty(expect)) { Console.WriteLine("  skip (FIDIUS_EXPECT_LIBRARY unset)"); return; }
        Check(Library.Version.Length > 0, "libfidius loaded");
        bool mapped = false;
        foreach (string line in File.ReadAllLines("/proc/self/maps"))
            if (line.EndsWith(" " + expect) || line.EndsWith("\t" + expect)) mapped = true;
        Check(mapped, "the library mapped is " + expect);
        Check(string.IsNullOrEmpty(Environment.GetEnvironmentVariable("LD_LIBRARY_PATH")), "no LD_LIBRARY_PATH");
        bool netCore = typeof(Marshal).Assembly.GetType("System.Runtime.InteropServices.NativeLibrary") != null;
        Check(Fidius.NativeResolver.Installed == netCore,
              "the DllImport resolver is installed where NativeLibrary exists (" + (netCore ? ".NET" : "Mono: no") + ")");
    }

    // ---- host functions: the KvUser fixtures (native KvUserImpl, WASM package hostfn) call back
    // into the host interface Kv: index 0 get(key) -> Option<String>, 1 put(key, value) -> Result<(), PluginError>.

    const uint KvFetch = 0, KvStore = 1, KvCopy = 2, KvHostHash = 3, KvHostVersion = 4;

    static byte[] WireStrings(params string[] strings)
    {
        List<byte> out_ = new List<byte>();
        foreach (string s in strings) out_.AddRange(WireString(s));
        return out_.ToArray();
    }

    /// <summary>Decode a wire string at b[at]; at moves past it.</summary>
    static string ReadWireString(byte[] b, ref int at)
    {
        if (b.Length - at < 8) throw new FormatException("short string length");
        ulong n = BitConverter.ToUInt64(b, at);
        at += 8;
        if ((ulong)(b.Length - at) < n) throw new FormatException("short string");
        string s = Encoding.UTF8.GetString(b, at, (int)n);
        at += (int)n;
        return s;
    }

    /// <summary>Kv over a dictionary.</summary>
    sealed class KvStoreImpl
    {
        public readonly Dictionary<string, string> Data = new Dictionary<string, string>();

        public byte[] Call(uint index, byte[] input)
        {
            int at = 0;
            string key = ReadWireString(input, ref at);
            lock (Data)
            {
                if (index == 0) // get(key) -> Option<String>
                {
                    string v;
                    if (!Data.TryGetValue(key, out v)) return new byte[] { 0 };
                    List<byte> out_ = new List<byte> { 1 };
                    out_.AddRange(WireString(v));
                    return out_.ToArray();
                }
                if (index != 1) throw new ArgumentOutOfRangeException("index");
                string value = ReadWireString(input, ref at); // put(key, value) -> Result<(), PluginError>
                if (key == "forbidden") throw new PluginException("DENIED", "that key is not yours", "{\"key\":\"forbidden\"}");
                if (key == "throw") throw new InvalidOperationException("kv exploded");
                if (key == "gc")
                {
                    GC.Collect(); // a collection inside a host function (on a WASM plugin's call too)
                    GC.WaitForPendingFinalizers();
                }
                Data[key] = value;
                return null; // (): nothing to answer
            }
        }

        public string Get(string key)
        {
            lock (Data) { string v; return Data.TryGetValue(key, out v) ? v : null; }
        }
    }

    /// <summary>fetch(key): the value, or null for none.</summary>
    static string KvFetchCall(Plugin p, string key)
    {
        byte[] out_ = p.CallWire(KvFetch, WireString(key));
        if (out_.Length == 1 && out_[0] == 0) return null;
        if (out_.Length < 1 || out_[0] != 1) throw new FormatException("fetch: bad output");
        int at = 1;
        string v = ReadWireString(out_, ref at);
        if (at != out_.Length) throw new FormatException("fetch: trailing bytes");
        return v;
    }

    static PluginException PluginErrorOf(Action call)
    {
        try { call(); }
        catch (PluginException e) { return e; }
        return null;
    }

    static void ExerciseKv(Plugin p, KvStoreImpl kv, string runtime)
    {
        string key = "greeting-" + runtime, value = "hello from the " + runtime + " plugin, ünïcode";
        p.CallWire(KvStore, WireStrings(key, value));
        Check(kv.Get(key) == value, runtime + ": store lands in the dictionary (" + kv.Get(key) + ")");
        Check(KvFetchCall(p, key) == value, runtime + ": fetch returns it");
        Check(KvFetchCall(p, "missing") == null, runtime + ": fetch(missing) is none");
        byte[] copied = p.CallWire(KvCopy, WireStrings(key, key + "-copy"));
        Check(copied.Length == 1 && copied[0] == 1 && kv.Get(key + "-copy") == value, runtime + ": copy (two host calls)");
        p.CallWire(KvStore, WireStrings("gc", "collected"));
        Check(kv.Get("gc") == "collected", runtime + ": a GC inside the host function");

        PluginException e = PluginErrorOf(() => p.CallWire(KvStore, WireStrings("forbidden", "x")));
        Check(e != null && e.Status == Status.PluginError && e.Code == "DENIED" && e.PluginMessage == "that key is not yours" &&
              e.Details != null && e.Details.Replace(" ", "") == "{\"key\":\"forbidden\"}",
              runtime + ": a PluginException from the host function arrives as is (" +
              (e == null ? "none" : e.Code + ", " + e.PluginMessage + ", " + e.Details) + ")");
        e = PluginErrorOf(() => p.CallWire(KvStore, WireStrings("throw", "x")));
        Check(e != null && e.Code == "HOST_PANIC" && e.PluginMessage.Contains("InvalidOperationException") && e.PluginMessage.Contains("kv exploded"),
              runtime + ": another exception is a host panic (" + (e == null ? "none" : e.Code + ": " + e.PluginMessage) + ")");
        Check(KvFetchCall(p, key) == value, runtime + ": the plugin keeps serving");
    }

    static void TestHostFunctions()
    {
        int before = Native_LiveCallbacks();

        // Without Kv: the identity the plugins were built against, and "not bound" from their host calls.
        ulong hash = 0;
        uint version = 0;
        using (Host host = NewHost())
        {
            foreach (string name in new[] { "KvUserImpl", "hostfn" })
            {
                using (Plugin p = host.Load(name))
                {
                    ulong h = BitConverter.ToUInt64(p.CallWire(KvHostHash, new byte[0]), 0);
                    Check(hash == 0 || h == hash, name + ": Kv hash 0x" + h.ToString("x16"));
                    hash = h;
                    version = BitConverter.ToUInt32(p.CallWire(KvHostVersion, new byte[0]), 0);
                    PluginException e = PluginErrorOf(() => p.CallWire(KvFetch, WireString("k")));
                    Check(e != null && e.Code == "HOST_NOT_BOUND", name + ": without Kv, HOST_NOT_BOUND (" + (e == null ? "none" : e.Code) + ")");
                }
            }
        }
        Check(version == 1 && hash != 0, "Kv version " + version);

        FidiusException refused = Throws(() => new HostInterface("", hash, version, 2, (i, input) => null));
        Check(refused != null && refused.Status == Status.InvalidArgument, "an empty name: InvalidArgument");
        Check(Native_LiveCallbacks() == before, "a refused interface leaves nothing pinned");

        KvStoreImpl kv = new KvStoreImpl();
        HostInterface iface = new HostInterface("Kv", hash, version, 2, kv.Call);
        Check(iface.Name == "Kv" && iface.Hash == hash && iface.Version == 1 && iface.FunctionCount == 2, "HostInterface properties");
        HostConfig config = new HostConfig();
        config.HostInterfaces.Add(iface);
        Host kvHost = NewHost(config);
        iface.Dispose(); // the host holds its own reference
        iface = null;
        Plugin native = kvHost.Load("KvUserImpl");
        Plugin wasm = kvHost.Load("hostfn");
        GC.Collect(); // libfidius' references keep the delegate alive
        GC.WaitForPendingFinalizers();
        ExerciseKv(native, kv, "native");
        ExerciseKv(wasm, kv, "wasm");
        IDictionary<string, object> desc = native.Describe();
        List<object> imports = desc.ContainsKey("host_imports") ? desc["host_imports"] as List<object> : null;
        IDictionary<string, object> import = imports != null && imports.Count == 1 ? imports[0] as IDictionary<string, object> : null;
        Check(import != null && (string)import["name"] == "Kv" && Convert.ToInt64(import["version"]) == 1 && (bool)import["bound"],
              "describe: host_imports lists Kv, bound");

        // Threads: WASM calls from several threads at once, each calling Kv.
        int errors = 0;
        Thread[] threads = new Thread[4];
        for (int t = 0; t < threads.Length; t++)
        {
            int n = t;
            threads[t] = new Thread(() =>
            {
                try
                {
                    for (int i = 0; i < 5; i++)
                    {
                        wasm.CallWire(KvStore, WireStrings("t" + n + "-" + i, "v"));
                        if (KvFetchCall(wasm, "t" + n + "-" + i) != "v") Interlocked.Increment(ref errors);
                    }
                }
                catch (Exception) { Interlocked.Increment(ref errors); }
            });
            threads[t].Start();
        }
        foreach (Thread t in threads) t.Join();
        Check(errors == 0, "concurrent WASM calls through Kv (" + errors + " errors)");

        // A second implementation: the WASM plugin takes it through its load options; the native
        // library, bound to a live one, refuses it.
        KvStoreImpl other = new KvStoreImpl();
        using (HostInterface otherIface = new HostInterface("Kv", hash, version, 2, other.Call))
        {
            LoadOptions withOther = new LoadOptions();
            withOther.HostInterfaces.Add(otherIface);
            using (Plugin wasm2 = kvHost.Load("hostfn", withOther))
                wasm2.CallWire(KvStore, WireStrings("only-other", "2"));
            Check(other.Get("only-other") == "2" && kv.Get("only-other") == null, "load options' Kv comes before the host's");
            FidiusException e = Throws(() => kvHost.Load("KvUserImpl", withOther).Dispose());
            Check(e != null && e.Status == Status.HostInterface,
                  "native library bound to a live Kv, loaded with another: HostInterface (" + (e == null ? "none" : e.Message) + ")");
            using (HostInterface bad = new HostInterface("Kv", hash ^ 1, version, 2, other.Call))
            {
                LoadOptions withBad = new LoadOptions();
                withBad.HostInterfaces.Add(bad);
                e = Throws(() => kvHost.Load("KvUserImpl", withBad).Dispose());
                Check(e != null && e.Status == Status.HostInterface, "a mismatched hash fails the native load");
            }

            kvHost.Dispose();
            Check(Native_LiveCallbacks() > before + 1, "Kv alive while plugins use it");
            Check(KvFetchCall(native, "greeting-native") != null, "native plugin serves after the host is disposed");
            native.Dispose();
            wasm.Dispose();

            // The first implementation is gone: the library binds to the other one.
            using (Host h2 = NewHost())
            using (Plugin native2 = h2.Load("KvUserImpl", withOther))
            {
                native2.CallWire(KvStore, WireStrings("native-other", "3"));
                Check(other.Get("native-other") == "3", "the native library rebinds once the first Kv is released");
            }
        }
        Check(Native_LiveCallbacks() == before, "every GCHandle freed after disposing everything (" + (Native_LiveCallbacks() - before) + " live)");
    }

    // ---- streams: the Streamer fixtures (native StreamerImpl, libfixture_stream.so; WASM package
    // stream), in order: count(n, marker) -> Stream<u64>, blobs(count, size) -> Stream<String>,
    // explode(at) -> Stream<u64>, sum(start, Stream<u64>) -> u64, shout(prefix, Stream<String>) ->
    // Stream<String>, add(a, b) -> i64, points(n) -> Stream<Point>, sum_checked(Stream<u64>) ->
    // Result<u64>, forever(marker) -> Stream<u64>. A non-empty marker is a file that gets one line
    // "dropped" when the producer is dropped (the stream's end or cancel).

    const uint SCount = 0, SBlobs = 1, SExplode = 2, SSum = 3, SShout = 4, SAdd = 5, SPoints = 6, SSumChecked = 7, SForever = 8;

    static byte[] WireU64(ulong v) { return BitConverter.GetBytes(v); }

    static byte[] Concat(params byte[][] parts)
    {
        List<byte> out_ = new List<byte>();
        foreach (byte[] p in parts) out_.AddRange(p);
        return out_.ToArray();
    }

    static byte[] CountInput(ulong n, string marker) { return Concat(WireU64(n), WireString(marker ?? "")); }

    static List<ulong> U64s(IEnumerable<byte[]> items)
    {
        List<ulong> out_ = new List<ulong>();
        foreach (byte[] b in items)
        {
            if (b.Length != 8) throw new FormatException("a u64 item of " + b.Length + " bytes");
            out_.Add(BitConverter.ToUInt64(b, 0));
        }
        return out_;
    }

    static bool IsRange(List<ulong> items, ulong n)
    {
        if ((ulong)items.Count != n) return false;
        for (int i = 0; i < items.Count; i++) if (items[i] != (ulong)i) return false;
        return true;
    }

    static List<byte[]> Drain(PluginStream s)
    {
        List<byte[]> items = new List<byte[]>();
        foreach (byte[] item in s) items.Add(item);
        return items;
    }

    static int MarkerLines(string path)
    {
        if (!File.Exists(path)) return 0;
        int n = 0;
        foreach (string line in File.ReadAllLines(path)) if (line == "dropped") n++;
        return n;
    }

    /// <summary>Wire items whose enumerators count what happens to them: the thread of each pull,
    /// Dispose calls, and an exception thrown at item ThrowAt.</summary>
    sealed class ProbeItems : IEnumerable<byte[]>
    {
        readonly IList<byte[]> items;
        public int ThrowAt = -1;
        public bool YieldNull;
        public Action<int> OnPull;
        public int Enumerators, Disposed, Pulled;
        public Exception Thrown;
        public readonly List<int> Threads = new List<int>();

        public ProbeItems(IList<byte[]> items) { this.items = items; }

        public IEnumerator<byte[]> GetEnumerator()
        {
            Interlocked.Increment(ref Enumerators);
            return new Enumerator(this);
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() { return GetEnumerator(); }

        sealed class Enumerator : IEnumerator<byte[]>
        {
            readonly ProbeItems owner;
            int at = -1;
            public Enumerator(ProbeItems owner) { this.owner = owner; }
            public byte[] Current { get { return owner.YieldNull ? null : owner.items[at]; } }
            object System.Collections.IEnumerator.Current { get { return Current; } }
            public bool MoveNext()
            {
                lock (owner.Threads) owner.Threads.Add(Thread.CurrentThread.ManagedThreadId);
                at++;
                if (at == owner.ThrowAt)
                    throw owner.Thrown = new InvalidDataException("item " + at + " is cursed");
                if (owner.OnPull != null) owner.OnPull(at);
                if (at >= owner.items.Count) return false;
                owner.Pulled++;
                return true;
            }
            public void Reset() { throw new NotSupportedException(); }
            public void Dispose() { Interlocked.Increment(ref owner.Disposed); }
        }

        public bool AllOn(int thread)
        {
            lock (Threads) return Threads.Count > 0 && Threads.TrueForAll(t => t == thread);
        }
    }

    static List<byte[]> WireU64Items(params ulong[] values)
    {
        List<byte[]> items = new List<byte[]>();
        foreach (ulong v in values) items.Add(WireU64(v));
        return items;
    }

    static List<byte[]> WireStringItems(params string[] values)
    {
        List<byte[]> items = new List<byte[]>();
        foreach (string v in values) items.Add(WireString(v));
        return items;
    }

    static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    /// <summary>A copy of libfixture_stream.so without its sidecar schema: the native plugin as
    /// its descriptor alone describes it (no names, no types).</summary>
    static string BareStreamDir()
    {
        string dir = TempDir();
        File.Copy(Path.Combine(pluginDir, "libfixture_stream.so"), Path.Combine(dir, "libfixture_stream.so"));
        return dir;
    }

    static Host BareHost(string dir)
    {
        HostConfig config = new HostConfig();
        config.SearchPaths.Add(dir);
        return new Host(config);
    }

    /// <summary>The WIT schema of Streamer (the sidecar the plugin directory holds).</summary>
    static string StreamerWit { get { return File.ReadAllText(Path.Combine(pluginDir, "libfixture_stream.so.wit")); } }

    /// <summary>The WASM package, granted markerDir for its drop markers.</summary>
    static Plugin LoadWasmStreamer(Host host, string markerDir)
    {
        return host.Load("stream", new LoadOptions { Grants = new List<string> { "fs:rw:" + markerDir } });
    }

    /// <summary>Run f on the native plugin (without a schema, wire bytes) and the WASM package.</summary>
    static void EachStreamer(Action<Plugin, string, string> f)
    {
        string bare = BareStreamDir();
        string markers = TempDir();
        try
        {
            using (Host host = BareHost(bare))
            using (Plugin native = host.Load("StreamerImpl"))
                f(native, Path.Combine(markers, "native"), "native");
            using (Host host = NewHost())
            using (Plugin wasm = LoadWasmStreamer(host, markers))
                f(wasm, Path.Combine(markers, "wasm"), "wasm");
        }
        finally
        {
            Directory.Delete(bare, true);
            Directory.Delete(markers, true);
        }
    }

    static void TestStreamStatuses()
    {
        Check((int)Status.StreamEnd == 65 && (int)Status.StreamSource == 66, "Status.StreamEnd = 65, Status.StreamSource = 66");
        Check(Library.StatusName(Status.StreamEnd) != "unknown status" && Library.StatusName(Status.StreamSource) != "unknown status",
              "libfidius names them: " + Library.StatusName(Status.StreamEnd) + ", " + Library.StatusName(Status.StreamSource));
    }

    static void TestServerStreams()
    {
        EachStreamer((p, marker, rt) =>
        {
            foreach (ulong n in new ulong[] { 0, 1, 10000 })
            {
                string m = marker + "." + n;
                PluginStream s = p.StreamWire(SCount, CountInput(n, m));
                Check(s.Format == Format.Wire && !s.IsBidirectional && !s.Ended, rt + ": count(" + n + ") opened");
                List<ulong> items = U64s(s);
                Check(IsRange(items, n), rt + ": count(" + n + ") yields 0.." + n + " in order (" + items.Count + " items)");
                Check(s.Ended && MarkerLines(m) == 1, rt + ": ended, the producer dropped once (" + MarkerLines(m) + ")");
                byte[] extra;
                Check(!s.TryNext(out extra) && extra == null && Drain(s).Count == 0, rt + ": the end is answered again");
                s.Dispose();
                s.Dispose();
                Check(MarkerLines(m) == 1, rt + ": disposing (twice) an ended stream drops nothing again");
                bool disposed = false;
                try { s.TryNext(out extra); }
                catch (ObjectDisposedException) { disposed = true; }
                Check(disposed, rt + ": TryNext after Dispose throws ObjectDisposedException");
            }
            // Pulled with TryNext, item by item.
            using (PluginStream s = p.Stream(SCount, Format.Wire, CountInput(3, "")))
            {
                byte[] a, b, c = null, d;
                bool ok = s.TryNext(out a) && s.TryNext(out b) && s.TryNext(out c) && !s.TryNext(out d) && d == null;
                Check(ok && BitConverter.ToUInt64(c, 0) == 2, rt + ": TryNext x3, then the end");
            }
        });
    }

    static void TestBigItems()
    {
        EachStreamer((p, marker, rt) =>
        {
            foreach (uint size in new uint[] { 1, 5000, 300000 })
            {
                using (PluginStream s = p.StreamWire(SBlobs, Concat(BitConverter.GetBytes(4u), BitConverter.GetBytes(size))))
                {
                    List<byte[]> items = Drain(s);
                    bool ok = items.Count == 4;
                    for (int i = 0; ok && i < items.Count; i++)
                    {
                        string text = ReadWireString(items[i]);
                        ok = text.Length == size && text.Replace(((char)('a' + i)).ToString(), "").Length == 0;
                    }
                    Check(ok, rt + ": blobs(4, " + size + "): 4 whole items of " + size + " chars");
                }
            }
        });
    }

    static void OpenAndAbandon(Plugin p, string marker)
    {
        PluginStream s = p.StreamWire(SForever, WireString(marker));
        byte[] item;
        s.TryNext(out item);
    }

    static void TestCancelStreams()
    {
        EachStreamer((p, marker, rt) =>
        {
            string endless = marker + ".forever";
            using (PluginStream s = p.StreamWire(SForever, WireString(endless)))
            {
                List<ulong> first = new List<ulong>();
                foreach (byte[] item in s)
                {
                    first.Add(BitConverter.ToUInt64(item, 0));
                    if (first.Count == 5) break;
                }
                Check(IsRange(first, 5), rt + ": forever: 0..4, then break");
                Check(MarkerLines(endless) == 0 && !s.Ended, rt + ": breaking out of foreach does not cancel");
                byte[] next;
                Check(s.TryNext(out next) && BitConverter.ToUInt64(next, 0) == 5, rt + ": the stream goes on where it was (5)");
            }
            Check(MarkerLines(endless) == 1, rt + ": Dispose drops the producer exactly once (" + MarkerLines(endless) + ")");

            string counted = marker + ".count";
            PluginStream c = p.StreamWire(SCount, CountInput(100, counted));
            byte[] one;
            c.TryNext(out one);
            c.Close();
            c.Dispose();
            Check(MarkerLines(counted) == 1, rt + ": count(100) closed after one item: dropped once (" + MarkerLines(counted) + ")");

            string unpulled = marker + ".unpulled";
            p.StreamWire(SCount, CountInput(100, unpulled)).Dispose();
            Check(MarkerLines(unpulled) == 1, rt + ": never pulled, disposed: dropped once");

            // Abandoned on a thread that has ended: the SafeHandle's finalizer releases it.
            string abandoned = marker + ".abandoned";
            Thread t = new Thread(() => OpenAndAbandon(p, abandoned));
            t.Start();
            t.Join();
            for (int i = 0; i < 50 && MarkerLines(abandoned) == 0; i++)
            {
                Settle();
                if (MarkerLines(abandoned) == 0) Thread.Sleep(20);
            }
            Check(MarkerLines(abandoned) == 1, rt + ": an abandoned stream is cancelled by the finalizer, once (" + MarkerLines(abandoned) + ")");
        });
    }

    /// <summary>Throws on the pull that meets the cancel; what it threw (null: none).</summary>
    static FidiusException PullUntilFailure(PluginStream s, ref int count)
    {
        try
        {
            byte[] item;
            while (s.TryNext(out item)) count++;
        }
        catch (FidiusException e) { return e; }
        return null;
    }

    static void TestStreamCancel()
    {
        EachStreamer((p, marker, rt) =>
        {
            using (PluginStream s = p.StreamWire(SForever, WireString(marker + ".forever")))
            {
                byte[] item;
                Check(s.TryNext(out item) && s.TryNext(out item), rt + ": forever: two items");
                s.Cancel();
                s.Cancel(); // idempotent
                FidiusException e = Throws(() => s.TryNext(out item));
                Check(e != null && e.Status == Status.Cancelled, rt + ": the pull after Cancel throws Cancelled (" + (e == null ? "none" : e.Status.ToString()) + ")");
                Check(!s.TryNext(out item) && s.Ended, rt + ": then the stream has ended");
                s.Cancel();
            }
            // From another thread, while this one pulls.
            using (PluginStream s = p.StreamWire(SForever, WireString(marker + ".forever2")))
            {
                int count = 0;
                Thread canceller = new Thread(() => { Thread.Sleep(100); s.Cancel(); });
                canceller.Start();
                FidiusException e = PullUntilFailure(s, ref count);
                canceller.Join();
                Check(e != null && e.Status == Status.Cancelled && count > 0,
                      rt + ": Cancel from another thread stops the pulling one (" + count + " items, " + (e == null ? "no error" : e.Status.ToString()) + ")");
            }
            PluginStream disposed = p.StreamWire(SCount, CountInput(3, ""));
            disposed.Dispose();
            disposed.Cancel();
            Check(true, rt + ": Cancel after Dispose does nothing");
            using (PluginStream s = p.StreamWire(SCount, CountInput(3, "")))
            {
                Check(IsRange(U64s(s), 3), rt + ": count(3) to its end");
                s.Cancel();
                byte[] item;
                Check(!s.TryNext(out item), rt + ": Cancel after the end: still just the end");
            }
        });
    }

    static void TestStreamFailure()
    {
        EachStreamer((p, marker, rt) =>
        {
            using (PluginStream s = p.StreamWire(SExplode, WireU64(3)))
            {
                List<ulong> items = new List<ulong>();
                FidiusException failure = null;
                try
                {
                    foreach (byte[] item in s) items.Add(BitConverter.ToUInt64(item, 0));
                }
                catch (FidiusException e) { failure = e; }
                Status expected = rt == "native" ? Status.PluginPanic : Status.Trap;
                Check(IsRange(items, 3), rt + ": explode(3) yields 0, 1, 2 first");
                Check(failure != null && failure.Status == expected && !(failure is PluginException),
                      rt + ": then fails with " + expected + " (" + (failure == null ? "no failure" : failure.Status + ": " + failure.Message) + ")");
                byte[] after;
                Check(s.Ended && !s.TryNext(out after) && Drain(s).Count == 0, rt + ": the failure ended the stream");
            }
            Check(BitConverter.ToInt64(p.CallWire(SAdd, WireI64Pair(2, 40)), 0) == 42, rt + ": the plugin serves on");
        });
    }

    static void TestStreamThreads()
    {
        EachStreamer((p, marker, rt) =>
        {
            int errors = 0;
            Thread[] threads = new Thread[8];
            string[] markers = new string[threads.Length];
            for (int t = 0; t < threads.Length; t++)
            {
                int g = t;
                markers[g] = marker + ".t" + g;
                threads[t] = new Thread(() =>
                {
                    try
                    {
                        ulong n = 2000 + (ulong)g;
                        using (PluginStream s = p.StreamWire(SCount, CountInput(n, markers[g])))
                            if (!IsRange(U64s(s), n)) Interlocked.Increment(ref errors);
                    }
                    catch (Exception) { Interlocked.Increment(ref errors); }
                });
                threads[t].Start();
            }
            foreach (Thread t in threads) t.Join();
            bool dropped = Array.TrueForAll(markers, m => MarkerLines(m) == 1);
            Check(errors == 0 && dropped, rt + ": 8 threads each drain their own stream of one plugin (" + errors + " errors)");
        });
    }

    static void TestClientStreams()
    {
        EachStreamer((p, marker, rt) =>
        {
            Settle();
            int before = Native_LiveCallbacks();
            List<byte[]> hundred = new List<byte[]>();
            for (ulong i = 1; i <= 100; i++) hundred.Add(WireU64(i));
            ProbeItems items = new ProbeItems(hundred);
            byte[] sum = p.CallStreaming(SSum, Format.Wire, WireU64(10), items);
            Check(BitConverter.ToUInt64(sum, 0) == 10 + 5050, rt + ": sum(10, 1..100) = " + BitConverter.ToUInt64(sum, 0));
            Check(items.Enumerators == 1 && items.Disposed == 1 && items.Pulled == 100,
                  rt + ": one enumerator, disposed once by the time the call returns (" + items.Enumerators + ", " + items.Disposed + ")");
            Check(items.AllOn(Thread.CurrentThread.ManagedThreadId), rt + ": pulled on the calling thread");
            Check(Native_LiveCallbacks() == before, rt + ": the GCHandle is freed (" + (Native_LiveCallbacks() - before) + " live)");

            ProbeItems none = new ProbeItems(new List<byte[]>());
            Check(BitConverter.ToUInt64(p.CallStreaming(SSum, Format.Wire, WireU64(7), none), 0) == 7 && none.Disposed == 1,
                  rt + ": an empty input: sum = 7");
            // An iterator block, with a GC in the middle of the feed.
            Check(BitConverter.ToUInt64(p.CallStreaming(SSum, Format.Wire, WireU64(0), CollectingItems(50)), 0) == 50 * 51 / 2,
                  rt + ": an iterator with GCs between items: sum = 1275");
            Check(Native_LiveCallbacks() == before, rt + ": nothing left pinned");
        });
    }

    static IEnumerable<byte[]> CollectingItems(int n)
    {
        for (int i = 1; i <= n; i++)
        {
            if (i % 10 == 0) GC.Collect();
            yield return WireU64((ulong)i);
        }
    }

    static IEnumerable<byte[]> ThrowsOnEnumerate(bool atOnce)
    {
        if (atOnce) throw new UnauthorizedAccessException("no items for you");
        yield return WireU64(1);
        throw new UnauthorizedAccessException("no more items for you");
    }

    sealed class NoEnumerator : IEnumerable<byte[]>
    {
        public IEnumerator<byte[]> GetEnumerator() { throw new NotSupportedException("GetEnumerator refused"); }
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() { return GetEnumerator(); }
    }

    static void TestClientStreamErrors()
    {
        EachStreamer((p, marker, rt) =>
        {
            Settle();
            int before = Native_LiveCallbacks();
            ProbeItems unlucky = new ProbeItems(WireU64Items(1, 2, 13, 4));
            PluginException pe = PluginErrorOf(() => p.CallStreaming(SSumChecked, Format.Wire, null, unlucky));
            Check(pe != null && pe.Status == Status.PluginError && pe.Code == "UNLUCKY" && pe.PluginMessage == "item 13",
                  rt + ": sum_checked(1, 2, 13, 4): PluginException UNLUCKY (" + (pe == null ? "none" : pe.Code + ": " + pe.PluginMessage) + ")");
            Check(unlucky.Disposed == 1, rt + ": its items disposed once");
            Check(BitConverter.ToUInt64(p.CallStreaming(SSumChecked, Format.Wire, null, WireU64Items(1, 2, 3)), 0) == 6, rt + ": sum_checked(1, 2, 3) = 6");

            // The items throw at their third: the plugin saw 1 + 2 and an end, but the call reports
            // the source's failure, with the exception inside.
            ProbeItems cursed = new ProbeItems(WireU64Items(1, 2, 3, 4)) { ThrowAt = 2 };
            FidiusException fe = Throws(() => p.CallStreaming(SSum, Format.Wire, WireU64(0), cursed));
            Check(fe != null && fe.Status == Status.StreamSource && !(fe is PluginException),
                  rt + ": throwing items: FidiusException(StreamSource) (" + (fe == null ? "none" : fe.Status + ": " + fe.Message) + ")");
            Check(fe != null && fe.InnerException != null && ReferenceEquals(fe.InnerException, cursed.Thrown),
                  rt + ": the items' exception is its InnerException (" + (fe == null || fe.InnerException == null ? "none" : fe.InnerException.GetType().Name) + ")");
            Check(fe != null && fe.Message.Contains("-1") && fe.Message.Contains("cursed"), rt + ": the message names the code and the exception: " + (fe == null ? "" : fe.Message));
            Check(cursed.Disposed == 1 && cursed.Pulled == 2, rt + ": disposed once after the failure");

            fe = Throws(() => p.CallStreaming(SSum, Format.Wire, WireU64(0), ThrowsOnEnumerate(false)));
            Check(fe != null && fe.Status == Status.StreamSource && fe.InnerException is UnauthorizedAccessException,
                  rt + ": an iterator throwing after an item: StreamSource, inner " + (fe == null || fe.InnerException == null ? "none" : fe.InnerException.GetType().Name));
            fe = Throws(() => p.CallStreaming(SSum, Format.Wire, WireU64(0), ThrowsOnEnumerate(true)));
            Check(fe != null && fe.Status == Status.StreamSource && fe.InnerException is UnauthorizedAccessException, rt + ": an iterator throwing at once");
            fe = Throws(() => p.CallStreaming(SSum, Format.Wire, WireU64(0), new NoEnumerator()));
            Check(fe != null && fe.Status == Status.StreamSource && fe.InnerException is NotSupportedException, rt + ": GetEnumerator throwing");
            ProbeItems nulls = new ProbeItems(WireU64Items(1)) { YieldNull = true };
            fe = Throws(() => p.CallStreaming(SSum, Format.Wire, WireU64(0), nulls));
            Check(fe != null && fe.Status == Status.StreamSource && fe.InnerException is InvalidOperationException && nulls.Disposed == 1,
                  rt + ": a null item fails the source (" + (fe == null || fe.InnerException == null ? "none" : fe.InnerException.Message) + ")");
            bool nullItems = false;
            try { p.CallStreaming(SSum, Format.Wire, WireU64(0), null); }
            catch (ArgumentNullException) { nullItems = true; }
            Check(nullItems, rt + ": CallStreaming without items: ArgumentNullException");

            // Items that are not the item type: the plugin's decoder ends its input there.
            List<byte[]> mixed = new List<byte[]> { WireU64(5), new byte[] { 1, 2, 3 }, WireU64(6) };
            Check(BitConverter.ToUInt64(p.CallStreaming(SSum, Format.Wire, WireU64(0), mixed), 0) == 5, rt + ": a malformed item ends the input");
            Check(Native_LiveCallbacks() == before, rt + ": no GCHandle left (" + (Native_LiveCallbacks() - before) + " live)");
        });
    }

    static void TestBidiStreams()
    {
        EachStreamer((p, marker, rt) =>
        {
            Settle();
            int before = Native_LiveCallbacks();
            int me = Thread.CurrentThread.ManagedThreadId;
            ProbeItems words = new ProbeItems(WireStringItems("hi", "yo", "", "fidius"));
            using (PluginStream s = p.StreamWire(SShout, WireString(">"), words))
            {
                Check(s.IsBidirectional, rt + ": a bidirectional stream");
                byte[] first;
                Check(s.TryNext(out first) && ReadWireString(first) == ">HI", rt + ": shout: >HI first");
                List<string> rest = Drain(s).ConvertAll(b => ReadWireString(b));
                Check(string.Join(",", rest) == ">YO,>,>FIDIUS", rt + ": then " + string.Join(",", rest));
                Check(words.Disposed == 1 && words.AllOn(me), rt + ": items disposed once at the end, pulled on the pulling thread");
            }
            Check(words.Disposed == 1, rt + ": Dispose after the end disposes nothing again");

            // Pulled on another thread than the one that opened it.
            List<byte[]> fifty = new List<byte[]>();
            for (int i = 0; i < 50; i++) fifty.Add(WireString("w" + i));
            ProbeItems moved = new ProbeItems(fifty) { OnPull = i => { if (i % 10 == 0) GC.Collect(); } };
            PluginStream ms = p.StreamWire(SShout, WireString("-"), moved);
            int got = 0, puller = 0;
            Thread t = new Thread(() => { puller = Thread.CurrentThread.ManagedThreadId; got = Drain(ms).Count; ms.Dispose(); });
            t.Start();
            t.Join();
            Check(got == 50 && moved.AllOn(puller) && moved.Disposed == 1, rt + ": moved to another thread: 50 items, pulled there (GCs between)");

            // Disposed early: the items are disposed with it.
            ProbeItems early = new ProbeItems(fifty);
            PluginStream es = p.StreamWire(SShout, WireString("-"), early);
            byte[] item;
            es.TryNext(out item);
            Check(early.Disposed == 0, rt + ": items alive while the stream is open");
            es.Dispose();
            Check(early.Disposed == 1, rt + ": Dispose disposes the items once");

            // Throwing items end the output with StreamSource, the exception inside.
            ProbeItems cursed = new ProbeItems(WireStringItems("a", "b", "c", "d", "e")) { ThrowAt = 2 };
            using (PluginStream cs = p.StreamWire(SShout, WireString(""), cursed))
            {
                List<string> items = new List<string>();
                FidiusException fe = null;
                try { foreach (byte[] b in cs) items.Add(ReadWireString(b)); }
                catch (FidiusException e) { fe = e; }
                Check(items.Count == 2 && fe != null && fe.Status == Status.StreamSource && ReferenceEquals(fe.InnerException, cursed.Thrown),
                      rt + ": throwing items: 2 items, then StreamSource with the exception (" + (fe == null ? "none" : fe.Message) + ")");
                Check(cs.Ended && Drain(cs).Count == 0 && cursed.Disposed == 1, rt + ": ended; items disposed once");
            }

            // Items that pull their own stream: refused, as the source's failure.
            PluginStream[] self = new PluginStream[1];
            ProbeItems reentrant = new ProbeItems(WireStringItems("x", "y")) { OnPull = i => { byte[] x; if (i == 1) self[0].TryNext(out x); } };
            using (self[0] = p.StreamWire(SShout, WireString(""), reentrant))
            {
                FidiusException fe = null;
                try { Drain(self[0]); }
                catch (FidiusException e) { fe = e; }
                Check(fe != null && fe.Status == Status.StreamSource && fe.InnerException is InvalidOperationException,
                      rt + ": items pulling their own stream: StreamSource, inner InvalidOperationException (" + (fe == null || fe.InnerException == null ? "none" : fe.InnerException.Message) + ")");
            }
            self[0] = null;
            Check(Native_LiveCallbacks() == before, rt + ": no GCHandle left (" + (Native_LiveCallbacks() - before) + " live)");
        });
    }

    static void TestStreamKinds()
    {
        string bare = BareStreamDir();
        string markers = TempDir();
        try
        {
            Settle();
            int before = Native_LiveCallbacks();
            using (Host host = BareHost(bare))
            using (Plugin native = host.Load("StreamerImpl"))
            using (Plugin typed = host.Load("StreamerImpl", new LoadOptions { Schema = StreamerWit }))
            using (Host wasmHost = NewHost())
            using (Plugin wasm = LoadWasmStreamer(wasmHost, markers))
            {
                FidiusException e = Throws(() => native.StreamJson(SPoints, "{\"n\": 3}").Dispose());
                Check(e != null && e.Status == Status.Unsupported, "native without a schema: JSON items are Unsupported");
                e = Throws(() => native.StreamWire(SAdd, WireI64Pair(1, 2)).Dispose());
                Check(e != null && e.Status == Status.Unsupported && e.Message.Contains("not a stream handle"), "native without a schema: a unary method is not a stream");
                foreach (KeyValuePair<string, Plugin> kv in new[] { new KeyValuePair<string, Plugin>("native with schema", typed), new KeyValuePair<string, Plugin>("wasm", wasm) })
                {
                    string rt = kv.Key;
                    Plugin p = kv.Value;
                    e = Throws(() => p.CallWire(SCount, CountInput(3, "")));
                    Check(e != null && e.Status == Status.Unsupported, rt + ": a stream called as a call: Unsupported");
                    e = Throws(() => p.StreamWire(SAdd, WireI64Pair(1, 2)).Dispose());
                    Check(e != null && e.Status == Status.Unsupported, rt + ": a call opened as a stream: Unsupported");
                    ProbeItems items = new ProbeItems(WireU64Items(1));
                    e = Throws(() => p.CallStreaming(SShout, Format.Wire, WireString("x"), items));
                    Check(e != null && e.Status == Status.Unsupported && items.Disposed == items.Enumerators,
                          rt + ": a bidirectional method as a client call: Unsupported (" + items.Enumerators + " enumerators, " + items.Disposed + " disposed)");
                    e = Throws(() => p.StreamWire(99, new byte[0], new ProbeItems(WireU64Items(1))).Dispose());
                    Check(e != null && e.Status == Status.MethodIndex, rt + ": method 99 (with items): MethodIndex");
                    e = Throws(() => p.StreamByName("no-such-stream", Format.Wire, new byte[0]).Dispose());
                    Check(e != null && e.Status == Status.MethodIndex, rt + ": StreamByName of an unknown name: MethodIndex");
                    using (PluginStream s = p.StreamByName("count", Format.Wire, CountInput(5, "")))
                        Check(IsRange(U64s(s), 5), rt + ": StreamByName(count)");
                }
                // A disposed plugin: the feed never reaches libfidius, and is released by the binding.
                Plugin gone = host.Load("StreamerImpl");
                gone.Dispose();
                ProbeItems unused = new ProbeItems(WireU64Items(1));
                bool threw = false;
                try { gone.StreamWire(SShout, WireString(""), unused); }
                catch (ObjectDisposedException) { threw = true; }
                bool threwCall = false;
                try { gone.CallStreaming(SSum, Format.Wire, WireU64(0), unused); }
                catch (ObjectDisposedException) { threwCall = true; }
                Check(threw && threwCall && unused.Enumerators == 0, "a disposed Plugin: ObjectDisposedException, the items untouched");
            }
            Check(Native_LiveCallbacks() == before, "refused and failed starts leave no GCHandle (" + (Native_LiveCallbacks() - before) + " live)");
        }
        finally
        {
            Directory.Delete(bare, true);
            Directory.Delete(markers, true);
        }
    }

    static void JsonStreams(Plugin p, string rt)
    {
        using (PluginStream s = p.StreamJson(SPoints, "{\"n\": 3}"))
        {
            List<Point> points = new List<Point>(s.As<Point>());
            Check(s.Format == Format.Json && points.Count == 3 && points[2].X == 2 && points[2].Y == -2 && points[2].Label == "p2",
                  rt + ": points(3) as JSON, read as Point: " + Json.Serialize(points));
        }
        using (PluginStream s = p.StreamJson(SPoints, "[2]"))
        {
            List<string> raw = Drain(s).ConvertAll(b => Encoding.UTF8.GetString(b).Replace(" ", ""));
            Check(raw.Count == 2 && raw[1] == "{\"x\":1,\"y\":-1,\"label\":\"p1\"}", rt + ": JSON items are JSON text: " + string.Join(" ", raw));
        }
        using (PluginStream s = p.InvokeStream("points", 2))
        {
            List<object> parsed = new List<object>(s.As<object>());
            Check(parsed.Count == 2 && (string)((IDictionary<string, object>)parsed[1])["label"] == "p1", rt + ": InvokeStream(points, 2).As<object>()");
        }
        using (PluginStream s = p.StreamByName("count", Format.Json, Encoding.UTF8.GetBytes("[4, \"\"]")))
        {
            List<ulong> items = new List<ulong>(s.As<ulong>());
            Check(IsRange(items, 4), rt + ": StreamByName(count, Json) [4, \"\"]: 0..3");
        }
        FidiusException e = Throws(() => p.StreamJson(SCount, "[\"four\", \"\"]").Dispose());
        Check(e != null && e.Status == Status.Serialization, rt + ": wrong argument types: Serialization before anything starts");
        Check(p.CallStreamingJson(SSum, "[10]", WireU64Items(2, 3)) == "15", rt + ": CallStreamingJson(sum, [10], 2, 3) = 15");
        Check(p.InvokeStreaming<ulong>("sum", WireU64Items(2, 3), 10UL) == 15, rt + ": InvokeStreaming<ulong>(sum, items, 10) = 15");
        PluginException pe = PluginErrorOf(() => p.InvokeStreaming<ulong>("sum_checked", WireU64Items(13)));
        Check(pe != null && pe.Code == "UNLUCKY", rt + ": InvokeStreaming(sum_checked, 13): UNLUCKY");
        using (PluginStream s = p.StreamJson(SShout, "{\"prefix\": \"+\"}", WireStringItems("a", "bc")))
        {
            List<string> words = new List<string>(s.As<string>());
            Check(s.IsBidirectional && string.Join(",", words) == "+A,+BC", rt + ": bidirectional JSON: " + string.Join(",", words));
        }
        using (PluginStream s = p.StreamWire(SCount, CountInput(1, "")))
        {
            bool refused = false;
            try { s.As<ulong>(); }
            catch (InvalidOperationException) { refused = true; }
            Check(refused, rt + ": As<T> on a wire stream: InvalidOperationException");
        }
    }

    static void TestJsonStreams()
    {
        string bare = BareStreamDir();
        string markers = TempDir();
        try
        {
            using (Host host = BareHost(bare))
            using (Plugin typed = host.Load("StreamerImpl", new LoadOptions { Schema = StreamerWit }))
                JsonStreams(typed, "native (LoadOptions.Schema)");
            using (Host host = NewHost())
            {
                using (Plugin sidecar = host.Load("StreamerImpl"))
                    JsonStreams(sidecar, "native (sidecar schema)");
                using (Plugin wasm = LoadWasmStreamer(host, markers))
                {
                    JsonStreams(wasm, "wasm");
                    IDictionary<string, object> count = null;
                    foreach (object m in (IList<object>)wasm.Describe()["methods"])
                        if ((string)((IDictionary<string, object>)m)["name"] == "count") count = (IDictionary<string, object>)m;
                    Check(count != null && (bool)count["streaming"] && (string)count["stream_item"] == "u64", "describe: count streams u64");
                }
            }
        }
        finally
        {
            Directory.Delete(bare, true);
            Directory.Delete(markers, true);
        }
    }

    static void TestStreamOutlivesPlugin()
    {
        string bare = BareStreamDir();
        string markers = TempDir();
        try
        {
            PluginStream native, wasm;
            using (Host host = BareHost(bare))
            using (Plugin p = host.Load("StreamerImpl"))
                native = p.StreamWire(SCount, CountInput(10, ""));
            using (Host host = NewHost())
            using (Plugin p = LoadWasmStreamer(host, markers))
                wasm = p.StreamWire(SShout, WireString("!"), WireStringItems("late"));
            Settle();
            using (native)
                Check(IsRange(U64s(native), 10), "native: a stream outlives its plugin and host");
            using (wasm)
            {
                List<byte[]> items = Drain(wasm);
                Check(items.Count == 1 && ReadWireString(items[0]) == "!LATE", "wasm: a bidirectional stream outlives its plugin and host");
            }
        }
        finally
        {
            Directory.Delete(bare, true);
            Directory.Delete(markers, true);
        }
    }

    // ------------------------------------------------------------ Python plugins
    //
    // The pycalc package (examples-c/build/python-plugins, beside the plugin directory; or
    // FIDIUS_PYTHON_PLUGIN_DIR): a runtime = "python" package run by libfidius in a python3 runner
    // process of its own. Interface Pycalc, in the order of its schema (pycalc.wit): add, greet
    // (a vendored requirement), echo (raw, reversed), divide (DIV_ZERO), count (a server stream),
    // total (a client stream of JSON items), crash (ValueError), spin (never returns), whoami.

    static string pythonDir;

    const uint PyAdd = 0, PyGreet = 1, PyEcho = 2, PyDivide = 3, PyCount = 4, PyTotal = 5, PyCrash = 6, PySpin = 7, PyWhoami = 8;

    static string PyFile(string name) { return Path.Combine(pythonDir, name); }

    static Host PythonHost(HostConfig config = null)
    {
        config = config ?? new HostConfig();
        config.SearchPaths.Add(pythonDir);
        return new Host(config);
    }

    /// <summary>Load options giving pycalc its interface schema: wire calls, raw echo, the schema's order.</summary>
    static LoadOptions PySchema()
    {
        return new LoadOptions { SchemaFile = PyFile("pycalc.wit") };
    }

    static List<byte[]> JsonItems(params string[] texts)
    {
        List<byte[]> items = new List<byte[]>();
        foreach (string t in texts) items.Add(Encoding.UTF8.GetBytes(t));
        return items;
    }

    static IEnumerable<byte[]> JsonItemsThenThrow()
    {
        yield return Encoding.UTF8.GetBytes("1");
        throw new InvalidOperationException("items broke");
    }

    static void TestPythonByName()
    {
        ulong hash = Convert.ToUInt64(File.ReadAllText(PyFile("pycalc.hash")).Trim(), 16);
        using (Host host = PythonHost())
        using (Plugin py = host.Load("pycalc"))
        {
            Check(py.Info.Name == "pycalc" && py.Info.Runtime == PluginRuntime.Python && py.Info.AbiVersion == 0,
                  "pycalc: a Python plugin (" + py.Info + ")");
            Check(py.Info.InterfaceHash == hash, string.Format("interface hash 0x{0:x16} is the module's __interface_hash__", py.Info.InterfaceHash));
            uint add = py.MethodIndex("add");
            Check(py.CallJson(add, "[2, 40]") == "42", "CallJson(add, [2, 40]) = 42");
            Check(py.CallJson(add, "{\"a\": 1, \"b\": 2}") == "3", "CallJson(add) with arguments by name");
            Check(py.Invoke<long>("add", 2, 40) == 42, "Invoke<long>(add, 2, 40) = 42");
            Check(py.Invoke<string>("greet", "Ada") == "Hello, Ada!", "Invoke<string>(greet, Ada): the vendored requirement");
            Check(py.CallJson(py.MethodIndex("greet"), "[\"Bo\"]") == "\"Hello, Bo!\"", "CallJson(greet, [Bo])");
            Check(py.Invoke<string>("whoami") == "module", "Invoke<string>(whoami) = module");
            Check(py.MethodName(add) == "add", "MethodName: the module's function names");
            // Without a schema the module's functions are the methods, and wire bytes need types.
            FidiusException e = Throws(() => py.CallWire(add, WireI64Pair(1, 2)));
            Check(e != null && e.Status == Status.Unsupported, "no schema: CallWire is Unsupported (" + (e == null ? "no error" : e.Message) + ")");
            e = Throws(() => py.MethodIndex("nope"));
            Check(e != null && e.Status == Status.MethodIndex, "MethodIndex(nope): MethodIndex");
            IDictionary<string, object> d = py.Describe();
            Check((string)d["runtime"] == "python" && d["types_from"] == null, "Describe: runtime python, no types");
        }
    }

    static void TestPythonSchema()
    {
        using (Host host = PythonHost())
        using (Plugin py = host.Load("pycalc", PySchema()))
        {
            Check(py.MethodIndex("add") == PyAdd && py.MethodIndex("whoami") == PyWhoami && py.MethodName(PyEcho) == "echo",
                  "the schema's method order");
            Check(BitConverter.ToInt64(py.CallWire(PyAdd, WireI64Pair(40, 2)), 0) == 42, "CallWire(add, 40, 2) = 42");
            Check(ReadWireString(py.CallWire(PyGreet, WireString("Bo"))) == "Hello, Bo!", "CallWire(greet, Bo)");
            byte[] echoed = py.CallWire(PyEcho, new byte[] { 1, 2, 3 });
            Check(echoed.Length == 3 && echoed[0] == 3 && echoed[1] == 2 && echoed[2] == 1, "raw echo: bytes as they are, reversed");
            Check(py.CallJson(PyEcho, "[[1, 2, 3]]").Replace(" ", "") == "[3,2,1]", "raw echo through JSON");
            Check(BitConverter.ToInt64(py.CallWire(PyDivide, WireI64Pair(9, 2)), 0) == 4, "CallWire(divide, 9, 2) = 4");
            Check(py.Invoke<long>("divide", 9, 2) == 4, "Invoke<long>(divide, 9, 2) = 4");
            // The result is checked against the declared type: i64 + i64 overflowing in Python.
            FidiusException e = Throws(() => py.CallWire(PyAdd, WireI64Pair(long.MaxValue, 1)));
            Check(e != null && e.Status == Status.Serialization, "add(i64 max, 1): Serialization (" + (e == null ? "no error" : e.Message) + ")");
            IDictionary<string, object> d = py.Describe();
            IList<object> methods = (IList<object>)d["methods"];
            Check((string)d["types_from"] == PyFile("pycalc.wit"), "Describe: types from pycalc.wit");
            Check((string)((IDictionary<string, object>)methods[(int)PyDivide])["result"] == "result<s64, plugin-error>" &&
                  (string)((IDictionary<string, object>)methods[(int)PyCount])["stream_item"] == "u64", "Describe: divide's result, count's items");
        }
    }

    static void TestPythonErrors()
    {
        using (Host host = PythonHost())
        using (Plugin py = host.Load("pycalc", PySchema()))
        {
            CheckDivZero(() => py.CallJson(PyDivide, "[7, 0]"), "python CallJson");
            CheckDivZero(() => py.Invoke<long>("divide", 7, 0), "python Invoke");
            CheckDivZero(() => py.CallWire(PyDivide, WireI64Pair(7, 0)), "python CallWire");
            PluginException pe = PluginErrorOf(() => py.CallJson(PyCrash, ""));
            Check(pe != null && pe.Status == Status.PluginError && pe.Code == "ValueError" && pe.PluginMessage == "boom",
                  "crash: ValueError, boom (" + (pe == null ? "no error" : pe.Code + ": " + pe.PluginMessage) + ")");
            object traceback = null;
            if (pe != null && pe.Details != null)
                ((IDictionary<string, object>)Json.Parse(pe.Details)).TryGetValue("traceback", out traceback);
            Check(traceback is string && ((string)traceback).Contains("pycalc_plugin.py") && ((string)traceback).Contains("ValueError"),
                  "crash: the traceback in the details");
            // Wrong arguments: with the schema, refused by its types; without, the module's TypeError.
            FidiusException e = Throws(() => py.CallJson(PyAdd, "[1]"));
            Check(e != null && !(e is PluginException) && e.Status == Status.Serialization,
                  "add(1) with the schema: Serialization (" + (e == null ? "no error" : e.Message) + ")");
            using (Plugin untyped = host.Load("pycalc"))
            {
                pe = PluginErrorOf(() => untyped.CallJson(untyped.MethodIndex("add"), "[1]"));
                Check(pe != null && pe.Code == "TypeError", "add(1) without a schema: the module's TypeError");
            }
            Check(py.CallJson(PyAdd, "[1, 1]") == "2", "the plugin serves on");
        }
    }

    static void TestPythonConfig()
    {
        using (Host host = PythonHost())
        {
            LoadOptions configured = PySchema();
            configured.Config = Encoding.UTF8.GetBytes("{\"name\": \"ada\"}");
            using (Plugin ada = host.Load("pycalc", configured))
            using (Plugin plain = host.Load("pycalc", PySchema()))
            {
                Check(ada.Invoke<string>("whoami") == "ada", "configured with {\"name\": \"ada\"}: whoami = ada");
                Check(ada.CallJson(PyAdd, "[2, 3]") == "5", "the configured instance adds");
                Check(plain.Invoke<string>("whoami") == "module", "instances are independent: whoami = module");
            }
            FidiusException e = Throws(() => host.Load("pycalc", new LoadOptions { Config = Encoding.UTF8.GetBytes("{\"nom\": 1}") }).Dispose());
            Check(e != null && e.Status == Status.ConfigRejected && e.Message.Contains("KeyError"),
                  "a config the module rejects: ConfigRejected (" + (e == null ? "loaded" : e.Message.Split('\n')[0]) + ")");
            e = Throws(() => host.Load("pycalc", new LoadOptions { Config = new byte[] { 0, 1 } }).Dispose());
            Check(e != null && e.Status == Status.InvalidArgument, "a config that is not JSON: InvalidArgument");
        }
    }

    static void TestPythonTimeout()
    {
        using (Host host = PythonHost())
        {
            LoadOptions options = PySchema();
            options.Timeout = TimeSpan.FromMilliseconds(500);
            using (Plugin py = host.Load("pycalc", options))
            {
                Stopwatch clock = Stopwatch.StartNew();
                FidiusException e = Throws(() => py.CallJson(PySpin, ""));
                clock.Stop();
                Check(e != null && e.Status == Status.Timeout, "spin with a 500 ms timeout: Timeout (" + (e == null ? "returned" : e.Message) + ")");
                Check(clock.Elapsed < TimeSpan.FromSeconds(20), "stopped in " + clock.ElapsedMilliseconds + " ms");
                Check(py.CallJson(PyAdd, "[20, 22]") == "42", "the next call works: a fresh runner");
                Check(py.Invoke<string>("greet", "again") == "Hello, again!", "and the one after");
                e = Throws(() => py.CallJson(PySpin, ""));
                Check(e != null && e.Status == Status.Timeout, "spin again: Timeout");
                Check(py.Invoke<long>("add", 1, 2) == 3, "served again");
            }
        }
    }

    static void TestPythonCancel()
    {
        using (Host host = PythonHost())
        using (Plugin py = host.Load("pycalc", PySchema()))
        {
            // A call's CancellationToken stops the runner wherever it is (no timeout set here).
            using (CancellationTokenSource cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300)))
            {
                Stopwatch clock = Stopwatch.StartNew();
                FidiusException e = Throws(() => py.CallJson(PySpin, "", cts.Token));
                Check(e != null && e.Status == Status.Cancelled && clock.Elapsed < TimeSpan.FromSeconds(20),
                      "spin cancelled after 300 ms: Cancelled in " + clock.ElapsedMilliseconds + " ms (" + (e == null ? "returned" : e.Message) + ")");
            }
            Check(py.Invoke<long>("add", 20, 22) == 42, "the next call works: a fresh runner");
            using (CancellationTokenSource cancelled = new CancellationTokenSource())
            {
                cancelled.Cancel();
                FidiusException e = Throws(() => py.CallJson(PyAdd, "[1, 2]", cancelled.Token));
                Check(e != null && e.Status == Status.Cancelled, "a token cancelled before the call: Cancelled");
            }
            // A stream cancelled from another thread while this one pulls. Cancelled mid-item, the
            // runner is stopped, so the plugin's other open stream ends too (with an error); if the
            // cancel lands between two items, the stream just ends and the runner lives on, so the
            // other stream delivers the rest of its items. Both are the header's contract; which one
            // happens is timing. Either way the next call works.
            using (PluginStream other = py.StreamJson(PyCount, "[10]"))
            using (PluginStream s = py.StreamJson(PyCount, "[100000000]"))
            {
                byte[] first;
                Check(other.TryNext(out first) && Encoding.UTF8.GetString(first) == "0", "another stream's first item");
                int count = 0;
                Thread canceller = new Thread(() => { Thread.Sleep(200); s.Cancel(); });
                canceller.Start();
                FidiusException e = PullUntilFailure(s, ref count);
                canceller.Join();
                Check(e != null && e.Status == Status.Cancelled && count > 0,
                      "Cancel from another thread: Cancelled after " + count + " items (" + (e == null ? "no error" : e.Message) + ")");
                int rest = 0;
                e = PullUntilFailure(other, ref rest);
                Check(other.Ended && (e != null || rest == 9),
                      "the plugin's other stream ended with the runner (" + (e == null ? "no error" : e.Status + ": " + e.Message) +
                      ") or, cancelled between items, delivered its 9 other items (" + rest + ")");
            }
            Check(py.CallJson(PyAdd, "[2, 2]") == "4", "a call after the cancelled stream");
        }
    }

    static void TestPythonStreams()
    {
        using (Host host = PythonHost())
        using (Plugin py = host.Load("pycalc", PySchema()))
        {
            using (PluginStream s = py.StreamJson(PyCount, "[4]"))
            {
                List<string> raw = Drain(s).ConvertAll(b => Encoding.UTF8.GetString(b));
                Check(s.Ended && string.Join(",", raw) == "0,1,2,3", "StreamJson(count, [4]): JSON items " + string.Join(",", raw));
            }
            using (PluginStream s = py.StreamWire(PyCount, WireU64(4)))
                Check(IsRange(U64s(s), 4), "StreamWire(count, 4): wire items 0..3");
            using (PluginStream s = py.InvokeStream("count", 5))
                Check(IsRange(new List<ulong>(s.As<ulong>()), 5), "InvokeStream(count, 5).As<ulong>(): 0..4");
            // Disposed early: the generator is dropped and the runner serves on.
            using (PluginStream s = py.StreamJson(PyCount, "[1000000]"))
            {
                byte[] first;
                Check(s.TryNext(out first) && Encoding.UTF8.GetString(first) == "0", "a long stream's first item");
            }
            Check(py.CallJson(PyAdd, "[1, 2]") == "3", "a call after a stream disposed early");

            // Client stream: Python plugins take JSON items, not wire bytes.
            Check(py.CallStreamingJson(PyTotal, "[]", JsonItems("3", "2", "1")) == "6", "CallStreamingJson(total, JSON items 3, 2, 1) = 6");
            Check(py.InvokeStreaming<ulong>("total", JsonItems("10", "20")) == 30, "InvokeStreaming<ulong>(total, 10, 20) = 30");
            Check(BitConverter.ToUInt64(py.CallStreaming(PyTotal, Format.Wire, new byte[0], JsonItems("4", "5")), 0) == 9,
                  "CallStreaming(total, Wire): JSON items, a wire result");
            Check(py.CallStreamingJson(PyTotal, "[]", JsonItems()) == "0", "no items: total 0");
            FidiusException e = Throws(() => py.CallStreamingJson(PyTotal, "[]", WireU64Items(1, 2)));
            Check(e != null && e.Status == Status.StreamSource && e.Message.Contains("JSON"),
                  "wire items: StreamSource, not JSON (" + (e == null ? "no error" : e.Message) + ")");
            e = Throws(() => py.CallStreamingJson(PyTotal, "[]", JsonItemsThenThrow()));
            Check(e != null && e.Status == Status.StreamSource && e.InnerException is InvalidOperationException,
                  "items that throw: StreamSource with the exception inside");
            Check(py.CallStreamingJson(PyTotal, "[]", JsonItems("1")) == "1", "the plugin serves on");
        }
        // A stream outlives its plugin and host.
        PluginStream late;
        using (Host host = PythonHost())
        using (Plugin py = host.Load("pycalc", PySchema()))
            late = py.StreamJson(PyCount, "[3]");
        Settle();
        using (late)
            Check(IsRange(new List<ulong>(late.As<ulong>()), 3), "a Python stream outlives its plugin and host");
    }

    static void TestPythonThreads()
    {
        using (Host host = PythonHost())
        using (Plugin py = host.Load("pycalc", PySchema()))
        {
            int errors = 0, calls = 0;
            Thread[] threads = new Thread[8];
            for (int t = 0; t < threads.Length; t++)
            {
                int g = t;
                threads[t] = new Thread(() =>
                {
                    for (int i = 0; i < 100; i++)
                    {
                        try
                        {
                            long got;
                            switch (i % 3)
                            {
                                case 0: got = BitConverter.ToInt64(py.CallWire(PyAdd, WireI64Pair(g, i)), 0); break;
                                case 1: got = long.Parse(py.CallJson(PyAdd, "[" + g + ", " + i + "]")); break;
                                default: got = py.Invoke<long>("add", g, i); break;
                            }
                            if (got != g + i) Interlocked.Increment(ref errors);
                            Interlocked.Increment(ref calls);
                        }
                        catch (Exception e)
                        {
                            Interlocked.Increment(ref errors);
                            Console.WriteLine("  thread " + g + ": " + e.Message);
                        }
                    }
                });
                threads[t].Start();
            }
            foreach (Thread t in threads) t.Join();
            Check(errors == 0 && calls == 800, "8 threads x 100 calls of add (wire, JSON, Invoke): " + calls + " right, " + errors + " wrong");
        }
    }

    static void TestPythonFid()
    {
        using (Host host = new Host(new HostConfig()))
        {
            using (Plugin py = host.LoadFid(PyFile("pycalc.fid")))
                Check(py.Info.Runtime == PluginRuntime.Python && py.Invoke<string>("greet", "Fid") == "Hello, Fid!", "LoadFid(pycalc.fid): greet");
            using (Plugin py = host.LoadFid(PyFile("pycalc.fid"), PySchema()))
                Check(BitConverter.ToInt64(py.CallWire(PyAdd, WireI64Pair(2, 3)), 0) == 5, "LoadFid with the schema: CallWire(add)");
        }
        using (Host host = PythonHost())
        {
            PluginInfo found = null;
            foreach (PluginInfo p in host.Discover().Plugins) if (p.Name == "pycalc") found = p;
            Check(found != null && found.Runtime == PluginRuntime.Python, "Discover lists pycalc as a Python plugin");
        }
    }

    static string OnPath(string command)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            string candidate = Path.Combine(dir.Length == 0 ? "." : dir, command);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    static void TestPythonInterpreter()
    {
        // A host whose interpreter does not exist: Python loads fail, naming it; native and WASM
        // plugins of the same host load and work (libfidius never loads libpython).
        HostConfig config = new HostConfig { PythonInterpreter = "/nonexistent/python3" };
        config.SearchPaths.Add(pluginDir);
        using (Host host = PythonHost(config))
        {
            FidiusException e = Throws(() => host.Load("pycalc").Dispose());
            Check(e != null && e.Status == Status.LibraryLoad && e.Message.Contains("/nonexistent/python3"),
                  "interpreter /nonexistent/python3: pycalc fails with LibraryLoad naming it (" + (e == null ? "loaded" : e.Message) + ")");
            e = Throws(() => host.LoadFid(PyFile("pycalc.fid")).Dispose());
            Check(e != null && e.Status == Status.LibraryLoad, "and so does pycalc.fid");
            using (Plugin basic = host.Load("BasicCalc"))
                Check(BitConverter.ToInt64(basic.CallWire(CalcAdd, WireI64Pair(1, 2)), 0) == 3, "the same host: native BasicCalc adds");
            using (Plugin calc = host.Load("calc"))
                Check(calc.CallJson(calc.MethodIndex("add"), "[1, 2]") == "3", "the same host: WASM calc adds");
        }
        // An interpreter named as a command (looked up on the PATH) or by its path.
        using (Host host = PythonHost(new HostConfig { PythonInterpreter = "python3" }))
        using (Plugin py = host.Load("pycalc"))
            Check(py.Invoke<long>("add", 1, 2) == 3, "interpreter python3 (a command on the PATH)");
        string path = OnPath("python3");
        if (path != null)
            using (Host host = PythonHost(new HostConfig { PythonInterpreter = path }))
            using (Plugin py = host.Load("pycalc"))
                Check(py.Invoke<long>("add", 2, 2) == 4, "interpreter " + path);
        // Empty: refused when the host is built.
        FidiusException empty = Throws(() => PythonHost(new HostConfig { PythonInterpreter = "" }).Dispose());
        Check(empty != null && empty.Status == Status.InvalidArgument, "an empty interpreter: InvalidArgument (" + (empty == null ? "built" : empty.Message) + ")");
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
        pythonDir = Environment.GetEnvironmentVariable("FIDIUS_PYTHON_PLUGIN_DIR") ??
                    Path.Combine(Path.GetDirectoryName(Path.GetFullPath(pluginDir).TrimEnd('/')), "python-plugins");
        Console.WriteLine("libfidius " + Library.Version + " from C#");
        Run("version", TestVersion);
        Run("version check", TestVersionCheck);
        Run("status names", TestStatusNames);
        Run("file refused", TestFileRefused);
        Run("compile cache", TestCompileCache);   // first to load a WASM plugin: see the test
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
        Run("socket enums", TestSocketEnums);
        Run("tcp sockets", TestSockets);
        Run("udp sockets", TestUdp);
        Run("sockets need the second key", TestSocketsNeedTheSecondKey);
        Run("response hook", TestResponseHook);
        Run("threads", TestThreads);
        Run("dispose", TestDispose);
        Run("interface schemas", TestSchemas);
        Run("JSON by name (native, schema)", TestTypedJson);
        Run("describe", TestDescribe);
        Run("Invoke", TestInvoke);
        Run("JSON writer and reader", TestJson);
        Run("cancellation", TestCancel);
        Run("output over 2 GiB", TestHugeOutput);
        Run("log registration failure", TestLogRegistrationFailure);
        Run("host functions", TestHostFunctions);
        Run("stream statuses", TestStreamStatuses);
        Run("server streams", TestServerStreams);
        Run("stream items over 100 KB", TestBigItems);
        Run("cancelling streams", TestCancelStreams);
        Run("PluginStream.Cancel", TestStreamCancel);
        Run("a stream failing midway", TestStreamFailure);
        Run("8 threads, a stream each", TestStreamThreads);
        Run("client streams", TestClientStreams);
        Run("client stream errors", TestClientStreamErrors);
        Run("bidirectional streams", TestBidiStreams);
        Run("stream kinds", TestStreamKinds);
        Run("JSON streams", TestJsonStreams);
        Run("streams outlive their plugin", TestStreamOutlivesPlugin);
        if (File.Exists(Path.Combine(pythonDir, "pycalc.fid")))
        {
            Run("Python plugin: JSON and Invoke by name", TestPythonByName);
            Run("Python plugin: with its schema", TestPythonSchema);
            Run("Python plugin: errors", TestPythonErrors);
            Run("Python plugin: a configured instance", TestPythonConfig);
            Run("Python plugin: timeout", TestPythonTimeout);
            Run("Python plugin: cancellation", TestPythonCancel);
            Run("Python plugin: streams", TestPythonStreams);
            Run("Python plugin: 8 threads", TestPythonThreads);
            Run("Python plugin: .fid and discovery", TestPythonFid);
            Run("Python interpreter setting", TestPythonInterpreter);
        }
        else
        {
            failed++;
            Console.WriteLine("  FAIL no Python plugins in " + pythonDir + " (make -C examples-c build/python-plugins)");
        }
        Run("library from the package", TestLibraryLocation);
        Console.WriteLine("csharp: {0} passed, {1} failed", passed, failed);
        // Main returns: the egress and log callbacks ran on threads libfidius started for them,
        // which have ended, so Mono has none to wait for (see README, "Mono and process exit").
        return failed == 0 ? 0 : 1;
    }
}
