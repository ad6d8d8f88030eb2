//! The deny-all WASI sandbox and the capability allow-list that opens it.
//!
//! Every store gets WASI with a zero-grant context: no filesystem, no
//! environment, no arguments, closed stdio, no sockets. Each capability in
//! the package's `[wasm].capabilities` opens exactly one facet.

use std::sync::Arc;

use wasmtime::UpdateDeadline;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::{WasiHttpCtxView, WasiHttpView};
use wasmtime_wasi_http::WasiHttpCtx;

use super::egress::EgressHooks;
use super::sockets::{Lookup, LookupView, SocketGate};
use crate::egress::DenyAll;
use crate::cancel::{Cancel, Cancelled};
use crate::host_fn::HostInterfaces;

use crate::error::{fail, Result, Status};

/// What the manifest may ask for.
pub const ALLOWED: &str =
    "args, stdin, stdout, stderr, clocks, random, network (or sockets), tcp, udp, http, env:NAME, fs:ro:/PATH, fs:rw:/PATH";

/// A parsed capability list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub args: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Sockets, with the SSRF floor on every address.
    pub network: bool,
    /// Outbound TCP connects, each decided by the host's egress policy.
    pub tcp: bool,
    /// UDP, each bind and send decided by the host's egress policy.
    pub udp: bool,
    /// Outbound HTTP through the host's egress policy.
    pub http: bool,
    /// Host environment variables exposed one by one: (name, value when set at load).
    pub env: Vec<(String, Option<String>)>,
    /// Host directories preopened at the same path in the guest.
    pub dirs: Vec<Preopen>,
}

/// `fs:ro:<path>` or `fs:rw:<path>`: one host directory, at the same path in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    pub path: std::path::PathBuf,
    pub writable: bool,
}

impl Capabilities {
    pub fn parse(list: &[String]) -> Result<Capabilities> {
        let mut caps = Capabilities::default();
        for cap in list {
            match cap.as_str() {
                "args" => caps.args = true,
                "stdin" => caps.stdin = true,
                "stdout" => caps.stdout = true,
                "stderr" => caps.stderr = true,
                // Always available in WASI; accepted as statements of intent.
                "clocks" | "random" => {}
                "network" | "sockets" => caps.network = true,
                "http" => caps.http = true,
                "tcp" => caps.tcp = true,
                "udp" => caps.udp = true,
                "env" | "env:" => {
                    return fail(
                        Status::InvalidManifest,
                        format!("capability \"{cap}\" must name one variable: env:NAME (allowed: {ALLOWED})"),
                    )
                }
                other if other.starts_with("env:") => {
                    let name = &other[4..];
                    caps.env.push((name.to_string(), std::env::var(name).ok()));
                }
                other if other == "fs" || other == "filesystem" || other.starts_with("fs:") => {
                    caps.dirs.push(Preopen::parse(other)?);
                }
                other => {
                    return fail(Status::InvalidManifest, format!("unknown capability \"{other}\"; allowed: {ALLOWED}"));
                }
            }
        }
        // As upstream: the per-peer policy tier and the floor-only tier
        // cannot both decide on one store's sockets.
        if (caps.tcp || caps.udp) && caps.network {
            return fail(
                Status::InvalidManifest,
                "capabilities \"tcp\"/\"udp\" (each peer decided by the host's egress policy) and \"network\"/\"sockets\" \
                 (any public peer) are mutually exclusive",
            );
        }
        Ok(caps)
    }

    /// A fresh WASI context with exactly these grants; `sockets` decides
    /// on the sockets of `tcp`/`udp` (without it they stay closed).
    pub fn wasi_ctx(&self, sockets: Option<&Arc<SocketGate>>) -> WasiCtx {
        let mut b = WasiCtxBuilder::new();
        if self.args {
            b.inherit_args();
        }
        if self.stdin {
            b.inherit_stdin();
        }
        if self.stdout {
            b.inherit_stdout();
        }
        if self.stderr {
            b.inherit_stderr();
        }
        for (name, value) in &self.env {
            if let Some(value) = value {
                b.env(name, value);
            }
        }
        if self.network {
            b.allow_ip_name_lookup(true);
            b.socket_addr_check(|addr, _use| {
                let allowed = !is_blocked_ip(addr.ip());
                Box::pin(async move { allowed })
            });
        }
        if let Some(gate) = sockets.filter(|_| self.tcp || self.udp) {
            gate.install(&mut b);
        }
        // Otherwise the builder's default check denies every address.
        for dir in &self.dirs {
            // A directory that cannot be opened without following a link
            // (missing, or swapped for a symlink since the load) is not
            // preopened: the guest finds nothing there.
            let _ = dir.preopen(&mut b);
        }
        b.build()
    }

    /// What a load should warn about: preopened directories that do not exist.
    pub fn warnings(&self) -> Vec<String> {
        self.dirs
            .iter()
            .filter_map(|d| {
                d.open().err().map(|e| format!("{}: not preopened ({e})", d.capability()))
            })
            .collect()
    }
}

impl Preopen {
    fn parse(cap: &str) -> Result<Preopen> {
        let bad = |why: &str| {
            fail(
                Status::InvalidManifest,
                format!("capability \"{cap}\" {why}: fs:ro:/PATH or fs:rw:/PATH (allowed: {ALLOWED})"),
            )
        };
        let (writable, path) = match (cap.strip_prefix("fs:ro:"), cap.strip_prefix("fs:rw:")) {
            (Some(p), _) => (false, p),
            (_, Some(p)) => (true, p),
            _ => return bad("must say read-only or read-write and name a directory"),
        };
        if path.is_empty() {
            return bad("names no directory");
        }
        // Only plain absolute paths: what an allow-list pattern matched is
        // then the directory granted (no "/data/../etc", no cwd-relative path).
        let plain = path.starts_with('/')
            && (path == "/" || !path.ends_with('/'))
            && path[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..")
            || path == "/";
        if !plain {
            return bad("must name an absolute path without \".\", \"..\", \"//\" or a final \"/\"");
        }
        Ok(Preopen { path: path.into(), writable })
    }

    fn capability(&self) -> String {
        format!("fs:{}:{}", if self.writable { "rw" } else { "ro" }, self.path.display())
    }

    /// Open the directory without following a symbolic link anywhere on its
    /// path, one component at a time.
    fn open(&self) -> std::io::Result<std::fs::File> {
        use std::os::fd::FromRawFd;
        let flags = libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_RDONLY;
        let root = unsafe { libc::open(c"/".as_ptr(), flags) };
        if root < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut dir = unsafe { std::fs::File::from_raw_fd(root) };
        for component in self.path.iter().skip(1) {
            let name = std::ffi::CString::new(component.as_encoded_bytes())
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
            let fd = unsafe { libc::openat(std::os::fd::AsRawFd::as_raw_fd(&dir), name.as_ptr(), flags) };
            if fd < 0 {
                let e = std::io::Error::last_os_error();
                return Err(match e.raw_os_error() {
                    Some(libc::ELOOP) | Some(libc::ENOTDIR) => std::io::Error::new(
                        e.kind(),
                        format!("{} is a symbolic link or not a directory", component.to_string_lossy()),
                    ),
                    _ => e,
                });
            }
            dir = unsafe { std::fs::File::from_raw_fd(fd) };
        }
        Ok(dir)
    }

    /// Preopen the directory just opened, by its descriptor, so what the
    /// guest gets is the directory checked, whatever the path names by now.
    fn preopen(&self, b: &mut WasiCtxBuilder) -> std::result::Result<(), String> {
        use wasmtime_wasi::{DirPerms, FilePerms};
        let dir = self.open().map_err(|e| e.to_string())?;
        let by_fd = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&dir));
        let (dirs, files) =
            if self.writable { (DirPerms::all(), FilePerms::all()) } else { (DirPerms::READ, FilePerms::READ) };
        b.preopened_dir(by_fd, self.path.to_string_lossy(), dirs, files).map_err(|e| e.to_string())?;
        Ok(())
    }
}

pub use crate::net::is_blocked_ip;

/// One call's (or stream item's) limits, kept in its store while it runs.
#[derive(Clone, Default)]
pub(crate) struct Budget {
    pub(crate) deadline: Option<std::time::Instant>,
    pub(crate) cancel: Option<Arc<Cancel>>,
}

impl Budget {
    /// The store's epoch callback, at every tick while a budgeted call runs:
    /// trap a cancelled call or one past its deadline.
    pub(crate) fn check(&self) -> wasmtime::Result<UpdateDeadline> {
        if self.cancel.as_ref().is_some_and(|c| c.is_triggered()) {
            return Err(wasmtime::Error::new(Cancelled));
        }
        if self.deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Err(wasmtime::Trap::Interrupt.into());
        }
        Ok(UpdateDeadline::Continue(1))
    }
}

/// What each store holds: WASI state, the egress hooks, the memory limiter.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: EgressHooks,
    pub(crate) limiter: MemoryLimiter,
    /// What the `fidius:host-call` import dispatches to. Shared (cheap to
    /// clone per call, so no lock is held while a host function runs).
    pub(crate) host_interfaces: Arc<HostInterfaces>,
    /// What the guest's name lookups do.
    lookup: Lookup,
    /// The host's items for the guest's `Stream<T>` argument, during a
    /// client-streaming call or for a bidirectional stream's life.
    pub(crate) feed: Option<Arc<crate::stream::Feed>>,
    /// The running call's deadline and cancel token.
    pub(crate) budget: Budget,
}

impl StoreState {
    /// `egress`: the hooks for brokered HTTP, when wasi:http is linked;
    /// `sockets`: the decisions on `tcp`/`udp` sockets, when granted.
    pub fn new(
        caps: &Capabilities,
        memory_limit: Option<usize>,
        egress: Option<EgressHooks>,
        sockets: Option<Arc<SocketGate>>,
        host_interfaces: Arc<HostInterfaces>,
    ) -> Self {
        let hooks = egress.unwrap_or_else(|| EgressHooks {
            policy: Arc::new(DenyAll),
            plugin: String::new(),
            log: None,
            // One list per store: socket refusals join the call's error too.
            denials: sockets.as_ref().map(|g| g.denials.clone()).unwrap_or_default(),
        });
        let wasi = caps.wasi_ctx(sockets.as_ref());
        let lookup = match sockets {
            Some(gate) if caps.tcp || caps.udp => Lookup::Gated(gate),
            _ if caps.network => Lookup::Open,
            _ => Lookup::Closed,
        };
        StoreState {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks,
            limiter: MemoryLimiter { limit: memory_limit, total: 0 },
            host_interfaces,
            lookup,
            feed: None,
            budget: Budget::default(),
        }
    }

    pub(crate) fn lookup_view(&mut self) -> LookupView<'_> {
        LookupView { table: &mut self.table, lookup: &self.lookup }
    }

    /// Requests the egress policy denied in this store so far.
    pub fn denials(&self) -> Vec<String> {
        std::mem::take(&mut *self.hooks.denials.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// The error a store's memory limiter raises, so the call can report
/// `FIDIUS_STATUS_MEMORY_LIMIT` instead of a generic trap.
#[derive(Debug)]
pub struct MemoryLimitExceeded {
    pub limit: usize,
    pub desired: usize,
}

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "memory limit of {} bytes exceeded (the plugin asked for {} bytes of linear memory in all)", self.limit, self.desired)
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// Bounds an instance's linear memory in total: a component holds several
/// core instances, each with memories of its own, so a per-memory bound
/// would let it take the limit once per memory.
pub struct MemoryLimiter {
    limit: Option<usize>,
    /// Bytes of linear memory the instance holds, all memories together.
    total: usize,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Called for every memory's initial allocation too (current = 0).
        let total = self.total.saturating_add(desired.saturating_sub(current));
        match self.limit {
            // Trap at once with our error rather than letting the guest see a
            // failed grow and abort with a less telling trap.
            Some(limit) if total > limit => Err(wasmtime::Error::new(MemoryLimitExceeded { limit, desired: total })),
            _ => {
                self.total = total;
                Ok(true)
            }
        }
    }


    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names() {
        let caps = Capabilities::parse(&["stdout".into(), "env:HOME".into(), "clocks".into()]).unwrap();
        assert!(caps.stdout && !caps.stdin && caps.env.len() == 1);
        let caps = Capabilities::parse(&["fs:ro:/tmp".into(), "fs:rw:/".into()]).unwrap();
        assert_eq!(caps.dirs, vec![Preopen { path: "/tmp".into(), writable: false }, Preopen { path: "/".into(), writable: true }]);
        for bad in [
            "env", "env:", "filesystem", "fs", "fs:", "fs:ro:", "fs:rw", "fs:xx:/tmp", "fs:ro:tmp", "fs:ro:./tmp",
            "fs:ro:/tmp/../etc", "fs:ro:/tmp/./x", "fs:ro://tmp", "fs:ro:/tmp/", "gpu",
        ] {
            let e = Capabilities::parse(&[bad.into()]).unwrap_err();
            assert_eq!(e.status, Status::InvalidManifest);
            assert!(e.message.contains("allowed"), "{}", e.message);
        }
    }
}
