//! The read side of a client driver (the core's `RouteInfo`): pod liveness, best pod, pod
//! states, workload states and service-name tags, in the driver's namespace. Each call blocks
//! only to load a service's snapshot on first use, or to reach the store for workload states
//! and tags.

use std::ffi::c_char;

use crate::client::sr_client_driver;
use crate::config::sr_routing_state;
use crate::convert::{
    handle, out, pod_arg, sr_pod_list, sr_str, sr_string_list, str_arg, str_array, string_out,
};
use crate::error::{sr_error, sr_status};
use crate::panic::{block_on, boundary};

/// Alive pods of `service` as of the snapshot (blocks if it is not loaded yet).
/// `pods_out` receives the list; free it with `sr_pod_list_free`.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_alive_pods(
    client: *const sr_client_driver,
    service: *const c_char,
    service_len: usize,
    pods_out: *mut sr_pod_list,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe { pods(client, service, service_len, false, pods_out, err_out) }
}

/// Routable (alive and READY) pods of `service` as of the snapshot (blocks if it is not
/// loaded yet). `pods_out` receives the list; free it with `sr_pod_list_free`.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_routable_pods(
    client: *const sr_client_driver,
    service: *const c_char,
    service_len: usize,
    pods_out: *mut sr_pod_list,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe { pods(client, service, service_len, true, pods_out, err_out) }
}

unsafe fn pods(
    client: *const sr_client_driver,
    service: *const c_char,
    service_len: usize,
    routable: bool,
    pods_out: *mut sr_pod_list,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        boundary(err_out, || {
            let c = &handle("client", client)?.inner;
            let svc = str_arg("service", service, service_len)?;
            let pods_out = out("pods_out", pods_out)?;
            let pods = match routable {
                true => block_on(c.routable_pods(svc))??,
                false => block_on(c.alive_pods(svc))??,
            };
            pods_out.set(sr_pod_list::new(pods.into_iter().map(i64::from).collect()));
            Ok(())
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
    service: *const c_char,
    service_len: usize,
    pod_index: i64,
    alive_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        is_pod(
            client,
            service,
            service_len,
            pod_index,
            false,
            alive_out,
            err_out,
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
    service: *const c_char,
    service_len: usize,
    pod_index: i64,
    routable_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: forwarded.
    unsafe {
        is_pod(
            client,
            service,
            service_len,
            pod_index,
            true,
            routable_out,
            err_out,
        )
    }
}

unsafe fn is_pod(
    client: *const sr_client_driver,
    service: *const c_char,
    service_len: usize,
    pod_index: i64,
    routable: bool,
    yes_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        boundary(err_out, || {
            let c = &handle("client", client)?.inner;
            let svc = str_arg("service", service, service_len)?;
            let yes_out = out("result_out", yes_out)?;
            let pod = pod_arg(pod_index)?;
            yes_out.set(match routable {
                true => block_on(c.is_pod_routable(svc, pod))??,
                false => block_on(c.is_pod_alive(svc, pod))??,
            });
            Ok(())
        })
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

/// Pod states of `service` as of the last snapshot (blocks if it is not loaded yet).
/// `states_out` receives the list; free it with `sr_pod_state_list_free`.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_pod_states(
    client: *const sr_client_driver,
    service: *const c_char,
    service_len: usize,
    states_out: *mut sr_pod_state_list,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        boundary(err_out, || {
            let c = &handle("client", client)?.inner;
            let svc = str_arg("service", service, service_len)?;
            let states_out = out("states_out", states_out)?;
            let states: Vec<sr_pod_state> = block_on(c.pod_states(svc))??
                .into_iter()
                .map(|p| sr_pod_state {
                    pod_index: p.pod_index.into(),
                    load: p.load.into(),
                    update_ms: p.update_ms,
                    routing_state: sr_routing_state::of(Some(p.routing_state)),
                })
                .collect();
            let (states, len) = crate::convert::boxed_slice(states);
            states_out.set(sr_pod_state_list { states, len });
            Ok(())
        })
    }
}

/// Frees the entries of `list` and sets it to `{NULL, 0}`. NULL, or a list already freed
/// (or zeroed), is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_pod_state_list_free(list: *mut sr_pod_state_list) {
    // SAFETY: the caller passes NULL or a list this library filled.
    let Some(list) = (unsafe { list.as_mut() }) else {
        return;
    };
    if !list.states.is_null() {
        // SAFETY: allocated by `sr_client_pod_states`.
        drop(unsafe { crate::convert::unbox_slice(list.states, list.len) });
    }
    list.states = std::ptr::null_mut();
    list.len = 0;
}

/// The pod a new user of `service` would get now, into `*pod_out`. Blocks if the snapshot is
/// not loaded yet.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_NO_AVAILABLE_POD`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_best_pod(
    client: *const sr_client_driver,
    service: *const c_char,
    service_len: usize,
    pod_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        boundary(err_out, || {
            let c = &handle("client", client)?.inner;
            let svc = str_arg("service", service, service_len)?;
            let pod_out = out("pod_out", pod_out)?;
            pod_out.set(block_on(c.best_pod(svc))??.into());
            Ok(())
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
    service: *const c_char,
    service_len: usize,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        boundary(err_out, || {
            let c = &handle("client", client)?.inner;
            let svc = str_arg("service", service, service_len)?;
            block_on(c.refresh_service(svc))?
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
    service: *const c_char,
    service_len: usize,
    state_out: *mut *mut c_char,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        boundary(err_out, || {
            let c = &handle("client", client)?.inner;
            let svc = str_arg("service", service, service_len)?;
            let state_out = out("state_out", state_out)?;
            state_out.set(string_out(block_on(c.get_workload_state(svc))??));
            Ok(())
        })
    }
}

/// Sets the workload state of `service` (1-64 chars of `[A-Za-z0-9_-]`). Blocks.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_set_workload_state(
    client: *const sr_client_driver,
    service: *const c_char,
    service_len: usize,
    state: *const c_char,
    state_len: usize,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        boundary(err_out, || {
            let c = &handle("client", client)?.inner;
            let svc = str_arg("service", service, service_len)?;
            let state = str_arg("workload_state", state, state_len)?;
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
        boundary(err_out, || {
            let c = &handle("client", client)?.inner;
            let services = str_array("services", services, services_len)?;
            let states_out = out("states_out", states_out)?;
            states_out.set(sr_string_list::new(block_on(
                c.batch_get_workload_state(&services),
            )??));
            Ok(())
        })
    }
}

/// Whether `service`'s workload state is `READY`, into `*ready_out`. Blocks.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_is_workload_ready(
    client: *const sr_client_driver,
    service: *const c_char,
    service_len: usize,
    ready_out: *mut bool,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        boundary(err_out, || {
            let c = &handle("client", client)?.inner;
            let svc = str_arg("service", service, service_len)?;
            let ready_out = out("ready_out", ready_out)?;
            ready_out.set(block_on(c.is_workload_ready(svc))??);
            Ok(())
        })
    }
}

/// Makes `tag` stand for `service` (both as service names). Blocks.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_set_global_service_name_tag(
    client: *const sr_client_driver,
    tag: *const c_char,
    tag_len: usize,
    service: *const c_char,
    service_len: usize,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        boundary(err_out, || {
            let c = &handle("client", client)?.inner;
            let tag = str_arg("tag", tag, tag_len)?;
            let svc = str_arg("service", service, service_len)?;
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
    tag: *const c_char,
    tag_len: usize,
    service_out: *mut *mut c_char,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_new`.
    unsafe {
        boundary(err_out, || {
            let c = &handle("client", client)?.inner;
            let tag = str_arg("tag", tag, tag_len)?;
            let service_out = out("service_out", service_out)?;
            service_out.set(string_out(block_on(c.get_service_name_by_tag(tag))??));
            Ok(())
        })
    }
}
