//! Loopback addresses, port probes, and asking a node who leads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use dqlite_wire::{Framer, NodeInfo, ProtocolVersion, Request, Response, ResponseContext};

use crate::error::Error;

/// A port free on `host` right now (bound, then released; the small race with other programs is
/// accepted).
pub fn free_port(host: &str) -> Result<u16, Error> {
    TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::new(format!("no free port on {host}: {e}")))
}

/// `n` distinct addresses `host:port` with ports free right now.
pub fn addresses(host: &str, n: usize) -> Result<Vec<String>, Error> {
    let mut v: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while v.len() < n {
        let a = format!("{host}:{}", free_port(host)?);
        if !v.contains(&a) {
            v.push(a);
        }
        if Instant::now() > deadline {
            return Err(Error::new(format!(
                "could not find {n} free ports on {host}"
            )));
        }
    }
    Ok(v)
}

fn socket_addr(address: &str) -> Result<SocketAddr, Error> {
    address
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::new(format!("{address:?} is not a HOST:PORT address")))
}

/// True if something accepts TCP connections at `address` (within 200 ms).
pub fn port_open(address: &str) -> bool {
    socket_addr(address)
        .is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok())
}

/// Sends one request to the node at `address` and returns its answer. Every step is
/// bounded by `timeout`.
fn ask(address: &str, request: &Request, timeout: Duration) -> Result<Response, Error> {
    let fail =
        |what: &str, e: &dyn std::fmt::Display| Error::new(format!("{address}: {what}: {e}"));
    let mut s = TcpStream::connect_timeout(&socket_addr(address)?, timeout)
        .map_err(|e| fail("connect", &e))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(|e| fail("socket", &e))?;
    let mut bytes = ProtocolVersion::V1.to_bytes().to_vec();
    bytes.extend_from_slice(&request.to_bytes().map_err(|e| fail("encode", &e))?);
    s.write_all(&bytes).map_err(|e| fail("send", &e))?;
    let mut framer = Framer::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + timeout;
    let frame = loop {
        if let Some(f) = framer.next_frame().map_err(|e| fail("frame", &e))? {
            break f;
        }
        if Instant::now() > deadline {
            return Err(fail("read", &"no answer in time"));
        }
        let n = s.read(&mut buf).map_err(|e| fail("read", &e))?;
        if n == 0 {
            return Err(fail("read", &"connection closed"));
        }
        framer.push(&buf[..n]);
    };
    frame
        .decode_response(&ResponseContext::for_request(request))
        .map_err(|e| fail("decode", &e))
}

/// Asks the node at `address` who leads, with a LEADER request: `Some((id, address))`, or
/// `None` when it knows no leader. Every step is bounded by `timeout`.
pub fn leader(address: &str, timeout: Duration) -> Result<Option<(u64, String)>, Error> {
    match ask(address, &Request::Leader, timeout)? {
        Response::Server { address, .. } if address.is_empty() => Ok(None),
        Response::Server { node_id, address } => Ok(Some((node_id, address))),
        other => Err(Error::new(format!(
            "{address}: LEADER: unexpected answer {other:?}"
        ))),
    }
}

/// The members the node at `address` knows, with their roles (CLUSTER, format 1).
pub fn members(address: &str, timeout: Duration) -> Result<Vec<NodeInfo>, Error> {
    match ask(address, &Request::Cluster { format: 1 }, timeout)? {
        Response::Servers { servers } => Ok(servers),
        other => Err(Error::new(format!(
            "{address}: CLUSTER: unexpected answer {other:?}"
        ))),
    }
}
