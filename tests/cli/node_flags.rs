//! What an operator joining a real cluster sets on `gossiphttp node`: the
//! label (from the environment, as container deployments give it), the
//! advertise address, the ckit state; each seen in the members' JSON.

use super::*;

/// `GET /api/v1/members` from a node, the whole response as text (or why
/// there is none).
fn members_json(addr: &str) -> String {
    cli_proc::http_get_raw(addr, "/api/v1/members", STEP).unwrap_or_else(|e| e)
}

/// Polls `addr`'s members JSON until `ready` holds for it.
fn wait_members(addr: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let json = members_json(addr);
        if ready(&json) {
            return json;
        }
        assert!(started.elapsed() < STEP * 4, "{what}: {json}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn node(name: &str, extra: &[&str], envs: &[(&str, &str)]) -> Listener {
    let args = [
        &[
            "node",
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--preset",
            "fast",
        ][..],
        extra,
    ]
    .concat();
    Listener::spawn(&args, envs, " listening on ")
}

#[test]
fn the_label_from_the_environment_admits_its_cluster_and_refuses_others() {
    let a = node("a", &[], &[("GOSSIPHTTP_LABEL", "prod")]);
    let _b = node("b", &["--join", &a.addr], &[("GOSSIPHTTP_LABEL", "prod")]);
    let stranger = node(
        "stranger",
        &["--join", &a.addr],
        &[("GOSSIPHTTP_LABEL", "dev")],
    );
    wait_members(&a.addr, "b joins a", |j| j.contains("\"name\":\"b\""));
    // The stranger has tried by now (it joins at start), and was refused.
    thread::sleep(Duration::from_millis(500));
    let json = members_json(&a.addr);
    assert!(!json.contains("stranger"), "{json}");
    // Both operators hear about it, with the labels named.
    let a_log = a.stderr.lock().unwrap().clone();
    assert!(
        a_log.contains("WARN") && a_log.contains("refused for its label") && a_log.contains("dev"),
        "a's log: {a_log}"
    );
    let stranger_log = stranger.stderr.lock().unwrap().clone();
    assert!(
        stranger_log.contains("WARN") && stranger_log.contains("could not join"),
        "the stranger's log: {stranger_log}"
    );
}

#[test]
fn the_advertised_address_and_the_ckit_state_are_what_others_list() {
    let a = node("a", &[], &[]);
    // b listens on one port and advertises the same address by name.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let advertise = format!("localhost:{port}");
    let args = [
        "node",
        "--name",
        "b",
        "--listen",
        &listen,
        "--preset",
        "fast",
        "--join",
        &a.addr,
        "--ckit-state",
        "viewer",
    ];
    let _b = Listener::spawn(
        &args,
        &[("GOSSIPHTTP_ADVERTISE", &advertise)],
        " listening on ",
    );
    let json = wait_members(&a.addr, "b with its ckit state", |j| {
        j.contains("\"name\":\"b\"") && j.contains("\"ckit_state\":\"viewer\"")
    });
    // The name was resolved at start: memberlist carries an IP.
    assert!(
        json.contains(&format!("\"addr\":\"127.0.0.1:{port}\"")),
        "{json}"
    );
}

#[test]
fn an_advertise_address_without_a_port_or_with_port_0_takes_the_listen_port() {
    let a = node("a", &[], &[]);
    // Both listen on a port picked at bind time; memberlist's rule for
    // AdvertisePort 0 is the bound port, and so is ours.
    let b = node("b", &["--join", &a.addr, "--advertise", "127.0.0.1:0"], &[]);
    let c = node(
        "c",
        &["--join", &a.addr],
        &[("GOSSIPHTTP_ADVERTISE", "localhost")],
    );
    let json = wait_members(&a.addr, "b and c join a", |j| {
        j.contains("\"name\":\"b\"") && j.contains("\"name\":\"c\"")
    });
    for listening in [&b.addr, &c.addr] {
        assert!(!listening.ends_with(":0"), "{listening}");
        assert!(
            json.contains(&format!("\"addr\":\"{listening}\"")),
            "{listening} not listed: {json}"
        );
    }
}

#[test]
fn the_hasher_from_the_environment_is_what_the_shards_endpoint_measures() {
    let a = node("a", &[], &[("GOSSIPHTTP_HASHER", "ring:64")]);
    let shards = cli_proc::http_get_raw(&a.addr, "/api/v1/shards", STEP).unwrap_or_else(|e| e);
    assert!(
        shards.contains("\"hasher\":\"ring\"") && shards.contains("\"tokens_per_peer\":64"),
        "{shards}"
    );
    let other = cli_proc::http_get_raw(&a.addr, "/api/v1/shards?hasher=rendezvous", STEP)
        .unwrap_or_else(|e| e);
    assert!(other.contains("\"hasher\":\"rendezvous\""), "{other}");
    // A name ckit does not have is refused at start, with the choices.
    let out = run(&[
        "node",
        "--name",
        "b",
        "--listen",
        "127.0.0.1:0",
        "--hasher",
        "md5",
    ]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("md5") && out.stderr.contains("rendezvous"),
        "{}",
        out.stderr
    );
}
