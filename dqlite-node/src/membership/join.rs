//! Joining a cluster: ask a member who leads, then ask the leader to ADD this node and
//! ASSIGN it the voter role, over the ordinary client protocol (as go-dqlite's `Client.Add`).

use std::time::Duration;

use dqlite_wire::{Framer, ProtocolVersion, Request, Response, ResponseContext};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::tls::TlsConfig;

/// A byte stream a [`Conn`] runs over: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A minimal one-request-at-a-time client connection.
pub(crate) struct Conn {
    stream: Box<dyn Io>,
    framer: Framer,
}

impl Conn {
    /// A connection over TLS when `tls` is set, plain TCP otherwise.
    pub(crate) async fn connect_with(addr: &str, tls: Option<&TlsConfig>) -> Result<Conn, String> {
        let tcp = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let mut stream: Box<dyn Io> = match tls {
            Some(t) => Box::new(
                tokio::time::timeout(
                    Duration::from_secs(5),
                    t.connector().connect(t.server_name(), tcp),
                )
                .await
                .map_err(|_| format!("TLS handshake with {addr} timed out"))?
                .map_err(|e| format!("TLS handshake with {addr}: {e}"))?,
            ),
            None => Box::new(tcp),
        };
        stream
            .write_all(&ProtocolVersion::V1.to_bytes())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Conn {
            stream,
            framer: Framer::new(),
        })
    }

    pub(crate) async fn call(&mut self, req: Request) -> Result<Response, String> {
        let bytes = req.to_bytes().map_err(|e| e.to_string())?;
        self.stream
            .write_all(&bytes)
            .await
            .map_err(|e| e.to_string())?;
        let ctx = ResponseContext::for_request(&req);
        let frame = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(f) = self.framer.next_frame().map_err(|e| e.to_string())? {
                    return Ok::<_, String>(f);
                }
                let n = self
                    .stream
                    .read_buf(self.framer.buffer_mut())
                    .await
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed".to_string());
                }
            }
        })
        .await
        .map_err(|_| "no answer within 30 s".to_string())??;
        frame.decode_response(&ctx).map_err(|e| e.to_string())
    }
}

/// One attempt: find the leader through `seed`, ADD this node, make it a voter.
async fn try_join(
    id: u64,
    address: &str,
    seed: &str,
    tls: Option<&TlsConfig>,
) -> Result<(), String> {
    let mut c = Conn::connect_with(seed, tls).await?;
    let leader = match c.call(Request::Leader).await? {
        Response::Server { address, .. } if !address.is_empty() => address,
        other => return Err(format!("{seed} knows no leader ({other:?})")),
    };
    let mut c = Conn::connect_with(&leader, tls).await?;
    match c
        .call(Request::Add {
            node_id: id,
            address: address.to_string(),
        })
        .await?
    {
        Response::Empty => {}
        // An earlier attempt added it and then failed to assign the role: assign it now.
        Response::Failure(f) if f.message.contains("already in use") => {}
        Response::Failure(f) => return Err(format!("ADD refused: {} ({})", f.message, f.code)),
        other => return Err(format!("unexpected answer to ADD: {other:?}")),
    }
    match c
        .call(Request::Assign {
            node_id: id,
            role: Some(0),
        })
        .await?
    {
        Response::Empty => Ok(()),
        Response::Failure(f) if f.message.contains("already voter") => Ok(()),
        Response::Failure(f) => Err(format!("ASSIGN refused: {} ({})", f.message, f.code)),
        other => Err(format!("unexpected answer to ASSIGN: {other:?}")),
    }
}

/// Tries the seeds in turn until this node is a voter or the node stops.
pub(crate) async fn join_loop(
    id: u64,
    address: String,
    seeds: Vec<String>,
    tls: Option<TlsConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        for seed in &seeds {
            match try_join(id, &address, seed, tls.as_ref()).await {
                Ok(()) => {
                    tracing::info!(%seed, "joined the cluster");
                    return;
                }
                Err(e) => tracing::info!(%seed, error = %e, "join attempt failed"),
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
