//! Finding the members to join: `--join` entries resolved to addresses,
//! afresh on every join attempt.
//!
//! # Join entries
//!
//! The syntax, as `--join` prints it in `--help` ([`JOIN_HELP`]):
//!
//! ```text
#![doc = include_str!("discovery/join_help.txt")]
//! ```
//!
//! [`Discovery::with_nameservers`] asks the given nameservers instead of
//! the system's (and skips `/etc/hosts`). The entries are parsed by
//! [`JoinEntry`]'s `FromStr`, whose errors ([`JoinEntryError`]) say how to
//! write the entry.
//!
//! # Why every attempt resolves again
//!
//! A Kubernetes rollout replaces every member, and every member comes back on
//! a new IP. A node that resolved its join names once, at start, keeps
//! knocking on addresses nobody listens on, and a cluster whose members all
//! restarted never re-forms (grafana/alloy#3865 reports exactly this of ckit
//! clusters). So [`Discovery::resolve`] keeps no answers between calls: each
//! call asks DNS again, and the caller calls it before every join and rejoin
//! attempt.
//!
//! # Failures
//!
//! One entry failing does not fail the others: [`Resolved`] carries every
//! address found and one [`ResolveError`] per lookup that failed, each naming
//! the entry, the record type, the cause and the likely fix. Every call is
//! bounded ([`Discovery::timeout`], [`DEFAULT_TIMEOUT`] by default): a
//! nameserver that does not answer yields [`ResolveErrorKind::TimedOut`],
//! not a hang.

use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{system_conf, TokioResolver};
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;

mod entry;
pub use entry::{JoinEntry, JoinEntryError};

/// The `--join` syntax, for a command line's help (the text of the
/// [module documentation](self)'s "Join entries").
pub const JOIN_HELP: &str = include_str!("discovery/join_help.txt");

/// How long one [`Discovery::resolve`] may take when no other bound is set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many SRV targets one entry looks up at once. A headless Service
/// lists one target per member: hundreds of members are hundreds of
/// lookups per join attempt per node, spread rather than sent in one burst.
const MAX_TARGET_LOOKUPS: usize = 32;

/// The DNS records a lookup asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// A and AAAA (asked together).
    Address,
    /// SRV.
    Srv,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::Address => "A/AAAA",
            RecordKind::Srv => "SRV",
        })
    }
}

/// One lookup of one join entry that failed; the entry's other lookups (an
/// SRV entry's other targets) and the other entries are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("join entry {entry}: {record} lookup of {name} {kind}")]
pub struct ResolveError {
    /// The join entry, as written back by [`JoinEntry`]'s `Display`.
    pub entry: String,
    /// The name asked: the entry's, or an SRV record's target.
    pub name: String,
    /// The records asked for.
    pub record: RecordKind,
    /// What went wrong.
    pub kind: ResolveErrorKind,
}

/// What went wrong in a [`ResolveError`]; each message says the likely fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveErrorKind {
    /// The nameserver says the name does not exist (NXDOMAIN).
    #[error(
        "failed: no such name (NXDOMAIN). Check the spelling and the domain; a Kubernetes \
         headless Service is <service>.<namespace>.svc.cluster.local"
    )]
    NoSuchName,
    /// The name exists but has no record of the type asked for.
    #[error(
        "found no records. For A/AAAA: no member is published yet (on Kubernetes, \
         publishNotReadyAddresses on the headless Service lists members still starting); \
         for SRV: the Service must name the port (_<port-name>._tcp.<service>...)"
    )]
    NoRecords,
    /// No answer came within the bound.
    #[error(
        "got no answer within {0:?}. Check that the nameserver (/etc/resolv.conf, or the \
         one configured) is reachable from this host"
    )]
    TimedOut(Duration),
    /// The nameserver answered with an error code (SERVFAIL, REFUSED, ...).
    #[error(
        "failed: the nameserver answered {0}. It could not resolve the name; check the \
         nameserver's own upstream or access rules"
    )]
    ServerError(String),
    /// Any other failure (sockets, malformed answers).
    #[error("failed: {0}")]
    Failed(String),
}

/// What [`Discovery::resolve`] found: every address of every entry that
/// resolved, and the lookups that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Each address once, in entry order.
    pub addrs: Vec<SocketAddr>,
    /// One per failed lookup, in entry order.
    pub failures: Vec<ResolveError>,
}

/// The system's DNS configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot read the system's DNS configuration (/etc/resolv.conf): {reason}. Fix it, or \
     give the members' IP addresses instead of names"
)]
pub struct DnsConfigError {
    /// What the reader refused.
    pub reason: String,
}

/// Resolves a list of join entries to addresses, asking DNS again on every
/// call (see the [module documentation](self)).
#[derive(Debug, Clone)]
pub struct Discovery {
    entries: Vec<JoinEntry>,
    /// `None` when no entry needs DNS.
    dns: Option<(ResolverConfig, ResolverOpts)>,
    timeout: Duration,
}

impl Discovery {
    /// Entries resolved with the system's configuration (`/etc/resolv.conf`
    /// on Unix), read once here; an error only if some entry is a name and
    /// the configuration cannot be read.
    pub fn new(entries: Vec<JoinEntry>) -> Result<Discovery, DnsConfigError> {
        let dns = if needs_dns(&entries) {
            let config = system_conf::read_system_conf().map_err(|e| DnsConfigError {
                reason: e.to_string(),
            })?;
            Some(config)
        } else {
            None
        };
        Ok(Discovery {
            entries,
            dns,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Entries resolved by asking `nameservers` (UDP, then TCP for answers
    /// too large for UDP), with no search domains and without
    /// `/etc/hosts`: only these servers answer.
    pub fn with_nameservers(entries: Vec<JoinEntry>, nameservers: &[SocketAddr]) -> Discovery {
        let servers = nameservers
            .iter()
            .map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            })
            .collect();
        let mut opts = ResolverOpts::default();
        opts.use_hosts_file = ResolveHosts::Never;
        Discovery {
            entries,
            dns: Some((ResolverConfig::from_name_servers(servers), opts)),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Bounds each [`resolve`](Discovery::resolve) call to `timeout`
    /// (default [`DEFAULT_TIMEOUT`]); a lookup still unanswered then is a
    /// [`ResolveErrorKind::TimedOut`] failure.
    pub fn timeout(mut self, timeout: Duration) -> Discovery {
        self.timeout = timeout;
        self
    }

    /// The entries this resolves.
    pub fn entries(&self) -> &[JoinEntry] {
        &self.entries
    }

    /// Resolves every entry now, concurrently, asking DNS again (no answer
    /// is kept from an earlier call), within the bound set by
    /// [`timeout`](Discovery::timeout).
    pub async fn resolve(&self) -> Resolved {
        let deadline = Instant::now() + self.timeout;
        // A resolver per call: its cache dies with it, so no answer from an
        // earlier attempt (an address from before a rollout) is served.
        let resolver = self.dns.as_ref().map(|(config, opts)| {
            let mut opts = opts.clone();
            opts.timeout = opts.timeout.min(self.timeout);
            // Every address a name has: A and AAAA both asked, always.
            opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
            TokioResolver::builder_with_config(config.clone(), Default::default())
                .with_options(opts)
                .build()
        });
        let resolver = &resolver;
        let lookups = self.entries.iter().map(|entry| async move {
            let resolver = match (resolver, entry) {
                (_, JoinEntry::Addr(addr)) => return (vec![*addr], Vec::new()),
                (Some(Ok(resolver)), _) => resolver,
                (Some(Err(e)), _) => return no_resolver(entry, format!("cannot start: {e}")),
                // `new` keeps a DNS configuration whenever an entry is a name.
                (None, _) => return no_resolver(entry, "no DNS configuration".into()),
            };
            let lookup = Lookup {
                resolver,
                entry,
                deadline,
                timeout: self.timeout,
            };
            match entry {
                JoinEntry::Addr(addr) => (vec![*addr], Vec::new()),
                JoinEntry::Host { name, port } => lookup.host(name, *port).await,
                JoinEntry::Srv { name } => lookup.srv(name).await,
            }
        });
        let mut resolved = Resolved::default();
        let mut seen = HashSet::new();
        for (addrs, failures) in join_all(lookups).await {
            resolved
                .addrs
                .extend(addrs.into_iter().filter(|a| seen.insert(*a)));
            resolved.failures.extend(failures);
        }
        resolved
    }
}

fn needs_dns(entries: &[JoinEntry]) -> bool {
    entries.iter().any(|e| !matches!(e, JoinEntry::Addr(_)))
}

/// The failure of a name entry whose resolver could not be made.
fn no_resolver(entry: &JoinEntry, reason: String) -> Found {
    let (name, record) = match entry {
        JoinEntry::Srv { name } => (name.as_str(), RecordKind::Srv),
        JoinEntry::Host { name, .. } => (name.as_str(), RecordKind::Address),
        JoinEntry::Addr(_) => ("", RecordKind::Address),
    };
    let kind = ResolveErrorKind::Failed(format!("the resolver {reason}"));
    (Vec::new(), vec![failure(entry, name, record, kind)])
}

fn failure(
    entry: &JoinEntry,
    name: &str,
    record: RecordKind,
    kind: ResolveErrorKind,
) -> ResolveError {
    ResolveError {
        entry: entry.to_string(),
        name: name.to_owned(),
        record,
        kind,
    }
}

type Found = (Vec<SocketAddr>, Vec<ResolveError>);

/// The lookups of one entry, all under one deadline.
struct Lookup<'a> {
    resolver: &'a TokioResolver,
    entry: &'a JoinEntry,
    deadline: Instant,
    timeout: Duration,
}

impl Lookup<'_> {
    async fn host(&self, name: &str, port: u16) -> Found {
        match self.ips(name).await {
            Ok(ips) => (
                ips.into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect(),
                Vec::new(),
            ),
            Err(e) => (Vec::new(), vec![e]),
        }
    }

    async fn srv(&self, name: &str) -> Found {
        let srv = self.resolver.srv_lookup(name);
        let records = match self.bounded(name, RecordKind::Srv, srv).await {
            Ok(lookup) => lookup,
            Err(e) => return (Vec::new(), vec![e]),
        };
        // A target of "." says the service is not offered there (RFC 2782).
        let targets: Vec<(String, u16)> = records
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) if !srv.target.is_root() => Some((srv.target.to_utf8(), srv.port)),
                _ => None,
            })
            .collect();
        if targets.is_empty() {
            let kind = ResolveErrorKind::NoRecords;
            return (
                Vec::new(),
                vec![failure(self.entry, name, RecordKind::Srv, kind)],
            );
        }
        // Owned targets: with a closure over borrowed ones the compiler cannot
        // prove the future Send ("FnOnce is not general enough"), and the
        // join loop runs on a spawned task.
        let lookups = targets
            .into_iter()
            .map(|(target, port)| async move { self.host(&target, port).await });
        let mut lookups = stream::iter(lookups).buffered(MAX_TARGET_LOOKUPS);
        let mut found = Found::default();
        while let Some((addrs, failures)) = lookups.next().await {
            found.0.extend(addrs);
            found.1.extend(failures);
        }
        found
    }

    async fn ips(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let lookup = self.resolver.lookup_ip(name);
        let ips = self.bounded(name, RecordKind::Address, lookup).await?;
        Ok(ips.iter().collect())
    }

    /// Runs one lookup until the deadline, its error told as a
    /// [`ResolveError`].
    async fn bounded<T>(
        &self,
        name: &str,
        record: RecordKind,
        lookup: impl Future<Output = Result<T, NetError>>,
    ) -> Result<T, ResolveError> {
        let kind = match tokio::time::timeout_at(self.deadline, lookup).await {
            Ok(Ok(found)) => return Ok(found),
            Ok(Err(e)) => self.kind_of(&e),
            Err(_) => ResolveErrorKind::TimedOut(self.timeout),
        };
        Err(failure(self.entry, name, record, kind))
    }

    fn kind_of(&self, e: &NetError) -> ResolveErrorKind {
        match e {
            _ if e.is_nx_domain() => ResolveErrorKind::NoSuchName,
            _ if e.is_no_records_found() => ResolveErrorKind::NoRecords,
            NetError::Timeout => ResolveErrorKind::TimedOut(self.timeout),
            NetError::Dns(DnsError::ResponseCode(code)) => {
                ResolveErrorKind::ServerError(code.to_string())
            }
            other => ResolveErrorKind::Failed(other.to_string()),
        }
    }
}
