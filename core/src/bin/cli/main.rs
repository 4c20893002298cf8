//! `stateful-route`: the operator's tool (README "Operator CLI").
//!
//! Connects like `Store` does (one node, `--cluster`, `--sentinel`, `--prefix`, a TLS CA file,
//! a password from an environment variable that is never echoed), then: `status`, `link`,
//! `links`, `explain`, `cordon`/`uncordon`, `watch` and `dashboard`.
//!
//! Exit codes: 0 done; 1 the operation failed; 2 bad usage or arguments; 3 not found (no such
//! link, no pods for the service); 4 the store cannot be reached (or timed out).

mod dashboard;
mod view;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use stateful_route::{
    redact_url, BaseConfig, ClientDriver, Error, ErrorKind, LinkTtl, ServerInfo, Store, StoreConfig,
};

use view::{Colour, ServiceStatus};

#[derive(Parser, Debug)]
#[command(
    name = "stateful-route",
    version,
    about = "Operate stateful-route: pods and their states, links, cordons, a live view",
    after_help = "Exit codes: 0 done, 1 failed, 2 bad usage, 3 not found, 4 store unreachable.\n\
                  The password is read from the variable --password-env names and never printed."
)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct Conn {
    /// Redis URL (redis:// or rediss://); repeat for cluster seeds or sentinels.
    #[arg(
        long = "url",
        global = true,
        env = "STATEFUL_ROUTE_URL",
        value_delimiter = ',',
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    urls: Vec<String>,
    /// The URLs are Redis Cluster seed nodes.
    #[arg(long, global = true, conflicts_with = "sentinel")]
    cluster: bool,
    /// The URLs are Sentinels; follow the master they call MASTER.
    #[arg(long, global = true, value_name = "MASTER")]
    sentinel: Option<String>,
    /// Key prefix of the deployment.
    #[arg(
        long,
        global = true,
        env = "STATEFUL_ROUTE_PREFIX",
        default_value = "sf"
    )]
    prefix: String,
    /// Namespace (the pods' local namespace).
    #[arg(
        short,
        long,
        global = true,
        env = "STATEFUL_ROUTE_NAMESPACE",
        default_value = "default"
    )]
    namespace: String,
    /// PEM file of a CA to trust for rediss:// (in addition to the system's roots).
    #[arg(long, global = true, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// Name of an environment variable holding the Redis password (never printed).
    #[arg(long, global = true, value_name = "VAR")]
    password_env: Option<String>,
    /// A pod whose state is older than this is dead (seconds; 3 × the pods' update period).
    #[arg(long, global = true, default_value_t = 90.0, value_name = "SECONDS")]
    stale_after: f64,
    /// Print JSON (one document; `watch`: one object per line).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every service of the namespace (or one): its pods, loads, weights, routing states, ages.
    Status {
        /// Only this service.
        service: Option<String>,
    },
    /// Read, set or remove one link (set and rm are the store's atomic operations).
    #[command(subcommand)]
    Link(LinkCommand),
    /// The user's persistent links, service → pod (temporary links are not indexed).
    Links {
        /// The user.
        uid: String,
    },
    /// Why the user gets the pod it gets: the link, every pod's verdict, the policy's choice.
    Explain {
        /// The user.
        uid: String,
        /// The service.
        service: String,
    },
    /// Stop pods from taking new users (they keep theirs), until uncordoned, across restarts.
    Cordon {
        /// The service.
        service: String,
        /// The pods (indices).
        #[arg(required = true)]
        pods: Vec<u32>,
    },
    /// Lift a cordon; the pods take new users again from their next publish.
    Uncordon {
        /// The service.
        service: String,
        /// The pods (indices).
        #[arg(required = true)]
        pods: Vec<u32>,
    },
    /// Stream routing-state changes (and link moves) until interrupted.
    Watch {
        /// Only this service.
        service: Option<String>,
        /// How often pod states are re-read (seconds); propagation events come at once.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Serve a live page of every service's pods, a JSON API, an event stream and /metrics.
    Dashboard {
        /// Address to listen on (loopback by default; put a proxy with authentication in front
        /// before exposing it).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// How often pod states are re-read (seconds).
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
}

#[derive(Subcommand, Debug)]
enum LinkCommand {
    /// The link of (uid, service): pod, kind and remaining TTL.
    Get {
        /// The user.
        uid: String,
        /// The service.
        service: String,
    },
    /// Link the user to a pod (persistent unless --ttl).
    Set {
        /// The user.
        uid: String,
        /// The service.
        service: String,
        /// The pod.
        pod: u32,
        /// A temporary link of this many seconds instead of a persistent one.
        #[arg(long)]
        ttl: Option<u32>,
    },
    /// Remove the link (at once, or after --delay seconds).
    Rm {
        /// The user.
        uid: String,
        /// The service.
        service: String,
        /// Only if it points to this pod.
        #[arg(long = "if-pod")]
        if_pod: Option<u32>,
        /// Let it expire after this many seconds instead (a delayed remove never lengthens it).
        #[arg(long, default_value_t = 0)]
        delay: u32,
    },
}

/// A failure and its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let code = match e.kind() {
            ErrorKind::InvalidArgument
            | ErrorKind::InvalidConfig
            | ErrorKind::NamespaceNotLocal => 2,
            ErrorKind::StoreUnavailable | ErrorKind::Timeout => 4,
            _ => 1,
        };
        Failure {
            code,
            message: format!("{}: {}", e.kind(), e.message()),
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

fn not_found(message: impl Into<String>) -> Failure {
    Failure {
        code: 3,
        message: message.into(),
    }
}

type Outcome = std::result::Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match stateful_route::runtime::block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let _ = writeln!(std::io::stderr(), "stateful-route: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// `url` with the password of `--password-env` in it (kept out of every message).
fn with_password(url: &str, password: &str) -> std::result::Result<String, Failure> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| usage(format!("{} is not a redis:// URL", redact_url(url))))?;
    let enc: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    Ok(match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:{enc}@{host}")
        }
        None => format!("{scheme}://:{enc}@{rest}"),
    })
}

/// The store; with `propagation`, its writes publish their events (SPEC §11) so that gateways
/// follow an operator's link or cordon at once (the subscriber starts only for `watch`,
/// `explain` and `dashboard`).
async fn connect(c: &Conn, propagation: bool) -> std::result::Result<Store, Failure> {
    let mut urls = c.urls.clone();
    if let Some(var) = &c.password_env {
        let pw = std::env::var(var)
            .map_err(|_| usage(format!("--password-env {var}: the variable is not set")))?;
        urls = urls
            .iter()
            .map(|u| with_password(u, &pw))
            .collect::<std::result::Result<_, _>>()?;
    }
    let tls_ca_cert_pem = match &c.tls_ca {
        Some(path) => Some(
            std::fs::read(path).map_err(|e| usage(format!("--tls-ca {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let config = StoreConfig {
        key_prefix: c.prefix.clone(),
        tls_ca_cert_pem,
        propagation,
        ..StoreConfig::default()
    };
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let store = match (&c.sentinel, c.cluster) {
        (Some(master), _) => Store::redis_sentinel_with(&refs, master, &config).await,
        (None, true) => Store::redis_cluster_with(&refs, &config).await,
        (None, false) => {
            if refs.len() != 1 {
                return Err(usage(
                    "give one --url, or --cluster / --sentinel for several",
                ));
            }
            Store::redis_with(refs[0], &config).await
        }
    };
    Ok(store?)
}

async fn run(cli: Cli) -> Outcome {
    let c = &cli.conn;
    if !(c.stale_after > 0.0 && c.stale_after.is_finite()) {
        return Err(usage("--stale-after must be a number of seconds > 0"));
    }
    let colour = Colour::for_stdout(c.json);
    match &cli.command {
        Command::Status { service } => {
            let store = connect(c, true).await?;
            let services = match service {
                Some(s) => vec![s.clone()],
                None => store.services(&c.namespace).await?,
            };
            let mut out = Vec::new();
            for s in &services {
                out.push(ServiceStatus::read(&store, &c.namespace, s, c.stale_after).await?);
            }
            if service.is_some() && out.iter().all(|s| s.pods.is_empty()) {
                return Err(not_found(format!(
                    "service {:?} has no pod states in namespace {:?}",
                    service.as_deref().unwrap_or_default(),
                    c.namespace
                )));
            }
            if c.json {
                let doc = json!({
                    "namespace": c.namespace,
                    "services": out.iter().map(ServiceStatus::to_json).collect::<Vec<_>>(),
                });
                println!("{doc:#}");
            } else if out.is_empty() {
                println!("no services with pod states in namespace {:?}", c.namespace);
            } else {
                for (i, s) in out.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    print!("{}", s.table(&colour));
                }
            }
            Ok(())
        }
        Command::Link(cmd) => link(c, cmd).await,
        Command::Links { uid } => {
            let store = connect(c, true).await?;
            let links = store.get_link_services(&c.namespace, uid).await?;
            if c.json {
                println!("{:#}", json!({ "uid": uid, "links": links }));
            } else if links.is_empty() {
                println!("{uid} has no persistent links");
            } else {
                let rows: Vec<Vec<String>> = links
                    .iter()
                    .map(|(s, p)| vec![s.clone(), p.to_string()])
                    .collect();
                print!("{}", view::table(&["SERVICE", "POD"], &rows));
            }
            Ok(())
        }
        Command::Explain { uid, service } => {
            let store = connect(c, true).await?;
            let client = ClientDriver::new(
                store,
                ServerInfo::new(c.namespace.clone(), "stateful-route-cli", 0),
                BaseConfig {
                    stale_after_seconds: Some(c.stale_after),
                    cache_capacity: 0,
                    ..BaseConfig::default()
                },
            )?;
            client.init()?;
            let e = client.explain_placement("", uid, service).await;
            client.close();
            let e = e?;
            if c.json {
                println!("{:#}", view::explanation_json(&e));
            } else {
                print!("{}", view::explanation_text(&e, &colour));
            }
            Ok(())
        }
        Command::Cordon { service, pods } | Command::Uncordon { service, pods } => {
            let on = matches!(cli.command, Command::Cordon { .. });
            let store = connect(c, true).await?;
            let changed = store.set_cordon(&c.namespace, service, pods, on).await?;
            let cordoned = store.cordoned(&c.namespace, service).await?;
            if c.json {
                println!(
                    "{:#}",
                    json!({ "service": service, "cordoned": cordoned, "changed_now": changed })
                );
            } else if on {
                println!(
                    "cordoned {service} pod(s) {}: they take no new users (now draining: {})",
                    view::list(pods),
                    if changed.is_empty() {
                        "none; not READY or not published".into()
                    } else {
                        view::list(&changed)
                    }
                );
            } else {
                println!(
                    "uncordoned {service} pod(s) {}: they take new users again from their next publish",
                    view::list(pods)
                );
            }
            Ok(())
        }
        Command::Watch { service, interval } => {
            if !(*interval >= 0.05 && interval.is_finite()) {
                return Err(usage("--interval must be at least 0.05 seconds"));
            }
            let store = connect(c, true).await?;
            view::watch(
                &store,
                &c.namespace,
                service.as_deref(),
                Duration::from_secs_f64(*interval),
                c.stale_after,
                c.json,
            )
            .await
        }
        Command::Dashboard { listen, interval } => {
            if !(*interval >= 0.05 && interval.is_finite()) {
                return Err(usage("--interval must be at least 0.05 seconds"));
            }
            let store = connect(c, true).await?;
            dashboard::serve(
                store,
                c.namespace.clone(),
                listen,
                Duration::from_secs_f64(*interval),
                c.stale_after,
            )
            .await
        }
    }
}

async fn link(c: &Conn, cmd: &LinkCommand) -> Outcome {
    let store = connect(c, true).await?;
    let ns = &c.namespace;
    match cmd {
        LinkCommand::Get { uid, service } => match store.get_link(ns, uid, service).await? {
            Some(l) => {
                if c.json {
                    println!("{:#}", view::link_json(uid, service, &l));
                } else {
                    println!(
                        "{uid} {service} -> pod {} ({})",
                        l.pod_index,
                        view::kind(&l)
                    );
                }
                Ok(())
            }
            None => {
                if c.json {
                    println!(
                        "{:#}",
                        json!({ "uid": uid, "service": service, "link": null })
                    );
                }
                Err(not_found(format!("{uid} has no link for {service}")))
            }
        },
        LinkCommand::Set {
            uid,
            service,
            pod,
            ttl,
        } => {
            let ttl = match ttl {
                Some(0) => return Err(usage("--ttl must be > 0 seconds")),
                Some(s) => LinkTtl::Seconds(*s),
                None => LinkTtl::Persistent,
            };
            let previous = store.set_link(ns, uid, service, *pod, ttl).await?;
            if c.json {
                println!(
                    "{:#}",
                    json!({ "uid": uid, "service": service, "pod": pod, "ttl": ttl.as_secs(),
                            "previous": previous })
                );
            } else {
                let was = previous.map_or("no link".to_string(), |p| format!("pod {p}"));
                let kind = match ttl {
                    LinkTtl::Persistent => "persistent".to_string(),
                    LinkTtl::Seconds(s) => format!("temporary, {s} s"),
                };
                println!("{uid} {service} -> pod {pod} ({kind}); was {was}");
            }
            Ok(())
        }
        LinkCommand::Rm {
            uid,
            service,
            if_pod,
            delay,
        } => {
            let removed = match if_pod {
                Some(p) => {
                    store
                        .remove_link_if(ns, uid, service, *p, *delay as i64)
                        .await?
                }
                None => store.remove_link(ns, uid, service, *delay as i64).await?,
            };
            if c.json {
                println!(
                    "{:#}",
                    json!({ "uid": uid, "service": service, "removed": removed, "delay": delay })
                );
            } else if removed && *delay > 0 {
                println!("{uid} {service}: the link expires in at most {delay} s");
            } else if removed {
                println!("{uid} {service}: link removed");
            }
            if removed {
                Ok(())
            } else {
                Err(not_found(match if_pod {
                    Some(p) => format!("{uid} has no link for {service} to pod {p}"),
                    None => format!("{uid} has no link for {service}"),
                }))
            }
        }
    }
}

/// Whether stdout gets colour: a terminal, no `--json`, no `NO_COLOR`.
fn colour_wanted(json: bool) -> bool {
    !json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
