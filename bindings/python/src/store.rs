//! `Store`: Redis or the embedded in-memory store, and the link operations of SPEC §4.
//!
//! One class; its `blocking` field (set from the class attribute `_blocking` of
//! `stateful_route.blocking.Store`) picks plain calls that release the GIL while they wait, or
//! asyncio awaitables. Both wrap the same core handle, so a store made by either works with
//! both kinds of driver (and `blocking.Store(store)` is the same store, blocking). Nothing
//! here decides anything: arguments are converted, the core is called.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyType};
use stateful_route::keys::KeySpace;
use stateful_route::store::MemoryBackend;
use stateful_route::{self as core, LinkTtl, StoreConfig};

use crate::args::{self, ids, owned, Obj, Out};
use crate::config::{Link, PodState, TrySetOutcome};
use crate::error::{invalid_argument, invalid_config, OrRaise};
use crate::runtime::{self, is_blocking};

fn store_config(
    key_prefix: Option<&Obj>,
    connect_timeout: Option<&Obj>,
    command_timeout: Option<&Obj>,
    tls_ca_cert_pem: Option<&Obj>,
    propagation: bool,
) -> PyResult<StoreConfig> {
    let d = StoreConfig::default();
    let secs = |o, field, default: Duration| -> PyResult<Duration> {
        let s = args::config_float(o, field, default.as_secs_f64())?;
        Duration::try_from_secs_f64(s)
            .map_err(|_| invalid_config(field, format!("{s} must be a number of seconds >= 0")))
    };
    // New core settings not exposed here keep their defaults.
    #[allow(clippy::needless_update)]
    let config = StoreConfig {
        key_prefix: args::config_text(key_prefix, "key_prefix", &d.key_prefix)?,
        connect_timeout: secs(connect_timeout, "connect_timeout", d.connect_timeout)?,
        command_timeout: secs(command_timeout, "command_timeout", d.command_timeout)?,
        tls_ca_cert_pem: pem(tls_ca_cert_pem)?,
        propagation,
        ..StoreConfig::default()
    };
    config.validate().or_raise()?;
    Ok(config)
}

/// `tls_ca_cert_pem`: PEM text as `bytes` or `str`, or `None`.
fn pem(obj: Option<&Obj>) -> PyResult<Option<Vec<u8>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) if o.is_instance_of::<PyString>() => {
            Ok(Some(args::text(o, "tls_ca_cert_pem")?.as_bytes().to_vec()))
        }
        Some(o) => match o.cast::<PyBytes>() {
            Ok(b) => Ok(Some(b.as_bytes().to_vec())),
            Err(_) => Err(invalid_config(
                "tls_ca_cert_pem",
                "expected PEM text as bytes or str",
            )),
        },
    }
}

fn ttl(obj: &Obj) -> PyResult<LinkTtl> {
    LinkTtl::from_secs(args::int(obj, "ttl")?).or_raise()
}

/// A store handle from a `Store` of either module (drivers take both).
pub fn store_arg(obj: &Obj) -> PyResult<core::Store> {
    match obj.cast::<Store>() {
        Ok(s) => Ok(s.get().inner.clone()),
        Err(_) => Err(invalid_argument("store", "expected a Store")),
    }
}

/// A new store of class `cls` (`Store` or a subclass such as `stateful_route.blocking.Store`),
/// made where the GIL is held: on the caller's thread, or on the loop's when a connect is done.
struct NewStore {
    cls: Py<PyType>,
    inner: core::Store,
    memory: Option<Arc<MemoryBackend>>,
}

impl<'py> IntoPyObject<'py> for NewStore {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (inner, memory, blocking) = (self.inner, self.memory, false);
        self.cls.bind(py).call1((Store {
            inner,
            memory,
            blocking,
        },))
    }
}

/// Where links and pod states live: Redis (`Store.connect`) or memory (`Store.memory`).
#[pyclass(module = "stateful_route", name = "Store", frozen, subclass)]
#[derive(Debug)]
pub struct Store {
    inner: core::Store,
    memory: Option<Arc<MemoryBackend>>,
    blocking: bool,
}

impl Store {
    /// Runs `f(store)` on the bridge of this class.
    fn run<T, Fut>(&self, f: impl FnOnce(core::Store) -> Fut) -> Out
    where
        Fut: Future<Output = core::Result<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let fut = f(self.inner.clone());
        Python::attach(|py| runtime::run(py, self.blocking, fut).map(Bound::unbind))
    }

    /// A store of class `cls` from `connect` (on that class's bridge).
    fn connect_as<Fut>(cls: &Bound<'_, PyType>, connect: Fut) -> Out
    where
        Fut: Future<Output = core::Result<core::Store>> + Send + 'static,
    {
        let owner = cls.clone().unbind();
        let fut = async move {
            let (cls, inner, memory) = (owner, connect.await?, None);
            Ok(NewStore { cls, inner, memory })
        };
        runtime::run(cls.py(), is_blocking(cls)?, fut).map(Bound::unbind)
    }
}

#[pymethods]
impl Store {
    /// The same store as `store`, with this class's calling convention (asyncio for
    /// `stateful_route.Store`, blocking for `stateful_route.blocking.Store`).
    #[new]
    #[classmethod]
    fn new(cls: &Bound<'_, PyType>, store: &Bound<'_, Store>) -> PyResult<Self> {
        let (inner, memory) = (store.get().inner.clone(), store.get().memory.clone());
        let blocking = is_blocking(cls)?;
        Ok(Store {
            inner,
            memory,
            blocking,
        })
    }

    /// The embedded in-memory store (one per call; share the object to share data).
    #[classmethod]
    /// `propagation=False`: writers deliver no events and its client drivers follow the
    /// cache's TTL rule alone (as `connect`'s).
    #[pyo3(signature = (*, key_prefix = None, propagation = true))]
    fn memory<'py>(
        cls: &Bound<'py, PyType>,
        key_prefix: Option<&Obj>,
        propagation: bool,
    ) -> PyResult<Obj<'py>> {
        let config = store_config(key_prefix, None, None, None, propagation)?;
        let backend = MemoryBackend::new(KeySpace::new(config.key_prefix));
        let backend = Arc::new(match propagation {
            true => backend,
            false => backend.without_events(),
        });
        let inner = core::Store::from_shared(backend.clone());
        let (owner, memory) = (cls.clone().unbind(), Some(backend));
        NewStore {
            cls: owner,
            inner,
            memory,
        }
        .into_pyobject(cls.py())
    }

    /// Connects to Redis at `url` (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` for TLS). Timeouts are in seconds; `tls_ca_cert_pem` (bytes or str)
    /// is a CA certificate trusted for `rediss://` besides the system's roots.
    /// `propagation=False`: writers publish no events and client drivers subscribe to none
    /// (their caches follow the TTL rule alone; for an ACL without `PUBLISH`/`SUBSCRIBE`).
    #[classmethod]
    #[pyo3(signature = (url, *, key_prefix = None, connect_timeout = None, command_timeout = None, tls_ca_cert_pem = None, propagation = true))]
    fn connect(
        cls: &Bound<'_, PyType>,
        url: &Obj,
        key_prefix: Option<&Obj>,
        connect_timeout: Option<&Obj>,
        command_timeout: Option<&Obj>,
        tls_ca_cert_pem: Option<&Obj>,
        propagation: bool,
    ) -> Out {
        let url = owned(url, "url")?;
        let c = store_config(
            key_prefix,
            connect_timeout,
            command_timeout,
            tls_ca_cert_pem,
            propagation,
        )?;
        Self::connect_as(cls, async move { core::Store::redis_with(&url, &c).await })
    }

    /// Connects to a Redis Cluster through any of its nodes (`urls`: seed node URLs).
    /// Behaviour is the same as on one node; redirections and failovers are followed
    /// by the client. Settings as for `connect`.
    #[classmethod]
    #[pyo3(signature = (urls, *, key_prefix = None, connect_timeout = None, command_timeout = None, tls_ca_cert_pem = None, propagation = true))]
    fn connect_cluster(
        cls: &Bound<'_, PyType>,
        urls: &Obj,
        key_prefix: Option<&Obj>,
        connect_timeout: Option<&Obj>,
        command_timeout: Option<&Obj>,
        tls_ca_cert_pem: Option<&Obj>,
        propagation: bool,
    ) -> Out {
        let urls = args::texts(urls, "urls")?;
        let c = store_config(
            key_prefix,
            connect_timeout,
            command_timeout,
            tls_ca_cert_pem,
            propagation,
        )?;
        Self::connect_as(cls, async move {
            let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
            core::Store::redis_cluster_with(&seeds, &c).await
        })
    }

    /// Connects to the master that the Redis Sentinels at `sentinel_urls` call
    /// `master_name`; after a failover the store follows the new master. Settings as
    /// for `connect`.
    #[classmethod]
    #[pyo3(signature = (sentinel_urls, master_name, *, key_prefix = None, connect_timeout = None, command_timeout = None, tls_ca_cert_pem = None, propagation = true))]
    #[allow(clippy::too_many_arguments)]
    fn connect_sentinel(
        cls: &Bound<'_, PyType>,
        sentinel_urls: &Obj,
        master_name: &Obj,
        key_prefix: Option<&Obj>,
        connect_timeout: Option<&Obj>,
        command_timeout: Option<&Obj>,
        tls_ca_cert_pem: Option<&Obj>,
        propagation: bool,
    ) -> Out {
        let urls = args::texts(sentinel_urls, "sentinel_urls")?;
        let master = owned(master_name, "master_name")?;
        let c = store_config(
            key_prefix,
            connect_timeout,
            command_timeout,
            tls_ca_cert_pem,
            propagation,
        )?;
        Self::connect_as(cls, async move {
            let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
            core::Store::redis_sentinel_with(&seeds, &master, &c).await
        })
    }

    /// SPEC §4 `set_link`: returns the previous pod or `None`. `ttl`: -1 persistent, > 0 s.
    fn set_link(&self, namespace: &Obj, uid: &Obj, service: &Obj, pod: &Obj, ttl: &Obj) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        let (pod, ttl) = (args::pod(pod, "pod")?, self::ttl(ttl)?);
        self.run(|s| async move { s.set_link(&ns, &uid, &svc, pod, ttl).await })
    }

    /// SPEC §4 `set_link_if_absent`: the `Link` in force afterwards.
    fn set_link_if_absent(
        &self,
        namespace: &Obj,
        uid: &Obj,
        service: &Obj,
        pod: &Obj,
        ttl: &Obj,
    ) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        let (pod, ttl) = (args::pod(pod, "pod")?, self::ttl(ttl)?);
        self.run(|s| async move {
            let link = s.set_link_if_absent(&ns, &uid, &svc, pod, ttl).await?;
            Ok(Link::from(link))
        })
    }

    /// SPEC §4 `try_set_link`: a `TrySetOutcome`.
    fn try_set_link(&self, namespace: &Obj, uid: &Obj, service: &Obj, pod: &Obj, ttl: &Obj) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        let (pod, ttl) = (args::pod(pod, "pod")?, self::ttl(ttl)?);
        self.run(|s| async move {
            let outcome = s.try_set_link(&ns, &uid, &svc, pod, ttl).await?;
            Ok(TrySetOutcome::from(outcome))
        })
    }

    /// SPEC §4 `remove_link`: `delay` (None = 0) <= 0 removes now, else expires after `delay`
    /// seconds. Whether a link existed.
    #[pyo3(signature = (namespace, uid, service, delay = None))]
    fn remove_link(&self, namespace: &Obj, uid: &Obj, service: &Obj, delay: Option<&Obj>) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        let delay = args::opt_int(delay, "delay", 0)?;
        self.run(|s| async move { s.remove_link(&ns, &uid, &svc, delay).await })
    }

    /// SPEC §4 `remove_link_if`: as `remove_link`, only if the link points to `pod`.
    #[pyo3(signature = (namespace, uid, service, pod, delay = None))]
    fn remove_link_if(
        &self,
        namespace: &Obj,
        uid: &Obj,
        service: &Obj,
        pod: &Obj,
        delay: Option<&Obj>,
    ) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        let (pod, delay) = (args::pod(pod, "pod")?, args::opt_int(delay, "delay", 0)?);
        self.run(|s| async move { s.remove_link_if(&ns, &uid, &svc, pod, delay).await })
    }

    /// SPEC §4 `get_link`: a `Link` or `None`.
    fn get_link(&self, namespace: &Obj, uid: &Obj, service: &Obj) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        self.run(|s| async move { Ok(s.get_link(&ns, &uid, &svc).await?.map(Link::from)) })
    }

    /// SPEC §4 `get_link_if_persist`: the pod of a persistent link, else `None`.
    fn get_link_if_persist(&self, namespace: &Obj, uid: &Obj, service: &Obj) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        self.run(|s| async move { s.get_link_if_persist(&ns, &uid, &svc).await })
    }

    /// SPEC §4 `get_link_services`: `{service: pod}` of the user's persistent links.
    fn get_link_services(&self, namespace: &Obj, uid: &Obj) -> Out {
        let (ns, uid) = (owned(namespace, "namespace")?, owned(uid, "uid")?);
        self.run(|s| async move { s.get_link_services(&ns, &uid).await })
    }

    /// SPEC §4 `batch_get_links`: `{pod: [uid, …]}` in input order; absent uids left out.
    fn batch_get_links(&self, namespace: &Obj, uids: &Obj, service: &Obj) -> Out {
        let ns = owned(namespace, "namespace")?;
        let (uids, svc) = (args::texts(uids, "uids")?, owned(service, "service")?);
        self.run(|s| async move { s.batch_get_links(&ns, &uids, &svc).await })
    }

    /// The published pod states of a service, sorted by pod index.
    fn pod_states(&self, namespace: &Obj, service: &Obj) -> Out {
        let (ns, svc) = (owned(namespace, "namespace")?, owned(service, "service")?);
        self.run(|s| async move {
            let states = s.pod_states(&ns, &svc).await?;
            Ok(states
                .pods
                .into_iter()
                .map(PodState::from)
                .collect::<Vec<_>>())
        })
    }

    /// Keys of an in-memory store, sorted (for tests; `None` for Redis).
    fn _keys(&self) -> Option<Vec<String>> {
        self.memory.as_ref().map(|m| m.keys())
    }

    fn __repr__(&self) -> &'static str {
        match self.memory {
            Some(_) => "<Store memory>",
            None => "<Store redis>",
        }
    }
}
