"""bindings/python/tests/test_stage.py - stages in Python: the wire format
against docs/PROTOCOL.md's layout and checks, and the example stages joining
a pipeline that `spiketalk run --config` runs in another process, by
configuration alone (`spiketalk stage NAME --endpoints`)."""
import os
import socket
import struct
import subprocess
import sys

import pytest

from conftest import PKG_ROOT, REPO, cli_path, popen, run_cli

from spiketalk import wire

PYTHON = sys.executable


def test_wire_round_trip_and_layout():
    m = wire.Message(wire.TEXT, wire.text_payload(" there", wire.TEXT_END), stream=3, epoch=7,
                     sample_index=16000, hops=[(123, 0, 1)])
    m.seq = 9
    wire.stamp(m, 2, 0)
    head, payload = wire.encode(m)
    assert len(head) == 296 and head[:4] == b"STLK" and head[4] == 1 and head[5] == wire.TEXT
    assert head[6] == 2                                    # two hops
    assert struct.unpack_from("<IIQQI", head, 8) == (3, 7, 9, 16000, len(payload))
    assert struct.unpack_from("<QIH", head, 40) == (123, 0, 1)
    assert struct.unpack_from("<H", head, 40 + 16 + 12)[0] == 2
    d = wire.decode([head, payload])
    assert d.text() == (wire.TEXT_END, " there") and d.hops == m.hops and d.epoch == 7
    # 17 hops: the last slot is reused and HOPS_TRUNCATED set
    for k in range(20):
        wire.stamp(m, 100 + k, 0)
    assert len(m.hops) == 16 and m.hops[0] == (123, 0, 1) and m.hops[-1][2] == 119
    assert m.flags & wire.HOPS_TRUNCATED
    # payloads of every type
    import numpy as np
    p = wire.decode(wire.encode(wire.Message(wire.PCM, wire.pcm_payload(np.arange(4) / 8, 16000))))
    rate, x = p.pcm()
    assert rate == 16000 and list(x) == [0, 0.125, 0.25, 0.375]
    w = wire.decode(wire.encode(wire.Message(wire.WORDS, wire.words_payload([(0, 1600, 0.5, "hi")]))))
    assert w.words() == (wire.WORDS_FINAL, [(0, 1600, 0.5, "hi")])
    s = wire.decode(wire.encode(wire.Message(wire.SPIKES, wire.spikes_payload(8, [(10, 3)]))))
    assert s.spikes() == (8, [(10, 3)])
    c = wire.decode(wire.encode(wire.Message(wire.CONTROL, wire.control_payload(wire.READY, 0, 2, "x"))))
    assert c.control() == (wire.READY, 0, 2, "x")
    mm = wire.decode(wire.encode(wire.Message(wire.METRICS, wire.metrics_payload(2, {"sent": 5}))))
    assert mm.metrics() == (2, {"sent": 5.0})


@pytest.mark.parametrize("frames,why", [
    ([b"x"], "frames"),
    ([b"STLK" + b"\0" * 10, b""], "header"),
    (lambda h, p: [b"XXXX" + h[4:], p], "magic"),
    (lambda h, p: [h[:4] + b"\x02" + h[5:], p], "version"),
    (lambda h, p: [h[:5] + b"\x09" + h[6:], p], "type"),
    (lambda h, p: [h[:6] + b"\x11" + h[7:], p], "hops"),
    (lambda h, p: [h, p + b"!"], "payload"),
    (lambda h, p: [h, p[:4] + struct.pack("<I", 99) + p[8:]], "text"),
])
def test_wire_refuses_malformed(frames, why):
    h, p = wire.encode(wire.Message(wire.TEXT, wire.text_payload("hello")))
    f = frames(h, p) if callable(frames) else frames
    with pytest.raises(wire.Malformed) as e:
        wire.decode(f)
    assert why in str(e.value)
    bad_ctl = wire.Message(wire.CONTROL, wire.control_payload(42))
    with pytest.raises(wire.Malformed):
        wire.decode(wire.encode(bad_ctl))


def free_base_port(n=8):
    """A base port with n free tcp ports after it."""
    for base in range(41000 + os.getpid() % 1000 * 16, 60000, 64):
        socks = []
        try:
            for k in range(n):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", base + k))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    pytest.skip("no free tcp ports")


def run_pipeline(tmp_path, config, stage_name, stage_argv):
    """Starts `spiketalk run --config` and the Python stage with the
    endpoints `spiketalk stage NAME --endpoints` prints; both must exit 0."""
    cfg = tmp_path / "talk.ini"
    cfg.write_text(config)
    ep = tmp_path / (stage_name + ".ep")
    ep.write_text(run_cli("stage", stage_name, "--config", cfg, "--endpoints"))
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)
    run = popen([cli_path(), "run", "--config", str(cfg), "--timeout", "30"], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stage = popen([PYTHON] + stage_argv + ["--endpoints", str(ep)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = run.communicate(timeout=45)
        s_out, s_err = stage.communicate(timeout=15)
    finally:
        for p in (run, stage):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert run.returncode == 0, "spiketalk run: %s%s\nstage: %s" % (out, err, s_err)
    assert stage.returncode == 0, s_err
    return out, err, s_err


def secured_config(tmp_path, port, out, voice_accepts_polish=True):
    """tcp with CurveZMQ (docs/SECURITY.md): a key for the pipeline and one
    of its own for the Python stage `polish`; `voice` admits polish's key
    unless told otherwise."""
    pipe_key, polish_key = tmp_path / "pipe.key", tmp_path / "polish.key"
    for k in (pipe_key, polish_key):
        if not k.exists():
            run_cli("keygen", k)
    accept = "%s.pub" % pipe_key + (", %s.pub" % polish_key if voice_accepts_polish else "")
    return """[pipeline]
transport = tcp
base_port = %d
heartbeat_ms = 100
key = %s
[stage.agent]
type = text_source
words = yes
lines = hello world | you are kind
out = polish
[stage.polish]
type = external
key = %s
out = voice
[stage.voice]
type = text_sink
file = %s
accept = %s
""" % (port, pipe_key, polish_key, out, accept)


def test_rewrite_stage_joins_a_secured_pipeline(tmp_path):
    port = free_base_port()
    out = tmp_path / "heard.txt"
    config = secured_config(tmp_path, port, out)
    run_pipeline(tmp_path, config, "polish",
                 [os.path.join(PKG_ROOT, "examples", "rewrite_stage.py"),
                  "--replace", "hello->goodbye, you->they", "--upper"])
    ep = (tmp_path / "polish.ep").read_text()
    assert "key = %s" % (tmp_path / "polish.key") in ep and "out_key = " in ep
    assert out.read_text() == "GOODBYE WORLD\nTHEY ARE KIND\n"


def test_python_stage_with_an_unaccepted_key_is_refused(tmp_path):
    # voice does not list polish's key: the handshake of polish's output is
    # refused, nothing reaches the sink and the stream never ends
    port = free_base_port()
    out = tmp_path / "heard.txt"
    cfg = tmp_path / "talk.ini"
    cfg.write_text(secured_config(tmp_path, port, out, voice_accepts_polish=False))
    ep = tmp_path / "polish.ep"
    ep.write_text(run_cli("stage", "polish", "--config", cfg, "--endpoints"))
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)
    run = popen([cli_path(), "run", "--config", str(cfg), "--timeout", "4"], cwd=REPO,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stage = popen([PYTHON, os.path.join(PKG_ROOT, "examples", "rewrite_stage.py"),
                   "--upper", "--endpoints", str(ep)], cwd=REPO, env=env,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run.communicate(timeout=30)
        stage.communicate(timeout=15)
    finally:
        for p in (run, stage):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert run.returncode != 0
    assert not out.exists() or "HELLO" not in out.read_text()


def test_plain_tcp_needs_insecure(tmp_path):
    cfg = tmp_path / "talk.ini"
    cfg.write_text("[pipeline]\ntransport = tcp\nprocesses = yes\nbase_port = 5600\n"
                   "[stage.a]\ntype = text_source\nlines = x\nout = b\n"
                   "[stage.b]\ntype = text_sink\nfile = -\n")
    r = subprocess.run([cli_path(), "stage", "b", "--config", str(cfg), "--endpoints"], cwd=REPO,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "insecure = yes" in r.stderr and "talk.ini:2" in r.stderr
    ep = run_cli("stage", "b", "--config", cfg, "--endpoints", "--insecure")
    assert "listen = tcp://" in ep and "key = " not in ep


def test_reply_stage_answers_like_spiketalk_reply(tmp_path):
    import spiketalk
    model = tmp_path / "agent.stnn"
    m = spiketalk.LanguageModel.random(n_layer=2, n_embd=32, vocab=96, seed=11)
    m.save(model)
    questions = ["what is seven times six", "hello there"]
    want = [run_cli("reply", q, "--model", model, "--time", "10:30") for q in questions]
    port = free_base_port()
    out = tmp_path / "answers.txt"
    config = """[pipeline]
transport = tcp
insecure = yes
base_port = %d
heartbeat_ms = 100
[stage.user]
type = text_source
words = yes
lines = %s
out = agent
[stage.agent]
type = external
out = voice
[stage.voice]
type = text_sink
file = %s
""" % (port, " | ".join(questions), out)
    run_pipeline(tmp_path, config, "agent",
                 [os.path.join(PKG_ROOT, "examples", "reply_stage.py"), "--model", str(model),
                  "--time", "10:30"])
    # the sink joins tokens as they are: one word each, spaces before all but the first
    assert out.read_text() == "".join(" ".join(w.split()) + "\n" for w in want)


def test_a_stage_that_cannot_start_says_failed(tmp_path):
    port = free_base_port()
    config = """[pipeline]
transport = tcp
insecure = yes
base_port = %d
heartbeat_ms = 100
start_timeout_s = 20
[stage.user]
type = text_source
lines = hello
out = agent
[stage.agent]
type = external
out = voice
[stage.voice]
type = text_sink
file = -
""" % port
    cfg = tmp_path / "talk.ini"
    cfg.write_text(config)
    ep = tmp_path / "agent.ep"
    ep.write_text(run_cli("stage", "agent", "--config", cfg, "--endpoints"))
    run = popen([cli_path(), "run", "--config", str(cfg), "--timeout", "4"], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stage = subprocess.run([PYTHON, os.path.join(PKG_ROOT, "examples", "reply_stage.py"),
                            "--model", str(tmp_path / "missing.stnn"), "--endpoints", str(ep)],
                           cwd=REPO, capture_output=True, text=True, timeout=30)
    try:
        out, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert stage.returncode == 1 and "missing.stnn" in stage.stderr
    # the supervisor names the stage and the reason; it does not start the
    # sources, and the run ends at its --timeout without success
    assert "stage 'agent' could not start" in err and "missing.stnn" in err
    assert run.returncode != 0
