//! The runtime the blocking client runs its connections on, and a `block_on` that works from any
//! thread, including one inside another tokio runtime (where tokio's own would panic).

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::Error;

/// One small multi-threaded runtime shared by every blocking client in the process: thousands of
/// connections, no thread per client.
///
/// One worker per four cores, at least one. A connection's task does little per message (the
/// application's work happens on its own threads), so one worker carries hundreds of thousands
/// of messages a second; and every idle worker costs each message a futex round: a task woken
/// from outside the runtime (an emit from the application's thread) wakes a parked worker,
/// which wakes the one holding the IO driver, and so on. With two workers on two cores a
/// sequential round trip took 65–72 µs of CPU, with one 47–57 µs, and bursts moved no faster.
pub(crate) fn shared() -> Result<tokio::runtime::Handle, Error> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        let cores = thread::available_parallelism().map_or(1, usize::from);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads((cores / 4).max(1))
            .thread_name("sio-client")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match runtime {
        Ok(runtime) => Ok(runtime.handle().clone()),
        Err(e) => Err(Error::transport(
            crate::Transport::WebSocket,
            format!("cannot start the client runtime: {e}"),
        )),
    }
}

/// The current tokio runtime if there is one, else the shared one.
pub(crate) fn current_or_shared() -> Result<tokio::runtime::Handle, Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(handle),
        Err(_) => shared(),
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    /// The calling thread's waker, made once per thread rather than once per wait (a thread
    /// that waits for 64 acks in turn waits a lot).
    static THREAD_WAKER: Waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
}

/// Runs a future that only waits on channels to completion on the calling thread.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    // During thread-local destruction (a client dropped by another thread-local's destructor)
    // the cached waker is gone: a fresh one does the same.
    let waker = THREAD_WAKER
        .try_with(Waker::clone)
        .unwrap_or_else(|_| Waker::from(Arc::new(ThreadWaker(thread::current()))));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}
