//! Driving a WASM call's future on the calling thread, and running host
//! code on that thread's own stack while the guest waits for it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

thread_local! {
    /// How many `drive` loops are running on this thread (they nest).
    static DRIVING: Cell<usize> = const { Cell::new(0) };
    /// Work a guest waits for, to run on this thread between polls.
    static JOBS: RefCell<Vec<Box<dyn FnOnce()>>> = const { RefCell::new(Vec::new()) };
}

/// Run a call's future on this thread. Most calls never wait on anything
/// (no host call blocks): one poll finishes them, without the cost of a
/// `block_on`; a call that does wait parks this thread between polls while
/// the I/O runtime's workers drive its timers and sockets. Parking, unlike
/// tokio's `block_on`, nests: a host function may call a plugin that waits
/// while the outer call is itself being driven on this thread. Between
/// polls it runs the jobs [`on_calling_thread`] queued.
#[inline(always)] // in the caller: its pinned future is then polled without a call layer
pub(super) fn drive<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark()
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark()
        }
    }
    let Some(runtime) = io_runtime() else {
        return wasmtime_wasi::runtime::in_tokio(future);
    };
    let _entered = runtime.enter();
    let _driving = Driving::enter();
    let mut future = std::pin::pin!(future);
    if let Poll::Ready(out) = future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return out;
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        // A job done answers the guest's wait: poll again at once.
        if !run_jobs() {
            std::thread::park();
        }
    }
}

/// Run the queued jobs; whether there were any.
fn run_jobs() -> bool {
    let jobs = JOBS.with(|j| std::mem::take(&mut *j.borrow_mut()));
    let any = !jobs.is_empty();
    for job in jobs {
        job();
    }
    any
}

struct Driving;

impl Driving {
    fn enter() -> Driving {
        DRIVING.with(|d| d.set(d.get() + 1));
        Driving
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        let outermost = DRIVING.with(|d| {
            d.set(d.get() - 1);
            d.get() == 0
        });
        if outermost {
            // Jobs of futures dropped before they ran (a call stopped at
            // its deadline) are no-ops now; don't keep them.
            JOBS.with(|j| j.borrow_mut().clear());
        }
    }
}

/// Run `job` on the thread driving this call, on its own stack, while the
/// guest waits: host code such as a C stream source then runs on the
/// caller's thread (as C hosts and managed runtimes expect), never on the
/// guest's fiber stack. Outside `drive` (no nesting runtime), it runs at once.
pub(super) fn on_calling_thread<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> impl Future<Output = T> + Send {
    OnCallingThread { job: Some(Box::new(job)), answer: Arc::new(Mutex::new(None)), dropped: Arc::new(AtomicBool::new(false)) }
}

type Job<T> = Box<dyn FnOnce() -> T + Send>;

struct OnCallingThread<T> {
    job: Option<Job<T>>,
    answer: Arc<Mutex<Option<T>>>,
    /// Set when the waiting future is dropped: its job, if still queued, does nothing.
    dropped: Arc<AtomicBool>,
}

impl<T: Send + 'static> Future for OnCallingThread<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        if let Some(job) = self.job.take() {
            if DRIVING.with(Cell::get) == 0 {
                return Poll::Ready(job());
            }
            let (answer, dropped) = (self.answer.clone(), self.dropped.clone());
            JOBS.with(|j| {
                j.borrow_mut().push(Box::new(move || {
                    if !dropped.load(Ordering::Acquire) {
                        let out = job();
                        *answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(out);
                    }
                }))
            });
            return Poll::Pending;
        }
        match self.answer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(out) => Poll::Ready(out),
            None => Poll::Pending,
        }
    }
}

impl<T> Drop for OnCallingThread<T> {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::Release);
    }
}

/// The runtime whose workers drive WASM calls' timers and I/O (None if its
/// threads could not be started: then wasmtime-wasi's runtime is used,
/// without nesting).
fn io_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("fidius-io")
                .enable_time()
                .enable_io()
                .build()
                .ok()
        })
        .as_ref()
}
