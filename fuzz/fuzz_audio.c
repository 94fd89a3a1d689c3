/*  fuzz/fuzz_audio.c - libFuzzer target for audio files (audio/file.c over
    libsndfile): st_audio_read on the input as a file (an in-memory file:
    the API takes a path), and the streaming reader in small chunks, which
    must hand over the same samples.

    Seeds: fuzz/corpus/audio (short WAV PCM16, WAV float, stereo, FLAC and
    Ogg files written with libsndfile by fuzz/corpus.c). Crashes inside
    libsndfile itself are reported upstream, not fixed here; what this
    guards is our side: frame counts a header may lie about, channel counts,
    the mix-down buffer, truncation. Touches: a memfd per input.
*/
#include "fuzz.h"
#include "audio/audio.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_fuzz_quiet();
    char path[32];
    int fd = st_fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    st_audio a;
    int rc = st_audio_read(path, &a);
    if (rc == ST_OK) {
        if (!a.samples && a.frames)
            abort();
        volatile float sink = 0;
        for (size_t i = 0; i < a.frames; i++)
            sink += a.samples[i];
        (void)sink;
    } else if (a.samples || a.frames) {
        abort(); /* on error `out` is left empty */
    }

    int err;
    st_audio_reader *r = st_audio_reader_open(path, &err);
    if (r) {
        float buf[37];
        size_t total = 0;
        long got;
        while ((got = st_audio_reader_read(r, buf, sizeof buf / sizeof *buf)) > 0) {
            if ((size_t)got > sizeof buf / sizeof *buf)
                abort();
            /* The same samples as the whole read (when that succeeded). NaN
               compares unequal to itself: compare the bits' class instead. */
            for (long i = 0; rc == ST_OK && i < got; i++) {
                if (total + (size_t)i >= a.frames)
                    abort();
                float x = buf[i], y = a.samples[total + (size_t)i];
                if (!(x == y || (isnan(x) && isnan(y))))
                    abort();
            }
            total += (size_t)got;
        }
        if (rc == ST_OK && got == 0 && total != a.frames)
            abort();
        st_audio_reader_close(&r);
    }
    st_audio_free(&a);
    close(fd);
    return 0;
}
