//! Value parsers (§3.1): one value of a known type, borrowed or owned, and type codes.

use super::error::{IResult, fail_at};
use super::primitive::{blob, text, u64};
use crate::error::DecodeErrorKind;
use crate::value::{Value, ValueRef, ValueType};

/// The value type with wire code `code`, or an `UnknownValueType` error placed where
/// `remaining` bytes of the input are left (the position of the code).
#[inline]
pub fn value_type_at(
    code: u8,
    remaining: usize,
    field: impl FnOnce() -> String,
) -> Result<ValueType, nom::Err<super::Error>> {
    match ValueType::from_code(code) {
        Some(t) => Ok(t),
        None => Err(fail_at(
            remaining,
            field(),
            DecodeErrorKind::UnknownValueType(code),
        )),
    }
}

/// A one-byte value type code.
#[inline]
pub fn value_type<'a>(field: &'static str) -> impl Fn(&'a [u8]) -> IResult<'a, ValueType> {
    move |input: &'a [u8]| {
        let (rest, code) = super::primitive::u8(field)(input)?;
        let ty = value_type_at(code, input.len(), || field.to_owned())?;
        Ok((rest, ty))
    }
}

/// One value of type `ty`, borrowing texts and blobs from the input.
#[inline]
pub fn value<'a>(
    ty: ValueType,
    field: &'static str,
) -> impl Fn(&'a [u8]) -> IResult<'a, ValueRef<'a>> {
    move |input| {
        Ok(match ty {
            ValueType::Integer => {
                let (rest, v) = u64(field)(input)?;
                (rest, ValueRef::Integer(v as i64))
            }
            ValueType::Float => {
                let (rest, v) = u64(field)(input)?;
                (rest, ValueRef::Float(f64::from_bits(v)))
            }
            ValueType::Text => {
                let (rest, v) = text(field)(input)?;
                (rest, ValueRef::Text(v))
            }
            ValueType::Blob => {
                let (rest, v) = blob(field)(input)?;
                (rest, ValueRef::Blob(v))
            }
            ValueType::Null => {
                // The word's content is ignored, as the C server does.
                let (rest, _) = u64(field)(input)?;
                (rest, ValueRef::Null)
            }
            ValueType::UnixTime => {
                let (rest, v) = u64(field)(input)?;
                (rest, ValueRef::UnixTime(v as i64))
            }
            ValueType::Iso8601 => {
                let (rest, v) = text(field)(input)?;
                (rest, ValueRef::Iso8601(v))
            }
            ValueType::Boolean => {
                let (rest, v) = u64(field)(input)?;
                (rest, ValueRef::Boolean(v))
            }
        })
    }
}

/// One value of type `ty`, copied into an owned [`Value`].
#[inline]
pub fn value_owned<'a>(
    ty: ValueType,
    field: &'static str,
) -> impl Fn(&'a [u8]) -> IResult<'a, Value> {
    move |input| {
        Ok(match ty {
            ValueType::Integer => {
                let (rest, v) = u64(field)(input)?;
                (rest, Value::Integer(v as i64))
            }
            ValueType::Float => {
                let (rest, v) = u64(field)(input)?;
                (rest, Value::Float(f64::from_bits(v)))
            }
            ValueType::Text => {
                let (rest, v) = text(field)(input)?;
                (rest, Value::Text(v.to_owned()))
            }
            ValueType::Blob => {
                let (rest, v) = blob(field)(input)?;
                (rest, Value::Blob(v.to_vec()))
            }
            ValueType::Null => {
                let (rest, _) = u64(field)(input)?;
                (rest, Value::Null)
            }
            ValueType::UnixTime => {
                let (rest, v) = u64(field)(input)?;
                (rest, Value::UnixTime(v as i64))
            }
            ValueType::Iso8601 => {
                let (rest, v) = text(field)(input)?;
                (rest, Value::Iso8601(v.to_owned()))
            }
            ValueType::Boolean => {
                let (rest, v) = u64(field)(input)?;
                (rest, Value::Boolean(v))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_borrowed_and_owned() {
        let word = 7u64.to_le_bytes();
        for ty in [
            ValueType::Integer,
            ValueType::Float,
            ValueType::Null,
            ValueType::UnixTime,
            ValueType::Boolean,
        ] {
            let (rest, v) = value(ty, "v")(&word).unwrap();
            assert!(rest.is_empty());
            assert_eq!(v.value_type(), ty);
            assert_eq!(value_owned(ty, "v")(&word).unwrap().1, v.to_value());
        }
        let t = b"hi\0\0\0\0\0\0";
        assert_eq!(
            value(ValueType::Text, "v")(t).unwrap().1,
            ValueRef::Text("hi")
        );
        assert_eq!(
            value_owned(ValueType::Iso8601, "v")(t).unwrap().1,
            Value::Iso8601("hi".into())
        );
        assert!(value(ValueType::Blob, "v")(t).is_err());
        let e = value_type("ty")(&[6]).unwrap_err();
        assert!(
            matches!(e, nom::Err::Error(e) if e.kind() == &DecodeErrorKind::UnknownValueType(6))
        );
    }
}
