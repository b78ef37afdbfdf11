//! `cargo xtask bench`: C dqlite 1.11 and dqlite-rs side by side, in one run on one machine.
//!
//! Starts a 3-node C cluster (go-dqlite's `dqlite-demo`) and a 3-node dqlite-rs cluster (the
//! release `dqlite-node`) on loopback and drives both with the Rust client (dqlite-client)
//! and the Python one (PyPI `dqlite-client`):
//!
//! - key/value cells: writes, point reads and a 90/10 read/write mix at 1, 8 and 64
//!   connections, `--secs` each; for every cell the backends take turns (the one that went
//!   first goes second in the next cell), each cell on a new database;
//! - on fresh clusters, one backend after the other: a bulk load (`--bulk-mib`, 1 MiB
//!   transactions), RSS and data directory of every node after it, fail-over time (SIGKILL of
//!   the leader to the first acknowledged write), and the restart time of the killed node
//!   (holding the loaded data) to listening and to serving.
//!
//! It prints one table of absolute figures and ratios dqlite-rs / C and writes it to
//! `target/bench/bench-<time>.md` (or `--out`). `cargo xtask bench CRATE..` still runs the
//! criterion micro-benchmarks of those crates (`--criterion` for all of them).

mod launch;
mod probe;
mod python;
mod report;
mod workload;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dqlite_client::Client;
use launch::{Backend, Cluster};
use report::{Figure, Phase, Report, Row};

use crate::cmd::{cargo, run, workspace_root};

const USAGE: &str = "usage: cargo xtask bench [--secs S] [--conns 1,8,64] [--rounds N]
       [--bulk-mib N] [--bulk-rows N] [--big-rows N] [--parts kv,big] [--backends c,rs] [--no-python] [--quick] [--debug]
       [--out FILE]
  --secs S       seconds per phase of each key/value cell (default 5)
  --conns LIST   connection counts of the key/value cells (default 1,8,64)
  --rounds N     run every key/value cell N times (medians shown; default 1)
  --bulk-mib N   size of the bulk load (default 100)
  --bulk-rows N  rows of 1 KiB per bulk-load transaction (default 100)
  --big-rows N   rows of the one large INSERT (default 1,000,000; --quick: 100,000)
  --parts LIST   kv (key/value cells), big (bulk load, memory, disk, fail-over, restart)
  --backends     c,rs (default both; the ratios need both)
  --no-python    only the Rust client
  --quick        a smoke run: 0.5 s phases, 1 and 8 connections, 4 MiB bulk load, a
                 100,000-row INSERT instead of 1,000,000
  --debug        use debug builds (no release build; for CI's smoke run)
  --out FILE     where the table goes (default target/bench/bench-<time>.md)
  DQLITE_NODE_BIN=PATH runs that dqlite-node instead of building one (A/B of two builds)
  cargo xtask bench [--criterion | CRATE..]   criterion micro-benchmarks instead";

struct Options {
    secs: f64,
    conns: Vec<usize>,
    rounds: usize,
    bulk_mib: u64,
    bulk_rows: u64,
    /// Rows of the one large INSERT.
    big_rows: u64,
    kv: bool,
    big: bool,
    backends: Vec<Backend>,
    python: bool,
    quick: bool,
    debug: bool,
    out: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        secs: 5.0,
        conns: vec![1, 8, 64],
        rounds: 1,
        bulk_mib: 100,
        bulk_rows: 100,
        big_rows: 1_000_000,
        kv: true,
        big: true,
        backends: vec![Backend::C, Backend::Rs],
        python: true,
        quick: false,
        debug: false,
        out: None,
    };
    // Applied after the loop, so that it wins over `--quick` in any order.
    let mut big_rows = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        let num = |s: String| s.parse::<f64>().map_err(|e| format!("{a} {s}: {e}"));
        match a.as_str() {
            "--secs" => o.secs = num(value()?)?,
            "--rounds" => o.rounds = num(value()?)?.max(1.0) as usize,
            "--bulk-mib" => o.bulk_mib = num(value()?)?.max(1.0) as u64,
            "--bulk-rows" => o.bulk_rows = num(value()?)?.max(1.0) as u64,
            "--big-rows" => big_rows = Some(num(value()?)?.max(1.0) as u64),
            "--conns" => {
                o.conns = value()?
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|e| format!("--conns {s}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--parts" => {
                let v = value()?;
                o.kv = v.split(',').any(|p| p == "kv");
                o.big = v.split(',').any(|p| p == "big");
            }
            "--backends" => {
                o.backends = value()?
                    .split(',')
                    .map(|b| match b {
                        "c" => Ok(Backend::C),
                        "rs" => Ok(Backend::Rs),
                        other => Err(format!("--backends: unknown {other:?} (c, rs)")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--no-python" => o.python = false,
            "--quick" => {
                o.quick = true;
                o.secs = 0.5;
                o.conns = vec![1, 8];
                o.bulk_mib = 4;
                o.big_rows = 100_000;
            }
            "--debug" => o.debug = true,
            "--out" => o.out = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if let Some(n) = big_rows {
        o.big_rows = n;
    }
    Ok(o)
}

/// `cargo xtask bench ...`: the side-by-side bench, or the criterion benchmarks of the named
/// crates.
pub fn run_bench(args: &[String]) -> Result<(), String> {
    let criterion = args.first().is_some_and(|a| !a.starts_with("--"));
    if criterion {
        return crate::ci::bench(args);
    }
    if args.first().is_some_and(|a| a == "--criterion") {
        return crate::ci::bench(&[]);
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let opts = parse(args)?;
    // The bench's own client must not be a debug build: it would measure itself.
    if cfg!(debug_assertions) && !opts.debug {
        let mut cmd = cargo();
        cmd.args(["run", "--release", "--quiet", "-p", "xtask", "--", "bench"])
            .args(args);
        return run(cmd);
    }
    bench(&opts)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// A started cluster with a client that found its leader and three voters.
struct Target {
    cluster: Cluster,
    client: Client,
}

fn start(
    rt: &tokio::runtime::Runtime,
    backend: Backend,
    bin: &Path,
    dir: &Path,
) -> Result<Target, String> {
    let cluster = Cluster::start(backend, bin, 3, dir)?;
    let servers = cluster.addresses();
    let client = rt.block_on(async {
        let client = Client::connect_with(servers, workload::config())
            .await
            .map_err(|e| format!("{}: connect: {e}", backend.tag()))?;
        // The demo app promotes its joiners to voters after they joined; dqlite-rs joiners
        // make themselves voters.
        workload::wait_voters(&client, 3, Duration::from_secs(90)).await?;
        Ok::<_, String>(client)
    });
    match client {
        Ok(client) => Ok(Target { cluster, client }),
        Err(e) => Err(format!("{e}\n{}", cluster.logs())),
    }
}

fn bench(o: &Options) -> Result<(), String> {
    let root = workspace_root();
    let stamp = probe::stamp();
    let run_dir = root.join("target/bench").join(format!("run-{stamp}"));
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let out = o
        .out
        .clone()
        .unwrap_or_else(|| root.join("target/bench").join(format!("bench-{stamp}.md")));
    let demo = if o.backends.contains(&Backend::C) {
        Some(launch::demo_binary()?)
    } else {
        None
    };
    let node = crate::cluster::binary(!o.debug)?;
    let bin = |b: Backend| match b {
        Backend::C => demo.clone().unwrap_or_default(),
        Backend::Rs => node.clone(),
    };
    let python = if o.python && o.kv {
        Some(python::interpreter(&root).map_err(|e| format!("{e} (or pass --no-python)"))?)
    } else {
        None
    };
    let rt = runtime()?;
    let mut rep = Report::default();
    let load_start = probe::loadavg();
    let mut loads = vec![probe::load1()];
    rep.header = vec![
        format!("# cargo xtask bench, {}", probe::now_utc()),
        String::new(),
        format!(
            "- command: `cargo xtask bench {}`",
            std::env::args().skip(2).collect::<Vec<_>>().join(" ")
        ),
        format!("- machine: {}", probe::machine()),
        format!(
            "- dqlite-rs {} ({} build), C: {}; 3 nodes each on 127.0.0.1; clients on the same machine",
            probe::git_head(&root),
            if o.debug { "debug" } else { "release" },
            probe::c_version()
        ),
        format!(
            "- key/value cells: {} s per phase, {} round(s), backends alternating first; 32 B keys, 1 KiB values",
            o.secs, o.rounds
        ),
    ];

    if o.kv {
        let mut targets = Vec::new();
        for &b in &o.backends {
            targets.push((
                b,
                start(&rt, b, &bin(b), &run_dir.join(format!("kv-{}", b.tag())))?,
            ));
        }
        let clients: Vec<&str> = if python.is_some() {
            vec!["rust", "python"]
        } else {
            vec!["rust"]
        };
        // results[(client, conns)][backend index][phase] = phases over the rounds.
        let mut turn = 0usize;
        for &conns in &o.conns {
            for &who in &clients {
                let mut per_backend: Vec<Vec<Vec<Phase>>> =
                    vec![vec![Vec::new(); workload::PHASES.len()]; targets.len()];
                for round in 0..o.rounds {
                    let mut order: Vec<usize> = (0..targets.len()).collect();
                    if turn % 2 == 1 {
                        order.reverse();
                    }
                    turn += 1;
                    for &i in &order {
                        let (b, t) = &targets[i];
                        let database = format!("kv_{who}_{conns}_{round}");
                        let phases = match who {
                            "rust" => rt.block_on(workload::cell(
                                &t.client,
                                &database,
                                conns,
                                o.secs,
                                round as u64,
                            )),
                            _ => python::cell(
                                python.as_deref().unwrap_or(Path::new("python3")),
                                &run_dir,
                                &t.cluster.addresses(),
                                &database,
                                conns,
                                o.secs,
                            ),
                        }
                        .map_err(|e| format!("{} {who} {conns} conns: {e}", b.tag()))?;
                        loads.push(probe::load1());
                        for (k, p) in phases.iter().enumerate() {
                            eprintln!(
                                "{:2} {who:6} {conns:3} conns {:6} {:9.1}/s p50 {:7.3} p99 {:8.3} ms busy {} errors {} (load {})",
                                b.tag(),
                                workload::PHASES[k],
                                p.rate(),
                                p.p50_ms,
                                p.p99_ms,
                                p.busy,
                                p.errors,
                                probe::loadavg()
                            );
                            per_backend[i][k].push(*p);
                        }
                    }
                }
                for (k, name) in ["writes", "point reads", "90/10 mix"].iter().enumerate() {
                    let fig = |b: Backend| {
                        targets
                            .iter()
                            .position(|(x, _)| *x == b)
                            .map(|i| Figure::Rate(per_backend[i][k].clone()))
                            .unwrap_or_else(|| Figure::Missing("not run".into()))
                    };
                    rep.rows.push(Row {
                        what: (*name).to_string(),
                        client: who.to_string(),
                        conns: conns.to_string(),
                        c: fig(Backend::C),
                        rs: fig(Backend::Rs),
                    });
                }
            }
        }
        for (_, mut t) in targets {
            t.cluster.kill_all();
        }
    }

    if o.big {
        let mut figs: Vec<(Backend, Vec<(String, Figure)>)> = Vec::new();
        for &b in &o.backends {
            let t = start(&rt, b, &bin(b), &run_dir.join(format!("big-{}", b.tag())))?;
            let rows = big(&rt, t, o.bulk_mib, o.bulk_rows, o.big_rows)
                .map_err(|e| format!("{}: {e}", b.tag()))?;
            loads.push(probe::load1());
            figs.push((b, rows));
        }
        let names: Vec<String> = figs
            .first()
            .map(|(_, r)| r.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        for (k, name) in names.iter().enumerate() {
            let fig = |b: Backend| {
                figs.iter()
                    .find(|(x, _)| *x == b)
                    .and_then(|(_, r)| r.get(k).map(|(_, f)| f.clone()))
                    .unwrap_or_else(|| Figure::Missing("not run".into()))
            };
            let client = if ["bulk", "fail-over", "one 1,000,000"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                "rust"
            } else {
                "-"
            };
            rep.rows.push(Row {
                what: name.clone(),
                client: client.into(),
                conns: if client == "rust" {
                    "1".into()
                } else {
                    "-".into()
                },
                c: fig(Backend::C),
                rs: fig(Backend::Rs),
            });
        }
    }

    let max_load = loads.iter().copied().fold(f64::NAN, f64::max);
    rep.header.push(format!(
        "- load average (1/5/15 min) at the start {load_start}, at the end {}; highest 1-min \
         load seen between cells {max_load:.1} (the machine is shared: other builds run beside)",
        probe::loadavg()
    ));
    rep.notes = vec![
        "rs/C: dqlite-rs divided by C for every figure (throughput > 1 and times, sizes, \
         latencies < 1 favour dqlite-rs). busy: requests refused with SQLITE_BUSY \
         (\"database is locked\"), not counted in the throughput."
            .into(),
        "Bulk load: transactions of `--bulk-rows` rows of 1 KiB made by SQLite on the leader, one \
         connection; memory and disk are measured 2 s after it; fail-over: one writer, \
         SIGKILL of the leader, time to the first acknowledged write; restart: the killed \
         node started again on its data, time to accept connections and to name the leader."
            .into(),
    ];
    let text = rep.markdown();
    println!("{text}");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&out, &text).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("xtask bench: table written to {}", out.display());
    // The nodes' data and logs are large after a bulk load: keep them only on request.
    if std::env::var_os("DQLITE_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&run_dir);
    } else {
        eprintln!(
            "xtask bench: nodes' data and logs kept in {}",
            run_dir.display()
        );
    }
    Ok(())
}

/// Bulk load, memory, disk, fail-over and restart on one fresh cluster; named figures.
fn big(
    rt: &tokio::runtime::Runtime,
    mut t: Target,
    mib: u64,
    rows_per_tx: u64,
    big_rows: u64,
) -> Result<Vec<(String, Figure)>, String> {
    let mut rows = Vec::new();
    let many = rt.block_on(workload::many_rows(&t.client, big_rows))?;
    rows.push((
        if big_rows == 1_000_000 {
            "one 1,000,000-row INSERT (one ~18 MiB entry)".into()
        } else {
            format!("one {big_rows}-row INSERT")
        },
        many,
    ));
    let (bulk, size) = rt.block_on(workload::bulk_load(&t.client, "bulk", mib, rows_per_tx))?;
    rows.push((
        format!("bulk load, {mib} MiB in {rows_per_tx}-row transactions"),
        bulk,
    ));
    let all = rt.block_on(async {
        let mut db = t.client.open("million").await.map_err(|e| e.to_string())?;
        Ok::<_, String>(size + workload::database_size(&mut db).await?)
    })?;
    rows.push((
        "size of the databases (1M rows + bulk)".into(),
        Figure::Bytes(vec![all]),
    ));
    std::thread::sleep(Duration::from_secs(2));
    let mem = |t: &Target| -> (Vec<u64>, Vec<u64>) {
        t.cluster
            .nodes
            .iter()
            .map(|n| n.pid().and_then(probe::rss).unwrap_or((0, 0)))
            .unzip()
    };
    let (rss, peak) = mem(&t);
    rows.push(("RSS per node after the load".into(), Figure::Bytes(rss)));
    rows.push(("peak RSS per node (VmHWM)".into(), Figure::Bytes(peak)));
    let disk: Vec<u64> = t
        .cluster
        .nodes
        .iter()
        .map(|n| probe::disk_usage(&n.data_dir))
        .collect();
    rows.push(("data directory per node".into(), Figure::Bytes(disk)));

    // Fail-over: a writer runs, the leader is SIGKILLed, the first write acknowledged after
    // that ends the outage.
    let servers = t.cluster.addresses();
    let leader = rt
        .block_on(t.client.leader())
        .map_err(|e| format!("leader: {e}"))?
        .ok_or("no leader before the fail-over")?;
    let victim = t
        .cluster
        .index_of(&leader.address)
        .ok_or_else(|| format!("leader {} is not one of ours", leader.address))?;
    let _guard = rt.enter();
    let writer = workload::Writer::start(servers, "failover".into(), Duration::from_secs(90));
    // Writes flow before the kill.
    let warm = Instant::now();
    while writer.first_ack_after(warm).is_none() && warm.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    t.cluster.nodes[victim].kill();
    // Only writes sent once the leader is gone count: one in flight may still have been
    // answered by it (C's first "fail-over" figures were 0.00 s from such replies).
    let dead = Instant::now();
    let mut after = None;
    while after.is_none() && killed.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(2));
        after = writer.first_ack_after(dead);
    }
    rt.block_on(writer.finish());
    rows.push((
        "fail-over: SIGKILL of the leader to the first acknowledged write".into(),
        match after {
            Some(a) => Figure::Seconds((a - killed).as_secs_f64()),
            None => Figure::Missing("no write acknowledged within 30 s".into()),
        },
    ));

    // Restart of the killed node on its data.
    let started = Instant::now();
    t.cluster.restart(victim)?;
    let address = t.cluster.nodes[victim].address.clone();
    let mut listening = None;
    while started.elapsed() < Duration::from_secs(60) {
        if launch::port_open(&address) {
            listening = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let serving = rt.block_on(workload::wait_serving(&address, Duration::from_secs(60)));
    rows.push((
        format!("restart of a node holding {mib} MiB: accepts connections"),
        listening.map_or(Figure::Missing("never".into()), |d| {
            Figure::Seconds(d.as_secs_f64())
        }),
    ));
    rows.push((
        format!("restart of a node holding {mib} MiB: names the leader"),
        match serving {
            Ok(_) => Figure::Seconds(started.elapsed().as_secs_f64()),
            Err(e) => Figure::Missing(e),
        },
    ));
    std::thread::sleep(Duration::from_secs(3));
    let (rss, _) = mem(&t);
    rows.push((
        "RSS per node, 3 s after the restart".into(),
        Figure::Bytes(rss),
    ));
    t.cluster.kill_all();
    Ok(rows)
}
