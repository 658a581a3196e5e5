//! Discovery that survives a rollout: members join through a DNS name (a
//! DNS server on 127.0.0.1 answers for it) that is resolved again on every
//! rejoin attempt. When every member comes back on a new IP, and DNS only
//! later lists the new ones (as a Kubernetes Service does while pods turn
//! ready), the cluster re-forms with no restart (grafana/alloy#3865 reports
//! ckit clusters that never do).
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
    let listener = TcpListener::bind((ip, port)).await.unwrap();
    let mut options = NodeOptions::new(name).fast();
    options.join = vec![format!("{NAME}:{port}")];
    options.nameserver = Some(dns.addr);
    Node::start(options, listener).await.unwrap()
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
    // A free port, then the same port on other loopback addresses.
    let port = TcpListener::bind("127.0.0.2:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
