//! One result row ([`Row`]), its columns by number or name ([`ColumnIndex`]), and whole rows
//! into Rust types ([`FromRow`]).

use std::sync::Arc;

use crate::Value;
use crate::error::{Error, Result};
use crate::value::FromValue;

/// One result row: the values, and the column names shared by every row of the result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    /// A row of `values` under `columns` (as many names as values).
    pub fn new(columns: Arc<[String]>, values: Vec<Value>) -> Row {
        Row { columns, values }
    }

    /// The column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The values, owned.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True for a row without columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of a column, by number (`usize`) or name (`&str`).
    pub fn value(&self, column: impl ColumnIndex) -> Result<&Value> {
        let i = column.index_in(self)?;
        self.values.get(i).ok_or_else(|| column.missing(self))
    }

    /// A column by number (`usize`, from 0) or name (`&str`; the first column of that name),
    /// converted to `T`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use dqlite_client::{Row, Value};
    /// let row = Row::new(Arc::from(["id".to_string(), "name".to_string()]), vec![Value::Integer(7), Value::Null]);
    /// assert_eq!(row.get::<u32>(0)?, 7);
    /// assert_eq!(row.get::<Option<String>>("name")?, None);
    /// assert!(row.get::<i64>("nope").is_err());
    /// # Ok::<(), dqlite_client::Error>(())
    /// ```
    pub fn get<T: FromValue>(&self, column: impl ColumnIndex) -> Result<T> {
        let value = self.value(&column)?;
        T::from_value(value).map_err(|source| Error::Conversion {
            column: column.describe(),
            source,
        })
    }

    /// The column named `name` converted to `T` (the same as [`Row::get`] with a name).
    pub fn get_by_name<T: FromValue>(&self, name: &str) -> Result<T> {
        self.get(name)
    }

    /// The whole row as `T` (see [`FromRow`]).
    pub fn to<T: FromRow>(&self) -> Result<T> {
        T::from_row(self)
    }
}

/// A way to name a column of a [`Row`]: its number (`usize`) or its name (`&str`, `String`).
pub trait ColumnIndex {
    /// The column's position in `row`.
    fn index_in(&self, row: &Row) -> Result<usize>;

    /// The column as error messages name it (`3`, `"name"`).
    fn describe(&self) -> String;

    /// The error for a column `row` does not have.
    fn missing(&self, row: &Row) -> Error {
        Error::Usage(format!(
            "no column {} (the row has {}: {})",
            self.describe(),
            row.len(),
            row.columns().join(", ")
        ))
    }
}

impl ColumnIndex for usize {
    fn index_in(&self, row: &Row) -> Result<usize> {
        if *self < row.len() {
            Ok(*self)
        } else {
            Err(self.missing(row))
        }
    }

    fn describe(&self) -> String {
        self.to_string()
    }
}

impl ColumnIndex for &str {
    fn index_in(&self, row: &Row) -> Result<usize> {
        row.columns()
            .iter()
            .position(|c| c == self)
            .ok_or_else(|| self.missing(row))
    }

    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl ColumnIndex for String {
    fn index_in(&self, row: &Row) -> Result<usize> {
        self.as_str().index_in(row)
    }

    fn describe(&self) -> String {
        self.as_str().describe()
    }
}

impl<C: ColumnIndex + ?Sized> ColumnIndex for &C {
    fn index_in(&self, row: &Row) -> Result<usize> {
        (**self).index_in(row)
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// A whole row as a Rust value: implemented for tuples of up to 12 [`FromValue`] types (by
/// position; the row must have exactly as many columns), for [`Row`] and `Vec<Value>`, and
/// derived for structs by column name with `#[derive(FromRow)]` (feature `derive`).
///
/// ```
/// # use std::sync::Arc;
/// use dqlite_client::{FromRow, Row, Value};
/// let row = Row::new(Arc::from(["id".to_string(), "name".to_string()]), vec![Value::Integer(7), Value::Text("x".into())]);
/// let (id, name): (i64, String) = FromRow::from_row(&row)?;
/// assert_eq!((id, name.as_str()), (7, "x"));
/// assert!(<(i64,)>::from_row(&row).is_err()); // two columns, a 1-tuple
/// # Ok::<(), dqlite_client::Error>(())
/// ```
pub trait FromRow: Sized {
    /// The row as `Self`.
    fn from_row(row: &Row) -> Result<Self>;
}

impl FromRow for Row {
    fn from_row(row: &Row) -> Result<Row> {
        Ok(row.clone())
    }
}

impl FromRow for Vec<Value> {
    fn from_row(row: &Row) -> Result<Vec<Value>> {
        Ok(row.values.clone())
    }
}

/// Fails unless `row` has exactly `n` columns.
fn check_width(row: &Row, n: usize) -> Result<()> {
    if row.len() == n {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "the row has {} columns ({}), the tuple {n}",
            row.len(),
            row.columns().join(", ")
        )))
    }
}

macro_rules! from_row_tuple {
    ($n:expr; $($t:ident $i:tt),+) => {
        impl<$($t: FromValue),+> FromRow for ($($t,)+) {
            fn from_row(row: &Row) -> Result<Self> {
                check_width(row, $n)?;
                Ok(($(row.get::<$t>($i)?,)+))
            }
        }
    };
}
from_row_tuple!(1; A 0);
from_row_tuple!(2; A 0, B 1);
from_row_tuple!(3; A 0, B 1, C 2);
from_row_tuple!(4; A 0, B 1, C 2, D 3);
from_row_tuple!(5; A 0, B 1, C 2, D 3, E 4);
from_row_tuple!(6; A 0, B 1, C 2, D 3, E 4, F 5);
from_row_tuple!(7; A 0, B 1, C 2, D 3, E 4, F 5, G 6);
from_row_tuple!(8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
from_row_tuple!(9; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
from_row_tuple!(10; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
from_row_tuple!(11; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
from_row_tuple!(12; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize) -> Row {
        Row::new(
            (0..n).map(|i| format!("c{i}")).collect(),
            (0..n as i64).map(Value::Integer).collect(),
        )
    }

    #[test]
    fn tuples_up_to_twelve() {
        let r = row(12);
        let t: (
            u8,
            u16,
            u32,
            u64,
            i8,
            i16,
            i32,
            i64,
            usize,
            isize,
            f64,
            Value,
        ) = r.to().unwrap();
        assert_eq!(t.0, 0);
        assert_eq!(t.10, 10.0);
        assert_eq!(t.11, Value::Integer(11));
        assert!(r.to::<(i64, i64)>().is_err());
        let (a,): (String,) = Row::new(Arc::from(["a".to_string()]), vec![Value::Text("x".into())])
            .to()
            .unwrap();
        assert_eq!(a, "x");
    }

    #[test]
    fn columns_by_number_and_name() {
        let r = row(3);
        assert_eq!(r.get::<i64>(2).unwrap(), 2);
        assert_eq!(r.get::<i64>("c1").unwrap(), 1);
        assert_eq!(r.get::<i64>(String::from("c0")).unwrap(), 0);
        let e = r.get::<i64>(3).unwrap_err();
        assert!(e.to_string().contains("no column 3"), "{e}");
        let e = r.get::<String>("c2").unwrap_err();
        assert!(e.to_string().contains("column \"c2\""), "{e}");
        assert!(matches!(e, Error::Conversion { .. }));
        assert_eq!(r.value("c0").unwrap(), &Value::Integer(0));
    }
}
