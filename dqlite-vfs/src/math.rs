//! SQLite's SQL math functions (`floor`, `sqrt`, `pow`, `ln`, …), registered on every
//! connection.
//!
//! SQLite has them only when it is compiled with `SQLITE_ENABLE_MATH_FUNCTIONS`. Debian's
//! libsqlite3, which C dqlite uses, is; the SQLite that `libsqlite3-sys` bundles is not, and a
//! build flag (`LIBSQLITE3_FLAGS`) would have to be set by every program that builds this crate.
//! So each connection gets them here instead, as application-defined functions written to give
//! the same results as SQLite's own (`func.c`, "SQLITE_ENABLE_MATH_FUNCTIONS"): the same
//! argument conversion (`sqlite3_value_numeric_type`: an integer stays an integer for
//! `ceil`/`floor`/`trunc`, numeric text counts as a number, anything else gives NULL), the same C
//! library calls, and NaN results turned into NULL by `sqlite3_result_double` as in SQLite. The
//! results are those of SQLite 3.40.1 (Debian 12's, under C dqlite 1.11), checked against it over
//! thousands of inputs; where newer SQLite computes differently (`log10`, `log2`), 3.40's way is
//! kept. If the linked SQLite has them built in, these definitions take precedence.

use std::ffi::{CStr, c_int, c_void};

use libsqlite3_sys as ffi;

// The C library's math functions, as SQLite calls them (Rust's own `acosh`, `asinh` and
// `atanh`, for one, are computed differently and can differ in the last bit).
unsafe extern "C" {
    safe fn exp(x: f64) -> f64;
    safe fn pow(x: f64, y: f64) -> f64;
    safe fn fmod(x: f64, y: f64) -> f64;
    safe fn acos(x: f64) -> f64;
    safe fn asin(x: f64) -> f64;
    safe fn atan(x: f64) -> f64;
    safe fn atan2(y: f64, x: f64) -> f64;
    safe fn cos(x: f64) -> f64;
    safe fn sin(x: f64) -> f64;
    safe fn tan(x: f64) -> f64;
    safe fn cosh(x: f64) -> f64;
    safe fn sinh(x: f64) -> f64;
    safe fn tanh(x: f64) -> f64;
    safe fn acosh(x: f64) -> f64;
    safe fn asinh(x: f64) -> f64;
    safe fn atanh(x: f64) -> f64;
    safe fn sqrt(x: f64) -> f64;
    safe fn log(x: f64) -> f64;
    safe fn ceil(x: f64) -> f64;
    safe fn floor(x: f64) -> f64;
    safe fn trunc(x: f64) -> f64;
}

extern "C" fn deg_to_rad(x: f64) -> f64 {
    x * (std::f64::consts::PI / 180.0)
}

extern "C" fn rad_to_deg(x: f64) -> f64 {
    x * (180.0 / std::f64::consts::PI)
}

/// `ceil`, `ceiling`, `floor`, `trunc`: integers are returned as they are.
const ROUNDING: &[(&CStr, extern "C" fn(f64) -> f64)] = &[
    (c"ceil", ceil),
    (c"ceiling", ceil),
    (c"floor", floor),
    (c"trunc", trunc),
];

/// One-argument functions of a real.
const UNARY: &[(&CStr, extern "C" fn(f64) -> f64)] = &[
    (c"exp", exp),
    (c"acos", acos),
    (c"asin", asin),
    (c"atan", atan),
    (c"cos", cos),
    (c"sin", sin),
    (c"tan", tan),
    (c"cosh", cosh),
    (c"sinh", sinh),
    (c"tanh", tanh),
    (c"acosh", acosh),
    (c"asinh", asinh),
    (c"atanh", atanh),
    (c"sqrt", sqrt),
    (c"radians", deg_to_rad),
    (c"degrees", rad_to_deg),
];

/// Two-argument functions of reals.
const BINARY: &[(&CStr, extern "C" fn(f64, f64) -> f64)] = &[
    (c"pow", pow),
    (c"power", pow),
    (c"mod", fmod),
    (c"atan2", atan2),
];

/// Base-10 logarithm as SQLite 3.40 (Debian 12's, under C dqlite) computes it: the natural
/// logarithm divided by ln 10, which is not always C's `log10` (`log10(1000)` is
/// 2.9999999999999996 there). Newer SQLite calls `log10`; C dqlite's results are the ones kept.
extern "C" fn log10_via_ln(x: f64) -> f64 {
    log(x) / std::f64::consts::LN_10
}

/// Base-2 logarithm as SQLite 3.40 computes it (see [`log10_via_ln`]).
extern "C" fn log2_via_ln(x: f64) -> f64 {
    log(x) / std::f64::consts::LN_2
}

/// One-argument logarithms: `ln`, and `log` (base 10, as in SQLite), `log10`, `log2`.
const LOGS: &[(&CStr, extern "C" fn(f64) -> f64)] = &[
    (c"ln", log),
    (c"log", log10_via_ln),
    (c"log10", log10_via_ln),
    (c"log2", log2_via_ln),
];

/// The signature of a scalar function's implementation.
type XFunc = unsafe extern "C" fn(*mut ffi::sqlite3_context, c_int, *mut *mut ffi::sqlite3_value);

/// Registers every math function on `db`, replacing any of the same name and arity.
///
/// # Safety
/// `db` must be a valid, open connection handle, used only by the calling thread meanwhile.
pub(crate) unsafe fn register(db: *mut ffi::sqlite3) -> Result<(), c_int> {
    let mut functions: Vec<(&CStr, c_int, usize, XFunc)> = Vec::new();
    functions.extend(
        ROUNDING
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (*name, 1, i, rounding as XFunc)),
    );
    functions.extend(
        UNARY
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (*name, 1, i, unary as XFunc)),
    );
    functions.extend(
        BINARY
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (*name, 2, i, binary as XFunc)),
    );
    functions.extend(
        LOGS.iter()
            .enumerate()
            .map(|(i, (name, _))| (*name, 1, i, log_of as XFunc)),
    );
    functions.push((c"log", 2, 0, log_base as XFunc));
    functions.push((c"pi", 0, 0, pi as XFunc));
    let flags = ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC | ffi::SQLITE_INNOCUOUS;
    for (name, args, index, x_func) in functions {
        // SAFETY: `db` is valid per the caller; `name` is NUL-terminated and 'static; the user
        // data is a table index, not a pointer, so nothing needs freeing (no destructor).
        let rc = unsafe {
            ffi::sqlite3_create_function_v2(
                db,
                name.as_ptr(),
                args,
                flags,
                index as *mut c_void,
                Some(x_func),
                None,
                None,
                None,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
    }
    Ok(())
}

/// The table index registered as the function's user data.
///
/// # Safety
/// `ctx` is the context SQLite passed to the function.
unsafe fn index(ctx: *mut ffi::sqlite3_context) -> usize {
    // SAFETY: valid context per the caller; the user data is the index given at registration.
    unsafe { ffi::sqlite3_user_data(ctx) as usize }
}

/// Argument `i` as SQLite's math functions see it: its numeric type after numeric affinity
/// (`SQLITE_INTEGER`, `SQLITE_FLOAT`, or something else, which makes the result NULL).
///
/// # Safety
/// `argv` holds at least `i + 1` values, as SQLite passes them to a function of that arity.
unsafe fn arg(argv: *mut *mut ffi::sqlite3_value, i: usize) -> *mut ffi::sqlite3_value {
    // SAFETY: in bounds per the caller.
    unsafe { *argv.add(i) }
}

/// Whether `v`, after numeric affinity, is an integer or a real (and not NULL, text, blob).
///
/// # Safety
/// `v` is a value SQLite passed to the running function.
unsafe fn is_number(v: *mut ffi::sqlite3_value) -> bool {
    // SAFETY: valid value per the caller.
    let t = unsafe { ffi::sqlite3_value_numeric_type(v) };
    t == ffi::SQLITE_INTEGER || t == ffi::SQLITE_FLOAT
}

unsafe extern "C" fn rounding(
    ctx: *mut ffi::sqlite3_context,
    _argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: registered with one argument; SQLite passes a valid context and values.
    unsafe {
        let v = arg(argv, 0);
        match ffi::sqlite3_value_numeric_type(v) {
            ffi::SQLITE_INTEGER => ffi::sqlite3_result_int64(ctx, ffi::sqlite3_value_int64(v)),
            ffi::SQLITE_FLOAT => {
                if let Some((_, f)) = ROUNDING.get(index(ctx)) {
                    ffi::sqlite3_result_double(ctx, f(ffi::sqlite3_value_double(v)));
                }
            }
            // The result stays NULL.
            _ => {}
        }
    }
}

unsafe extern "C" fn unary(
    ctx: *mut ffi::sqlite3_context,
    _argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: registered with one argument; SQLite passes a valid context and values.
    unsafe {
        let v = arg(argv, 0);
        if !is_number(v) {
            return;
        }
        if let Some((_, f)) = UNARY.get(index(ctx)) {
            ffi::sqlite3_result_double(ctx, f(ffi::sqlite3_value_double(v)));
        }
    }
}

unsafe extern "C" fn binary(
    ctx: *mut ffi::sqlite3_context,
    _argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: registered with two arguments; SQLite passes a valid context and values.
    unsafe {
        let (a, b) = (arg(argv, 0), arg(argv, 1));
        if !is_number(a) || !is_number(b) {
            return;
        }
        if let Some((_, f)) = BINARY.get(index(ctx)) {
            let r = f(ffi::sqlite3_value_double(a), ffi::sqlite3_value_double(b));
            ffi::sqlite3_result_double(ctx, r);
        }
    }
}

unsafe extern "C" fn log_of(
    ctx: *mut ffi::sqlite3_context,
    _argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: registered with one argument; SQLite passes a valid context and values.
    unsafe {
        let v = arg(argv, 0);
        if !is_number(v) {
            return;
        }
        let x = ffi::sqlite3_value_double(v);
        if x <= 0.0 {
            return;
        }
        if let Some((_, f)) = LOGS.get(index(ctx)) {
            ffi::sqlite3_result_double(ctx, f(x));
        }
    }
}

/// `log(B, X)`: the base-B logarithm of X. As in SQLite, the type check of the second step looks
/// at B again (not X), so a non-numeric X reads as 0.0 and gives NULL like any X <= 0.
unsafe extern "C" fn log_base(
    ctx: *mut ffi::sqlite3_context,
    _argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: registered with two arguments; SQLite passes a valid context and values.
    unsafe {
        let (base, v) = (arg(argv, 0), arg(argv, 1));
        if !is_number(base) {
            return;
        }
        let b = ffi::sqlite3_value_double(base);
        if b <= 0.0 {
            return;
        }
        let b = log(b);
        if b <= 0.0 {
            return;
        }
        let x = ffi::sqlite3_value_double(v);
        if x <= 0.0 {
            return;
        }
        ffi::sqlite3_result_double(ctx, log(x) / b);
    }
}

unsafe extern "C" fn pi(
    ctx: *mut ffi::sqlite3_context,
    _argc: c_int,
    _argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: SQLite passes a valid context.
    unsafe { ffi::sqlite3_result_double(ctx, std::f64::consts::PI) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rusqlite::types::Value;

    /// A plain in-memory connection with the functions registered.
    fn conn() -> rusqlite::Connection {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        // SAFETY: the handle is valid and used by this thread only.
        unsafe { super::register(c.handle()) }.unwrap();
        c
    }

    fn eval(c: &rusqlite::Connection, expr: &str) -> Value {
        c.query_row(&format!("SELECT {expr}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn results_match_sqlites_math_functions() {
        let c = conn();
        // Expected values are what SQLite 3.40.1 (Debian 12's libsqlite3, under C dqlite 1.11)
        // answers; the rounding functions keep integers and numeric text as SQLite does.
        let cases: &[(&str, Value)] = &[
            ("floor(2.5)", Value::Real(2.0)),
            ("sqrt(16)", Value::Real(4.0)),
            ("floor(-2.5)", Value::Real(-3.0)),
            ("ceil(2.1)", Value::Real(3.0)),
            ("ceiling(-2.1)", Value::Real(-2.0)),
            ("trunc(-2.7)", Value::Real(-2.0)),
            ("floor(7)", Value::Integer(7)),
            ("ceil(9223372036854775807)", Value::Integer(i64::MAX)),
            ("floor('2.5')", Value::Real(2.0)),
            ("floor('3.0')", Value::Real(3.0)),
            ("floor(' 12 ')", Value::Integer(12)),
            ("floor('abc')", Value::Null),
            ("floor(x'00')", Value::Null),
            ("floor(NULL)", Value::Null),
            ("sqrt(-1)", Value::Null),
            ("sqrt('abc')", Value::Null),
            ("pow(2, 10)", Value::Real(1024.0)),
            ("power(2, 0.5)", Value::Real(std::f64::consts::SQRT_2)),
            ("mod(7, 3)", Value::Real(1.0)),
            ("mod(-7, 3)", Value::Real(-1.0)),
            ("mod(7, 0)", Value::Null),
            ("ln(1)", Value::Real(0.0)),
            ("log(100)", Value::Real(2.0)),
            ("log10(1000)", Value::Real(2.9999999999999996)),
            ("log2(8)", Value::Real(3.0)),
            ("log(2, 8)", Value::Real(3.0)),
            ("log(1, 8)", Value::Null),
            ("log(0)", Value::Null),
            ("log(-1)", Value::Null),
            ("log(2, 'x')", Value::Null),
            ("exp(0)", Value::Real(1.0)),
            ("pi()", Value::Real(std::f64::consts::PI)),
            ("degrees(pi())", Value::Real(180.0)),
            ("radians(180)", Value::Real(std::f64::consts::PI)),
            ("atan2(1, 1)", Value::Real(std::f64::consts::FRAC_PI_4)),
            ("cos(0)", Value::Real(1.0)),
            ("acos(2)", Value::Null),
            ("atanh(0)", Value::Real(0.0)),
            ("acosh(2)", Value::Real(1.3169578969248166)),
            ("asinh(1)", Value::Real(0.881373587019543)),
            ("atanh(0.5)", Value::Real(0.5493061443340548)),
            ("log(3, 10)", Value::Real(2.095903274289385)),
        ];
        for (expr, want) in cases {
            assert_eq!(&eval(&c, expr), want, "SELECT {expr}");
        }
    }

    #[test]
    fn usable_where_deterministic_functions_are_required() {
        let c = conn();
        c.execute_batch(
            "CREATE TABLE t(x REAL, f AS (floor(x))); CREATE INDEX t_sqrt ON t(sqrt(x));
             INSERT INTO t(x) VALUES (2.5), (16)",
        )
        .unwrap();
        let v: Vec<(f64, f64)> = c
            .prepare("SELECT f, sqrt(x) FROM t ORDER BY x")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(v, [(2.0, 2.5f64.sqrt()), (16.0, 4.0)]);
    }
}
