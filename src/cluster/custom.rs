//! The application's own small key/value state ([`Node::set_state`]),
//! carried in memberlist's node metadata.
//!
//! memberlist gives every member up to 512 bytes of metadata, sent with its
//! `alive` messages and in every push-pull; a change goes out as a new
//! `alive` at a higher incarnation. Go nodes carry it without reading it
//! (ckit's own metadata is always empty), so the state reaches every member
//! of a mixed cluster and disturbs none. The bytes are a msgpack map of
//! keys to values (raw strings, keys sorted), which any msgpack reader in
//! any language decodes.
//!
//! [`Node::set_state`]: super::Node::set_state

use crate::memberlist::msgpack;
use crate::Error;
use bytes::Bytes;
use std::collections::BTreeMap;

/// memberlist's `MetaMaxSize`: a Go node refuses an `alive` whose metadata
/// is longer.
pub use crate::memberlist::engine::META_MAX_SIZE;

/// One member's state: key to value.
pub(crate) type StateMap = BTreeMap<String, Bytes>;

/// The metadata bytes for `state`; an error naming the limit when they
/// would not fit in memberlist's 512 bytes.
pub(crate) fn encode(state: &StateMap) -> Result<Option<Bytes>, Error> {
    if state.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    msgpack::write_map_len(&mut out, state.len() as u32);
    for (key, value) in state {
        msgpack::write_raw(&mut out, key.as_bytes());
        msgpack::write_raw(&mut out, value);
    }
    if out.len() > META_MAX_SIZE {
        return Err(Error::Config(format!(
            "the node's state takes {} bytes encoded, over memberlist's {META_MAX_SIZE}-byte \
             metadata limit: keep keys and values small (a pointer to where larger data lives)",
            out.len()
        )));
    }
    Ok(Some(Bytes::from(out)))
}

/// The state in a member's metadata; empty for none, and for metadata this
/// node did not write (another application's, which it leaves alone).
pub(crate) fn decode(meta: Option<&Bytes>) -> StateMap {
    let Some(meta) = meta.filter(|m| !m.is_empty()) else {
        return StateMap::new();
    };
    let mut reader = msgpack::Reader::new(meta);
    let mut read = || -> Option<StateMap> {
        let len = reader.read_map_len("meta").ok()?;
        let mut state = StateMap::new();
        for _ in 0..len {
            let key = reader.read_str("meta key").ok()?.to_owned();
            let value = reader
                .read_opt_bytes("meta value")
                .ok()?
                .unwrap_or_default();
            state.insert(key, Bytes::copy_from_slice(value));
        }
        reader.rest().is_empty().then_some(state)
    };
    read().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_metadata() {
        let mut state = StateMap::new();
        state.insert("role".into(), Bytes::from_static(b"leader"));
        state.insert("zone".into(), Bytes::from_static(b"eu-1"));
        let meta = encode(&state).unwrap();
        assert_eq!(decode(meta.as_ref()), state);
        assert_eq!(encode(&StateMap::new()).unwrap(), None);
    }

    #[test]
    fn state_over_the_metadata_limit_is_refused_with_the_limit_named() {
        let mut state = StateMap::new();
        state.insert("blob".into(), Bytes::from(vec![0u8; 600]));
        let e = encode(&state).unwrap_err().to_string();
        assert!(e.contains("512-byte"), "{e}");
    }

    #[test]
    fn foreign_metadata_reads_as_no_state() {
        assert!(decode(Some(&Bytes::from_static(b"\x01\x02garbage"))).is_empty());
        assert!(decode(None).is_empty());
    }
}
