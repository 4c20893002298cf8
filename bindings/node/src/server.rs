//! `ServerDriver`: the JS face of the core's server driver (`core/src/server.rs`), run by each
//! pod to publish its load and routing state and to own its users' persistent links.

use std::sync::Arc;

use napi::bindgen_prelude::{Either, Function, Null};
use napi::{Env, JsValue};
use napi_derive::napi;
use stateful_route as core;

use crate::config::{
    self as arg, or_null, pod_index, BaseConfig, RoutingState, ServerInfo, TrySetOutcome,
};
use crate::error::{OrThrow, Result};
use crate::extend::JsLoadCalculator;
use crate::runtime::{promise, Promise};
use crate::store::Store;

/// The pod side. `start()` publishes the pod's state at once and then every period;
/// `stop()` drains (`DENY_NEW_CALL`, `drainSeconds`, `SHUTDOWN`).
#[napi]
#[derive(Debug)]
pub struct ServerDriver {
    inner: core::ServerDriver,
}

#[napi]
impl ServerDriver {
    /// A driver for the pod `info` on `store`; `config` fields default as documented.
    #[napi(constructor, strict)]
    pub fn new(store: &Store, info: ServerInfo, config: Option<BaseConfig>) -> Result<Self> {
        let info = info.into_core().or_throw()?;
        let config = config.unwrap_or_default().into_core().or_throw()?;
        let inner = core::ServerDriver::new(store.inner.clone(), info, config).or_throw()?;
        Ok(ServerDriver { inner })
    }

    /// Who this driver is.
    #[napi(getter)]
    pub fn server_info(&self) -> ServerInfo {
        ServerInfo::from_core(self.inner.server_info())
    }

    /// The configuration in force.
    #[napi(getter)]
    pub fn config(&self) -> BaseConfig {
        BaseConfig::from_core(self.inner.config())
    }

    /// Publishes the pod state at once, then every period. A second `start()` rejects with
    /// `INVALID_ARGUMENT`; a `start()` after `stop()` with `CLOSED`.
    #[napi]
    pub fn start(&self) -> Promise<()> {
        promise(&self.inner, move |s| async move { s.start().await })
    }

    /// Drains and stops: publishes `DENY_NEW_CALL`, waits `drainSeconds`, publishes `SHUTDOWN`
    /// and ends the loop. Idempotent.
    #[napi]
    pub fn stop(&self) -> Promise<()> {
        promise(&self.inner, move |s| async move { s.stop().await })
    }

    /// Sets the app's load (a whole number >= 0), published with the next period.
    #[napi]
    pub fn set_load_state(&self, load: f64) -> Result<()> {
        self.inner
            .set_load_state(arg::load(load).or_throw()?)
            .or_throw()
    }

    /// The app's load as last set.
    #[napi]
    pub fn get_load_state(&self) -> u32 {
        self.inner.get_load_state()
    }

    /// The weighted load this pod publishes, from the last CPU sample.
    #[napi]
    pub fn weighted_load(&self) -> u32 {
        self.inner.weighted_load()
    }

    /// The weighted load now, or the error of a load calculator that fails.
    #[napi]
    pub fn try_weighted_load(&self) -> Result<u32> {
        self.inner.try_weighted_load().or_throw()
    }

    /// Replaces SPEC's load formula with `calculator` (`(input) => load`, called on the JS
    /// thread at each publish; a runtime thread waits for it, at most 2 s) for every later
    /// publish; `null` restores the formula. If it throws or returns no valid load, the error
    /// is logged and the formula's value is published. (`undefined` is refused, so that a
    /// missing function is not silently the formula.)
    #[napi(ts_args_type = "calculator: ((input: LoadInput) => number) | null")]
    pub fn set_load_calculator(
        &self,
        env: Env,
        calculator: Either<Function, Null>,
    ) -> napi::Result<()> {
        let c: Arc<dyn core::LoadCalculator> = match calculator {
            Either::A(f) => Arc::new(JsLoadCalculator::new(env.raw(), f.raw())?),
            Either::B(Null) => Arc::new(core::load::DefaultLoadCalculator),
        };
        self.inner.set_load_calculator(c);
        Ok(())
    }

    /// Sets a custom load signal (`name`: `[A-Za-z0-9._-]`, a finite number) the load
    /// calculator sees in `input.signals`, from the next publish on.
    #[napi]
    pub fn set_load_signal(&self, name: String, value: f64) -> Result<()> {
        self.inner.set_load_signal(&name, value).or_throw()
    }

    /// Sets this pod's placement weight for the `'weighted'` policy (a whole number >= 0;
    /// default 100; 0 = never chosen by weight). Published at once when running.
    #[napi]
    pub fn set_weight(&self, weight: f64) -> Promise<()> {
        promise(&self.inner, move |s| async move {
            s.set_weight(arg::load(weight)?).await
        })
    }

    /// This pod's placement weight.
    #[napi]
    pub fn get_weight(&self) -> u32 {
        self.inner.get_weight()
    }

    /// Sets the routing state; when running, publishes it at once (draining does not wait a
    /// period).
    #[napi]
    pub fn set_routing_state(&self, state: RoutingState) -> Promise<()> {
        promise(&self.inner, move |s| async move {
            s.set_routing_state(state.into()).await
        })
    }

    /// The routing state as last set.
    #[napi]
    pub fn get_routing_state(&self) -> RoutingState {
        self.inner.get_routing_state().into()
    }

    /// Links `uid` persistently to `pod`; resolves to the previous pod or `null`.
    #[napi]
    pub fn set_linked_pod(
        &self,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
    ) -> Promise<Either<u32, Null>> {
        promise(&self.inner, move |s| async move {
            let pod = pod_index(pod)?;
            s.set_linked_pod(&namespace, &uid, &service, pod)
                .await
                .map(or_null)
        })
    }

    /// Links `uid` persistently to `pod` unless it is persistently linked to another pod.
    #[napi]
    pub fn try_set_linked_pod(
        &self,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
    ) -> Promise<TrySetOutcome> {
        promise(&self.inner, move |s| async move {
            let pod = pod_index(pod)?;
            Ok(s.try_set_linked_pod(&namespace, &uid, &service, pod)
                .await?
                .into())
        })
    }

    /// Removes the link now (`delay <= 0`) or after `delay` seconds; resolves to whether a
    /// link existed.
    #[napi]
    pub fn remove_linked_pod(
        &self,
        namespace: String,
        uid: String,
        service: String,
        delay: f64,
    ) -> Promise<bool> {
        promise(&self.inner, move |s| async move {
            let delay = arg::delay(delay)?;
            s.remove_linked_pod(&namespace, &uid, &service, delay).await
        })
    }

    /// As `removeLinkedPod`, only if the link points to `pod`.
    #[napi]
    pub fn remove_linked_pod_with_id(
        &self,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
        delay: f64,
    ) -> Promise<bool> {
        promise(&self.inner, move |s| async move {
            let (pod, delay) = (pod_index(pod)?, arg::delay(delay)?);
            s.remove_linked_pod_with_id(&namespace, &uid, &service, pod, delay)
                .await
        })
    }
}
