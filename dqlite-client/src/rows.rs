//! Result rows, streamed batch by batch.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use futures::future::BoxFuture;

use crate::codec::Batch;
use crate::database::Database;
use crate::error::{Error, Result};
use crate::value::{FromValue, Value};

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
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

    /// Column `index` converted to `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T> {
        self.values
            .get(index)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "column index {index} out of range ({} columns)",
                    self.values.len()
                ))
            })?
            .get(index)
    }

    /// The column named `name` converted to `T`.
    pub fn get_by_name<T: FromValue>(&self, name: &str) -> Result<T> {
        let index = self
            .columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| Error::Usage(format!("no column named {name:?}")))?;
        self.get(index)
    }
}

type Pending<'a> = BoxFuture<'a, (&'a mut Database, Result<Batch>)>;

enum State<'a> {
    Idle(&'a mut Database),
    Reading(Pending<'a>),
    Gone,
}

/// The rows of a query, as a [`futures::Stream`] of [`Row`]s.
///
/// The server pushes batches of about 4 KiB on its own until the last one; rows are decoded
/// batch by batch as the stream is polled, so memory stays bounded by one batch. If the stream
/// is dropped before its end, the rest is drained (INTERRUPT, discard until EMPTY) before the
/// database's next request; [`Rows::interrupt`] does it at once.
pub struct Rows<'a> {
    columns: Arc<[String]>,
    buffered: VecDeque<Vec<Value>>,
    more: bool,
    state: State<'a>,
    failed: bool,
    sql: String,
}

impl std::fmt::Debug for Rows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("columns", &self.columns)
            .field("buffered", &self.buffered.len())
            .field("more", &self.more)
            .field("sql", &self.sql)
            .finish_non_exhaustive()
    }
}

impl<'a> Rows<'a> {
    pub(crate) fn new(db: &'a mut Database, batch: Batch, sql: String) -> Rows<'a> {
        Rows {
            columns: batch.columns.into(),
            more: batch.more,
            buffered: batch.rows.into(),
            state: State::Idle(db),
            failed: false,
            sql,
        }
    }

    /// The column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The next row, or `None` at the end.
    pub async fn next_row(&mut self) -> Option<Result<Row>> {
        futures::StreamExt::next(self).await
    }

    /// Read every remaining row.
    pub async fn collect_all(mut self) -> Result<Vec<Row>> {
        let mut out = Vec::with_capacity(self.buffered.len());
        while let Some(r) = self.next_row().await {
            out.push(r?);
        }
        Ok(out)
    }

    /// Stop reading: tell the server (INTERRUPT) and discard the rest of the result.
    pub async fn interrupt(mut self) -> Result<()> {
        self.buffered.clear();
        let db = match std::mem::replace(&mut self.state, State::Gone) {
            State::Idle(db) => db,
            State::Reading(fut) => fut.await.0,
            State::Gone => return Ok(()),
        };
        db.drain().await
    }
}

impl Stream for Rows<'_> {
    type Item = Result<Row>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Row>>> {
        let this = &mut *self;
        loop {
            if let Some(values) = this.buffered.pop_front() {
                return Poll::Ready(Some(Ok(Row {
                    columns: this.columns.clone(),
                    values,
                })));
            }
            if !this.more || this.failed {
                return Poll::Ready(None);
            }
            match std::mem::replace(&mut this.state, State::Gone) {
                State::Idle(db) => {
                    this.state = State::Reading(Box::pin(async move {
                        let r = db.next_batch("QUERY").await;
                        (db, r)
                    }));
                }
                State::Reading(mut fut) => match fut.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = State::Reading(fut);
                        return Poll::Pending;
                    }
                    Poll::Ready((db, res)) => {
                        this.state = State::Idle(db);
                        match res {
                            Ok(batch) => {
                                this.more = batch.more;
                                this.buffered.extend(batch.rows);
                            }
                            Err(e) => {
                                this.failed = true;
                                return Poll::Ready(Some(Err(e)));
                            }
                        }
                    }
                },
                State::Gone => return Poll::Ready(None),
            }
        }
    }
}
