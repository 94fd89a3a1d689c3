#!/usr/bin/python3
"""tools/peers/ps_words.py - the twenty-word pocketsphinx check of
`spiketalk bench tts`, outside spiketalk, with the decoder's settings as
options: to see how the count of one voice moves with things that are not
the speech (decoder mode, silence around the word, its place against the
decoder's 10 ms frames).

Each DIR holds ZERO.wav .. GO.wav, lower case (zero.wav, one.wav, ..., go.wav:
the digits zero..nine and yes no up down left right on off stop go), mono
16-bit WAV at any rate, e.g.

    for w in zero one two three four five six seven eight nine yes no up down \\
             left right on off stop go; do
        build/spiketalk say $w -e flite -v kal16 -s 16000 -o ours/$w.wav
        flite -voice kal16 -o cli/$w.wav -t $w
    done
    tools/peers/ps_words.py ours cli                      # the bench's protocol
    tools/peers/ps_words.py ours cli --as-written --shifts 1   # one decoding of each file as it is
    tools/peers/ps_words.py ours cli --mode continuous --as-written --shifts 1

Files not at 16 kHz are resampled here (FFT, band-limited; not
libsamplerate, so the figures can differ from the bench's by a flip or two).
The protocol (default): the samples that are 0 at both ends are replaced by
--pad-ms of zeros; each file is decoded --shifts times, the word moved by
--shift-step samples each time; batch mode (pocketsphinx_batch, the en-us
model's own feat.params, a JSGF grammar of the twenty words, all files in
one run). --mode continuous runs pocketsphinx_continuous -infile per file
(its VAD and live CMN). Prints per DIR: correct of words x shifts, and the
words that were wrong at some shift.

Touches: a temporary folder (removed), pocketsphinx as subprocesses.
Needs Debian's pocketsphinx and pocketsphinx-en-us (tools/deps BENCH_PKGS)
and numpy.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import wave

import numpy as np

WORDS = ("zero one two three four five six seven eight nine "
         "yes no up down left right on off stop go").split()
MODEL = "/usr/share/pocketsphinx/model/en-us"


def read_16k(path):
    with wave.open(path) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            sys.exit(f"ps_words: {path}: need mono 16-bit WAV")
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    if rate != 16000:  # band-limited resampling through the spectrum
        n_out = int(round(len(x) * 16000 / rate))
        spec = np.fft.rfft(x)
        keep = min(len(spec), n_out // 2 + 1)
        out = np.zeros(n_out // 2 + 1, dtype=complex)
        out[:keep] = spec[:keep]
        x = np.fft.irfft(out, n_out) * (n_out / len(x))
    return x


def prepare(x, as_written, pad_ms, shift):
    if not as_written:
        nz = np.nonzero(np.abs(x) >= 0.5)[0]
        if len(nz):
            x = x[nz[0]:nz[-1] + 1]
        pad = int(16 * pad_ms)
        x = np.concatenate([np.zeros(pad + shift), x, np.zeros(pad)])
    elif shift:
        x = np.concatenate([np.zeros(shift), x])
    return np.clip(np.round(x), -32768, 32767).astype("<i2")


def write_wav(path, y):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(y.tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--mode", choices=("batch", "continuous"), default="batch")
    ap.add_argument("--as-written", action="store_true",
                    help="decode the files as they are (no zero replacement)")
    ap.add_argument("--pad-ms", type=float, default=200)
    ap.add_argument("--shifts", type=int, default=4)
    ap.add_argument("--shift-step", type=int, default=40)
    ap.add_argument("--extra", default="", help="more decoder options, e.g. '-remove_noise no'")
    a = ap.parse_args()
    for tool in ("pocketsphinx_batch", "pocketsphinx_continuous"):
        if not shutil.which(tool):
            sys.exit(f"ps_words: {tool} missing (apt-get install pocketsphinx pocketsphinx-en-us)")
    tmp = tempfile.mkdtemp(prefix="ps_words.")
    try:
        gram = os.path.join(tmp, "words.jsgf")
        with open(gram, "w") as g:
            g.write("#JSGF V1.0;\ngrammar words;\npublic <word> = " + " | ".join(WORDS) + " ;\n")
        common = ["-hmm", MODEL + "/en-us", "-dict", MODEL + "/cmudict-en-us.dict",
                  "-jsgf", gram, "-logfn", "/dev/null"] + a.extra.split()
        ids = []
        for di, d in enumerate(a.dirs):
            for w in WORDS:
                x = read_16k(os.path.join(d, w + ".wav"))
                for k in range(a.shifts):
                    uid = f"u{di}_{k}_{w}"
                    write_wav(os.path.join(tmp, uid + ".wav"),
                              prepare(x, a.as_written, a.pad_ms, k * a.shift_step))
                    ids.append(uid)
        said = {}
        if a.mode == "batch":
            with open(os.path.join(tmp, "ctl"), "w") as f:
                f.write("\n".join(ids) + "\n")
            subprocess.run(["pocketsphinx_batch", "-adcin", "yes", "-adchdr", "44",
                            "-cepext", ".wav", "-cepdir", tmp, "-ctl", os.path.join(tmp, "ctl"),
                            "-hyp", os.path.join(tmp, "hyp"), "-samprate", "16000"] + common,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for line in open(os.path.join(tmp, "hyp")):
                k = line.rfind("(")
                said[line[k + 1:].split()[0]] = line[:k].strip()
        else:
            for uid in ids:
                r = subprocess.run(["pocketsphinx_continuous", "-infile",
                                    os.path.join(tmp, uid + ".wav")] + common,
                                   capture_output=True, text=True)
                said[uid] = " ".join(r.stdout.split())
        for di, d in enumerate(a.dirs):
            right, flips, wrong = 0, [], []
            for w in WORDS:
                ok = [said.get(f"u{di}_{k}_{w}", "") == w for k in range(a.shifts)]
                right += sum(ok)
                if 0 < sum(ok) < a.shifts:
                    flips.append(w)
                elif not any(ok):
                    wrong.append(f"{w}->{said.get(f'u{di}_0_{w}', '') or '-'}")
            print(f"{d}: {right}/{20 * a.shifts}  wrong always: {' '.join(wrong) or '-'}"
                  f"  at some shifts: {' '.join(flips) or '-'}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
