//! SQL text: where the first statement of a text ends, whether a text is empty, and whether
//! a statement ends a transaction.

/// True if `sql` holds only whitespace and comments.
pub fn is_blank(sql: &str) -> bool {
    skip_blank(sql, 0) == sql.len()
}

/// Index of the first byte at or after `pos` that is not whitespace or inside a comment.
fn skip_blank(sql: &str, mut pos: usize) -> usize {
    let b = sql.as_bytes();
    while pos < b.len() {
        if b[pos].is_ascii_whitespace() {
            pos += 1;
        } else if b[pos..].starts_with(b"--") {
            match b[pos..].iter().position(|&c| c == b'\n') {
                Some(n) => pos += n + 1,
                None => return b.len(),
            }
        } else if b[pos..].starts_with(b"/*") {
            match sql[pos + 2..].find("*/") {
                Some(n) => pos += n + 4,
                None => return b.len(),
            }
        } else {
            break;
        }
    }
    pos
}

/// Byte offsets just after each `;` that is outside quotes and comments, in order, plus the
/// end of the text. The first statement of `sql` ends at one of these (a `CREATE TRIGGER`
/// body contains `;`, so the caller tries them in turn).
pub fn statement_ends(sql: &str) -> Vec<usize> {
    let b = sql.as_bytes();
    let mut ends = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'[' => {
                i += b[i..]
                    .iter()
                    .position(|&c| c == b']')
                    .unwrap_or(b.len() - i)
                    + 1;
            }
            b'-' if b[i..].starts_with(b"--") => {
                i += b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .unwrap_or(b.len() - i)
                    + 1;
            }
            b'/' if b[i..].starts_with(b"/*") => {
                i = sql[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
            }
            b';' => {
                i += 1;
                ends.push(i);
            }
            _ => i += 1,
        }
    }
    if ends.last() != Some(&b.len()) {
        ends.push(b.len());
    }
    ends
}

/// Splits off the first statement of `sql`: returns its end offset. `complete` says whether a
/// prefix is one whole statement (e.g. by preparing it); called only for prefixes that are
/// followed by more than whitespace and comments.
pub fn first_statement_end(sql: &str, mut complete: impl FnMut(&str) -> bool) -> usize {
    let ends = statement_ends(sql);
    for &end in &ends {
        if is_blank(&sql[end..]) || complete(&sql[..end]) {
            return end;
        }
    }
    sql.len()
}

/// How a statement ends a transaction, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEnd {
    /// `COMMIT` or `END` (with or without `TRANSACTION`).
    Commit,
    /// `ROLLBACK` of the whole transaction (not `ROLLBACK TO` a savepoint).
    Rollback,
}

/// The keywords at the start of `sql` (after whitespace and comments), upper-cased, at most
/// `n` of them; stops at the first character that is not part of a keyword.
fn leading_keywords(sql: &str, n: usize) -> Vec<String> {
    let mut words = Vec::new();
    let mut pos = 0;
    while words.len() < n {
        pos = skip_blank(sql, pos);
        let len = sql[pos..]
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        if len == 0 {
            break;
        }
        words.push(sql[pos..pos + len].to_ascii_uppercase());
        pos += len;
    }
    words
}

/// Whether the first statement of `sql` is a `COMMIT`/`END` or a whole-transaction
/// `ROLLBACK` (SQLite's grammar: `ROLLBACK [TRANSACTION] [TO [SAVEPOINT] name]`).
pub fn transaction_end(sql: &str) -> Option<TxEnd> {
    let words = leading_keywords(sql, 3);
    match words.first().map(String::as_str) {
        Some("COMMIT" | "END") => Some(TxEnd::Commit),
        Some("ROLLBACK") => {
            let next = match words.get(1).map(String::as_str) {
                Some("TRANSACTION") => words.get(2),
                _ => words.get(1),
            };
            (next.map(String::as_str) != Some("TO")).then_some(TxEnd::Rollback)
        }
        _ => None,
    }
}

/// Upper-cased words of `sql` (runs of ASCII letters and `_`), string literals included: a
/// conservative scan for keywords.
fn words(sql: &str) -> impl Iterator<Item = String> + '_ {
    sql.split(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
}

/// Whether running `sql` may change what belongs to its connection rather than to the
/// database: a PRAGMA, a temporary table, view, index or trigger, an attached database.
/// Conservative (any such word, even in a literal, counts).
pub fn touches_connection_state(sql: &str) -> bool {
    words(sql).any(|w| {
        matches!(
            w.as_str(),
            "PRAGMA" | "TEMP" | "TEMPORARY" | "ATTACH" | "DETACH"
        )
    })
}

/// Whether the first statement of `sql` is an INSERT, UPDATE, DELETE or REPLACE (possibly
/// after a WITH clause): one whose `changes` count is its own.
pub fn is_dml(sql: &str) -> bool {
    matches!(
        leading_keywords(sql, 1).first().map(String::as_str),
        Some("INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "WITH")
    )
}

/// Whether the first statement of `sql` may run inside a group commit (see the worker's
/// `group` module): not transaction control, not VACUUM (which cannot run inside a
/// transaction), nothing connection-local.
pub fn groupable(sql: &str) -> bool {
    let first = leading_keywords(sql, 1);
    !matches!(
        first.first().map(String::as_str),
        None | Some("BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "VACUUM")
    ) && !touches_connection_state(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_texts() {
        assert!(is_blank("  -- hi\n /* x */ \n"));
        assert!(!is_blank(" /* x */ SELECT 1"));
        assert!(is_blank("/* unterminated"));
    }

    #[test]
    fn ends_skip_quotes_and_comments() {
        let sql = "INSERT INTO t VALUES(';'); -- ;\nSELECT \"a;b\"; /* ; */";
        let ends = statement_ends(sql);
        assert_eq!(&sql[..ends[0]], "INSERT INTO t VALUES(';');");
        assert_eq!(&sql[ends[0]..ends[1]], " -- ;\nSELECT \"a;b\";");
        assert_eq!(*ends.last().unwrap_or(&0), sql.len());
    }

    #[test]
    fn trigger_bodies_need_the_completeness_check() {
        let sql = "CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END; SELECT 2";
        let end = first_statement_end(sql, |p| p.trim_end().ends_with("END;"));
        assert_eq!(
            &sql[..end],
            "CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END;"
        );
    }

    #[test]
    fn transaction_ends() {
        for sql in ["COMMIT", " commit transaction;", "END", "/* x */ end;"] {
            assert_eq!(transaction_end(sql), Some(TxEnd::Commit), "{sql}");
        }
        for sql in [
            "ROLLBACK",
            "rollback transaction",
            "-- c\n ROLLBACK; SELECT 1",
        ] {
            assert_eq!(transaction_end(sql), Some(TxEnd::Rollback), "{sql}");
        }
        for sql in [
            "ROLLBACK TO sp",
            "rollback transaction to savepoint sp",
            "SELECT 'COMMIT'",
            "COMMITTED",
            "",
            "RELEASE sp",
        ] {
            assert_eq!(transaction_end(sql), None, "{sql}");
        }
    }

    #[test]
    fn what_may_join_a_group_commit() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "update t set x = 2",
            "DELETE FROM t; SELECT 1",
            "CREATE TABLE u(x)",
        ] {
            assert!(groupable(sql), "{sql}");
        }
        for sql in [
            "BEGIN",
            "commit",
            "SAVEPOINT a",
            "RELEASE a",
            "VACUUM",
            "PRAGMA foreign_keys=OFF",
            "CREATE TEMP TABLE x(y)",
            "CREATE TEMPORARY VIEW v AS SELECT 1",
            "INSERT INTO temp.x VALUES (1)",
            "ATTACH 'x' AS y",
            "",
        ] {
            assert!(!groupable(sql), "{sql}");
        }
        assert!(touches_connection_state("pragma cache_size = 10"));
        assert!(!touches_connection_state(
            "INSERT INTO temperature VALUES (1)"
        ));
    }
}
