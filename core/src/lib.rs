//! Sticky, load-aware user→pod routing for stateful services.
//!
//! Pods run a [`ServerDriver`]: it publishes the pod's load and routing state to a [`Store`]
//! and owns its users' persistent links. Gateways run a [`ClientDriver`]: it answers "which
//! pod serves user U for service S?" from a local cache, or with one store round trip.
//! The store is Redis ([`Store::redis`]) or the embedded in-memory store ([`Store::memory`]).
//!
//! The contract is SPEC.md (sections referenced as "SPEC §n" throughout).
//!
//! ```
//! use stateful_route::{BaseConfig, ClientDriver, ServerDriver, ServerInfo, Store};
//! # stateful_route::runtime::block_on(async {
//! let store = Store::memory();
//! let pod = ServerInfo::new("default", "room", 0);
//! let server = ServerDriver::new(store.clone(), pod.clone(), BaseConfig::default())?;
//! server.start().await?;
//! let client = ClientDriver::new(store, pod, BaseConfig::default())?;
//! client.init()?;
//! assert_eq!(client.compute_linked_pod("", "user123", "room").await?, 0);
//! server.stop().await?;
//! # Ok::<(), stateful_route::Error>(())
//! # }).unwrap();
//! ```

mod cache;
mod client;
pub mod clock;
mod config;
pub mod cpu;
mod error;
pub mod events;
pub mod explain;
pub mod ident;
pub mod keys;
pub mod load;
pub mod log;
pub mod metrics;
pub mod placement;
pub mod pod_state;
mod route_info;
pub mod runtime;
mod server;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use cache::{FrontEpochs, FrontView, FRONT_STRIPES};
pub use client::{ClientDriver, FrontHit};
pub use clock::Clock;
pub use config::{BaseConfig, Link, LinkTtl, RoutingState, ServerInfo, TrySetOutcome};
pub use error::{redact_url, Error, ErrorKind, Result};
pub use events::LinkChange;
pub use explain::{ExplainedLink, ExplainedPod, Explanation};
pub use load::{LoadCalculator, LoadInput};
pub use metrics::MetricsSnapshot;
pub use placement::{Candidate, Placement, PlacementPolicy, PlacementRequest};
pub use pod_state::PodState;
pub use route_info::{RouteInfo, RoutingStateChange, MAX_SERVICES};
pub use server::ServerDriver;
pub use store::{Store, StoreBackend, StoreConfig};
