//! The read side of a client driver (the core's `RouteInfo`): pod liveness, best pod, pod
//! states, workload states and service-name tags, in the driver's namespace. Each call blocks
//! only to load a service's snapshot on first use, or to reach the store for workload states
//! and tags.

use std::ffi::c_char;

use sr_core::{ClientDriver, PodState, Result};

use crate::client::sr_client_driver;
use crate::config::sr_routing_state;
use crate::convert::{
    boxed_slice, handle, pod_arg, sr_pod_list, sr_str, sr_string_list, str_array, string_out, take,
};
use crate::error::{sr_error, sr_status};
use crate::panic::{answer, block_on, run, with};

/// A call on one service with one out-parameter (`field`): `f` gets the driver and the
/// checked service.
///
/// # Safety
/// As every exported function (see the crate docs).
unsafe fn on_service<T>(
    client: *const sr_client_driver,
    service: sr_str,
    field: &str,
    out_ptr: *mut T,
    err_out: *mut *mut sr_error,
    f: impl FnOnce(&ClientDriver, &str) -> Result<T>,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        answer(err_out, field, out_ptr, || {
            f(&handle("client", client)?.inner, service.get("service")?)
        })
    }
}

fn pod_list(pods: Vec<u32>) -> sr_pod_list {
    sr_pod_list::new(pods.into_iter().map(i64::from).collect())
}

/// Alive pods of `service` as of the snapshot (blocks if it is not loaded yet).
/// `pods_out` receives the list; free it with `sr_pod_list_free`.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_alive_pods(
    client: *const sr_client_driver,
    service: sr_str,
    pods_out: *mut sr_pod_list,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        on_service(client, service, "pods_out", pods_out, err_out, |c, svc| {
            Ok(pod_list(block_on(c.alive_pods(svc))??))
        })
    }
}

/// Routable (alive and READY) pods of `service` as of the snapshot (blocks if it is not
/// loaded yet). `pods_out` receives the list; free it with `sr_pod_list_free`.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_routable_pods(
    client: *const sr_client_driver,
    service: sr_str,
    pods_out: *mut sr_pod_list,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        on_service(client, service, "pods_out", pods_out, err_out, |c, svc| {
            Ok(pod_list(block_on(c.routable_pods(svc))??))
        })
    }
}

/// Whether `pod_index` of `service` is alive, into `*alive_out` (blocks if the snapshot is
/// not loaded yet).
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_is_pod_alive(
    client: *const sr_client_driver,
    service: sr_str,
    pod_index: i64,
    alive_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        on_service(
            client,
            service,
            "alive_out",
            alive_out,
            err_out,
            |c, svc| block_on(c.is_pod_alive(svc, pod_arg(pod_index)?))?,
        )
    }
}

/// Whether `pod_index` of `service` is routable (alive and READY), into `*routable_out`
/// (blocks if the snapshot is not loaded yet).
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_is_pod_routable(
    client: *const sr_client_driver,
    service: sr_str,
    pod_index: i64,
    routable_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        on_service(
            client,
            service,
            "routable_out",
            routable_out,
            err_out,
            |c, svc| block_on(c.is_pod_routable(svc, pod_arg(pod_index)?))?,
        )
    }
}

/// One pod's published state.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_pod_state {
    /// The pod.
    pub pod_index: i64,
    /// Its weighted load.
    pub load: i64,
    /// When it was published: milliseconds since the Unix epoch on the store's clock.
    pub update_ms: u64,
    /// Its routing state as published.
    pub routing_state: sr_routing_state,
    /// Its placement weight (default 100; see `sr_server_set_weight`).
    pub weight: u32,
}

/// Pod states of a service, sorted by pod. Free with `sr_pod_state_list_free`.
#[repr(C)]
#[derive(Debug)]
pub struct sr_pod_state_list {
    /// `len` entries.
    pub states: *mut sr_pod_state,
    /// Number of entries.
    pub len: usize,
}

impl sr_pod_state_list {
    pub(crate) fn new(states: Vec<PodState>) -> sr_pod_state_list {
        let states = states.into_iter().map(|p| sr_pod_state {
            pod_index: p.pod_index.into(),
            load: p.load.into(),
            update_ms: p.update_ms,
            routing_state: sr_routing_state::of(Some(p.routing_state)),
            weight: p.weight,
        });
        let (states, len) = boxed_slice(states.collect());
        sr_pod_state_list { states, len }
    }
}

/// Pod states of `service` as of the last snapshot (blocks if it is not loaded yet).
/// `states_out` receives the list; free it with `sr_pod_state_list_free`.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_pod_states(
    client: *const sr_client_driver,
    service: sr_str,
    states_out: *mut sr_pod_state_list,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        on_service(
            client,
            service,
            "states_out",
            states_out,
            err_out,
            |c, svc| Ok(sr_pod_state_list::new(block_on(c.pod_states(svc))??)),
        )
    }
}

/// Frees the entries of `list` and sets it to `{NULL, 0}`. NULL, or a list already freed
/// (or zeroed), is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_pod_state_list_free(list: *mut sr_pod_state_list) {
    // SAFETY: the caller passes NULL or a list this library filled, not freed yet.
    if let Some(l) = unsafe { list.as_mut() } {
        drop(unsafe { take(&mut l.states, &mut l.len) });
    }
}

/// The pod a new user of `service` would get now, into `*pod_out`. Blocks if the snapshot is
/// not loaded yet.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_NO_AVAILABLE_POD`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_best_pod(
    client: *const sr_client_driver,
    service: sr_str,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        on_service(client, service, "pod_out", pod_out, err_out, |c, svc| {
            Ok(block_on(c.best_pod(svc))??.into())
        })
    }
}

/// Re-reads `service`'s pod states now (routing-state callbacks run for changes it sees,
/// on this thread). Blocks.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_refresh_service(
    client: *const sr_client_driver,
    service: sr_str,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        run(client, err_out, |c| {
            block_on(c.refresh_service(service.get("service")?))?
        })
    }
}

/// The workload state of `service` (`"READY"` means ready) into `*state_out`: a string the
/// caller frees with `sr_string_free`, or NULL if none is set. Blocks.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_get_workload_state(
    client: *const sr_client_driver,
    service: sr_str,
    state_out: *mut *mut c_char,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        on_service(
            client,
            service,
            "state_out",
            state_out,
            err_out,
            |c, svc| Ok(string_out(block_on(c.get_workload_state(svc))??)),
        )
    }
}

/// Sets the workload state of `service` (1-64 chars of `[A-Za-z0-9_-]`). Blocks.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_set_workload_state(
    client: *const sr_client_driver,
    service: sr_str,
    state: sr_str,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        run(client, err_out, |c| {
            let (svc, state) = (service.get("service")?, state.get("state")?);
            block_on(c.set_workload_state(svc, state))?
        })
    }
}

/// The workload states of many services, in input order, into `*states_out` (NULL entries:
/// none set); free it with `sr_string_list_free`. Blocks.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_batch_get_workload_state(
    client: *const sr_client_driver,
    services: *const sr_str,
    services_len: usize,
    states_out: *mut sr_string_list,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        with(client, "states_out", states_out, err_out, |c| {
            let services = str_array("services", services, services_len)?;
            Ok(sr_string_list::new(block_on(
                c.batch_get_workload_state(&services),
            )??))
        })
    }
}

/// Whether `service`'s workload state is `READY`, into `*ready_out`. Blocks.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_is_workload_ready(
    client: *const sr_client_driver,
    service: sr_str,
    ready_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        on_service(
            client,
            service,
            "ready_out",
            ready_out,
            err_out,
            |c, svc| block_on(c.is_workload_ready(svc))?,
        )
    }
}

/// Makes `tag` stand for `service` (both as service names). Blocks.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_set_global_service_name_tag(
    client: *const sr_client_driver,
    tag: sr_str,
    service: sr_str,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        run(client, err_out, |c| {
            let (tag, svc) = (tag.get("tag")?, service.get("service")?);
            block_on(c.set_global_service_name_tag(tag, svc))?
        })
    }
}

/// The service `tag` stands for, into `*service_out`: a string the caller frees with
/// `sr_string_free`, or NULL if the tag is not set. Blocks.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_get_service_name_by_tag(
    client: *const sr_client_driver,
    tag: sr_str,
    service_out: *mut *mut c_char,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        with(client, "service_out", service_out, err_out, |c| {
            Ok(string_out(block_on(
                c.get_service_name_by_tag(tag.get("tag")?),
            )??))
        })
    }
}
