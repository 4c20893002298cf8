//! Extension points (issue 6): a JS function as placement policy or load calculator.
//!
//! The core calls a policy on whatever thread runs the compute (a runtime worker for a cache
//! miss, since every compute is a Promise) and a calculator on the thread that publishes (a
//! runtime worker), or on the JS thread for `server.weightedLoad()` / `tryWeightedLoad()`.
//! A JS function can only run on its environment's JS thread, so:
//!
//! - on the JS thread itself the function is called directly;
//! - on any other thread the call is queued to the JS thread ([`JsThread::run`], the
//!   environment's one weak threadsafe function) and the calling thread blocks on a channel
//!   for the answer, at most [`CALL_TIMEOUT`]; then the call fails with `TIMEOUT`. While the
//!   JS thread is busy, up to all of the runtime's workers (2 by default,
//!   `STATEFUL_ROUTE_WORKER_THREADS`) may wait for it, which delays the runtime's other tasks
//!   by as long (at most [`CALL_TIMEOUT`] per call).
//!
//! Deadlock freedom: the JS thread never waits synchronously for the runtime (every store call
//! is a Promise, and the synchronous `computeCached` probe and `weightedLoad` never touch the
//! runtime's threads or hold a lock a policy call holds), so a runtime thread waiting for the
//! JS thread gets its answer as soon as the event loop runs. A blocked event loop costs the
//! caller at most [`CALL_TIMEOUT`]; a gone environment (worker terminated, process exiting)
//! drops the queued job, which ends the wait at once.
//!
//! The function gets plain objects (`Candidate[]` and `PlacementRequest`, or `LoadInput`) and
//! its answer is checked here: a policy returns an index into the candidates or `null` /
//! `undefined` to refuse; a calculator a finite number in [0, 2^32 − 1] (rounded). A throw, a
//! wrong type or a value out of range is a core error: `INTERNAL`, or the thrown error's own
//! `code` if it is one of the core's codes. The core returns a policy's error to the compute's
//! caller and logs a calculator's, publishing SPEC's formula instead. Nothing here decides a
//! placement.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::ptr;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, ValidateNapiValue};
use napi::{check_status, sys, ValueType};
use napi_derive::napi;
use stateful_route::{self as core, Error, ErrorKind, LoadCalculator, Placement, PlacementPolicy};

use crate::config::RoutingState;
use crate::error::invalid;
use crate::runtime::JsThread;

/// How long a runtime thread waits for the JS thread to answer one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One pod a JS placement policy may choose.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The pod's index.
    pub pod_index: u32,
    /// Its published weighted load.
    pub load: u32,
    /// New users this gateway placed on it since the snapshot was read.
    pub placed: u32,
    /// `load + placed`: what `'p2c'` compares.
    pub effective_load: f64,
    /// Its routing state (`'READY'` for every candidate today).
    pub routing_state: RoutingState,
    /// How old its published state was when the snapshot was read, in ms.
    pub age_ms: f64,
    /// The placement weight the pod publishes (default 100).
    pub weight: u32,
}

impl From<&core::Candidate> for Candidate {
    fn from(c: &core::Candidate) -> Self {
        Candidate {
            pod_index: c.pod_index,
            load: c.load,
            placed: c.placed,
            effective_load: c.effective_load() as f64,
            routing_state: c.routing_state.into(),
            age_ms: c.age_ms as f64,
            weight: c.weight,
        }
    }
}

/// The new user a JS placement policy places.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct PlacementRequest {
    /// The gateway's namespace.
    pub namespace: String,
    /// The user.
    pub uid: String,
    /// The service.
    pub service: String,
    /// How many placements this gateway made for this service before this one.
    pub sequence: f64,
}

/// What a JS load calculator sees.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct LoadInput {
    /// The app's load as set with `setLoadState`.
    pub load: u32,
    /// This process's CPU use over the last period, percent of the machine (0–100); 0 when
    /// `cpuFactor` is 0.
    pub cpu_percent: f64,
    /// The configured `cpuFactor`.
    pub cpu_factor: f64,
    /// The custom signals set with `setLoadSignal`.
    #[napi(ts_type = "Record<string, number>")]
    pub signals: BTreeMap<String, f64>,
}

/// A JS function and the JS thread it runs on.
struct JsFunction {
    /// `"placement policy"` or `"load calculator"`, for messages.
    what: &'static str,
    js: JsThread,
    /// A strong `napi_ref` of the function, deleted on the JS thread by `drop`. Jobs run in
    /// the order they are queued, so a call queued before the drop still finds it.
    func: usize,
}

impl std::fmt::Debug for JsFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JS {}", self.what)
    }
}

impl Drop for JsFunction {
    fn drop(&mut self) {
        let func = self.func;
        // Deleted on the JS thread; if the environment is gone, so is the reference.
        self.js.run(move |env| {
            // SAFETY: the JS thread of the env that created the reference.
            unsafe { sys::napi_delete_reference(env, func as sys::napi_ref) };
        });
    }
}

/// Builds the arguments on the JS thread.
type Args = Box<dyn FnOnce(sys::napi_env) -> napi::Result<Vec<sys::napi_value>> + Send>;

/// Reads the function's answer on the JS thread.
type Answer<R> = fn(sys::napi_env, sys::napi_value) -> Result<R, String>;

impl JsFunction {
    /// `value` (a JS function) on the JS thread of `env`.
    fn new(env: sys::napi_env, value: sys::napi_value, what: &'static str) -> napi::Result<Self> {
        let js = JsThread::current(env)?;
        let mut r = ptr::null_mut();
        // SAFETY: the caller's JS thread and live env; `value` is its function.
        let status = unsafe { sys::napi_create_reference(env, value, 1, &mut r) };
        check_status!(status, "cannot reference the function")?;
        Ok(JsFunction {
            what,
            js,
            func: r as usize,
        })
    }

    /// Calls the function with `args` and reads its answer with `answer`, from any thread.
    fn call<R: Send + 'static>(&self, args: Args, answer: Answer<R>) -> core::Result<R> {
        let what = self.what;
        if let Some(env) = self.js.env_if_current() {
            // SAFETY: this env's JS thread, inside a native call (the env is alive).
            return unsafe { invoke(env, self.func, what, args, answer) };
        }
        let (tx, rx) = mpsc::sync_channel::<core::Result<R>>(1);
        let func = self.func;
        self.js.run(move |env| {
            // SAFETY: run by the settler on the JS thread of the env that owns `func`.
            let out = unsafe { invoke(env, func, what, args, answer) };
            let _ = tx.send(out);
        });
        // Plain blocking, not `block_in_place`: handing the worker's tasks to another thread
        // cost about 30 µs more per placement (node/bench.js, part 4).
        let got = rx.recv_timeout(CALL_TIMEOUT);
        match got {
            Ok(out) => out,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the JS {what} did not answer within {} s (is the event loop blocked?)",
                    CALL_TIMEOUT.as_secs()
                ),
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::new(
                ErrorKind::Closed,
                format!("the JS {what} cannot run: its Node environment has gone"),
            )),
        }
    }
}

/// Calls the function behind `func` on the JS thread of `env`, inside a handle scope.
///
/// # Safety
/// `env` is live and the calling thread is its JS thread; `func` is a reference of `env`.
unsafe fn invoke<R>(
    env: sys::napi_env,
    func: usize,
    what: &str,
    args: Args,
    answer: Answer<R>,
) -> core::Result<R> {
    let mut scope = ptr::null_mut();
    // SAFETY: per the contract.
    unsafe { sys::napi_open_handle_scope(env, &mut scope) };
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        invoke_in_scope(env, func, what, args, answer)
    }))
    .unwrap_or_else(|_| {
        Err(Error::new(
            ErrorKind::Internal,
            format!("calling the JS {what} panicked"),
        ))
    });
    // SAFETY: the scope opened above.
    unsafe { sys::napi_close_handle_scope(env, scope) };
    out
}

unsafe fn invoke_in_scope<R>(
    env: sys::napi_env,
    func: usize,
    what: &str,
    args: Args,
    answer: Answer<R>,
) -> core::Result<R> {
    let internal = |m: String| Error::new(ErrorKind::Internal, m);
    let mut f = ptr::null_mut();
    let mut recv = ptr::null_mut();
    // SAFETY: per `invoke`'s contract.
    unsafe {
        sys::napi_get_reference_value(env, func as sys::napi_ref, &mut f);
        sys::napi_get_undefined(env, &mut recv);
    }
    if f.is_null() {
        return Err(internal(format!("the JS {what} is gone")));
    }
    let argv = args(env).map_err(|e| internal(format!("JS {what} arguments: {}", e.reason)))?;
    let mut ret = ptr::null_mut();
    // SAFETY: as above; `argv` holds values of this scope.
    let status =
        unsafe { sys::napi_call_function(env, recv, f, argv.len(), argv.as_ptr(), &mut ret) };
    if status == sys::Status::napi_pending_exception {
        let mut exc = ptr::null_mut();
        // SAFETY: as above.
        unsafe { sys::napi_get_and_clear_last_exception(env, &mut exc) };
        // SAFETY: as above; `exc` is the thrown value.
        return Err(unsafe { thrown(env, exc, what) });
    }
    if status != sys::Status::napi_ok {
        return Err(internal(format!(
            "calling the JS {what} failed (napi status {status})"
        )));
    }
    answer(env, ret).map_err(|m| internal(format!("the JS {what} returned {m}")))
}

/// The error for a value a JS function threw. Reads `message` and `code` of an object (a
/// getter that throws is cleared), never calls `toString`.
unsafe fn thrown(env: sys::napi_env, exc: sys::napi_value, what: &str) -> Error {
    // SAFETY (whole function): `invoke`'s contract; every value is of this scope.
    let (kind, text) = match unsafe { type_of(env, exc) } {
        ValueType::Object | ValueType::Function => {
            let message = unsafe { string_property(env, exc, c"message") };
            let code = unsafe { string_property(env, exc, c"code") };
            let name = unsafe { string_property(env, exc, c"name") };
            let kind = code
                .as_deref()
                .and_then(ErrorKind::from_code)
                .unwrap_or(ErrorKind::Internal);
            let text = match (name, message) {
                (Some(n), Some(m)) => format!("{n}: {m}"),
                (None, Some(m)) => m,
                (Some(n), None) => n,
                (None, None) => "an object".to_string(),
            };
            (kind, text)
        }
        ValueType::String => (
            ErrorKind::Internal,
            unsafe { string(env, exc) }.unwrap_or_default(),
        ),
        ValueType::Number => (
            ErrorKind::Internal,
            unsafe { f64::from_napi_value(env, exc) }
                .map_or_else(|_| String::new(), |n| n.to_string()),
        ),
        t => (
            ErrorKind::Internal,
            format!("a value of type {}", js_type(t)),
        ),
    };
    Error::new(kind, format!("the JS {what} threw {text}"))
}

/// `typeof`'s name for a value type.
fn js_type(t: ValueType) -> String {
    format!("{t}").to_lowercase()
}

unsafe fn type_of(env: sys::napi_env, v: sys::napi_value) -> ValueType {
    let mut t = 0;
    // SAFETY: the caller's env and value.
    if unsafe { sys::napi_typeof(env, v, &mut t) } != sys::Status::napi_ok {
        return ValueType::Unknown;
    }
    ValueType::from(t)
}

/// Property `name` of `obj` if it is a string; a throwing getter is cleared.
unsafe fn string_property(env: sys::napi_env, obj: sys::napi_value, name: &CStr) -> Option<String> {
    let mut v = ptr::null_mut();
    // SAFETY: the caller's env and object.
    let status = unsafe { sys::napi_get_named_property(env, obj, name.as_ptr(), &mut v) };
    if status != sys::Status::napi_ok {
        let mut exc = ptr::null_mut();
        // SAFETY: as above.
        unsafe { sys::napi_get_and_clear_last_exception(env, &mut exc) };
        return None;
    }
    // SAFETY: as above.
    if unsafe { type_of(env, v) } != ValueType::String {
        return None;
    }
    unsafe { string(env, v) }
}

/// A JS string, cut at 1 KiB (the error module cuts messages anyway).
unsafe fn string(env: sys::napi_env, v: sys::napi_value) -> Option<String> {
    let mut buf = [0u8; 1024];
    let mut len = 0;
    // SAFETY: the caller's env and string; napi writes at most buf.len() bytes.
    let status = unsafe {
        sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast(), buf.len(), &mut len)
    };
    (status == sys::Status::napi_ok).then(|| String::from_utf8_lossy(&buf[..len]).into_owned())
}

/// What a policy's answer means: an index, or `None` to refuse.
fn index_answer(env: sys::napi_env, v: sys::napi_value) -> Result<Option<usize>, String> {
    // SAFETY: called by `invoke_in_scope` on the JS thread with a value of its scope.
    match unsafe { type_of(env, v) } {
        ValueType::Null | ValueType::Undefined => Ok(None),
        ValueType::Number => {
            let n = unsafe { f64::from_napi_value(env, v) }.unwrap_or(f64::NAN);
            if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64 {
                Ok(Some(n as usize))
            } else {
                Err(format!("{n}, not an index into the candidates"))
            }
        }
        t => Err(format!(
            "a value of type {}, not an index into the candidates or null",
            js_type(t)
        )),
    }
}

/// What a calculator's answer means: the weighted load (rounded).
fn load_answer(env: sys::napi_env, v: sys::napi_value) -> Result<u32, String> {
    // SAFETY: as in `index_answer`.
    match unsafe { type_of(env, v) } {
        ValueType::Number => {
            let n = unsafe { f64::from_napi_value(env, v) }.unwrap_or(f64::NAN);
            if n.is_finite() && n >= 0.0 && n.round() <= u32::MAX as f64 {
                Ok(n.round() as u32)
            } else {
                Err(format!("{n}, not a load in [0, 4294967295]"))
            }
        }
        t => Err(format!("a value of type {}, not a number", js_type(t))),
    }
}

/// A JS function as the core's placement policy.
#[derive(Debug)]
struct JsPolicy(JsFunction);

impl PlacementPolicy for JsPolicy {
    fn choose(
        &self,
        candidates: &[core::Candidate],
        request: &core::PlacementRequest<'_>,
    ) -> core::Result<Option<usize>> {
        let c: Vec<Candidate> = candidates.iter().map(Candidate::from).collect();
        let r = PlacementRequest {
            namespace: request.namespace.to_string(),
            uid: request.uid.to_string(),
            service: request.service.to_string(),
            sequence: request.sequence as f64,
        };
        let args: Args = Box::new(move |env| {
            // SAFETY: called by `invoke_in_scope` on the JS thread.
            Ok(vec![unsafe { Vec::to_napi_value(env, c)? }, unsafe {
                PlacementRequest::to_napi_value(env, r)?
            }])
        });
        self.0.call(args, index_answer)
    }
}

/// A JS function as the core's load calculator.
#[derive(Debug)]
pub struct JsLoadCalculator(JsFunction);

impl JsLoadCalculator {
    /// The function `f` of `env`, whose JS thread is the calling thread.
    pub fn new(env: sys::napi_env, f: sys::napi_value) -> napi::Result<Self> {
        Ok(JsLoadCalculator(JsFunction::new(
            env,
            f,
            "load calculator",
        )?))
    }
}

impl LoadCalculator for JsLoadCalculator {
    fn weighted_load(&self, input: &core::LoadInput<'_>) -> core::Result<u32> {
        let i = LoadInput {
            load: input.load,
            cpu_percent: input.cpu_percent,
            cpu_factor: input.cpu_factor,
            signals: input.signals.clone(),
        };
        let args: Args = Box::new(move |env| {
            // SAFETY: called by `invoke_in_scope` on the JS thread.
            Ok(vec![unsafe { LoadInput::to_napi_value(env, i)? }])
        });
        self.0.call(args, load_answer)
    }
}

/// A placement setting from JS: a built-in policy's name or a function.
#[derive(Debug, Clone)]
pub enum PlacementArg {
    /// `'p2c'`, `'random'`, … (checked by the core's `Placement::from_setting`).
    Name(String),
    /// A JS function.
    Placement(Placement),
}

impl PlacementArg {
    /// The core's placement with rendezvous's `load_factor` (0: the default); `INVALID_CONFIG`
    /// for an unknown name or a factor the policy does not take.
    pub fn into_core(self, load_factor: f64) -> core::Result<Placement> {
        match self {
            PlacementArg::Name(n) => Placement::from_setting(&n, load_factor),
            PlacementArg::Placement(p) if load_factor == 0.0 => Ok(p),
            PlacementArg::Placement(_) => Err(invalid(
                ErrorKind::InvalidConfig,
                "placement_load_factor",
                format!("{load_factor}: a placement function takes no load factor"),
            )),
        }
    }
}

impl TypeName for PlacementArg {
    fn type_name() -> &'static str {
        "String | Function"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ValidateNapiValue for PlacementArg {}

impl FromNapiValue for PlacementArg {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        // SAFETY: napi converts arguments on the JS thread.
        match unsafe { type_of(env, value) } {
            ValueType::Function => {
                let f = JsFunction::new(env, value, "placement policy")?;
                Ok(PlacementArg::Placement(Placement::Custom(Arc::new(
                    JsPolicy(f),
                ))))
            }
            ValueType::String => Ok(PlacementArg::Name(unsafe {
                String::from_napi_value(env, value)
            }?)),
            _ => Err(napi::Error::new(
                napi::Status::InvalidArg,
                "placement must be a policy name or a function",
            )),
        }
    }
}

impl ToNapiValue for PlacementArg {
    /// The name (`'custom'` for a function).
    unsafe fn to_napi_value(env: sys::napi_env, v: Self) -> napi::Result<sys::napi_value> {
        let name = match v {
            PlacementArg::Name(n) => n,
            PlacementArg::Placement(p) => p.name().to_string(),
        };
        // SAFETY: napi converts return values on the JS thread.
        unsafe { String::to_napi_value(env, name) }
    }
}
