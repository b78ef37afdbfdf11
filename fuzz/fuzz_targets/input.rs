//! Shared input layout of the fuzz targets: one selector byte, then message bytes.
//!
//! Selector: bit 0 = 0 request / 1 response; bits 1-5 = the request type a response answers
//! (mod 20); bit 6 = legacy handshake; bit 7 = CLUSTER format 0 (else 1).

use dqlite_wire::{RequestType, ResponseContext};

pub struct Selector {
    pub response: bool,
    pub ctx: ResponseContext,
}

pub fn selector(byte: u8) -> Selector {
    let answers = RequestType::ALL[usize::from((byte >> 1) & 0x1f) % RequestType::ALL.len()];
    let ctx = ResponseContext::new(answers)
        .legacy(byte & 0x40 != 0)
        .cluster_format(if byte & 0x80 != 0 { 0 } else { 1 });
    Selector {
        response: byte & 1 == 1,
        ctx,
    }
}
