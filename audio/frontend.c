/*  audio/frontend.c - the streaming log-mel filterbank (the "Front end"
    section of audio/audio.h): 16 kHz samples in any block size, one frame of
    log mel energies out every hop, stamped with the capture sample index of
    its newest sample.

    May touch: base/, FFTW3 (float). Knows nothing of spikes or networks.

    Tuned for: 10 ms hops (160 samples) of a 25 ms Hann window, a 512-point
    real FFT and 40 mel channels, one stream per object; process() runs on
    the capture side's thread and never allocates (every buffer is made at
    creation). The window is shifted by a memmove of window - hop floats per
    frame: at 240 floats that is cheaper than the bookkeeping of a circular
    buffer that FFTW would want linearised anyway.
*/
#include "audio.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* FFTW's planner is not thread-safe: every plan made or destroyed in this
   process by spiketalk goes through this lock (execution needs none). */
static pthread_mutex_t planner_lock = PTHREAD_MUTEX_INITIALIZER;

struct st_frontend {
    st_frontend_params p;
    size_t win, hop, nfft, nbins;
    int n_mels;
    float *window;         /* win: the analysis window */
    float *hist;           /* win: the last win samples, oldest first */
    size_t fill;           /* new samples in hist since the last frame */
    uint64_t next_index;   /* capture index of the next sample consumed */
    float *fft_in;         /* nfft, FFTW-aligned */
    fftwf_complex *fft_out;/* nbins */
    fftwf_plan plan;
    float *power;          /* nbins */
    float power_scale;     /* 1 / sum(w^2) */
    /* mel filters, sparse: channel c covers bins [lo[c], lo[c] + len[c]) with
       weights wt[off[c] ...] */
    int *mel_lo, *mel_len, *mel_off;
    float *mel_wt;
    double *mel_centre_hz;
    /* running mean normalisation */
    float *mean;
    float norm_alpha;
    uint64_t frames_done;  /* frames emitted since reset */
    uint64_t norm_start;   /* the first frame whose window holds no priming zeros */
};

st_frontend_params st_frontend_default_params(void)
{
    return (st_frontend_params){
        .sample_rate_hz = ST_PIPELINE_RATE_HZ,
        .window_ms = 25,
        .hop_ms = 10,
        .n_mels = 40,
        .f_min_hz = 60,
        .f_max_hz = 8000,
        .log_floor = 1e-10,
        .normalize = false,
        .norm_tau_s = 3,
    };
}

static double hz_to_mel(double f)
{
    return 2595.0 * log10(1.0 + f / 700.0);
}

static double mel_to_hz(double m)
{
    return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
}

void st_frontend_destroy(st_frontend **fe_p)
{
    if (!fe_p || !*fe_p)
        return;
    st_frontend *fe = *fe_p;
    if (fe->plan) {
        pthread_mutex_lock(&planner_lock);
        fftwf_destroy_plan(fe->plan);
        pthread_mutex_unlock(&planner_lock);
    }
    fftwf_free(fe->fft_in);
    fftwf_free(fe->fft_out);
    free(fe->window);
    free(fe->hist);
    free(fe->power);
    free(fe->mel_lo);
    free(fe->mel_len);
    free(fe->mel_off);
    free(fe->mel_wt);
    free(fe->mel_centre_hz);
    free(fe->mean);
    free(fe);
    *fe_p = NULL;
}

static int check_params(const st_frontend_params *p)
{
    if (p->sample_rate_hz <= 0 || p->sample_rate_hz > 384000)
        return st_error(ST_ERR_INVALID, "front end: sample_rate_hz %d is not in 1..384000",
                        p->sample_rate_hz);
    if (!(p->window_ms > 0) || !(p->hop_ms > 0) || p->hop_ms > p->window_ms)
        return st_error(ST_ERR_INVALID,
                        "front end: window_ms %g and hop_ms %g must be > 0 with hop <= window",
                        p->window_ms, p->hop_ms);
    if (p->n_mels < 1 || p->n_mels > 512)
        return st_error(ST_ERR_INVALID, "front end: n_mels %d is not in 1..512", p->n_mels);
    double nyq = p->sample_rate_hz / 2.0;
    double fmax = p->f_max_hz > 0 ? p->f_max_hz : nyq;
    if (!(p->f_min_hz >= 0) || !(fmax > p->f_min_hz) || fmax > nyq)
        return st_error(ST_ERR_INVALID,
                        "front end: need 0 <= f_min_hz (%g) < f_max_hz (%g) <= Nyquist (%g)",
                        p->f_min_hz, fmax, nyq);
    if (!(p->log_floor > 0))
        return st_error(ST_ERR_INVALID, "front end: log_floor %g must be > 0", p->log_floor);
    if (p->normalize && !(p->norm_tau_s > 0))
        return st_error(ST_ERR_INVALID, "front end: norm_tau_s %g must be > 0", p->norm_tau_s);
    return ST_OK;
}

/* Triangular filters of peak 1 between n_mels + 2 points evenly spaced in
   mel, evaluated at the FFT bins' centre frequencies. */
static int make_filters(st_frontend *fe)
{
    const st_frontend_params *p = &fe->p;
    const int nm = fe->n_mels;
    const double fmax = p->f_max_hz > 0 ? p->f_max_hz : p->sample_rate_hz / 2.0;
    const double mlo = hz_to_mel(p->f_min_hz), mhi = hz_to_mel(fmax);
    const double bin_hz = (double)p->sample_rate_hz / (double)fe->nfft;
    fe->mel_lo = calloc((size_t)nm, sizeof *fe->mel_lo);
    fe->mel_len = calloc((size_t)nm, sizeof *fe->mel_len);
    fe->mel_off = calloc((size_t)nm, sizeof *fe->mel_off);
    fe->mel_centre_hz = calloc((size_t)nm, sizeof *fe->mel_centre_hz);
    fe->mel_wt = calloc((size_t)nm * fe->nbins, sizeof *fe->mel_wt);
    if (!fe->mel_lo || !fe->mel_len || !fe->mel_off || !fe->mel_centre_hz || !fe->mel_wt)
        return st_error(ST_ERR_NOMEM, "front end: out of memory for %d mel filters", nm);
    int off = 0;
    for (int c = 0; c < nm; c++) {
        double fl = mel_to_hz(mlo + (mhi - mlo) * c / (nm + 1));
        double fc = mel_to_hz(mlo + (mhi - mlo) * (c + 1) / (nm + 1));
        double fh = mel_to_hz(mlo + (mhi - mlo) * (c + 2) / (nm + 1));
        fe->mel_centre_hz[c] = fc;
        int lo = -1, len = 0;
        for (size_t k = 0; k < fe->nbins; k++) {
            double f = k * bin_hz, w = 0;
            if (f > fl && f <= fc)
                w = (f - fl) / (fc - fl);
            else if (f > fc && f < fh)
                w = (fh - f) / (fh - fc);
            if (w <= 0)
                continue;
            if (lo < 0)
                lo = (int)k;
            fe->mel_wt[off + len++] = (float)w;
        }
        if (len == 0)
            return st_error(ST_ERR_INVALID,
                            "front end: mel channel %d (%.0f..%.0f Hz) holds no FFT bin of "
                            "%.1f Hz: fewer n_mels, a higher f_min_hz or a longer window",
                            c, fl, fh, bin_hz);
        fe->mel_lo[c] = lo;
        fe->mel_len[c] = len;
        fe->mel_off[c] = off;
        off += len;
    }
    return ST_OK;
}

st_frontend *st_frontend_new(const st_frontend_params *p, int *err)
{
    int rc = check_params(p);
    st_frontend *fe = NULL;
    if (rc != ST_OK)
        goto fail;
    rc = ST_ERR_NOMEM;
    fe = calloc(1, sizeof *fe);
    if (!fe)
        goto fail;
    fe->p = *p;
    fe->win = (size_t)llround(p->window_ms * p->sample_rate_hz / 1000.0);
    fe->hop = (size_t)llround(p->hop_ms * p->sample_rate_hz / 1000.0);
    if (fe->win < 2 || fe->hop < 1 || fe->hop > fe->win) {
        rc = st_error(ST_ERR_INVALID, "front end: window %zu and hop %zu samples are too short",
                      fe->win, fe->hop);
        goto fail;
    }
    fe->nfft = 1;
    while (fe->nfft < fe->win)
        fe->nfft <<= 1;
    fe->nbins = fe->nfft / 2 + 1;
    fe->n_mels = p->n_mels;
    fe->window = malloc(fe->win * sizeof *fe->window);
    fe->hist = calloc(fe->win, sizeof *fe->hist);
    fe->power = malloc(fe->nbins * sizeof *fe->power);
    fe->mean = calloc((size_t)fe->n_mels, sizeof *fe->mean);
    fe->fft_in = fftwf_malloc(fe->nfft * sizeof *fe->fft_in);
    fe->fft_out = fftwf_malloc(fe->nbins * sizeof *fe->fft_out);
    if (!fe->window || !fe->hist || !fe->power || !fe->mean || !fe->fft_in || !fe->fft_out) {
        st_error(ST_ERR_NOMEM, "front end: out of memory");
        goto fail;
    }
    /* Hann shifted by half a sample: symmetric about (win - 1) / 2, with no
       zero at either end, so every sample of the window counts. */
    double sum2 = 0;
    for (size_t n = 0; n < fe->win; n++) {
        double w = 0.5 - 0.5 * cos(2.0 * M_PI * (n + 0.5) / (double)fe->win);
        fe->window[n] = (float)w;
        sum2 += w * w;
    }
    fe->power_scale = (float)(1.0 / sum2);
    memset(fe->fft_in, 0, fe->nfft * sizeof *fe->fft_in);
    rc = make_filters(fe);
    if (rc != ST_OK)
        goto fail;
    fe->norm_alpha =
        p->normalize ? (float)(1.0 - exp(-(double)fe->hop / (p->norm_tau_s * p->sample_rate_hz)))
                     : 0.0f;
    pthread_mutex_lock(&planner_lock);
    fe->plan = fftwf_plan_dft_r2c_1d((int)fe->nfft, fe->fft_in, fe->fft_out, FFTW_ESTIMATE);
    pthread_mutex_unlock(&planner_lock);
    if (!fe->plan) {
        rc = st_error(ST_ERR_INTERNAL, "front end: FFTW made no plan for a %zu-point FFT",
                      fe->nfft);
        goto fail;
    }
    st_frontend_reset(fe, 0);
    if (err)
        *err = ST_OK;
    return fe;
fail:
    st_frontend_destroy(&fe);
    if (err)
        *err = rc;
    return NULL;
}

void st_frontend_reset(st_frontend *fe, uint64_t first_sample_index)
{
    memset(fe->hist, 0, fe->win * sizeof *fe->hist);
    memset(fe->mean, 0, (size_t)fe->n_mels * sizeof *fe->mean);
    fe->fill = 0;
    fe->next_index = first_sample_index;
    fe->frames_done = 0;
    fe->norm_start = (fe->win - 1) / fe->hop;
}

/* Computes the frame from hist into out[n_mels]. */
static void analyse(st_frontend *fe, float *out)
{
    const size_t win = fe->win;
    for (size_t n = 0; n < win; n++)
        fe->fft_in[n] = fe->hist[n] * fe->window[n];
    /* FFTW preserves an out-of-place r2c input by default; zeroing the
       padding anyway costs nothing and depends on no planner flag. */
    memset(fe->fft_in + win, 0, (fe->nfft - win) * sizeof *fe->fft_in);
    fftwf_execute(fe->plan);
    for (size_t k = 0; k < fe->nbins; k++) {
        float re = fe->fft_out[k][0], im = fe->fft_out[k][1];
        fe->power[k] = (re * re + im * im) * fe->power_scale;
    }
    const float floor_v = (float)fe->p.log_floor;
    for (int c = 0; c < fe->n_mels; c++) {
        const float *w = fe->mel_wt + fe->mel_off[c];
        const float *pw = fe->power + fe->mel_lo[c];
        float e = 0;
        for (int j = 0; j < fe->mel_len[c]; j++)
            e += w[j] * pw[j];
        out[c] = logf(e > floor_v ? e : floor_v);
    }
    if (fe->p.normalize) {
        if (fe->frames_done < fe->norm_start) {
            for (int c = 0; c < fe->n_mels; c++)
                out[c] = 0;
        } else if (fe->frames_done == fe->norm_start) {
            for (int c = 0; c < fe->n_mels; c++) {
                fe->mean[c] = out[c];
                out[c] = 0;
            }
        } else {
            for (int c = 0; c < fe->n_mels; c++) {
                fe->mean[c] += fe->norm_alpha * (out[c] - fe->mean[c]);
                out[c] -= fe->mean[c];
            }
        }
    }
}

int st_frontend_process(st_frontend *fe, const float *pcm, size_t n, float *feat,
                        uint64_t *index, size_t cap_frames, size_t *used, size_t *made)
{
    size_t at = 0, nf = 0;
    const size_t keep = fe->win - fe->hop;
    while (at < n) {
        size_t want = fe->hop - fe->fill; /* samples that complete the frame */
        size_t take = n - at < want ? n - at : want;
        if (take == want && nf == cap_frames) {
            take = want - 1; /* no room for the frame this would complete */
            if (take == 0)
                break;
        }
        memcpy(fe->hist + keep + fe->fill, pcm + at, take * sizeof *pcm);
        fe->fill += take;
        at += take;
        fe->next_index += take;
        if (fe->fill < fe->hop)
            break;
        analyse(fe, feat + nf * (size_t)fe->n_mels);
        if (index)
            index[nf] = fe->next_index - 1;
        nf++;
        fe->frames_done++;
        memmove(fe->hist, fe->hist + fe->hop, keep * sizeof *fe->hist);
        fe->fill = 0;
    }
    if (used)
        *used = at;
    if (made)
        *made = nf;
    return ST_OK;
}

size_t st_frontend_max_frames(const st_frontend *fe, size_t n)
{
    return (fe->fill + n) / fe->hop;
}

int st_frontend_n_mels(const st_frontend *fe)
{
    return fe->n_mels;
}

size_t st_frontend_hop_samples(const st_frontend *fe)
{
    return fe->hop;
}

size_t st_frontend_window_samples(const st_frontend *fe)
{
    return fe->win;
}

size_t st_frontend_fft_size(const st_frontend *fe)
{
    return fe->nfft;
}

double st_frontend_delay_samples(const st_frontend *fe)
{
    return (fe->win - 1) / 2.0;
}

double st_frontend_delay_s(const st_frontend *fe)
{
    return st_frontend_delay_samples(fe) / fe->p.sample_rate_hz;
}

double st_frontend_mel_centre_hz(const st_frontend *fe, int c)
{
    return c >= 0 && c < fe->n_mels ? fe->mel_centre_hz[c] : 0.0;
}

const st_frontend_params *st_frontend_params_of(const st_frontend *fe)
{
    return &fe->p;
}
