//! Statement parameters: [`Params`] and the [`params!`](crate::params!) macro.

use crate::Value;

/// Parameters for a statement: anything that turns into a list of [`Value`]s, in placeholder
/// order.
///
/// Implemented for `()` (no parameters), tuples of up to 16 elements, arrays, slices, `Vec`s
/// (and references to arrays and `Vec`s) of anything `Into<Value>`. Use the
/// [`params!`](crate::params!) macro for a list of mixed types of any length.
///
/// ```
/// use dqlite_client::{Params, Value, params};
/// assert_eq!((1, "a", 2.5).into_values().len(), 3);
/// assert_eq!([1i64, 2, 3].into_values()[2], Value::Integer(3));
/// let ids = vec![4u32, 5];
/// assert_eq!(ids.as_slice().into_values(), [Value::Integer(4), Value::Integer(5)]);
/// assert_eq!(vec!["x".to_string()].into_values(), [Value::Text("x".into())]);
/// assert_eq!(params![1, None::<i64>].into_values()[1], Value::Null);
/// assert!(().into_values().is_empty());
/// ```
pub trait Params {
    /// The values, in placeholder order.
    fn into_values(self) -> Vec<Value>;
}

impl Params for () {
    fn into_values(self) -> Vec<Value> {
        Vec::new()
    }
}

impl<T: Into<Value>> Params for Vec<T> {
    fn into_values(self) -> Vec<Value> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<T: Into<Value> + Clone> Params for &Vec<T> {
    fn into_values(self) -> Vec<Value> {
        self.as_slice().into_values()
    }
}

impl<T: Into<Value> + Clone> Params for &[T] {
    fn into_values(self) -> Vec<Value> {
        self.iter().cloned().map(Into::into).collect()
    }
}

impl<T: Into<Value>, const N: usize> Params for [T; N] {
    fn into_values(self) -> Vec<Value> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<T: Into<Value> + Clone, const N: usize> Params for &[T; N] {
    fn into_values(self) -> Vec<Value> {
        self.as_slice().into_values()
    }
}

macro_rules! params_tuple {
    ($($n:ident),+) => {
        impl<$($n: Into<Value>),+> Params for ($($n,)+) {
            #[allow(non_snake_case)]
            fn into_values(self) -> Vec<Value> {
                let ($($n,)+) = self;
                vec![$($n.into()),+]
            }
        }
    };
}
params_tuple!(A);
params_tuple!(A, B);
params_tuple!(A, B, C);
params_tuple!(A, B, C, D);
params_tuple!(A, B, C, D, E);
params_tuple!(A, B, C, D, E, F);
params_tuple!(A, B, C, D, E, F, G);
params_tuple!(A, B, C, D, E, F, G, H);
params_tuple!(A, B, C, D, E, F, G, H, I);
params_tuple!(A, B, C, D, E, F, G, H, I, J);
params_tuple!(A, B, C, D, E, F, G, H, I, J, K);
params_tuple!(A, B, C, D, E, F, G, H, I, J, K, L);
params_tuple!(A, B, C, D, E, F, G, H, I, J, K, L, M);
params_tuple!(A, B, C, D, E, F, G, H, I, J, K, L, M, N);
params_tuple!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O);
params_tuple!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P);

/// Build a `Vec<Value>` of parameters from expressions of mixed types.
///
/// ```
/// use dqlite_client::{params, Value};
/// let p = params![1, "two", 3.0, None::<i64>, true];
/// assert_eq!(p[1], Value::Text("two".into()));
/// assert_eq!(p[3], Value::Null);
/// assert_eq!(p[4], Value::Boolean(1));
/// ```
#[macro_export]
macro_rules! params {
    () => { ::std::vec::Vec::<$crate::Value>::new() };
    ($($v:expr),+ $(,)?) => { ::std::vec![$($crate::Value::from($v)),+] };
}
