//! A minimal wire client for the tests (independent of dqlite-client, built on dqlite-wire).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod links;
pub mod procs;

use std::time::Duration;

use dqlite_wire::{Framer, ProtocolVersion, Request, Response, ResponseContext, RowsEnd, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A minimal wire client.
pub struct Client {
    /// The socket.
    pub s: TcpStream,
    framer: Framer,
}

impl Client {
    /// Connects and sends handshake version 1.
    pub async fn connect(address: &str) -> std::io::Result<Client> {
        let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(address))
            .await
            .map_err(|_| std::io::Error::other("connect timeout"))??;
        s.write_all(&ProtocolVersion::V1.to_bytes()).await?;
        Ok(Client {
            s,
            framer: Framer::new(),
        })
    }

    /// Reads one response.
    pub async fn recv(&mut self, ctx: &ResponseContext) -> std::io::Result<Response> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(f) = self.framer.next_frame().map_err(std::io::Error::other)? {
                    return f.decode_response(ctx).map_err(std::io::Error::other);
                }
                if self.s.read_buf(self.framer.buffer_mut()).await? == 0 {
                    return Err(std::io::Error::other("closed"));
                }
            }
        })
        .await
        .map_err(|_| std::io::Error::other("response timeout"))?
    }

    /// Sends a request and reads one response.
    pub async fn call(&mut self, req: Request) -> std::io::Result<Response> {
        self.s.write_all(&req.to_bytes().unwrap()).await?;
        self.recv(&ResponseContext::for_request(&req)).await
    }

    /// Runs a QUERY_SQL and collects every batch.
    pub async fn rows(&mut self, sql: &str) -> std::io::Result<Vec<Vec<Value>>> {
        let req = Request::query_sql(sql, Vec::<Value>::new());
        self.s.write_all(&req.to_bytes().unwrap()).await?;
        let ctx = ResponseContext::for_request(&req);
        let mut out = Vec::new();
        loop {
            match self.recv(&ctx).await? {
                Response::Rows(b) => {
                    out.extend(b.rows);
                    if b.end == RowsEnd::Done {
                        return Ok(out);
                    }
                }
                other => return Err(std::io::Error::other(format!("{other:?}"))),
            }
        }
    }
}

/// A connection with database `name` open.
pub async fn open(address: &str, name: &str) -> std::io::Result<Client> {
    let mut c = Client::connect(address).await?;
    match c
        .call(Request::Open {
            name: name.into(),
            flags: 0,
            vfs: "volatile".into(),
        })
        .await?
    {
        Response::Db { .. } => Ok(c),
        other => Err(std::io::Error::other(format!("{other:?}"))),
    }
}

/// A one-node cluster in `dir` on a free loopback port, started and leading.
pub async fn single(dir: &std::path::Path, options: dqlite_node::NodeOptions) -> dqlite_node::Node {
    let node = dqlite_node::Node::builder(1, "127.0.0.1:0", dir)
        .options(options)
        .start()
        .await
        .unwrap();
    node.handle()
        .unwrap()
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    node
}
