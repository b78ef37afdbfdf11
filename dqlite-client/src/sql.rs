//! A small SQL scanner: enough lexing to split statements on `;` correctly (never inside
//! quotes, comments or a trigger body) and to tell which statements return rows.
//!
//! The servers run one statement per QUERY, and the shell must know whether to send a statement
//! as a query or an exec; this module keeps that knowledge in one place.

/// One lexical token of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A bare word (keyword or identifier), uppercased.
    Word(String),
    /// A statement separator.
    Semicolon,
    /// Anything else (quoted strings/identifiers, numbers glued to words, punctuation).
    Other,
}

/// Lexer state carried across calls.
struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    /// An unterminated quote or block comment reached the end of input.
    pub open: bool,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Self {
        Lexer {
            s: s.as_bytes(),
            i: 0,
            open: false,
        }
    }

    /// The next token and the byte offset just after it.
    fn next_token(&mut self) -> Option<(Token, usize)> {
        let s = self.s;
        loop {
            let c = *s.get(self.i)?;
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => self.i += 1,
                b'-' if s.get(self.i + 1) == Some(&b'-') => {
                    while self.i < s.len() && s[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                b'/' if s.get(self.i + 1) == Some(&b'*') => {
                    self.i += 2;
                    loop {
                        if self.i + 1 >= s.len() {
                            self.i = s.len();
                            self.open = true;
                            break;
                        }
                        if s[self.i] == b'*' && s[self.i + 1] == b'/' {
                            self.i += 2;
                            break;
                        }
                        self.i += 1;
                    }
                }
                b';' => {
                    self.i += 1;
                    return Some((Token::Semicolon, self.i));
                }
                b'\'' | b'"' | b'`' | b'[' => {
                    let close = if c == b'[' { b']' } else { c };
                    self.i += 1;
                    loop {
                        if self.i >= s.len() {
                            self.open = true;
                            break;
                        }
                        if s[self.i] == close {
                            // A doubled quote is an escaped quote (not for brackets).
                            if close != b']' && s.get(self.i + 1) == Some(&close) {
                                self.i += 2;
                                continue;
                            }
                            self.i += 1;
                            break;
                        }
                        self.i += 1;
                    }
                    return Some((Token::Other, self.i));
                }
                c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                    let start = self.i;
                    while self.i < s.len()
                        && (s[self.i].is_ascii_alphanumeric()
                            || s[self.i] == b'_'
                            || s[self.i] == b'$'
                            || s[self.i] >= 0x80)
                    {
                        self.i += 1;
                    }
                    let w = String::from_utf8_lossy(&s[start..self.i]).to_ascii_uppercase();
                    return Some((Token::Word(w), self.i));
                }
                _ => {
                    self.i += 1;
                    return Some((Token::Other, self.i));
                }
            }
        }
    }
}

/// Tracks one statement's words to know whether a `;` ends it: inside `CREATE TRIGGER … BEGIN`
/// only `END;` does.
#[derive(Default)]
struct StatementState {
    words: usize,
    first_create: bool,
    trigger: bool,
    last_word_end: bool,
    has_content: bool,
}

impl StatementState {
    fn see(&mut self, t: &Token) {
        self.has_content = true;
        if let Token::Word(w) = t {
            if self.words == 0 && w == "CREATE" {
                self.first_create = true;
            }
            if self.first_create && self.words < 4 && w == "TRIGGER" {
                self.trigger = true;
            }
            self.words += 1;
            self.last_word_end = w == "END";
        } else {
            self.last_word_end = false;
        }
    }

    fn semicolon_ends(&self) -> bool {
        !self.trigger || self.last_word_end
    }
}

/// Split SQL text into statements (each trimmed, without its final `;`; empty statements and
/// comment-only pieces dropped). Semicolons inside quotes, comments and trigger bodies do not
/// split.
///
/// ```
/// let s = dqlite_client::sql::split_statements("INSERT INTO t VALUES('a;b'); -- c;\nSELECT 1;");
/// assert_eq!(s, vec!["INSERT INTO t VALUES('a;b')", "-- c;\nSELECT 1"]);
/// ```
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lx = Lexer::new(sql);
    let mut start = 0;
    let mut st = StatementState::default();
    while let Some((t, end)) = lx.next_token() {
        if t == Token::Semicolon && st.semicolon_ends() {
            if st.has_content {
                out.push(sql[start..end - 1].trim().to_owned());
            }
            start = end;
            st = StatementState::default();
        } else if t != Token::Semicolon || st.trigger {
            st.see(&t);
        }
    }
    if st.has_content {
        out.push(sql[start..].trim().to_owned());
    }
    out
}

/// True when the text holds at least one statement and ends with a terminating `;` (outside
/// quotes, comments and trigger bodies), i.e. an interactive user has finished typing. Text
/// that is only whitespace or comments is complete too (nothing to wait for).
pub fn is_complete(sql: &str) -> bool {
    let mut lx = Lexer::new(sql);
    let mut st = StatementState::default();
    let mut complete = true;
    while let Some((t, _)) = lx.next_token() {
        if t == Token::Semicolon && st.semicolon_ends() {
            st = StatementState::default();
            complete = true;
        } else {
            if t != Token::Semicolon || st.trigger {
                st.see(&t);
            }
            complete = false;
        }
    }
    complete && !lx.open
}

/// The statement's first keyword, uppercased (comments skipped), if any.
pub fn leading_keyword(stmt: &str) -> Option<String> {
    let mut lx = Lexer::new(stmt);
    while let Some((t, _)) = lx.next_token() {
        match t {
            Token::Word(w) => return Some(w),
            Token::Semicolon => continue,
            Token::Other => return None,
        }
    }
    None
}

/// Whether a statement is expected to return rows: its first keyword is SELECT, VALUES,
/// PRAGMA, EXPLAIN or WITH (unless the WITH feeds an INSERT/UPDATE/DELETE/REPLACE), or it has
/// a RETURNING clause. A PRAGMA that sets a value returns no columns; callers fall back to an
/// exec when the server says so.
pub fn returns_rows(stmt: &str) -> bool {
    let mut lx = Lexer::new(stmt);
    let mut first: Option<String> = None;
    let mut depth = 0i32;
    let mut with_dml = false;
    while let Some((t, end)) = lx.next_token() {
        match t {
            Token::Word(w) => {
                if first.is_none() {
                    first = Some(w.clone());
                }
                if w == "RETURNING" {
                    return true;
                }
                if depth == 0
                    && first.as_deref() == Some("WITH")
                    && matches!(w.as_str(), "INSERT" | "UPDATE" | "DELETE" | "REPLACE")
                {
                    with_dml = true;
                }
            }
            Token::Other => {
                match stmt.as_bytes().get(end - 1) {
                    Some(b'(') => depth += 1,
                    Some(b')') => depth -= 1,
                    _ => {}
                }
                if first.is_none() {
                    first = Some(String::new());
                }
            }
            Token::Semicolon => {}
        }
    }
    match first.as_deref() {
        Some("SELECT" | "VALUES" | "PRAGMA" | "EXPLAIN") => true,
        Some("WITH") => !with_dml,
        _ => false,
    }
}

/// How a statement changes the connection's transaction state, judged by its first keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEffect {
    /// BEGIN or SAVEPOINT: a transaction is (or may be) open afterwards.
    Begin,
    /// COMMIT, END, or ROLLBACK without TO: no transaction afterwards.
    End,
    /// Anything else.
    None,
}

/// The transaction effect of one statement.
pub fn tx_effect(stmt: &str) -> TxEffect {
    let mut lx = Lexer::new(stmt);
    let mut words = Vec::new();
    while let Some((t, _)) = lx.next_token() {
        if let Token::Word(w) = t {
            words.push(w);
            if words.len() == 3 {
                break;
            }
        }
    }
    match words.first().map(String::as_str) {
        Some("BEGIN" | "SAVEPOINT") => TxEffect::Begin,
        Some("COMMIT" | "END") => TxEffect::End,
        Some("ROLLBACK") if !words.iter().any(|w| w == "TO") => TxEffect::End,
        _ => TxEffect::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        assert_eq!(
            split_statements("SELECT 'a;b'; SELECT \"c;d\";SELECT [e;f] ; ;"),
            vec!["SELECT 'a;b'", "SELECT \"c;d\"", "SELECT [e;f]"]
        );
        assert_eq!(
            split_statements("SELECT 'it''s;'; /* x; */ SELECT 2"),
            vec!["SELECT 'it''s;'", "/* x; */ SELECT 2"]
        );
        assert_eq!(
            split_statements("  ;; -- only a comment"),
            Vec::<String>::new()
        );
        assert_eq!(split_statements("SELECT 1"), vec!["SELECT 1"]);
    }

    #[test]
    fn trigger_bodies_stay_whole() {
        let sql = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO l VALUES(1); \
                   UPDATE c SET n = n + 1; END; SELECT 1;";
        let s = split_statements(sql);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].ends_with("END"));
        assert!(!is_complete(
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO l VALUES(1);"
        ));
        assert!(is_complete(
            "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;"
        ));
    }

    #[test]
    fn completeness() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1; -- done"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete("SELECT 1; /* open"));
        assert!(is_complete(""));
    }

    #[test]
    fn row_returning_statements() {
        for q in [
            "select 1",
            "  -- c\n SELECT 1",
            "VALUES(1)",
            "PRAGMA table_info(t)",
            "EXPLAIN QUERY PLAN SELECT 1",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "INSERT INTO t VALUES(1) RETURNING id",
            "(SELECT 1)",
        ] {
            assert!(returns_rows(q) || q.starts_with('('), "{q}");
        }
        for e in [
            "INSERT INTO t VALUES('SELECT')",
            "CREATE TABLE t(x)",
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
            "DELETE FROM t",
            "BEGIN",
            "",
        ] {
            assert!(!returns_rows(e), "{e}");
        }
        assert_eq!(
            leading_keyword("/* c */ insert into t"),
            Some("INSERT".into())
        );
        assert_eq!(leading_keyword("  "), None);
    }

    #[test]
    fn transaction_effects() {
        assert_eq!(tx_effect("BEGIN IMMEDIATE"), TxEffect::Begin);
        assert_eq!(tx_effect("savepoint a"), TxEffect::Begin);
        assert_eq!(tx_effect("COMMIT"), TxEffect::End);
        assert_eq!(tx_effect("END TRANSACTION"), TxEffect::End);
        assert_eq!(tx_effect("ROLLBACK"), TxEffect::End);
        assert_eq!(tx_effect("ROLLBACK TO a"), TxEffect::None);
        assert_eq!(
            tx_effect("ROLLBACK TRANSACTION TO SAVEPOINT a"),
            TxEffect::None
        );
        assert_eq!(tx_effect("INSERT INTO t VALUES(1)"), TxEffect::None);
    }

    proptest::proptest! {
        #[test]
        fn splitting_never_panics_and_rejoins(s in "[a-z ;'\"`\\[\\]/*\\-\n]{0,64}") {
            let parts = split_statements(&s);
            for p in &parts {
                proptest::prop_assert!(!p.is_empty());
            }
            let _ = is_complete(&s);
            let _ = returns_rows(&s);
            let _ = tx_effect(&s);
        }
    }
}
