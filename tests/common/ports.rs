//! Addresses for members a test stops and restarts on the same port.
//!
//! Under parallel load a restart on the same port was refused with
//! "address in use" (about once in 50 loaded runs of the ckit tests). Two
//! things can hold the port, and each helper covers one:
//! [`restartable_addr`] gives a port below the ephemeral range, which no
//! outgoing connection of another test can be given while the member is
//! down (a port the kernel picks for `:0` is in that range), and
//! [`rebind`] waits while the port is still held otherwise.

use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port outgoing connections use (Linux's default otherwise).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A free `127.0.0.1:port` below the ephemeral range, to start a member on
/// that will restart there.
pub fn restartable_addr() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = 20_000u32;
    let high = u32::from(ephemeral_low()).max(low + 1_000);
    // Test binaries run in parallel: start each process elsewhere.
    let seed = std::process::id().wrapping_mul(7_919);
    for _ in 0..1_000 {
        let n = seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(104_729));
        let port = low + n % (high - low);
        let addr = format!("127.0.0.1:{port}");
        // Free now; only another restarting member could take it before
        // the caller binds, and those pick at random too.
        if std::net::TcpListener::bind(&addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port in {low}..{high} after 1000 tries");
}

/// Binds `addr` again for a member that restarts there, waiting up to 15 s
/// while the port is still held: a crashed runtime closes its sockets
/// asynchronously, and once under parallel load a restart found only a
/// `TIME_WAIT` socket of the previous life's on a port below the ephemeral
/// range and was refused (cause not established). Says on stderr how long
/// it waited.
pub async fn rebind(addr: impl std::fmt::Display) -> tokio::net::TcpListener {
    let addr = addr.to_string();
    let started = std::time::Instant::now();
    loop {
        match tokio::net::TcpListener::bind(&addr).await {
            Ok(listener) => {
                if started.elapsed() > std::time::Duration::from_millis(100) {
                    eprintln!(
                        "note: {addr} was bindable again after {:?}",
                        started.elapsed()
                    );
                }
                return listener;
            }
            Err(_) if started.elapsed() < std::time::Duration::from_secs(15) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot bind {addr} again within 15 s: {e}"),
        }
    }
}
