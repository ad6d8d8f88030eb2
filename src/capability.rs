//! The embedder's last word on capabilities: which of the capabilities a
//! package asks for (`[wasm].capabilities`) a host lets it have. Runtime
//! neutral: every package runtime checks its list here before granting it.

use crate::error::{fail, Result, Status};

/// Capabilities a package never gets unless the host allows them by name:
/// they hand it host secrets (`env:*`), the host's command line (`args`),
/// raw sockets (`network`) or host directories (`fs:*`). (`http`, `tcp` and
/// `udp` are allowed by default because they open nothing by themselves:
/// their second key is the host's egress policy.)
pub const NOT_BY_DEFAULT: &str = "env:*, args, network, fs:*";

/// The pattern that stands for the default allowance, so an allow-list can
/// extend it: `@default` and `env:LOG_*`.
pub const DEFAULT_PATTERN: &str = "@default";

/// Which capabilities a host allows packages to have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapabilityPolicy {
    /// None: the default (everything but [`NOT_BY_DEFAULT`]). Some: only
    /// what one of these patterns matches (`*` matches any run of characters).
    allowed: Option<Vec<String>>,
}

impl CapabilityPolicy {
    /// Allow capabilities matching `pattern` (e.g. `stdout`, `env:LOG_*`,
    /// `http`, `*`). The first pattern replaces the default: from then on
    /// only what a pattern matches is allowed.
    pub fn allow(&mut self, pattern: &str) -> Result<()> {
        if pattern.is_empty() {
            return fail(Status::InvalidArgument, "a capability pattern may not be empty");
        }
        self.allowed.get_or_insert_with(Vec::new).push(pattern.to_string());
        Ok(())
    }

    /// Whether the host allows this one capability.
    pub fn allows(&self, capability: &str) -> bool {
        // `sockets` is fidius' other name for `network`.
        let canonical = if capability == "sockets" { "network" } else { capability };
        let by_default = !(canonical.starts_with("env:")
            || canonical == "env"
            || canonical == "args"
            || canonical == "network"
            || canonical.starts_with("fs"));
        match &self.allowed {
            None => by_default,
            Some(patterns) => patterns
                .iter()
                .any(|p| (p == DEFAULT_PATTERN && by_default) || glob(p, canonical) || glob(p, capability)),
        }
    }

    /// Check a package's list: every capability in it must be allowed.
    pub fn check(&self, package: &str, requested: &[String]) -> Result<()> {
        let refused: Vec<&str> = requested.iter().map(String::as_str).filter(|c| !self.allows(c)).collect();
        if refused.is_empty() {
            return Ok(());
        }
        let allowed = match &self.allowed {
            None => format!("by default everything but {NOT_BY_DEFAULT}"),
            Some(patterns) => patterns.join(", "),
        };
        fail(
            Status::Capability,
            format!(
                "package {package} asks for {}, which the host does not allow (allowed: {allowed}); \
                 allow it with fidius_host_builder_allow_capability, or grant capabilities for this \
                 load with fidius_load_options_set_grants",
                refused.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
            ),
        )
    }
}

/// `*` matches any run of characters (none included); everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_refuses_secrets_args_and_sockets() {
        let p = CapabilityPolicy::default();
        for yes in ["stdout", "stderr", "stdin", "clocks", "random", "http", "tcp", "udp"] {
            assert!(p.allows(yes), "{yes}");
        }
        for no in ["env:AWS_SECRET_ACCESS_KEY", "args", "network", "sockets", "fs:ro:/", "fs:rw:/home"] {
            assert!(!p.allows(no), "{no}");
        }
        let e = p.check("calc", &["stdout".into(), "env:HOME".into()]).unwrap_err();
        assert_eq!(e.status, Status::Capability);
        assert!(e.message.contains("\"env:HOME\"") && !e.message.contains("\"stdout\""), "{}", e.message);
    }

    #[test]
    fn patterns_replace_the_default() {
        let mut p = CapabilityPolicy::default();
        p.allow("env:LOG_*").unwrap();
        p.allow("network").unwrap();
        assert!(p.allows("env:LOG_LEVEL") && p.allows("env:LOG_") && p.allows("sockets") && p.allows("network"));
        assert!(!p.allows("env:LOGX") && !p.allows("stdout") && !p.allows("env:AWS_KEY"));
        let mut all = CapabilityPolicy::default();
        all.allow("*").unwrap();
        assert!(all.allows("args") && all.allows("env:X"));
        assert!(glob("a*b*c", "aXbYc") && glob("a*b*c", "abc") && !glob("a*b*c", "acb") && !glob("ab", "abc"));
        assert!(p.allow("").is_err());
        let mut extended = CapabilityPolicy::default();
        extended.allow(DEFAULT_PATTERN).unwrap();
        extended.allow("env:LOG_*").unwrap();
        assert!(extended.allows("stdout") && extended.allows("http") && extended.allows("env:LOG_LEVEL"));
        assert!(!extended.allows("env:SECRET") && !extended.allows("args") && !extended.allows("network"));
    }
}
