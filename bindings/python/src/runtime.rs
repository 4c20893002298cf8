//! The bridge between Python and the core's one tokio runtime.
//!
//! The core owns the runtime (`stateful_route::runtime::get()`); asyncio awaitables and blocking
//! calls both run their store calls there. [`run`] turns a core future into an asyncio future of
//! the running loop, or (blocking) waits for it with the GIL released. Neither
//! may ever hold the GIL while it waits for the runtime, and the runtime's workers never wait
//! for the GIL to hand back a result (see [`LoopBridge`]): a worker blocked on the GIL drives
//! no other task. (Only log events, listeners and Python placement policies / load calculators
//! (`extend.rs`) take the GIL on a runtime thread.)
//!
//! Fork: the runtime's threads do not survive `os.fork()`. A child whose parent had started the
//! runtime gets `ClosedError` from every call instead of a hang (a `pthread_atfork` hook sets a
//! flag; checking it costs one atomic load). A child whose parent never started the runtime
//! (the prefork pattern: import in the master, make stores and drivers in each worker) works.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::IntoPyObjectExt;
use stateful_route::ErrorKind;
use tokio::runtime::Runtime;

use crate::args::Obj;
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

/// The core's runtime, started on first use (and the pid that started it, for the fork check).
pub fn runtime() -> PyResult<&'static Runtime> {
    check_not_forked()?;
    START.call_once(|| {
        STARTED_IN.store(std::process::id(), Ordering::SeqCst);
        stateful_route::runtime::get();
    });
    Ok(stateful_route::runtime::get())
}

/// A core result as a Python value; `()` is `None` (not pyo3's empty tuple).
fn to_py<'py, T>(py: Python<'py>, v: T) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + 'static,
{
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<()>() {
        return Ok(py.None().into_bound(py));
    }
    v.into_bound_py_any(py)
}

/// Runs a core future for a caller: blocking (the value, waited for with the GIL released) or
/// asyncio (a future of the running loop). Every class picks by its `blocking` field.
pub fn run<'py, T, F>(py: Python<'py>, blocking: bool, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = stateful_route::Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let rt = runtime()?;
    if blocking {
        if tokio::runtime::Handle::try_current().is_ok() {
            // A listener or log handler (on a runtime thread) called a blocking method.
            return Err(raise(
                ErrorKind::InvalidArgument,
                "a blocking stateful_route call was made on one of the library's own threads \
                 (from a routing-state listener?); hand the work to another thread",
            ));
        }
        return match py.detach(move || rt.block_on(fut)) {
            Ok(v) => to_py(py, v),
            Err(e) => Err(to_pyerr(py, &e)),
        };
    }
    let (future, bridge) = loop_bridge(py)?;
    let pending = future.clone().unbind();
    rt.spawn(async move {
        let result = fut.await;
        bridge.complete(Completion {
            future: pending,
            result: Box::new(move |py| match result {
                Ok(v) => to_py(py, v).map(Bound::unbind),
                Err(e) => Err(to_pyerr(py, &e)),
            }),
        });
    });
    Ok(future)
}

/// A value already known: the value itself for a blocking caller, an awaitable that is done
/// for asyncio.
#[inline]
pub fn ready<'py>(blocking: bool, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if blocking {
        Ok(value)
    } else {
        Ready::awaitable(value.py(), value)
    }
}

/// Whether a class (a Python subclass in `stateful_route.blocking`) says `_blocking = True`.
pub fn is_blocking(cls: &Bound<'_, pyo3::types::PyType>) -> PyResult<bool> {
    match cls.getattr_opt("_blocking")? {
        Some(v) => v.is_truthy(),
        None => Ok(false),
    }
}

// ---------------------------------------------------------------------------------------------
// Completing asyncio futures from the runtime without taking the GIL there.
//
// A runtime worker that finishes a store call must not wait for the GIL: while it waits it
// drives no other task, and the event loop's thread holds the GIL most of the time. So a
// finished call only queues its result and, if the queue was empty, writes one byte to a pipe
// that the event loop watches (`loop.add_reader`). The loop then drains the whole queue on its
// own thread, where it already holds the GIL, and sets each future's result. One pipe per
// event loop; cancelling the asyncio future does not cancel the store call (it finishes, and
// its result is dropped).

type Convert = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

struct Completion {
    future: Py<PyAny>,
    result: Convert,
}

/// The completion queue of one event loop.
pub struct LoopBridge {
    queue: Mutex<Vec<Completion>>,
    armed: AtomicBool,
    read_fd: libc::c_int,
    write_fd: libc::c_int,
}

impl std::fmt::Debug for LoopBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopBridge")
            .field("read_fd", &self.read_fd)
            .finish_non_exhaustive()
    }
}

impl LoopBridge {
    fn new() -> PyResult<LoopBridge> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(PyErr::from(std::io::Error::last_os_error()));
        }
        for fd in fds {
            // SAFETY: fcntl on descriptors this function owns.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(LoopBridge {
            queue: Mutex::new(Vec::new()),
            armed: AtomicBool::new(false),
            read_fd: fds[0],
            write_fd: fds[1],
        })
    }

    /// Called on a runtime thread: queue the result, wake the loop if it is not awake yet.
    fn complete(&self, c: Completion) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        if !self.armed.swap(true, Ordering::SeqCst) {
            let byte = 1u8;
            // SAFETY: writes one byte from a live buffer to a descriptor this bridge owns. A
            // full pipe (EAGAIN) already guarantees a wake-up, so the result is not needed.
            unsafe {
                libc::write(self.write_fd, (&byte as *const u8).cast(), 1);
            }
        }
    }

    /// Called on the loop's thread: set the result of every queued future.
    fn drain(&self, py: Python<'_>) {
        // Order matters: empty the pipe, then disarm, then take the queue. A result queued
        // after the disarm writes a new byte (so another drain follows); one queued before it
        // is in the queue this drain takes.
        let mut buf = [0u8; 64];
        // SAFETY: reads into a live buffer from a non-blocking descriptor this bridge owns.
        while unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        self.armed.store(false, Ordering::SeqCst);
        let done = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        for c in done {
            let future = c.future.bind(py);
            if future
                .call_method0("done")
                .and_then(|d| d.is_truthy())
                .unwrap_or(true)
            {
                continue; // cancelled meanwhile
            }
            let _ = match (c.result)(py) {
                Ok(v) => future.call_method1("set_result", (v,)),
                Err(e) => future.call_method1("set_exception", (e.into_value(py),)),
            };
        }
    }
}

impl Drop for LoopBridge {
    fn drop(&mut self) {
        // SAFETY: closes the descriptors this bridge owns, once.
        unsafe {
            libc::close(self.read_fd);
            libc::close(self.write_fd);
        }
    }
}

/// The reader callback registered with the event loop (`loop.add_reader(fd, drain)`).
#[pyclass(module = "stateful_route._native", frozen, name = "LoopDrain")]
#[derive(Debug)]
pub struct LoopDrain {
    bridge: Arc<LoopBridge>,
}

#[pymethods]
impl LoopDrain {
    fn __call__(&self, py: Python<'_>) {
        self.bridge.drain(py);
    }
}

/// Event loop → its drain, dropped with the loop.
static BRIDGES: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

thread_local! {
    /// The last loop this thread used and its bridge (the loop is kept alive by this entry, so
    /// its address cannot be reused by another loop while cached).
    static LAST: std::cell::RefCell<Option<(Py<PyAny>, Arc<LoopBridge>)>> = const { std::cell::RefCell::new(None) };
}

/// A new future of the running loop, and that loop's bridge.
fn loop_bridge<'py>(py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, Arc<LoopBridge>)> {
    let get_loop = GET_RUNNING_LOOP.get_or_try_init(py, || {
        py.import("asyncio")?
            .getattr("get_running_loop")
            .map(Bound::unbind)
    })?;
    let event_loop = get_loop.bind(py).call0()?;
    let cached = LAST.with_borrow(|last| match last {
        Some((l, b)) if l.is(&event_loop) => Some(b.clone()),
        _ => None,
    });
    let bridge = match cached {
        Some(b) => b,
        None => {
            let bridges = BRIDGES.get_or_try_init(py, || {
                py.import("weakref")?
                    .getattr("WeakKeyDictionary")?
                    .call0()
                    .map(Bound::unbind)
            })?;
            let bridges = bridges.bind(py);
            let drain = match bridges.call_method1("get", (&event_loop,))? {
                d if d.is_none() => {
                    let bridge = Arc::new(LoopBridge::new()?);
                    let fd = bridge.read_fd;
                    let drain = Bound::new(py, LoopDrain { bridge }).map(Bound::into_any)?;
                    event_loop.call_method1("add_reader", (fd, &drain))?;
                    bridges.set_item(&event_loop, &drain)?;
                    drain
                }
                d => d,
            };
            let bridge = drain.cast::<LoopDrain>()?.get().bridge.clone();
            LAST.with_borrow_mut(|last| {
                *last = Some((event_loop.clone().unbind(), bridge.clone()))
            });
            bridge
        }
    };
    let future = event_loop.call_method0("create_future")?;
    Ok((future, bridge))
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
    pub fn awaitable<'py>(py: Python<'py>, value: Bound<'py, PyAny>) -> PyResult<Obj<'py>> {
        let value = value.unbind();
        Bound::new(py, Ready { value }).map(Bound::into_any)
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

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<stateful_route.Ready {}>",
            self.value.bind(py).repr()?
        ))
    }
}
