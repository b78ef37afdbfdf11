//! A blocking dqlite client over `std::net::TcpStream`, built on `dqlite-wire` alone: the
//! handshake, LEADER (following the leader), OPEN, EXEC_SQL, QUERY_SQL with a result that
//! spans several ROWS batches, and a FAILURE.
//!
//! ```text
//! cargo xtask cluster start                 # prints the nodes' addresses
//! cargo run -p dqlite-wire --example client -- 127.0.0.1:9001,127.0.0.1:9002 [DATABASE]
//! ```
//! It works the same against C dqlite (e.g. `c-cluster.sh start 3 9001 DIR`).

use std::error::Error;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use dqlite_wire::constants::error_code;
use dqlite_wire::{
    Frame, Framer, ProtocolVersion, Request, Response, ResponseContext, RowsEnd, RowsReader,
    ValueRef,
};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// One connection: the socket and the framer that cuts what it reads into messages.
struct Conn {
    stream: TcpStream,
    framer: Framer,
}

impl Conn {
    /// Connects and sends the protocol version.
    fn open(address: &str) -> Result<Conn> {
        let stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut conn = Conn {
            stream,
            framer: Framer::new(),
        };
        conn.stream.write_all(&ProtocolVersion::V1.to_bytes())?;
        Ok(conn)
    }

    fn send(&mut self, request: &Request) -> Result<()> {
        self.stream.write_all(&request.to_bytes()?)?;
        Ok(())
    }

    /// Reads until the framer has a whole message.
    fn frame(&mut self) -> Result<Frame> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(frame) = self.framer.next_frame()? {
                return Ok(frame);
            }
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            self.framer.push(&buf[..n]);
        }
    }

    /// Sends `request` and decodes its answer; a FAILURE becomes an error.
    fn call(&mut self, request: &Request) -> Result<Response> {
        self.send(request)?;
        let frame = self.frame()?;
        match frame.decode_response(&ResponseContext::for_request(request))? {
            Response::Failure(f) => Err(format!("FAILURE {}: {}", f.code, f.message).into()),
            other => Ok(other),
        }
    }
}

/// Asks each address who leads and connects there (a follower names the leader).
fn connect_to_leader(addresses: &[&str]) -> Result<Conn> {
    for address in addresses {
        let Ok(mut conn) = Conn::open(address) else {
            continue;
        };
        let leader = match conn.call(&Request::Leader)? {
            Response::Server { address, .. } if !address.is_empty() => address,
            _ => continue, // no leader known there
        };
        let mut conn = if leader == *address {
            conn
        } else {
            Conn::open(&leader)?
        };
        conn.call(&Request::Client { client_id: 0 })?;
        println!("leader: {leader}");
        return Ok(conn);
    }
    Err("no node knows a leader".into())
}

fn exec(conn: &mut Conn, sql: &str) -> Result<u64> {
    match conn.call(&Request::exec_sql(sql, vec![]))? {
        Response::Result { rows_affected, .. } => Ok(rows_affected),
        other => Err(format!("unexpected {:?}", other.response_type()).into()),
    }
}

/// Runs a query and reads its batches without copying values: the server sends PART
/// batches on its own until the DONE one.
fn query(conn: &mut Conn, sql: &str) -> Result<(usize, usize, i64)> {
    let request = Request::query_sql(sql, vec![]);
    conn.send(&request)?;
    let ctx = ResponseContext::for_request(&request);
    let (mut batches, mut rows, mut sum) = (0, 0, 0);
    loop {
        let frame = conn.frame()?;
        if frame.header.type_code != dqlite_wire::constants::response::ROWS {
            // A FAILURE (or anything else) ends the result.
            return Err(format!("{:?}", frame.decode_response(&ctx)?).into());
        }
        let mut reader = RowsReader::new(&frame.body)?;
        let mut row = Vec::new();
        while reader.next_row_into(&mut row)? {
            if let [ValueRef::Integer(n), ..] = row[..] {
                sum += n;
            }
            rows += 1;
        }
        batches += 1;
        if reader.end() == RowsEnd::Done {
            return Ok((batches, rows, sum));
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(servers) = args.first() else {
        return Err("usage: client ADDRESS[,ADDRESS...] [DATABASE]".into());
    };
    let addresses: Vec<&str> = servers.split(',').collect();
    let database = args.get(1).map_or("wire-example", String::as_str);

    let mut conn = connect_to_leader(&addresses)?;
    let open = Request::Open {
        name: database.into(),
        flags: 0,
        vfs: "volatile".into(),
    };
    conn.call(&open)?;
    exec(&mut conn, "DROP TABLE IF EXISTS numbers")?;
    exec(&mut conn, "CREATE TABLE numbers (n INTEGER, label TEXT)")?;
    let inserted = exec(
        &mut conn,
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 5000) \
         INSERT INTO numbers SELECT n, 'number ' || n FROM c",
    )?;
    println!("inserted {inserted} rows");

    let (batches, rows, sum) = query(&mut conn, "SELECT n, label FROM numbers")?;
    println!("read {rows} rows in {batches} ROWS batches, sum {sum}");
    assert_eq!((rows, sum), (5000, 5000 * 5001 / 2));
    assert!(batches > 1, "a result this large spans several batches");

    // A FAILURE answers a bad statement; the connection stays usable.
    let Err(err) = exec(&mut conn, "INSERT INTO nowhere VALUES (1)") else {
        return Err("an INSERT into a missing table succeeded".into());
    };
    println!("as expected: {err}");
    assert!(
        err.to_string()
            .contains(&format!("FAILURE {}", error_code::ERROR))
    );
    exec(&mut conn, "DROP TABLE numbers")?;
    Ok(())
}
