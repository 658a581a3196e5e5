//! `gossiphttp cluster --nodes N` in one process, observed from a
//! `gossiphttp node` outside it: convergence, open files, and how long
//! Ctrl-C takes with every member recorded as left.

use crate::inproc;
use crate::procs::{self, Proc};
use crate::report::{secs, Row};
use crate::Res;
use std::time::{Duration, Instant};

pub fn cluster_command_row(n: usize) -> Row {
    let name = format!("`gossiphttp cluster --nodes {n}`, Ctrl-C");
    match run(n) {
        Ok(row) => row,
        Err(e) => Row::failed(name, e),
    }
}

/// A base port with `n` free ports after it.
fn free_base_port(n: usize) -> Res<u16> {
    'base: for base in (20_000u16..60_000).step_by(1_000) {
        for p in base..base + n as u16 {
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                continue 'base;
            }
        }
        return Ok(base);
    }
    Err("no run of free ports".into())
}

fn run(n: usize) -> Res<Row> {
    let base = free_base_port(n)?;
    let t0 = Instant::now();
    let nodes = n.to_string();
    let base_text = base.to_string();
    let mut cluster = Proc::spawn(&["cluster", "--nodes", &nodes, "--base-port", &base_text])?;
    cluster.ready(Duration::from_secs(60))?;
    let started = t0.elapsed();
    let seed = format!("127.0.0.1:{base}");
    let mut observer = Proc::node("observer", Some(&seed), &[])?;
    observer.ready(Duration::from_secs(20))?;
    let joined = procs::wait_joined(
        std::slice::from_ref(&observer),
        n + 1,
        t0,
        Duration::from_secs(120),
    );
    let converged = joined[0];
    // Every member of the process sees the observer too: wait until the
    // observer's own table is all alive, then give the others a moment.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut alive = 0;
    while Instant::now() < deadline {
        let states = procs::member_states(&observer)?;
        alive = states.iter().filter(|(_, s)| s == "alive").count();
        if alive == n + 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let fds = inproc::open_files(&cluster.pid());
    let rss = inproc::rss(&cluster.pid());
    let cpu0 = inproc::process_cpu(&cluster.pid());
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let cpu = inproc::process_cpu(&cluster.pid()).saturating_sub(cpu0);
    let busy = cpu.as_secs_f64() / w0.elapsed().as_secs_f64();

    let stop0 = Instant::now();
    cluster.interrupt()?;
    let exit = loop {
        if let Some(status) = cluster.process.child.try_wait()? {
            break Some((stop0.elapsed(), status));
        }
        if stop0.elapsed() > Duration::from_secs(60) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // What the observer recorded right after the exit, and 2 s later.
    let count = |states: &[(String, String)], s: &str| {
        states
            .iter()
            .filter(|(name, st)| name != "observer" && st == s)
            .count()
    };
    let at_exit = procs::member_states(&observer)?;
    std::thread::sleep(Duration::from_secs(2));
    let later = procs::member_states(&observer)?;
    let mut row = Row::new(format!("`gossiphttp cluster --nodes {n}`, Ctrl-C"));
    let (stop_time, status) = match exit {
        Some((t, status)) => (secs(t), status.to_string()),
        None => ("**still running after 60 s**".into(), "-".into()),
    };
    row.result = format!(
        "stopped in {stop_time} ({status}); the observer held {} left, {} dead, {} alive at the exit, {} left, {} dead 2 s later; {fds} open files, {:.0} MiB RSS, {:.2} cores busy at rest",
        count(&at_exit, "left"),
        count(&at_exit, "dead"),
        count(&at_exit, "alive"),
        count(&later, "left"),
        count(&later, "dead"),
        rss as f64 / 1024.0 / 1024.0,
        busy,
    );
    row.target = "runs within the file limit (20,000), stops in 2 s, every member left".into();
    row.ckit = "foca (today): 208 open files per node at 100, the limit hit after ~25 s, Ctrl-C 33 s with 2–35 members dead instead of left".into();
    row.notes = format!(
        "the process printed its first line {} after spawn; the observer (a `gossiphttp node` joined to the first member) logged all {n} joined at {}, and saw {alive} of {} alive; open files and RSS of the cluster process once converged, CPU over 5 s then; the command's own settings (LAN past 20 members, a connection budget per member)",
        secs(started),
        converged.map_or("never".into(), secs),
        n + 1,
    );
    Ok(row)
}
