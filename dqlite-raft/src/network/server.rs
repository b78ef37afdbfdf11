//! The serving side: answers raft frames on any established stream.
//!
//! The caller owns accepting: a dqlite node reads the client handshake on its one port and hands
//! raft connections to [`serve_stream`]; [`serve_listener`] does the accepting for a dedicated
//! raft port (tests, other applications).

use openraft::Raft;
use openraft::raft::AppendEntriesResponse;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::client::NetConfig;
use super::codec::{self, CodecError, KIND_REQUEST, KIND_RESPONSE, Request, Response};
use crate::TypeConfig;

/// Serves raft requests arriving on `stream` until the peer closes it (`Ok`) or sends something
/// invalid (`Err`: the caller should just drop the connection; nothing a peer sends can panic).
pub async fn serve_stream<C, S>(
    raft: Raft<C>,
    mut stream: S,
    config: NetConfig,
) -> Result<(), CodecError>
where
    C: TypeConfig,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    loop {
        let Some(req) = codec::read_frame::<Request<C>, _>(
            &mut stream,
            KIND_REQUEST,
            config.max_frame,
            &mut buf,
        )
        .await?
        else {
            return Ok(());
        };
        let resp: Response<C> = match req {
            Request::AppendEntries(r) => {
                let resp = raft.append_entries(r).await;
                if matches!(&resp, Ok(a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
                    config.leader_contact.record();
                }
                Response::AppendEntries(resp)
            }
            Request::Vote(r) => {
                // A leader's lease may be extended while the request waits: wait it out.
                while let Some(until) = config.vote_hold.held_until() {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
                }
                Response::Vote(raft.vote(r).await)
            }
            Request::InstallSnapshot(r) => {
                Response::InstallSnapshot(raft.install_snapshot(r).await)
            }
        };
        let frame = codec::encode(KIND_RESPONSE, &resp)?;
        codec::write_frame(&mut stream, &frame).await?;
    }
}

/// Accepts connections on `listener` forever, serving each on its own task.
pub async fn serve_listener<C: TypeConfig>(
    raft: Raft<C>,
    listener: TcpListener,
    config: NetConfig,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "raft accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let raft = raft.clone();
        let config = config.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_stream(raft, stream, config).await {
                tracing::debug!(%peer, error = %e, "raft connection closed");
            }
        });
    }
}
