//! Property tests of the frame codec: whatever way a body is cut into pieces
//! on its way in, the decoders deliver the same thing, and no input at all
//! makes them panic or allocate what a header merely announces.

use bytes::{Bytes, BytesMut};
use gossiphttp::codec::{encode_frame, FrameError, PacketDecoder, StreamDecoder};
use proptest::prelude::*;
use proptest::sample::Index;

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

/// Deterministic filler, so that large payloads cost one integer to generate
/// and shrink by length alone.
fn fill(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Payloads of 0..=70,000 bytes, mostly small, with both header forms and
/// the sizes around the switch between them.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..=16),
        3 => (17usize..=2_000, any::<u64>()).prop_map(|(n, s)| fill(n, s)),
        1 => (60_000usize..=70_000, any::<u64>()).prop_map(|(n, s)| fill(n, s)),
        1 => (
            prop::sample::select(vec![65_534usize, 65_535, 65_536, 65_537]),
            any::<u64>()
        )
            .prop_map(|(n, s)| fill(n, s)),
    ]
}

/// Where to cut a body: anywhere, plus near frame starts (so that headers,
/// which are a few bytes among many, get split too).
#[derive(Debug, Clone)]
struct Cuts {
    anywhere: Vec<Index>,
    near_frames: Vec<(Index, usize)>,
}

fn cuts() -> impl Strategy<Value = Cuts> {
    (
        prop::collection::vec(any::<Index>(), 0..=24),
        prop::collection::vec((any::<Index>(), 0usize..=6), 0..=12),
    )
        .prop_map(|(anywhere, near_frames)| Cuts {
            anywhere,
            near_frames,
        })
}

/// Splits `body` into pieces at the given cut points.
fn split<'a>(body: &'a [u8], cuts: &Cuts, frame_starts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts
        .anywhere
        .iter()
        .map(|i| i.index(body.len() + 1))
        .collect();
    if !frame_starts.is_empty() {
        points.extend(
            cuts.near_frames
                .iter()
                .map(|(i, off)| (frame_starts[i.index(frame_starts.len())] + off).min(body.len())),
        );
    }
    points.push(0);
    points.push(body.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| &body[w[0]..w[1]]).collect()
}

/// Arbitrary bytes that often look like frames: valid frames, headers
/// announcing anything, lone magic bytes, raw noise.
fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..=8).prop_map(|p| {
            let mut b = BytesMut::new();
            encode_frame(&p, &mut b).unwrap();
            b.to_vec()
        }),
        2 => any::<u16>().prop_map(|n| {
            let mut v = vec![0xcc];
            v.extend(n.to_be_bytes());
            v
        }),
        2 => prop_oneof![any::<u32>(), 0u32..=4096].prop_map(|n| {
            let mut v = vec![0xcd];
            v.extend(n.to_be_bytes());
            v
        }),
        1 => prop::sample::select(vec![0xccu8, 0xcd]).prop_map(|b| vec![b]),
        2 => prop::collection::vec(any::<u8>(), 0..=16),
    ];
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..=256),
        3 => prop::collection::vec(piece, 0..=16).prop_map(|ps| ps.concat()),
    ]
}

// ---------------------------------------------------------------------------
// Driving the decoders
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct PacketRun {
    messages: Vec<Vec<u8>>,
    error: Option<FrameError>,
    /// Largest capacity the receive buffer had.
    peak_capacity: usize,
}

fn run_packet(pieces: &[&[u8]], max: usize) -> PacketRun {
    let mut dec = PacketDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut run = PacketRun {
        messages: Vec::new(),
        error: None,
        peak_capacity: 0,
    };
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    for piece in pieces {
        buf.extend_from_slice(piece);
        run.peak_capacity = run.peak_capacity.max(buf.capacity());
        loop {
            let r = dec.decode(&mut buf);
            run.peak_capacity = run.peak_capacity.max(buf.capacity());
            match r {
                Ok(Some(m)) => run.messages.push(m.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    run.error = Some(e);
                    return run;
                }
            }
            assert!(run.messages.len() <= total, "PacketDecoder loops");
        }
    }
    loop {
        let r = dec.decode_eof(&mut buf);
        run.peak_capacity = run.peak_capacity.max(buf.capacity());
        match r {
            Ok(Some(m)) => run.messages.push(m.to_vec()),
            Ok(None) => return run,
            Err(e) => {
                run.error = Some(e);
                return run;
            }
        }
        assert!(run.messages.len() <= total + 1, "PacketDecoder loops");
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamRun {
    data: Vec<u8>,
    error: Option<FrameError>,
    empty_chunks: usize,
}

fn run_stream(pieces: &[&[u8]]) -> StreamRun {
    let mut dec = StreamDecoder::new();
    let mut buf = BytesMut::new();
    let mut run = StreamRun {
        data: Vec::new(),
        error: None,
        empty_chunks: 0,
    };
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let mut calls = 0usize;
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            calls += 1;
            assert!(calls <= 2 * total + pieces.len() + 2, "StreamDecoder loops");
            match dec.decode(&mut buf) {
                Ok(Some(c)) => {
                    run.empty_chunks += usize::from(c.is_empty());
                    run.data.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => {
                    run.error = Some(e);
                    return run;
                }
            }
        }
    }
    loop {
        calls += 1;
        assert!(calls <= 2 * total + pieces.len() + 2, "StreamDecoder loops");
        match dec.decode_eof(&mut buf) {
            Ok(Some(c)) => {
                run.empty_chunks += usize::from(c.is_empty());
                run.data.extend_from_slice(&c);
            }
            Ok(None) => return run,
            Err(e) => {
                run.error = Some(e);
                return run;
            }
        }
    }
}

/// The same as [`run_packet`], through `decode_chunk` (pieces as `Bytes`
/// body chunks; payload sliced out of them, split frames put together).
fn run_packet_chunked(pieces: &[&[u8]], max: usize) -> PacketRun {
    let mut dec = PacketDecoder::new(max);
    let mut held = BytesMut::new();
    let mut run = PacketRun {
        messages: Vec::new(),
        error: None,
        peak_capacity: 0,
    };
    for piece in pieces {
        let mut chunk = Bytes::copy_from_slice(piece);
        loop {
            let r = dec.decode_chunk(&mut held, &mut chunk);
            run.peak_capacity = run.peak_capacity.max(held.capacity());
            match r {
                Ok(Some(m)) => run.messages.push(m.to_vec()),
                Ok(None) => {
                    assert!(chunk.is_empty(), "decode_chunk left input unread");
                    break;
                }
                Err(e) => {
                    run.error = Some(e);
                    return run;
                }
            }
        }
    }
    match dec.decode_eof(&mut held) {
        Ok(Some(m)) => run.messages.push(m.to_vec()),
        Ok(None) => {}
        Err(e) => run.error = Some(e),
    }
    run
}

/// The same as [`run_stream`], through `decode_chunk`.
fn run_stream_chunked(pieces: &[&[u8]]) -> StreamRun {
    let mut dec = StreamDecoder::new();
    let mut held = BytesMut::new();
    let mut run = StreamRun {
        data: Vec::new(),
        error: None,
        empty_chunks: 0,
    };
    for piece in pieces {
        let mut chunk = Bytes::copy_from_slice(piece);
        loop {
            match dec.decode_chunk(&mut held, &mut chunk) {
                Ok(Some(c)) => {
                    run.empty_chunks += usize::from(c.is_empty());
                    run.data.extend_from_slice(&c);
                }
                Ok(None) => {
                    assert!(chunk.is_empty(), "decode_chunk left input unread");
                    assert!(held.len() < 5, "decode_chunk held {} bytes", held.len());
                    break;
                }
                Err(e) => {
                    run.error = Some(e);
                    return run;
                }
            }
        }
    }
    loop {
        match dec.decode_eof(&mut held) {
            Ok(Some(c)) => run.data.extend_from_slice(&c),
            Ok(None) => return run,
            Err(e) => {
                run.error = Some(e);
                return run;
            }
        }
    }
}

/// Checks an error is one of the known variants with sane fields.
fn check_error(e: &FrameError, max: Option<usize>) -> Result<(), TestCaseError> {
    match e {
        FrameError::BadMagic(b) => {
            prop_assert!(*b != 0xcc && *b != 0xcd, "BadMagic({b:#x})");
        }
        FrameError::Truncated { received, expected } => {
            prop_assert!(*received > 0, "{e:?}");
            if let Some(exp) = expected {
                prop_assert!(*exp > *received as u64, "{e:?}");
            }
        }
        FrameError::TooLarge { len, max: m } => {
            prop_assert!(*len > *m as u64, "{e:?}");
            if let Some(max) = max {
                prop_assert_eq!(*m, max);
            }
        }
        other => prop_assert!(false, "unknown FrameError variant {other:?}"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Frames cut anywhere come back as exactly the packets and bytes sent.
    #[test]
    fn frames_survive_any_chunking(
        payloads in prop::collection::vec(payload(), 0..=12),
        cuts in cuts(),
    ) {
        let mut body = BytesMut::new();
        let mut frame_starts = Vec::new();
        for p in &payloads {
            frame_starts.push(body.len());
            encode_frame(p, &mut body).unwrap();
        }
        let pieces = split(&body, &cuts, &frame_starts);
        prop_assert_eq!(pieces.concat(), body.to_vec());

        // The cap at exactly the largest packet: still accepted.
        let max = payloads.iter().map(Vec::len).max().unwrap_or(0);
        let got = run_packet(&pieces, max);
        prop_assert_eq!(&got.error, &None);
        prop_assert_eq!(got.messages.len(), payloads.len());
        for (i, (g, p)) in got.messages.iter().zip(&payloads).enumerate() {
            prop_assert!(g == p, "packet {} of {} differs ({} bytes, expected {})",
                i, payloads.len(), g.len(), p.len());
        }

        let s = run_stream(&pieces);
        prop_assert_eq!(&s.error, &None);
        prop_assert_eq!(s.empty_chunks, 0);
        prop_assert!(s.data == payloads.concat(), "stream data differs");

        // The zero-copy path over body chunks agrees.
        let chunked = run_packet_chunked(&pieces, max);
        prop_assert_eq!(&chunked.error, &None);
        prop_assert!(chunked.messages == got.messages, "decode_chunk packets differ");
        let cs = run_stream_chunked(&pieces);
        prop_assert_eq!(&cs.error, &None);
        prop_assert_eq!(cs.empty_chunks, 0);
        prop_assert!(cs.data == s.data, "decode_chunk stream data differs");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No input panics either decoder; how the input is cut changes nothing;
    /// the buffer never grows to what a refused header announced; and the
    /// two decoders agree on what they deliver.
    #[test]
    fn hostile_input_is_handled(
        body in hostile_body(),
        cuts in cuts(),
        max in prop_oneof![0usize..=64, 0usize..=4096],
    ) {
        let pieces = split(&body, &cuts, &[0]);
        let whole: Vec<&[u8]> = vec![&body];
        let bytewise: Vec<&[u8]> = body.chunks(1).collect();

        let p = run_packet(&pieces, max);
        if let Some(e) = &p.error {
            check_error(e, Some(max))?;
        }
        for other in [run_packet(&whole, max), run_packet(&bytewise, max)] {
            prop_assert_eq!(&p.messages, &other.messages);
            prop_assert_eq!(&p.error, &other.error);
        }
        for m in &p.messages {
            prop_assert!(m.len() <= max);
        }
        // decode_chunk over the same pieces: same packets, same error, and
        // no more room held than the buffered path.
        let c = run_packet_chunked(&pieces, max);
        prop_assert_eq!(&p.messages, &c.messages);
        prop_assert_eq!(&p.error, &c.error);
        prop_assert!(c.peak_capacity <= 4 * (body.len() + max + 5) + 64);
        // Room is only ever reserved for input that arrived or a frame that
        // passed the size check; allow for the allocator's doubling.
        let bound = 4 * (body.len() + max + 5) + 64;
        prop_assert!(p.peak_capacity <= bound,
            "buffer capacity reached {} (bound {bound}) for {} bytes of input, max {max}",
            p.peak_capacity, body.len());

        let s = run_stream(&pieces);
        if let Some(e) = &s.error {
            check_error(e, None)?;
            prop_assert!(!matches!(e, FrameError::TooLarge { .. }),
                "a stream has no size cap: {e:?}");
        }
        prop_assert_eq!(s.empty_chunks, 0);
        for other in [run_stream(&whole), run_stream(&bytewise), run_stream_chunked(&pieces), run_stream_chunked(&bytewise)] {
            prop_assert_eq!(&s.data, &other.data);
            prop_assert_eq!(&s.error, &other.error);
        }

        // What the packet reader delivered, the stream reader delivered too,
        // and up to the packet reader's error they agree.
        let delivered = p.messages.concat();
        prop_assert!(s.data.starts_with(&delivered));
        match &p.error {
            None | Some(FrameError::BadMagic(_)) => {
                prop_assert_eq!(&s.data, &delivered);
                prop_assert_eq!(&s.error, &p.error);
            }
            Some(FrameError::Truncated { .. }) => {
                // The stream also hands out the unfinished frame's payload.
                prop_assert!(body.ends_with(&s.data[delivered.len()..]));
                prop_assert_eq!(&s.error, &p.error);
            }
            // The stream reader goes on past a frame the packet reader refused.
            Some(_) => {}
        }
    }
}
