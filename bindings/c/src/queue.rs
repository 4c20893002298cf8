//! `sr_completion_queue`: calls that return at once and complete later, for callers whose
//! threads must not wait in a call (Go's goroutines, an event loop). A submitted call runs on
//! the core's runtime; its result is pushed onto the queue, and a byte is written to the
//! queue's pipe when the queue goes from empty to non-empty, so one reader waiting on the
//! pipe's read end (with poll/epoll, Go's netpoller) serves any number of calls in flight.

use std::ffi::c_int;
use std::future::Future;
use std::mem;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use sr_core::{ClientDriver, Result};

use crate::client::sr_client_driver;
use crate::convert::{handle, sr_str};
use crate::error::{sr_error, sr_status};
use crate::panic::{answer, quietly};
use crate::store::link_args;

/// A completed call: the `tag` it was submitted with, its status, the pod (-1 on failure) and
/// the error (NULL on success; free it with `sr_error_free`).
#[repr(C)]
#[derive(Debug)]
pub struct sr_completion {
    pub tag: u64,
    pub status: sr_status,
    pub pod: i64,
    pub error: *mut sr_error,
}

/// Owns the error until it is handed out (the raw pointer is not `Send` by itself).
struct Done(sr_completion);

// SAFETY: the error is a heap object nobody else points to until it is drained.
unsafe impl Send for Done {}

impl Drop for Done {
    fn drop(&mut self) {
        if !self.0.error.is_null() {
            // SAFETY: made by `Box::into_raw` in `complete`, never handed out.
            drop(unsafe { Box::from_raw(self.0.error) });
        }
    }
}

struct Queue {
    done: Mutex<Vec<Done>>,
    /// The pipe: the caller reads `fds[0]`; completions write one byte to `fds[1]`.
    fds: [c_int; 2],
}

impl Queue {
    fn push(&self, d: Done) {
        let was_empty = {
            let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
            done.push(d);
            done.len() == 1
        };
        if was_empty {
            // Non-blocking: a full pipe (EAGAIN) already wakes the reader; retry an interrupt.
            loop {
                // SAFETY: the queue's own fd (open while the queue lives) and one byte.
                let n = unsafe { libc::write(self.fds[1], [1u8].as_ptr().cast(), 1) };
                if n >= 0
                    || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                {
                    break;
                }
            }
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: the queue's own fds, closed once.
        unsafe {
            libc::close(self.fds[0]);
            libc::close(self.fds[1]);
        }
    }
}

/// A completion queue. Thread-safe. Free with `sr_completion_queue_free` (calls still in
/// flight then complete into nothing).
#[derive(Debug)]
pub struct sr_completion_queue {
    inner: Arc<QueueRef>,
}

/// `Arc<Queue>` with a `Debug` the handle can derive.
struct QueueRef(Queue);

impl std::fmt::Debug for QueueRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("sr_completion_queue")
            .field("read_fd", &self.0.fds[0])
            .finish_non_exhaustive()
    }
}

fn os_error(what: &str) -> sr_core::Error {
    sr_core::Error::new(
        sr_core::ErrorKind::Internal,
        format!("{what}: {}", std::io::Error::last_os_error()),
    )
}

/// A non-blocking, close-on-exec pipe (atomically where the OS can: a `fork` + `exec` on
/// another thread must not inherit it).
fn pipe() -> Result<[c_int; 2]> {
    let mut fds = [0 as c_int; 2];
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        // SAFETY: `fds` has room for two fds.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(os_error("pipe2()"));
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // SAFETY: `fds` has room for two fds; then flags on the fds just made.
        unsafe {
            if libc::pipe(fds.as_mut_ptr()) != 0 {
                return Err(os_error("pipe()"));
            }
            for fd in fds {
                let fl = libc::fcntl(fd, libc::F_GETFL);
                if fl < 0
                    || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) != 0
                    || libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) != 0
                {
                    let e = os_error("fcntl()");
                    libc::close(fds[0]);
                    libc::close(fds[1]);
                    return Err(e);
                }
            }
        }
    }
    Ok(fds)
}

/// Makes a completion queue; `*fd_out` receives the read end of its pipe (non-blocking,
/// close-on-exec, owned by the queue: do not close it). Wait until it is readable, read what
/// it holds, then `sr_completion_queue_drain` until that returns less than its capacity.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL), `SR_INTERNAL` (no pipe).
#[no_mangle]
pub unsafe extern "C" fn sr_completion_queue_new(
    fd_out: *mut c_int,
    queue_out: *mut *mut sr_completion_queue,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        answer(err_out, "queue_out", queue_out, || {
            if fd_out.is_null() {
                return Err(crate::convert::invalid("fd_out", "is NULL"));
            }
            let fds = pipe()?;
            fd_out.write(fds[0]);
            Ok(Box::into_raw(Box::new(sr_completion_queue {
                inner: Arc::new(QueueRef(Queue {
                    done: Mutex::new(Vec::new()),
                    fds,
                })),
            })))
        })
    }
}

/// Moves up to `cap` completions into `out`; returns how many (0 for a NULL argument). Each
/// completion's `error`, if not NULL, is the caller's to free.
#[no_mangle]
pub unsafe extern "C" fn sr_completion_queue_drain(
    queue: *const sr_completion_queue,
    out: *mut sr_completion,
    cap: usize,
) -> usize {
    quietly(0, || {
        if queue.is_null() || out.is_null() || cap == 0 {
            return 0;
        }
        // SAFETY: a live handle (the header's contract).
        let handle = unsafe { &*queue };
        let q = &handle.inner.0;
        let taken: Vec<Done> = {
            let mut done = q.done.lock().unwrap_or_else(|p| p.into_inner());
            let n = done.len().min(cap);
            done.drain(..n).collect()
        };
        let n = taken.len();
        for (i, mut d) in taken.into_iter().enumerate() {
            let c = sr_completion {
                tag: d.0.tag,
                status: d.0.status,
                pod: d.0.pod,
                // Handed out: the caller frees it.
                error: mem::replace(&mut d.0.error, std::ptr::null_mut()),
            };
            // SAFETY: the caller lent `cap` slots; i < n <= cap.
            unsafe { out.add(i).write(c) };
        }
        n
    })
}

/// Frees the queue (NULL is ignored). Calls in flight complete into nothing.
#[no_mangle]
pub unsafe extern "C" fn sr_completion_queue_free(queue: *mut sr_completion_queue) {
    quietly((), || {
        if !queue.is_null() {
            // SAFETY: made by `sr_completion_queue_new`, freed once.
            drop(unsafe { Box::from_raw(queue) });
        }
    })
}

/// A submitted call's completion, owed until it is pushed: a task that panics or is dropped
/// still completes (`SR_INTERNAL`), so a caller waiting for it never waits forever.
struct Owed(Option<(Arc<QueueRef>, u64)>);

impl Drop for Owed {
    fn drop(&mut self) {
        if let Some((q, tag)) = self.0.take() {
            let e = sr_core::Error::new(
                sr_core::ErrorKind::Internal,
                "the submitted call ended without an answer (a panic in the library)",
            );
            q.0.push(complete(tag, Err(e)));
        }
    }
}

fn complete(tag: u64, r: Result<u32>) -> Done {
    match r {
        Ok(pod) => Done(sr_completion {
            tag,
            status: sr_status::SR_OK,
            pod: i64::from(pod),
            error: std::ptr::null_mut(),
        }),
        Err(e) => Done(sr_completion {
            tag,
            status: sr_status::of(e.kind()),
            pod: -1,
            error: Box::into_raw(Box::new(sr_error::from(e))),
        }),
    }
}

/// `sr_client_compute_linked_pod_uncached` (the store half, after a cache miss: probe with
/// `sr_client_compute_front` or `sr_client_compute_cached` first) that never waits. The call
/// is first run on the calling thread until it would wait:
/// - answered at once (the memory store, or a user another call just placed): `SR_OK` with the
///   pod in `*pod_out`, or the call's error; nothing is queued;
/// - waiting for the store: `SR_OK` with `*pod_out` = -1; the call goes on on the library's
///   runtime and its result arrives on `queue` with `tag`, exactly once (a call that ends
///   without an answer, e.g. a panic in the library, completes with `SR_INTERNAL`).
///
/// The driver may be freed while the call is in flight.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, bad identifiers), `SR_NAMESPACE_NOT_LOCAL`,
/// `SR_CLOSED`, and the call's own errors when it is answered at once.
#[no_mangle]
pub unsafe extern "C" fn sr_client_compute_linked_pod_uncached_submit(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    queue: *const sr_completion_queue,
    tag: u64,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        answer(err_out, "pod_out", pod_out, || {
            let c: Arc<ClientDriver> = handle("client", client)?.inner.clone();
            let q = handle("queue", queue)?.inner.clone();
            let (ns, uid, svc) = link_args(ns, uid, service)?;
            c.check_link(ns, uid, svc)?;
            let (ns, uid, svc) = (ns.to_owned(), uid.to_owned(), svc.to_owned());
            let mut call =
                Box::pin(async move { c.compute_linked_pod_uncached(&ns, &uid, &svc).await });
            // One poll here, inside the runtime's context (its timers and I/O): a call that
            // does not wait costs no thread hop. The waker is a no-op: once spawned, the
            // runtime polls the call again (futures register the latest waker on every poll).
            let _runtime = sr_core::runtime::handle().enter();
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(r) = call.as_mut().poll(&mut cx) {
                return r.map(i64::from);
            }
            let mut owed = Owed(Some((q, tag)));
            sr_core::runtime::handle().spawn(async move {
                let r = call.await;
                if let Some((q, tag)) = owed.0.take() {
                    q.0.push(complete(tag, r));
                }
            });
            Ok(-1)
        })
    }
}
