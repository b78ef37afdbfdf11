//! The error type of the parsers: which message, which field, where, and what was wrong.

use std::borrow::Cow;
use std::fmt;

use crate::error::{DecodeError, DecodeErrorKind};

/// What [`nom`] parsers of this module return: the rest of the input and a value, or an
/// [`Error`].
pub type IResult<'a, T> = nom::IResult<&'a [u8], T, Error>;

/// The error of every parser in [`crate::parse`]: a [`nom`] error type that names the message,
/// the field, and where in the input the field starts.
///
/// Where is kept as the number of input bytes **left** at the failing field (`remaining`),
/// which is what a parser over a slice can know; [`Error::offset_in`] turns it into an offset
/// from the start of any input that ends where the parsed one does (the body a message parser
/// was given), and [`Error::into_decode_error`] into the crate's [`DecodeError`].
///
/// Message-level parsers ([`request`](crate::parse::request),
/// [`response`](crate::parse::response), [`rows_batch`](crate::parse::rows_batch), ...) name
/// the message; field parsers leave it empty (`""`) for their caller. It implements nom's
/// [`ParseError`](nom::error::ParseError), [`ContextError`](nom::error::ContextError) (a
/// `context` names the field when the error has none yet) and
/// [`FromExternalError`](nom::error::FromExternalError), so the parsers combine with nom's own
/// combinators and with a caller's parsers.
///
/// The details live behind one box: a parser's result stays two words larger than its
/// value, which keeps the hot paths (rows) as fast as hand-written code.
#[derive(Clone, PartialEq, Eq)]
pub struct Error(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    message: &'static str,
    field: Cow<'static, str>,
    kind: DecodeErrorKind,
    remaining: usize,
}

impl Error {
    /// An error at the start of `input` (the unparsed rest where the failing field starts).
    #[cold]
    pub fn new(input: &[u8], field: impl Into<Cow<'static, str>>, kind: DecodeErrorKind) -> Error {
        Error::at_remaining(input.len(), field, kind)
    }

    /// An error at the point where `remaining` bytes of the input are left.
    #[cold]
    pub fn at_remaining(
        remaining: usize,
        field: impl Into<Cow<'static, str>>,
        kind: DecodeErrorKind,
    ) -> Error {
        Error(Box::new(Inner {
            message: "",
            field: field.into(),
            kind,
            remaining,
        }))
    }

    /// The message being parsed (`""` until a message-level parser names it).
    pub fn message(&self) -> &'static str {
        self.0.message
    }

    /// The field that failed, e.g. `"sql"`, `"params[2]"` or `"rows[3][1]"`.
    pub fn field(&self) -> &str {
        &self.0.field
    }

    /// What was wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.0.kind
    }

    /// Bytes of input left where the failing field starts.
    pub fn remaining(&self) -> usize {
        self.0.remaining
    }

    /// Offset of the failing field from the start of `input`, an input that ends where the
    /// parsed one ends (e.g. the whole body a message parser was given).
    pub fn offset_in(&self, input: &[u8]) -> usize {
        input.len().saturating_sub(self.0.remaining)
    }

    /// The same error, naming the message.
    pub fn in_message(mut self, message: &'static str) -> Error {
        self.0.message = message;
        self
    }

    /// The same error with another field name.
    pub fn with_field(mut self, field: impl Into<Cow<'static, str>>) -> Error {
        self.0.field = field.into();
        self
    }

    /// The same error with its field name rewritten (e.g. to add an index).
    pub fn map_field(mut self, f: impl FnOnce(&str) -> String) -> Error {
        self.0.field = f(&self.0.field).into();
        self
    }

    /// The crate's [`DecodeError`], with the offset counted from the start of `input` (see
    /// [`Error::offset_in`]).
    pub fn into_decode_error(self, input: &[u8]) -> DecodeError {
        let offset = self.offset_in(input);
        let Inner {
            message,
            field,
            kind,
            ..
        } = *self.0;
        DecodeError {
            message: if message.is_empty() { "input" } else { message },
            field,
            offset,
            kind,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = if self.0.message.is_empty() {
            "input"
        } else {
            self.0.message
        };
        write!(
            f,
            "{message}: field `{}` with {} bytes left: {}",
            self.0.field, self.0.remaining, self.0.kind
        )
    }
}

impl std::error::Error for Error {}

impl<'a> nom::error::ParseError<&'a [u8]> for Error {
    fn from_error_kind(input: &'a [u8], kind: nom::error::ErrorKind) -> Error {
        Error::new(input, "", DecodeErrorKind::Nom(kind))
    }

    fn append(_input: &'a [u8], _kind: nom::error::ErrorKind, other: Error) -> Error {
        // The innermost error says the most: keep it.
        other
    }
}

impl<'a> nom::error::ContextError<&'a [u8]> for Error {
    fn add_context(_input: &'a [u8], ctx: &'static str, other: Error) -> Error {
        if other.0.field.is_empty() {
            other.with_field(ctx)
        } else {
            other
        }
    }
}

impl<'a, E> nom::error::FromExternalError<&'a [u8], E> for Error {
    fn from_external_error(input: &'a [u8], kind: nom::error::ErrorKind, _e: E) -> Error {
        Error::new(input, "", DecodeErrorKind::Nom(kind))
    }
}

/// Runs `parser` on the whole of `input` and turns its error into a [`DecodeError`] with
/// the offset counted from the start of `input`, naming `message` if the parser did not.
/// Bytes the parser leaves are not checked here: message parsers check their own end.
pub fn run<'a, T, P>(
    message: &'static str,
    input: &'a [u8],
    mut parser: P,
) -> Result<T, DecodeError>
where
    P: nom::Parser<&'a [u8], Output = T, Error = Error>,
{
    match parser.parse(input) {
        Ok((_, value)) => Ok(value),
        Err(e) => Err(to_decode_error(message, input, e)),
    }
}

/// A nom error (of a parser run on `input`) as a [`DecodeError`].
#[cold]
pub(crate) fn to_decode_error(
    message: &'static str,
    input: &[u8],
    e: nom::Err<Error>,
) -> DecodeError {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => {
            let e = if e.message().is_empty() {
                e.in_message(message)
            } else {
                e
            };
            e.into_decode_error(input)
        }
        // The parsers of this crate work on complete input and never ask for more; a
        // caller's streaming parser might.
        nom::Err::Incomplete(needed) => DecodeError::new(
            message,
            "input",
            input.len(),
            DecodeErrorKind::Truncated {
                needed: match needed {
                    nom::Needed::Size(n) => n.get() as u64,
                    nom::Needed::Unknown => 1,
                },
                available: 0,
            },
        ),
    }
}

/// A nom `Error` for a field that needs `needed` bytes where `input` has fewer.
#[cold]
#[inline(never)]
pub(crate) fn truncated(input: &[u8], field: &'static str, needed: u64) -> nom::Err<Error> {
    nom::Err::Error(Error::new(
        input,
        field,
        DecodeErrorKind::Truncated {
            needed,
            available: input.len(),
        },
    ))
}

/// A nom `Error` at the start of `input`.
#[cold]
#[inline(never)]
pub(crate) fn fail(
    input: &[u8],
    field: impl Into<Cow<'static, str>>,
    kind: DecodeErrorKind,
) -> nom::Err<Error> {
    nom::Err::Error(Error::new(input, field, kind))
}

/// A nom `Error` where `remaining` bytes are left.
#[cold]
#[inline(never)]
pub(crate) fn fail_at(
    remaining: usize,
    field: impl Into<Cow<'static, str>>,
    kind: DecodeErrorKind,
) -> nom::Err<Error> {
    nom::Err::Error(Error::at_remaining(remaining, field, kind))
}

/// Applies `f` to the error inside a nom error (never called on success).
#[inline]
pub(crate) fn map_err(e: nom::Err<Error>, f: impl FnOnce(Error) -> Error) -> nom::Err<Error> {
    e.map(f)
}
