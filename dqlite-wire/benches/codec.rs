//! Throughput of the hot paths: ROWS batches (1,000 rows × 5 mixed columns) and a typical
//! EXEC_SQL with 10 parameters, decode and encode, in body bytes per second.
//!
//! Time is the benchmark thread's **CPU time** (not wall time), so that the figures stay
//! meaningful on a machine shared with other jobs. Run with a short measurement time:
//! `cargo bench -p dqlite-wire --bench codec -- --warm-up-time 1 --measurement-time 3`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dqlite_wire::{
    Header, Params, Request, RequestType, Response, ResponseContext, Row, RowsBatch, RowsBatchRef,
    RowsEncoder, RowsEnd, RowsReader, Value,
};

/// CPU time of the current thread.
struct CpuTime;

impl Measurement for CpuTime {
    type Intermediate = ThreadTime;
    type Value = Duration;

    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }
    fn end(&self, start: ThreadTime) -> Duration {
        start.elapsed()
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Formats nanoseconds and throughputs like criterion's wall-time formatter.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else if typical < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per, units): (f64, [&'static str; 4]) = match throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                (*n as f64, ["B/s", "KiB/s", "MiB/s", "GiB/s"])
            }
            Throughput::Bits(n) => (*n as f64, ["b/s", "Kib/s", "Mib/s", "Gib/s"]),
            Throughput::Elements(n) => (*n as f64, ["elem/s", "Kelem/s", "Melem/s", "Gelem/s"]),
            _ => (1.0, ["/s", "K/s", "M/s", "G/s"]),
        };
        let rate = per * 1e9 / typical;
        let (scale, unit) = if rate < 1024.0 {
            (1.0, units[0])
        } else if rate < 1024.0 * 1024.0 {
            (1024.0, units[1])
        } else if rate < 1024.0 * 1024.0 * 1024.0 {
            (1024.0 * 1024.0, units[2])
        } else {
            (1024.0 * 1024.0 * 1024.0, units[3])
        };
        values.iter_mut().for_each(|v| *v = per * 1e9 / *v / scale);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn rows() -> Vec<Row> {
    (0..1000i64)
        .map(|i| {
            vec![
                Value::Integer(i * 7919),
                Value::Float(i as f64 * 0.5),
                Value::Text(format!("name-{i:06}")),
                Value::Blob(vec![(i % 251) as u8; 16]),
                if i % 3 == 0 {
                    Value::Null
                } else {
                    Value::Boolean((i % 2) as u64)
                },
            ]
        })
        .collect()
}

fn exec_sql() -> Request {
    Request::ExecSql {
        db_id: 0,
        sql: "INSERT INTO items(a, b, c, d, e, f, g, h, i, j) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            .into(),
        params: Params::new(vec![
            Value::Integer(1),
            Value::Integer(-42),
            Value::Float(3.25),
            Value::Text("apple".into()),
            Value::Text("a somewhat longer text value".into()),
            Value::Blob(vec![0xab; 24]),
            Value::Null,
            Value::Boolean(1),
            Value::Iso8601("2024-05-06 07:08:09".into()),
            Value::Integer(i64::MAX),
        ]),
    }
}

fn bench_rows(c: &mut Criterion<CpuTime>) {
    let columns = ["id", "score", "name", "data", "flag"];
    let batch = Response::Rows(RowsBatch {
        columns: columns.iter().map(|s| s.to_string()).collect(),
        rows: rows(),
        end: RowsEnd::Done,
    });
    let message = batch.to_bytes().unwrap();
    let header = Header::from_prefix(&message).unwrap();
    let body = message.slice(8..);
    let ctx = ResponseContext::new(RequestType::QuerySql);

    let mut g = c.benchmark_group("rows_1000x5");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("decode_owned", |b| {
        b.iter(|| Response::decode(&header, black_box(&body), &ctx).unwrap())
    });
    // The whole batch at once without copying: one vector of borrowed values for all rows.
    g.bench_function("decode_borrowed", |b| {
        b.iter(|| RowsBatchRef::decode(black_box(&body)).unwrap())
    });
    g.bench_function("decode_streaming", |b| {
        b.iter(|| {
            let mut reader = RowsReader::new(black_box(&body)).unwrap();
            let mut row = Vec::with_capacity(5);
            let mut n = 0;
            while reader.next_row_into(&mut row).unwrap() {
                n += row.len();
            }
            n
        })
    });
    let mut buf = BytesMut::with_capacity(message.len());
    g.bench_function("encode_response", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&batch).encode(&mut buf).unwrap();
        })
    });
    g.finish();

    // The server path: RowsEncoder with C's 4096-byte budget, so the 1,000 rows go out as
    // about 18 batches; throughput counts the bodies of all of them.
    let rows = rows();
    let encode_all = |enc: &mut RowsEncoder| {
        let mut batches = Vec::with_capacity(32);
        let mut it = rows.iter();
        loop {
            if enc.is_full() {
                batches.push(enc.finish(RowsEnd::Part).unwrap());
            }
            match it.next() {
                Some(row) => enc.push_row(row).unwrap(),
                None => break,
            }
        }
        batches.push(enc.finish(RowsEnd::Done).unwrap());
        batches
    };
    let mut enc = RowsEncoder::new(&columns).unwrap();
    let batches = encode_all(&mut enc);
    let body_bytes: usize = batches.iter().map(|b| b.len() - 8).sum();
    let mut g = c.benchmark_group("rows_1000x5_batched");
    g.throughput(Throughput::Bytes(body_bytes as u64));
    g.bench_function("encode_rows_encoder", |b| b.iter(|| encode_all(&mut enc)));
    g.bench_function("decode_streaming", |b| {
        b.iter(|| {
            let mut n = 0;
            let mut row = Vec::with_capacity(5);
            for batch in &batches {
                let mut reader = RowsReader::new(black_box(&batch[8..])).unwrap();
                while reader.next_row_into(&mut row).unwrap() {
                    n += row.len();
                }
            }
            n
        })
    });
    g.finish();
}

fn bench_exec_sql(c: &mut Criterion<CpuTime>) {
    let request = exec_sql();
    let message = request.to_bytes().unwrap();
    let header = Header::from_prefix(&message).unwrap();
    let body = message.slice(8..);
    let mut g = c.benchmark_group("exec_sql_10_params");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| Request::decode(&header, black_box(&body)).unwrap())
    });
    let mut buf = BytesMut::with_capacity(message.len());
    g.bench_function("encode", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&request).encode(&mut buf).unwrap();
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench_rows, bench_exec_sql
}
criterion_main!(benches);
