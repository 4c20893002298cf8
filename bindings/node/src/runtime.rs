//! Promises on the core's one tokio runtime.
//!
//! A Promise-returning method returns a [`Promise`]; napi converts it on the JS thread, which
//! creates the JS Promise and runs the future as a task on `stateful_route::runtime`. The task
//! hands the result back through one threadsafe function per Node environment (the
//! [`Settler`]), whose JS-thread callback resolves or rejects the Promise. One long-lived
//! threadsafe function instead of one per Promise (what napi's own futures use) keeps a store
//! round trip's JS-thread cost low. It is referenced only while Promises are pending, so it
//! never keeps the process alive.
//!
//! The same threadsafe function also carries [`JsThread::run`] jobs: closures that a runtime
//! thread needs run on the JS thread (a JS placement policy or load calculator, `extend.rs`).
//! They do not count as pending Promises, so they never keep the process alive either.
//!
//! Not napi's `async fn` (napi is built without its async support, so nothing in the addon can
//! start a second runtime): its rejections carry napi's status, not the core's code, and an
//! `async fn(&self)` reads the JS object's Rust value across awaits, which the teardown of a
//! terminated worker frees (a crash, seen in node/test/lifecycle.test.js). A [`Promise`] owns
//! clones of the core handles it uses. This module must never shut the core's runtime down:
//! background loops, other bindings and other Node environments (worker threads) share it for
//! the life of the process.

use std::cell::RefCell;
use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use napi::bindgen_prelude::{retain_current_module_for_unload_safety, ToNapiValue};
use napi::{check_status, sys};

use stateful_route::runtime;

use crate::error::js_error;

/// Pins the addon's image for the life of the process: a runtime task may outlive the
/// environment that started it (a terminated worker), so its code must stay loaded. Called
/// once, from the module initialiser.
pub fn register() {
    retain_current_module_for_unload_safety();
}

/// A pending Promise's resolver, carried to the runtime and back.
struct Deferred(sys::napi_deferred);

// SAFETY: the deferred is only used on the JS thread (in `settle`); elsewhere it is carried.
unsafe impl Send for Deferred {}

/// Makes the settlement value on the JS thread: `Ok` resolves, `Err` rejects.
type Finish = Box<dyn FnOnce(sys::napi_env) -> Result<sys::napi_value, sys::napi_value> + Send>;

/// A finished task on its way to the JS thread.
struct Settlement {
    deferred: Deferred,
    finish: Finish,
}

/// A closure to run on the JS thread (see [`JsThread::run`]).
type Job = Box<dyn FnOnce(sys::napi_env) + Send>;

/// What the threadsafe function carries.
enum Work {
    Settle(Settlement),
    Run(Job),
}

/// One environment's threadsafe function for settling Promises.
struct Settler {
    /// Set once, right after creation.
    tsfn: AtomicPtr<sys::napi_threadsafe_function__>,
    /// Set (under the write lock) when the environment tears down; no call after that.
    closed: RwLock<bool>,
    /// Promises not yet settled. Touched on the JS thread only.
    pending: AtomicUsize,
}

thread_local! {
    /// The settler of the environment running on this thread (a JS thread runs one).
    static SETTLER: RefCell<Option<(usize, Arc<Settler>)>> = const { RefCell::new(None) };
}

impl Settler {
    /// This environment's settler, created on first use.
    fn of(env: sys::napi_env) -> napi::Result<Arc<Settler>> {
        let found = SETTLER.with(|s| match &*s.borrow() {
            Some((e, settler)) if *e == env as usize => Some(settler.clone()),
            _ => None,
        });
        if let Some(s) = found {
            return Ok(s);
        }
        let s = Settler::create(env)?;
        SETTLER.with(|slot| *slot.borrow_mut() = Some((env as usize, s.clone())));
        Ok(s)
    }

    fn create(env: sys::napi_env) -> napi::Result<Arc<Settler>> {
        let name = "stateful-route";
        let mut js_name = ptr::null_mut();
        let mut tsfn = ptr::null_mut();
        // SAFETY: plain napi calls on the JS thread with a live env; the context pointer is an
        // `Arc<Settler>` released by `finalize` when Node destroys the threadsafe function.
        unsafe {
            settler_status(sys::napi_create_string_utf8(
                env,
                name.as_ptr().cast(),
                name.len() as isize,
                &mut js_name,
            ))?;
            let settler = Arc::new(Settler {
                tsfn: AtomicPtr::new(ptr::null_mut()),
                closed: RwLock::new(false),
                pending: AtomicUsize::new(0),
            });
            let context = Arc::into_raw(settler.clone()) as *mut c_void;
            settler_status(sys::napi_create_threadsafe_function(
                env,
                ptr::null_mut(),
                ptr::null_mut(),
                js_name,
                0,
                1,
                context,
                Some(finalize),
                context,
                Some(settle),
                &mut tsfn,
            ))
            .inspect_err(|_| drop(Arc::from_raw(context as *const Settler)))?;
            settler.tsfn.store(tsfn, Ordering::Release);
            settler_status(sys::napi_unref_threadsafe_function(env, tsfn))?;
            settler_status(sys::napi_add_env_cleanup_hook(env, Some(teardown), context))?;
            Ok(settler)
        }
    }

    /// Sends work to the JS thread; dropped (unrun) if the environment is gone.
    fn send(&self, s: Work) {
        let closed = self.closed.read().unwrap_or_else(|p| p.into_inner());
        if *closed {
            return;
        }
        let data = Box::into_raw(Box::new(s));
        // SAFETY: not closed, so the threadsafe function is alive until the read lock is released.
        let status = unsafe {
            sys::napi_call_threadsafe_function(
                self.tsfn.load(Ordering::Acquire),
                data.cast(),
                sys::ThreadsafeFunctionCallMode::nonblocking,
            )
        };
        if status != sys::Status::napi_ok {
            // SAFETY: not queued, so still ours.
            drop(unsafe { Box::from_raw(data) });
        }
    }
}

/// The JS-thread callback: settles one Promise. `env` is null while Node tears the function
/// down; the settlement is then only freed.
unsafe extern "C" fn settle(
    env: sys::napi_env,
    _js: sys::napi_value,
    context: *mut c_void,
    data: *mut c_void,
) {
    // SAFETY: `data` is a `Work` boxed by `Settler::send`; `context` the settler's Arc.
    let work = unsafe { Box::from_raw(data.cast::<Work>()) };
    if env.is_null() {
        return;
    }
    let settler = unsafe { &*(context as *const Settler) };
    let Settlement {
        deferred: Deferred(deferred),
        finish,
    } = match *work {
        Work::Settle(s) => s,
        Work::Run(job) => {
            // A panic must not unwind into Node; the job's own result channel reports it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(env)));
            return;
        }
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| finish(env)));
    // SAFETY: the JS thread, a live env, and the deferred of a pending Promise of this env.
    unsafe {
        match outcome {
            Ok(Ok(value)) => sys::napi_resolve_deferred(env, deferred, value),
            Ok(Err(error)) => sys::napi_reject_deferred(env, deferred, error),
            Err(_) => {
                let e = napi::Error::from_reason("INTERNAL: converting a result panicked");
                sys::napi_reject_deferred(env, deferred, napi::JsError::from(e).into_value(env))
            }
        };
        if settler.pending.fetch_sub(1, Ordering::Relaxed) == 1 {
            sys::napi_unref_threadsafe_function(env, settler.tsfn.load(Ordering::Acquire));
        }
    }
}

/// A napi status of the settler's creation as a result.
fn settler_status(status: sys::napi_status) -> napi::Result<()> {
    check_status!(
        status,
        "cannot create the Promise settler of this environment"
    )
}

/// Environment cleanup hook: no more calls into the threadsafe function, and forget it.
unsafe extern "C" fn teardown(context: *mut c_void) {
    // SAFETY: the context Arc lives until `finalize`, which Node runs after cleanup hooks.
    let settler = unsafe { &*(context as *const Settler) };
    *settler.closed.write().unwrap_or_else(|p| p.into_inner()) = true;
    let _ = SETTLER.try_with(|s| {
        if let Ok(mut slot) = s.try_borrow_mut() {
            *slot = None;
        }
    });
}

/// Threadsafe-function finaliser: releases the context Arc.
unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: the Arc leaked into the context by `Settler::create`.
    drop(unsafe { Arc::from_raw(data as *const Settler) });
}

/// A Promise of `T` from a future on the core's runtime: what a Promise-returning method
/// returns (napi's type generation reads it as `Promise<T>`). Napi converts it on the JS thread,
/// which creates the Promise and spawns the future; a core error rejects the Promise with a JS
/// `Error` carrying the core's code (and `podIndex`).
pub struct Promise<T>(Pin<Box<dyn Future<Output = stateful_route::Result<T>> + Send>>);

impl<T> Promise<T> {
    /// The Promise of `fut`'s value.
    pub fn new(fut: impl Future<Output = stateful_route::Result<T>> + Send + 'static) -> Self {
        Promise(Box::pin(fut))
    }
}

impl<T> std::fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Promise")
    }
}

/// The Promise of what `f` makes of a clone of `handle` (a driver's or store's core handle):
/// the task owns what it uses, so the JS object may be collected, or its whole environment torn
/// down (a terminated worker), while it runs.
pub fn promise<H: Clone, T, Fut>(handle: &H, f: impl FnOnce(H) -> Fut) -> Promise<T>
where
    Fut: Future<Output = stateful_route::Result<T>> + Send + 'static,
{
    Promise::new(f(handle.clone()))
}

impl<T: ToNapiValue + Send + 'static> ToNapiValue for Promise<T> {
    unsafe fn to_napi_value(env: sys::napi_env, p: Self) -> napi::Result<sys::napi_value> {
        let settler = Settler::of(env)?;
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        // SAFETY: napi converts return values on the JS thread with a live env.
        settler_status(unsafe { sys::napi_create_promise(env, &mut deferred, &mut promise) })?;
        if settler.pending.fetch_add(1, Ordering::Relaxed) == 0 {
            // SAFETY: as above; the settler belongs to this env.
            unsafe { sys::napi_ref_threadsafe_function(env, settler.tsfn.load(Ordering::Acquire)) };
        }
        let deferred = Deferred(deferred);
        runtime::handle().spawn(async move {
            let out = p.0.await;
            let finish: Finish = Box::new(move |env: sys::napi_env| match out {
                // SAFETY: called by `settle` on the JS thread with a live env.
                Ok(v) => unsafe { T::to_napi_value(env, v) }.map_err(|e| {
                    // SAFETY: as above.
                    unsafe { napi::JsError::from(e).into_value(env) }
                }),
                Err(e) => Err(js_error(env, e)),
            });
            settler.send(Work::Settle(Settlement { deferred, finish }));
        });
        Ok(promise)
    }
}

/// The JS thread of one Node environment, as seen from any thread: runs closures there.
pub struct JsThread {
    settler: Arc<Settler>,
    env: usize,
    thread: std::thread::ThreadId,
}

impl std::fmt::Debug for JsThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsThread")
            .field("thread", &self.thread)
            .finish_non_exhaustive()
    }
}

impl JsThread {
    /// The environment `env`, whose JS thread is the calling thread.
    pub fn current(env: sys::napi_env) -> napi::Result<JsThread> {
        Ok(JsThread {
            settler: Settler::of(env)?,
            env: env as usize,
            thread: std::thread::current().id(),
        })
    }

    /// The environment, if the calling thread is its JS thread (and it is still alive).
    /// Thread ids are never reused, and an environment lives on one thread.
    pub fn env_if_current(&self) -> Option<sys::napi_env> {
        if std::thread::current().id() != self.thread {
            return None;
        }
        let closed = self
            .settler
            .closed
            .read()
            .unwrap_or_else(|p| p.into_inner());
        (!*closed).then_some(self.env as sys::napi_env)
    }

    /// Queues `job` for the JS thread, where it runs once the event loop gets to it. It is
    /// dropped unrun if the environment has gone (or goes before it runs). Never blocks.
    pub fn run(&self, job: impl FnOnce(sys::napi_env) + Send + 'static) {
        self.settler.send(Work::Run(Box::new(job)));
    }
}
