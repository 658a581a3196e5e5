//! The commands' own behaviour: listen, send, stream, their TLS, their
//! usage errors and exit codes, and the local cluster.

use super::*;

#[test]
fn listen_and_send() {
    let mut listener = Listener::start(&[]);
    let out = send_delivers(&mut listener, "68656c6c6f", 3, &[]);
    assert!(out.stderr.is_empty(), "{out:?}");
}

#[test]
fn uppercase_and_empty_hex_are_accepted() {
    let mut listener = Listener::start(&[]);
    let out = run(&["send", "--to", &listener.addr, "--hex", "DEADbeef"]);
    assert!(out.status.success(), "{out:?}");
    assert_packets(&mut listener, 1, "deadbeef");
    // An empty packet is a valid frame (cc 00 00) and is delivered.
    send_delivers(&mut listener, "", 1, &[]);
}

#[test]
fn stream_echo() {
    let mut listener = Listener::start(&["--echo-streams"]);
    let hex = "000102fffe68656c6c6f";
    let out = run(&["stream", "--to", &listener.addr, "--hex", hex]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), hex, "{out:?}");

    let open = listener.next_event();
    assert_eq!(open["event"], "stream_open", "{open}");
    let mut data = String::new();
    let close = loop {
        let e = listener.next_event();
        match e["event"].as_str() {
            Some("stream_data") => data.push_str(e["hex"].as_str().expect("hex")),
            Some("stream_close") => break e,
            _ => panic!("unexpected event {e}"),
        }
    };
    assert_eq!(data, hex);
    assert_eq!(close["bytes"], hex.len() / 2, "{close}");
    assert!(close.get("error").is_none(), "{close}");
}

#[test]
fn stream_echo_large() {
    // Near the largest single argument Linux accepts (128 KiB).
    let payload: Vec<u8> = (0..60_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
    let mut listener = Listener::start(&["--echo-streams"]);
    let out = run(&["stream", "--to", &listener.addr, "--hex", &hex]);
    assert!(out.status.success(), "{}\n{}", out.status, out.stderr);
    assert!(
        out.stdout.trim() == hex,
        "echo differs; stderr: {}",
        out.stderr
    );
    let close = listener.events("stream_close", 1);
    assert_eq!(close[0]["bytes"], payload.len(), "{}", close[0]);
}

#[test]
fn stream_without_echo_prints_nothing_back() {
    let mut listener = Listener::start(&[]);
    let out = run(&["stream", "--to", &listener.addr, "--hex", "6869"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, "\n", "{out:?}");
    let data = listener.events("stream_data", 1);
    assert_eq!(data[0]["hex"], "6869");
}

#[test]
fn send_to_closed_port_fails_promptly() {
    let to = format!("127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let out = fails_with_error("send", &to, &[]);
    assert!(out.stderr.contains(&to), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn stream_to_closed_port_fails() {
    let to = format!("127.0.0.1:{}", closed_port());
    let out = fails_with_error("stream", &to, &[]);
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn usage_errors() {
    for (bad, why) in [("zz", "invalid character"), ("abc", "odd number")] {
        let out = run(&["send", "--to", "127.0.0.1:1", "--hex", bad]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            out.stderr.contains("error: --hex is not valid hex: "),
            "{out:?}"
        );
        assert!(out.stderr.to_lowercase().contains(why), "{out:?}");
    }

    let out = run(&["send", "--hex", "00"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("--to"), "{out:?}");

    let out = run(&["send", "--to", "127.0.0.1:1", "--hex", "00", "--tls"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("--ca") && out.stderr.contains("--insecure"),
        "{out:?}"
    );

    let out = run(&["send", "--to", "127.0.0.1:1", "--hex", "00", "--count", "0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let out = run(&[
        "send",
        "--to",
        "127.0.0.1:1",
        "--hex",
        "00",
        "--timeout",
        "-1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let out = run(&["listen", "--addr", "127.0.0.1:0", "--tls-cert", "c.pem"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("--tls-key"), "{out:?}");

    let out = run(&[
        "listen",
        "--addr",
        "127.0.0.1:0",
        "--tls-cert",
        "/nonexistent/c.pem",
        "--tls-key",
        "/nonexistent/k.pem",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("/nonexistent/c.pem"), "{out:?}");

    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn metrics_count_received_packets() {
    let mut listener = Listener::start(&[]);
    send_delivers(&mut listener, "68656c6c6f", 3, &[]);

    let response = get_metrics(listener.port());
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("cluster_transport_rx_packets_total 3"),
        "{response}"
    );
    assert_eq!(
        metrics::metric_in(&response, "cluster_transport_rx_packets_total"),
        3.0,
        "{response}"
    );
    assert_eq!(
        metrics::metric_in(&response, "cluster_transport_rx_bytes_total"),
        15.0,
        "{response}"
    );
}

#[test]
fn tls_send_and_stream() {
    let dir = TempDir::new();
    let (cert, key) = self_signed(dir.path());
    let mut listener = Listener::start(&["--tls-cert", &cert, "--tls-key", &key, "--echo-streams"]);

    send_delivers(&mut listener, "746c73", 1, &["--tls", "--insecure"]);

    // Verified against the certificate itself, by its IP SAN.
    send_delivers(&mut listener, "636121", 1, &["--tls", "--ca", &cert]);

    let out = run(&[
        "stream",
        "--to",
        &listener.addr,
        "--hex",
        "6563686f",
        "--tls",
        "--ca",
        &cert,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), "6563686f", "{out:?}");

    // Without TLS the client speaks h2c to a TLS server: a clear failure.
    fails_with_error("send", &listener.addr, &[]);
}

#[test]
fn tls_with_untrusted_certificate_fails() {
    let dir = TempDir::new();
    let (cert, key) = self_signed(dir.path());
    let other = TempDir::new();
    let (other_cert, _) = self_signed(other.path());
    let listener = Listener::start(&["--tls-cert", &cert, "--tls-key", &key]);
    fails_with_error("send", &listener.addr, &["--tls", "--ca", &other_cert]);
}

#[cfg(unix)]
#[test]
fn listen_exits_cleanly_on_sigterm() {
    let mut listener = Listener::start(&[]);
    send_delivers(&mut listener, "01", 1, &[]);

    let pid = listener.child.id().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = listener.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            started.elapsed() < STEP,
            "listen still running {STEP:?} after SIGTERM"
        );
        thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
}

/// `gossiphttp cluster --nodes 3` converges and serves the members JSON.
#[cfg(feature = "cluster")]
#[test]
fn local_cluster_converges_and_serves_members() {
    use std::io::{Read, Write};
    // Three consecutive free ports: a free one, checked with the next two
    // (on a busy machine the ports right above a free one are often taken).
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let base = (0..100)
        .find_map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            drop(l);
            (port < u16::MAX - 2 && (0..3).all(|i| free(port + i))).then_some(port)
        })
        .expect("three consecutive free ports");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gossiphttp"))
        .args(["cluster", "--nodes", "3", "--base-port", &base.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut last = String::new();
    let ok = loop {
        if std::time::Instant::now() > deadline {
            break false;
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", base)) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let _ = s
                .write_all(b"GET /api/v1/members HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            last.clear();
            let _ = s.read_to_string(&mut last);
            if last.matches("\"state\":\"alive\"").count() == 3 {
                break true;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "the local cluster never showed 3 alive members: {last}");
}
