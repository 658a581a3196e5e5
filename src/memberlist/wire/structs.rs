//! The go-msgpack form of each struct memberlist sends: its fields as Go
//! names them, in the order go-msgpack writes them (sorted by name), and
//! read back whatever the order, as [`read_struct`] reads a map.

use super::super::message::{
    Ack, Alive, Dead, ErrorResponse, IndirectPing, Nack, NodeState, Ping, PushNodeState,
    PushPullHeader, Suspect, UserMsgHeader,
};
use super::super::msgpack::{
    write_bool, write_bytes_or_nil, write_go_int, write_map_len, write_opt_raw, write_raw,
    write_uint, DecodeError, Reader, Sink,
};
use super::{read_struct, MsgpackStruct, U16, U32};
use bytes::Bytes;

fn bytes_field(r: &mut Reader<'_>, field: &'static str) -> Result<Bytes, DecodeError> {
    Ok(r.read_opt_bytes(field)?
        .map(Bytes::copy_from_slice)
        .unwrap_or_default())
}

fn opt_bytes_field(r: &mut Reader<'_>, field: &'static str) -> Result<Option<Bytes>, DecodeError> {
    Ok(r.read_opt_bytes(field)?.map(Bytes::copy_from_slice))
}

fn string_field(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    r.read_str(field).map(str::to_owned)
}

fn u32_field(r: &mut Reader<'_>, field: &'static str) -> Result<u32, DecodeError> {
    Ok(r.read_uint(field, U32)? as u32)
}

fn u16_field(r: &mut Reader<'_>, field: &'static str) -> Result<u16, DecodeError> {
    Ok(r.read_uint(field, U16)? as u16)
}

fn key(out: &mut impl Sink, name: &str) {
    write_raw(out, name.as_bytes());
}

impl MsgpackStruct for Ping {
    fn write_go(&self, out: &mut impl Sink) {
        // SourceAddr, SourceNode and SourcePort are omitempty.
        let optional = [
            !self.source_addr.is_empty(),
            !self.source_node.is_empty(),
            self.source_port != 0,
        ];
        write_map_len(out, 2 + optional.iter().filter(|x| **x).count() as u32);
        key(out, "Node");
        write_raw(out, self.node.as_bytes());
        key(out, "SeqNo");
        write_uint(out, self.seq_no.into());
        if optional[0] {
            key(out, "SourceAddr");
            write_raw(out, &self.source_addr);
        }
        if optional[1] {
            key(out, "SourceNode");
            write_raw(out, self.source_node.as_bytes());
        }
        if optional[2] {
            key(out, "SourcePort");
            write_uint(out, self.source_port.into());
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = Ping::default();
        read_struct(r, "ping", |k, r| {
            match k {
                b"SeqNo" => m.seq_no = u32_field(r, "SeqNo")?,
                b"Node" => m.node = string_field(r, "Node")?,
                b"SourceAddr" => m.source_addr = bytes_field(r, "SourceAddr")?,
                b"SourcePort" => m.source_port = u16_field(r, "SourcePort")?,
                b"SourceNode" => m.source_node = string_field(r, "SourceNode")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl MsgpackStruct for IndirectPing {
    fn write_go(&self, out: &mut impl Sink) {
        let optional = [
            !self.source_addr.is_empty(),
            !self.source_node.is_empty(),
            self.source_port != 0,
        ];
        write_map_len(out, 5 + optional.iter().filter(|x| **x).count() as u32);
        key(out, "Nack");
        write_bool(out, self.nack);
        key(out, "Node");
        write_raw(out, self.node.as_bytes());
        key(out, "Port");
        write_uint(out, self.port.into());
        key(out, "SeqNo");
        write_uint(out, self.seq_no.into());
        if optional[0] {
            key(out, "SourceAddr");
            write_raw(out, &self.source_addr);
        }
        if optional[1] {
            key(out, "SourceNode");
            write_raw(out, self.source_node.as_bytes());
        }
        if optional[2] {
            key(out, "SourcePort");
            write_uint(out, self.source_port.into());
        }
        key(out, "Target");
        write_bytes_or_nil(out, &self.target);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = IndirectPing::default();
        read_struct(r, "indirectPingReq", |k, r| {
            match k {
                b"SeqNo" => m.seq_no = u32_field(r, "SeqNo")?,
                b"Target" => m.target = bytes_field(r, "Target")?,
                b"Port" => m.port = u16_field(r, "Port")?,
                b"Node" => m.node = string_field(r, "Node")?,
                b"Nack" => m.nack = r.read_bool("Nack")?,
                b"SourceAddr" => m.source_addr = bytes_field(r, "SourceAddr")?,
                b"SourcePort" => m.source_port = u16_field(r, "SourcePort")?,
                b"SourceNode" => m.source_node = string_field(r, "SourceNode")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl MsgpackStruct for Ack {
    fn write_go(&self, out: &mut impl Sink) {
        write_map_len(out, 2);
        key(out, "Payload");
        write_opt_raw(out, self.payload.as_deref());
        key(out, "SeqNo");
        write_uint(out, self.seq_no.into());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = Ack::default();
        read_struct(r, "ackResp", |k, r| {
            match k {
                b"SeqNo" => m.seq_no = u32_field(r, "SeqNo")?,
                b"Payload" => m.payload = opt_bytes_field(r, "Payload")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl MsgpackStruct for Nack {
    fn write_go(&self, out: &mut impl Sink) {
        write_map_len(out, 1);
        key(out, "SeqNo");
        write_uint(out, self.seq_no.into());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = Nack::default();
        read_struct(r, "nackResp", |k, r| {
            if k != b"SeqNo" {
                return Ok(false);
            }
            m.seq_no = u32_field(r, "SeqNo")?;
            Ok(true)
        })?;
        Ok(m)
    }
}

impl MsgpackStruct for ErrorResponse {
    fn write_go(&self, out: &mut impl Sink) {
        write_map_len(out, 1);
        key(out, "Error");
        write_raw(out, self.error.as_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = ErrorResponse::default();
        read_struct(r, "errResp", |k, r| {
            if k != b"Error" {
                return Ok(false);
            }
            m.error = string_field(r, "Error")?;
            Ok(true)
        })?;
        Ok(m)
    }
}

/// `suspect` and `dead` share their fields: From, Incarnation, Node.
fn encode_accusation(out: &mut impl Sink, from: &str, incarnation: u32, node: &str) {
    write_map_len(out, 3);
    key(out, "From");
    write_raw(out, from.as_bytes());
    key(out, "Incarnation");
    write_uint(out, incarnation.into());
    key(out, "Node");
    write_raw(out, node.as_bytes());
}

fn read_accusation(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<(String, u32, String), DecodeError> {
    let (mut from, mut incarnation, mut node) = (String::new(), 0, String::new());
    read_struct(r, what, |k, r| {
        match k {
            b"From" => from = string_field(r, "From")?,
            b"Incarnation" => incarnation = u32_field(r, "Incarnation")?,
            b"Node" => node = string_field(r, "Node")?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((from, incarnation, node))
}

impl MsgpackStruct for Suspect {
    fn write_go(&self, out: &mut impl Sink) {
        encode_accusation(out, &self.from, self.incarnation, &self.node);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (from, incarnation, node) = read_accusation(r, "suspect")?;
        Ok(Suspect {
            incarnation,
            node,
            from,
        })
    }
}

impl MsgpackStruct for Dead {
    fn write_go(&self, out: &mut impl Sink) {
        encode_accusation(out, &self.from, self.incarnation, &self.node);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (from, incarnation, node) = read_accusation(r, "dead")?;
        Ok(Dead {
            incarnation,
            node,
            from,
        })
    }
}

impl MsgpackStruct for Alive {
    fn write_go(&self, out: &mut impl Sink) {
        write_map_len(out, 6);
        key(out, "Addr");
        write_bytes_or_nil(out, &self.addr);
        key(out, "Incarnation");
        write_uint(out, self.incarnation.into());
        key(out, "Meta");
        write_opt_raw(out, self.meta.as_deref());
        key(out, "Node");
        write_raw(out, self.node.as_bytes());
        key(out, "Port");
        write_uint(out, self.port.into());
        key(out, "Vsn");
        write_bytes_or_nil(out, &self.vsn);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = Alive::default();
        read_struct(r, "alive", |k, r| {
            match k {
                b"Incarnation" => m.incarnation = u32_field(r, "Incarnation")?,
                b"Node" => m.node = string_field(r, "Node")?,
                b"Addr" => m.addr = bytes_field(r, "Addr")?,
                b"Port" => m.port = u16_field(r, "Port")?,
                b"Meta" => m.meta = opt_bytes_field(r, "Meta")?,
                b"Vsn" => m.vsn = bytes_field(r, "Vsn")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl MsgpackStruct for PushPullHeader {
    fn write_go(&self, out: &mut impl Sink) {
        write_map_len(out, 3);
        key(out, "Join");
        write_bool(out, self.join);
        key(out, "Nodes");
        write_go_int(out, self.nodes.into());
        key(out, "UserStateLen");
        write_go_int(out, self.user_state_len.into());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = PushPullHeader::default();
        read_struct(r, "pushPullHeader", |k, r| {
            match k {
                b"Nodes" => m.nodes = u32_field(r, "Nodes")?,
                b"UserStateLen" => m.user_state_len = u32_field(r, "UserStateLen")?,
                b"Join" => m.join = r.read_bool("Join")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl MsgpackStruct for PushNodeState {
    fn write_go(&self, out: &mut impl Sink) {
        write_map_len(out, 7);
        key(out, "Addr");
        write_bytes_or_nil(out, &self.addr);
        key(out, "Incarnation");
        write_uint(out, self.incarnation.into());
        key(out, "Meta");
        write_opt_raw(out, self.meta.as_deref());
        key(out, "Name");
        write_raw(out, self.name.as_bytes());
        key(out, "Port");
        write_uint(out, self.port.into());
        key(out, "State");
        write_go_int(out, self.state as u64);
        key(out, "Vsn");
        write_bytes_or_nil(out, &self.vsn);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = PushNodeState {
            name: String::new(),
            addr: Bytes::new(),
            port: 0,
            meta: None,
            incarnation: 0,
            state: NodeState::Alive,
            vsn: Bytes::new(),
        };
        read_struct(r, "pushNodeState", |k, r| {
            match k {
                b"Name" => m.name = string_field(r, "Name")?,
                b"Addr" => m.addr = bytes_field(r, "Addr")?,
                b"Port" => m.port = u16_field(r, "Port")?,
                b"Meta" => m.meta = opt_bytes_field(r, "Meta")?,
                b"Incarnation" => m.incarnation = u32_field(r, "Incarnation")?,
                b"State" => {
                    let value = r.read_uint("State", u64::MAX)?;
                    m.state = NodeState::from_value(value).ok_or(DecodeError::UnknownValue {
                        field: "State",
                        value,
                    })?;
                }
                b"Vsn" => m.vsn = bytes_field(r, "Vsn")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}

impl MsgpackStruct for UserMsgHeader {
    fn write_go(&self, out: &mut impl Sink) {
        write_map_len(out, 1);
        key(out, "UserMsgLen");
        write_go_int(out, self.user_msg_len.into());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = UserMsgHeader::default();
        read_struct(r, "userMsgHeader", |k, r| {
            if k != b"UserMsgLen" {
                return Ok(false);
            }
            m.user_msg_len = u32_field(r, "UserMsgLen")?;
            Ok(true)
        })?;
        Ok(m)
    }
}

/// Go's `compress{Algo, Buf}`: the body of a `compressMsg` (`09`). Algo 0 is
/// LZW, the only algorithm memberlist has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compressed {
    /// `Algo` (a Go `uint8`).
    pub algo: u8,
    /// `Buf`: the compressed bytes.
    pub buf: Bytes,
}

impl MsgpackStruct for Compressed {
    fn write_go(&self, out: &mut impl Sink) {
        write_map_len(out, 2);
        key(out, "Algo");
        write_uint(out, self.algo.into());
        key(out, "Buf");
        write_bytes_or_nil(out, &self.buf);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut m = Compressed::default();
        read_struct(r, "compress", |k, r| {
            match k {
                b"Algo" => m.algo = r.read_uint("Algo", u8::MAX.into())? as u8,
                b"Buf" => m.buf = bytes_field(r, "Buf")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }
}
