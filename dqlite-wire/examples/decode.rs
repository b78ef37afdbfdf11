//! Decodes one complete dqlite message (8-byte header + body, in hex) and prints it.
//!
//! ```text
//! cargo run -q -p dqlite-wire --example decode -- --request <hex>
//! cargo run -q -p dqlite-wire --example decode -- --response EXEC_SQL <hex>
//! cargo run -q -p dqlite-wire --example decode -- --response LEADER --legacy <hex>
//! cargo run -q -p dqlite-wire --example decode -- --response CLUSTER --cluster-format 0 <hex>
//! cargo run -q -p dqlite-wire --example decode -- --handshake 0100000000000000
//! ```
//!
//! A response needs the name of the request it answers (`EXEC_SQL`, `QUERY`, `LEADER`, ...).

use std::process::ExitCode;

use dqlite_wire::{Header, ProtocolVersion, Request, RequestType, Response, ResponseContext};

const USAGE: &str = "usage: decode (--request | --response REQUEST_NAME [--legacy] \
                     [--cluster-format N] | --handshake) HEX";

enum Mode {
    Request,
    Response(RequestType),
    Handshake,
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("bad hex at {i}: {e}")))
        .collect()
}

fn run(args: &[String]) -> Result<String, String> {
    let mut mode = None;
    let mut legacy = false;
    let mut cluster_format = None;
    let mut hex = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--request" => mode = Some(Mode::Request),
            "--handshake" => mode = Some(Mode::Handshake),
            "--response" => {
                let name = it.next().ok_or("--response needs the request name")?;
                let t = RequestType::from_name(name)
                    .ok_or_else(|| format!("unknown request name {name:?}"))?;
                mode = Some(Mode::Response(t));
            }
            "--legacy" => legacy = true,
            "--cluster-format" => {
                let n = it.next().ok_or("--cluster-format needs a number")?;
                cluster_format = Some(n.parse::<u64>().map_err(|e| format!("{n}: {e}"))?);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other if hex.is_none() && !other.starts_with("--") => hex = Some(other.to_owned()),
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    let mode = mode.ok_or(USAGE)?;
    let bytes = parse_hex(&hex.ok_or(USAGE)?)?;
    match mode {
        Mode::Handshake => {
            let word: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| format!("a handshake is 8 bytes, got {}", bytes.len()))?;
            let v = ProtocolVersion::decode(word).map_err(|e| e.to_string())?;
            Ok(format!("handshake {v:?} ({:#x})", v.code()))
        }
        Mode::Request => {
            let header = header_of(&bytes)?;
            let r = Request::decode_message(&bytes).map_err(|e| e.to_string())?;
            Ok(format!("{header:?}\n{r:#?}"))
        }
        Mode::Response(answers) => {
            let header = header_of(&bytes)?;
            let mut ctx = ResponseContext::new(answers).legacy(legacy);
            if let Some(f) = cluster_format {
                ctx = ctx.cluster_format(f);
            }
            let r = Response::decode_message(&bytes, &ctx).map_err(|e| e.to_string())?;
            Ok(format!("{header:?}\n{r:#?}"))
        }
    }
}

fn header_of(bytes: &[u8]) -> Result<Header, String> {
    Header::from_prefix(bytes).ok_or_else(|| format!("{} bytes: no complete header", bytes.len()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("decode: {e}");
            ExitCode::FAILURE
        }
    }
}
