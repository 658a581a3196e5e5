//! Join discovery against a real DNS server started on 127.0.0.1
//! (tests/common/dns.rs): A, AAAA, SRV, failures beside successes, and a
//! rollout (records changed between two `resolve()` calls).
//!
//! Every wait is bounded; assertions are on what was resolved, never on
//! elapsed time.
#![cfg(feature = "cluster")]

mod common;
#[path = "common/dns.rs"]
mod dns;

use dns::{DnsServer, SilentServer};
use gossiphttp::discovery::{
    Discovery, JoinEntry, JoinEntryError, RecordKind, ResolveErrorKind, Resolved, JOIN_HELP,
};
use hickory_proto::op::ResponseCode;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

fn entries(list: &[&str]) -> Vec<JoinEntry> {
    list.iter()
        .map(|e| e.parse().unwrap_or_else(|err| panic!("{e}: {err}")))
        .collect()
}

fn addrs(list: &[&str]) -> HashSet<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

fn set(resolved: &Resolved) -> HashSet<SocketAddr> {
    resolved.addrs.iter().copied().collect()
}

async fn resolve(server: &DnsServer, list: &[&str]) -> Resolved {
    let discovery = Discovery::with_nameservers(entries(list), &[server.addr]);
    common::within("resolve", discovery.resolve()).await
}

/// Resolves and expects no failure.
async fn resolve_ok(server: &DnsServer, list: &[&str]) -> HashSet<SocketAddr> {
    let resolved = resolve(server, list).await;
    assert!(resolved.failures.is_empty(), "{:#?}", resolved.failures);
    assert_eq!(
        resolved.addrs.len(),
        set(&resolved).len(),
        "duplicates: {:?}",
        resolved.addrs
    );
    set(&resolved)
}

#[tokio::test]
async fn ip_literals_are_used_without_asking_dns() {
    let server = DnsServer::start().await;
    let found = resolve_ok(&server, &["10.1.2.3:7946", "[fd00::7]:80", " 127.0.0.1:1 "]).await;
    assert_eq!(
        found,
        addrs(&["10.1.2.3:7946", "[fd00::7]:80", "127.0.0.1:1"])
    );
    assert_eq!(server.total_questions(), 0);

    // Nor is the system's configuration read: nothing can fail.
    let system = Discovery::new(entries(&["10.1.2.3:7946"])).expect("no DNS config needed");
    let resolved = common::within("resolve", system.resolve()).await;
    assert_eq!(set(&resolved), addrs(&["10.1.2.3:7946"]));
}

#[tokio::test]
async fn a_name_resolves_to_every_a_and_aaaa_address() {
    let server = DnsServer::start().await;
    server.set_a(
        "v4.test",
        &[Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)],
    );
    server.set_aaaa("v6.test", &["fd00::1".parse().unwrap()]);
    server.set_a("dual.test", &[Ipv4Addr::new(10, 0, 0, 3)]);
    server.set_aaaa(
        "dual.test",
        &["fd00::3".parse().unwrap(), "fd00::4".parse().unwrap()],
    );

    let v4 = resolve_ok(&server, &["v4.test:7946"]).await;
    assert_eq!(v4, addrs(&["10.0.0.1:7946", "10.0.0.2:7946"]));
    let v6 = resolve_ok(&server, &["v6.test:7946"]).await;
    assert_eq!(v6, addrs(&["[fd00::1]:7946"]));
    let dual = resolve_ok(&server, &["dual.test:80"]).await;
    assert_eq!(
        dual,
        addrs(&["10.0.0.3:80", "[fd00::3]:80", "[fd00::4]:80"])
    );
}

#[tokio::test]
async fn srv_gives_each_target_its_addresses_and_its_record_port() {
    let server = DnsServer::start().await;
    server.set_srv(
        "_memberlist._tcp.cluster.test",
        &[
            ("a.cluster.test", 7001),
            ("b.cluster.test", 7002),
            ("c.cluster.test", 7003),
        ],
    );
    server.set_a("a.cluster.test", &[Ipv4Addr::new(10, 0, 1, 1)]);
    server.set_a("b.cluster.test", &[Ipv4Addr::new(10, 0, 1, 2)]);
    server.set_aaaa("b.cluster.test", &["fd00::12".parse().unwrap()]);
    server.set_aaaa("c.cluster.test", &["fd00::13".parse().unwrap()]);
    let want = addrs(&[
        "10.0.1.1:7001",
        "10.0.1.2:7002",
        "[fd00::12]:7002",
        "[fd00::13]:7003",
    ]);

    let found = resolve_ok(&server, &["_memberlist._tcp.cluster.test"]).await;
    assert_eq!(found, want);
    // A port written after an SRV name is ignored: the record's port wins.
    let found = resolve_ok(&server, &["_memberlist._tcp.cluster.test:9999"]).await;
    assert_eq!(found, want);
}

#[tokio::test]
async fn a_failing_entry_leaves_the_others_resolved() {
    let server = DnsServer::start().await;
    server.set_a("up.test", &[Ipv4Addr::new(10, 0, 2, 1)]);
    server.set_srv(
        "_gossip._tcp.half.test",
        &[("up.test", 7001), ("gone.test", 7002)],
    );
    let resolved = resolve(
        &server,
        &[
            "up.test:7946",
            "missing.test:7946",
            "10.0.2.9:7946",
            "_gossip._tcp.half.test",
        ],
    )
    .await;

    assert_eq!(
        set(&resolved),
        addrs(&["10.0.2.1:7946", "10.0.2.9:7946", "10.0.2.1:7001"])
    );
    let failures: Vec<_> = resolved
        .failures
        .iter()
        .map(|f| (f.entry.as_str(), f.name.as_str(), f.record, f.kind.clone()))
        .collect();
    assert_eq!(
        failures,
        [
            (
                "missing.test:7946",
                "missing.test",
                RecordKind::Address,
                ResolveErrorKind::NoSuchName
            ),
            // The SRV target that does not exist, named with its entry.
            (
                "_gossip._tcp.half.test",
                "gone.test.",
                RecordKind::Address,
                ResolveErrorKind::NoSuchName
            ),
        ]
    );
}

#[tokio::test]
async fn a_changed_record_is_seen_on_the_next_call() {
    // A rollout: every member comes back on a new IP. The records' TTL is
    // 300 s, so a resolver that kept answers would return the old ones.
    let server = DnsServer::start().await;
    server.set_a(
        "members.test",
        &[Ipv4Addr::new(10, 0, 3, 1), Ipv4Addr::new(10, 0, 3, 2)],
    );
    server.set_srv(
        "_memberlist._tcp.members.test",
        &[("old.members.test", 7001)],
    );
    server.set_a("old.members.test", &[Ipv4Addr::new(10, 0, 3, 9)]);
    let discovery = Discovery::with_nameservers(
        entries(&["members.test:7946", "_memberlist._tcp.members.test"]),
        &[server.addr],
    );

    let before = common::within("resolve", discovery.resolve()).await;
    assert!(before.failures.is_empty(), "{:#?}", before.failures);
    assert_eq!(
        set(&before),
        addrs(&["10.0.3.1:7946", "10.0.3.2:7946", "10.0.3.9:7001"])
    );

    server.set_a(
        "members.test",
        &[Ipv4Addr::new(10, 0, 4, 1), Ipv4Addr::new(10, 0, 4, 2)],
    );
    server.set_srv(
        "_memberlist._tcp.members.test",
        &[("new.members.test", 7002)],
    );
    server.set_a("new.members.test", &[Ipv4Addr::new(10, 0, 4, 9)]);
    server.remove("old.members.test");

    let after = common::within("resolve", discovery.resolve()).await;
    assert!(after.failures.is_empty(), "{:#?}", after.failures);
    assert_eq!(
        set(&after),
        addrs(&["10.0.4.1:7946", "10.0.4.2:7946", "10.0.4.9:7002"])
    );
}

#[tokio::test]
async fn the_same_address_from_several_entries_is_listed_once() {
    let server = DnsServer::start().await;
    server.set_a("one.test", &[Ipv4Addr::new(10, 0, 5, 1)]);
    server.set_a("alias.test", &[Ipv4Addr::new(10, 0, 5, 1)]);
    server.set_srv("_m._tcp.one.test", &[("one.test", 7946)]);
    let found = resolve_ok(
        &server,
        &[
            "one.test:7946",
            "alias.test:7946",
            "10.0.5.1:7946",
            "_m._tcp.one.test",
        ],
    )
    .await;
    assert_eq!(found, addrs(&["10.0.5.1:7946"]));
}

#[tokio::test]
async fn an_answer_too_large_for_udp_is_fetched_over_tcp() {
    // A headless Service listing hundreds of members.
    let server = DnsServer::start().await;
    let ips: Vec<Ipv4Addr> = (0..300u16)
        .map(|i| Ipv4Addr::new(10, 1, (i / 256) as u8, (i % 256) as u8))
        .collect();
    server.set_a("big.test", &ips);
    let found = resolve_ok(&server, &["big.test:7946"]).await;
    let want: HashSet<SocketAddr> = ips.iter().map(|ip| SocketAddr::from((*ip, 7946))).collect();
    assert_eq!(found, want);
}

#[tokio::test]
async fn nxdomain_and_no_records_name_the_entry_the_record_and_the_fix() {
    let server = DnsServer::start().await;
    server.set_srv("srv-only.test", &[("x.test", 1)]);
    // A name that exists, with no SRV record.
    server.set_a("_m._tcp.a-only.test", &[Ipv4Addr::new(10, 0, 6, 1)]);
    let resolved = resolve(
        &server,
        &[
            "nosuch.test:7946",
            "srv-only.test:7946",
            "_m._tcp.a-only.test",
        ],
    )
    .await;
    assert!(resolved.addrs.is_empty());
    let [nx, no_address, no_srv] = resolved.failures.as_slice() else {
        panic!("three failures expected: {:#?}", resolved.failures);
    };

    assert_eq!(nx.kind, ResolveErrorKind::NoSuchName);
    let message = nx.to_string();
    for part in ["nosuch.test:7946", "A/AAAA", "NXDOMAIN", "spelling"] {
        assert!(message.contains(part), "{part:?} missing from {message:?}");
    }

    assert_eq!(no_address.kind, ResolveErrorKind::NoRecords);
    assert_eq!(no_address.record, RecordKind::Address);
    let message = no_address.to_string();
    for part in [
        "srv-only.test:7946",
        "A/AAAA",
        "no records",
        "publishNotReadyAddresses",
    ] {
        assert!(message.contains(part), "{part:?} missing from {message:?}");
    }

    assert_eq!(no_srv.kind, ResolveErrorKind::NoRecords);
    assert_eq!(no_srv.record, RecordKind::Srv);
    assert!(no_srv.to_string().contains("SRV"), "{no_srv}");
}

#[tokio::test]
async fn a_server_error_is_told_apart_from_a_missing_name() {
    let server = DnsServer::start().await;
    server.fail("broken.test", ResponseCode::ServFail);
    server.set_a("fine.test", &[Ipv4Addr::new(10, 0, 7, 1)]);
    let resolved = resolve(&server, &["broken.test:7946", "fine.test:7946"]).await;
    assert_eq!(set(&resolved), addrs(&["10.0.7.1:7946"]));
    let [failure] = resolved.failures.as_slice() else {
        panic!("one failure expected: {:#?}", resolved.failures);
    };
    assert!(
        matches!(&failure.kind, ResolveErrorKind::ServerError(code) if code.contains("Server Failure")),
        "{failure:?}"
    );
    assert!(
        failure.to_string().contains("broken.test:7946"),
        "{failure}"
    );
}

#[tokio::test]
async fn a_nameserver_that_does_not_answer_times_out_within_the_bound() {
    let silent = SilentServer::start().await;
    let bound = Duration::from_millis(500);
    let discovery = Discovery::with_nameservers(
        entries(&["quiet.test:7946", "_m._tcp.quiet.test", "10.0.8.1:7946"]),
        &[silent.addr],
    )
    .timeout(bound);
    // Generous against a loaded machine: only a missing bound reaches it.
    let resolved = common::within_for(bound * 10, "resolve", discovery.resolve()).await;

    assert_eq!(set(&resolved), addrs(&["10.0.8.1:7946"]));
    assert_eq!(resolved.failures.len(), 2, "{:#?}", resolved.failures);
    for failure in &resolved.failures {
        assert_eq!(
            failure.kind,
            ResolveErrorKind::TimedOut(bound),
            "{failure:?}"
        );
        let message = failure.to_string();
        assert!(message.contains("no answer within 500ms"), "{message}");
        assert!(message.contains("reachable"), "{message}");
    }
}

#[test]
fn entries_parse_into_addresses_names_and_srv_names() {
    let parsed = entries(&[
        "10.0.0.1:7946",
        "[fd00::1]:7946",
        "alloy.monitoring.svc.cluster.local:7946",
        "Node-1:80",
        "_memberlist._tcp.alloy.monitoring.svc.cluster.local",
        "_memberlist._tcp.alloy:1",
    ]);
    assert_eq!(
        parsed,
        [
            JoinEntry::Addr("10.0.0.1:7946".parse().unwrap()),
            JoinEntry::Addr("[fd00::1]:7946".parse().unwrap()),
            JoinEntry::Host {
                name: "alloy.monitoring.svc.cluster.local".into(),
                port: 7946
            },
            JoinEntry::Host {
                name: "Node-1".into(),
                port: 80
            },
            JoinEntry::Srv {
                name: "_memberlist._tcp.alloy.monitoring.svc.cluster.local".into()
            },
            JoinEntry::Srv {
                name: "_memberlist._tcp.alloy".into()
            },
        ]
    );
}

#[test]
fn bad_entries_are_refused_with_the_fix() {
    let cases: &[(&str, &str)] = &[
        ("", "empty join entry"),
        ("  ", "empty join entry"),
        ("alloy", "as in alloy:7946"),
        ("10.0.0.1", "as in 10.0.0.1:7946"),
        ("[fd00::1]", "as in [fd00::1]:7946"),
        ("fd00::1", "in brackets"),
        // Itself an IPv6 address: where the port starts is a guess.
        ("fd00::1:7946", "in brackets"),
        ("alloy:0", "from 1 to 65535"),
        ("alloy:http", "from 1 to 65535"),
        ("alloy:70000", "from 1 to 65535"),
        ("10.0.0.1:x", "from 1 to 65535"),
        ("[fd00::1]:", "from 1 to 65535"),
        ("[nope]:80", "IPv6 address"),
        ("al loy:80", "not a valid DNS name"),
        ("http://alloy:80", "not a valid DNS name"),
        ("_memberlist.alloy", "_service._proto.name"),
        ("_memberlist._tcp", "_service._proto.name"),
        ("_memberlist._tcp.alloy:0", "from 1 to 65535"),
    ];
    for (entry, hint) in cases {
        let err: JoinEntryError = entry
            .parse::<JoinEntry>()
            .expect_err(&format!("{entry:?} must be refused"));
        assert!(
            err.to_string().contains(hint),
            "{entry:?}: {hint:?} missing from {err}"
        );
    }
}

#[test]
fn entries_print_as_they_parse() {
    for entry in [
        "10.0.0.1:7946",
        "[fd00::1]:7946",
        "alloy:7946",
        "_m._tcp.alloy",
    ] {
        let parsed: JoinEntry = entry.parse().unwrap();
        assert_eq!(parsed.to_string(), entry);
        assert_eq!(parsed.to_string().parse::<JoinEntry>().unwrap(), parsed);
    }
}

#[tokio::test]
async fn an_srv_name_with_hundreds_of_targets_resolves_them_all() {
    // A headless Service's SRV name lists one target per pod.
    let server = DnsServer::start().await;
    let targets: Vec<(String, Ipv4Addr)> = (0..300u16)
        .map(|i| {
            let ip = Ipv4Addr::new(10, 2, (i / 256) as u8, (i % 256) as u8);
            (format!("pod-{i}.members.test"), ip)
        })
        .collect();
    for (name, ip) in &targets {
        server.set_a(name, &[*ip]);
    }
    let srv: Vec<(&str, u16)> = targets.iter().map(|(n, _)| (n.as_str(), 7946)).collect();
    server.set_srv("_memberlist._tcp.members.test", &srv);
    let found = resolve_ok(&server, &["_memberlist._tcp.members.test"]).await;
    let want: HashSet<SocketAddr> = targets
        .iter()
        .map(|(_, ip)| SocketAddr::from((*ip, 7946)))
        .collect();
    assert_eq!(found, want);
}

#[test]
fn the_help_text_examples_parse_as_they_describe() {
    // The entry lines of JOIN_HELP: indented two spaces, examples split by ", ".
    let examples: Vec<JoinEntry> = JOIN_HELP
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .flat_map(|l| l.trim().split(", "))
        .map(|e| e.parse().unwrap_or_else(|err| panic!("{e}: {err}")))
        .collect();
    let kinds: Vec<&str> = examples
        .iter()
        .map(|e| match e {
            JoinEntry::Addr(_) => "addr",
            JoinEntry::Host { .. } => "host",
            JoinEntry::Srv { .. } => "srv",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["addr", "addr", "host", "srv"]);
}

#[tokio::test]
async fn resolve_can_run_in_a_spawned_task() {
    // The node's join loop runs on its own task, on any runtime flavour.
    let server = DnsServer::start().await;
    server.set_a("spawned.test", &[Ipv4Addr::new(10, 0, 9, 1)]);
    let discovery = Discovery::with_nameservers(entries(&["spawned.test:7946"]), &[server.addr]);
    fn shareable<T: Send + Sync>(_: &T) {}
    shareable(&discovery);
    let task = tokio::spawn(async move { discovery.resolve().await });
    let resolved = common::within("spawned resolve", task).await.unwrap();
    assert_eq!(set(&resolved), addrs(&["10.0.9.1:7946"]));
}
