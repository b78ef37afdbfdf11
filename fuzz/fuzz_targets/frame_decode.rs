//! Arbitrary bytes through the framer (in chunks), the message parser and every decoder: nothing may panic, and
//! memory stays bounded by the framer's maximum body size.
#![no_main]

use dqlite_wire::{Framer, Request, Response, RowsBatch, RowsBatchRef, RowsReader, parse};
use libfuzzer_sys::fuzz_target;

#[path = "input.rs"]
mod input;

fuzz_target!(|data: &[u8]| {
    let [sel, chunk_seed, rest @ ..] = data else {
        return;
    };
    let s = input::selector(*sel);
    // The whole input as one message, both ways.
    let _ = Request::decode_message(rest);
    let _ = Response::decode_message(rest, &s.ctx);
    let _ = RowsBatch::decode(rest);
    let _ = RowsBatchRef::decode(rest);
    // The input as a buffer of whole messages, cut by the message parser.
    let mut buf = rest;
    while let Ok((next, (header, body))) = parse::message(buf) {
        let _ = parse::request(&header)(body);
        let _ = parse::response(&header, &s.ctx)(body);
        buf = next;
    }

    // The input as a stream, pushed in chunks of 1..=16 bytes.
    let mut framer = if s.response {
        Framer::new()
    } else {
        Framer::server()
    }
    .with_max_body(64 * 1024);
    let chunk = usize::from(chunk_seed % 16) + 1;
    for piece in rest.chunks(chunk) {
        framer.push(piece);
        if framer.expects_handshake() && framer.next_handshake().is_err() {
            return;
        }
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    let _ = frame.decode_request();
                    let _ = frame.decode_response(&s.ctx);
                    if let Ok(mut reader) = RowsReader::new(&frame.body) {
                        let mut row = Vec::new();
                        while let Ok(true) = reader.next_row_into(&mut row) {}
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(framer.buffered() <= rest.len());
    }
});
