//! The deny-all WASI sandbox and the capability allow-list that opens it.
//!
//! Every store gets WASI with a zero-grant context: no filesystem, no
//! environment, no arguments, closed stdio, no sockets. Each capability in
//! the package's `[wasm].capabilities` opens exactly one facet.

use std::net::{IpAddr, Ipv4Addr};

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::{WasiHttpCtxView, WasiHttpView};
use wasmtime_wasi_http::WasiHttpCtx;

use super::egress::{DenyAll, Denials, EgressHooks};

use crate::error::{fail, Result, Status};

/// What the manifest may ask for.
pub const ALLOWED: &str =
    "args, stdin, stdout, stderr, clocks, random, network (or sockets), http, env:NAME";

/// A parsed capability list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub args: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Sockets, with the SSRF floor on every address.
    pub network: bool,
    /// Outbound HTTP through the host's egress policy.
    pub http: bool,
    /// Host environment variables exposed one by one: (name, value when set at load).
    pub env: Vec<(String, Option<String>)>,
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
                other => {
                    let hint = if other.starts_with("fs") || other == "tcp" || other == "udp" {
                        " (fidius 0.5's filesystem and policy-gated tcp/udp capabilities are not supported by libfidius)"
                    } else {
                        ""
                    };
                    return fail(
                        Status::InvalidManifest,
                        format!("unknown capability \"{other}\"{hint}; allowed: {ALLOWED}"),
                    );
                }
            }
        }
        Ok(caps)
    }

    /// A fresh WASI context with exactly these grants.
    pub fn wasi_ctx(&self) -> WasiCtx {
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
        // Without `network`, the builder's default check denies every address.
        b.build()
    }
}

/// The SSRF floor: addresses a sandboxed plugin may never reach through
/// `network`, whatever they resolve from: loopback, link-local (including
/// the 169.254.169.254 metadata service), RFC 1918, unique-local,
/// unspecified, broadcast, and IPv4-mapped forms of those.
pub fn is_blocked_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return blocked_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xfe00) == 0xfc00 // unique-local fc00::/7
        }
    }
}

fn blocked_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_link_local() || ip.is_private() || ip.is_unspecified() || ip.is_broadcast()
}

/// What each store holds: WASI state, the egress hooks, the memory limiter.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: EgressHooks,
    pub(crate) limiter: MemoryLimiter,
}

impl StoreState {
    /// `egress`: the hooks for brokered HTTP, when wasi:http is linked.
    pub fn new(caps: &Capabilities, memory_limit: Option<usize>, egress: Option<EgressHooks>) -> Self {
        let hooks = egress.unwrap_or_else(|| EgressHooks {
            policy: Arc::new(DenyAll),
            plugin: String::new(),
            log: None,
            denials: Denials::default(),
        });
        StoreState {
            wasi: caps.wasi_ctx(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks,
            limiter: MemoryLimiter { limit: memory_limit },
        }
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
        write!(f, "memory limit of {} bytes exceeded (the plugin asked for {} bytes)", self.limit, self.desired)
    }
}

impl std::error::Error for MemoryLimitExceeded {}

pub struct MemoryLimiter {
    limit: Option<usize>,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        match self.limit {
            // Trap at once with our error rather than letting the guest see a
            // failed grow and abort with a less telling trap.
            Some(limit) if desired > limit => Err(wasmtime::Error::new(MemoryLimitExceeded { limit, desired })),
            _ => Ok(true),
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
    fn ssrf_floor() {
        for blocked in ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "0.0.0.0",
            "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3"]
        {
            assert!(is_blocked_ip(blocked.parse().unwrap()), "{blocked}");
        }
        for open in ["93.184.216.34", "100.64.0.1", "224.0.0.1", "2606:4700::1111", "64:ff9b::1", "fec0::1"] {
            assert!(!is_blocked_ip(open.parse().unwrap()), "{open}");
        }
    }

    #[test]
    fn capability_names() {
        let caps = Capabilities::parse(&["stdout".into(), "env:HOME".into(), "clocks".into()]).unwrap();
        assert!(caps.stdout && !caps.stdin && caps.env.len() == 1);
        for bad in ["env", "env:", "fs:ro:/tmp", "tcp", "filesystem", "gpu"] {
            let e = Capabilities::parse(&[bad.into()]).unwrap_err();
            assert_eq!(e.status, Status::InvalidManifest);
            assert!(e.message.contains("allowed"), "{}", e.message);
        }
    }
}
