//! The runner process of a Python plugin: a `python3` child speaking
//! length-prefixed JSON frames over its stdin and stdout (`runner.py`), with
//! every exchange bounded by the call's deadline. A runner that misses its
//! deadline, breaks the protocol or dies is killed, never reused.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cancel::Cancel;
use crate::error::{fail, Error, Result, Status};
use crate::stream::Feed;

const RUNNER: &str = include_str!("runner.py");

/// The most a reply frame may carry: a plugin cannot make the host allocate more.
const MAX_FRAME: u32 = 256 << 20;

pub struct Runner {
    child: Child,
    /// The runner's stdin and stdout: one socket, so that writing to a
    /// runner that died is an error (MSG_NOSIGNAL), never a SIGPIPE that
    /// would kill the host process.
    socket: UnixStream,
    /// The socket's current read and write timeout.
    armed: Option<Duration>,
}

/// What bounds one exchange.
struct Limits<'a> {
    deadline: Option<Instant>,
    cancel: Option<&'a Cancel>,
}

/// A reply: its JSON, and the bytes of a raw method's result.
pub struct Reply {
    pub message: Value,
    pub data: Vec<u8>,
}

/// One reply frame: `u32_le(JSON length) u32_le(bytes length) JSON bytes`,
/// read with `read_exact`. Neither part may exceed [`MAX_FRAME`], which is
/// checked before anything is allocated.
pub(super) fn read_reply(mut read_exact: impl FnMut(&mut [u8]) -> Result<()>) -> Result<Reply> {
    let mut header = [0u8; 8];
    read_exact(&mut header)?;
    let json_len = u32::from_le_bytes(header[..4].try_into().unwrap());
    let bin_len = u32::from_le_bytes(header[4..].try_into().unwrap());
    if json_len > MAX_FRAME || bin_len > MAX_FRAME {
        return fail(Status::Serialization, format!("the Python runner sent a {}-byte reply, more than the limit", json_len as u64 + bin_len as u64));
    }
    let mut text = vec![0u8; json_len as usize];
    read_exact(&mut text)?;
    let mut data = vec![0u8; bin_len as usize];
    read_exact(&mut data)?;
    let message = serde_json::from_slice(&text)
        .map_err(|e| Error::new(Status::Serialization, format!("the Python runner sent a reply that is not JSON: {e}")))?;
    Ok(Reply { message, data })
}

impl Runner {
    /// Start `interpreter` on the runner script. `memory_limit` caps the
    /// process's address space (RLIMIT_AS).
    pub fn spawn(interpreter: &Path, memory_limit: Option<usize>) -> Result<Runner> {
        let (socket, theirs) = UnixStream::pair().map_err(|e| Error::new(Status::Io, format!("cannot make the Python runner's socket: {e}")))?;
        let theirs_out = theirs.try_clone().map_err(|e| Error::new(Status::Io, format!("cannot make the Python runner's socket: {e}")))?;
        let mut command = Command::new(interpreter);
        // -I: no PYTHON* variables, no user site, no current directory on sys.path.
        command
            .arg("-I")
            .arg("-c")
            .arg(RUNNER)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::from(OwnedFd::from(theirs_out)))
.stderr(Stdio::inherit());
        {
            // A process group of its own: the host's terminal (Ctrl-C) signals
            // the host, which decides what happens to its plugins.
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        if let Some(limit) = memory_limit {
            use std::os::unix::process::CommandExt;
            let limit = limit as libc::rlim_t;
            // Runs in the child between fork and exec: only async-signal-safe calls.
            unsafe {
                command.pre_exec(move || {
                    let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                    if libc::setrlimit(libc::RLIMIT_AS, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command.spawn().map_err(|e| {
            Error::new(
                Status::LibraryLoad,
                format!(
                    "cannot start the Python interpreter {} ({e}): Python plugins need python3 \
                     (fidius_host_builder_set_python_interpreter names another)",
                    interpreter.display()
                ),
            )
        })?;
        drop(command); // our copies of the runner's end
        Ok(Runner { child, socket, armed: None })
    }

    /// Send one request and read its reply, answering the runner's pulls of
    /// the host-fed stream from `feed` (on this thread) meanwhile. The
    /// runner has `timeout` to answer, counted afresh after each pull: the
    /// time the host's own source takes is not the plugin's.
    /// `cancel`, once triggered, stops the wait (and so this runner).
    pub fn exchange(
        &mut self,
        request: &Value,
        data: &[u8],
        timeout: Option<Duration>,
        feed: Option<&Feed>,
        cancel: Option<&Cancel>,
    ) -> Result<Reply> {
        let mut limits = Limits { deadline: timeout.map(|t| Instant::now() + t), cancel };
        self.send(request, data, &limits)?;
        loop {
            let reply = self.receive(&limits)?;
            if reply.message.get("pull").is_none() {
                return Ok(reply);
            }
            let answer = match feed.map(Feed::pull) {
                Some(Some(item)) => {
                    // Python plugins take JSON items (fidius-python's convention).
                    match serde_json::from_slice::<Value>(&item) {
                        Ok(value) => serde_json::json!({ "item": value }),
                        Err(e) => {
                            return fail(
                                Status::StreamSource,
                                format!("a stream item for a Python plugin is not JSON ({e}): Python plugins take JSON items"),
                            )
                        }
                    }
                }
                _ => serde_json::json!({ "end": true }),
            };
            limits.deadline = timeout.map(|t| Instant::now() + t);
            self.send(&answer, &[], &limits)?;
        }
    }

    fn send(&mut self, message: &Value, data: &[u8], limits: &Limits<'_>) -> Result<()> {
        let text = serde_json::to_vec(message).expect("JSON values serialize");
        let mut frame = Vec::with_capacity(8 + text.len() + data.len());
        frame.extend_from_slice(&(text.len() as u32).to_le_bytes());
        frame.extend_from_slice(&(data.len() as u32).to_le_bytes());
        frame.extend_from_slice(&text);
        frame.extend_from_slice(data);
        let fd = self.socket.as_raw_fd();
        let mut written = 0;
        while written < frame.len() {
            self.arm(limits)?;
            let rest = &frame[written..];
            let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
            match n {
                n if n > 0 => written += n as usize,
                0 => return fail(Status::Trap, "the Python runner closed its input"),
                _ => {
                    let e = std::io::Error::last_os_error();
                    if !waiting(&e) {
                        return fail(Status::Trap, format!("the Python runner is gone ({e})"));
                    }
                }
            }
        }
        Ok(())
    }

    fn receive(&mut self, limits: &Limits<'_>) -> Result<Reply> {
        read_reply(|buf| self.read_exact(buf, limits))
    }

    fn read_exact(&mut self, buf: &mut [u8], limits: &Limits<'_>) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            self.arm(limits)?;
            match (&self.socket).read(&mut buf[got..]) {
                Ok(0) => {
                    let status = self.child.try_wait().ok().flatten();
                    return fail(
                        Status::Trap,
                        match status {
                            Some(s) => format!("the Python runner exited ({s})"),
                            None => "the Python runner closed its output".to_string(),
                        },
                    );
                }
                Ok(n) => got += n,
                Err(e) if waiting(&e) => {}
                Err(e) => return fail(Status::Trap, format!("reading from the Python runner failed ({e})")),
            }
        }
        Ok(())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Killed, not asked: a runner may be stuck in plugin code.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How often a wait looks at its cancel token.
const CANCEL_CHECK: Duration = Duration::from_millis(20);

impl Runner {
    /// Before a blocking read or write: fail at the deadline or once
    /// cancelled; otherwise bound the wait by the socket's own timeout (the
    /// time left, in slices when a cancel token is watched). Blocking
    /// reads rather than poll(2): measured here, poll before each read
    /// added ~24 µs to a round trip between processes on a 2-vCPU VM.
    fn arm(&mut self, limits: &Limits<'_>) -> Result<()> {
        if limits.cancel.is_some_and(Cancel::is_triggered) {
            return fail(Status::Cancelled, "cancelled (the Python runner was stopped)");
        }
        let left = match limits.deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return fail(Status::Timeout, "the Python plugin ran past its timeout (its runner was stopped)");
                }
                Some(left)
            }
        };
        let wait = match (left, limits.cancel.is_some()) {
            (None, false) => None,
            (None, true) => Some(CANCEL_CHECK),
            (Some(left), watched) => Some(if watched { left.min(CANCEL_CHECK) } else { left }),
        };
        if wait != self.armed {
            let io = |e: std::io::Error| Error::new(Status::Trap, format!("cannot set the Python runner's socket timeout: {e}"));
            self.socket.set_read_timeout(wait).map_err(io)?;
            self.socket.set_write_timeout(wait).map_err(io)?;
            self.armed = wait;
        }
        Ok(())
    }
}

/// A read or write that ended without data because its wait ran out (or a
/// signal came): look at the deadline and the token again.
fn waiting(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}
