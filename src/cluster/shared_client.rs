//! [`SharedClient`]: one [`Client`] for the members of one process, and
//! what sharing it asks of each member's options.

use super::NodeOptions;
use crate::native::options::MAX_COUNT;
use crate::{Client, Error, Options};

/// Connections a shared client may pool beyond one per member of the
/// process: for the members outside it.
const OUTSIDE_PEERS: usize = 64;

/// Requests under way that a member's server takes on one connection, per
/// member sharing the client (and never fewer than the transport's
/// default, 256).
const STREAMS_PER_MEMBER: u32 = 4;

/// One [`Client`] for `members` [`Node`](super::Node)s this process runs,
/// and the settings sharing it asks of them: each member sends over it
/// ([`Options::client`]), so the process keeps one connection per peer
/// instead of one per member and peer (measured with 200 members in one
/// process: otherwise nearly every packet of a join wave opened a TCP
/// connection and an HTTP/2 handshake of its own, `benches/RESULTS.md`),
/// and the members' packets to one peer ride the same `/message` bodies
/// (see [`Client`]).
///
/// The rule, in one place (the `cluster` command and the bench use it too):
/// - the client pools up to `members + 64` connections (one to each member
///   and 64 for peers outside the process), or
///   [`max_peer_connections`](Options::max_peer_connections) if that is
///   more;
/// - each member's server takes `4 × members` requests at once on one
///   connection (at least 256), or
///   [`max_concurrent_streams_per_connection`](Options::max_concurrent_streams_per_connection)
///   if that is more: every member's requests to it arrive on the one
///   connection from the shared client, and past the limit they wait (in
///   a join wave every member opens a push-pull stream to the member it
///   joins through).
///
/// Build it from the transport options the members use: they must agree
/// with it on [`auth_token`](Options::auth_token),
/// [`client_http1`](Options::client_http1) and whether
/// [`client_tls`](Options::client_tls) is set, or
/// [`Node::start`](super::Node::start) refuses them (see [`Client`]).
///
/// ```no_run
/// # async fn demo() -> Result<(), gossiphttp::Error> {
/// use gossiphttp::cluster::{Node, NodeOptions, SharedClient};
///
/// let shared = SharedClient::new(3, &NodeOptions::new("").transport)?;
/// let mut nodes = Vec::new();
/// for i in 0..3 {
///     let listener = tokio::net::TcpListener::bind(("127.0.0.1", 7946 + i)).await?;
///     let mut options = NodeOptions::new(format!("node-{i}")).sharing(&shared);
///     if i > 0 {
///         options.join = vec!["127.0.0.1:7946".into()];
///     }
///     nodes.push(Node::start(options, listener).await?);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedClient {
    client: Client,
    members: usize,
}

impl SharedClient {
    /// A client for `members` nodes of this process, with `transport`'s
    /// client settings; fails as [`Client::new`] does.
    pub fn new(members: usize, transport: &Options) -> Result<SharedClient, Error> {
        let mut options = transport.clone();
        options.max_peer_connections = options
            .max_peer_connections
            .max(members.saturating_add(OUTSIDE_PEERS));
        Ok(SharedClient {
            client: Client::new(&options)?,
            members,
        })
    }

    /// The client itself (cheap to clone).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How many members it was built for.
    pub fn members(&self) -> usize {
        self.members
    }

    /// The requests under way a member's server takes on one connection
    /// (see [`SharedClient`]).
    fn streams_per_connection(&self) -> u32 {
        let default = Options::default().max_concurrent_streams_per_connection;
        u32::try_from(self.members)
            .unwrap_or(u32::MAX)
            .saturating_mul(STREAMS_PER_MEMBER)
            .clamp(default, MAX_COUNT as u32)
    }
}

impl NodeOptions {
    /// Sends over `shared`'s client, and takes as many requests at once on
    /// one connection as the members sharing it may send together (see
    /// [`SharedClient`]); a higher limit already set is kept.
    pub fn sharing(mut self, shared: &SharedClient) -> Self {
        self.transport.client = Some(shared.client.clone());
        let streams = &mut self.transport.max_concurrent_streams_per_connection;
        *streams = (*streams).max(shared.streams_per_connection());
        self
    }

    /// Settings for one of `members` members run by one process (as
    /// `gossiphttp cluster --nodes N` runs them). Past 100 members each
    /// probes and gossips `members / 100` times (rounded up) less often
    /// than set, early rounds for fresh news included, so the process sends
    /// what 100 members at the set rates send; failures are detected as
    /// much more slowly. (Their packets to a peer ride one lingering body
    /// for the process when they share a client: see [`SharedClient`].)
    ///
    /// One process carries every member's packets, at about 0.3 ms of CPU
    /// each (a request on both ends): 2 cores carry about 6,500 a second.
    /// At memberlist's LAN rates 500 members ask for up to 7,500 a second
    /// in a join wave, and the saturated process took 3.6-20 s to converge
    /// (within 5 s in 26 of 43 runs on one day); since ill members gossip
    /// less and the join follow-up comes on time, 3.2-5.3 s, and up to
    /// 8.5 s when the VM runs slow; since their packets to a peer share
    /// one body, 2.3-3.7 s; scaled, 1.6-2.8 s (`benches/RESULTS.md`).
    ///
    /// ```
    /// use gossiphttp::cluster::NodeOptions;
    ///
    /// let options = NodeOptions::new("node-1").scaled_for_process(500);
    /// let lan = NodeOptions::new("node-1");
    /// assert_eq!(options.membership.probe_interval, lan.membership.probe_interval * 5);
    /// assert_eq!(options.membership.gossip_interval, lan.membership.gossip_interval * 5);
    /// assert_eq!(options.membership.fresh_news_gossip, lan.membership.fresh_news_gossip * 5);
    /// ```
    pub fn scaled_for_process(mut self, members: usize) -> Self {
        let crowd = u32::try_from(members.div_ceil(100)).unwrap_or(u32::MAX);
        if crowd > 1 {
            let membership = &mut self.membership;
            membership.probe_interval = membership.probe_interval.saturating_mul(crowd);
            membership.gossip_interval = membership.gossip_interval.saturating_mul(crowd);
            membership.fresh_news_gossip = membership.fresh_news_gossip.saturating_mul(crowd);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_and_the_stream_limit_grow_with_the_members() {
        let transport = Options::default();
        let few = SharedClient::new(3, &transport).unwrap();
        let options = NodeOptions::new("a").sharing(&few);
        assert!(options.transport.client.is_some());
        // The default stands while 4 per member is less.
        assert_eq!(options.transport.max_concurrent_streams_per_connection, 256);

        let many = SharedClient::new(500, &transport).unwrap();
        let options = NodeOptions::new("a").sharing(&many);
        assert_eq!(
            options.transport.max_concurrent_streams_per_connection,
            2000
        );
        assert_eq!(many.members(), 500);
    }

    #[test]
    fn a_higher_limit_the_caller_set_is_kept() {
        let shared = SharedClient::new(10, &Options::default()).unwrap();
        let mut options = NodeOptions::new("a");
        options.transport.max_concurrent_streams_per_connection = 5000;
        let options = options.sharing(&shared);
        assert_eq!(
            options.transport.max_concurrent_streams_per_connection,
            5000
        );
    }

    #[test]
    fn an_absurd_member_count_is_an_error() {
        assert!(matches!(
            SharedClient::new(usize::MAX, &Options::default()),
            Err(Error::Config(_))
        ));
        // The most members a pool takes: 2^20 less the 64 outside peers.
        let shared = SharedClient::new((1 << 20) - 64, &Options::default()).unwrap();
        // Its stream limit stops at the most a count may be.
        assert_eq!(shared.streams_per_connection(), 1 << 20);
    }
}
