//! What the fuzz targets share: a reference decoder written from the
//! contract (`../shared/PROTOCOL.md`), independent of `gossiphttp::codec`,
//! and a way to cut input into chunks.

/// How a body of frames ends, by the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// At a frame boundary.
    Clean,
    /// A byte other than `0xCC`/`0xCD` where a frame starts.
    BadMagic,
    /// Inside a frame (its header or its payload).
    Truncated,
    /// A header announcing more than the packet limit.
    TooLarge,
}

/// What the contract says a body decodes to.
#[derive(Debug, Clone)]
pub struct Model {
    /// Whole frames before the end, as packets.
    pub packets: Vec<Vec<u8>>,
    /// Every payload byte before the end, as a stream reader sees them
    /// (the unfinished frame's payload bytes included).
    pub stream: Vec<u8>,
    /// How the body ends for a packet reader with the given limit.
    pub packet_end: End,
    /// How the body ends for a stream reader (no size limit).
    pub stream_end: End,
}

/// Decodes `body` as the contract describes: `0xCC` + u16 BE length, or
/// `0xCD` + u32 BE length, then that many payload bytes.
pub fn model(body: &[u8], max_packet: usize) -> Model {
    let mut m = Model {
        packets: Vec::new(),
        stream: Vec::new(),
        packet_end: End::Clean,
        stream_end: End::Clean,
    };
    let mut packet_done = false;
    let mut at = 0usize;
    while at < body.len() {
        let (header, len) = match body[at] {
            0xCC if body.len() - at >= 3 => {
                (3, u16::from_be_bytes([body[at + 1], body[at + 2]]) as usize)
            }
            0xCD if body.len() - at >= 5 => (
                5,
                u32::from_be_bytes([body[at + 1], body[at + 2], body[at + 3], body[at + 4]])
                    as usize,
            ),
            0xCC | 0xCD => {
                m.stream_end = End::Truncated;
                if !packet_done {
                    m.packet_end = End::Truncated;
                }
                return m;
            }
            _ => {
                m.stream_end = End::BadMagic;
                if !packet_done {
                    m.packet_end = End::BadMagic;
                }
                return m;
            }
        };
        if !packet_done && len > max_packet {
            m.packet_end = End::TooLarge;
            packet_done = true;
        }
        let start = at + header;
        let available = (body.len() - start).min(len);
        m.stream.extend_from_slice(&body[start..start + available]);
        if available < len {
            m.stream_end = End::Truncated;
            if !packet_done {
                m.packet_end = End::Truncated;
            }
            return m;
        }
        if !packet_done {
            m.packets.push(body[start..start + len].to_vec());
        }
        at = start + len;
    }
    m
}

/// Reads a fuzz input front to back; past its end every number is 0.
///
/// The targets parse their input by hand (a few fixed header bytes, then
/// cut points, then the body) rather than through `arbitrary`, so that
/// `seed.py` can write seeds without knowing how `arbitrary` lays bytes out.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Big-endian, as the frame headers.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// A count byte `k`, then `k` big-endian `u16` cut points.
    pub fn cuts(&mut self) -> Vec<u16> {
        let k = self.u8();
        (0..k).map(|_| self.u16()).collect()
    }

    /// Whatever is left: the body.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Cuts `body` into pieces at the given points (taken modulo its length
/// plus one). A point given twice, or at either end, makes an empty piece:
/// empty chunks are legal in an HTTP body and must change nothing.
pub fn pieces<'a>(body: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| c as usize % (body.len() + 1))
        .collect();
    points.sort_unstable();
    let mut out = Vec::with_capacity(points.len() + 1);
    let mut at = 0;
    for p in points {
        out.push(&body[at..p]);
        at = p;
    }
    out.push(&body[at..]);
    out
}

/// The decoder targets' input (`frame_decoder`, `message_reader`): a packet
/// limit (u16 BE), cut points, then the body; with the body cut into its
/// chunks and the model's reading of it.
#[derive(Debug, Clone)]
pub struct DecoderInput<'a> {
    pub max: usize,
    pub cuts: Vec<u16>,
    pub body: &'a [u8],
    pub chunks: Vec<&'a [u8]>,
    pub model: Model,
}

impl<'a> DecoderInput<'a> {
    pub fn parse(data: &'a [u8]) -> Self {
        let mut r = Reader::new(data);
        let max = r.u16() as usize;
        let cuts = r.cuts();
        let body = r.rest();
        DecoderInput {
            max,
            chunks: pieces(body, &cuts),
            model: model(body, max),
            cuts,
            body,
        }
    }
}
