"""spiketalk.wire - the pipeline's wire protocol (docs/PROTOCOL.md, version 1)
in pure Python: the 296-byte header, the payload of each message type, and
the receiver's checks (section 2.4), with nothing but the standard library
(numpy only when a PCM payload is asked for as an array).

This is what bindings/python/examples/rewrite_stage.py did inline, moved
here so that every Python stage shares one implementation. It does not load
libspiketalk.
"""
import struct
import time

MAGIC = b"STLK"
VERSION = 1
HEADER_BYTES = 296
MAX_HOPS = 16
MAX_PAYLOAD = 4 << 20
MAX_WORDS = 4096
MAX_WORD_BYTES = 1024
MAX_CONTROL_TEXT = 4096
FIXED = struct.Struct("<4sBBBBIIQQII")   # magic .. reserved: 40 bytes
HOP = struct.Struct("<QIHH")             # sent_ns, compute_ns, stage_id, reserved

PCM, SPIKES, WORDS, TEXT, CONTROL, METRICS = range(1, 7)
TYPE_NAMES = {PCM: "pcm", SPIKES: "spikes", WORDS: "words", TEXT: "text", CONTROL: "control",
              METRICS: "metrics"}
(START, STOP, INTERRUPT, FLUSH, TURN, END, HEARTBEAT, READY, FAILED,
 SHUTDOWN) = range(1, 11)
CONTROL_NAMES = {START: "START", STOP: "STOP", INTERRUPT: "INTERRUPT", FLUSH: "FLUSH",
                 TURN: "TURN", END: "END", HEARTBEAT: "HEARTBEAT", READY: "READY",
                 FAILED: "FAILED", SHUTDOWN: "SHUTDOWN"}
TEXT_END = 0x01
WORDS_FINAL = 0x01
HOPS_TRUNCATED = 0x01
PCM_F32, PCM_S16 = 1, 2


class Malformed(Exception):
    """A message that fails the checks of section 2.4; the text says which."""


class Message:
    """One message: the header's fields, the hops [(sent_ns, compute_ns,
    stage_id)], the payload bytes, and when it arrived (monotonic ns; 0 for
    one made here)."""

    __slots__ = ("type", "flags", "stream", "epoch", "seq", "sample_index", "hops", "payload",
                 "arrived_ns")

    def __init__(self, type, payload=b"", stream=0, epoch=0, seq=0, sample_index=0, hops=None,
                 flags=0, arrived_ns=0):
        self.type = type
        self.flags = flags
        self.stream = stream
        self.epoch = epoch
        self.seq = seq
        self.sample_index = sample_index
        self.hops = list(hops or [])
        self.payload = payload
        self.arrived_ns = arrived_ns

    def derive(self, type=None, payload=None):
        """A message caused by this one: same stream, epoch, sample index and
        hops (section 4.3); type and payload replaced when given."""
        return Message(self.type if type is None else type,
                       self.payload if payload is None else payload, self.stream, self.epoch,
                       0, self.sample_index, self.hops, self.flags, self.arrived_ns)

    # ---- payload views ----

    def text(self):
        """TEXT: (flags, str)."""
        flags, n = struct.unpack_from("<II", self.payload)
        return flags, self.payload[8:8 + n].decode("utf-8", "replace")

    def control(self):
        """CONTROL: (cmd, arg, stage_id, text)."""
        cmd, arg, sid, n = struct.unpack_from("<IIII", self.payload)
        return cmd, arg, sid, self.payload[16:16 + n].decode("utf-8", "replace")

    def pcm(self):
        """PCM: (rate_hz, float32 numpy array of the samples)."""
        import numpy as np
        rate, _ch, fmt, frames = struct.unpack_from("<IHHI", self.payload)
        if fmt == PCM_F32:
            return rate, np.frombuffer(self.payload, "<f4", frames, 12).astype(np.float32)
        return rate, np.frombuffer(self.payload, "<i2", frames, 12).astype(np.float32) / 32768

    def words(self):
        """WORDS: (flags, [(start_sample, end_sample, confidence, text)])."""
        flags, n = struct.unpack_from("<II", self.payload)
        out, off = [], 8
        for _ in range(n):
            s, e, c, tb = struct.unpack_from("<QQfI", self.payload, off)
            off += 24
            out.append((s, e, c, self.payload[off:off + tb].decode("utf-8", "replace")))
            off += tb
        return flags, out

    def spikes(self):
        """SPIKES: (n_channels, [(t_us, channel)])."""
        nch, n = struct.unpack_from("<II", self.payload)
        return nch, [struct.unpack_from("<II", self.payload, 8 + 8 * k) for k in range(n)]

    def metrics(self):
        """METRICS: (stage_id, {name: value})."""
        sid, n = struct.unpack_from("<II", self.payload)
        out, off = {}, 8
        for _ in range(n):
            ln = self.payload[off]
            name = self.payload[off + 1:off + 1 + ln].decode("ascii", "replace")
            out[name] = struct.unpack_from("<d", self.payload, off + 1 + ln)[0]
            off += 1 + ln + 8
        return sid, out

    def __repr__(self):
        return "<Message %s epoch %d seq %d sample %d, %d hops, %d bytes>" % (
            TYPE_NAMES.get(self.type, self.type), self.epoch, self.seq, self.sample_index,
            len(self.hops), len(self.payload))


# ---- payloads ----------------------------------------------------------------


def text_payload(text, flags=0):
    b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return struct.pack("<II", flags, len(b)) + b


def control_payload(cmd, arg=0, stage_id=0, text=b""):
    b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return struct.pack("<IIII", cmd, arg, stage_id, len(b)) + b


def pcm_payload(samples, rate_hz=16000):
    """Mono float32 PCM (any sequence of numbers, or a numpy array)."""
    import numpy as np
    a = np.ascontiguousarray(samples, dtype="<f4").ravel()
    return struct.pack("<IHHI", rate_hz, 1, PCM_F32, a.size) + a.tobytes()


def words_payload(words, flags=WORDS_FINAL):
    """words: [(start_sample, end_sample, confidence, text)]."""
    parts = [struct.pack("<II", flags, len(words))]
    for s, e, c, t in words:
        b = t.encode("utf-8")
        parts.append(struct.pack("<QQfI", s, e, c, len(b)) + b)
    return b"".join(parts)


def spikes_payload(n_channels, events):
    """events: [(t_us, channel)]."""
    return struct.pack("<II", n_channels, len(events)) + b"".join(
        struct.pack("<II", t, ch) for t, ch in events)


def metrics_payload(stage_id, figures):
    parts = [struct.pack("<II", stage_id, len(figures))]
    for name, value in figures.items():
        b = name.encode("ascii")
        parts.append(struct.pack("<B", len(b)) + b + struct.pack("<d", float(value)))
    return b"".join(parts)


# ---- frames ----------------------------------------------------------------


def _check_payload(mtype, p):
    n = len(p)
    if mtype == PCM:
        if n < 12:
            raise Malformed("pcm payload of %d bytes" % n)
        rate, ch, fmt, frames = struct.unpack_from("<IHHI", p)
        if not 1000 <= rate <= 384000 or ch != 1 or fmt not in (PCM_F32, PCM_S16):
            raise Malformed("pcm: rate %d, %d channels, format %d" % (rate, ch, fmt))
        if n != 12 + frames * (4 if fmt == PCM_F32 else 2):
            raise Malformed("pcm: %d frames in %d bytes" % (frames, n))
    elif mtype == SPIKES:
        if n < 8:
            raise Malformed("spikes payload of %d bytes" % n)
        nch, ne = struct.unpack_from("<II", p)
        if n != 8 + 8 * ne:
            raise Malformed("spikes: %d events in %d bytes" % (ne, n))
        for k in range(ne):
            if struct.unpack_from("<I", p, 12 + 8 * k)[0] >= nch:
                raise Malformed("spikes: event %d's channel is not below %d" % (k, nch))
    elif mtype == WORDS:
        if n < 8:
            raise Malformed("words payload of %d bytes" % n)
        nw = struct.unpack_from("<I", p, 4)[0]
        if nw > MAX_WORDS:
            raise Malformed("%d words" % nw)
        off = 8
        for k in range(nw):
            if off + 24 > n:
                raise Malformed("words: entry %d truncated" % k)
            _s, _e, c, tb = struct.unpack_from("<QQfI", p, off)
            if not 0 <= c <= 1 or tb > MAX_WORD_BYTES or off + 24 + tb > n:
                raise Malformed("words: bad entry %d" % k)
            off += 24 + tb
        if off != n:
            raise Malformed("words: %d bytes after the entries" % (n - off))
    elif mtype == TEXT:
        if n < 8 or struct.unpack_from("<I", p, 4)[0] != n - 8:
            raise Malformed("bad text payload")
    elif mtype == CONTROL:
        if n < 16 or struct.unpack_from("<I", p, 12)[0] != n - 16:
            raise Malformed("bad control payload")
        if n - 16 > MAX_CONTROL_TEXT:
            raise Malformed("control text of %d bytes" % (n - 16))
        if not 1 <= struct.unpack_from("<I", p, 0)[0] <= 10:
            raise Malformed("unknown control command")
    elif mtype == METRICS:
        if n < 8:
            raise Malformed("metrics payload of %d bytes" % n)
        cnt = struct.unpack_from("<I", p, 4)[0]
        off = 8
        if cnt > 256:
            raise Malformed("%d metrics" % cnt)
        for k in range(cnt):
            if off >= n or not 1 <= p[off] <= 63 or off + 1 + p[off] + 8 > n:
                raise Malformed("metrics: bad entry %d" % k)
            off += 1 + p[off] + 8
        if off != n:
            raise Malformed("metrics: %d bytes after the entries" % (n - off))


def decode(frames, arrived_ns=0):
    """Two frames -> Message, checked as section 2.4 says. Raises Malformed."""
    if len(frames) != 2:
        raise Malformed("%d frames, expected two" % len(frames))
    head, payload = bytes(frames[0]), bytes(frames[1])
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
    _check_payload(mtype, payload)
    hops = [HOP.unpack_from(head, 40 + 16 * i)[:3] for i in range(n_hops)]
    return Message(mtype, payload, stream, epoch, seq, sample_index, hops,
                   flags & HOPS_TRUNCATED, arrived_ns)


def encode(msg):
    """Message -> [header frame, payload frame]."""
    hops = msg.hops[-MAX_HOPS:]
    head = bytearray(HEADER_BYTES)
    FIXED.pack_into(head, 0, MAGIC, VERSION, msg.type, len(hops), msg.flags & 0xFF,
                    msg.stream, msg.epoch, msg.seq, msg.sample_index, len(msg.payload), 0)
    for i, (sent_ns, compute_ns, stage_id) in enumerate(hops):
        HOP.pack_into(head, 40 + 16 * i, sent_ns, compute_ns, stage_id, 0)
    return [bytes(head), bytes(msg.payload)]


def stamp(msg, stage_id, arrived_ns=0):
    """Appends this stage's hop (section 2.2: past 16, the last slot is
    reused and HOPS_TRUNCATED set)."""
    now = time.monotonic_ns()
    hop = (now, min(now - arrived_ns, 0xFFFFFFFF) if arrived_ns else 0, stage_id)
    if len(msg.hops) >= MAX_HOPS:
        msg.hops[-1] = hop
        msg.flags |= HOPS_TRUNCATED
    else:
        msg.hops.append(hop)
