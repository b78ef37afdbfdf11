//! The command line of `cargo xtask chaos`.

use std::path::PathBuf;
use std::time::Duration;

use super::nemesis;
use super::workload;

/// Usage text.
pub const USAGE: &str = "usage: cargo xtask chaos --workload register|bank|set|append|all
         --nemesis partition|kill|pause|link|membership|disk|lease|all|none
         [--duration S] [--seed N] [--nodes 3|5] [--read-lease] [--leader-local-reads]
         [--release] [--clients N] [--stale-bound-ms MS] [--keep] [--dir DIR]
         [--node-bin PATH] [--node-features F] [--expect-anomaly]
       cargo xtask chaos --cleanup    (remove what runs that died left behind)
  --duration S        seconds of load under faults (default 60); healing and checks follow
  --seed N            seed of the fault schedule and the operations (default: random, printed)
  --nodes 3|5         voters at the start (default 3)
  --read-lease        nodes use the read lease, their default (implied by --nemesis lease);
                      without it they run with --read-lease=false (every read asks a quorum)
  --leader-local-reads  nodes serve reads without a read-index round; reads are then
                      checked against a staleness bound (--stale-bound-ms, default 1000:
                      the node documents up to an election timeout, 400-800 ms)
  --release           build and run the release node (long runs)
  --clients N         concurrent clients per workload (default 4; 3 each with `all`)
  --keep              keep the run folder even when the run passes
  --dir DIR           where run folders go (default target/chaos)
  --node-bin PATH     use this dqlite-node binary instead of building one
  --node-features F   build the node with these cargo features (e.g. the test-only
                      unsafe-ack-before-commit)
  --expect-anomaly    succeed only if a checker finds an anomaly (checks the checkers)
Exit status 0 only when no checker found an anomaly and the cluster recovered.";

/// Parsed options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Workloads to run together.
    pub workloads: Vec<workload::Kind>,
    /// The nemesis as given (`all` expanded).
    pub nemeses: Vec<nemesis::Kind>,
    /// What was given for `--workload` (for names).
    pub workload_arg: String,
    /// What was given for `--nemesis`.
    pub nemesis_arg: String,
    /// Load duration.
    pub duration: Duration,
    /// The seed.
    pub seed: u64,
    /// Voters at the start.
    pub nodes: usize,
    /// `--read-lease` on the nodes.
    pub read_lease: bool,
    /// `--leader-local-reads` on the nodes.
    pub leader_local_reads: bool,
    /// Release build.
    pub release: bool,
    /// Clients per workload.
    pub clients: usize,
    /// Staleness allowed with leader-local reads.
    pub stale_bound: Duration,
    /// Keep the run folder on success.
    pub keep: bool,
    /// Base folder of run folders.
    pub dir: Option<PathBuf>,
    /// A prebuilt node binary.
    pub node_bin: Option<PathBuf>,
    /// Cargo features for the node build.
    pub node_features: Option<String>,
    /// Invert the verdict: pass only if an anomaly is found.
    pub expect_anomaly: bool,
}

impl Options {
    /// True if `kind` is among the nemeses.
    pub fn has(&self, kind: nemesis::Kind) -> bool {
        self.nemeses.contains(&kind)
    }
}

fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 % 1_000_000)
        .unwrap_or(1)
}

/// Parses the arguments after `chaos`.
pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut workload = None;
    let mut nemesis = None;
    let mut o = Options {
        workloads: Vec::new(),
        nemeses: Vec::new(),
        workload_arg: String::new(),
        nemesis_arg: String::new(),
        duration: Duration::from_secs(60),
        seed: seed_from_clock(),
        nodes: 3,
        read_lease: false,
        leader_local_reads: false,
        release: false,
        clients: 0,
        stale_bound: Duration::from_millis(1000),
        keep: false,
        dir: None,
        node_bin: None,
        node_features: None,
        expect_anomaly: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let num =
            |name: &str, v: String| v.parse::<u64>().map_err(|e| format!("{name} {v:?}: {e}"));
        match a.as_str() {
            "--workload" => workload = Some(value("--workload")?),
            "--nemesis" => nemesis = Some(value("--nemesis")?),
            "--duration" => {
                o.duration = Duration::from_secs(num("--duration", value("--duration")?)?)
            }
            "--seed" => o.seed = num("--seed", value("--seed")?)?,
            "--nodes" => o.nodes = num("--nodes", value("--nodes")?)? as usize,
            "--read-lease" => o.read_lease = true,
            "--leader-local-reads" => o.leader_local_reads = true,
            "--release" => o.release = true,
            "--clients" => o.clients = num("--clients", value("--clients")?)? as usize,
            "--stale-bound-ms" => {
                o.stale_bound =
                    Duration::from_millis(num("--stale-bound-ms", value("--stale-bound-ms")?)?)
            }
            "--keep" => o.keep = true,
            "--dir" => o.dir = Some(PathBuf::from(value("--dir")?)),
            "--node-bin" => o.node_bin = Some(PathBuf::from(value("--node-bin")?)),
            "--node-features" => o.node_features = Some(value("--node-features")?),
            "--expect-anomaly" => o.expect_anomaly = true,
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    o.workload_arg = workload.ok_or_else(|| format!("--workload is required\n{USAGE}"))?;
    o.nemesis_arg = nemesis.ok_or_else(|| format!("--nemesis is required\n{USAGE}"))?;
    o.workloads = if o.workload_arg == "all" {
        workload::Kind::ALL.to_vec()
    } else {
        vec![
            workload::Kind::parse(&o.workload_arg)
                .ok_or_else(|| format!("unknown workload `{}`\n{USAGE}", o.workload_arg))?,
        ]
    };
    o.nemeses = if o.nemesis_arg == "all" {
        nemesis::Kind::ALL.to_vec()
    } else {
        vec![
            nemesis::Kind::parse(&o.nemesis_arg)
                .ok_or_else(|| format!("unknown nemesis `{}`\n{USAGE}", o.nemesis_arg))?,
        ]
    };
    if o.nodes != 3 && o.nodes != 5 {
        return Err(format!("--nodes must be 3 or 5\n{USAGE}"));
    }
    if o.duration.is_zero() || o.duration > Duration::from_secs(4 * 3600) {
        return Err("--duration must be between 1 and 14400 seconds".into());
    }
    if o.clients == 0 {
        o.clients = if o.workloads.len() > 1 { 3 } else { 4 };
    }
    if o.clients > 64 {
        return Err("--clients must be at most 64".into());
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_documented_interface_parses() {
        let o = parse(&args(
            "--workload all --nemesis all --duration 600 --seed 7 --nodes 5 --read-lease --leader-local-reads",
        ))
        .unwrap();
        assert_eq!(o.workloads.len(), 4);
        assert_eq!(o.nemeses.len(), 7);
        assert_eq!(o.duration, Duration::from_secs(600));
        assert_eq!(
            (o.seed, o.nodes, o.read_lease, o.leader_local_reads),
            (7, 5, true, true)
        );
        let o = parse(&args("--workload bank --nemesis kill")).unwrap();
        assert_eq!(o.workloads, vec![workload::Kind::Bank]);
        assert_eq!(o.nemeses, vec![nemesis::Kind::Kill]);
        assert_eq!((o.nodes, o.clients), (3, 4));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&args("--workload bank")).is_err());
        assert!(parse(&args("--workload nope --nemesis kill")).is_err());
        assert!(parse(&args("--workload bank --nemesis kill --nodes 4")).is_err());
        assert!(parse(&args("--workload bank --nemesis kill --duration x")).is_err());
    }
}
