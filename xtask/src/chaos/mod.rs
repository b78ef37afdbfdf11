//! `cargo xtask chaos`: Jepsen-style fault testing of a real dqlite-rs cluster.
//!
//! A run builds `dqlite-node` once, starts 3 or 5 nodes each in its own network namespace
//! ([`netns`]), routes node-to-node traffic through a fault-injecting proxy ([`proxy`]), runs
//! workloads through `dqlite-client` ([`workload`], via [`adapter`]) while a nemesis
//! ([`nemesis`]) partitions, kills, pauses, slows, reconfigures and damages the cluster, then
//! heals everything, reads the final state, checks that the cluster converged and serves,
//! and checks every history ([`wgl`] for linearizability, invariant checkers for the others).
//!
//! It prints the seed, every fault with its time, operation counts by outcome and one
//! verdict line per checker; it exits 0 only when no anomaly was found and the cluster
//! recovered. A failing run keeps its folder (histories, node logs, events, seed) and prints
//! the shortest violating sequence of each anomaly. Namespaces, mounts and processes are
//! removed at the end, on Ctrl-C or a panic, and (after a crash) by the next run.

pub mod adapter;
pub mod applied;
pub mod ci_pass;
pub mod cli;
pub mod dbimage;
pub mod disk;
pub mod history;
pub mod nemesis;
pub mod netns;
pub mod nodes;
pub mod proxy;
pub mod wgl;
pub mod workload;
pub mod world;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cmd::{cargo, run, workspace_root};
use cli::Options;
use history::{Clock, Recorder};
use netns::Net;
use nodes::{NodeOpts, Nodes, wait_listening};
use workload::{CheckOptions, Ctx, Kind, Report, Verdict, append, bank, register, set};
use world::World;

/// `cargo xtask chaos ...`.
pub fn run_chaos(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", cli::USAGE);
        return Ok(());
    }
    if args.iter().any(|a| a == "--cleanup") {
        let done = netns::cleanup_leftovers();
        for l in &done {
            println!("chaos: {l}");
        }
        println!("chaos: cleanup done ({} items)", done.len());
        return Ok(());
    }
    let opts = cli::parse(args)?;
    let outcome = run_once(&opts)?;
    if outcome.passed {
        Ok(())
    } else {
        Err(outcome.message)
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run met its expectation (no anomaly and recovered; or, with `--expect-anomaly`,
    /// an anomaly found).
    pub passed: bool,
    /// Checkers that found anomalies.
    pub anomalies: Vec<String>,
    /// The cluster recovered.
    pub recovered: bool,
    /// Faults injected.
    pub faults: usize,
    /// Operations by workload: (name, ok, failed, unknown).
    pub ops: Vec<(String, usize, usize, usize)>,
    /// One line for the caller.
    pub message: String,
}

/// The base folder of runs.
fn base_dir(opts: &Options) -> PathBuf {
    opts.dir.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"))
            .join("chaos")
    })
}

/// Builds the node (once per invocation) and copies it where runs use it, so that a later
/// build does not change the binary under a running cluster.
pub fn node_binary(opts: &Options) -> Result<PathBuf, String> {
    if let Some(p) = &opts.node_bin {
        return Ok(p.clone());
    }
    let mut cmd = cargo();
    cmd.args(["build", "-p", "dqlite-node", "--bin", "dqlite-node"]);
    let profile = if opts.release { "release" } else { "debug" };
    if opts.release {
        cmd.arg("--release");
    }
    // The binary needs the `cli` feature (its command-line dependencies).
    let features = match &opts.node_features {
        Some(f) => format!("cli,{f}"),
        None => "cli".to_string(),
    };
    cmd.args(["--features", &features]);
    run(cmd)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let built = target.join(profile).join("dqlite-node");
    let bin_dir = base_dir(opts).join("bin");
    std::fs::create_dir_all(&bin_dir).map_err(|e| format!("{}: {e}", bin_dir.display()))?;
    let suffix = opts
        .node_features
        .as_deref()
        .map(|f| format!("-{}", f.replace([',', ' '], "+")))
        .unwrap_or_default();
    let dest = bin_dir.join(format!("dqlite-node-{profile}{suffix}"));
    let tmp = bin_dir.join(format!(".dqlite-node-{}", std::process::id()));
    std::fs::copy(&built, &tmp).map_err(|e| format!("copying {}: {e}", built.display()))?;
    std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    if opts.node_features.is_some() {
        // Leave target/ with the ordinary binary (cargo keeps both builds: this is quick).
        let mut plain = cargo();
        plain.args([
            "build",
            "-p",
            "dqlite-node",
            "--bin",
            "dqlite-node",
            "--features",
            "cli",
        ]);
        if opts.release {
            plain.arg("--release");
        }
        run(plain)?;
    }
    Ok(dest)
}

/// Stops the nodes and deletes the namespaces when dropped (normal end, error, panic).
struct Teardown {
    net: Arc<Net>,
    nodes: Option<Arc<Mutex<Nodes>>>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Some(n) = &self.nodes {
            n.lock().unwrap_or_else(|e| e.into_inner()).stop_all();
        }
        self.net.destroy();
    }
}

/// One run with `opts`.
pub fn run_once(opts: &Options) -> Result<RunOutcome, String> {
    for l in netns::cleanup_leftovers() {
        eprintln!("chaos: cleaned up after an earlier run: {l}");
    }
    netns::probe()?;
    let bin = node_binary(opts)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let folder = base_dir(opts).join("runs").join(format!(
        "{stamp}-{}-{}-s{}",
        opts.workload_arg, opts.nemesis_arg, opts.seed
    ));
    std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    let command = command_line(opts);
    std::fs::write(
        folder.join("seed.txt"),
        format!("seed {}\n{command}\n", opts.seed),
    )
    .map_err(|e| format!("{}: {e}", folder.display()))?;

    let membership = opts.has(nemesis::Kind::Membership);
    let slots = opts.nodes + usize::from(membership);
    let net = Arc::new(Net::create(slots)?);
    let mut teardown = Teardown {
        net: Arc::clone(&net),
        nodes: None,
    };
    let clock = Clock::start();
    let read_lease = opts.read_lease || opts.nemeses == [nemesis::Kind::Lease];
    let node_opts = NodeOpts {
        bin,
        read_lease,
        leader_local_reads: opts.leader_local_reads,
        tmpfs: opts.has(nemesis::Kind::Disk),
    };
    let nodes = Arc::new(Mutex::new(Nodes::new(node_opts, &net, &folder, clock)?));
    teardown.nodes = Some(Arc::clone(&nodes));
    // Until `home` is dropped this thread, and every thread it starts, lives in the control
    // namespace.
    let home = net.enter_ctl()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let header = format!(
        "chaos: seed {} | workload {} | nemesis {} | {} nodes | {} s | reads: {}",
        opts.seed,
        opts.workload_arg,
        opts.nemesis_arg,
        opts.nodes,
        opts.duration.as_secs(),
        read_mode(opts, read_lease)
    );
    println!("{header}");
    println!(
        "chaos: run folder {} (namespaces {}*)",
        folder.display(),
        net.ctl.trim_end_matches("ctl")
    );
    let result = rt.block_on(async {
        tokio::select! {
            r = drive(opts, Arc::clone(&net), Arc::clone(&nodes), &folder, clock) => r,
            s = interrupted() => Err(format!("interrupted by {s}; cleaning up")),
        }
    });
    drop(rt);
    drop(teardown);
    drop(home);
    let (outcome, keep) = match result {
        Ok(o) => {
            let keep = opts.keep || !o.passed || (o.anomalies.is_empty() && !o.recovered);
            (o, keep)
        }
        Err(e) => {
            println!("chaos: run aborted: {e}");
            println!("chaos: history, node logs and seed in {}", folder.display());
            return Err(format!(
                "run aborted: {e} (seed {}; {})",
                opts.seed,
                folder.display()
            ));
        }
    };
    if keep {
        println!("chaos: history, node logs and seed in {}", folder.display());
    } else {
        let _ = std::fs::remove_dir_all(&folder);
    }
    Ok(outcome)
}

/// The command that repeats a run.
fn command_line(opts: &Options) -> String {
    let mut c = format!(
        "cargo xtask chaos --workload {} --nemesis {} --duration {} --seed {} --nodes {}",
        opts.workload_arg,
        opts.nemesis_arg,
        opts.duration.as_secs(),
        opts.seed,
        opts.nodes
    );
    for (on, flag) in [
        (opts.read_lease, "--read-lease"),
        (opts.leader_local_reads, "--leader-local-reads"),
        (opts.release, "--release"),
    ] {
        if on {
            c.push(' ');
            c.push_str(flag);
        }
    }
    if let Some(f) = &opts.node_features {
        c.push_str(&format!(" --node-features {f}"));
    }
    c
}

fn read_mode(opts: &Options, read_lease: bool) -> String {
    if opts.leader_local_reads {
        format!(
            "leader-local (checked with a staleness bound of {} ms)",
            opts.stale_bound.as_millis()
        )
    } else if read_lease {
        "read-index with read lease (linearizable)".to_string()
    } else {
        "read-index (linearizable)".to_string()
    }
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    }
}

/// A workload's history while it runs.
enum Running {
    Register(Recorder<register::Call, register::Ret>),
    Bank(Recorder<bank::Call, bank::Ret>),
    Set(Recorder<set::Call, set::Ret>),
    Append(Recorder<append::Call, append::Ret>),
}

impl Running {
    async fn setup(kind: Kind, cluster: &adapter::Cluster) -> Result<(), String> {
        match kind {
            Kind::Register => register::setup(cluster).await,
            Kind::Bank => bank::setup(cluster).await,
            Kind::Set => set::setup(cluster).await,
            Kind::Append => append::setup(cluster).await,
        }
    }

    fn start(kind: Kind, ctx: &Ctx, clients: usize) -> (Running, Vec<tokio::task::JoinHandle<()>>) {
        let mut tasks = Vec::new();
        let running = match kind {
            Kind::Register => {
                let rec = Recorder::new(ctx.clock);
                let keys = Arc::new(Mutex::new(register::Keys::default()));
                for c in 0..clients {
                    tasks.push(tokio::spawn(register::client(
                        ctx.clone(),
                        c,
                        Arc::clone(&keys),
                        rec.clone(),
                    )));
                }
                Running::Register(rec)
            }
            Kind::Bank => {
                let rec = Recorder::new(ctx.clock);
                for c in 0..clients {
                    tasks.push(tokio::spawn(bank::client(ctx.clone(), c, rec.clone())));
                }
                Running::Bank(rec)
            }
            Kind::Set => {
                let rec = Recorder::new(ctx.clock);
                let next = Arc::new(AtomicI64::new(1));
                for c in 0..clients {
                    tasks.push(tokio::spawn(set::client(
                        ctx.clone(),
                        c,
                        Arc::clone(&next),
                        rec.clone(),
                    )));
                }
                Running::Set(rec)
            }
            Kind::Append => {
                let rec = Recorder::new(ctx.clock);
                let keys = Arc::new(Mutex::new(append::Keys::default()));
                for c in 0..clients {
                    tasks.push(tokio::spawn(append::client(
                        ctx.clone(),
                        c,
                        Arc::clone(&keys),
                        rec.clone(),
                    )));
                }
                Running::Append(rec)
            }
        };
        (running, tasks)
    }

    async fn final_read(&self, cluster: &adapter::Cluster) -> Result<(), String> {
        match self {
            Running::Register(r) => register::final_read(cluster, r).await,
            Running::Bank(r) => bank::final_read(cluster, r).await,
            Running::Set(r) => set::final_read(cluster, r).await,
            Running::Append(r) => append::final_read(cluster, r).await,
        }
    }

    fn check(&self, opts: &CheckOptions) -> Report {
        match self {
            Running::Register(r) => register::check(&r.snapshot(), opts),
            Running::Bank(r) => bank::check(&r.snapshot(), opts),
            Running::Set(r) => set::check(&r.snapshot(), opts),
            Running::Append(r) => append::check(&r.snapshot(), opts),
        }
    }

    fn write(&self, folder: &Path) -> Result<(), String> {
        let path = |n: &str| folder.join(format!("history-{n}.jsonl"));
        match self {
            Running::Register(r) => history::write_jsonl(&path("register"), &r.snapshot()),
            Running::Bank(r) => history::write_jsonl(&path("bank"), &r.snapshot()),
            Running::Set(r) => history::write_jsonl(&path("set"), &r.snapshot()),
            Running::Append(r) => history::write_jsonl(&path("append"), &r.snapshot()),
        }
    }
}

/// The run itself, inside the control namespace's runtime.
async fn drive(
    opts: &Options,
    net: Arc<Net>,
    nodes: Arc<Mutex<Nodes>>,
    folder: &Path,
    clock: Clock,
) -> Result<RunOutcome, String> {
    let proxy = proxy::Proxy::start(&net, opts.seed)?;
    let seeds: Vec<String> = (0..opts.nodes).map(netns::node_address).collect();
    let cluster = adapter::Cluster::new(&seeds)?;
    let world = Arc::new(World::new(
        net,
        proxy,
        nodes,
        cluster.clone(),
        clock,
        folder.join("events.txt"),
        opts.nodes,
    ));

    // Bootstrap one node, join the others through it.
    {
        let mut n = world.nodes();
        n.new_identity(0)?;
        n.start(0, &[])?;
    }
    if !wait_listening(&seeds[0], Duration::from_secs(60)).await {
        return Err("the first node does not listen (see n0.log)".into());
    }
    for s in 1..opts.nodes {
        let mut n = world.nodes();
        n.new_identity(s)?;
        n.start(s, &seeds[..1])?;
    }
    world
        .wait_voters(opts.nodes, Duration::from_secs(90))
        .await?;
    let leader = world.leader().await;
    world.log(format!(
        "cluster: {} voters up, leader n{}",
        opts.nodes,
        leader.map_or("?".into(), |l| l.to_string())
    ));
    for &w in &opts.workloads {
        Running::setup(w, &cluster).await?;
    }

    // Watch for nodes that exit on their own.
    let watcher = {
        let world = Arc::clone(&world);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let exited = world.nodes().exited();
                for (s, status) in exited {
                    world.log(format!("node n{s} exited on its own ({status})"));
                }
            }
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let ctx = Ctx {
        cluster: cluster.clone(),
        clock,
        stop: Arc::clone(&stop),
        seed: opts.seed,
    };
    let mut running = Vec::new();
    let mut tasks = Vec::new();
    for &w in &opts.workloads {
        let (r, t) = Running::start(w, &ctx, opts.clients);
        running.push((w, r));
        tasks.extend(t);
    }
    world.log(format!(
        "load: {} clients on {}",
        tasks.len(),
        opts.workloads
            .iter()
            .map(|w| w.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let faults = nemesis::run(&world, &opts.nemeses, opts.duration, opts.seed).await;
    stop.store(true, Ordering::Relaxed);
    let drain = tokio::time::timeout(
        Duration::from_secs(30),
        futures::future::join_all(tasks.iter_mut()),
    )
    .await;
    if drain.is_err() {
        for t in &tasks {
            t.abort();
        }
        world.log("load: clients still busy after 30 s were stopped");
    }
    world.log("load: stopped; healing everything");
    for h in world.heal_all().await {
        world.log(format!("heal: {h}"));
    }

    // The final state, then convergence.
    let mut recovery_problems = Vec::new();
    for (w, r) in &running {
        if let Err(e) = r.final_read(&cluster).await {
            recovery_problems.push(format!("{}: {e}", w.name()));
        }
    }
    let dbs: Vec<&str> = opts.workloads.iter().map(|w| w.name()).collect();
    let converged = world.converged(&dbs, Duration::from_secs(90)).await;
    watcher.abort();
    let recovery_line = match &converged {
        Ok(s) if recovery_problems.is_empty() => format!("PASS: {s}"),
        Ok(s) => format!("FAIL: {} ({s})", recovery_problems.join("; ")),
        Err(e) => {
            recovery_problems.push(e.clone());
            format!("FAIL: {}", recovery_problems.join("; "))
        }
    };
    let recovered = recovery_problems.is_empty();
    // Read once: with the apply lines at debug, a long run's logs are tens of MiB.
    let logs = world.nodes().logs();
    let panics = nodes::panics(&logs);
    let replicas = applied::compare(&logs);
    drop(logs);

    // Check the histories (CPU-bound: off the runtime's threads).
    let check_opts = CheckOptions {
        stale_bound: if opts.leader_local_reads {
            opts.stale_bound.as_micros() as u64
        } else {
            0
        },
    };
    let running = Arc::new(running);
    let reports: Vec<Report> = {
        let running = Arc::clone(&running);
        tokio::task::spawn_blocking(move || {
            running.iter().map(|(_, r)| r.check(&check_opts)).collect()
        })
        .await
        .map_err(|e| format!("checker: {e}"))?
    };

    // The report.
    let events = world.events();
    let fault_lines: Vec<&(u64, String)> = events
        .iter()
        .filter(|(_, e)| {
            nemesis::Kind::ALL
                .iter()
                .any(|k| e.starts_with(&format!("{}:", k.name())))
        })
        .collect();
    println!();
    println!(
        "== chaos result: seed {} | {} ==",
        opts.seed,
        command_line(opts)
    );
    println!("faults ({faults} injected):");
    for (t, e) in &fault_lines {
        println!("  [{}] {e}", history::secs(*t));
    }
    let mut anomalies = Vec::new();
    let mut ops = Vec::new();
    for r in &reports {
        println!("ops {}: {}", r.workload, r.counts);
        ops.push((
            r.workload.to_string(),
            r.counts.ok,
            r.counts.fail,
            r.counts.unknown,
        ));
    }
    for r in &reports {
        let v = match r.verdict {
            Verdict::Pass => "PASS",
            Verdict::Anomaly => "ANOMALY",
            Verdict::Undecided => "UNDECIDED",
        };
        println!("verdict {}: {v}: {}", r.workload, r.summary);
        if r.verdict == Verdict::Anomaly {
            anomalies.push(r.workload.to_string());
        }
    }
    println!("verdict recovery: {recovery_line}");
    if panics.is_empty() {
        println!("verdict nodes: PASS: no node panicked");
    } else {
        for (s, l) in &panics {
            println!("verdict nodes: ANOMALY: n{s} panicked: {l}");
        }
        anomalies.push("nodes".into());
    }
    match &replicas {
        Ok(s) => println!("verdict replicas: PASS: {s}"),
        Err(problems) => {
            for p in problems {
                println!("verdict replicas: ANOMALY: {p}");
            }
            anomalies.push("replicas".into());
        }
    }
    let witness: Vec<&String> = reports.iter().flat_map(|r| r.witness.iter()).collect();
    if !witness.is_empty() {
        println!("shortest violating sequences:");
        for l in &witness {
            println!("  {l}");
        }
    }
    let clean = anomalies.is_empty() && recovered;
    let passed = if opts.expect_anomaly {
        !reports.iter().all(|r| r.verdict != Verdict::Anomaly)
    } else {
        clean
    };
    if !clean || opts.keep {
        for (_, r) in running.iter() {
            if let Err(e) = r.write(folder) {
                println!("chaos: could not write a history: {e}");
            }
        }
        let summary: Vec<String> = reports
            .iter()
            .map(|r| {
                format!(
                    "{}: {:?}: {} ({})",
                    r.workload, r.verdict, r.summary, r.counts
                )
            })
            .chain([format!("recovery: {recovery_line}")])
            .chain(witness.iter().map(|w| w.to_string()))
            .collect();
        let _ = std::fs::write(folder.join("summary.txt"), summary.join("\n") + "\n");
    }
    let message = if clean {
        format!("PASS (seed {})", opts.seed)
    } else {
        let mut why = Vec::new();
        if !anomalies.is_empty() {
            why.push(format!("anomalies in {}", anomalies.join(", ")));
        }
        if !recovered {
            why.push("the cluster did not recover".to_string());
        }
        format!("FAIL: {} (seed {})", why.join("; "), opts.seed)
    };
    if opts.expect_anomaly {
        println!(
            "chaos: {message}; an anomaly was expected: {}",
            if passed {
                "found, as it should be"
            } else {
                "NONE FOUND"
            }
        );
    } else {
        println!("chaos: {message}");
    }
    Ok(RunOutcome {
        passed,
        anomalies,
        recovered,
        faults,
        ops,
        message,
    })
}
