/*  cli/bench_vad.c - `spiketalk bench vad`: the spiking voice-activity
    detector (snn/vad.h) on speech + noise mixtures the repo builds
    (audio/mixture.c), against a plain energy VAD and, when its library is
    installed, WebRTC's GMM VAD, in the same run on the same audio.

    Measures what barge-in and turn ends feel: how long after the true onset
    a detector decides speech started (onset latency), how long after the
    true end it decides speech ended (offset latency), the onsets it misses,
    and the onsets it invents on noise alone (per minute), plus its cost as a
    real-time factor. Defaults: 200 utterances of held-out speakers at 0..20
    dB SNR, 10 minutes of noise-only audio: about 25 minutes of audio,
    processed in a few seconds on one core.
*/
#include "cli.h"

#include "audio/audio.h"
#include "snn/train.h"
#include "snn/vad.h"

#include <dlfcn.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CMD "bench vad"
#define RATE 16000

/* ---- events ------------------------------------------------------------------ */

typedef struct {
    st_vad_event *v;
    size_t n, cap;
} evlist;

static int ev_push(evlist *l, const st_vad_event *e, size_t n)
{
    if (n == 0)
        return 0;
    if (l->n + n > l->cap) {
        size_t cap = l->cap ? l->cap : 1024;
        while (cap < l->n + n)
            cap *= 2;
        st_vad_event *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    memcpy(l->v + l->n, e, n * sizeof *e);
    l->n += n;
    return 0;
}

/* ---- features --------------------------------------------------------------- */

typedef struct {
    float *x;          /* nf x n_mels */
    uint64_t *stamp;   /* nf */
    size_t nf;
    int n_mels;
    double seconds;    /* front end time */
} features;

static int compute_features(const st_frontend_params *fp, const float *pcm, size_t n,
                            features *f)
{
    int err;
    st_frontend *fe = st_frontend_new(fp, &err);
    if (!fe)
        return err;
    f->n_mels = st_frontend_n_mels(fe);
    size_t maxf = st_frontend_max_frames(fe, n) + 1;
    f->x = malloc(maxf * (size_t)f->n_mels * sizeof *f->x);
    f->stamp = malloc(maxf * sizeof *f->stamp);
    if (!f->x || !f->stamp) {
        st_frontend_destroy(&fe);
        return ST_ERR_NOMEM;
    }
    /* blocks of 512 samples: not a multiple of the hop, as a device gives */
    double t0 = st_now_s();
    size_t nf = 0;
    for (size_t at = 0; at < n;) {
        size_t len = n - at < 512 ? n - at : 512, used, made;
        st_frontend_process(fe, pcm + at, len, f->x + nf * (size_t)f->n_mels, f->stamp + nf,
                            maxf - nf, &used, &made);
        at += used;
        nf += made;
    }
    f->seconds = st_now_s() - t0;
    f->nf = nf;
    st_frontend_destroy(&fe);
    return ST_OK;
}

static void features_free(features *f)
{
    free(f->x);
    free(f->stamp);
    memset(f, 0, sizeof *f);
}

/* ---- detectors ---------------------------------------------------------------- */

/* The spiking VAD over precomputed frames; returns seconds or -1. */
static double run_snn(const st_vad_model *m, const features *f, evlist *out)
{
    int err;
    st_vad *v = st_vad_new(m, &err);
    if (!v)
        return -1;
    st_vad_event ev[256];
    double t0 = st_now_s();
    for (size_t at = 0; at < f->nf;) {
        size_t len = f->nf - at < 256 ? f->nf - at : 256, made;
        st_vad_process(v, f->x + at * (size_t)f->n_mels, f->stamp + at, NULL, len, ev, 256,
                       &made);
        if (ev_push(out, ev, made)) {
            st_vad_destroy(&v);
            return -1;
        }
        at += len;
    }
    double dt = st_now_s() - t0;
    st_vad_destroy(&v);
    return dt;
}

/* The learned read-out's training data (`make train-vad`): the spiking
   VAD's features of every frame of `f` (st_vad_features) and the frame's
   label, speech (1) when the frame's centre lies in a truth segment of
   `m` (NULL: noise only) outside its pauses (gaps of 100 ms or more
   between words: a net taught that they are speech holds on after every
   word's end), cut into pieces of `chunk` frames (a last piece of at
   least half that is kept). frames_collect appends to b; write_train
   writes b's pieces. */
typedef struct {
    float *x;
    int32_t *lab;
    size_t n, cap; /* frames */
} framebuf;

static int frames_collect(const st_vad_model *vm, const features *f, const st_mixture *m,
                          double delay, framebuf *b)
{
    int err;
    st_vad *v = st_vad_new(vm, &err);
    if (!v)
        return err;
    const size_t C = (size_t)f->n_mels;
    if (b->n + f->nf > b->cap) {
        size_t cap = b->n + f->nf;
        float *x = realloc(b->x, cap * C * sizeof *x);
        if (x)
            b->x = x;
        int32_t *l = realloc(b->lab, cap * sizeof *l);
        if (l)
            b->lab = l;
        if (!x || !l) {
            st_vad_destroy(&v);
            return st_error(ST_ERR_NOMEM, "bench vad: out of memory for the training frames");
        }
        b->cap = cap;
    }
    size_t seg = 0;
    st_vad_event ev[1];
    for (size_t i = 0; i < f->nf; i++) {
        size_t made;
        st_vad_process(v, f->x + i * C, f->stamp + i, NULL, 1, ev, 1, &made);
        memcpy(b->x + b->n * C, st_vad_features(v), C * sizeof(float));
        const double centre = (double)f->stamp[i] - delay;
        while (m && seg < m->n_segs && (double)m->segs[seg].offset <= centre)
            seg++;
        bool speech = m && seg < m->n_segs && (double)m->segs[seg].onset <= centre;
        for (uint32_t k = 0; speech && k < m->segs[seg].n_pauses; k++)
            speech = !((double)m->segs[seg].pause_on[k] <= centre &&
                       centre < (double)m->segs[seg].pause_off[k]);
        b->lab[b->n++] = speech;
    }
    st_vad_destroy(&v);
    return ST_OK;
}

static int write_train(const framebuf *b, size_t C, size_t chunk, const char *path,
                       size_t *samples, double *speech_share)
{
    size_t n = b->n / chunk + (b->n % chunk >= chunk / 2);
    int err;
    st_train_data *d = st_train_data_new(n, chunk, C, &err);
    if (!d)
        return err;
    size_t speech = 0;
    for (size_t k = 0; k < b->n; k++)
        speech += b->lab[k] == 1;
    for (size_t k = 0; k < n && err == ST_OK; k++) {
        const size_t at = k * chunk, len = b->n - at < chunk ? b->n - at : chunk;
        err = st_train_data_set_seq(d, k, b->x + at * C, len, b->lab + at, len);
    }
    if (err == ST_OK)
        err = st_train_data_save(d, path);
    st_train_data_destroy(&d);
    *samples = n;
    *speech_share = b->n ? (double)speech / (double)b->n : 0;
    return err;
}

/* A latch over per-frame decisions, shared by the peers: onset after
   onset_frames frames of `on`, offset once `keep` was off for hang_frames. */
typedef struct {
    int onset_frames, hang_frames;
    bool active;
    int on_run, off_run;
    uint64_t rise_start, last_keep;
} latch;

static void latch_step(latch *l, bool on, bool keep, bool rising, uint64_t stamp,
                       uint64_t back, evlist *out)
{
    if (!l->active) {
        if (!rising)
            l->rise_start = UINT64_MAX;
        else if (l->rise_start == UINT64_MAX)
            l->rise_start = stamp;
        l->on_run = on ? l->on_run + 1 : 0;
        if (l->on_run >= l->onset_frames) {
            uint64_t at = l->rise_start == UINT64_MAX ? stamp : l->rise_start;
            st_vad_event e = {ST_VAD_ONSET, at > back ? at - back : 0, stamp};
            ev_push(out, &e, 1);
            l->active = true;
            l->off_run = 0;
            l->last_keep = stamp;
        }
        return;
    }
    if (keep) {
        l->off_run = 0;
        l->last_keep = stamp;
    } else if (++l->off_run >= l->hang_frames) {
        st_vad_event e = {ST_VAD_OFFSET, l->last_keep > back ? l->last_keep - back : 0, stamp};
        ev_push(out, &e, 1);
        l->active = false;
        l->on_run = 0;
        l->rise_start = UINT64_MAX;
    }
}

/* The energy peer: the speech band's total energy (dB) over a floor tracked
   like the spiking VAD's (slow up, slower in speech, fast down), an onset
   threshold held for onset_frames, an offset threshold and a hangover. */
typedef struct {
    double on_db, off_db;
    double up_db_s, up_speech_db_s, down_db_s;
    double lo_hz, hi_hz;
} energy_params;

static double run_energy(const energy_params *ep, const st_vad_params *vp,
                         const double *centre_hz, const features *f, evlist *out)
{
    double t0 = st_now_s();
    const double dt = vp->hop_s;
    const size_t warm = (size_t)lround(vp->warmup_s / dt);
    latch l = {.onset_frames = vp->onset_frames,
               .hang_frames = 1 + (int)lround(vp->hangover_s / dt),
               .rise_start = UINT64_MAX};
    double floor_db = 0, warm_sum = 0;
    const uint64_t back = (uint64_t)llround(vp->frontend_delay_samples);
    for (size_t i = 0; i < f->nf; i++) {
        const float *x = f->x + i * (size_t)f->n_mels;
        double e = 0;
        for (int c = 0; c < f->n_mels; c++)
            if (centre_hz[c] >= ep->lo_hz && centre_hz[c] <= ep->hi_hz)
                e += exp(x[c]);
        double db = 10 * log10(e + 1e-10);
        if (i < warm) {
            warm_sum += db;
            if (i + 1 == warm)
                floor_db = warm_sum / (double)warm;
            continue;
        }
        if (i == 0)
            floor_db = db;
        double d = db - floor_db;
        latch_step(&l, d > ep->on_db, d > ep->off_db, d > ep->off_db, f->stamp[i], back, out);
        if (d > 0)
            floor_db += (l.active ? ep->up_speech_db_s : ep->up_db_s) * dt;
        else if (d < 0)
            floor_db -= ep->down_db_s * dt;
    }
    return st_now_s() - t0;
}

/* WebRTC's VAD (the GMM one of libwebrtc-audio-processing, loaded at run
   time: no build dependency), 10 ms frames of int16, the same latch. */
typedef struct {
    void *lib;
    void *(*create)(void);
    int (*init)(void *);
    int (*set_mode)(void *, int);
    int (*process)(void *, int, const int16_t *, size_t);
    void (*destroy)(void *);
} webrtc_api;

static bool webrtc_open(webrtc_api *w)
{
    memset(w, 0, sizeof *w);
    w->lib = dlopen("libwebrtc_audio_processing.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!w->lib)
        return false;
    *(void **)&w->create = dlsym(w->lib, "WebRtcVad_Create");
    *(void **)&w->init = dlsym(w->lib, "WebRtcVad_Init");
    *(void **)&w->set_mode = dlsym(w->lib, "WebRtcVad_set_mode");
    *(void **)&w->process = dlsym(w->lib, "WebRtcVad_Process");
    *(void **)&w->destroy = dlsym(w->lib, "WebRtcVad_Free");
    if (!w->create || !w->init || !w->set_mode || !w->process || !w->destroy) {
        dlclose(w->lib);
        w->lib = NULL;
        return false;
    }
    return true;
}

static double run_webrtc(const webrtc_api *w, int mode, const st_vad_params *vp, const float *pcm,
                         size_t n, evlist *out)
{
    void *h = w->create();
    if (!h || w->init(h) != 0 || w->set_mode(h, mode) != 0) {
        if (h)
            w->destroy(h);
        return -1;
    }
    latch l = {.onset_frames = vp->onset_frames,
               .hang_frames = 1 + (int)lround(vp->hangover_s / 0.01),
               .rise_start = UINT64_MAX};
    int16_t fr[160];
    double t0 = st_now_s();
    for (size_t at = 0; at + 160 <= n; at += 160) {
        for (int i = 0; i < 160; i++) {
            float v = pcm[at + (size_t)i] * 32768.0f;
            fr[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
        }
        int s = w->process(h, RATE, fr, 160);
        /* a 10 ms frame is judged whole: place changes at its start */
        latch_step(&l, s == 1, s == 1, s == 1, at + 159, 159, out);
    }
    double dt = st_now_s() - t0;
    w->destroy(h);
    return dt;
}

/* ---- scoring -------------------------------------------------------------------- */

typedef struct {
    double onset_p50, onset_p95, offset_p50, offset_p95, pos_p50, pos_p95;
    int n_truth, missed, already_on, splits;
    double gap_false_per_min;
    double false_per_min;
    double rtf;
    double *on, *off; /* the onset and offset latencies (ms), when kept: the caller frees */
    int n_on, n_off;
} scores;

#define MATCH_EARLY (RATE / 5)  /* an onset up to 200 ms early still matches */
#define GAP_AFTER (RATE * 3 / 10)

/* Latencies are decided index minus truth, in ms; p95 of their size. With
   keep, s->on and s->off keep them (the caller frees them). */
static void score_speech(const st_mixture *m, const evlist *ev, const int *only, scores *s,
                         FILE *dump, const char *name, bool keep)
{
    int n = (int)m->n_segs;
    double *on = malloc((size_t)(n + 1) * sizeof *on), *off = malloc((size_t)(n + 1) * sizeof *off);
    double *pos = malloc((size_t)(n + 1) * sizeof *pos);
    double *on_abs = malloc((size_t)(n + 1) * sizeof *on_abs);
    double *off_abs = malloc((size_t)(n + 1) * sizeof *off_abs);
    int no = 0, nof = 0;
    memset(s, 0, sizeof *s);
    size_t e0 = 0;
    for (int i = 0; i < n; i++) {
        const st_mix_segment *sg = &m->segs[i];
        if (only && !only[i])
            continue;
        s->n_truth++;
        uint64_t lo = sg->onset > MATCH_EARLY ? sg->onset - MATCH_EARLY : 0, hi = sg->offset;
        while (e0 < ev->n && ev->v[e0].decided_index < lo)
            e0++;
        /* state at lo: the last event before it */
        bool was_on = e0 > 0 && ev->v[e0 - 1].kind == ST_VAD_ONSET;
        long first_on = -1, last_on = -1;
        int n_on = 0;
        for (size_t k = e0; k < ev->n && ev->v[k].decided_index <= hi; k++)
            if (ev->v[k].kind == ST_VAD_ONSET) {
                if (first_on < 0)
                    first_on = (long)k;
                last_on = (long)k;
                n_on++;
            }
        double lat_on = NAN, lat_off = NAN, perr = NAN;
        if (first_on < 0) {
            s->missed++;
            if (was_on)
                s->already_on++;
        } else {
            s->splits += n_on - 1;
            lat_on = 1e3 * ((double)ev->v[first_on].decided_index - (double)sg->onset) / RATE;
            perr = 1e3 * ((double)ev->v[first_on].sample_index - (double)sg->onset) / RATE;
            on[no] = lat_on;
            on_abs[no] = fabs(lat_on);
            pos[no] = fabs(perr);
            no++;
            size_t k = (size_t)last_on + 1;
            while (k < ev->n && ev->v[k].kind != ST_VAD_OFFSET)
                k++;
            uint64_t end = k < ev->n ? ev->v[k].decided_index : m->frames;
            lat_off = 1e3 * ((double)end - (double)sg->offset) / RATE;
            off[nof] = lat_off;
            off_abs[nof] = fabs(lat_off);
            nof++;
        }
        if (dump)
            fprintf(dump, "%s\t%d\t%s\t%s\t%s\t%.1f\t%.3f\t%.3f\t%.1f\t%.1f\t%.1f\t%d\n", name, i,
                    sg->source, sg->speaker, sg->text, sg->snr_db, (double)sg->onset / RATE,
                    (double)sg->offset / RATE, lat_on, lat_off, perr, n_on);
    }
    s->onset_p50 = cli_percentile_rank(on, no, 50);
    s->onset_p95 = cli_percentile_rank(on_abs, no, 95);
    s->offset_p50 = cli_percentile_rank(off, nof, 50);
    s->offset_p95 = cli_percentile_rank(off_abs, nof, 95);
    s->pos_p50 = cli_percentile_rank(pos, no, 50);
    s->pos_p95 = cli_percentile_rank(pos, no, 95);
    /* onsets away from every utterance */
    int gap_false = 0;
    size_t seg = 0;
    for (size_t k = 0; k < ev->n; k++) {
        if (ev->v[k].kind != ST_VAD_ONSET)
            continue;
        uint64_t t = ev->v[k].decided_index;
        while (seg < m->n_segs && m->segs[seg].offset + GAP_AFTER < t)
            seg++;
        bool near = seg < m->n_segs && t + MATCH_EARLY >= m->segs[seg].onset;
        if (!near)
            gap_false++;
    }
    double gap_s = (double)m->frames / RATE;
    for (size_t i = 0; i < m->n_segs; i++)
        gap_s -= (double)(m->segs[i].offset + GAP_AFTER + MATCH_EARLY - m->segs[i].onset) / RATE;
    s->gap_false_per_min = gap_s > 0 ? gap_false / (gap_s / 60) : NAN;
    if (keep) {
        s->on = on;
        s->off = off;
        s->n_on = no;
        s->n_off = nof;
    } else {
        free(on);
        free(off);
    }
    free(pos);
    free(on_abs);
    free(off_abs);
}

static double false_per_min(const evlist *ev, size_t frames)
{
    int n = 0;
    for (size_t k = 0; k < ev->n; k++)
        n += ev->v[k].kind == ST_VAD_ONSET;
    return n / ((double)frames / RATE / 60);
}

/* ---- the command -------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk bench vad [--utterances N] [--noise-minutes M] [--split S]\n"
            "                           [--seed N] [--data DIR] [--set NAME=VALUE ...]\n"
            "                           [--energy-on-db DB] [--energy-off-db DB]\n"
            "                           [--webrtc-mode 0..3] [--by-snr] [--dump FILE]\n"
            "                           [--dump-noise FILE] [--svg PREFIX]\n"
            "                           [--write-mixtures DIR] [--model FILE|none]\n"
            "                           [--write-train FILE [--chunk-frames N]]\n"
            "                           [--augment-noise] [--with-espeak] [--snr-max DB]\n"
            "                           [--json]\n"
            "\n"
            "Builds speech + noise mixtures (audio/mixture.c): N clips of speech_commands\n"
            "words, fsdd digits and an4 utterances from the shared data (espeak-ng words\n"
            "without it) placed 1.5..3 s apart into `_silence_` background noise (generated\n"
            "coloured noise without it) at 0..20 dB SNR (both measured above 100 Hz), the\n"
            "truth of each clip taken from the clean clip (its power above 100 Hz within\n"
            "20 dB of its peak, in bursts of 30 ms or more: a lone click is not the word);\n"
            "and M minutes of noise only. Runs the front end (25 ms Hann, 10 ms hop, 40\n"
            "log-mel) and, on the same frames, the spiking VAD (snn/vad.h) and an energy\n"
            "VAD; and WebRTC's VAD on the samples when libwebrtc-audio-processing1 is\n"
            "installed. All three share the onset rule (onset_frames, 3) and the hangover\n"
            "(100 ms), so the rows differ in what they detect. The row snn-learned is the\n"
            "same spiking VAD with its learned read-out (models/vad.stm, `make train-vad`:\n"
            "a recurrent spiking network trained on mixtures of the tune split) in place of\n"
            "the hand-designed one, and its own rule (learned_on, learned_frames, ...).\n"
            "\n"
            "Speakers and noise clips are split in two by a hash: the detectors' parameters\n"
            "were tuned on --split tune; the default reports --split test (voices and noise\n"
            "clips the tuning never met).\n"
            "\n"
            "options:\n"
            "  --utterances N     speech clips, 1 .. 20000 (default 200)\n"
            "  --noise-minutes M  noise-only audio, 0.1 .. 600 (default 10)\n"
            "  --split S          test | tune | all (default test)\n"
            "  --seed N           mixture seed (default 1)\n"
            "  --data DIR         shared data folder (default $ST_SHARED_DATA or ../shared/data)\n"
            "  --set NAME=VALUE   a spiking VAD parameter (repeatable; names: see\n"
            "                     `spiketalk vad --help`)\n"
            "  --energy-on-db DB  energy peer: onset threshold over its floor (default 9)\n"
            "  --energy-off-db DB energy peer: offset threshold (default 4)\n"
            "  --webrtc-mode K    WebRTC VAD aggressiveness (default 3, the least eager)\n"
            "  --by-snr           add rows for the 0-7, 7-14 and 14-20 dB thirds\n"
            "  --dump FILE        one TSV line per utterance and detector\n"
            "  --dump-noise FILE  one TSV line per event on the noise-only audio\n"
            "  --svg PREFIX       plot the onset and offset latencies of every detector as\n"
            "                     cumulative distributions with the targets:\n"
            "                     PREFIX_onset.svg, PREFIX_offset.svg\n"
            "  --write-mixtures DIR  also write mixture.wav, mixture.tsv, noise.wav there\n"
            "  --model FILE       the learned read-out (default models/vad.stm here or beside\n"
            "                     the binary, when it exists; none: no snn-learned row)\n"
            "  --write-train FILE also write the learned read-out's training data there: the\n"
            "                     spiking VAD's features of every frame of the mixtures and\n"
            "                     the noise, labelled speech or not from the truth, in pieces\n"
            "                     of --chunk-frames N frames (default 400); `spiketalk train`\n"
            "                     takes it with loss ce_frame (models/vad_train.ini)\n"
            "  --augment-noise    play each noise stretch at a random rate (1/1.4 .. 1.4) through\n"
            "                     a random tilt (for training data: more noise than the\n"
            "                     split's clips)\n"
            "  --snr-max DB       speech 0 .. DB over the noise (default 20)\n"
            "  --with-espeak      espeak-ng words and phrases (the split's voices) beside the\n"
            "                     shared data's speech (for training data: synthetic voices,\n"
            "                     as the agent's scenarios have)\n"
            "  --json             one JSON object instead of the table\n"
            "  -h, --help         this help\n"
            "\n"
            "columns (and JSON fields; latencies in ms, decided index minus truth):\n"
            "  detector          snn (spiking VAD), snn-learned, energy, webrtc; and\n"
            "                    oracle, a bound rather than a detector: it knows the clean\n"
            "                    clip and the noise apart and decides speech at the end of\n"
            "                    the first 10 ms in which the clip's power (above 100 Hz)\n"
            "                    outweighs the noise's, with no front end and no delay; a\n"
            "                    detector that hears speech only over the noise is not sooner;\n"
            "                    its offset is the end of the last such 10 ms (hindsight)\n"
            "  snr               which utterances: all, or an SNR third\n"
            "  onset_p50_ms      median onset latency (signed: < 0 is early)\n"
            "  onset_p95_ms      95th percentile of the onset latency's size; target <= 60\n"
            "  offset_p50_ms     median offset latency (signed; includes the hangover)\n"
            "  offset_p95_ms     95th percentile of the offset latency's size; target <= 150\n"
            "  onset_pos_p95_ms  95th percentile of |reported onset position - truth|\n"
            "  missed            utterances with no onset from 200 ms before their truth\n"
            "                    onset to their end (of utterances)\n"
            "  splits            extra onsets inside utterances (pauses taken for ends)\n"
            "  gap_false_per_min onsets in the mixture's noise gaps, per minute of gap\n"
            "  false_per_min     onsets on the noise-only audio, per minute; target < 1\n"
            "  rtf               processing time / audio time (front end included)\n");
}

typedef struct {
    const char *name;
    evlist speech, noise;
    double t_speech, t_noise;
    bool ran;
    bool oracle;    /* not a detector: its onsets are the mixture's audible bound */
    scores all;     /* its scores over all utterances, latencies kept (for --svg) */
} detector_run;

/* The row "oracle": a bound, not a detector. It knows the clean clip and the
   noise apart and decides speech at the end of the first 10 ms in which the
   clip's speech band outweighs the noise's (st_mix_segment.audible), with no
   front end and no delay; its offset is the end of the last such 10 ms
   (st_mix_segment.audible_end), which it could only know in hindsight. A
   detector that hears speech only where it stands over the noise cannot
   find an onset sooner, and hears the same tail (a weak last sound under the
   noise ends it early); one that integrates longer can hear speech under the
   noise, later. */
static int run_oracle(const st_mixture *m, evlist *out)
{
    for (size_t i = 0; i < m->n_segs; i++) {
        const st_mix_segment *sg = &m->segs[i];
        if (sg->audible == UINT64_MAX)
            continue;
        st_vad_event e[2] = {{.kind = ST_VAD_ONSET, .decided_index = sg->audible,
                              .sample_index = sg->onset},
                             {.kind = ST_VAD_OFFSET, .decided_index = sg->audible_end,
                              .sample_index = sg->audible_end}};
        if (ev_push(out, e, 2) != 0)
            return -1;
    }
    return 0;
}

static void add_rows(report *rep, detector_run *d, const st_mixture *m, double noise_frames,
                     double fe_s, double audio_s, bool by_snr, FILE *dump)
{
    static const struct {
        const char *label;
        double lo, hi;
    } bands[] = {{"all", -1e9, 1e9}, {"0-7", -1e9, 7}, {"7-14", 7, 14}, {"14-20", 14, 1e9}};
    int nb = by_snr ? 4 : 1;
    int *only = malloc((m->n_segs + 1) * sizeof *only);
    for (int b = 0; b < nb; b++) {
        for (size_t i = 0; i < m->n_segs; i++)
            only[i] = m->segs[i].snr_db >= bands[b].lo && m->segs[i].snr_db < bands[b].hi;
        scores s;
        score_speech(m, &d->speech, b ? only : NULL, &s, b == 0 ? dump : NULL, d->name, b == 0);
        if (b == 0)
            d->all = s;
        int row = report_row(rep);
        report_set_text(rep, row, "detector", d->name);
        report_set_text(rep, row, "snr", bands[b].label);
        report_set_num(rep, row, "onset_p50_ms", s.onset_p50);
        report_set_num(rep, row, "onset_p95_ms", s.onset_p95);
        report_set_num(rep, row, "offset_p50_ms", s.offset_p50);
        report_set_num(rep, row, "offset_p95_ms", s.offset_p95);
        report_set_num(rep, row, "onset_pos_p95_ms", s.pos_p95);
        report_set_num(rep, row, "missed", s.missed);
        report_set_num(rep, row, "of", s.n_truth);
        report_set_num(rep, row, "splits", s.splits);
        report_set_num(rep, row, "gap_false_per_min", s.gap_false_per_min);
        if (b == 0 && !d->oracle) {
            report_set_num(rep, row, "false_per_min",
                           noise_frames > 0 ? false_per_min(&d->noise, (size_t)noise_frames)
                                            : NAN);
            report_set_num(rep, row, "rtf", (d->t_speech + d->t_noise + fe_s) / audio_s);
        } else {
            report_set_num(rep, row, "false_per_min", NAN);
            report_set_num(rep, row, "rtf", NAN);
        }
    }
    free(only);
}

/* --svg PREFIX: the onset and offset latencies of every detector that ran,
   as cumulative distributions (shares of all utterances: a missed one is
   never found) with the targets; the files' names go in a note. */
static int write_plots(const char *prefix, const detector_run *runs, const int *order,
                       report *rep)
{
    static const char *const colours[5] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#7f7f7f"};
    static const report_cdf_mark on_mark[] = {{60, "target p95 60"}},
                                 off_mark[] = {{150, "target p95 150"}};
    report_cdf_series on[5], off[5];
    int n = 0;
    for (int r = 0; r < 5; r++) {
        const detector_run *d = &runs[order[r]];
        if (!d->ran)
            continue;
        on[n] = (report_cdf_series){d->name, d->all.on, d->all.n_on, colours[r], d->oracle,
                                    d->all.n_truth};
        off[n] = (report_cdf_series){d->name, d->all.off, d->all.n_off, colours[r], d->oracle,
                                     d->all.n_truth};
        n++;
    }
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s_onset.svg", prefix);
    snprintf(b, sizeof b, "%s_offset.svg", prefix);
    int rc = report_cdf_svg(a, "spiketalk bench vad: onset decided after the true onset "
                               "(cumulative; dashed: the oracle bound)",
                            "milliseconds", on, n, on_mark, 1, -1000, 1000);
    if (rc == ST_OK)
        rc = report_cdf_svg(b, "spiketalk bench vad: offset decided after the true offset "
                               "(cumulative; dashed: the oracle bound)",
                            "milliseconds", off, n, off_mark, 1, -1000, 1000);
    if (rc == ST_OK)
        report_note(rep, "plots: %s, %s", a, b);
    return rc;
}

int st_bench_vad(int argc, char **argv)
{
    static const struct option opts[] = {{"utterances", required_argument, 0, 'u'},
                                         {"noise-minutes", required_argument, 0, 'm'},
                                         {"split", required_argument, 0, 'S'},
                                         {"seed", required_argument, 0, 's'},
                                         {"data", required_argument, 0, 'd'},
                                         {"set", required_argument, 0, 'p'},
                                         {"energy-on-db", required_argument, 0, 'E'},
                                         {"energy-off-db", required_argument, 0, 'F'},
                                         {"webrtc-mode", required_argument, 0, 'W'},
                                         {"by-snr", no_argument, 0, 'B'},
                                         {"dump", required_argument, 0, 'D'},
                                         {"dump-noise", required_argument, 0, 'N'},
                                         {"svg", required_argument, 0, 'G'},
                                         {"write-mixtures", required_argument, 0, 'w'},
                                         {"model", required_argument, 0, 'M'},
                                         {"write-train", required_argument, 0, 'T'},
                                         {"chunk-frames", required_argument, 0, 'C'},
                                         {"augment-noise", no_argument, 0, 'A'},
                                         {"with-espeak", no_argument, 0, 'K'},
                                         {"snr-max", required_argument, 0, 'R'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long n_utt = 200, seed = 1, wmode = 3;
    double noise_min = 10, snr_max = st_mix_default_params().snr_max_db;
    bool json = false, by_snr = false, augment = false, with_espeak = false;
    const char *dump_path = NULL, *noise_dump_path = NULL, *write_dir = NULL, *svg = NULL;
    const char *model_given = NULL, *train_path = NULL;
    long chunk = 400;
    const char *env = getenv("ST_SHARED_DATA");
    const char *data = env && *env ? env : "../shared/data";
    st_mix_split split = ST_MIX_TEST;
    st_vad_params vp = st_vad_default_params();
    energy_params ep = {.on_db = 9, .off_db = 4, .lo_hz = 200, .hi_hz = 4000};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            if (!cli_parse_int(CMD, "--utterances", optarg, 1, 20000, &n_utt))
                return 2;
            break;
        case 'm':
            if (!cli_parse_double(CMD, "--noise-minutes", optarg, 0.1, 600, &noise_min))
                return 2;
            break;
        case 'S':
            if (!strcmp(optarg, "test"))
                split = ST_MIX_TEST;
            else if (!strcmp(optarg, "tune"))
                split = ST_MIX_TUNE;
            else if (!strcmp(optarg, "all"))
                split = ST_MIX_ALL;
            else
                return cli_fail(CMD, "--split: '%s' is not test, tune or all", optarg) + 1;
            break;
        case 's':
            if (!cli_parse_int(CMD, "--seed", optarg, 0, 1L << 40, &seed))
                return 2;
            break;
        case 'd': data = optarg; break;
        case 'p': {
            char name[64];
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || (size_t)(eq - optarg) >= sizeof name)
                return cli_fail(CMD, "--set: '%s' is not NAME=VALUE", optarg) + 1;
            memcpy(name, optarg, (size_t)(eq - optarg));
            name[eq - optarg] = '\0';
            int rc = st_vad_set_param(&vp, name, eq + 1);
            if (rc != ST_OK)
                return cli_fail(CMD, "--set: %s", st_errmsg()) + 1;
            break;
        }
        case 'E':
            if (!cli_parse_double(CMD, "--energy-on-db", optarg, 0.1, 60, &ep.on_db))
                return 2;
            break;
        case 'F':
            if (!cli_parse_double(CMD, "--energy-off-db", optarg, 0.1, 60, &ep.off_db))
                return 2;
            break;
        case 'W':
            if (!cli_parse_int(CMD, "--webrtc-mode", optarg, 0, 3, &wmode))
                return 2;
            break;
        case 'B': by_snr = true; break;
        case 'D': dump_path = optarg; break;
        case 'N': noise_dump_path = optarg; break;
        case 'G': svg = optarg; break;
        case 'w': write_dir = optarg; break;
        case 'M': model_given = optarg; break;
        case 'T': train_path = optarg; break;
        case 'C':
            if (!cli_parse_int(CMD, "--chunk-frames", optarg, 10, 100000, &chunk))
                return 2;
            break;
        case 'A': augment = true; break;
        case 'K': with_espeak = true; break;
        case 'R':
            if (!cli_parse_double(CMD, "--snr-max", optarg, 0, 60, &snr_max))
                return 2;
            break;
        case 'J': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        return cli_fail(CMD, "unexpected argument '%s' (see --help)", argv[optind]) + 1;
    ep.up_db_s = vp.floor_up_db_s;
    ep.up_speech_db_s = vp.floor_up_speech_db_s;
    ep.down_db_s = vp.floor_down_db_s;

    struct stat st;
    bool have_data = stat(data, &st) == 0 && S_ISDIR(st.st_mode);
    st_mix_params mp = st_mix_default_params();
    mp.data_dir = have_data ? data : NULL;
    mp.seed = (uint64_t)seed;
    mp.split = split;
    mp.n_utterances = (int)n_utt;
    if (augment) {
        mp.noise_rate_max = 1.4;
        mp.noise_tilt_max = 0.7;
    }
    if (with_espeak)
        mp.sources |= ST_MIX_ESPEAK;
    mp.snr_max_db = snr_max;

    st_frontend_params fp = st_frontend_default_params();
    int err;
    st_frontend *probe = st_frontend_new(&fp, &err);
    if (!probe)
        return cli_fail_lib(CMD, err, "front end");
    double centre[ST_VAD_MAX_CHANNELS];
    for (int k = 0; k < fp.n_mels; k++)
        centre[k] = st_frontend_mel_centre_hz(probe, k);
    vp.n_channels = fp.n_mels;
    vp.hop_s = (double)st_frontend_hop_samples(probe) / RATE;
    vp.frontend_delay_samples = st_frontend_delay_samples(probe);
    vp.channel_hz = centre;
    st_frontend_destroy(&probe);
    st_vad_model *model = st_vad_model_new(&vp, &err);
    if (!model)
        return cli_fail_lib(CMD, err, "spiking VAD");
    char mbuf[4096];
    const char *lpath = cli_vad_model(model_given, true, mbuf, sizeof mbuf);
    st_vad_model *lmodel = NULL;
    if (lpath) {
        st_vad_params lp = vp;
        lp.model_path = lpath;
        if (!(lmodel = st_vad_model_new(&lp, &err))) {
            st_vad_model_destroy(&model);
            return cli_fail_lib(CMD, err, "the learned VAD read-out");
        }
    }

    st_mixture mix = {0}, noise = {0};
    features fm = {0}, fn = {0};
    int status = 0;
    FILE *dump = NULL;
    detector_run runs[5] = {{.name = "snn"},
                            {.name = "energy"},
                            {.name = "webrtc"},
                            {.name = "snn-learned"},
                            {.name = "oracle", .oracle = true}};
    static const int row_order[5] = {0, 3, 1, 2, 4};
    webrtc_api wa;
    bool have_webrtc = webrtc_open(&wa);

    int rc = st_mix_speech(&mp, &mix);
    if (rc != ST_OK) {
        status = cli_fail_lib(CMD, rc, "building the speech mixtures");
        goto done;
    }
    rc = st_mix_noise(&mp, noise_min * 60, &noise);
    if (rc != ST_OK) {
        status = cli_fail_lib(CMD, rc, "building the noise-only audio");
        goto done;
    }
    if (write_dir) {
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/mixture.wav", write_dir);
        snprintf(b, sizeof b, "%s/mixture.tsv", write_dir);
        rc = st_mixture_write(&mix, a, b);
        if (rc == ST_OK) {
            snprintf(a, sizeof a, "%s/noise.wav", write_dir);
            rc = st_mixture_write(&noise, a, NULL);
        }
        if (rc != ST_OK) {
            status = cli_fail_lib(CMD, rc, "writing the mixtures");
            goto done;
        }
    }
    if ((rc = compute_features(&fp, mix.samples, mix.frames, &fm)) != ST_OK ||
        (rc = compute_features(&fp, noise.samples, noise.frames, &fn)) != ST_OK) {
        status = cli_fail_lib(CMD, rc, "front end");
        goto done;
    }
    runs[0].t_speech = run_snn(model, &fm, &runs[0].speech);
    runs[0].t_noise = run_snn(model, &fn, &runs[0].noise);
    runs[1].t_speech = run_energy(&ep, &vp, centre, &fm, &runs[1].speech);
    runs[1].t_noise = run_energy(&ep, &vp, centre, &fn, &runs[1].noise);
    if (runs[0].t_speech < 0 || runs[0].t_noise < 0) {
        status = cli_fail(CMD, "the spiking VAD failed: %s", st_errmsg());
        goto done;
    }
    runs[0].ran = runs[1].ran = true;
    if (lmodel) {
        runs[3].t_speech = run_snn(lmodel, &fm, &runs[3].speech);
        runs[3].t_noise = run_snn(lmodel, &fn, &runs[3].noise);
        if (runs[3].t_speech < 0 || runs[3].t_noise < 0) {
            status = cli_fail(CMD, "the learned spiking VAD failed: %s", st_errmsg());
            goto done;
        }
        runs[3].ran = true;
    }
    if (train_path) {
        framebuf fb = {0};
        size_t samples = 0;
        double share = 0;
        rc = frames_collect(model, &fm, &mix, vp.frontend_delay_samples, &fb);
        if (rc == ST_OK)
            rc = frames_collect(model, &fn, NULL, vp.frontend_delay_samples, &fb);
        if (rc == ST_OK)
            rc = write_train(&fb, (size_t)fm.n_mels, (size_t)chunk, train_path, &samples, &share);
        free(fb.x);
        free(fb.lab);
        if (rc != ST_OK) {
            status = cli_fail_lib(CMD, rc, "writing the training data");
            goto done;
        }
        fprintf(stderr, "bench vad: %s: %zu pieces of %ld frames, %.1f %% of the frames speech\n",
                train_path, samples, chunk, 100 * share);
    }
    if (have_webrtc) {
        runs[2].t_speech = run_webrtc(&wa, (int)wmode, &vp, mix.samples, mix.frames,
                                      &runs[2].speech);
        runs[2].t_noise = run_webrtc(&wa, (int)wmode, &vp, noise.samples, noise.frames,
                                     &runs[2].noise);
        runs[2].ran = runs[2].t_speech >= 0 && runs[2].t_noise >= 0;
    }
    if (run_oracle(&mix, &runs[4].speech) != 0) {
        status = cli_fail(CMD, "out of memory");
        goto done;
    }
    runs[4].ran = true;
    if (dump_path) {
        dump = fopen(dump_path, "w");
        if (!dump) {
            status = cli_fail(CMD, "cannot create '%s'", dump_path);
            goto done;
        }
        fprintf(dump, "detector\ti\tsource\tspeaker\ttext\tsnr_db\tonset_s\toffset_s\t"
                      "onset_lat_ms\toffset_lat_ms\tonset_pos_err_ms\tonsets\n");
    }
    if (noise_dump_path) {
        FILE *nd = fopen(noise_dump_path, "w");
        if (!nd) {
            status = cli_fail(CMD, "cannot create '%s'", noise_dump_path);
            goto done;
        }
        fprintf(nd, "detector\tkind\tdecided_s\tplaced_s\n");
        for (int k = 0; k < 4; k++)
            for (size_t i = 0; runs[k].ran && i < runs[k].noise.n; i++)
                fprintf(nd, "%s\t%s\t%.3f\t%.3f\n", runs[k].name,
                        runs[k].noise.v[i].kind == ST_VAD_ONSET ? "onset" : "offset",
                        (double)runs[k].noise.v[i].decided_index / RATE,
                        (double)runs[k].noise.v[i].sample_index / RATE);
        fclose(nd);
    }

    report rep;
    report_init(&rep, "vad", "voice activity: spiking VAD vs energy and WebRTC VADs", argc,
                argv);
    report_col_text(&rep, "detector");
    report_col_text(&rep, "snr");
    report_col_num(&rep, "onset_p50_ms", "ms");
    report_col_num(&rep, "onset_p95_ms", "ms");
    report_col_num(&rep, "offset_p50_ms", "ms");
    report_col_num(&rep, "offset_p95_ms", "ms");
    report_col_num(&rep, "onset_pos_p95_ms", "ms");
    report_col_num(&rep, "missed", "");
    report_col_num(&rep, "of", "");
    report_col_num(&rep, "splits", "");
    report_col_num(&rep, "gap_false_per_min", "/min");
    report_col_num(&rep, "false_per_min", "/min");
    report_col_num(&rep, "rtf", "");
    double audio_s = (double)(mix.frames + noise.frames) / RATE;
    double fe_s = fm.seconds + fn.seconds;
    for (int r = 0; r < 5; r++) {
        const int k = row_order[r];
        if (runs[k].ran)
            add_rows(&rep, &runs[k], &mix, (double)noise.frames, k == 2 ? 0 : fe_s, audio_s,
                     by_snr, dump);
    }
    if (lmodel)
        report_note(&rep, "snn-learned: read-out %s", lpath);
    report_note(&rep, "oracle: a bound, not a detector: speech decided at the end of the first "
                      "10 ms in which the clean clip outweighs the noise (no front end, no "
                      "delay), ended at the end of the last such 10 ms (known only in "
                      "hindsight)");
    report_note(&rep,
                "%zu utterances (split %s, seed %ld) in %.1f min of %s noise, %zu noise "
                "stretches; %s speech; noise only: %.1f min, %zu stretches",
                mix.n_segs, split == ST_MIX_TEST ? "test" : split == ST_MIX_TUNE ? "tune" : "all",
                seed, (double)mix.frames / RATE / 60,
                mix.synthetic_noise ? "generated" : "_silence_", mix.n_stretches,
                mix.synthetic_speech ? "espeak-ng" : "shared-data",
                (double)noise.frames / RATE / 60, noise.n_stretches);
    report_note(&rep, "front end delay %.1f samples (%.2f ms), hop %.0f ms; targets: onset p95 "
                      "<= 60 ms, offset p95 <= 150 ms, < 1 false onset/min",
                vp.frontend_delay_samples, 1e3 * vp.frontend_delay_samples / RATE,
                1e3 * vp.hop_s);
    if (!have_webrtc)
        report_note(&rep, "webrtc peer not run: libwebrtc_audio_processing.so.1 not found "
                          "(Debian: libwebrtc-audio-processing1)");
    if (svg && write_plots(svg, runs, row_order, &rep) != ST_OK)
        status = cli_fail_lib(CMD, ST_ERR_IO, "--svg");
    report_print(&rep, json, stdout);
done:
    if (dump)
        fclose(dump);
    for (int k = 0; k < 5; k++) {
        free(runs[k].speech.v);
        free(runs[k].noise.v);
        free(runs[k].all.on);
        free(runs[k].all.off);
    }
    st_vad_model_destroy(&lmodel);
    if (have_webrtc)
        dlclose(wa.lib);
    features_free(&fm);
    features_free(&fn);
    st_mixture_free(&mix);
    st_mixture_free(&noise);
    st_vad_model_destroy(&model);
    return status;
}
