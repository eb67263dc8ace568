//! The one way the fake servers and proxies of the test support run in the background: their
//! tasks live in a [`Tasks`] registry, optionally on a tokio runtime of their own (for tests
//! without async code), and a [`Background`] handle stops all of them when dropped, so a test
//! never leaves listeners or connections behind and a peer sees its connections close.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::runtime::Runtime;
use tokio::task::JoinSet;

/// Every task of one server. Empty for good once shut down, so a task that is still running at
/// that moment cannot start new ones behind the handle's back.
pub struct Tasks(Mutex<Option<JoinSet<()>>>);

impl Tasks {
    pub fn new() -> Arc<Tasks> {
        Arc::new(Tasks(Mutex::new(Some(JoinSet::new()))))
    }

    fn lock(&self) -> MutexGuard<'_, Option<JoinSet<()>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns `fut` on the current runtime, unless shut down (then `fut` is dropped).
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if let Some(set) = self.lock().as_mut() {
            // Reap finished tasks so a long test does not accumulate their results.
            while set.try_join_next().is_some() {}
            set.spawn(fut);
        }
    }

    /// Aborts every task and refuses new ones.
    pub fn shutdown(&self) {
        // Dropping the set aborts every task in it; tasks usually hold an Arc of what holds
        // this, so the cycle is broken here rather than by reference counting.
        let set = self.lock().take();
        drop(set);
    }
}

/// A server's tasks and, when it has one, its own runtime; dropping it aborts the tasks and
/// shuts the runtime down without blocking (so it may be dropped from async code too).
pub struct Background {
    tasks: Arc<Tasks>,
    runtime: Option<Runtime>,
}

impl Background {
    /// Tasks on the caller's runtime.
    pub fn on_current_runtime() -> Background {
        Background {
            tasks: Tasks::new(),
            runtime: None,
        }
    }

    /// Tasks on a new one-worker runtime whose thread is called `name`.
    pub fn on_own_runtime(name: &str) -> Background {
        Background {
            tasks: Tasks::new(),
            runtime: Some(own_runtime(name)),
        }
    }

    /// The registry, for tasks that start more tasks (accept loops).
    pub fn tasks(&self) -> Arc<Tasks> {
        self.tasks.clone()
    }

    /// Spawns `fut` on this server's runtime (its own, or the caller's).
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let _entered = self.runtime.as_ref().map(Runtime::enter);
        self.tasks.spawn(fut);
    }

    /// Runs the async constructor `start` on a new runtime called `name` and hands that runtime
    /// to the built server's `Background` (which `background` picks out), so the server lives
    /// on it until dropped. `start` is spawned rather than `block_on`ed, so this also works
    /// when called from async code.
    pub fn start_on_own_runtime<T, Fut>(
        name: &str,
        start: Fut,
        background: impl FnOnce(&mut T) -> &mut Background,
    ) -> T
    where
        T: Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let runtime = own_runtime(name);
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let _ = tx.send(start.await);
        });
        let mut server = rx.recv().expect("the server's runtime started it");
        background(&mut server).runtime = Some(runtime);
        server
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.tasks.shutdown();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn own_runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a background server's runtime")
}
