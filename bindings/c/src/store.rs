//! `sr_store`: the C face of the core's `Store` (SPEC §3, §4).
//!
//! A store handle is shared by any number of drivers: a driver keeps its own reference, so the
//! handle may be freed while drivers made from it are still in use.

use std::ffi::c_char;

use sr_core::{LinkTtl, Result, Store};

use crate::config::{sr_link, sr_store_config, sr_try_set_outcome};
use crate::convert::{
    handle, input, out, pod_arg, pod_or_none, sr_pod_list, sr_service_links, sr_str, str_arg,
    str_array, Out,
};
use crate::error::{sr_error, sr_status};
use crate::panic::{block_on, boundary};

/// A store: Redis (one node: `sr_store_connect`; a cluster: `sr_store_connect_cluster`; a
/// Sentinel-managed master: `sr_store_connect_sentinel`) or the embedded in-memory store
/// (`sr_store_memory`).
/// Thread-safe; free with `sr_store_free`.
#[derive(Debug)]
pub struct sr_store {
    pub(crate) inner: Store,
}

/// (namespace, uid, service) arguments, checked for NULL and UTF-8.
///
/// # Safety
/// Each pointer is NULL or valid for its length.
pub(crate) unsafe fn link_args<'a>(
    ns: (*const c_char, usize),
    uid: (*const c_char, usize),
    service: (*const c_char, usize),
) -> Result<(&'a str, &'a str, &'a str)> {
    // SAFETY: forwarded from the caller.
    unsafe {
        Ok((
            str_arg("namespace", ns.0, ns.1)?,
            str_arg("uid", uid.0, uid.1)?,
            str_arg("service", service.0, service.1)?,
        ))
    }
}

fn new_store(store_out: Out<*mut sr_store>, store: Store) {
    store_out.set(Box::into_raw(Box::new(sr_store { inner: store })));
}

/// Makes an embedded in-memory store (one per call; nothing is shared between two of them).
///
/// - `config`: its settings (only `key_prefix` matters); borrowed for the call.
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
        boundary(err_out, || {
            let config = input("config", config)?.to_core()?;
            let store_out = out("store_out", store_out)?;
            new_store(store_out, Store::memory_with(&config)?);
            Ok(())
        })
    }
}

/// Connects to Redis. Blocks until connected or the connect timeout passes.
///
/// - `url`, `url_len`: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS
///   (UTF-8, borrowed). Messages never show the password.
/// - `config`: key prefix and timeouts; borrowed for the call.
/// - `store_out`: receives the new store; the caller owns it and frees it with `sr_store_free`.
/// - `err_out`: NULL, or receives an `sr_error` on failure.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, invalid UTF-8, malformed URL), `SR_INVALID_CONFIG`,
/// `SR_STORE_UNAVAILABLE`, `SR_TIMEOUT`, `SR_STORE_ERROR`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_connect(
    url: *const c_char,
    url_len: usize,
    config: *const sr_store_config,
    store_out: *mut *mut sr_store,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        boundary(err_out, || {
            let url = str_arg("url", url, url_len)?;
            let config = input("config", config)?.to_core()?;
            let store_out = out("store_out", store_out)?;
            new_store(store_out, block_on(Store::redis_with(url, &config))??);
            Ok(())
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
        boundary(err_out, || {
            let urls = str_array("urls", urls, urls_len)?;
            let config = input("config", config)?.to_core()?;
            let store_out = out("store_out", store_out)?;
            new_store(
                store_out,
                block_on(Store::redis_cluster_with(&urls, &config))??,
            );
            Ok(())
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
/// - `master_name`, `master_name_len`: the name the sentinels monitor the master under
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
    master_name: *const c_char,
    master_name_len: usize,
    config: *const sr_store_config,
    store_out: *mut *mut sr_store,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        boundary(err_out, || {
            let urls = str_array("sentinel_urls", sentinel_urls, sentinel_urls_len)?;
            let master = str_arg("master_name", master_name, master_name_len)?;
            let config = input("config", config)?.to_core()?;
            let store_out = out("store_out", store_out)?;
            new_store(
                store_out,
                block_on(Store::redis_sentinel_with(&urls, master, &config))??,
            );
            Ok(())
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
/// - `store`: the store (borrowed). `ns`, `uid`, `service`: UTF-8 strings (pointer + length,
///   borrowed); `ns` must be a named namespace here.
/// - `pod_index`: 0 … 2^31-1. `ttl_seconds`: -1 = persistent, > 0 = temporary.
/// - `previous_out`: receives the pod linked before, or -1.
///
/// Errors: `SR_INVALID_ARGUMENT` (nothing written), `SR_STORE_UNAVAILABLE`, `SR_STORE_ERROR`,
/// `SR_TIMEOUT`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_set_link(
    store: *const sr_store,
    ns: *const c_char,
    ns_len: usize,
    uid: *const c_char,
    uid_len: usize,
    service: *const c_char,
    service_len: usize,
    pod_index: i64,
    ttl_seconds: i64,
    previous_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        boundary(err_out, || {
            let s = &handle("store", store)?.inner;
            let (ns, uid, svc) = link_args((ns, ns_len), (uid, uid_len), (service, service_len))?;
            let previous_out = out("previous_out", previous_out)?;
            let (pod, ttl) = (pod_arg(pod_index)?, LinkTtl::from_secs(ttl_seconds)?);
            previous_out.set(pod_or_none(block_on(s.set_link(ns, uid, svc, pod, ttl))??));
            Ok(())
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
    ns: *const c_char,
    ns_len: usize,
    uid: *const c_char,
    uid_len: usize,
    service: *const c_char,
    service_len: usize,
    pod_index: i64,
    ttl_seconds: i64,
    link_out: *mut sr_link,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        boundary(err_out, || {
            let s = &handle("store", store)?.inner;
            let (ns, uid, svc) = link_args((ns, ns_len), (uid, uid_len), (service, service_len))?;
            let link_out = out("link_out", link_out)?;
            let (pod, ttl) = (pod_arg(pod_index)?, LinkTtl::from_secs(ttl_seconds)?);
            link_out.set(sr_link::of(Some(block_on(
                s.set_link_if_absent(ns, uid, svc, pod, ttl),
            )??)));
            Ok(())
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
    ns: *const c_char,
    ns_len: usize,
    uid: *const c_char,
    uid_len: usize,
    service: *const c_char,
    service_len: usize,
    pod_index: i64,
    ttl_seconds: i64,
    outcome_out: *mut sr_try_set_outcome,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        boundary(err_out, || {
            let s = &handle("store", store)?.inner;
            let (ns, uid, svc) = link_args((ns, ns_len), (uid, uid_len), (service, service_len))?;
            let outcome_out = out("outcome_out", outcome_out)?;
            let (pod, ttl) = (pod_arg(pod_index)?, LinkTtl::from_secs(ttl_seconds)?);
            outcome_out.set(block_on(s.try_set_link(ns, uid, svc, pod, ttl))??.into());
            Ok(())
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
    ns: *const c_char,
    ns_len: usize,
    uid: *const c_char,
    uid_len: usize,
    service: *const c_char,
    service_len: usize,
    delay_seconds: i64,
    removed_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        boundary(err_out, || {
            let s = &handle("store", store)?.inner;
            let (ns, uid, svc) = link_args((ns, ns_len), (uid, uid_len), (service, service_len))?;
            let removed_out = out("removed_out", removed_out)?;
            removed_out.set(block_on(s.remove_link(ns, uid, svc, delay_seconds))??);
            Ok(())
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
    ns: *const c_char,
    ns_len: usize,
    uid: *const c_char,
    uid_len: usize,
    service: *const c_char,
    service_len: usize,
    pod_index: i64,
    delay_seconds: i64,
    removed_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        boundary(err_out, || {
            let s = &handle("store", store)?.inner;
            let (ns, uid, svc) = link_args((ns, ns_len), (uid, uid_len), (service, service_len))?;
            let removed_out = out("removed_out", removed_out)?;
            let pod = pod_arg(pod_index)?;
            removed_out.set(block_on(s.remove_link_if(
                ns,
                uid,
                svc,
                pod,
                delay_seconds,
            ))??);
            Ok(())
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
    ns: *const c_char,
    ns_len: usize,
    uid: *const c_char,
    uid_len: usize,
    service: *const c_char,
    service_len: usize,
    link_out: *mut sr_link,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        boundary(err_out, || {
            let s = &handle("store", store)?.inner;
            let (ns, uid, svc) = link_args((ns, ns_len), (uid, uid_len), (service, service_len))?;
            let link_out = out("link_out", link_out)?;
            link_out.set(sr_link::of(block_on(s.get_link(ns, uid, svc))??));
            Ok(())
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
    ns: *const c_char,
    ns_len: usize,
    uid: *const c_char,
    uid_len: usize,
    service: *const c_char,
    service_len: usize,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        boundary(err_out, || {
            let s = &handle("store", store)?.inner;
            let (ns, uid, svc) = link_args((ns, ns_len), (uid, uid_len), (service, service_len))?;
            let pod_out = out("pod_out", pod_out)?;
            pod_out.set(pod_or_none(block_on(s.get_link_if_persist(ns, uid, svc))??));
            Ok(())
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
    ns: *const c_char,
    ns_len: usize,
    uid: *const c_char,
    uid_len: usize,
    links_out: *mut sr_service_links,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        boundary(err_out, || {
            let s = &handle("store", store)?.inner;
            let ns = str_arg("namespace", ns, ns_len)?;
            let uid = str_arg("uid", uid, uid_len)?;
            let links_out = out("links_out", links_out)?;
            links_out.set(sr_service_links::new(block_on(
                s.get_link_services(ns, uid),
            )??));
            Ok(())
        })
    }
}

/// SPEC §4 `batch_get_links`: reads the links of many users of one service at once.
///
/// - `uids`, `uids_len`: the users (an array of `sr_str`, borrowed).
/// - `pods_out`: receives one entry per uid, in input order: its pod, or -1 for no link.
///   Free it with `sr_pod_list_free`.
///
/// Errors: as `sr_store_set_link`.
#[no_mangle]
pub unsafe extern "C" fn sr_store_batch_get_links(
    store: *const sr_store,
    ns: *const c_char,
    ns_len: usize,
    uids: *const sr_str,
    uids_len: usize,
    service: *const c_char,
    service_len: usize,
    pods_out: *mut sr_pod_list,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_store_memory`.
    unsafe {
        boundary(err_out, || {
            let s = &handle("store", store)?.inner;
            let ns = str_arg("namespace", ns, ns_len)?;
            let uids = str_array("uids", uids, uids_len)?;
            let svc = str_arg("service", service, service_len)?;
            let pods_out = out("pods_out", pods_out)?;
            let by_pod = block_on(s.batch_get_links(ns, &uids, svc))??;
            pods_out.set(sr_pod_list::new(crate::convert::pods_in_input_order(
                &uids, by_pod,
            )));
            Ok(())
        })
    }
}
