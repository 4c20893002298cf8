//! The Redis store: redis-rs on the shared tokio runtime, on one node, a Redis Cluster, or a
//! Sentinel-managed master.
//!
//! One node: one multiplexed connection ([`ConnectionManager`]) per store, reconnecting by
//! itself. Cluster: redis-rs's cluster connection, which follows MOVED/ASK and failovers and
//! splits multi-key reads (`MGET`) by slot, merging them in input order. Sentinel: a
//! connection to the master the sentinels name, replaced when it fails or turns read-only.
//! Every link operation is one Lua script sent by SHA (`EVALSHA`, reloaded on `NOSCRIPT`):
//! one round trip. The connection's driver task lives on the library's runtime, so a store
//! made on any runtime (or none) keeps working after that runtime is gone.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, Script, Value};

use super::{scripts, LinkClaim, LinkRef, RawPodStates, StoreBackend, StoreConfig};
use crate::config::{Link, LinkTtl, RoutingState, TrySetOutcome};
use crate::error::{redact_url, Error, ErrorKind, Result};
use crate::events::{self, EventHub};
use crate::keys::KeySpace;
use crate::pod_state::parse_pod;
use crate::runtime;

struct Scripts {
    set_link: Script,
    set_link_if_absent: Script,
    try_set_link: Script,
    replace_temporary_link: Script,
    remove_link: Script,
    get_link: Script,
    publish_pod_state: Script,
    set_cordon: Script,
    pod_states: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            set_link: Script::new(scripts::SET_LINK),
            set_link_if_absent: Script::new(scripts::SET_LINK_IF_ABSENT),
            try_set_link: Script::new(scripts::TRY_SET_LINK),
            replace_temporary_link: Script::new(scripts::REPLACE_TEMPORARY_LINK),
            remove_link: Script::new(scripts::REMOVE_LINK),
            get_link: Script::new(scripts::GET_LINK),
            publish_pod_state: Script::new(scripts::PUBLISH_POD_STATE),
            set_cordon: Script::new(scripts::SET_CORDON),
            pod_states: Script::new(scripts::POD_STATES),
        }
    }
}

/// The connection of a Redis backend: one node, a cluster, or a sentinel-managed master.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelConn>),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move { s.command(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move {
                    s.current()
                        .await?
                        .req_packed_commands(pipeline, offset, count)
                        .await
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(_) => 0,
        }
    }
}

/// The master of a sentinel-managed deployment, re-resolved when it stops answering as a master.
struct SentinelConn {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    master: arc_swap::ArcSwapOption<ConnectionManager>,
    config: ConnectionManagerConfig,
}

impl SentinelConn {
    /// The current master's connection, resolving it through the sentinels if there is none.
    async fn current(&self) -> redis::RedisResult<ConnectionManager> {
        if let Some(c) = self.master.load_full() {
            return Ok((*c).clone());
        }
        self.resolve().await
    }

    /// Asks the sentinels for the master and connects to it (on the library's runtime, so the
    /// connection outlives the caller's runtime). `failed` is the connection that just failed
    /// (if any): when another caller has replaced it while this one waited for the sentinels,
    /// that replacement is used, so one failover costs one resolution, not one per caller.
    async fn resolve_after(
        &self,
        failed: Option<&Arc<ConnectionManager>>,
    ) -> redis::RedisResult<ConnectionManager> {
        let mut sentinel = self.sentinel.lock().await;
        if let Some(current) = self.master.load_full() {
            if failed.is_none_or(|f| !Arc::ptr_eq(f, &current)) {
                return Ok((*current).clone());
            }
        }
        let client = sentinel.async_get_client().await?;
        let config = self.config.clone();
        let con = runtime::handle()
            .spawn(ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "connect task failed",
                    e.to_string(),
                ))
            })??;
        self.master.store(Some(Arc::new(con.clone())));
        tracing::info!("connected to the master named by the sentinels");
        Ok(con)
    }

    async fn resolve(&self) -> redis::RedisResult<ConnectionManager> {
        self.resolve_after(None).await
    }

    /// One command. When the master refuses it as a replica (`READONLY`: the command did not
    /// run) or the connection is refused (it was never sent), the master is resolved again,
    /// once per failover, and the command sent once more. When the outcome is unknown (a
    /// timeout or a connection dropped mid-call) the command is never resent, since a script
    /// that did run would be run twice and report a wrong previous pod: the error is returned
    /// (`TIMEOUT` / `STORE_UNAVAILABLE`) and the next call resolves the master.
    async fn command(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
        let held = self.master.load_full();
        let mut con = match &held {
            Some(c) => (**c).clone(),
            None => self.resolve().await?,
        };
        match con.req_packed_command(cmd).await {
            Err(e) if is_failover(&e) => {
                tracing::warn!(error = %e, "master unavailable; asking the sentinels");
                let not_run = e.code() == Some("READONLY") || e.is_connection_refusal();
                if !not_run {
                    // Forget the master (unless another caller already replaced it).
                    if let Some(h) = &held {
                        self.master
                            .compare_and_swap(&Some(h.clone()), None::<Arc<ConnectionManager>>);
                    }
                    return Err(e);
                }
                let mut con = self.resolve_after(held.as_ref()).await?;
                con.req_packed_command(cmd).await
            }
            other => other,
        }
    }
}

fn is_failover(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.code() == Some("READONLY")
}

/// The Redis backend of [`Store::redis`](super::Store::redis),
/// [`Store::redis_cluster`](super::Store::redis_cluster) and
/// [`Store::redis_sentinel`](super::Store::redis_sentinel).
pub struct RedisBackend {
    keys: KeySpace,
    con: Conn,
    scripts: Scripts,
    url: String,
    /// Where the event subscriber connects; `None`: propagation off.
    source: Option<Source>,
    hub: Arc<EventHub>,
    subscriber: std::sync::Once,
    connect_timeout: Duration,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.url)
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Connects (on the library's runtime) with `config`'s timeouts.
    pub async fn connect(url: &str, config: &StoreConfig) -> Result<RedisBackend> {
        let shown = redact_url(url);
        if url.starts_with("rediss://") {
            // rustls needs one process-wide crypto provider; another library may have set it.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = match &config.tls_ca_cert_pem {
            None => redis::Client::open(url),
            Some(ca) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            ),
        }
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid store url {shown}: {:?}", e.kind()),
            )
        })?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            // No retries inside one reconnect: a refused or dropped connection fails the
            // calls waiting on it at once (STORE_UNAVAILABLE, as README promises) instead of
            // outlasting their deadline in a backoff (TIMEOUT); the next call reconnects.
            .set_number_of_retries(0)
            .set_max_delay(Duration::from_secs(2));
        let con = runtime::handle()
            .spawn(ConnectionManager::new_with_config(client.clone(), cfg))
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("connect task failed: {e}")))?
            .map_err(|e| {
                let e = Error::from(e);
                Error::new(
                    e.kind(),
                    format!("cannot connect to {shown}: {}", e.message()),
                )
            })?;
        tracing::info!(url = %shown, "connected to redis");
        RedisBackend::new(
            Conn::Single(con),
            Source::Single(Box::new(client)),
            config,
            shown,
        )
        .checked()
        .await
    }

    fn new(con: Conn, source: Source, config: &StoreConfig, shown: String) -> RedisBackend {
        RedisBackend {
            keys: KeySpace::new(config.key_prefix.clone()),
            con,
            scripts: Scripts::new(),
            url: shown,
            source: config.propagation.then_some(source),
            // A driver's init waits at most this for the stream, whatever the connect timeout
            // (correctness does not depend on it: whatever is cached before the first
            // subscription is dropped by it; the wait only spares those entries).
            hub: EventHub::remote(Duration::from_secs(1)),
            subscriber: std::sync::Once::new(),
            connect_timeout: config.connect_timeout,
        }
    }

    /// The events channel of `namespace`, or `""` with propagation off (the scripts then
    /// publish nothing).
    fn channel(&self, namespace: &str) -> String {
        match self.source {
            Some(_) => events::channel(self.keys.prefix(), namespace),
            None => String::new(),
        }
    }

    /// Connects to a Redis Cluster through any of `urls` (seed nodes).
    pub async fn connect_cluster(urls: &[&str], config: &StoreConfig) -> Result<RedisBackend> {
        let shown = urls
            .iter()
            .map(|u| redact_url(u))
            .collect::<Vec<_>>()
            .join(",");
        if urls.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a cluster needs at least one seed url",
            ));
        }
        if urls.iter().any(|u| u.starts_with("rediss://")) {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let seeds = urls
            .iter()
            .map(|u| redis::Client::open(*u))
            .collect::<redis::RedisResult<Vec<_>>>()
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("invalid cluster urls {shown}: {:?}", e.kind()),
                )
            })?;
        let client = redis::cluster::ClusterClient::builder(urls.iter().map(|u| u.to_string()))
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.command_timeout)
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("invalid cluster urls {shown}: {:?}", e.kind()),
                )
            })?;
        let con = runtime::handle()
            .spawn(async move { client.get_async_connection().await })
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("connect task failed: {e}")))?
            .map_err(|e| {
                let e = Error::from(e);
                Error::new(
                    e.kind(),
                    format!("cannot connect to cluster {shown}: {}", e.message()),
                )
            })?;
        tracing::info!(seeds = %shown, "connected to redis cluster");
        RedisBackend::new(Conn::Cluster(con), Source::Cluster(seeds), config, shown)
            .checked()
            .await
    }

    /// Connects to the master that the sentinels at `sentinel_urls` name `master_name`, and
    /// follows it when they fail over.
    pub async fn connect_sentinel(
        sentinel_urls: &[&str],
        master_name: &str,
        config: &StoreConfig,
    ) -> Result<RedisBackend> {
        let shown = format!(
            "sentinel {} master {master_name}",
            sentinel_urls
                .iter()
                .map(|u| redact_url(u))
                .collect::<Vec<_>>()
                .join(",")
        );
        if sentinel_urls.is_empty() || master_name.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "sentinel needs at least one url and a master name",
            ));
        }
        let sentinel = SentinelClient::build(
            sentinel_urls.iter().map(|u| u.to_string()).collect(),
            master_name,
            None,
            SentinelServerType::Master,
        )
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid {shown}: {:?}", e.kind()),
            )
        })?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = Arc::new(SentinelConn {
            sentinel: tokio::sync::Mutex::new(sentinel),
            master: arc_swap::ArcSwapOption::empty(),
            config: cfg,
        });
        let c = conn.clone();
        runtime::handle()
            .spawn(async move { c.resolve().await })
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, format!("connect task failed: {e}")))?
            .map_err(|e| {
                let e = Error::from(e);
                Error::new(
                    e.kind(),
                    format!("cannot connect to {shown}: {}", e.message()),
                )
            })?;
        RedisBackend::new(
            Conn::Sentinel(conn.clone()),
            Source::Sentinel(conn),
            config,
            shown,
        )
        .checked()
        .await
    }

    /// Checks the server's version (`INFO server`) against [`MIN_REDIS_VERSION`]. A server
    /// that refuses `INFO` (an ACL without it) is let through with a warning: the version is
    /// then the operator's to check.
    async fn checked(self) -> Result<RedisBackend> {
        // A cluster answers per node (a map node → text); every node must be new enough.
        let info: redis::RedisResult<Value> = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.con.clone())
            .await;
        match info {
            Ok(v) => {
                for text in info_texts(v) {
                    check_version(&text, &self.url)?;
                }
            }
            Err(e) if e.code().is_some() => {
                tracing::warn!(url = %self.url, error = %e,
                    "cannot read the Redis version (INFO refused); Redis >= 5.0 is required");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(self)
    }

    async fn link_script<T: FromRedisValue>(
        &self,
        script: &Script,
        link: LinkRef<'_>,
        args: &[&str],
    ) -> Result<T> {
        let mut inv = script.prepare_invoke();
        inv.key(self.keys.link(link.namespace, link.uid, link.service))
            .key(self.keys.user_links(link.namespace, link.uid))
            .arg(link.service);
        for a in args {
            inv.arg(*a);
        }
        inv.arg(self.channel(link.namespace));
        Ok(inv.invoke_async(&mut self.con.clone()).await?)
    }

    fn link_from(&self, link: LinkRef<'_>, pod: &str, pttl: i64) -> Result<Link> {
        let key = || self.keys.link(link.namespace, link.uid, link.service);
        Ok(Link {
            pod_index: parse_pod(&key(), pod)?,
            ttl: match pttl {
                -1 => None,
                t if t >= 0 => Some(Duration::from_millis(t as u64)),
                t => return Err(Error::store(format!("{} has ttl {t}", key()))),
            },
        })
    }
}

/// The oldest Redis the scripts run on: they read `TIME` before they write, which needs
/// script effects replication, the default since Redis 5.0.
pub const MIN_REDIS_VERSION: (u32, u32) = (5, 0);

/// The `INFO` texts in a reply: one for a node, one per node from a cluster.
fn info_texts(v: Value) -> Vec<String> {
    match v {
        Value::BulkString(b) => vec![String::from_utf8_lossy(&b).into_owned()],
        Value::SimpleString(s) => vec![s],
        Value::VerbatimString { text, .. } => vec![text],
        Value::Map(pairs) => pairs.into_iter().flat_map(|(_, v)| info_texts(v)).collect(),
        Value::Array(items) => items.into_iter().flat_map(info_texts).collect(),
        _ => Vec::new(),
    }
}

/// `STORE_ERROR` if the `INFO server` text names a version older than [`MIN_REDIS_VERSION`].
pub(crate) fn check_version(info: &str, url: &str) -> Result<()> {
    let Some(v) = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("redis_version:"))
    else {
        tracing::warn!(
            url,
            "INFO server names no redis_version; Redis >= 5.0 is required"
        );
        return Ok(());
    };
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MIN_REDIS_VERSION {
        return Err(Error::store(format!(
            "{url} runs Redis {v}; stateful-route needs Redis {}.{} or newer",
            MIN_REDIS_VERSION.0, MIN_REDIS_VERSION.1
        )));
    }
    Ok(())
}

fn ttl_arg(ttl: LinkTtl) -> String {
    ttl.as_secs().to_string()
}

#[async_trait]
impl StoreBackend for RedisBackend {
    async fn set_link(&self, link: LinkRef<'_>, pod: u32, ttl: LinkTtl) -> Result<Option<u32>> {
        let prev: Option<String> = self
            .link_script(
                &self.scripts.set_link,
                link,
                &[&pod.to_string(), &ttl_arg(ttl)],
            )
            .await?;
        prev.map(|p| parse_pod("previous link", &p)).transpose()
    }

    async fn set_link_if_absent(
        &self,
        link: LinkRef<'_>,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<LinkClaim> {
        let (cur, pttl, created): (String, i64, i64) = self
            .link_script(
                &self.scripts.set_link_if_absent,
                link,
                &[&pod.to_string(), &ttl_arg(ttl)],
            )
            .await?;
        Ok(LinkClaim {
            link: self.link_from(link, &cur, pttl)?,
            created: created == 1,
        })
    }

    async fn try_set_link(
        &self,
        link: LinkRef<'_>,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<TrySetOutcome> {
        let (accepted, owner, prev): (i64, String, Option<String>) = self
            .link_script(
                &self.scripts.try_set_link,
                link,
                &[&pod.to_string(), &ttl_arg(ttl)],
            )
            .await?;
        Ok(TrySetOutcome {
            accepted: accepted == 1,
            owner: parse_pod("link", &owner)?,
            previous: prev.map(|p| parse_pod("previous link", &p)).transpose()?,
        })
    }

    async fn replace_temporary_link(
        &self,
        link: LinkRef<'_>,
        expected: u32,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<LinkClaim> {
        let (cur, pttl, written): (String, i64, i64) = self
            .link_script(
                &self.scripts.replace_temporary_link,
                link,
                &[&pod.to_string(), &ttl_arg(ttl), &expected.to_string()],
            )
            .await?;
        Ok(LinkClaim {
            link: self.link_from(link, &cur, pttl)?,
            created: written == 1,
        })
    }

    async fn remove_link(
        &self,
        link: LinkRef<'_>,
        only_if: Option<u32>,
        delay_secs: u32,
    ) -> Result<bool> {
        let want = only_if.map(|p| p.to_string()).unwrap_or_default();
        let removed: i64 = self
            .link_script(
                &self.scripts.remove_link,
                link,
                &[&delay_secs.to_string(), &want],
            )
            .await?;
        Ok(removed == 1)
    }

    async fn get_link(&self, link: LinkRef<'_>) -> Result<Option<Link>> {
        let out: Option<(String, i64)> =
            self.link_script(&self.scripts.get_link, link, &[]).await?;
        out.map(|(cur, pttl)| self.link_from(link, &cur, pttl))
            .transpose()
    }

    async fn get_link_services(&self, namespace: &str, uid: &str) -> Result<BTreeMap<String, u32>> {
        let key = self.keys.user_links(namespace, uid);
        let raw: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut self.con.clone())
            .await?;
        raw.into_iter()
            .map(|(s, v)| Ok((s, parse_pod(&key, &v)?)))
            .collect()
    }

    async fn batch_get_links(
        &self,
        namespace: &str,
        uids: &[&str],
        service: &str,
    ) -> Result<Vec<Option<u32>>> {
        let mut cmd = redis::cmd("MGET");
        for uid in uids {
            cmd.arg(self.keys.link(namespace, uid, service));
        }
        let raw: Vec<Option<String>> = cmd.query_async(&mut self.con.clone()).await?;
        raw.into_iter()
            .map(|v| v.map(|v| parse_pod("link", &v)).transpose())
            .collect()
    }

    async fn publish_pod_state(
        &self,
        namespace: &str,
        service: &str,
        pod: u32,
        load: u32,
        routing: RoutingState,
        weight: u32,
    ) -> Result<u64> {
        let ms: i64 = self
            .scripts
            .publish_pod_state
            .key(self.keys.pod_states(namespace, service))
            .key(self.keys.cordon(namespace, service))
            .arg(pod)
            .arg(load)
            .arg(routing.as_str())
            .arg(if weight == crate::pod_state::DEFAULT_WEIGHT {
                String::new()
            } else {
                format!("-{weight}")
            })
            .arg(self.channel(namespace))
            .arg(service)
            .invoke_async(&mut self.con.clone())
            .await?;
        u64::try_from(ms).map_err(|_| Error::store(format!("store clock reads {ms}")))
    }

    fn events(&self) -> Option<Arc<EventHub>> {
        let source = self.source.clone()?;
        self.subscriber.call_once(|| {
            let hub = self.hub.clone();
            let prefix = self.keys.prefix().to_string();
            let timeout = self.connect_timeout;
            runtime::handle().spawn(subscribe(hub, source, prefix, timeout));
        });
        Some(self.hub.clone())
    }

    async fn pod_states(&self, namespace: &str, service: &str) -> Result<RawPodStates> {
        let out: Vec<redis::Value> = self
            .scripts
            .pod_states
            .key(self.keys.pod_states(namespace, service))
            .invoke_async(&mut self.con.clone())
            .await?;
        let mut it = out.into_iter();
        let now_ms: i64 = match it.next() {
            Some(v) => FromRedisValue::from_redis_value(v)
                .map_err(|e| Error::store(format!("store clock: {e}")))?,
            None => return Err(Error::store("empty pod state reply")),
        };
        let strings: Vec<String> =
            FromRedisValue::from_redis_value(redis::Value::Array(it.collect()))
                .map_err(|e| Error::store(format!("pod states: {e}")))?;
        let mut fields = Vec::with_capacity(strings.len() / 2);
        let mut s = strings.into_iter();
        while let (Some(f), Some(v)) = (s.next(), s.next()) {
            fields.push((f, v));
        }
        Ok(RawPodStates {
            now_ms: now_ms.max(0) as u64,
            fields,
        })
    }

    async fn set_workload_state(&self, namespace: &str, service: &str, state: &str) -> Result<()> {
        let _: () = redis::cmd("SET")
            .arg(self.keys.workload(namespace, service))
            .arg(state)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(())
    }

    async fn workload_states(
        &self,
        namespace: &str,
        services: &[&str],
    ) -> Result<Vec<Option<String>>> {
        let mut cmd = redis::cmd("MGET");
        for s in services {
            cmd.arg(self.keys.workload(namespace, s));
        }
        Ok(cmd.query_async(&mut self.con.clone()).await?)
    }

    async fn set_tag(&self, namespace: &str, tag: &str, service: &str) -> Result<()> {
        let _: () = redis::cmd("SET")
            .arg(self.keys.tag(namespace, tag))
            .arg(service)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(())
    }

    async fn get_tag(&self, namespace: &str, tag: &str) -> Result<Option<String>> {
        Ok(redis::cmd("GET")
            .arg(self.keys.tag(namespace, tag))
            .query_async(&mut self.con.clone())
            .await?)
    }

    async fn set_cordon(
        &self,
        namespace: &str,
        service: &str,
        pods: &[u32],
        on: bool,
    ) -> Result<Vec<u32>> {
        let mut inv = self.scripts.set_cordon.prepare_invoke();
        inv.key(self.keys.pod_states(namespace, service))
            .key(self.keys.cordon(namespace, service))
            .arg(if on { "1" } else { "0" })
            .arg(self.channel(namespace))
            .arg(service);
        for p in pods {
            inv.arg(*p);
        }
        let changed: Vec<u32> = inv.invoke_async(&mut self.con.clone()).await?;
        Ok(changed)
    }

    async fn add_placements(
        &self,
        namespace: &str,
        service: &str,
        counts: &[(u32, u64)],
    ) -> Result<()> {
        let key = self.keys.placements(namespace, service);
        let mut pipe = redis::pipe();
        for (pod, n) in counts {
            pipe.cmd("HINCRBY").arg(&key).arg(*pod).arg(*n).ignore();
        }
        let () = pipe.query_async(&mut self.con.clone()).await?;
        Ok(())
    }

    async fn placements(&self, namespace: &str, service: &str) -> Result<BTreeMap<u32, u64>> {
        let all: BTreeMap<String, u64> = redis::cmd("HGETALL")
            .arg(self.keys.placements(namespace, service))
            .query_async(&mut self.con.clone())
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
            .collect())
    }

    async fn cordoned(&self, namespace: &str, service: &str) -> Result<Vec<u32>> {
        let fields: Vec<String> = redis::cmd("HKEYS")
            .arg(self.keys.cordon(namespace, service))
            .query_async(&mut self.con.clone())
            .await?;
        let mut pods: Vec<u32> = fields.iter().filter_map(|f| f.parse().ok()).collect();
        pods.sort_unstable();
        Ok(pods)
    }

    async fn services(&self, namespace: &str) -> Result<Vec<String>> {
        let pattern = self.keys.pod_states_pattern(namespace);
        let mut keys = Vec::new();
        match &self.con {
            Conn::Cluster(c) => {
                // SCAN walks one node: walk every primary (from CLUSTER SHARDS' slot owners).
                let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(&mut c.clone())
                    .await?;
                let mut primaries = std::collections::BTreeSet::new();
                for range in &slots {
                    if let Some(redis::Value::Array(node)) = range.get(2) {
                        let host: Option<String> = node
                            .first()
                            .and_then(|v| redis::from_redis_value(v.clone()).ok());
                        let port: Option<u16> = node
                            .get(1)
                            .and_then(|v| redis::from_redis_value(v.clone()).ok());
                        if let (Some(h), Some(p)) = (host, port) {
                            primaries.insert((h, p));
                        }
                    }
                }
                for (host, port) in primaries {
                    let mut cursor: u64 = 0;
                    loop {
                        let route = redis::cluster_routing::RoutingInfo::SingleNode(
                            redis::cluster_routing::SingleNodeRoutingInfo::ByAddress {
                                host: host.clone(),
                                port,
                            },
                        );
                        let mut cmd = redis::cmd("SCAN");
                        cmd.arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000);
                        let v = c.clone().route_command(cmd, route).await?;
                        let (next, batch): (u64, Vec<String>) = redis::from_redis_value(v)
                            .map_err(|e| Error::store(format!("SCAN answered {e}")))?;
                        keys.extend(batch);
                        cursor = next;
                        if cursor == 0 {
                            break;
                        }
                    }
                }
            }
            con => {
                let mut cursor: u64 = 0;
                loop {
                    let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut con.clone())
                        .await?;
                    keys.extend(batch);
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
            }
        }
        let mut out: Vec<String> = keys
            .iter()
            .filter_map(|k| self.keys.service_of_pod_states(namespace, k))
            .map(str::to_string)
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_older_than_5_are_refused() {
        for (v, ok) in [
            ("4.0.14", false),
            ("3.2.0", false),
            ("5.0.0", true),
            ("7.0.15", true),
            ("10.1", true),
        ] {
            let info = format!("# Server\r\nredis_git_sha1:0\r\nredis_version:{v}\r\nos:Linux\r\n");
            let r = check_version(&info, "redis://h:1");
            assert_eq!(r.is_ok(), ok, "{v}: {r:?}");
            if let Err(e) = r {
                assert_eq!(e.kind(), crate::ErrorKind::StoreError);
                assert!(
                    e.message().contains(v) && e.message().contains("5.0"),
                    "{e}"
                );
            }
        }
    }
}

/// Where the event subscriber connects: the node, any cluster node (a `PUBLISH` reaches every
/// node of a cluster), or the master the sentinels name.
#[derive(Clone)]
enum Source {
    Single(Box<redis::Client>),
    Cluster(Vec<redis::Client>),
    Sentinel(Arc<SentinelConn>),
}

impl Source {
    async fn pubsub(&self, attempt: usize) -> redis::RedisResult<redis::aio::PubSub> {
        match self {
            Source::Single(c) => c.get_async_pubsub().await,
            Source::Cluster(seeds) => seeds[attempt % seeds.len()].get_async_pubsub().await,
            Source::Sentinel(s) => {
                let client = s.sentinel.lock().await.async_get_client().await?;
                client.get_async_pubsub().await
            }
        }
    }
}

/// How often the subscriber checks its connection with a `PING` (a connection that died
/// without a reset is found within this plus the connect timeout).
const PING_EVERY: Duration = Duration::from_secs(1);

/// The subscriber of one store: subscribes to the channel of every namespace a client driver of
/// this process listens to, delivers events to the hub, and reports each disconnect as a gap
/// and each (re)subscription as a resume. Reconnects with backoff; ends when the store is gone.
async fn subscribe(hub: Arc<EventHub>, source: Source, prefix: String, timeout: Duration) {
    use futures_util::StreamExt;
    let mut backoff = Duration::from_millis(20);
    let mut attempt = 0usize;
    let gone = |hub: &Arc<EventHub>| Arc::strong_count(hub) == 1;
    while !hub.has_sinks() {
        let _ = tokio::time::timeout(PING_EVERY, hub.changed.notified()).await;
        if gone(&hub) {
            return;
        }
    }
    loop {
        let pubsub = match tokio::time::timeout(timeout, source.pubsub(attempt)).await {
            Ok(Ok(p)) => Some(p),
            Ok(Err(e)) => {
                hub.failed(format!("cannot connect: {e}"));
                None
            }
            Err(_) => {
                hub.failed("connect timed out".to_string());
                None
            }
        };
        if let Some(pubsub) = pubsub {
            let (mut sink, mut stream) = pubsub.split();
            let mut subscribed = std::collections::BTreeSet::new();
            let mut ping = tokio::time::interval(PING_EVERY);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            'connected: loop {
                // Subscribe to every namespace not subscribed yet; the drivers of a namespace
                // resume once its SUBSCRIBE is confirmed.
                let wanted = hub.namespaces();
                let new: std::collections::BTreeSet<String> =
                    wanted.difference(&subscribed).cloned().collect();
                if !new.is_empty() {
                    let channels: Vec<String> =
                        new.iter().map(|ns| events::channel(&prefix, ns)).collect();
                    match tokio::time::timeout(timeout, sink.subscribe(channels)).await {
                        Ok(Ok(())) => {
                            // The stream counts as up once it also answers a PING (the check
                            // that finds a dead connection later).
                            let pong: Result<redis::RedisResult<Value>, _> =
                                tokio::time::timeout(timeout, sink.ping()).await;
                            if let Ok(Err(e)) = &pong {
                                hub.failed(format!("PING failed: {e}"));
                                break 'connected;
                            }
                            if pong.is_err() {
                                hub.failed("PING timed out".to_string());
                                break 'connected;
                            }
                            backoff = Duration::from_millis(20);
                            tracing::info!(namespaces = ?new, "event stream subscribed");
                            hub.resumed(&new);
                            subscribed.extend(new);
                        }
                        Ok(Err(e)) => {
                            hub.failed(format!("SUBSCRIBE refused: {e}"));
                            break 'connected;
                        }
                        Err(_) => {
                            hub.failed("SUBSCRIBE timed out".to_string());
                            break 'connected;
                        }
                    }
                }
                tokio::select! {
                    msg = stream.next() => {
                        let Some(msg) = msg else { break 'connected };
                        let ns: Option<String> = msg
                            .get_channel_name()
                            .strip_prefix(prefix.as_str())
                            .and_then(|c| c.strip_prefix(":events:"))
                            .map(str::to_string);
                        let payload: Option<String> = msg.get_payload().ok();
                        match (ns, payload) {
                            (Some(ns), Some(p)) => match events::parse(&ns, &p) {
                                Some(e) => hub.deliver(&ns, &e),
                                None => tracing::debug!(message = %p, "event stream: unknown message skipped"),
                            },
                            _ => tracing::debug!("event stream: message on an unknown channel skipped"),
                        }
                    }
                    _ = hub.changed.notified() => {}
                    _ = ping.tick() => {
                        if gone(&hub) {
                            return;
                        }
                        // Subscribed, RESP2 answers a PING with ["pong", ""].
                        let pong: Result<redis::RedisResult<Value>, _> =
                            tokio::time::timeout(timeout, sink.ping()).await;
                        match pong {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => {
                                hub.failed(format!("PING failed: {e}"));
                                break 'connected;
                            }
                            Err(_) => {
                                hub.failed("PING timed out".to_string());
                                break 'connected;
                            }
                        }
                    }
                }
            }
            tracing::warn!(
                "event stream disconnected; caches fall back to their TTL until it is back"
            );
            hub.gap();
        }
        if gone(&hub) {
            return;
        }
        attempt += 1;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
