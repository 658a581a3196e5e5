//! The `fetch` client: packets and stream exchanges to one peer.
