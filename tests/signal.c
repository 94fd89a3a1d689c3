/*  tests/signal.c - deterministic test signals. */
#include "testutil.h"

#include <math.h>
#include <stdint.h>

void st_test_noise(float *buf, size_t n, unsigned seed, int rate_hz, double cutoff_hz)
{
    uint32_t x = seed ? seed : 0x9e3779b9u;
    /* Four cascaded one-pole low-passes: about 24 dB/octave above cutoff. */
    double a = exp(-2.0 * M_PI * cutoff_hz / rate_hz);
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    for (size_t i = 0; i < n + 256; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        double w = (double)x / 4294967296.0 * 2.0 - 1.0;
        s1 = (1 - a) * w + a * s1;
        s2 = (1 - a) * s1 + a * s2;
        s3 = (1 - a) * s2 + a * s3;
        s4 = (1 - a) * s3 + a * s4;
        if (i >= 256) /* let the filter settle */
            buf[i - 256] = (float)s4;
    }
    /* Scale to an RMS of 0.1: peaks stay well inside [-1, 1] at any cutoff. */
    double e = 0;
    for (size_t i = 0; i < n; i++)
        e += (double)buf[i] * buf[i];
    double g = n && e > 0 ? 0.1 / sqrt(e / (double)n) : 0;
    for (size_t i = 0; i < n; i++)
        buf[i] = (float)(buf[i] * g);
}
