//! `ServerDriver`: the JS face of the core's server driver (`core/src/server.rs`), run by each
//! pod to publish its load and routing state and to own its users' persistent links.

use std::sync::Arc;

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;
use stateful_route as core;

use crate::config::{delay, load, pod_index, BaseConfig, RoutingState, ServerInfo, TrySetOutcome};
use crate::error::{OrThrow, Result};
use crate::extend::CalculatorArg;
use crate::runtime::promise;
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
    #[napi(ts_return_type = "Promise<void>")]
    pub fn start<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let s = self.inner.clone();
        promise(env, async move { s.start().await })
    }

    /// Drains and stops: publishes `DENY_NEW_CALL`, waits `drainSeconds`, publishes `SHUTDOWN`
    /// and ends the loop. Idempotent.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn stop<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let s = self.inner.clone();
        promise(env, async move { s.stop().await })
    }

    /// Sets the app's load (a whole number >= 0), published with the next period.
    #[napi]
    pub fn set_load_state(&self, load_state: f64) -> Result<()> {
        self.inner
            .set_load_state(load(load_state).or_throw()?)
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
    /// is logged and the formula's value is published.
    #[napi(ts_args_type = "calculator: ((input: LoadInput) => number) | null")]
    pub fn set_load_calculator(&self, calculator: CalculatorArg) {
        match calculator.0 {
            Some(c) => self.inner.set_load_calculator(c),
            None => self
                .inner
                .set_load_calculator(Arc::new(core::load::DefaultLoadCalculator)),
        }
    }

    /// Sets a custom load signal (`name`: `[A-Za-z0-9._-]`, a finite number) the load
    /// calculator sees in `input.signals`, from the next publish on.
    #[napi]
    pub fn set_load_signal(&self, name: String, value: f64) -> Result<()> {
        self.inner.set_load_signal(&name, value).or_throw()
    }

    /// Sets this pod's placement weight for the `'weighted'` policy (a whole number >= 0;
    /// default 100; 0 = never chosen by weight). Published at once when running.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_weight<'env>(
        &self,
        env: &'env Env,
        weight: f64,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let s = self.inner.clone();
        promise(env, async move { s.set_weight(load(weight)?).await })
    }

    /// This pod's placement weight.
    #[napi]
    pub fn get_weight(&self) -> u32 {
        self.inner.get_weight()
    }

    /// Sets the routing state; when running, publishes it at once (draining does not wait a
    /// period).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_routing_state<'env>(
        &self,
        env: &'env Env,
        routing_state: RoutingState,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let s = self.inner.clone();
        promise(env, async move {
            s.set_routing_state(routing_state.into()).await
        })
    }

    /// The routing state as last set.
    #[napi]
    pub fn get_routing_state(&self) -> RoutingState {
        self.inner.get_routing_state().into()
    }

    /// Links `uid` persistently to `pod`; resolves to the previous pod or `null`.
    #[napi(ts_return_type = "Promise<number | null>")]
    pub fn set_linked_pod<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
    ) -> napi::Result<PromiseRaw<'env, Option<u32>>> {
        let s = self.inner.clone();
        promise(env, async move {
            s.set_linked_pod(&namespace, &uid, &service, pod_index(pod)?)
                .await
        })
    }

    /// Links `uid` persistently to `pod` unless it is persistently linked to another pod.
    #[napi(ts_return_type = "Promise<TrySetOutcome>")]
    pub fn try_set_linked_pod<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
    ) -> napi::Result<PromiseRaw<'env, TrySetOutcome>> {
        let s = self.inner.clone();
        promise(env, async move {
            Ok(
                s.try_set_linked_pod(&namespace, &uid, &service, pod_index(pod)?)
                    .await?
                    .into(),
            )
        })
    }

    /// Removes the link now (`delaySeconds <= 0`) or after `delaySeconds`; resolves to whether
    /// a link existed.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn remove_linked_pod<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
        delay_seconds: f64,
    ) -> napi::Result<PromiseRaw<'env, bool>> {
        let s = self.inner.clone();
        promise(env, async move {
            s.remove_linked_pod(&namespace, &uid, &service, delay(delay_seconds)?)
                .await
        })
    }

    /// As `removeLinkedPod`, only if the link points to `pod`.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn remove_linked_pod_with_id<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
        delay_seconds: f64,
    ) -> napi::Result<PromiseRaw<'env, bool>> {
        let s = self.inner.clone();
        promise(env, async move {
            s.remove_linked_pod_with_id(
                &namespace,
                &uid,
                &service,
                pod_index(pod)?,
                delay(delay_seconds)?,
            )
            .await
        })
    }
}
