//! `sr_client_driver`: the C face of the core's `ClientDriver` (SPEC §6), run in gateways.
//!
//! `sr_client_compute_linked_pod` probes the cache synchronously first: a hit never touches
//! the runtime (no future, no thread hop). Only a miss blocks on the store half.

use std::ffi::{c_void, CString};

use sr_core::{ClientDriver, LinkChange, Result, RoutingStateChange};

use crate::config::{sr_base_config, sr_link, sr_routing_state, sr_server_info};
use crate::convert::{
    handle, pod_arg, pod_or_none, sr_pod_groups, sr_service_links, sr_str, str_array,
};
use crate::error::{sr_error, sr_status};
use crate::panic::{answer, block_on, boundary, run, with};
use crate::store::{link_args, sr_store};

/// A gateway's driver. Thread-safe: every function may be called from many threads at once.
/// Free with `sr_client_free`.
#[derive(Debug)]
pub struct sr_client_driver {
    /// Shared with calls in flight on a completion queue (`sr_client_compute_linked_pod_uncached_submit`).
    pub(crate) inner: std::sync::Arc<ClientDriver>,
}

crate::panic::handle!(sr_client_driver, ClientDriver, "client");

/// One pod's routing-state change as a gateway's refresh saw it. Valid only during the
/// callback.
#[repr(C)]
#[derive(Debug)]
pub struct sr_routing_state_change {
    /// The service (also NUL-terminated).
    pub service: sr_str,
    /// The pod.
    pub pod_index: i64,
    /// The state before (`SR_ROUTING_NOT_ALIVE`: absent, stale or shut down).
    pub old_state: sr_routing_state,
    /// The state now (`SR_ROUTING_NOT_ALIVE`: absent, stale or shut down).
    pub new_state: sr_routing_state,
}

/// Called for each routing-state change, with the `user_data` given at registration.
/// Runs on the library's runtime threads or on a thread inside a blocking `sr_` call; it must
/// return quickly and must not call blocking `sr_` functions (they fail with
/// `SR_INVALID_ARGUMENT` there).
pub type sr_routing_state_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, change: *const sr_routing_state_change)>;

/// Called exactly once with `user_data` when the library will never call the matching
/// callback again (after removal, replacement or freeing its owner), from any thread.
/// Release `user_data` here. It must not call into the library.
pub type sr_release_callback = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// A C callback with its user data, released when dropped (the core drops a listener once it
/// is removed and no call of it is running).
pub(crate) struct UserCallback<F: Copy> {
    pub(crate) call: F,
    pub(crate) release: sr_release_callback,
    pub(crate) user_data: *mut c_void,
}

// SAFETY: the header documents that callbacks and user data are used from any thread; the
// caller guarantees that they can be.
unsafe impl<F: Copy> Send for UserCallback<F> {}
// SAFETY: as above.
unsafe impl<F: Copy> Sync for UserCallback<F> {}

impl<F: Copy> std::fmt::Debug for UserCallback<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserCallback")
    }
}

impl<F: Copy> Drop for UserCallback<F> {
    fn drop(&mut self) {
        if let Some(release) = self.release {
            // SAFETY: the caller registered `release` for exactly this user data.
            unsafe { release(self.user_data) };
        }
    }
}

impl UserCallback<unsafe extern "C" fn(*mut c_void, *const sr_routing_state_change)> {
    fn notify(&self, change: &RoutingStateChange) {
        let service = CString::new(change.service.as_str()).unwrap_or_default();
        let c = sr_routing_state_change {
            service: sr_str::of_c(&service),
            pod_index: change.pod_index.into(),
            old_state: sr_routing_state::of(change.old),
            new_state: sr_routing_state::of(change.new),
        };
        // SAFETY: the caller registered a callback that accepts its user data and a change
        // valid for the duration of the call.
        unsafe { (self.call)(self.user_data, &c) };
    }
}

/// A link that changed (SPEC §11: a move, a removal, a replacement), made by any writer
/// sharing the store. Valid only during the callback.
#[repr(C)]
#[derive(Debug)]
pub struct sr_link_change {
    /// The namespace (also NUL-terminated).
    pub namespace_name: sr_str,
    /// The service (also NUL-terminated).
    pub service: sr_str,
    /// The user (also NUL-terminated).
    pub uid: sr_str,
    /// The pod the link points to now; -1 = removed.
    pub pod_index: i64,
    /// Whether the link is persistent now (false when removed).
    pub persistent: bool,
}

/// Called for each link change that reaches a client driver, with the `user_data` given at
/// registration. On Redis it runs on the library's runtime threads (the store's event
/// subscriber); on the memory store synchronously inside the writing call, on the writer's
/// thread, before that call returns. It must return quickly and must not call blocking `sr_`
/// functions (they fail with `SR_INVALID_ARGUMENT` there); non-blocking ones such as
/// `sr_client_get_linked_in_cache` are fine.
pub type sr_link_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, change: *const sr_link_change)>;

impl UserCallback<unsafe extern "C" fn(*mut c_void, *const sr_link_change)> {
    fn notify(&self, change: &LinkChange) {
        let namespace = CString::new(change.namespace.as_str()).unwrap_or_default();
        let service = CString::new(change.service.as_str()).unwrap_or_default();
        let uid = CString::new(change.uid.as_str()).unwrap_or_default();
        let c = sr_link_change {
            namespace_name: sr_str::of_c(&namespace),
            service: sr_str::of_c(&service),
            uid: sr_str::of_c(&uid),
            pod_index: pod_or_none(change.pod),
            persistent: change.persistent,
        };
        // SAFETY: the caller registered a callback that accepts its user data and a change
        // valid for the duration of the call.
        unsafe { (self.call)(self.user_data, &c) };
    }
}

/// Makes a client driver in `info`'s namespace (its service and pod do not matter). Call
/// `sr_client_init` before use.
///
/// - `store`: the store (borrowed; the driver keeps its own reference).
/// - `info`, `config`: borrowed for the call.
/// - `client_out`: receives the driver; the caller owns it and frees it with `sr_client_free`.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, invalid UTF-8, bad identifier), `SR_INVALID_CONFIG`.
#[no_mangle]
pub unsafe extern "C" fn sr_client_new(
    store: *const sr_store,
    info: *const sr_server_info,
    config: *const sr_base_config,
    client_out: *mut *mut sr_client_driver,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: pointers are checked by the helpers; the caller guarantees the rest.
    unsafe {
        answer(err_out, "client_out", client_out, || {
            let store = handle("store", store)?.inner.clone();
            let info = handle("info", info)?.to_core()?;
            let config = handle("config", config)?.to_core()?;
            let inner = ClientDriver::new(store, info, config)?;
            Ok(Box::into_raw(Box::new(sr_client_driver {
                inner: std::sync::Arc::new(inner),
            })))
        })
    }
}

/// Frees a client driver (closing it first). No call on it may be running or start
/// afterwards. Listeners are released (their release callbacks run, possibly later, on a
/// runtime thread). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_client_free(client: *mut sr_client_driver) {
    if !client.is_null() {
        // SAFETY: `client` came from `Box::into_raw` in this library and is freed once.
        let c = unsafe { Box::from_raw(client) };
        c.inner.close();
    }
}

/// `Init`: starts the periodic snapshot refresh. Idempotent while open. Does not block.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL), `SR_CLOSED` (after `sr_client_close`).
#[no_mangle]
pub unsafe extern "C" fn sr_client_init(
    client: *const sr_client_driver,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe { boundary(err_out, || handle("client", client)?.inner.init()) }
}

/// `Close`: stops the refresh and empties the cache; later calls fail with `SR_CLOSED`.
/// Idempotent. The handle stays valid until `sr_client_free`.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL).
#[no_mangle]
pub unsafe extern "C" fn sr_client_close(
    client: *const sr_client_driver,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        boundary(err_out, || {
            handle("client", client)?.inner.close();
            Ok(())
        })
    }
}

/// A call on (namespace, uid, service) with a pod out-parameter: `f` gets the driver and the
/// checked strings.
///
/// # Safety
/// As every exported function (see the crate docs).
unsafe fn lookup(
    client: *const sr_client_driver,
    (ns, uid, service): (sr_str, sr_str, sr_str),
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
    f: impl FnOnce(&ClientDriver, &str, &str, &str) -> Result<i64>,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        with(client, "pod_out", pod_out, err_out, |c| {
            let (ns, uid, svc) = link_args(ns, uid, service)?;
            f(c, ns, uid, svc)
        })
    }
}

/// `ComputeLinkedPod`: the pod that serves `uid` for `service`, placing a new user on the
/// best pod. A cache hit returns without blocking; a miss blocks for one store round trip
/// (concurrent misses for one user share it).
///
/// - `ns`, `uid`, `service`: UTF-8 `sr_str`s (borrowed); `ns` is `""` or the
///   driver's namespace.
/// - `pod_out`: receives the pod index (never -1 on success).
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_NAMESPACE_NOT_LOCAL`, `SR_NO_AVAILABLE_POD`,
/// `SR_POD_UNAVAILABLE` (see `sr_error_pod_index`), `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_compute_linked_pod(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        lookup(
            client,
            (ns, uid, service),
            pod_out,
            err_out,
            |c, ns, uid, svc| {
                Ok(match c.compute_cached(ns, uid, svc)? {
                    Some(pod) => pod.into(),
                    None => block_on(c.compute_linked_pod_uncached(ns, uid, svc))??.into(),
                })
            },
        )
    }
}

/// `compute_cached`: the non-blocking half of `sr_client_compute_linked_pod`: the cached pod
/// of `uid` if it is alive, else -1 (then call `sr_client_compute_linked_pod_uncached`).
/// Never blocks. Other parameters as `sr_client_compute_linked_pod`.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_NAMESPACE_NOT_LOCAL`, `SR_CLOSED`.
#[no_mangle]
pub unsafe extern "C" fn sr_client_compute_cached(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        lookup(
            client,
            (ns, uid, service),
            pod_out,
            err_out,
            |c, ns, uid, svc| Ok(pod_or_none(c.compute_cached(ns, uid, svc)?)),
        )
    }
}

/// Stripes of `sr_client_front_epochs`.
pub const SR_FRONT_STRIPES: usize = 1024;
const _: () = assert!(SR_FRONT_STRIPES == sr_core::FRONT_STRIPES);

/// A cache hit as a caller-side front cache may keep it (README, "Front caches"): valid while
/// `valid_ns` nanoseconds from the call have not passed and `words[stripe]` of
/// `sr_client_front_epochs` still equals `epoch`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_front_hit {
    /// The pod; -1 on a miss (then the other fields are 0).
    pub pod: i64,
    /// How long from the call the answer may be kept (0: do not keep it).
    pub valid_ns: u64,
    /// The index into the epochs that validates it.
    pub stripe: u32,
    /// The value that index must still hold.
    pub epoch: u32,
}

/// `compute_front`: `sr_client_compute_cached` for a front cache: the hit and how to validate
/// it (`sr_front_hit`; `pod` -1 on a miss). Never blocks. The hit is counted; hits the front
/// cache answers afterwards are counted with `sr_client_add_front_hits`.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_NAMESPACE_NOT_LOCAL`, `SR_CLOSED`.
#[no_mangle]
pub unsafe extern "C" fn sr_client_compute_front(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    hit_out: *mut sr_front_hit,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        with(client, "hit_out", hit_out, err_out, |c| {
            let (ns, uid, svc) = link_args(ns, uid, service)?;
            Ok(match c.compute_front(ns, uid, svc)? {
                Some(h) => sr_front_hit {
                    pod: i64::from(h.pod),
                    valid_ns: u64::try_from(h.valid_for.as_nanos()).unwrap_or(u64::MAX),
                    stripe: h.stripe,
                    epoch: h.epoch,
                },
                None => sr_front_hit {
                    pod: -1,
                    valid_ns: 0,
                    stripe: 0,
                    epoch: 0,
                },
            })
        })
    }
}

/// The driver's front-cache epochs: `SR_FRONT_STRIPES` `uint32_t`s the library bumps (read
/// them with atomic loads). The memory stays valid for the life of the process, also after
/// `sr_client_free` (every epoch has then moved on).
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL).
#[no_mangle]
pub unsafe extern "C" fn sr_client_front_epochs(
    client: *const sr_client_driver,
    words_out: *mut *const u32,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        with(client, "words_out", words_out, err_out, |c| {
            Ok(c.front_epochs().as_ptr().cast::<u32>())
        })
    }
}

/// Counts `n` hits of `service` that a front cache answered (before the metrics are read).
/// A service that is not a valid name is ignored.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL client, or `service` not UTF-8).
#[no_mangle]
pub unsafe extern "C" fn sr_client_add_front_hits(
    client: *const sr_client_driver,
    service: sr_str,
    n: u64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        run(client, err_out, |c| {
            c.add_front_hits(service.get("service")?, n);
            Ok(())
        })
    }
}

/// `compute_linked_pod_uncached`: the store half of `sr_client_compute_linked_pod` (after a
/// cache miss). Blocks. Parameters and errors as `sr_client_compute_linked_pod`.
#[no_mangle]
pub unsafe extern "C" fn sr_client_compute_linked_pod_uncached(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        lookup(
            client,
            (ns, uid, service),
            pod_out,
            err_out,
            |c, ns, uid, svc| Ok(block_on(c.compute_linked_pod_uncached(ns, uid, svc))??.into()),
        )
    }
}

/// `GetLinkedPod`: the link from the cache, else from the store (then cached). Blocks on a
/// miss. `pod_out` receives the pod or -1 (no link). Other parameters as
/// `sr_client_compute_linked_pod`.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_NAMESPACE_NOT_LOCAL`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_get_linked_pod(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        lookup(
            client,
            (ns, uid, service),
            pod_out,
            err_out,
            |c, ns, uid, svc| Ok(pod_or_none(block_on(c.get_linked_pod(ns, uid, svc))??)),
        )
    }
}

/// `GetLinkedPodInCacheOrIfPersist`: the cached link, else a persistent link from the
/// store. Blocks on a miss. `pod_out` receives the pod or -1. Other parameters as
/// `sr_client_compute_linked_pod`.
///
/// Errors: as `sr_client_get_linked_pod`.
#[no_mangle]
pub unsafe extern "C" fn sr_client_get_linked_pod_in_cache_or_if_persist(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        lookup(
            client,
            (ns, uid, service),
            pod_out,
            err_out,
            |c, ns, uid, svc| {
                Ok(pod_or_none(block_on(
                    c.get_linked_pod_in_cache_or_if_persist(ns, uid, svc),
                )??))
            },
        )
    }
}

/// `GetLinkedPodNotCache`: the link from the store, bypassing (and not filling) the cache.
/// Blocks. `pod_out` receives the pod or -1. Other parameters as
/// `sr_client_compute_linked_pod`.
///
/// Errors: as `sr_client_get_linked_pod`.
#[no_mangle]
pub unsafe extern "C" fn sr_client_get_linked_pod_not_cache(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        lookup(
            client,
            (ns, uid, service),
            pod_out,
            err_out,
            |c, ns, uid, svc| {
                Ok(pod_or_none(block_on(
                    c.get_linked_pod_not_cache(ns, uid, svc),
                )??))
            },
        )
    }
}

/// `GetLinkedInCache`: the cached link only. Does not block. `pod_out` receives the pod
/// or -1. Other parameters as `sr_client_compute_linked_pod`.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_NAMESPACE_NOT_LOCAL`, `SR_CLOSED`.
#[no_mangle]
pub unsafe extern "C" fn sr_client_get_linked_in_cache(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        lookup(
            client,
            (ns, uid, service),
            pod_out,
            err_out,
            |c, ns, uid, svc| Ok(pod_or_none(c.get_linked_in_cache(ns, uid, svc)?)),
        )
    }
}

/// `CacheExpired`: drops the cached link; `pod_out` receives what it held, or -1. Does not
/// block. Other parameters as `sr_client_compute_linked_pod`.
///
/// Errors: as `sr_client_get_linked_in_cache`.
#[no_mangle]
pub unsafe extern "C" fn sr_client_cache_expired(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        lookup(
            client,
            (ns, uid, service),
            pod_out,
            err_out,
            |c, ns, uid, svc| Ok(pod_or_none(c.cache_expired(ns, uid, svc)?)),
        )
    }
}

/// `SetCache`: caches `pod_index` for `uid` (for `user_link_info_cache_time_seconds`).
/// Blocks if the service's snapshot is not loaded yet.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_NAMESPACE_NOT_LOCAL`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_set_cache(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_index: i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        run(client, err_out, |c| {
            let ((ns, uid, svc), pod) = (link_args(ns, uid, service)?, pod_arg(pod_index)?);
            block_on(c.set_cache(ns, uid, svc, pod))?
        })
    }
}

/// `SetLinkedPodIfAbsent`: links `uid` to `pod_index` unless a link exists; `link_out`
/// receives the link in force (and it is cached). `ttl_seconds`: -1 persistent, > 0 seconds.
/// Blocks.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_NAMESPACE_NOT_LOCAL`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_set_linked_pod_if_absent(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_index: i64,
    ttl_seconds: i64,
    link_out: *mut sr_link,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        with(client, "link_out", link_out, err_out, |c| {
            let ((ns, uid, svc), pod) = (link_args(ns, uid, service)?, pod_arg(pod_index)?);
            let link = block_on(c.set_linked_pod_if_absent(ns, uid, svc, pod, ttl_seconds))??;
            Ok(sr_link::of(Some(link)))
        })
    }
}

/// `GetLinkService`: the user's persistent links, service → pod. Blocks.
/// `links_out` receives a list the caller frees with `sr_service_links_free`.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_NAMESPACE_NOT_LOCAL`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_get_link_service(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    links_out: *mut sr_service_links,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        with(client, "links_out", links_out, err_out, |c| {
            let (ns, uid) = (ns.get("namespace")?, uid.get("uid")?);
            Ok(sr_service_links::new(block_on(
                c.get_link_service(ns, uid),
            )??))
        })
    }
}

/// `BatchGetLinkedPod`: the links of many users of `service`. Blocks.
/// `groups_out` receives the core's answer, pod → uids (sorted by pod, uids in input order,
/// users without a link left out); free it with `sr_pod_groups_free`.
///
/// Errors: as `sr_client_get_link_service`.
#[no_mangle]
pub unsafe extern "C" fn sr_client_batch_get_linked_pod(
    client: *const sr_client_driver,
    ns: sr_str,
    uids: *const sr_str,
    uids_len: usize,
    service: sr_str,
    groups_out: *mut sr_pod_groups,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        with(client, "groups_out", groups_out, err_out, |c| {
            let (ns, svc) = (ns.get("namespace")?, service.get("service")?);
            let uids = str_array("uids", uids, uids_len)?;
            Ok(sr_pod_groups::new(block_on(
                c.batch_get_linked_pod(ns, &uids, svc),
            )??))
        })
    }
}

/// Links held by the local cache (approximate), into `*len_out`. Does not block.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL).
#[no_mangle]
pub unsafe extern "C" fn sr_client_cache_len(
    client: *const sr_client_driver,
    len_out: *mut u64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe { with(client, "len_out", len_out, err_out, |c| Ok(c.cache_len())) }
}

/// Registers `callback`, called with `user_data` for each routing-state change a refresh of
/// this driver sees. Callbacks run on the library's runtime threads (or inside a blocking
/// call such as `sr_client_refresh_service` on the caller's thread).
///
/// - `callback`: required. `release`: optional (may be NULL); called once with `user_data`
///   when `callback` will never run again (after `sr_client_remove_routing_state_listener`
///   or `sr_client_free`), from any thread.
/// - `listener_id_out`: receives an id for `sr_client_remove_routing_state_listener`.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL client, callback or out-parameter; `release` is then
/// not called).
#[no_mangle]
pub unsafe extern "C" fn sr_client_on_routing_state_changed(
    client: *const sr_client_driver,
    callback: sr_routing_state_callback,
    release: sr_release_callback,
    user_data: *mut c_void,
    listener_id_out: *mut u64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        with(client, "listener_id_out", listener_id_out, err_out, |c| {
            let call = callback.ok_or_else(|| crate::convert::invalid("callback", "is NULL"))?;
            let cb = UserCallback {
                call,
                release,
                user_data,
            };
            Ok(c.on_routing_state_changed(move |change| cb.notify(change)))
        })
    }
}

/// Removes a listener; `*removed_out` tells whether listener `id` was registered. Its release
/// callback runs once no call of it is running (possibly later, on another thread).
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL).
#[no_mangle]
pub unsafe extern "C" fn sr_client_remove_routing_state_listener(
    client: *const sr_client_driver,
    id: u64,
    removed_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        with(client, "removed_out", removed_out, err_out, |c| {
            Ok(c.remove_routing_state_listener(id))
        })
    }
}

/// Registers `callback`, called with `user_data` for each change of a link of this driver's
/// namespace made by any writer sharing the store (SPEC §11: a move, a removal, a
/// replacement); the driver has already dropped its cache entry for that (uid, service).
/// On Redis callbacks run on the library's runtime threads; on the memory store inside the
/// writing call, on the writer's thread (see `sr_link_callback`). Only changes that reach the
/// driver while its event stream is connected are reported (after a gap the cache is emptied
/// instead); with `disable_propagation` none are.
///
/// - `callback`: required. `release`: optional (may be NULL); called once with `user_data`
///   when `callback` will never run again (after `sr_client_remove_link_listener` or
///   `sr_client_free`), from any thread.
/// - `listener_id_out`: receives an id for `sr_client_remove_link_listener`.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL client, callback or out-parameter; `release` is then
/// not called).
#[no_mangle]
pub unsafe extern "C" fn sr_client_on_link_changed(
    client: *const sr_client_driver,
    callback: sr_link_callback,
    release: sr_release_callback,
    user_data: *mut c_void,
    listener_id_out: *mut u64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        with(client, "listener_id_out", listener_id_out, err_out, |c| {
            let call = callback.ok_or_else(|| crate::convert::invalid("callback", "is NULL"))?;
            let cb = UserCallback {
                call,
                release,
                user_data,
            };
            Ok(c.on_link_changed(move |change| cb.notify(change)))
        })
    }
}

/// Removes a link listener; `*removed_out` tells whether listener `id` was registered. Its
/// release callback runs once no call of it is running (possibly later, on another thread).
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL).
#[no_mangle]
pub unsafe extern "C" fn sr_client_remove_link_listener(
    client: *const sr_client_driver,
    id: u64,
    removed_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        with(client, "removed_out", removed_out, err_out, |c| {
            Ok(c.remove_link_listener(id))
        })
    }
}
