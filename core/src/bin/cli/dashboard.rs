//! `stateful-route dashboard`: one page, a JSON API, an event stream and `/metrics`, on axum
//! over the library's tokio runtime. Everything it serves is embedded in the binary.
//!
//! - `GET /`: the page (HTML, CSS and JS inline; no CDN).
//! - `GET /api/state`: every service's pods and the recent changes (JSON; README "Dashboard").
//! - `GET /api/events`: server-sent events, one `change` event per routing change or link move.
//! - `GET /metrics`: Prometheus text of the dashboard's own gateway view.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::Stream;
use serde_json::{json, Value};
use stateful_route::{BaseConfig, ClientDriver, ServerInfo, Store};

use crate::view::{change_of, read_all, Change, ServiceStatus, Tracker};
use crate::{Failure, Outcome};

const PAGE: &str = include_str!("dashboard.html");
const RECENT: usize = 100;

/// (when, load, placements reported so far) samples of one pod over the last minute.
type History = VecDeque<(Instant, u64, u64)>;

struct Shared {
    namespace: String,
    stale_after: f64,
    rows: Mutex<Vec<ServiceStatus>>,
    /// Samples per pod over the last minute, for the per-minute rates.
    history: Mutex<BTreeMap<(String, u32), History>>,
    recent: Mutex<VecDeque<Value>>,
    tracker: Mutex<Tracker>,
    changes: tokio::sync::broadcast::Sender<Value>,
    read_error: Mutex<Option<String>>,
    client: ClientDriver,
}

impl Shared {
    fn publish(&self, c: &Change) {
        let v = c.to_json(&crate::view::now_string());
        {
            let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            r.push_front(v.clone());
            r.truncate(RECENT);
        }
        let _ = self.changes.send(v);
    }

    /// (load change, placements) per minute over the last minute (`None` before a second).
    fn per_minute(&self, service: &str, pod: u32) -> Option<(f64, f64)> {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let s = h.get(&(service.to_string(), pod))?;
        let (first, last) = (s.front()?, s.back()?);
        let secs = last.0.duration_since(first.0).as_secs_f64();
        (secs >= 1.0).then(|| {
            (
                (last.1 as f64 - first.1 as f64) * 60.0 / secs,
                last.2.saturating_sub(first.2) as f64 * 60.0 / secs,
            )
        })
    }

    fn state_json(&self) -> Value {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let services: Vec<Value> = rows
            .iter()
            .map(|s| {
                let mut v = s.to_json();
                if let Some(pods) = v["pods"].as_array_mut() {
                    for p in pods {
                        let pod = p["pod"].as_u64().unwrap_or(0) as u32;
                        let rates = self.per_minute(&s.service, pod);
                        p["load_per_minute"] = json!(rates.map(|r| r.0));
                        p["placements_per_minute"] = json!(rates.map(|r| r.1));
                    }
                }
                v
            })
            .collect();
        json!({
            "namespace": self.namespace,
            "stale_after_seconds": self.stale_after,
            "read_error": *self.read_error.lock().unwrap_or_else(|p| p.into_inner()),
            "services": services,
            "changes": self.recent.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect::<Vec<_>>(),
        })
    }

    async fn refresh(&self, store: &Store, baseline: bool) {
        match read_all(store, &self.namespace, None, self.stale_after).await {
            Ok(rows) => {
                let now = Instant::now();
                let mut placed = BTreeMap::new();
                for s in &rows {
                    if let Ok(p) = store.placements(&self.namespace, &s.service).await {
                        placed.insert(s.service.clone(), p);
                    }
                }
                {
                    let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
                    for s in &rows {
                        for p in &s.pods {
                            let q = h.entry((s.service.clone(), p.pod)).or_default();
                            let n = placed
                                .get(&s.service)
                                .and_then(|m| m.get(&p.pod))
                                .copied()
                                .unwrap_or(0);
                            q.push_back((now, p.load as u64, n));
                            while q.front().is_some_and(|(t, _, _)| {
                                now.duration_since(*t) > Duration::from_secs(60)
                            }) {
                                q.pop_front();
                            }
                        }
                    }
                }
                let changes = self
                    .tracker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .poll(&rows, baseline);
                // The dashboard's own gateway view follows the same services (for /metrics).
                for s in &rows {
                    let _ = self.client.pod_states(&s.service).await;
                }
                *self.rows.lock().unwrap_or_else(|p| p.into_inner()) = rows;
                *self.read_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                changes.iter().for_each(|c| self.publish(c));
            }
            Err(f) => {
                *self.read_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(f.message);
            }
        }
    }
}

pub async fn serve(
    store: Store,
    namespace: String,
    listen: &str,
    interval: Duration,
    stale_after: f64,
) -> Outcome {
    let client = ClientDriver::new(
        store.clone(),
        ServerInfo::new(namespace.clone(), "stateful-route-dashboard", 0),
        BaseConfig {
            stale_after_seconds: Some(stale_after),
            service_state_update_period_seconds: interval.as_secs_f64().max(0.05),
            cache_capacity: 0,
            ..BaseConfig::default()
        },
    )?;
    client.init()?;
    let shared = Arc::new(Shared {
        namespace: namespace.clone(),
        stale_after,
        rows: Mutex::new(Vec::new()),
        history: Mutex::new(BTreeMap::new()),
        recent: Mutex::new(VecDeque::new()),
        tracker: Mutex::new(Tracker::default()),
        changes: tokio::sync::broadcast::channel(256).0,
        read_error: Mutex::new(None),
        client,
    });
    shared.refresh(&store, true).await;
    // Events (link moves; routing changes at once) and a re-read on each pod event.
    let (poke, mut poked) = tokio::sync::mpsc::unbounded_channel::<()>();
    let weak = Arc::downgrade(&shared);
    let _sub = store.watch_events(&namespace, move |e| {
        let Some(s) = weak.upgrade() else { return };
        let is_pod = matches!(e, stateful_route::events::Event::Pod { .. });
        if let Some(c) = change_of(e, &s.tracker) {
            s.publish(&c);
        }
        if is_pod {
            let _ = poke.send(());
        }
    })?;
    let poller = shared.clone();
    let poll_store = store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = poked.recv() => {}
            }
            poller.refresh(&poll_store, false).await;
        }
    });

    let app = Router::new()
        .route("/", get(page))
        .route("/api/state", get(state))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure {
            code: 2,
            message: format!("--listen {listen}: {e}"),
        })?;
    let addr = listener.local_addr().map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })?;
    println!("dashboard of namespace {namespace} on http://{addr}/");
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Failure {
            code: 1,
            message: format!("serving: {e}"),
        })?;
    shared.client.close();
    Ok(())
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn state(State(s): State<Arc<Shared>>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(s.state_json()),
    )
        .into_response()
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.client.metrics_text(),
    )
        .into_response()
}

async fn events(
    State(s): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = s.changes.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let e = match rx.recv().await {
            Ok(v) => SseEvent::default().event("change").data(v.to_string()),
            // A slow page missed some: tell it to re-read the state.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                SseEvent::default().event("lagged").data("{}")
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(e), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
