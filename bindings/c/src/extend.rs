//! Extension points (issue 6): a C function as placement policy (`sr_placement_policy`) or as
//! a server driver's load calculator, per-service placement by name, pod weights and custom
//! load signals.
//!
//! Only bridging happens here: the core's `Candidate`, `PlacementRequest` and `LoadInput`
//! become plain C structs for one call, and the callback's status, error object and answer
//! become the core's `Result`. Every check of the answer the core makes itself (an index out
//! of range) stays the core's.

use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use sr_core::load::DefaultLoadCalculator;
use sr_core::{
    Candidate, Error, ErrorKind, LoadCalculator, LoadInput, Placement, PlacementPolicy,
    PlacementRequest, Result,
};

use crate::client::{sr_client_driver, sr_release_callback, UserCallback};
use crate::config::sr_routing_state;
use crate::convert::{handle, invalid, sr_str};
use crate::error::{kind_of_status, sr_error, sr_status};
use crate::panic::{answer, block_on, run, with};
use crate::server::sr_server_driver;

/// One pod a placement policy may choose. Plain data, valid during the callback.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_candidate {
    /// The pod's index.
    pub pod_index: i64,
    /// Its published weighted load.
    pub load: u32,
    /// New users this driver placed on it since its snapshot was read.
    pub placed: u32,
    /// Its load as placement compares it: `load` plus a share per placed user.
    pub effective_load: u64,
    /// Its routing state (always `SR_ROUTING_READY` today).
    pub routing_state: sr_routing_state,
    /// How old its published state was when the snapshot was read, in ms.
    pub age_ms: u64,
    /// The placement weight the pod publishes (default 100; see `sr_server_set_weight`).
    pub weight: u32,
}

impl From<&Candidate> for sr_candidate {
    fn from(c: &Candidate) -> Self {
        sr_candidate {
            pod_index: c.pod_index.into(),
            load: c.load,
            placed: c.placed,
            effective_load: c.effective_load(),
            routing_state: sr_routing_state::of(Some(c.routing_state)),
            age_ms: c.age_ms,
            weight: c.weight,
        }
    }
}

/// The request a placement policy places. The strings are UTF-8, **not** NUL-terminated,
/// valid during the callback.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_placement_request {
    /// The driver's namespace.
    pub namespace_name: sr_str,
    /// The user.
    pub uid: sr_str,
    /// The service.
    pub service: sr_str,
    /// How many placements this driver made for this service before this one.
    pub sequence: u64,
}

/// A placement policy: chooses one of `candidates` (`candidates_len` >= 1 pods, sorted by pod
/// index) for the new user of `request`.
///
/// Return `SR_OK` after writing to `*choice_out` the index into `candidates` of the chosen pod,
/// or -1 to refuse (the caller then gets `SR_NO_AVAILABLE_POD`). Any other status fails the
/// placement: the `sr_client_compute_linked_pod` caller gets that status (`SR_INTERNAL` for a
/// value that is not a status code) with a message starting "placement callback failed"; set
/// `*err_out` to an error made with `sr_error_new` to say why (the library frees it). An index
/// out of range, or `SR_OK` without a choice, is `SR_INTERNAL` for the caller. Nothing is
/// written to the store when the placement fails.
///
/// Called on the thread of `sr_client_compute_linked_pod` or on the library's runtime threads,
/// possibly from many threads at once; it must be quick, must not block and must not call
/// blocking `sr_` functions (they fail with `SR_INVALID_ARGUMENT` there).
pub type sr_placement_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        candidates: *const sr_candidate,
        candidates_len: usize,
        request: *const sr_placement_request,
        choice_out: *mut i64,
        err_out: *mut *mut sr_error,
    ) -> i32,
>;

type PlaceFn = unsafe extern "C" fn(
    *mut c_void,
    *const sr_candidate,
    usize,
    *const sr_placement_request,
    *mut i64,
    *mut *mut sr_error,
) -> i32;

/// What `*choice_out` holds until the callback writes it.
const NOT_WRITTEN: i64 = i64::MIN;

/// A callback's status and optional error object as a result (an error object set with
/// `SR_OK` is freed).
///
/// # Safety
/// `err` is NULL or an error from `sr_error_new` that the library now owns.
unsafe fn callback_result(what: &str, status: i32, err: *mut sr_error) -> Result<()> {
    if status == sr_status::SR_OK as i32 {
        // SAFETY: as the caller guarantees.
        unsafe { crate::error::sr_error_free(err) };
        return Ok(());
    }
    let detail = match err.is_null() {
        // SAFETY: sr_status_name returns a static C string.
        true => format!("it returned {} ({status})", unsafe {
            std::ffi::CStr::from_ptr(crate::error::sr_status_name(status)).to_string_lossy()
        }),
        // SAFETY: made by `sr_error_new` (a `Box`); ownership passed to the library.
        false => unsafe { Box::from_raw(err) }.core().message().to_string(),
    };
    Err(Error::new(
        kind_of_status(status),
        format!("{what} failed: {detail}"),
    ))
}

#[derive(Debug)]
struct CPolicy(UserCallback<PlaceFn>);

impl PlacementPolicy for CPolicy {
    fn choose(&self, c: &[Candidate], r: &PlacementRequest<'_>) -> Result<Option<usize>> {
        let candidates: Vec<sr_candidate> = c.iter().map(sr_candidate::from).collect();
        let request = sr_placement_request {
            namespace_name: sr_str::of(r.namespace),
            uid: sr_str::of(r.uid),
            service: sr_str::of(r.service),
            sequence: r.sequence,
        };
        let mut choice = NOT_WRITTEN;
        let mut err: *mut sr_error = ptr::null_mut();
        let cb = &self.0;
        // SAFETY: the caller registered a callback that accepts its user data and these
        // arguments, valid for the duration of the call.
        let status = unsafe {
            (cb.call)(
                cb.user_data,
                candidates.as_ptr(),
                candidates.len(),
                &request,
                &mut choice,
                &mut err,
            )
        };
        // SAFETY: `err` is NULL or the callback's error, now ours.
        unsafe { callback_result("placement callback", status, err) }?;
        match choice {
            -1 => Ok(None),
            NOT_WRITTEN => Err(Error::new(
                ErrorKind::Internal,
                "placement callback returned SR_OK without writing a choice",
            )),
            // The core reports an index >= candidates_len.
            i => usize::try_from(i).map(Some).map_err(|_| {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "placement callback chose {i}: must be an index into the candidates or -1"
                    ),
                )
            }),
        }
    }
}

/// A placement policy made of a C callback, shared by the drivers that use it. Free with
/// `sr_placement_policy_free`; the callback's release runs when no driver uses it any more.
#[derive(Debug)]
pub struct sr_placement_policy {
    inner: Arc<CPolicy>,
}

impl sr_placement_policy {
    pub(crate) fn placement(&self) -> Placement {
        Placement::Custom(self.inner.clone())
    }
}

/// Makes a placement policy of `callback` (see `sr_placement_callback`), for
/// `sr_base_config.placement_policy` and `sr_client_set_service_placement_policy`.
///
/// - `callback`: required. `release`: optional (may be NULL); called once with `user_data`
///   when `callback` will never run again: after `sr_placement_policy_free` and the freeing of
///   every driver that uses the policy, from any thread.
/// - `policy_out`: receives the policy; free it with `sr_placement_policy_free` (drivers keep
///   their own reference).
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL callback or out-parameter; `release` is then not
/// called).
#[no_mangle]
pub unsafe extern "C" fn sr_placement_policy_new(
    callback: sr_placement_callback,
    release: sr_release_callback,
    user_data: *mut c_void,
    policy_out: *mut *mut sr_placement_policy,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: pointers are checked by the helpers; the caller guarantees the rest.
    unsafe {
        answer(err_out, "policy_out", policy_out, || {
            let call = callback.ok_or_else(|| invalid("callback", "is NULL"))?;
            let inner = Arc::new(CPolicy(UserCallback {
                call,
                release,
                user_data,
            }));
            Ok(Box::into_raw(Box::new(sr_placement_policy { inner })))
        })
    }
}

/// Drops the caller's reference to `policy`; drivers using it keep theirs. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_placement_policy_free(policy: *mut sr_placement_policy) {
    if !policy.is_null() {
        // SAFETY: `policy` came from `Box::into_raw` in this library and is freed once.
        drop(unsafe { Box::from_raw(policy) });
    }
}

/// `set_service_placement`: places new users of `service` with the built-in policy
/// `placement` instead of the configured one: `"p2c"`, `"random"`, `"round_robin"`,
/// `"rendezvous"` or `"weighted"` (the core's `Placement::from_setting` decides).
///
/// - `load_factor`: rendezvous's bound c (>= 1; a pod above c × the average load is skipped);
///   0 means the default 1.25. Must be 0 for the other policies.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, bad service), `SR_INVALID_CONFIG` (unknown name, a
/// load factor for another policy, a rendezvous load factor below 1).
#[no_mangle]
pub unsafe extern "C" fn sr_client_set_service_placement(
    client: *const sr_client_driver,
    service: sr_str,
    placement: sr_str,
    load_factor: f64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_placement_policy_new`.
    unsafe {
        run(client, err_out, |c| {
            let (svc, name) = (service.get("service")?, placement.get("placement")?);
            c.set_service_placement(svc, Placement::from_setting(name, load_factor)?)
        })
    }
}

/// `set_service_placement` with a policy of your own: new users of `service` are placed by
/// `policy` (borrowed; the driver keeps its own reference).
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, bad service).
#[no_mangle]
pub unsafe extern "C" fn sr_client_set_service_placement_policy(
    client: *const sr_client_driver,
    service: sr_str,
    policy: *const sr_placement_policy,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_placement_policy_new`.
    unsafe {
        run(client, err_out, |c| {
            let svc = service.get("service")?;
            let policy = handle("policy", policy)?;
            c.set_service_placement(svc, policy.placement())
        })
    }
}

/// One custom load signal (`sr_server_set_load_signal`). The name is UTF-8 (an `sr_str`),
/// **not** NUL-terminated, valid during the callback.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_load_signal {
    /// The signal's name.
    pub name: sr_str,
    /// Its value.
    pub value: f64,
}

/// What a load calculator sees. Valid during the callback.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_load_input {
    /// The load the app set with `sr_server_set_load_state`.
    pub load: i64,
    /// This process's CPU use over the last period, percent of the machine (0-100); 0 when
    /// `cpu_factor` is 0.
    pub cpu_percent: f64,
    /// The configured `cpu_factor`.
    pub cpu_factor: f64,
    /// The custom signals, sorted by name.
    pub signals: *const sr_load_signal,
    /// Number of signals.
    pub signals_len: usize,
}

/// A load calculator: the weighted load (0 … 2^32-1) the pod publishes, written to
/// `*load_out`, from `input`. Return `SR_OK`, or another status (optionally with an error
/// made by `sr_error_new` in `*err_out`, which the library frees) to fail: the library then
/// logs the error and publishes SPEC's formula instead, and `sr_server_try_weighted_load`
/// reports it. A load out of range is a failure too.
///
/// Called on the library's runtime threads when the pod publishes, and on the caller's thread
/// inside `sr_server_weighted_load` / `sr_server_try_weighted_load`; it must be quick and
/// must not call into the driver.
pub type sr_load_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        input: *const sr_load_input,
        load_out: *mut i64,
        err_out: *mut *mut sr_error,
    ) -> i32,
>;

type LoadFn =
    unsafe extern "C" fn(*mut c_void, *const sr_load_input, *mut i64, *mut *mut sr_error) -> i32;

#[derive(Debug)]
struct CLoad(UserCallback<LoadFn>);

impl LoadCalculator for CLoad {
    fn weighted_load(&self, input: &LoadInput<'_>) -> Result<u32> {
        let signals: Vec<sr_load_signal> = input
            .signals
            .iter()
            .map(|(name, value)| sr_load_signal {
                name: sr_str::of(name),
                value: *value,
            })
            .collect();
        let c_input = sr_load_input {
            load: input.load.into(),
            cpu_percent: input.cpu_percent,
            cpu_factor: input.cpu_factor,
            signals: signals.as_ptr(),
            signals_len: signals.len(),
        };
        let mut load = NOT_WRITTEN;
        let mut err: *mut sr_error = ptr::null_mut();
        let cb = &self.0;
        // SAFETY: the caller registered a callback that accepts its user data and these
        // arguments, valid for the duration of the call.
        let status = unsafe { (cb.call)(cb.user_data, &c_input, &mut load, &mut err) };
        // SAFETY: `err` is NULL or the callback's error, now ours.
        unsafe { callback_result("load callback", status, err) }?;
        match load {
            NOT_WRITTEN => Err(Error::new(
                ErrorKind::Internal,
                "load callback returned SR_OK without writing a load",
            )),
            l => u32::try_from(l).map_err(|_| {
                Error::new(
                    ErrorKind::Internal,
                    format!("load callback returned {l}: must be 0..=4294967295"),
                )
            }),
        }
    }
}

/// Replaces SPEC's load formula with `calculator` (see `sr_load_callback`) for every later
/// publish of this pod; a NULL `calculator` restores the formula. The calculator set before is
/// released once no call of it is running.
///
/// - `release`: optional (may be NULL); called once with `user_data` when `calculator` will
///   never run again (after replacement or `sr_server_free`), from any thread.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL server; `release` is then not called). With a NULL
/// `calculator`, `release` is not called either.
#[no_mangle]
pub unsafe extern "C" fn sr_server_set_load_calculator(
    server: *const sr_server_driver,
    calculator: sr_load_callback,
    release: sr_release_callback,
    user_data: *mut c_void,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_placement_policy_new`.
    unsafe {
        run(server, err_out, |s| {
            let calculator: Arc<dyn LoadCalculator> = match calculator {
                Some(call) => Arc::new(CLoad(UserCallback {
                    call,
                    release,
                    user_data,
                })),
                None => Arc::new(DefaultLoadCalculator),
            };
            s.set_load_calculator(calculator);
            Ok(())
        })
    }
}

/// Sets the custom load signal `name` (an identifier like a service name; UTF-8, pointer +
/// length) to `value`; a load calculator sees it from the next publish. Does not block.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, bad name, a value that is not finite), `SR_CLOSED`
/// (stopped).
#[no_mangle]
pub unsafe extern "C" fn sr_server_set_load_signal(
    server: *const sr_server_driver,
    name: sr_str,
    value: f64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_placement_policy_new`.
    unsafe {
        run(server, err_out, |s| {
            let name = name.get("name")?;
            s.set_load_signal(name, value)
        })
    }
}

/// Sets this pod's placement weight for the `weighted` policy (0 … 2^32-1; default 100;
/// 0 = never chosen by weight). When running, publishes it at once (blocks for that).
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL, out of range), `SR_CLOSED` (stopped), store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_server_set_weight(
    server: *const sr_server_driver,
    weight: i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_placement_policy_new`.
    unsafe {
        run(server, err_out, |s| {
            let weight = u32::try_from(weight)
                .map_err(|_| invalid("weight", &format!("{weight} must be 0..=4294967295")))?;
            block_on(s.set_weight(weight))?
        })
    }
}

/// This pod's placement weight, into `*weight_out`. Does not block.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL).
#[no_mangle]
pub unsafe extern "C" fn sr_server_get_weight(
    server: *const sr_server_driver,
    weight_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_placement_policy_new`.
    unsafe {
        with(server, "weight_out", weight_out, err_out, |s| {
            Ok(s.get_weight().into())
        })
    }
}

/// The load calculator's answer for the current inputs, into `*load_out`, with its error if
/// it fails (where `sr_server_weighted_load` falls back to SPEC's formula). Does not block.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL), the calculator's error.
#[no_mangle]
pub unsafe extern "C" fn sr_server_try_weighted_load(
    server: *const sr_server_driver,
    load_out: *mut i64,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_placement_policy_new`.
    unsafe {
        with(server, "load_out", load_out, err_out, |s| {
            Ok(s.try_weighted_load()?.into())
        })
    }
}
