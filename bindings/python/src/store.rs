//! `Store`: Redis or the embedded in-memory store, and the link operations of SPEC §4.
//!
//! One macro writes the class twice: `stateful_route.Store` (asyncio: store calls return
//! awaitables) and `stateful_route.blocking.Store` (plain calls that release the GIL while they
//! wait). Both wrap the same core handle, so a store made by either works with both kinds of
//! driver. Nothing here decides anything: arguments are converted, the core is called.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use stateful_route::keys::KeySpace;
use stateful_route::store::MemoryBackend;
use stateful_route::{self as core, LinkTtl, StoreConfig};

use crate::args;
use crate::config::{Link, PodState, TrySetOutcome};
use crate::error::{invalid_argument, OrRaise};
use crate::runtime::{Async, Blocking, Bridge};

fn store_config(
    key_prefix: Option<&Bound<'_, PyAny>>,
    connect_timeout: Option<&Bound<'_, PyAny>>,
    command_timeout: Option<&Bound<'_, PyAny>>,
    tls_ca_cert_pem: Option<&Bound<'_, PyAny>>,
) -> PyResult<StoreConfig> {
    let d = StoreConfig::default();
    let secs = |o, field, default: Duration| -> PyResult<Duration> {
        let s = args::config_float(o, field, default.as_secs_f64())?;
        Duration::try_from_secs_f64(s).map_err(|_| {
            crate::error::invalid_config(field, format!("{s} must be a number of seconds >= 0"))
        })
    };
    // New core settings not exposed here keep their defaults.
    #[allow(clippy::needless_update)]
    let config = StoreConfig {
        key_prefix: args::config_text(key_prefix, "key_prefix", &d.key_prefix)?,
        connect_timeout: secs(connect_timeout, "connect_timeout", d.connect_timeout)?,
        command_timeout: secs(command_timeout, "command_timeout", d.command_timeout)?,
        tls_ca_cert_pem: pem(tls_ca_cert_pem)?,
        ..StoreConfig::default()
    };
    config.validate().or_raise()?;
    Ok(config)
}

/// `tls_ca_cert_pem`: PEM text as `bytes` or `str`, or `None`.
fn pem(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<u8>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => {
            if let Ok(b) = o.cast::<PyBytes>() {
                return Ok(Some(b.as_bytes().to_vec()));
            }
            if o.is_instance_of::<PyString>() {
                return Ok(Some(args::text(o, "tls_ca_cert_pem")?.as_bytes().to_vec()));
            }
            Err(crate::error::invalid_config(
                "tls_ca_cert_pem",
                "expected PEM text as bytes or str",
            ))
        }
    }
}

fn ttl(obj: &Bound<'_, PyAny>) -> PyResult<LinkTtl> {
    LinkTtl::from_secs(args::int(obj, "ttl")?).or_raise()
}

/// A store handle from either `Store` class (drivers take both).
pub fn store_arg(obj: &Bound<'_, PyAny>) -> PyResult<core::Store> {
    if let Ok(s) = obj.cast::<Store>() {
        return Ok(s.get().inner.clone());
    }
    if let Ok(s) = obj.cast::<BlockingStore>() {
        return Ok(s.get().inner.clone());
    }
    Err(invalid_argument("store", "expected a Store"))
}

macro_rules! store_class {
    ($name:ident, $module:literal, $bridge:ty) => {
        /// Where links and pod states live: Redis (`Store.connect`) or memory (`Store.memory`).
        #[pyclass(module = $module, name = "Store", frozen)]
        #[derive(Debug)]
        pub struct $name {
            pub(crate) inner: core::Store,
            memory: Option<Arc<MemoryBackend>>,
        }

        #[pymethods]
        impl $name {
            /// The embedded in-memory store (one per call; share the object to share data).
            #[staticmethod]
            #[pyo3(signature = (*, key_prefix = None))]
            fn memory(key_prefix: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
                let config = store_config(key_prefix, None, None, None)?;
                let backend = Arc::new(MemoryBackend::new(KeySpace::new(config.key_prefix)));
                Ok($name {
                    inner: core::Store::from_shared(backend.clone()),
                    memory: Some(backend),
                })
            }

            /// Connects to Redis at `url` (`redis://[user:password@]host:port[/db]`, or
            /// `rediss://` for TLS). Timeouts are in seconds; `tls_ca_cert_pem` (bytes or str)
            /// is a CA certificate trusted for `rediss://` besides the system's roots.
            #[staticmethod]
            #[pyo3(signature = (url, *, key_prefix = None, connect_timeout = None, command_timeout = None, tls_ca_cert_pem = None))]
            fn connect<'py>(
                py: Python<'py>,
                url: &Bound<'py, PyAny>,
                key_prefix: Option<&Bound<'py, PyAny>>,
                connect_timeout: Option<&Bound<'py, PyAny>>,
                command_timeout: Option<&Bound<'py, PyAny>>,
                tls_ca_cert_pem: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let url = args::text(url, "url")?.into_owned();
                let config = store_config(key_prefix, connect_timeout, command_timeout, tls_ca_cert_pem)?;
                <$bridge>::run(py, async move {
                    let inner = core::Store::redis_with(&url, &config).await?;
                    Ok($name { inner, memory: None })
                })
            }

            /// Connects to a Redis Cluster through any of its nodes (`urls`: seed node URLs).
            /// Behaviour is the same as on one node; redirections and failovers are followed
            /// by the client. Settings as for `connect`.
            #[staticmethod]
            #[pyo3(signature = (urls, *, key_prefix = None, connect_timeout = None, command_timeout = None, tls_ca_cert_pem = None))]
            fn connect_cluster<'py>(
                py: Python<'py>,
                urls: &Bound<'py, PyAny>,
                key_prefix: Option<&Bound<'py, PyAny>>,
                connect_timeout: Option<&Bound<'py, PyAny>>,
                command_timeout: Option<&Bound<'py, PyAny>>,
                tls_ca_cert_pem: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let urls = args::texts(urls, "urls")?;
                let config = store_config(key_prefix, connect_timeout, command_timeout, tls_ca_cert_pem)?;
                <$bridge>::run(py, async move {
                    let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
                    let inner = core::Store::redis_cluster_with(&seeds, &config).await?;
                    Ok($name { inner, memory: None })
                })
            }

            /// Connects to the master that the Redis Sentinels at `sentinel_urls` call
            /// `master_name`; after a failover the store follows the new master. Settings as
            /// for `connect`.
            #[staticmethod]
            #[pyo3(signature = (sentinel_urls, master_name, *, key_prefix = None, connect_timeout = None, command_timeout = None, tls_ca_cert_pem = None))]
            #[allow(clippy::too_many_arguments)]
            fn connect_sentinel<'py>(
                py: Python<'py>,
                sentinel_urls: &Bound<'py, PyAny>,
                master_name: &Bound<'py, PyAny>,
                key_prefix: Option<&Bound<'py, PyAny>>,
                connect_timeout: Option<&Bound<'py, PyAny>>,
                command_timeout: Option<&Bound<'py, PyAny>>,
                tls_ca_cert_pem: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let urls = args::texts(sentinel_urls, "sentinel_urls")?;
                let master = args::text(master_name, "master_name")?.into_owned();
                let config = store_config(key_prefix, connect_timeout, command_timeout, tls_ca_cert_pem)?;
                <$bridge>::run(py, async move {
                    let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
                    let inner = core::Store::redis_sentinel_with(&seeds, &master, &config).await?;
                    Ok($name { inner, memory: None })
                })
            }

            /// SPEC §4 `set_link`: returns the previous pod or `None`. `ttl`: -1 persistent, > 0 s.
            fn set_link<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
                pod: &Bound<'py, PyAny>,
                ttl: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = strings(namespace, uid, service)?;
                let (pod, ttl) = (args::pod(pod, "pod")?, self::ttl(ttl)?);
                let s = self.inner.clone();
                <$bridge>::run(py, async move { s.set_link(&ns, &uid, &svc, pod, ttl).await })
            }

            /// SPEC §4 `set_link_if_absent`: the `Link` in force afterwards.
            fn set_link_if_absent<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
                pod: &Bound<'py, PyAny>,
                ttl: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = strings(namespace, uid, service)?;
                let (pod, ttl) = (args::pod(pod, "pod")?, self::ttl(ttl)?);
                let s = self.inner.clone();
                <$bridge>::run(py, async move {
                    s.set_link_if_absent(&ns, &uid, &svc, pod, ttl).await.map(Link::from)
                })
            }

            /// SPEC §4 `try_set_link`: a `TrySetOutcome`.
            fn try_set_link<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
                pod: &Bound<'py, PyAny>,
                ttl: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = strings(namespace, uid, service)?;
                let (pod, ttl) = (args::pod(pod, "pod")?, self::ttl(ttl)?);
                let s = self.inner.clone();
                <$bridge>::run(py, async move {
                    s.try_set_link(&ns, &uid, &svc, pod, ttl).await.map(TrySetOutcome::from)
                })
            }

            /// SPEC §4 `remove_link`: `delay` (None = 0) <= 0 removes now, else expires after `delay`
            /// seconds. Whether a link existed.
            #[pyo3(signature = (namespace, uid, service, delay = None))]
            fn remove_link<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
                delay: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = strings(namespace, uid, service)?;
                let delay = args::opt_int(delay, "delay", 0)?;
                let s = self.inner.clone();
                <$bridge>::run(py, async move { s.remove_link(&ns, &uid, &svc, delay).await })
            }

            /// SPEC §4 `remove_link_if`: as `remove_link`, only if the link points to `pod`.
            #[pyo3(signature = (namespace, uid, service, pod, delay = None))]
            fn remove_link_if<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
                pod: &Bound<'py, PyAny>,
                delay: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = strings(namespace, uid, service)?;
                let pod = args::pod(pod, "pod")?;
                let delay = args::opt_int(delay, "delay", 0)?;
                let s = self.inner.clone();
                <$bridge>::run(py, async move { s.remove_link_if(&ns, &uid, &svc, pod, delay).await })
            }

            /// SPEC §4 `get_link`: a `Link` or `None`.
            fn get_link<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = strings(namespace, uid, service)?;
                let s = self.inner.clone();
                <$bridge>::run(py, async move { s.get_link(&ns, &uid, &svc).await.map(|l| l.map(Link::from)) })
            }

            /// SPEC §4 `get_link_if_persist`: the pod of a persistent link, else `None`.
            fn get_link_if_persist<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = strings(namespace, uid, service)?;
                let s = self.inner.clone();
                <$bridge>::run(py, async move { s.get_link_if_persist(&ns, &uid, &svc).await })
            }

            /// SPEC §4 `get_link_services`: `{service: pod}` of the user's persistent links.
            fn get_link_services<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let ns = args::text(namespace, "namespace")?.into_owned();
                let uid = args::text(uid, "uid")?.into_owned();
                let s = self.inner.clone();
                <$bridge>::run(py, async move { s.get_link_services(&ns, &uid).await })
            }

            /// SPEC §4 `batch_get_links`: `{pod: [uid, …]}` in input order; absent uids left out.
            fn batch_get_links<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uids: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let ns = args::text(namespace, "namespace")?.into_owned();
                let uids = args::texts(uids, "uids")?;
                let svc = args::text(service, "service")?.into_owned();
                let s = self.inner.clone();
                <$bridge>::run(py, async move { s.batch_get_links(&ns, &uids, &svc).await })
            }

            /// The published pod states of a service, sorted by pod index.
            fn pod_states<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let ns = args::text(namespace, "namespace")?.into_owned();
                let svc = args::text(service, "service")?.into_owned();
                let s = self.inner.clone();
                <$bridge>::run(py, async move {
                    let states = s.pod_states(&ns, &svc).await?;
                    Ok(states.pods.into_iter().map(PodState::from).collect::<Vec<_>>())
                })
            }

            /// Keys of an in-memory store, sorted (for tests; `None` for Redis).
            fn _keys(&self) -> Option<Vec<String>> {
                self.memory.as_ref().map(|m| m.keys())
            }

            fn __repr__(&self) -> &'static str {
                if self.memory.is_some() {
                    "<Store memory>"
                } else {
                    "<Store redis>"
                }
            }
        }
    };
}

/// The three identifiers of a link, owned (for a future that outlives the call).
fn strings(
    namespace: &Bound<'_, PyAny>,
    uid: &Bound<'_, PyAny>,
    service: &Bound<'_, PyAny>,
) -> PyResult<(String, String, String)> {
    Ok((
        args::text(namespace, "namespace")?.into_owned(),
        args::text(uid, "uid")?.into_owned(),
        args::text(service, "service")?.into_owned(),
    ))
}

store_class!(Store, "stateful_route", Async);
store_class!(BlockingStore, "stateful_route.blocking", Blocking);
