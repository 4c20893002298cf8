//! `sr_server_driver`: the C face of the core's `ServerDriver` (SPEC §7), run in each pod.

use sr_core::ServerDriver;

use crate::config::{sr_base_config, sr_routing_state, sr_server_info, sr_try_set_outcome};
use crate::convert::{handle, invalid, pod_arg, pod_or_none, sr_str};
use crate::error::{sr_error, sr_status};
use crate::panic::{answer, block_on, run, with};
use crate::store::{link_args, sr_store};

/// A pod's driver: publishes its state and owns its users' persistent links. Thread-safe;
/// free with `sr_server_free`.
#[derive(Debug)]
pub struct sr_server_driver {
    pub(crate) inner: ServerDriver,
}

crate::panic::handle!(sr_server_driver, ServerDriver, "server");

/// Makes a server driver for the pod `info`. It publishes nothing until `sr_server_start`.
///
/// - `store`: the store (borrowed; the driver keeps its own reference).
/// - `info`, `config`: borrowed for the call.
/// - `server_out`: receives the driver; the caller owns it and frees it with `sr_server_free`.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, invalid UTF-8, bad identifier), `SR_INVALID_CONFIG`.
#[no_mangle]
pub unsafe extern "C" fn sr_server_new(
    store: *const sr_store,
    info: *const sr_server_info,
    config: *const sr_base_config,
    server_out: *mut *mut sr_server_driver,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: pointers are checked by the helpers; the caller guarantees the rest.
    unsafe {
        answer(err_out, "server_out", server_out, || {
            let store = handle("store", store)?.inner.clone();
            let info = handle("info", info)?.to_core()?;
            let config = handle("config", config)?.to_core()?;
            let inner = ServerDriver::new(store, info, config)?;
            Ok(Box::into_raw(Box::new(sr_server_driver { inner })))
        })
    }
}

/// Frees a server driver. Its periodic publishing ends; call `sr_server_stop` first for a
/// graceful shutdown (otherwise the pod just goes stale). No call on it may be running or
/// start afterwards. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_server_free(server: *mut sr_server_driver) {
    if !server.is_null() {
        // SAFETY: `server` came from `Box::into_raw` in this library and is freed once.
        drop(unsafe { Box::from_raw(server) });
    }
}

/// Starts the pod: publishes its state at once, then every period (on the library's runtime).
/// Blocks for the first publish.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL; already started), `SR_CLOSED` (after stop), store
/// errors of the first publish (the driver then stays unstarted).
#[no_mangle]
pub unsafe extern "C" fn sr_server_start(
    server: *const sr_server_driver,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_server_new`.
    unsafe { run(server, err_out, |s| block_on(s.start())?) }
}

/// Drains and stops: publishes DENY_NEW_CALL, waits `drain_seconds`, publishes SHUTDOWN
/// (pod 0 also sets the workload state SHUTDOWN). Blocks until done. Idempotent.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL), store errors of the publishes (the driver is stopped
/// all the same).
#[no_mangle]
pub unsafe extern "C" fn sr_server_stop(
    server: *const sr_server_driver,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_server_new`.
    unsafe { run(server, err_out, |s| block_on(s.stop())?) }
}

/// Sets the app's load (0 … 2^32-1), published with the next period. Does not block.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, negative or too large), `SR_CLOSED` (stopped).
#[no_mangle]
pub unsafe extern "C" fn sr_server_set_load_state(
    server: *const sr_server_driver,
    load: i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_server_new`.
    unsafe {
        run(server, err_out, |s| {
            let load = u32::try_from(load)
                .map_err(|_| invalid("load", &format!("{load} must be 0..=4294967295")))?;
            s.set_load_state(load)
        })
    }
}

/// The app's load as last set, into `*load_out`. Does not block.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL).
#[no_mangle]
pub unsafe extern "C" fn sr_server_get_load_state(
    server: *const sr_server_driver,
    load_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_server_new`.
    unsafe {
        with(server, "load_out", load_out, err_out, |s| {
            Ok(s.get_load_state().into())
        })
    }
}

/// The weighted load the pod publishes (SPEC §5), into `*load_out`. Does not block.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL).
#[no_mangle]
pub unsafe extern "C" fn sr_server_weighted_load(
    server: *const sr_server_driver,
    load_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_server_new`.
    unsafe {
        with(server, "load_out", load_out, err_out, |s| {
            Ok(s.weighted_load().into())
        })
    }
}

/// Sets the routing state (`SR_ROUTING_READY`, `SR_ROUTING_DENY_NEW_CALL` or
/// `SR_ROUTING_SHUTDOWN`); when running, publishes it at once (blocks for that).
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, other value), `SR_CLOSED` (stopped), store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_server_set_routing_state(
    server: *const sr_server_driver,
    state: i32,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_server_new`.
    unsafe {
        run(server, err_out, |s| {
            let state = sr_routing_state::parse(state)?;
            block_on(s.set_routing_state(state))?
        })
    }
}

/// The routing state as last set, into `*state_out`. Does not block.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL).
#[no_mangle]
pub unsafe extern "C" fn sr_server_get_routing_state(
    server: *const sr_server_driver,
    state_out: *mut sr_routing_state,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_server_new`.
    unsafe {
        with(server, "state_out", state_out, err_out, |s| {
            Ok(sr_routing_state::of(Some(s.get_routing_state())))
        })
    }
}

/// `SetLinkedPod`: links `uid` persistently to `pod_index` for `service`.
///
/// - `ns`, `uid`, `service`: UTF-8 `sr_str`s (borrowed); `ns` is `""` or the
///   driver's namespace.
/// - `previous_out`: receives the pod linked before, or -1.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_NAMESPACE_NOT_LOCAL`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_server_set_linked_pod(
    server: *const sr_server_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_index: i64,
    previous_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_server_new`.
    unsafe {
        with(server, "previous_out", previous_out, err_out, |s| {
            let ((ns, uid, svc), pod) = (link_args(ns, uid, service)?, pod_arg(pod_index)?);
            Ok(pod_or_none(block_on(s.set_linked_pod(ns, uid, svc, pod))??))
        })
    }
}

/// `TrySetLinkedPod`: links `uid` persistently to `pod_index` unless it is persistently
/// linked to another pod. `outcome_out` receives (accepted, owner, previous).
///
/// Errors: as `sr_server_set_linked_pod`.
#[no_mangle]
pub unsafe extern "C" fn sr_server_try_set_linked_pod(
    server: *const sr_server_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_index: i64,
    outcome_out: *mut sr_try_set_outcome,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_server_new`.
    unsafe {
        with(server, "outcome_out", outcome_out, err_out, |s| {
            let ((ns, uid, svc), pod) = (link_args(ns, uid, service)?, pod_arg(pod_index)?);
            Ok(block_on(s.try_set_linked_pod(ns, uid, svc, pod))??.into())
        })
    }
}

/// `RemoveLinkedPod`: removes the link now (`delay_seconds` <= 0) or after `delay_seconds`.
/// `removed_out` receives whether a link existed.
///
/// Errors: as `sr_server_set_linked_pod`.
#[no_mangle]
pub unsafe extern "C" fn sr_server_remove_linked_pod(
    server: *const sr_server_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    delay_seconds: i64,
    removed_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_server_new`.
    unsafe {
        with(server, "removed_out", removed_out, err_out, |s| {
            let (ns, uid, svc) = link_args(ns, uid, service)?;
            block_on(s.remove_linked_pod(ns, uid, svc, delay_seconds))?
        })
    }
}

/// `RemoveLinkedPodWithId`: as `sr_server_remove_linked_pod`, only if the link points to
/// `pod_index`. `removed_out` receives whether it was removed.
///
/// Errors: as `sr_server_set_linked_pod`.
#[no_mangle]
pub unsafe extern "C" fn sr_server_remove_linked_pod_with_id(
    server: *const sr_server_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    pod_index: i64,
    delay_seconds: i64,
    removed_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_server_new`.
    unsafe {
        with(server, "removed_out", removed_out, err_out, |s| {
            let ((ns, uid, svc), pod) = (link_args(ns, uid, service)?, pod_arg(pod_index)?);
            block_on(s.remove_linked_pod_with_id(ns, uid, svc, pod, delay_seconds))?
        })
    }
}
