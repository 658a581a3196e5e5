//! `lookup(key, n, members, options)`: the owners ckit's sharding picks for
//! a key among the members `members()` returned, with the crate's
//! [`Sharder`] (the same owners as Go's `shard` package for the same
//! members, hasher and op).

use crate::ckit::peer::{NodeState, Peer};
use crate::ckit::shard::{string_key, Hasher, Key, Op, Sharder};
use crate::wasm::client::{option, string_option};
use crate::wasm::js::{bytes_arg, error};
use js_sys::{Array, Reflect, Uint8Array};
use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

thread_local! {
    /// The last sharder built, with the hasher and members it was built for:
    /// a page asking for many keys over the same members builds it once (a
    /// ring of 512 tokens per member is most of a lookup's cost).
    static LAST: RefCell<Option<(Hasher, Vec<Peer>, Sharder)>> = const { RefCell::new(None) };
}

/// The `n` owners of `key` among `members`, first owner first: the same
/// objects, picked as a ckit node with the same hasher picks them.
///
/// - `key`: a string (ckit's `shard.StringKey`: XXH64 of its UTF-8 bytes),
///   bytes (the same of the bytes), or a `bigint`, taken as the key itself
///   (a `shard.Key` computed elsewhere).
/// - Members that are `"dead"` or `"left"` own nothing (ckit drops a member
///   memberlist reports gone); among the rest, `op` decides by `ckitState`:
///   `"readwrite"`/`"write"` (default) takes participants, `"read"`
///   participants and terminating members. A member without `ckitState` is a
///   viewer, as ckit counts a node it has no state for.
///
/// Throws code `"not_enough_members"` when fewer members are eligible than
/// `n`, `"invalid_argument"` / `"invalid_options"` for bad arguments.
#[wasm_bindgen(unchecked_return_type = "Member[]")]
pub fn lookup(
    #[wasm_bindgen(unchecked_param_type = "string | Uint8Array | bigint")] key: JsValue,
    #[wasm_bindgen(unchecked_param_type = "number")] n: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Member[]")] members: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "LookupOptions")] options: JsValue,
) -> Result<Array, JsValue> {
    let key = key_arg(&key)?;
    let n = match n.as_f64() {
        Some(v) if v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 => v as usize,
        _ => {
            return Err(error(
                "invalid_argument",
                "n must be a non-negative integer (how many owners)",
            ))
        }
    };
    let hasher = hasher_option(&options)?;
    let op = op_option(&options)?;
    let (peers, objects) = members_arg(&members)?;
    let owners = LAST
        .with(|last| {
            let mut last = last.borrow_mut();
            let reuse = matches!(&*last, Some((h, p, _)) if *h == hasher && *p == peers);
            if !reuse {
                let mut sharder = Sharder::new(hasher);
                sharder.set_peers(peers.clone());
                *last = Some((hasher, peers, sharder));
            }
            let (_, _, sharder) = last.as_ref().expect("just set");
            sharder.lookup(key, n, op)
        })
        .map_err(|e| error("not_enough_members", &e.to_string()))?;
    Ok(owners
        .iter()
        .filter_map(|peer| objects.get(&peer.name))
        .collect())
}

fn key_arg(key: &JsValue) -> Result<Key, JsValue> {
    if let Some(s) = key.as_string() {
        return Ok(string_key(s.as_bytes()));
    }
    if key.is_bigint() {
        return u64::try_from(key.clone()).map(Key).map_err(|_| {
            error(
                "invalid_argument",
                "a bigint key must be from 0 to 2^64 - 1 (a ckit shard.Key)",
            )
        });
    }
    if key.is_object() {
        let bytes: Uint8Array = bytes_arg(key, "key")?;
        return Ok(string_key(bytes.to_vec()));
    }
    Err(error(
        "invalid_argument",
        "key must be a string, a Uint8Array or a bigint",
    ))
}

fn hasher_option(options: &JsValue) -> Result<Hasher, JsValue> {
    let tokens = option(options, "ringTokens")?;
    let tokens = if tokens.is_undefined() || tokens.is_null() {
        None
    } else {
        match tokens.as_f64() {
            Some(t) if t >= 1.0 && t.fract() == 0.0 && t <= Hasher::MAX_RING_TOKENS as f64 => {
                NonZeroUsize::new(t as usize)
            }
            _ => {
                return Err(error(
                    "invalid_options",
                    &format!(
                        "ringTokens must be an integer from 1 to {}",
                        Hasher::MAX_RING_TOKENS
                    ),
                ))
            }
        }
    };
    let hasher = string_option(options, "hasher")?;
    // Without `ringTokens`, Alloy's choice; ckit leaves it to the application.
    let ring = Hasher::Ring(tokens.unwrap_or(Hasher::ALLOY_RING_TOKENS));
    Ok(match hasher.as_deref() {
        None | Some("ring") => ring,
        Some("rendezvous") => Hasher::Rendezvous,
        Some("multiprobe") => Hasher::Multiprobe,
        Some(other) => {
            return Err(error(
                "invalid_options",
                &format!(
                "hasher {other:?} is not one of ckit's: \"rendezvous\", \"multiprobe\", \"ring\""
            ),
            ))
        }
    })
}

fn op_option(options: &JsValue) -> Result<Op, JsValue> {
    match string_option(options, "op")?.as_deref() {
        None | Some("readwrite") | Some("write") => Ok(Op::ReadWrite),
        Some("read") => Ok(Op::Read),
        Some(other) => Err(error(
            "invalid_options",
            &format!("op {other:?} is not one of \"read\", \"write\", \"readwrite\""),
        )),
    }
}

/// The members as ckit peers (gone ones left out), and each name's object.
fn members_arg(members: &JsValue) -> Result<(Vec<Peer>, HashMap<String, JsValue>), JsValue> {
    let bad = |i: usize, why: &str| {
        error(
            "invalid_argument",
            &format!(
                "members[{i}] {why} (members must be what members() returned, or objects like it)"
            ),
        )
    };
    let list = members
        .dyn_ref::<Array>()
        .filter(|_| Array::is_array(members))
        .ok_or_else(|| error("invalid_argument", "members must be an array of Member"))?;
    let mut peers = Vec::with_capacity(list.length() as usize);
    let mut objects = HashMap::new();
    for (i, member) in list.iter().enumerate() {
        if !member.is_object() {
            return Err(bad(i, "is not an object"));
        }
        let name = Reflect::get(&member, &"name".into())?
            .as_string()
            .ok_or_else(|| bad(i, "has no string name"))?;
        let field = |k: &str| -> Result<Option<String>, JsValue> {
            let v = Reflect::get(&member, &k.into())?;
            if v.is_undefined() || v.is_null() {
                return Ok(None);
            }
            v.as_string()
                .map(Some)
                .ok_or_else(|| bad(i, &format!("has a {k} that is not a string")))
        };
        let gone = match field("state")?.as_deref() {
            None | Some("alive") | Some("suspect") => false,
            Some("dead") | Some("left") => true,
            Some(other) => return Err(bad(i, &format!("has an unknown state {other:?}"))),
        };
        let state = match field("ckitState")?.as_deref() {
            None | Some("viewer") => NodeState::Viewer,
            Some("participant") => NodeState::Participant,
            Some("terminating") => NodeState::Terminating,
            Some(other) => return Err(bad(i, &format!("has an unknown ckitState {other:?}"))),
        };
        if gone {
            continue;
        }
        let addr = field("addr")?.unwrap_or_default();
        objects.insert(name.clone(), member);
        peers.push(Peer::new(name, addr, state));
    }
    Ok((peers, objects))
}
