"""bindings/python/tests/test_snn.py - the SNN engine from Python gives what
the C API gives: populations against `spiketalk snn trace`, networks (ours,
built here, NIR) against `spiketalk snn run` with probes, bit for bit; state
snapshots, counters, the event and dense paths."""
import os

import numpy as np
import pytest

from conftest import parse_csv, run_cli, shared

import spiketalk
from spiketalk import snn


def write_csv(path, x):
    with open(path, "w") as f:
        for row in np.asarray(x, dtype=np.float32):
            f.write(",".join("%.9g" % v for v in row) + "\n")


@pytest.mark.parametrize("model,params", [
    ("lif", {}),
    ("lif", {"tau_mem_inv": "50", "v_th": "0.5", "reset": "subtract"}),
    ("lsnn", {"beta": "1.2"}),
    ("adex", {}),
    ("lifbox", {}),
    ("li", {}),
])
def test_neurons_match_snn_trace(tmp_path, model, params):
    rng = np.random.default_rng(7)
    x = (rng.random((60, 3)) * 3).astype(np.float32)
    csv = tmp_path / "in.csv"
    write_csv(csv, x)
    out = run_cli("snn", "trace", model, *("%s=%s" % kv for kv in params.items()),
                  input=open(csv).read())
    names, ref = parse_csv(out)
    pop = spiketalk.Neurons(model, n=3, **params)
    tr = pop.run(x)
    cols = {}
    for k, name in enumerate(names[1:], 1):
        cols.setdefault(name.rstrip("0123456789"), []).append(k)
    key = {"z": "z" if pop.spiking else "out", "v": "v", "i": "i", "b": "b", "a": "a"}
    assert set(cols) - {"z"} == set(tr) - {"z", "out"}
    for var, idx in cols.items():
        got = tr[key[var]] if not (var == "z" and not pop.spiking) else np.zeros_like(tr["v"])
        # the tool prints %.9g: float32 round-trips exactly
        np.testing.assert_array_equal(got, ref[:, idx].astype(np.float32), err_msg=var)
    if pop.spiking:
        assert tr["z"].sum() > 0, "the input drives no spike: the comparison would be weak"
    pop.close()
    pop.close()  # idempotent


def probe_columns(names, node):
    return [k for k, n in enumerate(names) if n.rsplit("_", 1)[0] == node]


def test_stm_net_matches_snn_run(tmp_path, fixtures):
    model = os.path.join(fixtures, "snn_tiny_v1.stm")
    net = spiketalk.Net.load(model)
    assert net.input_len == 3 and [n.name for n in net.outputs] == ["out"]
    rng = np.random.default_rng(3)
    x = (rng.random((80, 3)) < 0.3).astype(np.float32)       # spikes
    write_csv(tmp_path / "in.csv", x)
    names, ref = parse_csv(run_cli("snn", "run", model, "--input", tmp_path / "in.csv",
                                   "--probe", "lif", "--probe", "lif:v", "--probe", "leak:v"))
    with net.new_state() as s:
        got = s.run(x, record=["out", "lif", "lif:v", "leak:v"])
    np.testing.assert_array_equal(got["out"], ref[:, probe_columns(names, "out")].astype(np.float32))
    np.testing.assert_array_equal(got["lif"], ref[:, probe_columns(names, "lif")].astype(np.float32))
    np.testing.assert_array_equal(got["lif:v"],
                                  ref[:, probe_columns(names, "lif:v")].astype(np.float32))
    assert got["lif"].sum() > 0
    net.close()


def build_example_net():
    """The network of snn/snn.h's usage example."""
    w = np.array([[1.5, 0, 0], [0, 1.5, 0], [0, 0, 1.5], [0.5, 0.5, 0.5]], dtype=np.float32)
    b = spiketalk.NetBuilder()
    i = b.input("in", 3)
    fc = b.dense("fc", w)
    pop = b.neurons("lif", "lif", 4)
    out = b.output("out", 4)
    b.connect(i, fc)
    b.connect(fc, pop)
    b.connect(pop, out)
    return b.finish()


def test_builder_header_example_and_counters(tmp_path):
    net = build_example_net()
    s = net.new_state()
    total = 0
    for _ in range(100):
        s.step([1, 0, 1])
        total += len(s.spikes("lif"))
    c = s.counters()
    assert total > 0 and c["steps"] == 100 and c["spikes"] == total
    assert c["syn_ops"] > 0 and c["dense_macs"] == 0       # spikes in: the event path
    prof = s.profile()
    assert prof["lif"]["spikes"] == total and prof["total"] == c
    # saved and run by the tool: the same outputs
    net.save(tmp_path / "ex.stm")
    x = np.tile(np.array([[1, 0, 1]], np.float32), (30, 1))
    write_csv(tmp_path / "in.csv", x)
    names, ref = parse_csv(run_cli("snn", "run", tmp_path / "ex.stm", "--input",
                                   tmp_path / "in.csv", "--probe", "lif:v", "--probe", "lif:i"))
    got = net.run(x, record=["out", "lif:v", "lif:i"])
    for key in ("out", "lif:v", "lif:i"):
        np.testing.assert_array_equal(got[key], ref[:, probe_columns(names, key)].astype(np.float32))


def test_event_and_dense_paths_agree():
    net = build_example_net()
    x = (np.random.default_rng(5).random((50, 3)) < 0.4).astype(np.float32)
    a = net.run(x, record=["lif:v", "out"])
    with net.new_state() as s:
        s.force_dense()
        b = s.run(x, record=["lif:v", "out"])
        assert s.counters()["dense_macs"] > 0
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    # bool and int spikes are the same input as float32 0/1
    c = net.run(x.astype(bool), record=["lif:v"])
    np.testing.assert_array_equal(a["lif:v"], c["lif:v"])


def test_state_snapshot_and_vars():
    net = build_example_net()
    x = (np.random.default_rng(9).random((40, 3)) < 0.5).astype(np.float32)
    s = net.new_state()
    s.run(x[:20])
    snap = s.save()
    after = s.run(x[20:], record=["lif:v"])["lif:v"]
    s.restore(snap)
    again = s.run(x[20:], record=["lif:v"])["lif:v"]
    np.testing.assert_array_equal(after, again)
    np.testing.assert_array_equal(s.var("lif"), again[-1])
    s.set_var("lif", "v", [0.25] * 4)
    np.testing.assert_array_equal(s.var("lif", "v"), np.full(4, 0.25, np.float32))
    s.reset()
    np.testing.assert_array_equal(s.var("lif"), np.zeros(4, np.float32))
    bad = bytearray(snap)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(spiketalk.FormatError):
        s.restore(bytes(bad))
    with pytest.raises(spiketalk.FormatError):
        s.restore(snap[:10])
    assert s.nbytes > 0


def test_nir_round_trip_matches_snn_run(tmp_path):
    # lifbox exports as NIR LIF and imports back exactly
    w = np.array([[2.0, 0.5], [0.3, 1.8], [1.0, 1.0]], np.float32)
    b = spiketalk.NetBuilder()
    i = b.input("input", 2)
    fc = b.dense("fc", w, bias=[0.1, 0.0, -0.1])
    pop = b.neurons("lif", "lifbox", 3, dt=1e-4, tau_mem_inv=500)
    out = b.output("output", 3)
    b.connect(i, fc)
    b.connect(fc, pop)
    b.connect(pop, out)
    net = b.finish()
    net.save_nir(tmp_path / "g.nir")
    g = spiketalk.Net.load(tmp_path / "g.nir", dt=1e-4)
    assert {n.kind for n in g.nodes} >= {"input", "output", "neurons"}
    x = (np.random.default_rng(2).random((100, 2)) * 4).astype(np.float32)
    write_csv(tmp_path / "in.csv", x)
    names, ref = parse_csv(run_cli("snn", "run", tmp_path / "g.nir", "--input", tmp_path / "in.csv",
                                   "--dt", "1e-4", "--probe", "lif:v"))
    got = g.run(x, record=["output", "lif:v"])
    np.testing.assert_array_equal(got["output"],
                                  ref[:, probe_columns(names, "output")].astype(np.float32))
    np.testing.assert_array_equal(got["lif:v"], ref[:, probe_columns(names, "lif:v")].astype(np.float32))
    np.testing.assert_array_equal(got["output"], net.run(x)["output"])
    assert got["output"].sum() > 0


def test_shared_nir_graph_matches_snn_run(tmp_path):
    path = shared("snn", "nir", "good", "generated_norse_linear_lifbox.nir")
    g = spiketalk.Net.load(path)
    x = (np.random.default_rng(4).random((50, g.input_len)) < 0.3).astype(np.float32)
    write_csv(tmp_path / "in.csv", x)
    names, ref = parse_csv(run_cli("snn", "run", path, "--input", tmp_path / "in.csv"))
    got = g.run(x)
    for name, a in got.items():
        np.testing.assert_array_equal(a, ref[:, probe_columns(names, name)].astype(np.float32))


def test_bad_input_raises(tmp_path, fixtures):
    with pytest.raises(spiketalk.NotFoundError) as e:
        spiketalk.Net.load(tmp_path / "missing.stm")
    assert "missing.stm" in str(e.value)
    # corrupt: a flipped byte fails the checksum, a truncated file its length
    data = open(os.path.join(fixtures, "snn_tiny_v1.stm"), "rb").read()
    bad = bytearray(data)
    bad[len(bad) - 40] ^= 0x55
    (tmp_path / "bad.stm").write_bytes(bytes(bad))
    with pytest.raises(spiketalk.FormatError) as e:
        spiketalk.Net.load(tmp_path / "bad.stm")
    assert "bad.stm" in str(e.value) and e.value.code == spiketalk.errors.FORMAT
    (tmp_path / "short.stm").write_bytes(data[:100])
    with pytest.raises(spiketalk.FormatError):
        spiketalk.Net.load(tmp_path / "short.stm")
    (tmp_path / "junk.nir").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(spiketalk.SpikeTalkError):
        spiketalk.Net.load(tmp_path / "junk.nir")
    net = spiketalk.Net.from_bytes(data)
    s = net.new_state()
    with pytest.raises(spiketalk.InvalidError):
        s.step([1, 2])                                   # 2 values, the net takes 3
    with pytest.raises(spiketalk.InvalidError):
        s.run(np.zeros((5, 4), np.float32))              # wrong last axis
    with pytest.raises(spiketalk.InvalidError):
        s.run(np.zeros(3, np.float32))                   # one dimension, not two
    with pytest.raises(spiketalk.InvalidError):
        s.run(np.zeros((5, 3), np.complex64))            # not real
    with pytest.raises(spiketalk.InvalidError):
        s.run(np.array([["a", "b", "c"]]))
    with pytest.raises(spiketalk.InvalidError):
        s.step([np.nan, 0, 0])
    with pytest.raises(spiketalk.NotFoundError):
        s.run(np.zeros((2, 3), np.float32), record=["nosuchnode"])
    with pytest.raises(spiketalk.InvalidError):
        s.run(np.zeros((2, 3), np.float32), record=["fc:v"])   # a dense node has no membrane
    with pytest.raises(spiketalk.NotFoundError):
        spiketalk.Neurons("nosuchmodel")
    with pytest.raises(spiketalk.NotFoundError) as e:
        spiketalk.Neurons("lif", tau_nope=3)
    assert "tau_mem_inv" in str(e.value)                 # the message lists the names
    with pytest.raises(spiketalk.InvalidError):
        spiketalk.Neurons("lif", tau_mem_inv=-5)
    with pytest.raises(spiketalk.InvalidError):
        spiketalk.Neurons("lif", n=0)
    with pytest.raises(spiketalk.InvalidError):
        snn.NetBuilder().dense("fc", np.zeros(3))
    # closing the net closes its states; using either after is an error, not a crash
    net.close()
    with pytest.raises(spiketalk.StateError):
        s.step([0, 0, 0])
    with pytest.raises(spiketalk.StateError):
        net.new_state()
