//! Discovery that survives a rollout: members join through a DNS name (a
//! DNS server on 127.0.0.1 answers for it) that is resolved again on every
//! rejoin attempt. When every member comes back on a new IP, and DNS only
//! later lists the new ones (as a Kubernetes Service does while pods turn
//! ready), the cluster re-forms with no restart (grafana/alloy#3865 reports
//! ckit clusters that never do). And two clusters that formed apart, each
//! from the part of the members DNS listed while they started, merge once
//! DNS lists them all.
#![cfg(feature = "cluster")]

mod common;
#[path = "common/dns.rs"]
mod dns;

use dns::DnsServer;
use gossiphttp::cluster::{MemberState, MemberView, Node, NodeOptions};
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::net::TcpListener;

const CONVERGE: Duration = Duration::from_secs(30);
const NAME: &str = "members.rollout.test";

async fn start(dns: &DnsServer, name: &str, ip: Ipv4Addr, port: u16) -> Node {
    start_with(dns, name, ip, port, |_| {}).await
}

async fn start_with(
    dns: &DnsServer,
    name: &str,
    ip: Ipv4Addr,
    port: u16,
    tweak: impl FnOnce(&mut NodeOptions),
) -> Node {
    let listener = TcpListener::bind((ip, port)).await.unwrap();
    let mut options = NodeOptions::new(name).fast();
    options.join = vec![format!("{NAME}:{port}")];
    options.nameserver = Some(dns.addr);
    tweak(&mut options);
    Node::start(options, listener).await.unwrap()
}

/// A free port, to be taken on several loopback addresses.
async fn free_port() -> u16 {
    TcpListener::bind("127.0.0.2:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn all_alive(n: usize) -> impl Fn(&[MemberView]) -> bool + Clone {
    move |v| v.iter().filter(|m| m.state == MemberState::Alive).count() == n
}

async fn wait_all(nodes: &[Node], what: &str, ready: impl Fn(&[MemberView]) -> bool + Clone) {
    for node in nodes {
        let ready = ready.clone();
        if let Err(e) = node.wait_for(CONVERGE, move |v| ready(v)).await {
            panic!(
                "{} never saw {what}: {e}; {:#?}",
                node.id().name,
                node.members()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_back_on_a_new_ip_re_forms_once_dns_lists_them() {
    let dns = DnsServer::start().await;
    let port = free_port().await;
    let old: Vec<Ipv4Addr> = (2..=4).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let new: Vec<Ipv4Addr> = (5..=7).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();

    dns.set_a(NAME, &old);
    let mut nodes = Vec::new();
    for (i, ip) in old.iter().enumerate() {
        nodes.push(start(&dns, &format!("m{i}"), *ip, port).await);
    }
    wait_all(&nodes, "the first cluster", all_alive(3)).await;

    // The rollout: every member is replaced by one on a new IP, while DNS
    // still lists the old ones.
    for node in nodes {
        node.kill().await;
    }
    let mut nodes = Vec::new();
    for (i, ip) in new.iter().enumerate() {
        nodes.push(start(&dns, &format!("m{i}"), *ip, port).await);
    }
    let asked = dns.questions(NAME);
    // Alone, each keeps asking DNS again (rejoin every 500 ms here): two
    // attempts each at least (A and AAAA per attempt).
    common::within_for(CONVERGE, "new questions to DNS", async {
        while dns.questions(NAME) < asked + 12 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for node in &nodes {
        let others_alive = node
            .members()
            .iter()
            .filter(|m| !m.local && m.state == MemberState::Alive)
            .count();
        assert_eq!(others_alive, 0, "{}: nobody to join yet", node.id().name);
    }

    // DNS catches up: the members find each other with no restart.
    dns.set_a(NAME, &new);
    wait_all(&nodes, "the re-formed cluster", all_alive(3)).await;
    for node in nodes {
        node.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_formed_apart_merge_once_dns_lists_every_member() {
    // Each pair asks a DNS server of its own, which lists only the pair:
    // the two views a name had while the pairs started (one server, its
    // answer changed between them, would let the first pair's
    // rediscovery find the second pair while it forms).
    let dns = [DnsServer::start().await, DnsServer::start().await];
    let port = free_port().await;
    let ips: [Vec<Ipv4Addr>; 2] = [
        (8..=9).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect(),
        (10..=11).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect(),
    ];
    let rediscover = |o: &mut NodeOptions| o.rediscover_interval = Duration::from_secs(1);
    let mut nodes = Vec::new();
    for (group, (dns, ips)) in ["a", "b"].into_iter().zip(dns.iter().zip(&ips)) {
        dns.set_a(NAME, ips);
        let pair = [
            start_with(dns, &format!("{group}0"), ips[0], port, rediscover).await,
            start_with(dns, &format!("{group}1"), ips[1], port, rediscover).await,
        ];
        wait_all(&pair, &format!("cluster {group}"), all_alive(2)).await;
        nodes.extend(pair);
    }
    // Apart, and neither alone: only rediscovery tries the join list now,
    // and for at least a rediscovery it finds nobody new.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for node in &nodes {
        assert_eq!(
            node.members().len(),
            2,
            "{}: {:?}",
            node.id().name,
            node.members()
        );
    }
    // DNS lists all four: within a rediscovery or two they are one.
    let all = [ips[0].clone(), ips[1].clone()].concat();
    for dns in &dns {
        dns.set_a(NAME, &all);
    }
    wait_all(&nodes, "one cluster of four", all_alive(4)).await;
    // Rediscovery goes on asking DNS; every address it lists is a
    // member's now, so it joins nobody.
    let asked = dns[0].questions(NAME);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(dns[0].questions(NAME) > asked, "rediscovery keeps asking");
    for node in &nodes {
        assert_eq!(node.members().len(), 4, "{}", node.id().name);
    }
    for node in nodes {
        node.leave().await;
    }
}
