#!/usr/bin/python3
"""tools/peers/brian2_cuba.py - the peer of `spiketalk bench snn`'s CUBA row.

Runs Vogels & Abbott's CUBA network exactly as Brian2's own example
(examples/CUBA.py) defines it - same equations, parameters, method='exact',
refractory period, dt - in Brian2's fastest mode available here, C++
standalone (set_device('cpp_standalone'), one thread, Brian2's default
-O3 -ffast-math -march=native), but with the synapses and initial membranes
spiketalk drew (read from --data), so both simulators run the very same
network. Prints one JSON object on stdout.

What is timed: Brian2's own measurement of its simulation loop,
Network::run() in the generated C++ (device._last_run_time, std::clock()
around the loop over time steps; code generation, compilation, loading the
arrays and writing results are outside it). The compiled project is cached
in --build-dir and rerun --repeat times (device.run), so only the first
call pays for code generation and compilation (about a minute).

Spike count: a SpikeMonitor with record=False (it only counts, the cheapest
monitor). Brian2 computes in float64, spiketalk in float32.

With --raster-steps N it instead runs the first N steps in Brian2's runtime
mode (numpy, no compiler) with a recording SpikeMonitor and prints the
spikes as [step, neuron] pairs, for spiketalk to check that both simulate
the same network: identical spikes at first, until float32 and float64
rounding make the chaotic network drift apart.
"""
import argparse
import json
import os
import sys
import time


def fail(msg, code=3):
    print(json.dumps({"error": msg}))
    sys.exit(code)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder with pre_exc.u32 post_exc.u32 "
                    "pre_inh.u32 post_inh.u32 v0.f32 (mV) from spiketalk")
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--dt-ms", type=float, default=0.1)
    ap.add_argument("--duration-s", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--build-dir", help="C++ standalone project folder (cached between runs)")
    ap.add_argument("--raster-steps", type=int, default=0)
    a = ap.parse_args()
    if not a.raster_steps and not a.build_dir:
        fail("--build-dir is needed (or --raster-steps)", 2)

    try:
        import numpy as np
        import brian2
        from brian2 import (NeuronGroup, Synapses, SpikeMonitor, defaultclock, device,
                            ms, mV, second, set_device, run, prefs)
    except Exception as e:  # noqa: BLE001 - any import failure means "not installed"
        fail("cannot import brian2 (%s): install Debian's python3-brian" % e)

    def load(name, dtype):
        return np.fromfile(os.path.join(a.data, name), dtype=dtype)

    pre_e, post_e = load("pre_exc.u32", np.uint32), load("post_exc.u32", np.uint32)
    pre_i, post_i = load("pre_inh.u32", np.uint32), load("post_inh.u32", np.uint32)
    v0 = load("v0.f32", np.float32).astype(np.float64)
    if len(v0) != a.n:
        fail("v0.f32 has %d values, expected %d" % (len(v0), a.n), 2)

    t_build = time.time()
    if a.raster_steps:
        set_device("runtime")
        prefs.codegen.target = "numpy"
    else:
        set_device("cpp_standalone", directory=a.build_dir, build_on_run=True)
        prefs.devices.cpp_standalone.openmp_threads = 0  # one thread
    defaultclock.dt = a.dt_ms * ms

    # Brian2's examples/CUBA.py, verbatim but for the connectivity and v0
    taum = 20 * ms
    taue = 5 * ms
    taui = 10 * ms
    Vt = -50 * mV
    Vr = -60 * mV
    El = -49 * mV
    eqs = """
    dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
    dge/dt = -ge/taue : volt
    dgi/dt = -gi/taui : volt
    """
    P = NeuronGroup(a.n, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms,
                    method="exact")
    P.v = v0 * mV
    P.ge = 0 * mV
    P.gi = 0 * mV
    we = (60 * 0.27 / 10) * mV  # excitatory synaptic weight (voltage)
    wi = (-20 * 4.5 / 10) * mV  # inhibitory synaptic weight
    Ce = Synapses(P, P, on_pre="ge += we")
    Ci = Synapses(P, P, on_pre="gi += wi")
    Ce.connect(i=pre_e.astype(np.int32), j=post_e.astype(np.int32))
    Ci.connect(i=pre_i.astype(np.int32), j=post_i.astype(np.int32))
    if a.raster_steps:
        mon = SpikeMonitor(P)
        run(a.raster_steps * defaultclock.dt)
        steps = np.round(np.asarray(mon.t / defaultclock.dt)).astype(int)
        raster = sorted(zip(steps.tolist(), np.asarray(mon.i).tolist()))
        print(json.dumps({"peer": "brian2", "version": brian2.__version__, "mode": "runtime",
                          "steps": a.raster_steps, "raster": raster}))
        return
    s_mon = SpikeMonitor(P, record=False)
    try:
        run(a.duration_s * second)
    except Exception as e:  # noqa: BLE001
        fail("Brian2's C++ standalone build or run failed: %s" % e, 1)
    build_s = time.time() - t_build

    loops, spikes = [float(device._last_run_time)], [int(s_mon.num_spikes)]
    for _ in range(max(a.repeat, 1) - 1):
        device.run(a.build_dir, with_output=False, run_args=[])
        loops.append(float(device._last_run_time))
        spikes.append(int(s_mon.num_spikes))
    print(json.dumps({
        "peer": "brian2",
        "version": brian2.__version__,
        "mode": "cpp_standalone",
        "threads": 1,
        "dtype": "float64",
        "loop_s": loops,
        "spikes": spikes,
        "synapses": int(len(pre_e) + len(pre_i)),
        "first_build_and_run_s": build_s,
    }))


if __name__ == "__main__":
    main()
