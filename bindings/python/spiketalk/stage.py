"""spiketalk.stage - a pipeline stage written in Python: a base class that
speaks docs/PROTOCOL.md with python3-zmq, so a Python stage joins a running
pipeline (`type = external` in its configuration) by configuration alone.

Subclass Stage and override what you handle; everything else is passed on
with this stage's hop appended, as the protocol asks:

    class Shout(Stage):
        def on_text(self, msg, text):
            return msg.derive(payload=wire.text_payload(text.upper(), msg.text()[0]))

    Shout.main()     # --endpoints FILE (from `spiketalk stage NAME --endpoints`)

The loop is the protocol's section 4: READY once the bus is heard, heartbeats
every heartbeat_ms, control before data (the bus is drained before each
data message), epochs (stale data dropped and counted), END counted per
upstream edge, FLUSH passed on, SHUTDOWN exits, and a silent bus for
orphan_s seconds ends the process. Audio (PCM, SPIKES) is shed when an
output is full; other types wait send_timeout_ms. Does not load
libspiketalk: a stage may use the engine (spiketalk.Net, ...) or not.

Security (docs/SECURITY.md): when `--endpoints` names a key (the pipeline's
tcp sockets use CurveZMQ), tcp connections are CURVE clients with the
stage's pair (`key`, a `spiketalk keygen` file) trusting `out_key` /
`supervisor_key`, and tcp listeners are CURVE servers whose ZAP handler
admits only the `accept` keys. ipc and inproc stay plain.
"""
import argparse
import os
import sys
import threading
import time

from . import wire


class Stage:
    """One stage. Arguments are the endpoints `spiketalk stage NAME --config
    FILE --endpoints` prints: name, id, listen (input endpoints to bind),
    out (outputs to connect), control (the bus), report, inputs (upstream
    edges), hwm, heartbeat_ms."""

    def __init__(self, name, id, control, report, listen=(), out=(), inputs=None, hwm=64,
                 heartbeat_ms=200, send_timeout_ms=1000, orphan_s=5.0, log=None, key=None,
                 out_key=(), supervisor_key=None, accept=()):
        if not name or not id or not control or not report:
            raise ValueError("Stage: name, id, control and report are required")
        self.name = name
        self.id = int(id)
        self.control_ep = control
        self.report_ep = report
        self.listen = list(listen)
        self.out = list(out)
        self.inputs = int(inputs) if inputs else (1 if self.listen else 0)
        self.hwm = int(hwm)
        self.heartbeat_ms = float(heartbeat_ms)
        self.send_timeout_ms = int(send_timeout_ms)
        self.orphan_s = float(orphan_s)
        self.log = log or (lambda line: print("%s: %s" % (self.name, line), file=sys.stderr))
        self.epoch = 0
        self.seq = 0
        self.started = False
        self.running = False
        self.counters = dict(received=0, sent=0, malformed=0, stale=0, shed=0, send_timeouts=0,
                             errors=0, controls=0)
        self._ends = 0
        self._sockets = []
        # CURVE on tcp: our key file, the server key of each output and of the
        # supervisor, the public keys our tcp listener admits
        self.key = key
        self.out_key = list(out_key)
        self.supervisor_key = supervisor_key
        self.accept = list(accept)
        self._zap = None
        if key:
            self._public, self._secret = self.read_key_file(key)
            if len(self.out_key) < len(self.out) and any(e.startswith("tcp://") for e in self.out):
                raise ValueError("Stage: a server key (out_key) for every output")

    @staticmethod
    def read_key_file(path):
        """(public, secret) Z85 bytes from a `spiketalk keygen` file, refused
        when others may read it (as the C side does)."""
        keys = {}
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                k, _, v = (x.strip() for x in line.partition("="))
                if k not in ("public", "secret") or len(v) != 40:
                    raise ValueError("%s:%d: expected 'public = KEY' or 'secret = KEY'" % (path, n))
                keys[k] = v.encode()
        if "secret" not in keys or "public" not in keys:
            raise ValueError("key file '%s': needs 'public = ' and 'secret = ' lines" % path)
        if os.stat(path).st_mode & 0o077:
            raise ValueError("key file '%s' holds a secret key and others may read it: "
                             "chmod 600 it" % path)
        return keys["public"], keys["secret"]

    # ---- configuration ----

    @staticmethod
    def read_endpoints(source):
        """key = value lines (a path, '-' for stdin, or the text itself when
        it holds a newline) -> dict with listen and out as lists."""
        if "\n" in source:
            lines = source.splitlines()
        elif source == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(source) as f:
                lines = f.read().splitlines()
        cfg = {"listen": [], "out": []}
        for line in lines:
            if "=" not in line:
                continue
            key, value = (x.strip() for x in line.split("=", 1))
            if key in ("listen", "out", "out_key", "accept"):
                cfg.setdefault(key, []).append(value)
            elif key in ("id", "inputs", "hwm"):
                cfg[key] = int(value)
            elif key == "heartbeat_ms":
                cfg[key] = float(value)
            elif key in ("name", "control", "report", "key", "supervisor_key"):
                cfg[key] = value
        return cfg

    @classmethod
    def argument_parser(cls, description=None):
        """An argparse parser with the endpoint options every stage takes;
        add your own, then cls.from_args(parser.parse_args(), ...)."""
        ap = argparse.ArgumentParser(description=description or (cls.__doc__ or "").split("\n\n")[0])
        ap.add_argument("--endpoints", help="a file of key = value lines from "
                        "`spiketalk stage NAME --config FILE --endpoints` (- for stdin)")
        ap.add_argument("--name", help="the stage's name in the configuration")
        ap.add_argument("--id", type=int, default=0, help="its id: 1 + its index in the file")
        ap.add_argument("--listen", action="append", default=[], help="input endpoint(s) to bind")
        ap.add_argument("--out", action="append", default=[], help="output endpoint(s) to connect")
        ap.add_argument("--control", help="the supervisor's control bus (PUB) to connect to")
        ap.add_argument("--report", help="the supervisor's report socket (PULL) to connect to")
        ap.add_argument("--inputs", type=int, default=0, help="upstream edges (END from each)")
        ap.add_argument("--hwm", type=int, default=0, help="queue bound, messages (default 64)")
        ap.add_argument("--heartbeat-ms", dest="heartbeat_ms", type=float, default=0,
                        help="heartbeat period (default 200)")
        ap.add_argument("--key", help="CURVE: this stage's key pair file (spiketalk keygen)")
        ap.add_argument("--out-key", dest="out_key", action="append", default=[],
                        help="CURVE: the server key of each --out, in order")
        ap.add_argument("--supervisor-key", dest="supervisor_key",
                        help="CURVE: the supervisor's public key (bus, reports)")
        ap.add_argument("--accept", action="append", default=[],
                        help="CURVE: a public key our tcp listener admits (repeatable)")
        return ap

    @classmethod
    def from_args(cls, args, **kwargs):
        """A stage from parsed argument_parser() options (command-line values
        win over the endpoints file); kwargs go to the subclass."""
        cfg = cls.read_endpoints(args.endpoints) if args.endpoints else {"listen": [], "out": []}
        for key in ("name", "id", "control", "report", "inputs", "hwm", "heartbeat_ms", "key",
                    "supervisor_key", "out_key", "accept"):
            v = getattr(args, key)
            if v:
                cfg[key] = v
        cfg["listen"] = args.listen or cfg["listen"]
        cfg["out"] = args.out or cfg["out"]
        missing = [k for k in ("name", "id", "control", "report") if not cfg.get(k)]
        if missing:
            raise SystemExit("%s: need --%s (or --endpoints FILE)" % (
                cls.__name__, ", --".join(missing)))
        cfg.update(kwargs)
        return cls(**cfg)

    @classmethod
    def main(cls, argv=None, **kwargs):
        """Parses the endpoint options and runs the stage; returns its exit status."""
        args = cls.argument_parser().parse_args(argv)
        return cls.from_args(args, **kwargs).run()

    # ---- hooks: override what the stage handles ----

    def setup(self):
        """Initialise (load models, open files) once the sockets are open.
        An exception here is reported to the supervisor as FAILED with its
        message, and run() returns 1 (protocol section 4.1)."""

    def on_start(self):
        """START heard (or a heartbeat saying the pipeline has started)."""

    def on_message(self, msg):
        """A data message of the current epoch. Return a Message, a list of
        them, or None (send nothing). The default hands TEXT, WORDS, PCM and
        SPIKES to on_text, on_words, on_pcm, on_spikes, and forwards the rest."""
        if msg.type == wire.TEXT:
            return self.on_text(msg, msg.text()[1])
        if msg.type == wire.WORDS:
            return self.on_words(msg, msg.words()[1])
        if msg.type == wire.PCM:
            rate, x = msg.pcm()
            return self.on_pcm(msg, x, rate)
        if msg.type == wire.SPIKES:
            return self.on_spikes(msg, msg.spikes())
        return msg

    def on_text(self, msg, text):
        return msg

    def on_words(self, msg, words):
        return msg

    def on_pcm(self, msg, samples, rate_hz):
        return msg

    def on_spikes(self, msg, spikes):
        return msg

    def on_control(self, msg, cmd, arg):
        """A bus event (INTERRUPT, TURN, STOP, ...) after the epoch is updated."""

    def on_flush(self, msg):
        """FLUSH or the last END arrived: return what you hold back (Message,
        list, or None); it is sent before FLUSH/END is passed on."""
        return None

    def on_tick(self):
        """Called every loop turn (about every 50 ms when idle); a source
        sends from here with self.send(...)."""

    # ---- sending ----

    def send(self, msg):
        """Numbers, stamps and sends msg to every output (section 4.3)."""
        import zmq
        self.seq += 1
        msg.seq = self.seq
        wire.stamp(msg, self.id, msg.arrived_ns)
        frames = wire.encode(msg)
        audio = msg.type in (wire.PCM, wire.SPIKES)
        for s in self._outs:
            try:
                s.send_multipart(frames, zmq.NOBLOCK if audio else 0)
                self.counters["sent"] += 1
            except zmq.Again:
                self.counters["shed" if audio else "send_timeouts"] += 1

    def report(self, cmd, arg=0, text=b""):
        """A CONTROL report (READY, HEARTBEAT, END, FAILED) to the supervisor."""
        import zmq
        msg = wire.Message(wire.CONTROL, wire.control_payload(cmd, arg, self.id, text),
                           epoch=self.epoch)
        wire.stamp(msg, self.id, 0)
        try:
            self._report.send_multipart(wire.encode(msg), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def _emit(self, result):
        if result is None:
            return
        for m in (result if isinstance(result, (list, tuple)) else [result]):
            self.send(m)

    # ---- the loop ----

    def _client(self, sock, ep, server_key):
        """A tcp connection of a stage with keys: CURVE client trusting one key."""
        if self.key and ep.startswith("tcp://"):
            if not server_key:
                raise ValueError("Stage: no server key for %s" % ep)
            sock.curve_secretkey = self._secret
            sock.curve_publickey = self._public
            sock.curve_serverkey = server_key.encode() if isinstance(server_key, str) else server_key

    def _zap_start(self):
        """The context's ZAP handler (RFC 27): admits CURVE clients whose public
        key is in self.accept, refuses everyone else."""
        import zmq
        from zmq.utils import z85
        allowed = set(z85.decode(k.encode() if isinstance(k, str) else k) for k in self.accept)
        ready, stop = threading.Event(), threading.Event()

        def serve():
            rep = self._ctx.socket(zmq.REP)
            rep.setsockopt(zmq.LINGER, 0)
            rep.bind("inproc://zeromq.zap.01")
            ready.set()
            while not stop.is_set():
                if not rep.poll(100):
                    continue
                f = rep.recv_multipart()
                ok = len(f) >= 7 and f[5] == b"CURVE" and f[6] in allowed
                rep.send_multipart([b"1.0", f[1] if len(f) > 1 else b"", b"200" if ok else b"400",
                                    b"OK" if ok else b"unknown public key", b"", b""])
            rep.close()

        t = threading.Thread(target=serve, name="zap", daemon=True)
        t.start()
        ready.wait(5)
        self._zap = (t, stop)

    def _open(self):
        import zmq
        self._ctx = zmq.Context()
        ctl = self._ctx.socket(zmq.SUB)
        ctl.setsockopt(zmq.SUBSCRIBE, b"")
        ctl.setsockopt(zmq.LINGER, 0)
        self._client(ctl, self.control_ep, self.supervisor_key)
        ctl.connect(self.control_ep)
        rep = self._ctx.socket(zmq.PUSH)
        rep.setsockopt(zmq.LINGER, 500)
        self._client(rep, self.report_ep, self.supervisor_key)
        rep.connect(self.report_ep)
        data = None
        if self.listen:
            data = self._ctx.socket(zmq.PULL)
            data.setsockopt(zmq.RCVHWM, self.hwm)
            data.setsockopt(zmq.LINGER, 0)
            # plain endpoints first: the CURVE server option holds for later binds
            for ep in sorted(self.listen, key=lambda e: e.startswith("tcp://")):
                if self.key and ep.startswith("tcp://") and not data.curve_server:
                    if self._zap is None:
                        self._zap_start()
                    data.curve_secretkey = self._secret
                    data.curve_server = True
                    data.zap_domain = b"spiketalk"
                data.bind(ep)
        outs = []
        for i, ep in enumerate(self.out):
            s = self._ctx.socket(zmq.PUSH)
            s.setsockopt(zmq.SNDHWM, self.hwm)
            s.setsockopt(zmq.SNDTIMEO, self.send_timeout_ms)
            s.setsockopt(zmq.LINGER, 500)
            self._client(s, ep, self.out_key[i] if i < len(self.out_key) else None)
            s.connect(ep)
            outs.append(s)
        self._ctl, self._report, self._data, self._outs = ctl, rep, data, outs
        self._sockets = [ctl, rep] + ([data] if data is not None else []) + outs

    def _close(self):
        for s in self._sockets:
            s.close()
        self._sockets = []
        if self._zap is not None:
            self._zap[1].set()
            self._zap[0].join()
            self._zap = None
        self._ctx.term()

    def _bus(self):
        """Drains the bus; returns False on SHUTDOWN."""
        import zmq
        while True:
            try:
                frames = self._ctl.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return True
            try:
                msg = wire.decode(frames, time.monotonic_ns())
            except wire.Malformed as e:
                self.counters["malformed"] += 1
                self.log("dropped a malformed bus message: %s" % e)
                continue
            self._last_bus = time.monotonic()
            if not self._heard_bus:
                self._heard_bus = True
                self.report(wire.READY, 0, self.name)
            self.epoch = max(self.epoch, msg.epoch)
            if msg.type != wire.CONTROL:
                continue
            cmd, arg, target, _ = msg.control()
            if target not in (0, self.id):
                continue
            self.counters["controls"] += 1
            if cmd == wire.SHUTDOWN:
                return False
            if not self.started and (cmd == wire.START or (cmd == wire.HEARTBEAT and arg == 1)):
                self.started = True
                self.on_start()
            if cmd != wire.HEARTBEAT:
                self.on_control(msg, cmd, arg)

    def _in_band(self, msg):
        cmd = msg.control()[0]
        if cmd == wire.END:
            self._ends += 1
            if self._ends == self.inputs:
                self._emit(self.on_flush(msg))
                self.send(msg)
                self.report(wire.END, 0, self.name)
        elif cmd == wire.FLUSH:
            self._emit(self.on_flush(msg))
            self.send(msg)
        else:
            self.send(msg)

    def _data_batch(self):
        import zmq
        for _ in range(64):
            try:
                frames = self._data.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = wire.decode(frames, time.monotonic_ns())
            except wire.Malformed as e:
                self.counters["malformed"] += 1
                self.log("dropped a malformed message: %s" % e)
                continue
            self.counters["received"] += 1
            if msg.type == wire.CONTROL:
                self._in_band(msg)
            elif msg.epoch < self.epoch:
                self.counters["stale"] += 1
            else:
                self.epoch = msg.epoch
                try:
                    self._emit(self.on_message(msg))
                except Exception as e:  # a bug in the hook must not stop the pipeline
                    self.counters["errors"] += 1
                    self.log("on_message failed: %r" % (e,))
            if self._ctl.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                return  # control first

    def run(self):
        """Runs until SHUTDOWN (returns 0) or an orphaned bus (returns 1)."""
        import zmq
        self._open()
        try:
            self.setup()
        except Exception as e:
            self.log("failed: %s" % e)
            # Once the bus is heard the supervisor's report socket is surely
            # bound, so the reason cannot be lost to a connection still in
            # progress when the socket closes.
            if self._ctl.poll(int(max(self.orphan_s, 1) * 1000)):
                self._ctl.recv_multipart()
            self.report(wire.FAILED, 0, str(e)[:wire.MAX_CONTROL_TEXT])
            self._close()
            return 1
        poller = zmq.Poller()
        poller.register(self._ctl, zmq.POLLIN)
        if self._data is not None:
            poller.register(self._data, zmq.POLLIN)
        self._heard_bus = False
        self._last_bus = time.monotonic()
        next_beat = 0.0
        status = 0
        self.running = True
        try:
            while True:
                events = dict(poller.poll(50))
                if not self._bus():
                    break
                if self._data is not None and self._data in events:
                    self._data_batch()
                if self.started:
                    self.on_tick()
                now = time.monotonic()
                if self._heard_bus and now >= next_beat:
                    self.report(wire.HEARTBEAT, 1 if self.started else 0)
                    next_beat = now + self.heartbeat_ms / 1000
                if self._heard_bus and self.orphan_s > 0 and now - self._last_bus > self.orphan_s:
                    self.log("the control bus is silent (supervisor gone?); exiting")
                    status = 1
                    break
        finally:
            self.running = False
            self._close()
        return status
