//! Command-line arguments and dot-command parsing.

use std::time::Duration;

use clap::Parser;

use crate::format::Format;

/// An interactive and scriptable SQL shell for dqlite clusters.
///
/// Interactive: `dqlite -s 127.0.0.1:9001,127.0.0.1:9002 mydb` (statements end with `;`,
/// `.help` lists the dot commands). One-shot: `dqlite -s ... mydb "SELECT 1"` runs the SQL
/// (several statements separated by `;` are run in order), prints the results and exits with
/// status 1 on the first error.
#[derive(Debug, Parser)]
#[command(name = "dqlite", version)]
pub struct Args {
    /// Cluster members to contact, comma-separated (`host:port` or `@abstract-socket`).
    #[arg(short = 's', long = "servers", value_delimiter = ',', required = true)]
    pub servers: Vec<String>,

    /// Output format of result sets and dot commands.
    #[arg(short = 'f', long = "format", value_enum, default_value = "table")]
    pub format: Format,

    /// How long to look for a leader before giving up, in seconds.
    #[arg(long = "timeout", default_value = "10", value_parser = parse_secs)]
    pub timeout: Duration,

    /// Per-request read/write timeout, in seconds.
    #[arg(long = "request-timeout", default_value = "30", value_parser = parse_secs)]
    pub request_timeout: Duration,

    /// TLS certificate shared by the cluster (PEM); needs --key.
    #[cfg(feature = "tls")]
    #[arg(short = 'c', long = "cert", requires = "key")]
    pub cert: Option<std::path::PathBuf>,

    /// TLS private key (PEM); needs --cert.
    #[cfg(feature = "tls")]
    #[arg(short = 'k', long = "key", requires = "cert")]
    pub key: Option<std::path::PathBuf>,

    /// TLS server name to check in node certificates (default: the node's host).
    #[cfg(feature = "tls")]
    #[arg(long = "tls-server-name")]
    pub tls_server_name: Option<String>,

    /// Database to open.
    pub database: String,

    /// SQL or a dot command to run, then exit (one-shot mode). Without it: interactive.
    pub sql: Option<String>,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err(format!("{s} s is out of range (0..=86400)"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A node named by id (decimal or `0x` hex) or by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRef {
    /// Raft node id.
    Id(u64),
    /// Node address.
    Address(String),
}

/// A parsed dot command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dot {
    /// `.help`
    Help,
    /// `.quit` / `.exit`
    Quit,
    /// `.leader`
    Leader,
    /// `.cluster`
    Cluster,
    /// `.describe ADDR`
    Describe(String),
    /// `.weight ADDR N`
    Weight(String, u64),
    /// `.transfer ID`
    Transfer(NodeRef),
    /// `.remove ID`
    Remove(NodeRef),
    /// `.add ID ADDR`
    Add(u64, String),
    /// `.assign ID ROLE`
    Assign(NodeRef, dqlite_client::Role),
    /// `.dump [FILE]`
    Dump(Option<String>),
    /// `.backup FILE`
    Backup(String),
    /// `.restore FILE`
    Restore(String),
}

/// The text `.help` prints.
pub const HELP: &str = "\
.cluster              list the members: id, address, role
.leader               print the leader's address
.describe ADDR        failure domain and weight of the node at ADDR
.weight ADDR N        set the weight of the node at ADDR
.transfer ID|ADDR     hand leadership to that voter
.add ID ADDR          add a node (as a spare)
.assign ID|ADDR ROLE  change a node's role (voter, stand-by, spare)
.remove ID|ADDR       remove a node from the cluster
.dump [FILE]          copy the database to FILE and FILE-wal (default: the database name)
.backup FILE          write the database to FILE as one SQLite file (sqlite3 opens it)
.restore FILE         load the SQLite file FILE into the (empty) database, in one transaction
.help                 this text
.quit                 leave (also Ctrl-D)
SQL statements end with ';' (interactive); several may be given at once.";

fn node_ref(s: &str) -> NodeRef {
    let id = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else {
        s.parse::<u64>().ok()
    };
    id.map_or_else(|| NodeRef::Address(s.to_owned()), NodeRef::Id)
}

/// Parse a line starting with `.`.
pub fn parse_dot(line: &str) -> Result<Dot, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (cmd, args) = words
        .split_first()
        .ok_or_else(|| "empty command".to_owned())?;
    let want = |n: usize, usage: &str| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("usage: {usage}"))
        }
    };
    match *cmd {
        ".help" => Ok(Dot::Help),
        ".quit" | ".exit" => Ok(Dot::Quit),
        ".leader" => want(0, ".leader").map(|_| Dot::Leader),
        ".cluster" => want(0, ".cluster").map(|_| Dot::Cluster),
        ".describe" => {
            want(1, ".describe ADDR")?;
            Ok(Dot::Describe(args[0].to_owned()))
        }
        ".weight" => {
            want(2, ".weight ADDR N")?;
            let n = args[1]
                .parse()
                .map_err(|_| format!("weight {:?} is not a non-negative integer", args[1]))?;
            Ok(Dot::Weight(args[0].to_owned(), n))
        }
        ".transfer" => {
            want(1, ".transfer ID|ADDR")?;
            Ok(Dot::Transfer(node_ref(args[0])))
        }
        ".remove" => {
            want(1, ".remove ID|ADDR")?;
            Ok(Dot::Remove(node_ref(args[0])))
        }
        ".add" => {
            want(2, ".add ID ADDR")?;
            match node_ref(args[0]) {
                NodeRef::Id(id) => Ok(Dot::Add(id, args[1].to_owned())),
                NodeRef::Address(_) => Err(format!("node id {:?} is not a number", args[0])),
            }
        }
        ".assign" => {
            want(2, ".assign ID|ADDR ROLE")?;
            let role = dqlite_client::parse_role(args[1]).map_err(|e| e.to_string())?;
            Ok(Dot::Assign(node_ref(args[0]), role))
        }
        ".dump" => match args.len() {
            0 => Ok(Dot::Dump(None)),
            1 => Ok(Dot::Dump(Some(args[0].to_owned()))),
            _ => Err("usage: .dump [FILE]".to_owned()),
        },
        ".backup" => want(1, ".backup FILE").map(|_| Dot::Backup(args[0].to_owned())),
        ".restore" => want(1, ".restore FILE").map(|_| Dot::Restore(args[0].to_owned())),
        other => Err(format!(
            "unknown command {other:?}; .help lists the commands"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        let a = Args::try_parse_from(["dqlite", "-s", "a:1,b:2", "db", "SELECT 1"]).unwrap();
        assert_eq!(a.servers, vec!["a:1", "b:2"]);
        assert_eq!(a.database, "db");
        assert_eq!(a.sql.as_deref(), Some("SELECT 1"));
        assert_eq!(a.format, Format::Table);
        assert_eq!(a.timeout, Duration::from_secs(10));
        let a = Args::try_parse_from([
            "dqlite",
            "db",
            "-s",
            "a:1",
            "--format",
            "json",
            "--timeout",
            "0.5",
        ])
        .unwrap();
        assert_eq!(a.format, Format::Json);
        assert!(a.sql.is_none());
        assert_eq!(a.timeout, Duration::from_millis(500));
        assert!(
            Args::try_parse_from(["dqlite", "db"]).is_err(),
            "servers are required"
        );
        assert!(
            Args::try_parse_from(["dqlite", "-s", "a:1"]).is_err(),
            "database is required"
        );
        assert!(Args::try_parse_from(["dqlite", "-s", "a:1", "d", "--timeout", "-1"]).is_err());
    }

    #[test]
    fn dots() {
        assert_eq!(parse_dot(".leader"), Ok(Dot::Leader));
        assert_eq!(parse_dot(".cluster "), Ok(Dot::Cluster));
        assert_eq!(parse_dot(".describe a:1"), Ok(Dot::Describe("a:1".into())));
        assert_eq!(parse_dot(".weight a:1 7"), Ok(Dot::Weight("a:1".into(), 7)));
        assert_eq!(
            parse_dot(".transfer 0x10"),
            Ok(Dot::Transfer(NodeRef::Id(16)))
        );
        assert_eq!(parse_dot(".remove 42"), Ok(Dot::Remove(NodeRef::Id(42))));
        assert_eq!(
            parse_dot(".remove 127.0.0.1:9004"),
            Ok(Dot::Remove(NodeRef::Address("127.0.0.1:9004".into())))
        );
        assert_eq!(
            parse_dot(".assign 5 stand-by"),
            Ok(Dot::Assign(NodeRef::Id(5), dqlite_client::Role::Standby))
        );
        assert_eq!(parse_dot(".add 5 h:1"), Ok(Dot::Add(5, "h:1".into())));
        assert_eq!(parse_dot(".dump"), Ok(Dot::Dump(None)));
        assert_eq!(parse_dot(".dump f.db"), Ok(Dot::Dump(Some("f.db".into()))));
        assert!(parse_dot(".weight a:1 x").is_err());
        assert!(parse_dot(".describe").is_err());
        assert!(
            parse_dot(".tables")
                .unwrap_err()
                .contains("unknown command")
        );
        assert!(parse_dot(".assign 5 boss").is_err());
    }
}
