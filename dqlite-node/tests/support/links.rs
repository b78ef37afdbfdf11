//! Partitions for in-process clusters: each node advertises the address of a [`Link`] (a
//! TCP proxy in front of its real listener), so that every connection a peer opens to it
//! passes the proxy. A raft connection starts with the handshake and a CONNECT naming the
//! dialing node, so the proxy knows where each connection comes from and can cut the links
//! from chosen nodes: `partition(a, b)` cuts a→b at b's proxy and b→a at a's. Cut connections
//! are closed at once and new ones from a cut node are closed after their CONNECT (a
//! partition that drops every message). Client connections pass untouched.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use dqlite_wire::{Header, Request, RequestType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Default)]
struct State {
    target: Option<SocketAddr>,
    cut_from: HashSet<u64>,
}

/// A proxy in front of one node.
pub struct Link {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    changed: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Link {
    /// A proxy on a free loopback port; it forwards once [`Link::set_target`] was called.
    pub async fn start() -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let (changed, rx) = watch::channel(0);
        let task = tokio::spawn(accept(listener, state.clone(), rx));
        Link {
            addr,
            state,
            changed,
            task,
        }
    }

    /// The address to advertise.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where connections go (the node's real listening address).
    pub fn set_target(&self, target: SocketAddr) {
        self.state.lock().unwrap().target = Some(target);
    }

    /// Cuts (or restores) the connections node `from` opens to this node.
    pub fn cut_from(&self, from: u64, cut: bool) {
        {
            let mut s = self.state.lock().unwrap();
            if cut {
                s.cut_from.insert(from);
            } else {
                s.cut_from.remove(&from);
            }
        }
        self.changed.send_modify(|g| *g += 1);
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.state.lock().unwrap().cut_from.clear();
        self.changed.send_modify(|g| *g += 1);
    }
}

async fn accept(listener: TcpListener, state: Arc<Mutex<State>>, changed: watch::Receiver<u64>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(forward(stream, state.clone(), changed.clone()));
    }
}

fn is_cut(state: &Mutex<State>, from: Option<u64>) -> bool {
    from.is_some_and(|id| state.lock().unwrap().cut_from.contains(&id))
}

/// Reads the handshake and first message of a connection (a CONNECT names a raft peer), then
/// copies both ways until either side closes or the link from that peer is cut.
async fn forward(
    mut down: TcpStream,
    state: Arc<Mutex<State>>,
    mut changed: watch::Receiver<u64>,
) -> std::io::Result<()> {
    let mut prefix = vec![0u8; 16];
    down.read_exact(&mut prefix).await?;
    let header = Header::decode(prefix[8..16].try_into().unwrap());
    let mut from = None;
    if header.type_code == RequestType::Connect.code() && header.body_len() <= 4096 {
        let mut body = vec![0u8; header.body_len()];
        down.read_exact(&mut body).await?;
        if let Ok(Request::Connect { node_id, .. }) = Request::decode(&header, &body) {
            from = Some(node_id);
        }
        prefix.extend_from_slice(&body);
    }
    let Some(target) = state.lock().unwrap().target else {
        return Ok(());
    };
    if is_cut(&state, from) {
        return Ok(());
    }
    let mut up = TcpStream::connect(target).await?;
    let _ = up.set_nodelay(true);
    up.write_all(&prefix).await?;
    let (mut dr, mut dw) = down.split();
    let (mut ur, mut uw) = up.split();
    let copy = async {
        tokio::select! {
            r = tokio::io::copy(&mut dr, &mut uw) => r.map(|_| ()),
            r = tokio::io::copy(&mut ur, &mut dw) => r.map(|_| ()),
        }
    };
    let cut = async {
        loop {
            if is_cut(&state, from) || changed.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        r = copy => r,
        () = cut => Ok(()),
    }
}

/// One [`Link`] per node (index i for node id i + 1).
pub struct Links(pub Vec<Link>);

impl Links {
    /// `n` links.
    pub async fn start(n: usize) -> Links {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(Link::start().await);
        }
        Links(v)
    }

    /// The link of node `id` (ids from 1).
    pub fn of(&self, id: u64) -> &Link {
        &self.0[id as usize - 1]
    }

    /// Cuts (or restores) both directions between nodes `a` and `b`.
    pub fn partition(&self, a: u64, b: u64, cut: bool) {
        self.of(b).cut_from(a, cut);
        self.of(a).cut_from(b, cut);
    }

    /// Cuts node `id` off from every other node.
    pub fn isolate(&self, id: u64) {
        for other in 1..=self.0.len() as u64 {
            if other != id {
                self.partition(id, other, true);
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        for l in &self.0 {
            l.heal();
        }
    }
}
