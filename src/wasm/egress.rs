//! Brokered outbound HTTP: `wasi:http` requests of a sandboxed plugin go
//! through the embedder's egress policy, which sees every request, may
//! rewrite its headers (e.g. inject credentials the guest never sees), and
//! allows or denies it. A denied request is never dispatched; the guest sees
//! `HTTP-request-denied`, and the reason goes to the host.

use std::sync::{Arc, Mutex};

use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, OutgoingRequestConfig};
use wasmtime_wasi_http::p2::{default_send_request, HttpResult, WasiHttpHooks};

pub use http::request::Parts as RequestParts;

use crate::host::LogHook;

/// The embedder's decision on one request.
pub trait EgressPolicy: Send + Sync {
    /// Inspect (and possibly modify the headers of) a request made by
    /// `plugin`. `Err(reason)` denies it. Called on the thread that made the
    /// plugin call, possibly concurrently for several calls.
    fn authorize(&self, plugin: &str, request: &mut RequestParts) -> Result<(), String>;
}

/// Denials seen during one call, for its error message.
pub type Denials = Arc<Mutex<Vec<String>>>;

/// The `wasi:http` hooks of one store: every request goes through the policy.
pub struct EgressHooks {
    pub policy: Arc<dyn EgressPolicy>,
    pub plugin: String,
    pub log: Option<Arc<LogHook>>,
    pub denials: Denials,
}

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: hyper::Request<HyperOutgoingBody>,
        config: OutgoingRequestConfig,
    ) -> HttpResult<HostFutureIncomingResponse> {
        let (mut parts, body) = request.into_parts();
        let target = format!("{} {}", parts.method, parts.uri);
        // A panicking (Rust) policy denies rather than unwinding through wasmtime.
        let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.policy.authorize(&self.plugin, &mut parts)))
            .unwrap_or_else(|_| Err("the egress policy panicked".to_string()));
        match verdict {
            Ok(()) => Ok(default_send_request(hyper::Request::from_parts(parts, body), config)),
            Err(reason) => {
                let line = format!("egress denied for plugin {}: {target}: {reason}", self.plugin);
                if let Some(log) = &self.log {
                    log.log(crate::host::LogLevel::Warn, &line);
                }
                self.denials.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                Err(ErrorCode::HttpRequestDenied.into())
            }
        }
    }
}

/// Policies that deny everything: the hooks of stores without `http`
/// (never reached, since wasi:http is then not linked; kept fail-closed).
pub struct DenyAll;

impl EgressPolicy for DenyAll {
    fn authorize(&self, _plugin: &str, _request: &mut RequestParts) -> Result<(), String> {
        Err("no egress policy".into())
    }
}
