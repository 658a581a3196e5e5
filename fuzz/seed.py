#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/<target>/) from the shared frame
vectors, plus a few hand-written cases.

    python3 fuzz/seed.py [path/to/frames.json]

The default vectors are ../shared/vectors/frames.json next to the repository.
The seeds are committed; rerun this when the vectors or an input layout
change. Files it did not write are left alone. Input layouts are described
at the top of each fuzz target.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_VECTORS = os.path.join(os.path.dirname(REPO), "shared", "vectors", "frames.json")

# server_handler selectors (indices into the tables in server_handler.rs).
MESSAGE, STREAM, MESSAGE_QUERY, METRICS, UNKNOWN = 0, 1, 2, 4, 6
POST, GET, OPTIONS = 0, 1, 3
CT_OK, CT_NONE, CT_CHARSET = 0, 1, 2
H2, H11 = 0, 1
ACCEPT_HTTP1, TOKEN, METRICS_ON, SHUT_DOWN = 1, 2, 4, 8
CORS_ONE, CORS_ANY = 0x10, 0x20
REMOTE_EXT, REMOTE_NONE = 0x40, 0x80
AUTH_NONE, AUTH_OK, AUTH_BAD = 0, 1, 3
ORIGIN_NONE, ORIGIN_OK, ORIGIN_OTHER = 0, 1, 2
TRAILERS = 0x80


def pattern(n):
    return bytes(i % 251 for i in range(n))


def cuts(points):
    out = bytes([len(points)])
    for p in points:
        out += p.to_bytes(2, "big")
    return out


def decoder_input(body, max_packet=0xFFFF, points=()):
    return max_packet.to_bytes(2, "big") + cuts(list(points)) + body


def handler_input(body, path=MESSAGE, method=POST, ct=CT_OK, version=H2, flags=0,
                  auth=AUTH_NONE, origin=ORIGIN_NONE, max_packet=0xFFFF, queue=7,
                  end=0, points=()):
    head = bytes([path, method, ct, version, flags, auth, origin])
    head += max_packet.to_bytes(2, "big") + bytes([queue, end])
    return head + cuts(list(points)) + body


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]


# memberlist_packet flags.
ML_LABEL, ML_SKIP, ML_RESPONSE = 1, 2, 4


def memberlist_input(data, flags=0, chunk=255):
    return bytes([flags, chunk]) + data


def memberlist_seeds(vectors_dir):
    """memberlist_packet seeds: the memberlist and ckit vectors' messages,
    packets and streams (label "x" stands in for the vectors' label)."""
    with open(os.path.join(vectors_dir, "memberlist_messages_v0.5.3.json")) as f:
        ml = json.load(f)
    with open(os.path.join(vectors_dir, "ckit_messages.json")) as f:
        ck = json.load(f)
    seeds = {}
    for m in ml["messages"]:
        seeds[f"ml-msg-{slug(m['name'])}"] = memberlist_input(bytes.fromhex(m["hex"]))
    seeds["ml-compound"] = memberlist_input(bytes.fromhex(ml["compound"]["hex"]))
    seeds["ml-lzw"] = memberlist_input(bytes.fromhex(ml["lzw"]["compressPayload_hex"]), chunk=3)
    for name, case in ml["packets"].items():
        for i, p in enumerate(case.get("packets_hex", []) if isinstance(case, dict) else []):
            data = bytes.fromhex(p)
            flags = 0
            if data[0] == 0xF4:
                data = bytes([0xF4, 1]) + b"x" + data[2 + data[1]:]
                flags = ML_LABEL
            seeds[f"ml-packet-{slug(name)}-{i}"] = memberlist_input(data, flags)
    for name, case in ml["streams"].items():
        if not isinstance(case, dict) or "hex" not in case:
            continue
        data = bytes.fromhex(case["hex"])
        if data[0] == 0xF4:
            seeds[f"ml-stream-{slug(name)}"] = memberlist_input(bytes([0xF4, 1]) + b"x" + data[2 + data[1]:], ML_LABEL, 6)
        else:
            seeds[f"ml-stream-{slug(name)}"] = memberlist_input(data, ML_RESPONSE, 6)
            seeds[f"ml-stream-{slug(name)}-skip"] = memberlist_input(data, ML_LABEL | ML_SKIP, 255)
    for i, m in enumerate(ck["state_messages"]):
        seeds[f"ckit-state-{i:02}"] = memberlist_input(bytes.fromhex(m["hex"]))
    for i, m in enumerate(ck["local_state"]):
        seeds[f"ckit-local-state-{i:02}"] = memberlist_input(bytes.fromhex(m["hex"]))
    return seeds


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_VECTORS
    with open(path) as f:
        vectors = json.load(f)

    dec, srv = {}, {}

    for i, v in enumerate(vectors["decode"]):
        body = bytes.fromhex(v["input_hex"])
        name = f"vec-decode-{i:02}-{slug(v['name'])}"
        dec[name] = decoder_input(body)
        # Every byte its own chunk: headers split at each point.
        dec[name + "-bytewise"] = decoder_input(body, points=range(1, len(body)))
        # A limit of one byte: any longer packet is refused.
        dec[name + "-max1"] = decoder_input(body, max_packet=1)
        srv[name + "-message"] = handler_input(body)
        srv[name + "-message-bytewise"] = handler_input(body, points=range(1, len(body)), queue=0)
        srv[name + "-stream"] = handler_input(body, path=STREAM)

    for i, v in enumerate(vectors["encode"]):
        n = v["payload_len"]
        head = bytes.fromhex(v["frame_head_hex"])
        name = f"vec-encode-{i:02}-{slug(v['name'])}"
        if "frame_hex" in v:
            frame = bytes.fromhex(v["frame_hex"])
        elif n <= 1400:
            frame = head + pattern(n)
        else:
            # Too big for a seed: the header and the start of the payload
            # (a truncated frame, or one over a small limit).
            frame = head + pattern(32)
            name += "-truncated"
        assert frame[: len(head)] == head
        dec[name] = decoder_input(frame)
        dec[name + "-max16"] = decoder_input(frame, max_packet=16, points=[1, len(head) + 1])
        srv[name + "-message"] = handler_input(frame)
        srv[name + "-stream"] = handler_input(frame, path=STREAM, points=[2])

    four_gib = bytes.fromhex("cdffffffff")
    two = bytes.fromhex("cc00026869")
    # Hand-written: a 0xCD header announcing 4 GiB - 1 (whole, split, with
    # some payload), empty input and body, split headers, many empty frames.
    dec["hand-4gib-header"] = decoder_input(four_gib, max_packet=1024)
    dec["hand-4gib-header-split"] = decoder_input(four_gib + b"abc", max_packet=1024, points=[1, 3, 5, 6])
    dec["hand-4gib-header-max-u16"] = decoder_input(four_gib + pattern(64))
    dec["hand-empty-input"] = b""
    dec["hand-empty-body"] = decoder_input(b"")
    dec["hand-split-short-header"] = decoder_input(two + two, points=[1, 2, 6, 7])
    dec["hand-split-long-header"] = decoder_input(bytes.fromhex("cd000000026869") * 2, points=[2, 4, 9, 12])
    dec["hand-empty-frames"] = decoder_input(bytes.fromhex("cc0000") * 40)
    dec["hand-at-the-limit"] = decoder_input(bytes.fromhex("cc0004") + b"abcd" + bytes.fromhex("cc0005") + b"abcde", max_packet=4)

    srv["hand-4gib-header-message"] = handler_input(four_gib, max_packet=1024)
    srv["hand-4gib-header-message-split"] = handler_input(four_gib + b"abc", max_packet=1024, points=[1, 3, 5])
    srv["hand-4gib-header-stream"] = handler_input(four_gib + pattern(64), path=STREAM, points=[3, 30])
    srv["hand-empty-body-message"] = handler_input(b"")
    srv["hand-empty-body-stream"] = handler_input(b"", path=STREAM)
    srv["hand-split-headers-message"] = handler_input(two * 3, points=[1, 2, 6, 7, 11, 11])
    srv["hand-many-frames-queue1"] = handler_input(bytes.fromhex("cc0000") * 50 + two, queue=0)
    srv["hand-too-large-message"] = handler_input(two + two, max_packet=1)
    srv["hand-body-error"] = handler_input(two * 3, points=[5, 7], end=2)
    srv["hand-body-error-stream"] = handler_input(two * 3, path=STREAM, points=[5, 7], end=2)
    srv["hand-trailers"] = handler_input(two, end=TRAILERS)
    srv["hand-query-message"] = handler_input(two, path=MESSAGE_QUERY)
    srv["hand-get-no-content-type"] = handler_input(two, method=GET, ct=CT_NONE)
    srv["hand-get-content-type"] = handler_input(two, method=GET)
    srv["hand-charset-content-type"] = handler_input(two, ct=CT_CHARSET)
    srv["hand-http11"] = handler_input(two, version=H11)
    srv["hand-http11-accepted"] = handler_input(two, version=H11, flags=ACCEPT_HTTP1)
    srv["hand-http11-stream-accepted"] = handler_input(two, path=STREAM, version=H11, flags=ACCEPT_HTTP1)
    srv["hand-unknown-path"] = handler_input(two, path=UNKNOWN)
    srv["hand-metrics"] = handler_input(b"", path=METRICS, method=GET, flags=METRICS_ON)
    srv["hand-token-missing"] = handler_input(two, flags=TOKEN)
    srv["hand-token-ok"] = handler_input(two, flags=TOKEN, auth=AUTH_OK)
    srv["hand-token-bad"] = handler_input(two, flags=TOKEN, auth=AUTH_BAD)
    srv["hand-cors-allowed"] = handler_input(two, flags=CORS_ONE, origin=ORIGIN_OK)
    srv["hand-cors-denied"] = handler_input(two, flags=CORS_ONE, origin=ORIGIN_OTHER)
    srv["hand-cors-preflight"] = handler_input(b"", method=OPTIONS, ct=CT_NONE, flags=CORS_ANY | TOKEN, origin=ORIGIN_OTHER)
    srv["hand-shut-down"] = handler_input(two, flags=SHUT_DOWN)
    srv["hand-shut-down-stream"] = handler_input(two, path=STREAM, flags=SHUT_DOWN)
    srv["hand-remote-extension"] = handler_input(two, flags=REMOTE_EXT)
    srv["hand-remote-none"] = handler_input(two, flags=REMOTE_NONE)

    ml = memberlist_seeds(os.path.dirname(os.path.abspath(path)))

    # message_reader reads the frame decoder's layout: the same seeds.
    for target, seeds in (("frame_decoder", dec), ("message_reader", dec), ("server_handler", srv),
                          ("memberlist_packet", ml)):
        out = os.path.join(HERE, "corpus", target)
        os.makedirs(out, exist_ok=True)
        for name, data in sorted(seeds.items()):
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds in {os.path.relpath(out, REPO)}")


if __name__ == "__main__":
    main()
