//! Running statements and dot commands, and the interactive loop.

use std::io::Write;

use dqlite_client::{Client, Config, Database, Error, NodeInfo, Value, sql};

use crate::cli::{Args, Dot, HELP, NodeRef, parse_dot};
use crate::format::{Format, write_records, write_rows};

/// The shell's state: the client, and the database connection once opened (kept across
/// statements so that interactive transactions work).
pub struct Shell {
    client: Client,
    db_name: String,
    db: Option<Database>,
    format: Format,
}

/// What one command did.
enum Outcome {
    Continue,
    Quit,
}

impl Shell {
    pub fn new(args: &Args) -> Result<Shell, Error> {
        #[allow(unused_mut)]
        let mut config = Config::default();
        config.leader_timeout = args.timeout;
        config.request_timeout = args.request_timeout;
        config.connect_timeout = args.timeout.min(config.connect_timeout);
        #[cfg(feature = "tls")]
        if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
            let name = args.tls_server_name.as_deref().unwrap_or("localhost");
            config.tls = Some(dqlite_client::TlsConfig::from_shared_cert(cert, key, name)?);
        }
        let client = Client::new(args.servers.iter().cloned(), config)?;
        Ok(Shell {
            client,
            db_name: args.database.clone(),
            db: None,
            format: args.format,
        })
    }

    async fn db(&mut self) -> Result<&mut Database, Error> {
        if self.db.is_none() {
            self.db = Some(self.client.open(&self.db_name).await?);
        }
        self.db
            .as_mut()
            .ok_or_else(|| Error::Usage("database not open".into()))
    }

    /// Run a dot command or one or more SQL statements; print errors. False on error.
    pub async fn run_text(&mut self, text: &str, out: &mut impl Write) -> bool {
        match self.run(text, out).await {
            Ok(_) => true,
            Err(e) => {
                let _ = out.flush();
                eprintln!("Error: {e}");
                false
            }
        }
    }

    async fn run(&mut self, text: &str, out: &mut impl Write) -> Result<Outcome, Error> {
        let trimmed = text.trim();
        if trimmed.starts_with('.') {
            let dot = parse_dot(trimmed).map_err(Error::Usage)?;
            return self.dot(dot, out).await;
        }
        for stmt in sql::split_statements(text) {
            self.statement(&stmt, out).await?;
        }
        Ok(Outcome::Continue)
    }

    /// Run one statement: as a query when it returns rows (SELECT, VALUES, PRAGMA, EXPLAIN,
    /// WITH … SELECT, RETURNING), otherwise as an exec. A query-looking statement that the
    /// server says has no result columns (e.g. `PRAGMA x = 1` on C dqlite 1.x, which refuses it
    /// before running it) is re-sent as an exec.
    async fn statement(&mut self, stmt: &str, out: &mut impl Write) -> Result<(), Error> {
        let format = self.format;
        let db = self.db().await?;
        if sql::returns_rows(stmt) {
            match db.query_all(stmt, ()).await {
                Ok(rows) => {
                    let columns: Vec<String> = match rows.first() {
                        Some(r) => r.columns().to_vec(),
                        None => Vec::new(),
                    };
                    let values: Vec<Vec<Value>> =
                        rows.into_iter().map(|r| r.into_values()).collect();
                    if !columns.is_empty() {
                        write_rows(out, format, &columns, &values).map_err(io_err)?;
                    } else if format == Format::Json {
                        writeln!(out, "[]").map_err(io_err)?;
                    }
                    return Ok(());
                }
                Err(e) if no_result_columns(&e) => {}
                Err(e) => return Err(e),
            }
        }
        db.exec(stmt, ()).await?;
        Ok(())
    }

    async fn resolve_id(&self, node: &NodeRef) -> Result<u64, Error> {
        match node {
            NodeRef::Id(id) => Ok(*id),
            NodeRef::Address(a) => self
                .client
                .cluster()
                .await?
                .into_iter()
                .find(|n| &n.address == a)
                .map(|n| n.id)
                .ok_or_else(|| Error::Usage(format!("no member with address {a}"))),
        }
    }

    async fn dot(&mut self, dot: Dot, out: &mut impl Write) -> Result<Outcome, Error> {
        let format = self.format;
        match dot {
            Dot::Help => writeln!(out, "{HELP}").map_err(io_err)?,
            Dot::Quit => return Ok(Outcome::Quit),
            Dot::Leader => match self.client.leader().await? {
                Some(l) => writeln!(out, "{}", l.address).map_err(io_err)?,
                None => return Err(Error::Usage("the cluster has no leader right now".into())),
            },
            Dot::Cluster => {
                let nodes = self.client.cluster().await?;
                write_records(out, format, &["id", "address", "role"], node_rows(nodes))
                    .map_err(io_err)?;
            }
            Dot::Describe(addr) => {
                let m = self.client.describe(&addr).await?;
                write_records(
                    out,
                    format,
                    &["address", "failure_domain", "weight"],
                    vec![vec![
                        Value::Text(addr),
                        Value::Integer(m.failure_domain as i64),
                        Value::Integer(m.weight as i64),
                    ]],
                )
                .map_err(io_err)?;
            }
            Dot::Weight(addr, w) => self.client.weight(&addr, w).await?,
            Dot::Transfer(node) => {
                let id = self.resolve_id(&node).await?;
                self.client.transfer(id).await?;
            }
            Dot::Remove(node) => {
                let id = self.resolve_id(&node).await?;
                self.client.remove(id).await?;
            }
            Dot::Add(id, addr) => self.client.add(id, &addr).await?,
            Dot::Assign(node, role) => {
                let id = self.resolve_id(&node).await?;
                self.client.assign(id, role).await?;
            }
            Dot::Dump(file) => {
                let files = self.client.dump(&self.db_name).await?;
                let base = file.unwrap_or_else(|| self.db_name.clone());
                for (i, f) in files.iter().enumerate() {
                    let path = if i == 0 {
                        base.clone()
                    } else {
                        let suffix = f.name.strip_prefix(&self.db_name).unwrap_or("-wal");
                        format!("{base}{suffix}")
                    };
                    std::fs::write(&path, &f.data)
                        .map_err(|e| Error::Usage(format!("cannot write {path}: {e}")))?;
                    writeln!(out, "{path}: {} bytes", f.data.len()).map_err(io_err)?;
                }
            }
            Dot::Backup(path) => {
                let bytes = dqlite_client::backup::backup_to_file(
                    &self.client,
                    &self.db_name,
                    std::path::Path::new(&path),
                )
                .await
                .map_err(|e| Error::Usage(e.to_string()))?;
                writeln!(out, "{path}: {bytes} bytes").map_err(io_err)?;
            }
            Dot::Restore(path) => {
                #[cfg(feature = "restore")]
                {
                    let db = self.db().await?;
                    let r = dqlite_client::backup::restore(db, std::path::Path::new(&path))
                        .await
                        .map_err(|e| Error::Usage(e.to_string()))?;
                    writeln!(
                        out,
                        "{path}: {} tables, {} rows, {} indexes, {} views, {} triggers",
                        r.tables, r.rows, r.indexes, r.views, r.triggers
                    )
                    .map_err(io_err)?;
                }
                #[cfg(not(feature = "restore"))]
                return Err(Error::Usage(format!(
                    "cannot restore {path}: this shell was built without the restore feature"
                )));
            }
        }
        Ok(Outcome::Continue)
    }

    /// The interactive loop (also reads piped input). False if any command failed.
    pub async fn interactive(&mut self) -> bool {
        use rustyline::error::ReadlineError;
        let mut editor = match rustyline::DefaultEditor::new() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("Error: cannot set up line editing: {e}");
                return false;
            }
        };
        let history =
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".dqlite_history"));
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        let mut all_ok = true;
        let mut buffer = String::new();
        loop {
            let prompt = if buffer.is_empty() {
                "dqlite> "
            } else {
                "   ...> "
            };
            let line = match editor.readline(prompt) {
                Ok(l) => l,
                Err(ReadlineError::Interrupted) => {
                    buffer.clear();
                    continue;
                }
                Err(ReadlineError::Eof) => break,
                Err(e) => {
                    eprintln!("Error: reading input: {e}");
                    all_ok = false;
                    break;
                }
            };
            if buffer.is_empty() && line.trim().starts_with('.') {
                let _ = editor.add_history_entry(line.as_str());
                let mut out = std::io::stdout();
                match self.run(&line, &mut out).await {
                    Ok(Outcome::Quit) => break,
                    Ok(Outcome::Continue) => {}
                    Err(e) => {
                        eprintln!("Error: {e}");
                        all_ok = false;
                    }
                }
                continue;
            }
            if !buffer.is_empty() {
                buffer.push('\n');
            }
            buffer.push_str(&line);
            if buffer.trim().is_empty() {
                buffer.clear();
                continue;
            }
            if !sql::is_complete(&buffer) {
                continue;
            }
            let text = std::mem::take(&mut buffer);
            let _ = editor.add_history_entry(text.as_str());
            let mut out = std::io::stdout();
            if !self.run_text(&text, &mut out).await {
                all_ok = false;
            }
            let _ = out.flush();
        }
        if !buffer.trim().is_empty() {
            // Input ended in the middle of a statement: run what was typed.
            let mut out = std::io::stdout();
            if !self.run_text(&buffer, &mut out).await {
                all_ok = false;
            }
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        all_ok
    }
}

/// C dqlite 1.x refuses QUERY on a statement without result columns with this, before running it.
fn no_result_columns(e: &Error) -> bool {
    e.raw_code() == Some(1) && e.message() == Some("not an error")
}

fn node_rows(nodes: Vec<NodeInfo>) -> Vec<Vec<Value>> {
    nodes
        .into_iter()
        .map(|n| {
            vec![
                Value::Text(format!("{:#018x}", n.id)),
                Value::Text(n.address),
                Value::Text(n.role.to_string()),
            ]
        })
        .collect()
}

fn io_err(e: std::io::Error) -> Error {
    Error::Usage(format!("cannot write output: {e}"))
}
