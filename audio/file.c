/*  audio/file.c - audio files in and out, over libsndfile.

    Reads anything libsndfile reads (WAV, FLAC, Ogg/Vorbis, AIFF, ...) at any
    rate and channel count, mixed down to mono float by averaging the
    channels; writes mono WAV, 16-bit PCM or 32-bit float. Used by tools, the
    tests and the virtual devices: never on the audio callback (it does file
    I/O). The streaming reader and writer allocate only when opened (though
    libsndfile's decoders, Vorbis's in particular, may allocate as they go),
    so a device thread may call them block by block.

    Touches only the file it is given: opens it (with its own descriptor, so
    that open, fsync and close errors are its own to report; libsndfile gets
    a duplicate, see open_sndfile()), reads it or writes it, closes it. Never
    deletes a file, even a half-written one: a path may name a device.

    Errors name the file and the reason ("audio file 'x.wav': no such file").
    libsndfile keeps the reason an open failed in one global slot, so two
    threads whose opens fail at the same moment may see each other's reason;
    the error code is always right.

    Truncation: libsndfile quietly shortens a WAV data chunk to what the file
    holds, so the frame count the header declares is read here from the RIFF
    header. For other formats (FLAC declares its length in STREAMINFO) a file
    that ends before its declared length is caught when the reads stop
    short. An Ogg file declares no length, so a cut Ogg reads as a shorter
    one.
*/
#include "audio.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*  Interleaved floats in the reader's mix-down buffer: 32 KiB whatever the
    channel count (a 1024-channel file reads 8 frames a chunk). Mono files
    read straight into the caller's buffer. */
#define SCRATCH_SAMPLES 8192

/*  st_audio_read() trusts a header's length up to this many frames for its
    first allocation (64 MiB) and grows by doubling beyond, so that a header
    that lies about its length cannot make it allocate gigabytes. */
#define READ_INITIAL_MAX_FRAMES ((size_t)1 << 24)

/*  Samples a writer converts to 16-bit at once, on the stack. */
#define WRITE_CHUNK_FRAMES 2048

struct st_audio_reader {
    SNDFILE *sf;
    int fd;                   /* ours until the header is read, then -1 */
    SF_INFO info;
    int64_t declared_frames;  /* what the header says; -1 when it does not say */
    int64_t frames_read;
    float *scratch;           /* chunk_frames * channels; NULL for mono */
    size_t chunk_frames;
    char *path;
};

struct st_audio_writer {
    SNDFILE *sf;
    int fd;
    st_wav_format format;
    int error;                /* first failure, reported again by every later call */
    char error_msg[384];      /* its message */
    int64_t frames_written;
    char *path;
};

/* ---- helpers --------------------------------------------------------------- */

static const char *errno_text(int e, char *buf, size_t cap)
{
    /* GNU strerror_r: thread-safe, returns the text (maybe not in buf). */
    return strerror_r(e, buf, cap);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*  The frame count a WAV file's data chunk declares, read from the RIFF
    header (libsndfile reports only what the file holds). -1 for other
    formats, compressed WAV encodings, or a size a streaming writer left as a
    placeholder (0 or 0xFFFFFFFF). Uses pread, so the descriptor's offset
    stays where libsndfile expects it. */
static int64_t wav_declared_frames(int fd, const SF_INFO *info)
{
    int type = info->format & SF_FORMAT_TYPEMASK;
    if (type != SF_FORMAT_WAV && type != SF_FORMAT_WAVEX)
        return -1;
    int bytes;
    switch (info->format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_S8:
    case SF_FORMAT_PCM_U8:
    case SF_FORMAT_ULAW:
    case SF_FORMAT_ALAW: bytes = 1; break;
    case SF_FORMAT_PCM_16: bytes = 2; break;
    case SF_FORMAT_PCM_24: bytes = 3; break;
    case SF_FORMAT_PCM_32:
    case SF_FORMAT_FLOAT: bytes = 4; break;
    case SF_FORMAT_DOUBLE: bytes = 8; break;
    default: return -1;
    }
    unsigned char h[12];
    if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h || memcmp(h, "RIFF", 4) ||
        memcmp(h + 8, "WAVE", 4))
        return -1;
    off_t at = 12;
    for (int chunk = 0; chunk < 256; chunk++) {
        unsigned char c[8];
        if (pread(fd, c, sizeof c, at) != (ssize_t)sizeof c)
            return -1;
        uint32_t size = le32(c + 4);
        if (!memcmp(c, "data", 4)) {
            if (size == 0 || size == 0xFFFFFFFFu)
                return -1;
            return (int64_t)(size / ((uint32_t)bytes * (uint32_t)info->channels));
        }
        at += 8 + (off_t)size + (size & 1); /* chunks are padded to even sizes */
    }
    return -1;
}

/*  Hands libsndfile a duplicate of fd, which it owns from then on.
    libsndfile 1.2.0's sf_open_fd() closes the descriptor when the open fails
    even when told not to (close_desc = SF_FALSE): closing fd ourselves
    afterwards would close it twice, or close whatever another thread opened
    under the same number in between. With a duplicate that libsndfile is
    told to close, every version agrees. (If libsndfile cannot allocate its
    own state it returns before taking the duplicate, which then leaks.) */
static SNDFILE *open_sndfile(int fd, int mode, SF_INFO *info, int *dup_errno)
{
    int lib_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    *dup_errno = lib_fd < 0 ? errno : 0;
    return lib_fd < 0 ? NULL : sf_open_fd(lib_fd, mode, info, SF_TRUE);
}

static int truncated(const char *path, int64_t declared, int64_t readable, SNDFILE *sf)
{
    int e = sf ? sf_error(sf) : SF_ERR_NO_ERROR;
    return st_error(ST_ERR_FORMAT,
                    "audio file '%s': truncated: header declares %lld frames, only %lld readable%s%s%s",
                    path, (long long)declared, (long long)readable, e ? " (libsndfile: " : "",
                    e ? sf_strerror(sf) : "", e ? ")" : "");
}

/* ---- streaming reader ---------------------------------------------------------- */

st_audio_reader *st_audio_reader_open(const char *path, int *err)
{
    st_audio_reader *r = NULL;
    char ebuf[128];
    int rc;
    if (!path || !*path) {
        rc = st_error(ST_ERR_INVALID, "audio file: no path given");
        goto fail;
    }
    r = calloc(1, sizeof *r);
    if (r)
        r->fd = -1;
    if (!r || !(r->path = strdup(path))) {
        rc = st_error(ST_ERR_NOMEM, "audio file '%s': out of memory", path);
        goto fail;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int e = errno;
        rc = e == ENOENT || e == ENOTDIR
                 ? st_error(ST_ERR_NOT_FOUND, "audio file '%s': no such file", path)
                 : st_error(ST_ERR_IO, "audio file '%s': cannot open: %s", path,
                            errno_text(e, ebuf, sizeof ebuf));
        goto fail;
    }
    struct stat st;
    if (fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = st_error(ST_ERR_FORMAT, "audio file '%s': is a folder, not an audio file", path);
        goto fail;
    }
    int dup_errno;
    r->sf = open_sndfile(r->fd, SFM_READ, &r->info, &dup_errno);
    if (!r->sf) {
        rc = dup_errno ? st_error(ST_ERR_IO, "audio file '%s': cannot open: %s", path,
                                  errno_text(dup_errno, ebuf, sizeof ebuf))
             : sf_error(NULL) == SF_ERR_SYSTEM
                 ? st_error(ST_ERR_IO, "audio file '%s': cannot read: %s", path, sf_strerror(NULL))
                 : st_error(ST_ERR_FORMAT, "audio file '%s': not a readable audio file: %s", path,
                            sf_strerror(NULL));
        goto fail;
    }
    if (r->info.channels < 1 || r->info.samplerate < 1) {
        rc = st_error(ST_ERR_FORMAT, "audio file '%s': header declares %d channels at %d Hz", path,
                      r->info.channels, r->info.samplerate);
        goto fail;
    }
    r->declared_frames = wav_declared_frames(r->fd, &r->info);
    close(r->fd); /* libsndfile reads through its own */
    r->fd = -1;
    if (r->declared_frames > r->info.frames) {
        rc = truncated(path, r->declared_frames, r->info.frames, NULL);
        goto fail;
    }
    if (r->declared_frames < 0 && r->info.frames >= 0 && r->info.frames < SF_COUNT_MAX)
        r->declared_frames = r->info.frames;
    if (r->info.channels > 1) {
        r->chunk_frames = SCRATCH_SAMPLES / (size_t)r->info.channels;
        if (r->chunk_frames == 0)
            r->chunk_frames = 1;
        r->scratch = malloc(r->chunk_frames * (size_t)r->info.channels * sizeof *r->scratch);
        if (!r->scratch) {
            rc = st_error(ST_ERR_NOMEM, "audio file '%s': out of memory", path);
            goto fail;
        }
    }
    if (err)
        *err = ST_OK;
    return r;
fail:
    st_audio_reader_close(&r);
    if (err)
        *err = rc;
    return NULL;
}

int st_audio_reader_rate_hz(const st_audio_reader *r)
{
    assert(r);
    return r->info.samplerate;
}

int64_t st_audio_reader_frames(const st_audio_reader *r)
{
    assert(r);
    return r->declared_frames;
}

static int reader_channels(const st_audio_reader *r)
{
    return r->info.channels;
}

long st_audio_reader_read(st_audio_reader *r, float *mono, size_t frames)
{
    assert(r);
    assert(mono || !frames);
    if (frames > LONG_MAX)
        frames = LONG_MAX;
    int channels = reader_channels(r);
    size_t done = 0;
    while (done < frames) {
        size_t want = frames - done;
        sf_count_t got;
        if (channels == 1) {
            got = sf_readf_float(r->sf, mono + done, (sf_count_t)want);
        } else {
            if (want > r->chunk_frames)
                want = r->chunk_frames;
            got = sf_readf_float(r->sf, r->scratch, (sf_count_t)want);
            const float scale = 1.0f / (float)channels;
            for (sf_count_t i = 0; i < got; i++) {
                const float *frame = r->scratch + (size_t)i * (size_t)channels;
                float sum = 0;
                for (int c = 0; c < channels; c++)
                    sum += frame[c];
                mono[done + (size_t)i] = sum * scale;
            }
        }
        if (got <= 0)
            break;
        done += (size_t)got;
        r->frames_read += got;
        if ((size_t)got < want)
            break;
    }
    if (done > 0 || frames == 0)
        return (long)done;
    /* Nothing more: the end of the file, early or not, or a decoding error. */
    if (r->declared_frames >= 0 && r->frames_read < r->declared_frames)
        return truncated(r->path, r->declared_frames, r->frames_read, r->sf);
    if (sf_error(r->sf))
        return st_error(ST_ERR_FORMAT, "audio file '%s': cannot decode after frame %lld: %s",
                        r->path, (long long)r->frames_read, sf_strerror(r->sf));
    return 0;
}

void st_audio_reader_close(st_audio_reader **r_p)
{
    if (!r_p || !*r_p)
        return;
    st_audio_reader *r = *r_p;
    if (r->sf)
        sf_close(r->sf);
    if (r->fd >= 0)
        close(r->fd);
    free(r->scratch);
    free(r->path);
    free(r);
    *r_p = NULL;
}

/* ---- whole files ------------------------------------------------------------- */

int st_audio_read(const char *path, st_audio *out)
{
    assert(out);
    *out = (st_audio){0};
    int rc;
    st_audio_reader *r = st_audio_reader_open(path, &rc);
    if (!r)
        return rc;
    /* One more than declared, so that the read that finds the end has room
       and the buffer does not double for nothing. */
    int64_t declared = st_audio_reader_frames(r);
    size_t cap = declared >= 0 && (uint64_t)declared < READ_INITIAL_MAX_FRAMES
                     ? (size_t)declared + 1
                     : READ_INITIAL_MAX_FRAMES;
    float *samples = malloc(cap * sizeof *samples);
    size_t n = 0;
    for (;;) {
        if (!samples) {
            rc = st_error(ST_ERR_NOMEM, "audio file '%s': out of memory for %zu frames", path, cap);
            goto fail;
        }
        if (n == cap) {
            if (cap > SIZE_MAX / 2 / sizeof *samples) {
                rc = st_error(ST_ERR_NOMEM, "audio file '%s': too long", path);
                goto fail;
            }
            float *grown = realloc(samples, 2 * cap * sizeof *samples);
            if (!grown) {
                rc = st_error(ST_ERR_NOMEM, "audio file '%s': out of memory for %zu frames", path,
                              2 * cap);
                goto fail;
            }
            samples = grown;
            cap *= 2;
        }
        long got = st_audio_reader_read(r, samples + n, cap - n);
        if (got < 0) {
            rc = (int)got;
            goto fail;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    out->samples = samples;
    out->frames = n;
    out->sample_rate_hz = st_audio_reader_rate_hz(r);
    out->channels_in_file = reader_channels(r);
    st_audio_reader_close(&r);
    return ST_OK;
fail:
    free(samples);
    st_audio_reader_close(&r);
    return rc;
}

void st_audio_free(st_audio *a)
{
    if (!a)
        return;
    free(a->samples);
    *a = (st_audio){0};
}

/* ---- streaming writer ---------------------------------------------------------- */

static void writer_free(st_audio_writer *w)
{
    if (!w)
        return;
    if (w->sf)
        sf_close(w->sf);
    if (w->fd >= 0)
        close(w->fd);
    free(w->path);
    free(w);
}

st_audio_writer *st_audio_writer_open(const char *path, int sample_rate_hz, st_wav_format format,
                                      int *err)
{
    st_audio_writer *w = NULL;
    char ebuf[128];
    int rc;
    if (!path || !*path) {
        rc = st_error(ST_ERR_INVALID, "audio file: no path given");
        goto fail;
    }
    if (sample_rate_hz <= 0) {
        rc = st_error(ST_ERR_INVALID, "audio file '%s': sample rate must be positive, got %d Hz",
                      path, sample_rate_hz);
        goto fail;
    }
    if (format != ST_WAV_PCM16 && format != ST_WAV_FLOAT) {
        rc = st_error(ST_ERR_INVALID, "audio file '%s': unknown WAV format %d", path, (int)format);
        goto fail;
    }
    w = calloc(1, sizeof *w);
    if (w)
        w->fd = -1;
    if (!w || !(w->path = strdup(path))) {
        rc = st_error(ST_ERR_NOMEM, "audio file '%s': out of memory", path);
        goto fail;
    }
    w->format = format;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (w->fd < 0) {
        rc = st_error(ST_ERR_IO, "audio file '%s': cannot create: %s", path,
                      errno_text(errno, ebuf, sizeof ebuf));
        goto fail;
    }
    SF_INFO info = {
        .samplerate = sample_rate_hz,
        .channels = 1,
        .format = SF_FORMAT_WAV | (format == ST_WAV_FLOAT ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_16),
    };
    int dup_errno;
    w->sf = open_sndfile(w->fd, SFM_WRITE, &info, &dup_errno);
    if (!w->sf) {
        rc = st_error(ST_ERR_IO, "audio file '%s': cannot write: %s", path,
                      dup_errno ? errno_text(dup_errno, ebuf, sizeof ebuf) : sf_strerror(NULL));
        goto fail;
    }
    /* libsndfile adds a PEAK chunk to float WAVs, stamped with the time of
       writing: the same samples written a second apart would differ. Without
       it a file depends only on its samples (readers need no PEAK chunk). */
    sf_command(w->sf, SFC_SET_ADD_PEAK_CHUNK, NULL, SF_FALSE);
    if (err)
        *err = ST_OK;
    return w;
fail:
    writer_free(w); /* quietly: the open's error is the one to report */
    if (err)
        *err = rc;
    return NULL;
}

static int writer_failed(st_audio_writer *w, const char *what, const char *why)
{
    snprintf(w->error_msg, sizeof w->error_msg, "audio file '%s': %s after %lld frames: %s",
             w->path, what, (long long)w->frames_written, why);
    w->error = ST_ERR_IO;
    return st_error(w->error, "%s", w->error_msg);
}

/*  16-bit conversion is done here, not by libsndfile: libsndfile scales by
    32767 on write but 1/32768 on read (so a round trip is off by up to 1.5
    LSB) and wraps, rather than clips, samples beyond full scale. Scaling by
    32768 and clipping makes write-then-read exact to half an LSB. */
static void float_to_pcm16(const float *src, short *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = src[i] * 32768.0f;
        if (v >= 32767.0f)
            dst[i] = 32767;
        else if (v <= -32768.0f)
            dst[i] = -32768;
        else if (v == v)
            dst[i] = (short)lrintf(v);
        else
            dst[i] = 0; /* NaN */
    }
}

int st_audio_writer_write(st_audio_writer *w, const float *mono, size_t frames)
{
    assert(w);
    assert(mono || !frames);
    if (w->error)
        return st_error(w->error, "%s", w->error_msg);
    size_t done = 0;
    while (done < frames) {
        size_t n = frames - done;
        sf_count_t put;
        if (w->format == ST_WAV_PCM16) {
            short pcm[WRITE_CHUNK_FRAMES];
            if (n > WRITE_CHUNK_FRAMES)
                n = WRITE_CHUNK_FRAMES;
            float_to_pcm16(mono + done, pcm, n);
            put = sf_writef_short(w->sf, pcm, (sf_count_t)n);
        } else {
            if (n > (size_t)INT32_MAX)
                n = INT32_MAX;
            put = sf_writef_float(w->sf, mono + done, (sf_count_t)n);
        }
        if (put > 0)
            w->frames_written += put;
        if (put != (sf_count_t)n)
            return writer_failed(w, "write failed", sf_strerror(w->sf));
        done += n;
    }
    return ST_OK;
}

int st_audio_writer_close(st_audio_writer **w_p)
{
    if (!w_p || !*w_p)
        return ST_OK;
    st_audio_writer *w = *w_p;
    char ebuf[128];
    if (w->sf) {
        /* sf_close() rewrites the header with the final length but cannot
           report that write failing (its state is gone by then): write it
           now, where libsndfile still records the error. */
        if (!w->error) {
            sf_command(w->sf, SFC_UPDATE_HEADER_NOW, NULL, 0);
            if (sf_error(w->sf))
                writer_failed(w, "writing the header failed", sf_strerror(w->sf));
        }
        int sf_rc = sf_close(w->sf);
        int close_errno = errno;
        w->sf = NULL;
        if (sf_rc && !w->error) /* -1: close() of its descriptor failed */
            writer_failed(w, "closing failed",
                          sf_rc == -1 ? errno_text(close_errno, ebuf, sizeof ebuf)
                                      : sf_error_number(sf_rc));
        /* A disk that fills at writeback, or a network file system, reports
           only here. fsync is meaningless (EINVAL) on a pipe or a device. */
        if (!w->error && fsync(w->fd) != 0 && errno != EINVAL && errno != EROFS)
            writer_failed(w, "flushing to disk failed", errno_text(errno, ebuf, sizeof ebuf));
    }
    if (w->fd >= 0 && close(w->fd) != 0 && !w->error && errno != EINTR)
        writer_failed(w, "closing failed", errno_text(errno, ebuf, sizeof ebuf));
    w->fd = -1;
    int rc = w->error;
    if (rc) /* the message is this file's, whatever ran since the failure */
        st_error(rc, "%s", w->error_msg);
    writer_free(w);
    *w_p = NULL;
    return rc;
}

int st_audio_write_wav(const char *path, const float *samples, size_t frames, int sample_rate_hz,
                       st_wav_format format)
{
    assert(samples || !frames);
    int rc;
    st_audio_writer *w = st_audio_writer_open(path, sample_rate_hz, format, &rc);
    if (!w)
        return rc;
    rc = st_audio_writer_write(w, samples, frames);
    int close_rc = st_audio_writer_close(&w);
    return rc ? rc : close_rc;
}
