//! The server driver: a pod publishing its state and owning its users' links (SPEC §7).
//!
//! `start` publishes at once and then every period on the shared runtime (the store clock's); a routing-state
//! change is published at once. `stop` drains (`DENY_NEW_CALL`, wait, `SHUTDOWN`) in a task of
//! its own, so a caller that gives up waiting cannot leave a pod half stopped.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::client::resolve_namespace;
use crate::config::{BaseConfig, LinkTtl, RoutingState, ServerInfo, TrySetOutcome};
use crate::cpu::CpuSampler;
use crate::error::{Error, ErrorKind, Result};
use crate::ident;
use crate::load::{default_weighted_load, DefaultLoadCalculator, LoadCalculator, LoadInput};
use crate::pod_state::DEFAULT_WEIGHT;
use crate::route_info::RouteInfo;
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    New,
    Running,
    Stopping,
    Stopped,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    load: u32,
    routing: RoutingState,
    cpu_percent: f64,
    weight: u32,
    signals: BTreeMap<String, f64>,
}

struct Inner {
    store: Store,
    info: ServerInfo,
    config: Arc<BaseConfig>,
    route: Arc<RouteInfo>,
    state: Mutex<State>,
    calculator: RwLock<Arc<dyn LoadCalculator>>,
    /// Serialises publishes so that an older state never overwrites a newer one.
    publish: tokio::sync::Mutex<()>,
    stop_loop: watch::Sender<bool>,
    /// Ends the read side's refresh loop (when the driver is dropped).
    stop_route: watch::Sender<bool>,
    stopped: watch::Sender<Option<Result<()>>>,
}

/// The pod side. Cheap to clone; clones share one driver.
#[derive(Clone)]
pub struct ServerDriver {
    inner: Arc<Inner>,
}

impl fmt::Debug for ServerDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerDriver")
            .field("info", &self.inner.info)
            .field("state", &*self.inner.lock())
            .finish()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The weighted load from the current inputs, by the configured calculator. The state lock
    /// is not held while user code runs.
    fn try_weighted_load(&self) -> Result<u32> {
        let (load, cpu_percent, signals) = {
            let s = self.lock();
            (s.load, s.cpu_percent, s.signals.clone())
        };
        let input = LoadInput {
            load,
            cpu_percent,
            cpu_factor: self.config.cpu_factor,
            signals: &signals,
        };
        let calc = self
            .calculator
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| calc.weighted_load(&input)))
        {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Internal,
                "the load calculator panicked",
            )),
        }
    }

    /// The load to publish: the calculator's, or SPEC's formula (logged) if it failed.
    fn weighted_load(&self) -> u32 {
        self.try_weighted_load().unwrap_or_else(|e| {
            tracing::warn!(service = %self.info.service_name, pod = self.info.pod_index, error = %e,
                "load calculator failed; publishing the default formula");
            let s = self.lock();
            default_weighted_load(self.config.cpu_factor, s.cpu_percent, s.load)
        })
    }

    /// Publishes the current state (read under the publish lock, so the newest wins).
    async fn publish(&self) -> Result<u64> {
        let _serial = self.publish.lock().await;
        self.publish_locked().await
    }

    /// Publishes the pod state, then (pod 0) the workload state that goes with it: `SHUTDOWN`
    /// once the pod published `SHUTDOWN`, else `READY`. Both under the publish lock, and the
    /// state is read inside it, so a periodic tick and `stop` can never interleave their writes
    /// (pod 0 cannot leave `READY` after `SHUTDOWN`).
    async fn publish_with_workload(&self) -> Result<()> {
        let (pod, workload) = self.publish_both().await;
        pod.map(|_| ()).and(workload)
    }

    /// [`Inner::publish_with_workload`], with the two outcomes apart.
    async fn publish_both(&self) -> (Result<u64>, Result<()>) {
        let _serial = self.publish.lock().await;
        let pod = self.publish_locked().await;
        let word = if self.lock().routing == RoutingState::Shutdown {
            "SHUTDOWN"
        } else {
            "READY"
        };
        let workload = self.publish_workload(word).await;
        (pod, workload)
    }

    async fn publish_locked(&self) -> Result<u64> {
        let load = self.weighted_load();
        let (routing, weight) = {
            let s = self.lock();
            (s.routing, s.weight)
        };
        let i = &self.info;
        let at = self
            .store
            .publish_pod_state_weighted(
                &i.namespace,
                &i.service_name,
                i.pod_index,
                load,
                routing,
                weight,
            )
            .await?;
        tracing::debug!(service = %i.service_name, pod = i.pod_index, load, routing = %routing, "published pod state");
        Ok(at)
    }

    async fn publish_workload(&self, state: &str) -> Result<()> {
        if self.info.pod_index == 0 {
            let i = &self.info;
            self.store
                .set_workload_state(&i.namespace, &i.service_name, state)
                .await?;
        }
        Ok(())
    }

    /// One period's publish; returns `false` when the pod's state did not reach the store
    /// because the store could not be reached (worth retrying soon).
    async fn tick(&self, sampler: &mut Option<CpuSampler>) -> bool {
        if let Some(s) = sampler {
            let pct = s.sample();
            self.lock().cpu_percent = pct;
        }
        let (pod, workload) = self.publish_both().await;
        for e in pod
            .as_ref()
            .err()
            .into_iter()
            .chain(workload.as_ref().err())
        {
            tracing::warn!(service = %self.info.service_name, pod = self.info.pod_index, error = %e,
                "periodic state publish failed");
        }
        !matches!(&pod, Err(e) if is_unreachable(e))
    }

    /// A retry of a failed periodic publish: whether the pod's state got through (or failed
    /// for another reason than an unreachable store: then the next period tries again).
    async fn retry(&self) -> bool {
        let (pod, _) = self.publish_both().await;
        match pod {
            Ok(_) => {
                tracing::info!(service = %self.info.service_name, pod = self.info.pod_index,
                    "pod state published again");
                true
            }
            Err(e) => !is_unreachable(&e),
        }
    }

    async fn shutdown(&self) -> Result<()> {
        self.lock().routing = RoutingState::DenyNewCall;
        let first = self.publish().await.map(|_| ());
        let drain = Duration::from_secs_f64(self.config.drain_seconds);
        if !drain.is_zero() {
            tokio::time::sleep(drain).await;
        }
        let _ = self.stop_loop.send(true);
        self.lock().routing = RoutingState::Shutdown;
        let second = self.publish_with_workload().await;
        self.lock().phase = Phase::Stopped;
        tracing::info!(service = %self.info.service_name, pod = self.info.pod_index, "pod stopped");
        first.and(second)
    }
}

impl ServerDriver {
    /// A driver for the pod `info`; checks `info` and `config`. Call [`ServerDriver::start`].
    pub fn new(store: Store, info: ServerInfo, config: BaseConfig) -> Result<ServerDriver> {
        info.validate()?;
        config.validate()?;
        let config = Arc::new(config);
        let route = RouteInfo::new(store.clone(), info.namespace.clone(), config.clone(), None);
        // The read side refreshes like a client's (only the services it was asked about), from
        // now until the driver is dropped: a pod that reads other pods' states must not see
        // them all go stale.
        let stop_route = watch::channel(false).0;
        route.spawn_refresh(stop_route.subscribe());
        Ok(ServerDriver {
            inner: Arc::new(Inner {
                route,
                store,
                info,
                config,
                state: Mutex::new(State {
                    phase: Phase::New,
                    load: 0,
                    routing: RoutingState::Ready,
                    cpu_percent: 0.0,
                    weight: DEFAULT_WEIGHT,
                    signals: BTreeMap::new(),
                }),
                calculator: RwLock::new(Arc::new(DefaultLoadCalculator)),
                publish: tokio::sync::Mutex::new(()),
                stop_loop: watch::channel(false).0,
                stop_route,
                stopped: watch::channel(None).0,
            }),
        })
    }

    /// Who this driver is.
    pub fn server_info(&self) -> &ServerInfo {
        &self.inner.info
    }

    /// The configuration in force.
    pub fn config(&self) -> &BaseConfig {
        &self.inner.config
    }

    /// The read side in this pod's namespace.
    pub fn route_info(&self) -> &RouteInfo {
        &self.inner.route
    }

    /// Publishes the pod state at once, then every period. A second `start` is
    /// `INVALID_ARGUMENT`; a `start` after `stop` is `CLOSED`. If the first publish fails the
    /// driver stays unstarted and the error is returned.
    pub async fn start(&self) -> Result<()> {
        {
            let mut s = self.inner.lock();
            match s.phase {
                Phase::New => s.phase = Phase::Running,
                Phase::Running => {
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        "server driver is already started",
                    ))
                }
                Phase::Stopping | Phase::Stopped => {
                    return Err(Error::closed("server driver is stopped"))
                }
            }
        }
        if let Err(e) = self.inner.publish_with_workload().await {
            // Back to unstarted, unless a `stop` came meanwhile: then the driver stays closed.
            let mut s = self.inner.lock();
            if s.phase == Phase::Running {
                s.phase = Phase::New;
            }
            return Err(e);
        }
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.config.period();
        let mut stop = self.inner.stop_loop.subscribe();
        let mut sampler = (self.inner.config.cpu_factor > 0.0).then(CpuSampler::new);
        let retry = period.min(Duration::from_secs(1));
        self.inner.store.clock().handle().spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tick.tick() => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                let mut published = inner.tick(&mut sampler).await;
                drop(inner);
                // A publish that failed because the store could not be reached is retried every
                // second (a period at most) until the pod's state gets through, so that after an
                // outage the pod is fresh in the store within a second of its return instead of
                // up to a period later (when it may look dead).
                let retried = !published;
                while !published {
                    tokio::select! {
                        biased;
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(retry) => {}
                    }
                    let Some(inner) = weak.upgrade() else { return };
                    published = inner.retry().await;
                }
                if retried {
                    tick.reset(); // the next periodic publish a period after this one
                }
            }
        });
        tracing::info!(service = %self.inner.info.service_name, pod = self.inner.info.pod_index, "pod started");
        Ok(())
    }

    /// Waits for SIGTERM (what Kubernetes sends a pod it stops) or SIGINT, then runs
    /// [`ServerDriver::stop`]: the graceful-shutdown helper (README "Kubernetes"). Returns the
    /// signal's name with stop's outcome. Set `terminationGracePeriodSeconds` above
    /// `drain_seconds` so the drain finishes.
    ///
    /// ```no_run
    /// # async fn run(server: stateful_route::ServerDriver) -> stateful_route::Result<()> {
    /// server.start().await?;
    /// tokio::spawn(async move { server.stop_on_signal().await });
    /// # Ok(()) }
    /// ```
    #[cfg(unix)]
    pub async fn stop_on_signal(&self) -> Result<&'static str> {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = {
            let _guard = crate::runtime::handle().enter();
            let listen = |kind| {
                signal(kind).map_err(|e| {
                    Error::new(
                        ErrorKind::Internal,
                        format!("cannot listen for signals: {e}"),
                    )
                })
            };
            (
                listen(SignalKind::terminate())?,
                listen(SignalKind::interrupt())?,
            )
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stopping the pod on a signal");
        self.stop().await.map(|()| name)
    }

    /// Drains and stops: publishes `DENY_NEW_CALL`, waits `drain_seconds`, publishes `SHUTDOWN`
    /// (pod 0 also sets the workload state `SHUTDOWN`) and ends the loop. Idempotent; a stop
    /// before start just closes the driver. If the caller stops waiting, the shutdown still
    /// finishes.
    pub async fn stop(&self) -> Result<()> {
        let mut done = self.inner.stopped.subscribe();
        {
            let mut s = self.inner.lock();
            match s.phase {
                Phase::New => {
                    s.phase = Phase::Stopped;
                    let _ = self.inner.stop_loop.send(true);
                    let _ = self.inner.stopped.send(Some(Ok(())));
                }
                Phase::Running => {
                    s.phase = Phase::Stopping;
                    let inner = self.inner.clone();
                    self.inner.store.clock().handle().spawn(async move {
                        let r = inner.shutdown().await;
                        let _ = inner.stopped.send(Some(r));
                    });
                }
                Phase::Stopping | Phase::Stopped => {}
            }
        }
        let r = done
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::new(ErrorKind::Internal, "stop task vanished"))?;
        r.clone().unwrap_or(Ok(()))
    }

    fn check_not_stopped(&self) -> Result<()> {
        match self.inner.lock().phase {
            Phase::Stopping | Phase::Stopped => Err(Error::closed("server driver is stopped")),
            _ => Ok(()),
        }
    }

    /// Sets the app's load (≥ 0); published with the next period. Allowed before `start`.
    pub fn set_load_state(&self, load: u32) -> Result<()> {
        let mut s = self.inner.lock();
        if matches!(s.phase, Phase::Stopping | Phase::Stopped) {
            return Err(Error::closed("server driver is stopped"));
        }
        s.load = load;
        Ok(())
    }

    /// The app's load as last set.
    pub fn get_load_state(&self) -> u32 {
        self.inner.lock().load
    }

    /// The weighted load this pod publishes (SPEC §5, or the custom calculator's) from the
    /// last CPU sample.
    pub fn weighted_load(&self) -> u32 {
        self.inner.weighted_load()
    }

    /// The custom calculator's answer for the current inputs, with its error if it fails.
    pub fn try_weighted_load(&self) -> Result<u32> {
        self.inner.try_weighted_load()
    }

    /// Replaces SPEC's load formula with `calculator` for every later publish.
    pub fn set_load_calculator(&self, calculator: Arc<dyn LoadCalculator>) {
        *self
            .inner
            .calculator
            .write()
            .unwrap_or_else(|p| p.into_inner()) = calculator;
    }

    /// Sets a custom load signal the calculator sees (published with the next period).
    pub fn set_load_signal(&self, name: &str, value: f64) -> Result<()> {
        if !value.is_finite() {
            return Err(Error::invalid_argument(
                "value",
                format!("{value} is not a finite number"),
            ));
        }
        ident::check_service("name", name)?;
        let mut s = self.inner.lock();
        if matches!(s.phase, Phase::Stopping | Phase::Stopped) {
            return Err(Error::closed("server driver is stopped"));
        }
        s.signals.insert(name.to_string(), value);
        Ok(())
    }

    /// Sets this pod's placement weight for `Placement::Weighted` (default 100; 0 = never chosen
    /// by weight). Published at once when running.
    pub async fn set_weight(&self, weight: u32) -> Result<()> {
        self.update_and_publish(|s| s.weight = weight).await
    }

    /// This pod's placement weight.
    pub fn get_weight(&self) -> u32 {
        self.inner.lock().weight
    }

    /// Sets the routing state; when running, publishes it at once.
    pub async fn set_routing_state(&self, routing: RoutingState) -> Result<()> {
        self.update_and_publish(|s| s.routing = routing).await
    }

    /// Applies `change` unless stopped; when running, publishes the new state at once.
    async fn update_and_publish(&self, change: impl FnOnce(&mut State)) -> Result<()> {
        let running = {
            let mut s = self.inner.lock();
            if matches!(s.phase, Phase::Stopping | Phase::Stopped) {
                return Err(Error::closed("server driver is stopped"));
            }
            change(&mut s);
            s.phase == Phase::Running
        };
        if running {
            self.inner.publish().await?;
        }
        Ok(())
    }

    /// The routing state as last set.
    pub fn get_routing_state(&self) -> RoutingState {
        self.inner.lock().routing
    }

    fn ns(&self, ns: &str) -> Result<&str> {
        self.check_not_stopped()?;
        resolve_namespace(&self.inner.info.namespace, ns)
    }

    /// `SetLinkedPod`: links `uid` persistently to `pod`; returns the previous pod.
    pub async fn set_linked_pod(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
        pod: u32,
    ) -> Result<Option<u32>> {
        let ns = self.ns(ns)?;
        self.inner
            .store
            .set_link(ns, uid, service, pod, LinkTtl::Persistent)
            .await
    }

    /// `TrySetLinkedPod`: links `uid` persistently to `pod` unless it is persistently linked
    /// to another pod.
    pub async fn try_set_linked_pod(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
        pod: u32,
    ) -> Result<TrySetOutcome> {
        let ns = self.ns(ns)?;
        self.inner
            .store
            .try_set_link(ns, uid, service, pod, LinkTtl::Persistent)
            .await
    }

    /// `RemoveLinkedPod`: removes the link now (`delay_secs <= 0`) or after `delay_secs`.
    pub async fn remove_linked_pod(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
        delay_secs: i64,
    ) -> Result<bool> {
        let ns = self.ns(ns)?;
        self.inner
            .store
            .remove_link(ns, uid, service, delay_secs)
            .await
    }

    /// `RemoveLinkedPodWithId`: as `remove_linked_pod`, only if the link points to `pod`.
    pub async fn remove_linked_pod_with_id(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
        pod: u32,
        delay_secs: i64,
    ) -> Result<bool> {
        let ns = self.ns(ns)?;
        ident::check_pod(pod)?;
        self.inner
            .store
            .remove_link_if(ns, uid, service, pod, delay_secs)
            .await
    }
}

/// The store could not be reached (or did not answer in time): the failures a quick retry may
/// get past, unlike a refusal (an ACL, a wrong-typed key) that would fail the same way.
fn is_unreachable(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::StoreUnavailable | ErrorKind::Timeout)
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.stop_loop.send(true);
        let _ = self.stop_route.send(true);
    }
}
