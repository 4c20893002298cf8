//! A small TCP proxy for fault injection, between the drivers and a real `redis-server`, on
//! loopback. Tests switch its [`Mode`] while traffic flows:
//!
//! - [`Mode::Pass`]: forwards bytes as they come.
//! - [`Mode::Latency`]: holds every chunk, in each direction, for the given time first.
//! - [`Mode::Drop`]: closes every open connection at once, and closes new ones on accept.
//! - [`Mode::Blackhole`]: accepts, but forwards nothing: open connections stall (bytes are
//!   held, as a partitioned network holds them; they flow again when the mode changes) and new
//!   connections are never connected upstream while it lasts.
//! - [`Mode::DropNextScriptReply`]: forwards as `Pass`, but the first connection that sends an
//!   `EVALSHA` has that request delivered and its reply dropped with the connection (the
//!   client cannot know whether the script ran); then the mode is `Pass` again.
//! - [`Mode::HoldNextScriptReply`]: likewise for the first `EVALSHA` that names the given
//!   bytes (e.g. a uid), but the reply is held (the script ran; the client waits, and so do
//!   later replies on that connection) until [`Proxy::release`]; [`Proxy::holding`] says when it is held. For
//!   ordering races: something else happens between the script and its reply.
//!
//! The proxy runs on the tokio runtime that starts it and stops when dropped.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Latency(Duration),
    Drop,
    Blackhole,
    DropNextScriptReply,
    /// Holds the reply of the first `EVALSHA` whose request contains these bytes.
    HoldNextScriptReply(&'static str),
}

/// The reply held by [`Mode::HoldNextScriptReply`].
#[derive(Default)]
struct Held {
    holding: std::sync::atomic::AtomicBool,
    release: tokio::sync::Notify,
}

/// A running proxy on `127.0.0.1:<port>` forwarding to `upstream`.
pub struct Proxy {
    pub port: u16,
    mode: Arc<watch::Sender<Mode>>,
    held: Arc<Held>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `127.0.0.1:upstream_port` in [`Mode::Pass`].
    pub async fn start(upstream_port: u16) -> Proxy {
        let upstream: SocketAddr = ([127, 0, 0, 1], upstream_port).into();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(watch::channel(Mode::Pass).0);
        let held = Arc::new(Held::default());
        let (m, h) = (mode.clone(), held.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(connection(client, upstream, m.clone(), h.clone()));
            }
        });
        Proxy {
            port,
            mode,
            held,
            accept,
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Switches the mode; open connections see the change at once.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Whether a reply is held by [`Mode::HoldNextScriptReply`] (its script has run).
    pub fn holding(&self) -> bool {
        self.held.holding.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets the held reply go.
    pub fn release(&self) {
        self.held.release.notify_one();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Connections watch the mode; `Drop` ends them.
        self.mode.send_replace(Mode::Drop);
    }
}

/// One proxied connection: lives until either side closes or the mode becomes `Drop`.
async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    tx: Arc<watch::Sender<Mode>>,
    held: Arc<Held>,
) {
    let mut rx = tx.subscribe();
    let wanted = rx.wait_for(|m| *m != Mode::Blackhole).await.map(|m| *m);
    if !matches!(
        wanted,
        Ok(Mode::Pass
            | Mode::Latency(_)
            | Mode::DropNextScriptReply
            | Mode::HoldNextScriptReply(_))
    ) {
        return; // Drop (or proxy gone): close at once
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let mut dropped = rx.clone();
    // For DropNextScriptReply: NORMAL, then HOLD once the request side sends the doomed script,
    // then DOOMED when its reply comes back from Redis (so the script certainly ran): the
    // connection closes and the reply is never sent.
    let doom = Arc::new(watch::channel(NORMAL).0);
    let mut doomed = doom.subscribe();
    tokio::select! {
        _ = async {
            tokio::join!(
                pump(cr, sw, rx.clone(), Side::Request(tx.clone()), doom.clone(), held.clone()),
                pump(sr, cw, rx.clone(), Side::Reply, doom.clone(), held.clone())
            )
        } => {}
        _ = dropped.wait_for(|m| *m == Mode::Drop) => {}
        _ = doomed.wait_for(|d| *d == DOOMED) => {}
    }
}

const NORMAL: u8 = 0;
const HOLD: u8 = 1;
const DOOMED: u8 = 2;
const HOLD_REPLY: u8 = 3;

enum Side {
    /// Client to server; the mode's sender, to end `DropNextScriptReply` after one use.
    Request(Arc<watch::Sender<Mode>>),
    /// Server to client.
    Reply,
}

/// Copies one direction, applying the mode to each chunk.
/// `doom`: the connection's state for `DropNextScriptReply` (see `connection`).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut rx: watch::Receiver<Mode>,
    side: Side,
    doom: Arc<watch::Sender<u8>>,
    held: Arc<Held>,
) {
    let mut doom_rx = doom.subscribe();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Hold the chunk while blackholed; then apply the mode in force.
        let mode = match rx.wait_for(|m| *m != Mode::Blackhole).await {
            Ok(m) => *m,
            Err(_) => break,
        };
        match mode {
            Mode::Drop => break,
            Mode::Latency(d) => tokio::time::sleep(d).await,
            Mode::Pass
            | Mode::Blackhole
            | Mode::DropNextScriptReply
            | Mode::HoldNextScriptReply(_) => {}
        }
        match &side {
            Side::Request(tx)
                if matches!(
                    mode,
                    Mode::DropNextScriptReply | Mode::HoldNextScriptReply(_)
                ) && buf[..n]
                    .windows(7)
                    .any(|w| w.eq_ignore_ascii_case(b"EVALSHA"))
                    && match mode {
                        Mode::HoldNextScriptReply(marker) => buf[..n]
                            .windows(marker.len())
                            .any(|w| w == marker.as_bytes()),
                        _ => true,
                    } =>
            {
                // Only the first such request: back to Pass for everyone else.
                let mine = tx.send_if_modified(|m| {
                    let was = *m == mode;
                    if was {
                        *m = Mode::Pass;
                    }
                    was
                });
                if mine {
                    // The next reply is this script's: drop it, or hold it.
                    doom.send_replace(if mode == Mode::DropNextScriptReply {
                        HOLD
                    } else {
                        HOLD_REPLY
                    });
                }
            }
            Side::Reply if *doom_rx.borrow_and_update() == HOLD_REPLY => {
                doom.send_replace(NORMAL);
                held.holding
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                held.release.notified().await;
                held.holding
                    .store(false, std::sync::atomic::Ordering::SeqCst);
            }
            Side::Reply if *doom_rx.borrow_and_update() == HOLD => {
                doom.send_replace(DOOMED); // the reply arrived: the script ran
                break;
            }
            _ => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
