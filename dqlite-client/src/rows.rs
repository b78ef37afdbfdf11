//! Result rows of a query, streamed batch by batch ([`Rows`]).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use futures::future::BoxFuture;

use crate::Value;
use crate::codec::Batch;
use crate::database::Database;
use crate::error::Result;
use crate::row::{FromRow, Row};

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

    /// Read every remaining row as `T` (see [`FromRow`]).
    pub async fn collect_as<T: FromRow>(mut self) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(self.buffered.len());
        while let Some(r) = self.next_row().await {
            out.push(T::from_row(&r?)?);
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
                return Poll::Ready(Some(Ok(Row::new(this.columns.clone(), values))));
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
