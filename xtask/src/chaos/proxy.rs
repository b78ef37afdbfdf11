//! The link proxy: every connection a node opens to another node's port passes through it
//! (the node namespace's `nat OUTPUT` redirects it to a listener of this proxy inside that
//! same namespace), so that latency, stalls, delays and resets can be put on individual
//! links. `tc netem` would do this in the kernel; it is not available here.
//!
//! The proxy's outgoing connection is made from the node's namespace too (with a socket
//! mark the redirect skips), so iptables partitions apply to proxied traffic as to any other.
//! Faults are per direction of data flow: `(from, to)` slows or stalls bytes sent by slot
//! `from` to slot `to`, on connections opened by either side.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::netns::{self, NODE_PORT, PROXY_MARK, PROXY_PORT_BASE, in_netns};

/// What is done to the bytes flowing one way on a link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkFault {
    /// Added to every chunk's delivery time.
    pub latency: Duration,
    /// Up to this much more, at random, per chunk (order is kept).
    pub jitter: Duration,
    /// Probability that a chunk is held back 200-1000 ms, as a lost and retransmitted
    /// segment would be (everything after it waits too).
    pub drop_rate: f64,
    /// Probability, per chunk, that the connection is reset.
    pub reset_rate: f64,
    /// Nothing moves while set (the connection stays open).
    pub stalled: bool,
}

type Faults = Arc<RwLock<HashMap<(usize, usize), LinkFault>>>;

/// The running proxy.
#[derive(Debug)]
pub struct Proxy {
    faults: Faults,
    tasks: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Starts one listener per (slot, other slot) pair, in the slot's namespace.
    pub fn start(net: &netns::Net, seed: u64) -> Result<Proxy, String> {
        let faults: Faults = Arc::new(RwLock::new(HashMap::new()));
        let mut tasks = Vec::new();
        let slots = net.nodes.len();
        for (from, ns) in net.nodes.iter().enumerate() {
            for to in (0..slots).filter(|t| *t != from) {
                let port = PROXY_PORT_BASE + to as u16;
                let std_listener = in_netns(ns, move || {
                    let l = std::net::TcpListener::bind(("127.0.0.1", port))?;
                    l.set_nonblocking(true)?;
                    Ok::<_, std::io::Error>(l)
                })?
                .map_err(|e| format!("proxy listener in {ns} on port {port}: {e}"))?;
                let listener = TcpListener::from_std(std_listener)
                    .map_err(|e| format!("proxy listener in {ns}: {e}"))?;
                let ns = ns.clone();
                let faults = Arc::clone(&faults);
                let seed = seed ^ ((from as u64) << 8 | to as u64);
                tasks.push(tokio::spawn(accept_loop(
                    listener, ns, from, to, faults, seed,
                )));
            }
        }
        Ok(Proxy { faults, tasks })
    }

    /// Sets the fault on data flowing from slot `from` to slot `to`.
    pub fn set(&self, from: usize, to: usize, fault: LinkFault) {
        let mut f = self.faults.write().unwrap_or_else(|e| e.into_inner());
        f.insert((from, to), fault);
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.faults
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// True while some fault is set.
    pub fn has_faults(&self) -> bool {
        !self
            .faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    ns: String,
    from: usize,
    to: usize,
    faults: Faults,
    seed: u64,
) {
    let mut n: u64 = 0;
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        n += 1;
        let ns = ns.clone();
        let faults = Arc::clone(&faults);
        tokio::spawn(async move {
            let Ok(outbound) = connect_from(&ns, to).await else {
                // The peer is down or cut off: the node sees its connection close.
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            let rng = |k: u64| StdRng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(n * 2 + k));
            let mut up = tokio::spawn(pump(ir, ow, (from, to), Arc::clone(&faults), rng(0)));
            let mut down = tokio::spawn(pump(or, iw, (to, from), faults, rng(1)));
            // When one direction ends (close, reset, error), end the other too.
            tokio::select! {
                _ = &mut up => {}
                _ = &mut down => {}
            }
            up.abort();
            down.abort();
        });
    }
}

/// A connection to slot `to`'s node from inside namespace `ns`, marked so that it is not
/// redirected back to the proxy.
async fn connect_from(ns: &str, to: usize) -> Result<TcpStream, String> {
    let ns = ns.to_string();
    let std_stream = tokio::task::spawn_blocking(move || {
        in_netns(&ns, || {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.set_mark(PROXY_MARK)?;
            s.set_nonblocking(true)?;
            Ok::<std::net::TcpStream, std::io::Error>(s.into())
        })
    })
    .await
    .map_err(|e| e.to_string())??
    .map_err(|e| e.to_string())?;
    let socket = tokio::net::TcpSocket::from_std_stream(std_stream);
    let addr: std::net::SocketAddr = format!("{}:{NODE_PORT}", netns::node_ip(to))
        .parse()
        .map_err(|e| format!("{e}"))?;
    match tokio::time::timeout(Duration::from_secs(2), socket.connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out".into()),
    }
}

/// Copies bytes one way, applying the current fault of that direction to each chunk.
async fn pump(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    flow: (usize, usize),
    faults: Faults,
    mut rng: StdRng,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let flow_faults = Arc::clone(&faults);
    let writer = tokio::spawn(async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            // A stalled link holds what it has until the stall ends.
            while current(&flow_faults, flow).stalled {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut last = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let f = current(&faults, flow);
        if f.reset_rate > 0.0 && rng.random_bool(f.reset_rate.min(1.0)) {
            writer.abort();
            return;
        }
        let mut delay = f.latency;
        if !f.jitter.is_zero() {
            delay += Duration::from_micros(rng.random_range(0..=f.jitter.as_micros() as u64));
        }
        if f.drop_rate > 0.0 && rng.random_bool(f.drop_rate.min(1.0)) {
            delay += Duration::from_millis(rng.random_range(200..1000));
        }
        let at = (Instant::now() + delay).max(last);
        last = at;
        if tx.send((at, buf[..n].to_vec())).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn current(faults: &Faults, flow: (usize, usize)) -> LinkFault {
    faults
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&flow)
        .cloned()
        .unwrap_or_default()
}
