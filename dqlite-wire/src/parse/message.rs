//! Message-level parsers (§1): the handshake, the 8-byte header, a whole message.

use super::error::{IResult, fail, truncated};
use super::primitive::take_len;
use crate::error::DecodeErrorKind;
use crate::framer::ProtocolVersion;
use crate::header::Header;

/// The 8-byte message header.
pub fn header(input: &[u8]) -> IResult<'_, Header> {
    match input.split_first_chunk::<8>() {
        Some((head, rest)) => Ok((rest, Header::decode(*head))),
        None => Err(truncated(input, "header", 8)),
    }
}

/// One whole message: its header and the `words × 8` bytes of its body. What follows the
/// body is left in the rest, so a buffer of several messages parses one message at a time;
/// a body longer than the input is `Truncated` (field `body`).
pub fn message(input: &[u8]) -> IResult<'_, (Header, &[u8])> {
    let (rest, header) = header(input)?;
    let (rest, body) = take_len("body", u64::from(header.words) * 8)(rest)?;
    Ok((rest, (header, body)))
}

/// The 8 bytes a client sends first: its protocol version (an unknown one is
/// `UnknownProtocolVersion`).
pub fn handshake(input: &[u8]) -> IResult<'_, ProtocolVersion> {
    let Some((word, rest)) = input.split_first_chunk::<8>() else {
        return Err(truncated(input, "version", 8));
    };
    let code = u64::from_le_bytes(*word);
    match ProtocolVersion::from_code(code) {
        Some(v) => Ok((rest, v)),
        None => Err(fail(
            input,
            "version",
            DecodeErrorKind::UnknownProtocolVersion(code),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Request;

    #[test]
    fn messages_one_after_the_other() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&ProtocolVersion::V1.to_bytes());
        stream.extend_from_slice(&Request::Leader.to_bytes().unwrap());
        stream.extend_from_slice(&Request::Cluster { format: 1 }.to_bytes().unwrap());
        let (rest, v) = handshake(&stream).unwrap();
        assert_eq!(v, ProtocolVersion::V1);
        let (rest, (h, body)) = message(rest).unwrap();
        assert_eq!((h.type_code, body.len()), (0, 8));
        let (rest, (h, _)) = message(rest).unwrap();
        assert_eq!(h.type_code, 16);
        assert!(rest.is_empty());
        let nom::Err::Error(e) = message(&stream[8..20]).unwrap_err() else {
            panic!()
        };
        assert_eq!((e.field(), e.offset_in(&stream[8..20])), ("body", 8));
        assert!(handshake(&2u64.to_le_bytes()).is_err());
    }
}
