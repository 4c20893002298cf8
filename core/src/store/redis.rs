//! The Redis store: redis-rs on the shared tokio runtime.
//!
//! One multiplexed connection ([`ConnectionManager`]) per store, reconnecting by itself.
//! Every link operation is one Lua script sent by SHA (`EVALSHA`, reloaded on `NOSCRIPT`):
//! one round trip. The connection's driver task lives on the library's runtime, so a store
//! made on any runtime (or none) keeps working after that runtime is gone.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script};

use super::{scripts, LinkRef, RawPodStates, StoreBackend, StoreConfig};
use crate::config::{Link, LinkTtl, RoutingState, TrySetOutcome};
use crate::error::{redact_url, Error, ErrorKind, Result};
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
            pod_states: Script::new(scripts::POD_STATES),
        }
    }
}

/// The Redis backend of [`Store::redis`](super::Store::redis).
pub struct RedisBackend {
    keys: KeySpace,
    con: ConnectionManager,
    scripts: Scripts,
    url: String,
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
        let client = redis::Client::open(url).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid store url {shown}: {:?}", e.kind()),
            )
        })?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let con = runtime::handle()
            .spawn(ConnectionManager::new_with_config(client, cfg))
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
        Ok(RedisBackend {
            keys: KeySpace::new(config.key_prefix.clone()),
            con,
            scripts: Scripts::new(),
            url: shown,
        })
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

    async fn set_link_if_absent(&self, link: LinkRef<'_>, pod: u32, ttl: LinkTtl) -> Result<Link> {
        let (cur, pttl): (String, i64) = self
            .link_script(
                &self.scripts.set_link_if_absent,
                link,
                &[&pod.to_string(), &ttl_arg(ttl)],
            )
            .await?;
        self.link_from(link, &cur, pttl)
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
    ) -> Result<Option<Link>> {
        let out: Vec<redis::Value> = self
            .link_script(
                &self.scripts.replace_temporary_link,
                link,
                &[&pod.to_string(), &ttl_arg(ttl), &expected.to_string()],
            )
            .await?;
        if out.is_empty() {
            return Ok(None);
        }
        let (cur, pttl): (String, i64) = FromRedisValue::from_redis_value(redis::Value::Array(out))
            .map_err(|e| Error::store(format!("unexpected reply: {e}")))?;
        self.link_from(link, &cur, pttl).map(Some)
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
            .arg(pod)
            .arg(load)
            .arg(routing.as_str())
            .arg(if weight == crate::pod_state::DEFAULT_WEIGHT {
                String::new()
            } else {
                format!("-{weight}")
            })
            .invoke_async(&mut self.con.clone())
            .await?;
        u64::try_from(ms).map_err(|_| Error::store(format!("store clock reads {ms}")))
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
}
