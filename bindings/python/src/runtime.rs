//! The bridge between Python and the core's one tokio runtime.
//!
//! The core owns the runtime (`stateful_route::runtime::get()`); this file hands it to
//! pyo3-async-runtimes once, so asyncio awaitables and blocking calls run on the same threads.
//! Two bridges: [`Async`] turns a core future into an asyncio future; [`Blocking`] waits for it
//! with the GIL released. Neither may ever hold the GIL while it waits for the runtime: runtime
//! threads take the GIL to log and to call listeners.
//!
//! Fork: the runtime's threads do not survive `os.fork()`. A child whose parent had started the
//! runtime gets `ClosedError` from every call instead of a hang (a `pthread_atfork` hook sets a
//! flag; checking it costs one atomic load). A child whose parent never started the runtime
//! (the prefork pattern: import in the master, make stores and drivers in each worker) works.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Once;

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use stateful_route::ErrorKind;
use tokio::runtime::Runtime;

use crate::error::{raise, to_pyerr};

static START: Once = Once::new();
/// The pid of the process that started the runtime (0: not started).
static STARTED_IN: AtomicU32 = AtomicU32::new(0);
/// Set in a child forked after the runtime started.
static FORKED: AtomicBool = AtomicBool::new(false);

extern "C" fn after_fork_in_child() {
    // Async-signal-safe: two atomic operations.
    if STARTED_IN.load(Ordering::SeqCst) != 0 {
        FORKED.store(true, Ordering::SeqCst);
    }
}

/// Installs the fork hook (once, at import).
pub fn install_fork_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a child handler that only touches atomics.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
}

#[cold]
fn forked_error() -> PyErr {
    raise(
        ErrorKind::Closed,
        format!(
            "stateful_route cannot be used in this process: it was forked from process {} after \
             that process had started the library's runtime, whose threads do not survive fork(). \
             Create stores and drivers in each child process after fork (in a prefork server: in \
             the worker, not in the master)",
            STARTED_IN.load(Ordering::SeqCst)
        ),
    )
}

/// Fails in a forked child whose parent had started the runtime.
#[inline]
pub fn check_not_forked() -> PyResult<()> {
    if FORKED.load(Ordering::Relaxed) {
        Err(forked_error())
    } else {
        Ok(())
    }
}

/// The core's runtime, started on first use and handed to pyo3-async-runtimes.
pub fn runtime() -> PyResult<&'static Runtime> {
    check_not_forked()?;
    START.call_once(|| {
        STARTED_IN.store(std::process::id(), Ordering::SeqCst);
        let rt = stateful_route::runtime::get();
        // Err only if already set, which nothing else in this module does.
        let _ = pyo3_async_runtimes::tokio::init_with_runtime(rt);
    });
    Ok(stateful_route::runtime::get())
}

/// How a class exposes core futures: asyncio awaitables or blocking calls.
pub trait Bridge {
    /// Whether callers are coroutines on an asyncio event loop.
    const ASYNCIO: bool;

    /// Runs a core future: an asyncio future for [`Async`], the value for [`Blocking`].
    fn run<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = stateful_route::Result<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static;

    /// A value already known: an awaitable that is done for [`Async`], the value for [`Blocking`].
    fn ready<'py>(py: Python<'py>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>>;
}

/// The `stateful_route` (asyncio) face.
#[derive(Debug)]
pub struct Async;

/// The `stateful_route.blocking` face.
#[derive(Debug)]
pub struct Blocking;

impl Bridge for Async {
    const ASYNCIO: bool = true;

    fn run<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = stateful_route::Result<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        runtime()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            fut.await.map_err(|e| Python::attach(|py| to_pyerr(py, &e)))
        })
    }

    #[inline]
    fn ready<'py>(py: Python<'py>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        Ready::awaitable(py, value)
    }
}

impl Bridge for Blocking {
    const ASYNCIO: bool = false;

    fn run<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = stateful_route::Result<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let rt = runtime()?;
        if tokio::runtime::Handle::try_current().is_ok() {
            // A listener or log handler (on a runtime thread) called a blocking method.
            return Err(raise(
                ErrorKind::InvalidArgument,
                "a blocking stateful_route call was made on one of the library's own threads \
                 (from a routing-state listener?); hand the work to another thread",
            ));
        }
        match py.detach(move || rt.block_on(fut)) {
            Ok(v) => v.into_bound_py_any(py),
            Err(e) => Err(to_pyerr(py, &e)),
        }
    }

    #[inline]
    fn ready<'py>(_py: Python<'py>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        Ok(value)
    }
}

/// An awaitable whose result is already known: `await` returns it at once, on the awaiting
/// thread, without an event-loop round or a trip to the runtime (a cache hit, `init()`).
#[pyclass(module = "stateful_route._native", frozen, name = "Ready")]
#[derive(Debug)]
pub struct Ready {
    value: Py<PyAny>,
}

impl Ready {
    #[inline]
    pub fn awaitable<'py>(
        py: Python<'py>,
        value: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(Bound::new(
            py,
            Ready {
                value: value.unbind(),
            },
        )?
        .into_any())
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Err(PyStopIteration::new_err((self.value.clone_ref(py),)))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<stateful_route.Ready {}>",
            self.value
                .bind(py)
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_default()
        )
    }
}
