//! `sr_store`: the C face of the core's `Store` (SPEC §3, §4).
//!
//! A store handle is shared by any number of drivers: a driver keeps its own reference, so the
//! handle may be freed while drivers made from it are still in use.

use sr_core::{LinkTtl, Result, Store};

use crate::config::{sr_link, sr_store_config, sr_try_set_outcome};
use crate::convert::{
    handle, pod_arg, pod_or_none, sr_pod_groups, sr_service_links, sr_str, str_array,
};
use crate::error::{sr_error, sr_status};
use crate::panic::{answer, block_on, with};
use crate::route_info::sr_pod_state_list;

/// A store: Redis (one node: `sr_store_connect`; a cluster: `sr_store_connect_cluster`; a
/// Sentinel-managed master: `sr_store_connect_sentinel`) or the embedded in-memory store
/// (`sr_store_memory`).
/// Thread-safe; free with `sr_store_free`.
#[derive(Debug)]
pub struct sr_store {
    pub(crate) inner: Store,
}

crate::panic::handle!(sr_store, Store, "store");

/// (namespace, uid, service) arguments, checked for NULL and UTF-8.
///
/// # Safety
/// Each string is valid as in [`sr_str::get`].
pub(crate) unsafe fn link_args<'a>(
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
) -> Result<(&'a str, &'a str, &'a str)> {
    // SAFETY: forwarded from the caller.
    unsafe {
        Ok((
            ns.get("namespace")?,
            uid.get("uid")?,
            service.get("service")?,
        ))
    }
}

fn new_store(store: Store) -> *mut sr_store {
    Box::into_raw(Box::new(sr_store { inner: store }))
}

/// Makes an embedded in-memory store (one per call; nothing is shared between two of them).
///
/// - `config`: its settings (only `key_prefix` and `disable_propagation` matter); borrowed
///   for the call.
/// - `store_out`: receives the new store; the caller owns it and frees it with `sr_store_free`.
/// - `err_out`: NULL, or receives an `sr_error` on failure (free with `sr_error_free`).
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL pointer, invalid UTF-8), `SR_INVALID_CONFIG`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_memory(
    config: *const sr_store_config,
    store_out: *mut *mut sr_store,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: pointers are checked by the helpers; the caller guarantees the rest.
    unsafe {
        answer(err_out, "store_out", store_out, || {
            let config = handle("config", config)?.to_core()?;
            Ok(new_store(Store::memory_with(&config)?))
        })
    }
}

/// Connects to Redis. Blocks until connected or the connect timeout passes.
///
/// - `url`: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS
///   (UTF-8, borrowed). Messages never show the password.
/// - `config`: key prefix and timeouts; borrowed for the call.
/// - `store_out`: receives the new store; the caller owns it and frees it with `sr_store_free`.
/// - `err_out`: NULL, or receives an `sr_error` on failure.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, invalid UTF-8, malformed URL), `SR_INVALID_CONFIG`,
/// `SR_STORE_UNAVAILABLE`, `SR_TIMEOUT`, `SR_STORE_ERROR`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_connect(
    url: sr_str,
    config: *const sr_store_config,
    store_out: *mut *mut sr_store,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        answer(err_out, "store_out", store_out, || {
            let (url, config) = (url.get("url")?, handle("config", config)?.to_core()?);
            Ok(new_store(block_on(Store::redis_with(url, &config))??))
        })
    }
}

/// Connects to a Redis Cluster through any of its nodes. Blocks until connected (the slot
/// map is read from a seed) or the connect timeout passes.
///
/// - `urls`, `urls_len`: seed nodes (at least one), each `redis://[user:password@]host:port`
///   or `rediss://` (an array of `sr_str`, borrowed). Any reachable node is enough; the
///   client discovers the others.
/// - `config`: key prefix and timeouts; borrowed for the call.
/// - `store_out`: receives the new store; the caller owns it and frees it with `sr_store_free`.
/// - `err_out`: NULL, or receives an `sr_error` on failure.
///
/// The store behaves as on one node: every script touches one slot; batch reads are split by
/// slot and merged in input order; MOVED/ASK redirections and failovers are followed by the
/// client (calls during a failover fail with `SR_STORE_UNAVAILABLE` or `SR_TIMEOUT`).
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, invalid UTF-8, no url, malformed URL),
/// `SR_INVALID_CONFIG`, `SR_STORE_UNAVAILABLE`, `SR_TIMEOUT`, `SR_STORE_ERROR`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_connect_cluster(
    urls: *const sr_str,
    urls_len: usize,
    config: *const sr_store_config,
    store_out: *mut *mut sr_store,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        answer(err_out, "store_out", store_out, || {
            let urls = str_array("urls", urls, urls_len)?;
            let config = handle("config", config)?.to_core()?;
            Ok(new_store(block_on(Store::redis_cluster_with(
                &urls, &config,
            ))??))
        })
    }
}

/// Connects to the master that Redis Sentinels call `master_name`. Blocks until a sentinel
/// named the master and it answered, or the connect timeout passes. When the sentinels fail
/// over, the store follows the new master (calls meanwhile fail with `SR_STORE_UNAVAILABLE`,
/// `SR_TIMEOUT` or `SR_STORE_ERROR`, e.g. a write refused by the demoted master).
///
/// - `sentinel_urls`, `sentinel_urls_len`: the sentinels (at least one), each
///   `redis://host:port` (an array of `sr_str`, borrowed).
/// - `master_name`: the name the sentinels monitor the master under
///   (UTF-8, not empty, borrowed).
/// - `config`: key prefix and timeouts; borrowed for the call.
/// - `store_out`: receives the new store; the caller owns it and frees it with `sr_store_free`.
/// - `err_out`: NULL, or receives an `sr_error` on failure.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, invalid UTF-8, no url, empty master name, malformed
/// URL), `SR_INVALID_CONFIG`, `SR_STORE_UNAVAILABLE`, `SR_TIMEOUT`, `SR_STORE_ERROR`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_connect_sentinel(
    sentinel_urls: *const sr_str,
    sentinel_urls_len: usize,
    master_name: sr_str,
    config: *const sr_store_config,
    store_out: *mut *mut sr_store,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        answer(err_out, "store_out", store_out, || {
            let urls = str_array("sentinel_urls", sentinel_urls, sentinel_urls_len)?;
            let master = master_name.get("master_name")?;
            let config = handle("config", config)?.to_core()?;
            Ok(new_store(block_on(Store::redis_sentinel_with(
                &urls, master, &config,
            ))??))
        })
    }
}

/// Frees a store handle. Drivers made from it keep working (they hold their own reference);
/// the connection closes when the last of them is freed. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_store_free(store: *mut sr_store) {
    if !store.is_null() {
        // SAFETY: `store` came from `Box::into_raw` in this library and is freed once.
        drop(unsafe { Box::from_raw(store) });
    }
}

/// SPEC §4 `set_link`: links `uid` to `pod_index` for `service`, unconditionally.
///
/// - `store`: the store (borrowed). `ns`, `uid`, `service`: UTF-8 `sr_str`s (borrowed);
///   `ns` must be a named namespace here.
/// - `pod_index`: 0 … 2^31-1. `ttl_seconds`: -1 = persistent, > 0 = temporary.
/// - `previous_out`: receives the pod linked before, or -1.
///
/// Errors: `SR_INVALID_ARGUMENT` (nothing written), `SR_STORE_UNAVAILABLE`, `SR_STORE_ERROR`,
/// `SR_TIMEOUT`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_set_link(
    store: *const sr_store,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_index: i64,
    ttl_seconds: i64,
    previous_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        with(store, "previous_out", previous_out, err_out, |s| {
            let (ns, uid, svc) = link_args(ns, uid, service)?;
            let (pod, ttl) = (pod_arg(pod_index)?, LinkTtl::from_secs(ttl_seconds)?);
            Ok(pod_or_none(block_on(s.set_link(ns, uid, svc, pod, ttl))??))
        })
    }
}

/// SPEC §4 `set_link_if_absent`: links `uid` to `pod_index` unless a link exists (an existing
/// link wins and keeps its TTL).
///
/// Parameters as `sr_store_set_link`; `link_out` receives the link in force afterwards.
///
/// Errors: as `sr_store_set_link`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_set_link_if_absent(
    store: *const sr_store,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_index: i64,
    ttl_seconds: i64,
    link_out: *mut sr_link,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        with(store, "link_out", link_out, err_out, |s| {
            let (ns, uid, svc) = link_args(ns, uid, service)?;
            let (pod, ttl) = (pod_arg(pod_index)?, LinkTtl::from_secs(ttl_seconds)?);
            Ok(sr_link::of(Some(block_on(
                s.set_link_if_absent(ns, uid, svc, pod, ttl),
            )??)))
        })
    }
}

/// SPEC §4 `try_set_link`: links `uid` to `pod_index` unless it is persistently linked to
/// another pod.
///
/// Parameters as `sr_store_set_link`; `outcome_out` receives (accepted, owner, previous).
///
/// Errors: as `sr_store_set_link`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_try_set_link(
    store: *const sr_store,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_index: i64,
    ttl_seconds: i64,
    outcome_out: *mut sr_try_set_outcome,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        with(store, "outcome_out", outcome_out, err_out, |s| {
            let (ns, uid, svc) = link_args(ns, uid, service)?;
            let (pod, ttl) = (pod_arg(pod_index)?, LinkTtl::from_secs(ttl_seconds)?);
            Ok(block_on(s.try_set_link(ns, uid, svc, pod, ttl))??.into())
        })
    }
}

/// SPEC §4 `remove_link`: removes the link now (`delay_seconds` <= 0) or lets it expire after
/// `delay_seconds`; either way it leaves the user's persistent links at once.
///
/// `removed_out` receives whether a link existed. Other parameters as `sr_store_set_link`.
///
/// Errors: as `sr_store_set_link`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_remove_link(
    store: *const sr_store,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    delay_seconds: i64,
    removed_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        with(store, "removed_out", removed_out, err_out, |s| {
            let (ns, uid, svc) = link_args(ns, uid, service)?;
            block_on(s.remove_link(ns, uid, svc, delay_seconds))?
        })
    }
}

/// SPEC §4 `remove_link_if`: as `sr_store_remove_link`, only if the link points to
/// `pod_index` (compare-and-delete).
///
/// `removed_out` receives whether it was removed.
///
/// Errors: as `sr_store_set_link`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_remove_link_if(
    store: *const sr_store,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_index: i64,
    delay_seconds: i64,
    removed_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        with(store, "removed_out", removed_out, err_out, |s| {
            let ((ns, uid, svc), pod) = (link_args(ns, uid, service)?, pod_arg(pod_index)?);
            block_on(s.remove_link_if(ns, uid, svc, pod, delay_seconds))?
        })
    }
}

/// SPEC §4 `get_link`: reads a link with its remaining TTL.
///
/// `link_out` receives the link; `pod_index` -1 = no link.
///
/// Errors: as `sr_store_set_link`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_get_link(
    store: *const sr_store,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    link_out: *mut sr_link,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        with(store, "link_out", link_out, err_out, |s| {
            let (ns, uid, svc) = link_args(ns, uid, service)?;
            Ok(sr_link::of(block_on(s.get_link(ns, uid, svc))??))
        })
    }
}

/// SPEC §4 `get_link_if_persist`: reads a link; a temporary link reads as none.
///
/// `pod_out` receives the pod, or -1.
///
/// Errors: as `sr_store_set_link`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_get_link_if_persist(
    store: *const sr_store,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        with(store, "pod_out", pod_out, err_out, |s| {
            let (ns, uid, svc) = link_args(ns, uid, service)?;
            Ok(pod_or_none(block_on(s.get_link_if_persist(ns, uid, svc))??))
        })
    }
}

/// SPEC §4 `get_link_services`: the user's persistent links, service → pod.
///
/// `links_out` receives a list owned by the caller: free it with `sr_service_links_free`.
///
/// Errors: as `sr_store_set_link`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_get_link_services(
    store: *const sr_store,
    ns: sr_str,
    uid: sr_str,
    links_out: *mut sr_service_links,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        with(store, "links_out", links_out, err_out, |s| {
            let (ns, uid) = (ns.get("namespace")?, uid.get("uid")?);
            Ok(sr_service_links::new(block_on(
                s.get_link_services(ns, uid),
            )??))
        })
    }
}

/// SPEC §4 `batch_get_links`: reads the links of many users of one service at once.
///
/// - `uids`, `uids_len`: the users (an array of `sr_str`, borrowed).
/// - `groups_out`: receives the core's answer, pod → uids (sorted by pod, uids in input
///   order, users without a link left out). Free it with `sr_pod_groups_free`.
///
/// Errors: as `sr_store_set_link`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_batch_get_links(
    store: *const sr_store,
    ns: sr_str,
    uids: *const sr_str,
    uids_len: usize,
    service: sr_str,
    groups_out: *mut sr_pod_groups,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        with(store, "groups_out", groups_out, err_out, |s| {
            let (ns, svc) = (ns.get("namespace")?, service.get("service")?);
            let uids = str_array("uids", uids, uids_len)?;
            Ok(sr_pod_groups::new(block_on(
                s.batch_get_links(ns, &uids, svc),
            )??))
        })
    }
}

/// SPEC §3 `pod_states`: the published pod states of `service` in namespace `ns`, sorted by
/// pod (unparsable entries are skipped and logged). `states_out` receives the list; free it
/// with `sr_pod_state_list_free`.
///
/// Errors: as `sr_store_set_link`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_pod_states(
    store: *const sr_store,
    ns: sr_str,
    service: sr_str,
    states_out: *mut sr_pod_state_list,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        with(store, "states_out", states_out, err_out, |s| {
            let (ns, svc) = (ns.get("namespace")?, service.get("service")?);
            Ok(sr_pod_state_list::new(
                block_on(s.pod_states(ns, svc))??.pods,
            ))
        })
    }
}
