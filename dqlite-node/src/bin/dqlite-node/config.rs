//! The node's settings from three sources, first found wins: command-line flags, `DQLITE_*`
//! environment variables (e.g. `DQLITE_HTTP_ADDRESS` for `--http-address`), and an optional
//! TOML file (`--config FILE`, keys spelled like the flags: `http-address = "..."`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use dqlite_node::{Node, NodeBuilder, NodeOptions, TlsConfig};
use serde::Deserialize;

/// Every setting of a node. Each is optional here; [`Settings::merge`] takes the first given
/// and [`Settings::builder`] applies the defaults.
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// Node id (non-zero, unique in the cluster).
    #[arg(long, env = "DQLITE_ID")]
    pub id: Option<u64>,
    /// Address to advertise to clients and peers, HOST:PORT (clients and Raft share it).
    #[arg(long, env = "DQLITE_ADDRESS")]
    pub address: Option<String>,
    /// Address to listen on, if not the advertised one (e.g. 0.0.0.0:9001).
    #[arg(long, env = "DQLITE_BIND")]
    pub bind: Option<String>,
    /// Data directory (Raft log and snapshots; locked while the node runs).
    #[arg(long, env = "DQLITE_DIR")]
    pub dir: Option<PathBuf>,
    /// Comma-separated addresses of existing members to join; without it a fresh node
    /// bootstraps a new cluster.
    #[arg(long, env = "DQLITE_JOIN", value_delimiter = ',')]
    pub join: Option<Vec<String>>,
    /// Serve /metrics, /healthz and /readyz over HTTP on HOST:PORT (off unless given).
    #[arg(long, env = "DQLITE_HTTP_ADDRESS")]
    pub http_address: Option<String>,
    /// Failure domain reported by DESCRIBE (role management prefers spreading voters).
    #[arg(long, env = "DQLITE_FAILURE_DOMAIN")]
    pub failure_domain: Option<u64>,
    /// Automatic role management when this node leads [default: true].
    #[arg(long, env = "DQLITE_ROLE_MANAGEMENT", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub role_management: Option<bool>,
    /// Voters role management keeps live [default: 3].
    #[arg(long, env = "DQLITE_VOTERS")]
    pub voters: Option<usize>,
    /// Stand-bys role management keeps live [default: 3].
    #[arg(long, env = "DQLITE_STANDBYS")]
    pub standbys: Option<usize>,
    /// How often the leader checks the members' roles, in ms [default: 1000].
    #[arg(long, env = "DQLITE_ROLES_INTERVAL_MS")]
    pub roles_interval_ms: Option<u64>,
    /// How long a member must be unreachable before it loses its role, in ms [default: 3000].
    #[arg(long, env = "DQLITE_OFFLINE_AFTER_MS")]
    pub offline_after_ms: Option<u64>,
    /// Raft heartbeat interval in ms [default: 100].
    #[arg(long, env = "DQLITE_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// Raft election timeout, lower bound in ms [default: 400].
    #[arg(long, env = "DQLITE_ELECTION_TIMEOUT_MIN_MS")]
    pub election_timeout_min_ms: Option<u64>,
    /// Raft election timeout, upper bound in ms [default: 800].
    #[arg(long, env = "DQLITE_ELECTION_TIMEOUT_MAX_MS")]
    pub election_timeout_max_ms: Option<u64>,
    /// Take a snapshot after this many applied entries [default: 8192].
    #[arg(long, env = "DQLITE_SNAPSHOT_THRESHOLD")]
    pub snapshot_threshold: Option<u64>,
    /// Entries of log kept behind a snapshot [default: 1024].
    #[arg(long, env = "DQLITE_SNAPSHOT_TRAILING")]
    pub snapshot_trailing: Option<u64>,
    /// Serve reads on the leader without a read-index round (C dqlite's behaviour).
    #[arg(long, env = "DQLITE_LEADER_LOCAL_READS", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub leader_local_reads: Option<bool>,
    /// Let one read-index round cover the reads of the next 200 ms (a read lease, on by
    /// default; `--read-lease=false` makes every read ask a quorum); relies on clocks
    /// advancing at about the same rate on every node. Give every node the same setting.
    #[arg(long, env = "DQLITE_READ_LEASE", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub read_lease: Option<bool>,
    /// Microseconds a database worker, and a lone client connection waiting for it, poll
    /// before sleeping: trades a little CPU for read latency on virtual machines, where
    /// waking a sleeping thread is slow (0: never poll) [default: 200].
    #[arg(long, env = "DQLITE_SPIN_US")]
    pub spin_us: Option<u64>,
    /// Milliseconds between two returns of the heap's free memory to the system (glibc's
    /// malloc_trim), so that memory freed after a bulk load or a large transaction does not
    /// stay resident (0: never) [default: 1000].
    #[arg(long, env = "DQLITE_HEAP_TRIM_MS")]
    pub heap_trim_ms: Option<u64>,
    /// Client connections served at once (one more gets a FAILURE naming the limit)
    /// [default: 1024].
    #[arg(long, env = "DQLITE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Databases served at once (OPEN of one more gets a FAILURE naming the limit)
    /// [default: 1024].
    #[arg(long, env = "DQLITE_MAX_DATABASES")]
    pub max_databases: Option<usize>,
    /// Certificate chain (PEM) for TLS on the node's port, for clients and Raft peers alike;
    /// needs --tls-key. Peers and clients must present a certificate the node trusts.
    #[arg(long, env = "DQLITE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "DQLITE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Trusted root certificates (PEM); default: --tls-cert itself (one self-signed
    /// certificate shared by the cluster).
    #[arg(long, env = "DQLITE_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Name every node's certificate is checked against [default: dqlite].
    #[arg(long, env = "DQLITE_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "DQLITE_LOG_JSON", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub log_json: Option<bool>,
}

/// Takes each field from `$a`, else from `$b`.
macro_rules! first_given {
    ($a:ident, $b:ident; $($f:ident),* $(,)?) => {
        Settings { $($f: $a.$f.or($b.$f),)* }
    };
}

/// What the binary needs beyond the node builder.
pub struct Setup {
    /// The node, ready to start.
    pub builder: NodeBuilder,
    /// Node id.
    pub id: u64,
}

impl Settings {
    /// Reads a TOML settings file.
    pub fn from_file(path: &std::path::Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    /// These settings, with those not given taken from `file`.
    pub fn merge(self, file: Settings) -> Settings {
        let a = self;
        let b = file;
        first_given!(a, b;
            id, address, bind, dir, join, http_address, failure_domain, role_management, voters,
            standbys, roles_interval_ms, offline_after_ms, heartbeat_ms, election_timeout_min_ms,
            election_timeout_max_ms, snapshot_threshold, snapshot_trailing, leader_local_reads,
            read_lease, spin_us, heap_trim_ms, max_connections, max_databases, tls_cert, tls_key, tls_ca,
            tls_server_name, log_json,
        )
    }

    /// Whether logs are JSON lines.
    pub fn log_json(&self) -> bool {
        self.log_json.unwrap_or(false)
    }

    /// The node options these settings give (defaults for what is not set).
    pub fn options(&self) -> Result<NodeOptions, String> {
        let mut o = NodeOptions::default();
        if let Some(v) = self.leader_local_reads {
            o.leader_local_reads = v;
        }
        if self.read_lease == Some(false) {
            o.raft.read_lease = None;
        }
        if let Some(v) = self.spin_us {
            o.spin = std::time::Duration::from_micros(v);
        }
        if let Some(v) = self.heap_trim_ms {
            o.heap_trim = (v > 0).then(|| std::time::Duration::from_millis(v));
        }
        if let Some(v) = self.max_connections {
            o.max_connections = v;
        }
        if let Some(v) = self.max_databases {
            o.max_databases = v;
        }
        if let Some(v) = self.role_management {
            o.roles.enabled = v;
        }
        if let Some(v) = self.voters {
            o.roles.voters = v;
        }
        if let Some(v) = self.standbys {
            o.roles.standbys = v;
        }
        if let Some(v) = self.roles_interval_ms {
            o.roles.interval = Duration::from_millis(v.max(1));
        }
        if let Some(v) = self.offline_after_ms {
            o.roles.offline_after = Duration::from_millis(v);
        }
        let raft = &mut o.raft.raft;
        if let Some(v) = self.heartbeat_ms {
            raft.heartbeat_interval = v;
        }
        if let Some(v) = self.election_timeout_min_ms {
            raft.election_timeout_min = v;
        }
        if let Some(v) = self.election_timeout_max_ms {
            raft.election_timeout_max = v;
        }
        if let Some(v) = self.snapshot_threshold {
            raft.snapshot_policy = openraft::SnapshotPolicy::LogsSinceLast(v);
        }
        if let Some(v) = self.snapshot_trailing {
            raft.max_in_snapshot_log_to_keep = v;
        }
        if raft.election_timeout_min >= raft.election_timeout_max
            || raft.heartbeat_interval >= raft.election_timeout_min
        {
            return Err(format!(
                "Raft timing: need heartbeat ({} ms) < election timeout min ({} ms) < max ({} ms)",
                raft.heartbeat_interval, raft.election_timeout_min, raft.election_timeout_max
            ));
        }
        if o.roles.enabled && o.roles.voters == 0 {
            return Err("--voters must be at least 1".into());
        }
        Ok(o)
    }

    /// The node builder these settings describe.
    pub fn builder(&self) -> Result<Setup, String> {
        let id = self
            .id
            .ok_or("--id (or DQLITE_ID, or id in the config file) is required")?;
        let address = self
            .address
            .clone()
            .ok_or("--address (or DQLITE_ADDRESS, or address in the config file) is required")?;
        let dir = self
            .dir
            .clone()
            .ok_or("--dir (or DQLITE_DIR, or dir in the config file) is required")?;
        let mut b = Node::builder(id, address, dir)
            .join(self.join.clone().unwrap_or_default())
            .failure_domain(self.failure_domain.unwrap_or(0))
            .options(self.options()?);
        if let Some(bind) = &self.bind {
            b = b.bind(bind.clone());
        }
        if let Some(http) = &self.http_address {
            b = b.http_address(http.clone());
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), Some(_)) => {}
            (None, None) if self.tls_ca.is_none() => {}
            _ => return Err("TLS needs both --tls-cert and --tls-key".into()),
        }
        Ok(Setup { builder: b, id })
    }

    /// The TLS settings, with their files read (an error names the file).
    pub fn tls(&self) -> Result<Option<TlsConfig>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let name = self.tls_server_name.as_deref().unwrap_or("dqlite");
        TlsConfig::from_pem_files(cert, key, self.tls_ca.as_deref(), name)
            .map(Some)
            .map_err(|e| format!("invalid TLS settings: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        s: Settings,
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_fills_the_rest() {
        let cli = Cli::try_parse_from([
            "x",
            "--id",
            "2",
            "--voters=5",
            "--read-lease",
            "--role-management=false",
        ])
        .unwrap()
        .s;
        let file: Settings = toml::from_str(
            r#"
            id = 9
            address = "10.0.0.2:9001"
            bind = "0.0.0.0:9001"
            dir = "/var/lib/dqlite"
            join = ["10.0.0.1:9001"]
            http-address = "127.0.0.1:9101"
            snapshot-threshold = 100
            heap-trim-ms = 0
            "#,
        )
        .unwrap();
        let s = cli.merge(file);
        assert_eq!(s.id, Some(2));
        assert_eq!(s.address.as_deref(), Some("10.0.0.2:9001"));
        assert_eq!(s.join, Some(vec!["10.0.0.1:9001".to_string()]));
        let o = s.options().unwrap();
        assert_eq!(o.roles.voters, 5);
        assert!(!o.roles.enabled);
        assert!(o.raft.read_lease.is_some());
        assert_eq!(
            o.raft.raft.snapshot_policy,
            openraft::SnapshotPolicy::LogsSinceLast(100)
        );
        assert_eq!(o.heap_trim, None, "0 turns the trim off");
        assert!(NodeOptions::default().heap_trim.is_some());
        s.builder().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_timing_are_refused() {
        assert!(toml::from_str::<Settings>("colour = 1").is_err());
        let s = Settings {
            heartbeat_ms: Some(500),
            ..Settings::default()
        };
        assert!(s.options().unwrap_err().contains("heartbeat"));
        let s = Settings {
            id: Some(1),
            dir: Some("d".into()),
            ..Settings::default()
        };
        assert!(s.builder().err().unwrap().contains("--address"));
    }
}
