#!/usr/bin/env python3
"""rewrite_stage.py - a spiketalk pipeline stage written in Python from
docs/PROTOCOL.md alone: no spiketalk code, only Debian's python3-zmq.

It rewrites the agent's text on its way to the synthesizer: whole-word
replacements ("--replace 'hello->goodbye,you->they'") and, with --upper,
capital letters. Every other message passes on unchanged but for the hop it
appends, as the protocol asks of every stage.

In a configuration, the stage is `type = external`:

    [pipeline]
    transport = tcp
    base_port = 5600
    [stage.agent]
    type = text_source
    lines = hello there | how are you
    out = polish
    [stage.polish]
    type = external             ; this script
    out = voice
    [stage.voice]
    type = text_sink

Start the pipeline (`spiketalk run --config talk.ini`): it waits for this
stage to join before it starts. Then, with the endpoints the configuration
gives the stage:

    spiketalk stage polish --config talk.ini --endpoints > polish.ep
    python3 rewrite_stage.py --endpoints polish.ep --replace 'hello->goodbye'

or name them yourself (--name, --id, --listen, --out, --control, --report).
"""
import argparse
import re
import struct
import sys
import time

import zmq

# ---- the wire protocol (docs/PROTOCOL.md) -----------------------------------

MAGIC = b"STLK"
VERSION = 1
HEADER_BYTES = 296
MAX_HOPS = 16
MAX_PAYLOAD = 4 << 20
FIXED = struct.Struct("<4sBBBBIIQQII")   # magic .. reserved: 40 bytes
HOP = struct.Struct("<QIHH")             # sent_ns, compute_ns, stage_id, reserved

PCM, SPIKES, WORDS, TEXT, CONTROL, METRICS = range(1, 7)
START, STOP, INTERRUPT, FLUSH, TURN, END, HEARTBEAT, READY, FAILED, SHUTDOWN = range(1, 11)
TEXT_END = 0x01
HOPS_TRUNCATED = 0x01


class Malformed(Exception):
    pass


def decode(frames):
    """Two frames -> (header dict, payload bytes). Raises Malformed."""
    if len(frames) != 2:
        raise Malformed("%d frames, expected two" % len(frames))
    head, payload = frames
    if len(head) != HEADER_BYTES:
        raise Malformed("header of %d bytes" % len(head))
    (magic, version, mtype, n_hops, flags, stream, epoch, seq, sample_index,
     payload_bytes, _reserved) = FIXED.unpack_from(head)
    if magic != MAGIC:
        raise Malformed("bad magic %r" % magic)
    if version != VERSION:
        raise Malformed("protocol version %d" % version)
    if not 1 <= mtype <= 6:
        raise Malformed("unknown type %d" % mtype)
    if n_hops > MAX_HOPS:
        raise Malformed("%d hops" % n_hops)
    if len(payload) > MAX_PAYLOAD or payload_bytes != len(payload):
        raise Malformed("payload of %d bytes, header says %d" % (len(payload), payload_bytes))
    hops = [HOP.unpack_from(head, 40 + 16 * i)[:3] for i in range(n_hops)]
    if mtype == TEXT:
        if len(payload) < 8 or struct.unpack_from("<I", payload, 4)[0] != len(payload) - 8:
            raise Malformed("bad text payload")
    if mtype == CONTROL:
        if len(payload) < 16 or struct.unpack_from("<I", payload, 12)[0] != len(payload) - 16:
            raise Malformed("bad control payload")
        if not 1 <= struct.unpack_from("<I", payload, 0)[0] <= 10:
            raise Malformed("unknown control command")
    return dict(type=mtype, flags=flags, stream=stream, epoch=epoch, seq=seq,
                sample_index=sample_index, hops=hops), payload


def encode(h, payload):
    hops = h["hops"][-MAX_HOPS:]
    head = bytearray(HEADER_BYTES)
    FIXED.pack_into(head, 0, MAGIC, VERSION, h["type"], len(hops), h["flags"], h["stream"],
                    h["epoch"], h["seq"], h["sample_index"], len(payload), 0)
    for i, (sent_ns, compute_ns, stage_id) in enumerate(hops):
        HOP.pack_into(head, 40 + 16 * i, sent_ns, compute_ns, stage_id, 0)
    return [bytes(head), payload]


def stamp(h, stage_id, arrived_ns):
    """Appends this stage's hop (the last slot is reused past 16)."""
    now = time.monotonic_ns()
    hop = (now, min(now - arrived_ns, 0xFFFFFFFF) if arrived_ns else 0, stage_id)
    if len(h["hops"]) >= MAX_HOPS:
        h["hops"][-1] = hop
        h["flags"] |= HOPS_TRUNCATED
    else:
        h["hops"].append(hop)


def control_payload(cmd, arg=0, stage_id=0, text=b""):
    return struct.pack("<IIII", cmd, arg, stage_id, len(text)) + text


def text_payload(flags, text):
    return struct.pack("<II", flags, len(text)) + text


# ---- the stage -------------------------------------------------------------------


def parse_rules(spec):
    rules = {}
    for rule in filter(None, (r.strip() for r in spec.split(","))):
        if "->" not in rule:
            sys.exit("rewrite_stage: --replace: '%s' is not WORD->WORD" % rule)
        a, b = (x.strip() for x in rule.split("->", 1))
        rules[a.lower()] = b
    return rules


def rewrite(text, rules, upper):
    out = re.sub(r"[A-Za-z0-9']+", lambda m: rules.get(m.group(0).lower(), m.group(0)), text)
    return out.upper() if upper else out


def read_endpoints(path, args):
    f = sys.stdin if path == "-" else open(path)
    with f:
        for line in f:
            if "=" not in line:
                continue
            key, value = (x.strip() for x in line.split("=", 1))
            if key == "name" and not args.name:
                args.name = value
            elif key == "id" and not args.id:
                args.id = int(value)
            elif key == "listen":
                args.listen.append(value)
            elif key == "out":
                args.out.append(value)
            elif key == "control" and not args.control:
                args.control = value
            elif key == "report" and not args.report:
                args.report = value
            elif key == "inputs" and not args.inputs:
                args.inputs = int(value)
            elif key == "heartbeat_ms":
                args.heartbeat_ms = float(value)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoints", help="a file of key = value lines from "
                    "`spiketalk stage NAME --config FILE --endpoints` (- for stdin)")
    ap.add_argument("--name", help="the stage's name in the configuration")
    ap.add_argument("--id", type=int, default=0, help="its id: 1 + its index in the file")
    ap.add_argument("--listen", action="append", default=[], help="input endpoint(s) to bind")
    ap.add_argument("--out", action="append", default=[], help="output endpoint(s) to connect")
    ap.add_argument("--control", help="the supervisor's control bus (PUB) to connect to")
    ap.add_argument("--report", help="the supervisor's report socket (PULL) to connect to")
    ap.add_argument("--inputs", type=int, default=0, help="upstream edges (END from each)")
    ap.add_argument("--hwm", type=int, default=64, help="queue bound, messages")
    ap.add_argument("--heartbeat-ms", dest="heartbeat_ms", type=float, default=200)
    ap.add_argument("--replace", default="", help="whole words: 'a->b,c->d'")
    ap.add_argument("--upper", action="store_true", help="capital letters")
    args = ap.parse_args()
    if args.endpoints:
        read_endpoints(args.endpoints, args)
    if not (args.name and args.id and args.listen and args.control and args.report):
        ap.error("need --name, --id, --listen, --control and --report (or --endpoints FILE)")
    rules = parse_rules(args.replace)
    inputs = args.inputs or 1

    ctx = zmq.Context()
    ctl = ctx.socket(zmq.SUB)
    ctl.setsockopt(zmq.SUBSCRIBE, b"")
    ctl.setsockopt(zmq.LINGER, 0)
    ctl.connect(args.control)
    report = ctx.socket(zmq.PUSH)
    report.setsockopt(zmq.LINGER, 500)
    report.connect(args.report)
    data_in = ctx.socket(zmq.PULL)
    data_in.setsockopt(zmq.RCVHWM, args.hwm)
    data_in.setsockopt(zmq.LINGER, 0)
    for ep in args.listen:
        data_in.bind(ep)
    outs = []
    for ep in args.out:
        s = ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.SNDHWM, args.hwm)
        s.setsockopt(zmq.SNDTIMEO, 1000)
        s.setsockopt(zmq.LINGER, 500)
        s.connect(ep)
        outs.append(s)

    seq = 0
    epoch = 0
    heard_bus = False
    last_bus = time.monotonic()
    next_beat = 0.0
    ends = 0
    malformed = 0
    name = args.name.encode()

    def tell(cmd, arg=0, text=b""):
        h = dict(type=CONTROL, flags=0, stream=0, epoch=epoch, seq=0, sample_index=0, hops=[])
        stamp(h, args.id, 0)
        try:
            report.send_multipart(encode(h, control_payload(cmd, arg, args.id, text)), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def send(h, payload, arrived_ns):
        nonlocal seq
        seq += 1
        h["seq"] = seq
        stamp(h, args.id, arrived_ns)
        frames = encode(h, payload)
        audio = h["type"] in (PCM, SPIKES)
        for s in outs:
            try:
                s.send_multipart(frames, zmq.NOBLOCK if audio else 0)
            except zmq.Again:
                pass  # audio is shed when the next stage is full; text waited 1 s

    poller = zmq.Poller()
    poller.register(ctl, zmq.POLLIN)
    poller.register(data_in, zmq.POLLIN)
    running = True
    while running:
        events = dict(poller.poll(50))
        # Control first: the bus is drained before any data is taken.
        while True:
            try:
                frames = ctl.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                h, payload = decode(frames)
            except Malformed as e:
                malformed += 1
                print("rewrite_stage: dropped a malformed bus message: %s" % e, file=sys.stderr)
                continue
            last_bus = time.monotonic()
            if not heard_bus:
                heard_bus = True
                tell(READY, 0, name)
            epoch = max(epoch, h["epoch"])
            if h["type"] == CONTROL and struct.unpack_from("<I", payload)[0] == SHUTDOWN:
                running = False
        if not running:
            break
        if data_in in events:
            for _ in range(64):
                try:
                    frames = data_in.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                arrived = time.monotonic_ns()
                try:
                    h, payload = decode(frames)
                except Malformed as e:
                    malformed += 1
                    print("rewrite_stage: dropped a malformed message: %s" % e, file=sys.stderr)
                    continue
                if h["type"] == CONTROL:
                    if struct.unpack_from("<I", payload)[0] == END:
                        ends += 1
                        if ends == inputs:
                            send(h, payload, arrived)
                            tell(END, 0, name)
                    else:
                        send(h, payload, arrived)
                    continue
                if h["epoch"] < epoch:
                    continue  # an interrupted turn: stale
                epoch = h["epoch"]
                if h["type"] == TEXT:
                    flags, n = struct.unpack_from("<II", payload)
                    text = payload[8:8 + n].decode("utf-8", "replace")
                    payload = text_payload(flags, rewrite(text, rules, args.upper).encode())
                send(h, payload, arrived)
                if ctl.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    break
        now = time.monotonic()
        if heard_bus and now >= next_beat:
            tell(HEARTBEAT)
            next_beat = now + args.heartbeat_ms / 1000
        if heard_bus and now - last_bus > 5:
            print("rewrite_stage: the control bus is silent (supervisor gone?); exiting",
                  file=sys.stderr)
            break
    for s in [ctl, report, data_in] + outs:
        s.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
