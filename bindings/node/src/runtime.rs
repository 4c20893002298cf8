//! Promises on the core's one tokio runtime.
//!
//! napi is built with `async-runtime` and without `tokio_rt`, so it links no runtime of its
//! own: [`register`] hands it the core's runtime (`stateful_route::runtime`) as its async
//! backend, and every Promise-returning method is a task there. A settled Promise comes back to
//! the JS thread through napi's deferred (a threadsafe function that lives only while the
//! Promise is pending, so nothing here keeps the process alive).
//!
//! This module must never shut the core's runtime down: background loops, other bindings and
//! other Node environments (worker threads) share it for the life of the process.

use std::future::Future;
use std::pin::Pin;

use napi::bindgen_prelude::{
    retain_current_module_for_unload_safety, AsyncRuntime, AsyncRuntimeGuard,
    AsyncRuntimeRejection, AsyncRuntimeTask, PromiseRaw, ToNapiValue,
};
use napi::Env;
use stateful_route::runtime;

use crate::error::rejection;

/// The core's runtime as napi's async backend.
struct CoreRuntime;

/// The runtime context entered by [`CoreRuntime::enter`].
struct Entered(#[allow(dead_code)] tokio::runtime::EnterGuard<'static>);

impl AsyncRuntimeGuard for Entered {}

// SAFETY: napi requires that no backend thread runs code of this addon after `shutdown`
// returns, because Node may unload the image. The addon image is pinned in `start` (and Node
// never unloads an addon that registered successfully), so tasks that outlive an environment
// run on a loaded image; their Promises' deferreds are aborted by napi at environment teardown.
unsafe impl AsyncRuntime for CoreRuntime {
    fn spawn(&self, task: AsyncRuntimeTask) -> Result<(), AsyncRuntimeRejection<AsyncRuntimeTask>> {
        runtime::handle().spawn(task);
        Ok(())
    }

    fn block_on(&self, future: Pin<&mut dyn Future<Output = ()>>) -> napi::Result<()> {
        runtime::block_on(future);
        Ok(())
    }

    fn enter(&self) -> napi::Result<Box<dyn AsyncRuntimeGuard + '_>> {
        Ok(Box::new(Entered(runtime::handle().enter())))
    }

    fn start(&self) -> napi::Result<()> {
        retain_current_module_for_unload_safety();
        Ok(())
    }

    /// The core's runtime outlives every environment; there is nothing to stop.
    fn shutdown(&self) -> napi::Result<()> {
        Ok(())
    }
}

/// Hands the core's runtime to napi. Called once, from the module initialiser.
pub fn register() {
    napi::bindgen_prelude::register_async_runtime(CoreRuntime);
}

/// Runs `fut` on the core's runtime and returns a Promise of its value; a core error rejects
/// the Promise with a JS `Error` carrying the core's code.
pub fn promise<'env, T, F>(env: &'env Env, fut: F) -> napi::Result<PromiseRaw<'env, T>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = stateful_route::Result<T>> + Send + 'static,
{
    env.spawn_future_with_callback(async move { Ok(fut.await) }, |env, out| {
        out.map_err(|e| rejection(env, e))
    })
}
