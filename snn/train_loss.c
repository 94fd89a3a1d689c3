/*  snn/train_loss.c - the losses on a read-out sequence and their
    gradients: cross-entropy on the max, the mean or the last step over
    time, and CTC (connectionist temporal classification) for label
    sequences, with greedy decoding.

    Tuned for per-sample read-outs of 2 to 64 outputs over 50 to 500 steps;
    everything is computed in double (the forward-backward of CTC in log
    space), so a loss is exact to float precision whatever its length.
*/
#include "train_impl.h"

#include <math.h>
#include <stdlib.h>

#define K_STACK 256

static double logsumexp2(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    const double m = a > b ? a : b;
    return m + log(exp(a - m) + exp(b - m));
}

double tr_ce_loss(st_train_loss kind, const float *y, size_t ld, size_t T, size_t K,
                  int32_t label, float scale, float *g, int32_t *pred)
{
    if (K == 0 || T == 0)
        return NAN;
    double lstack[K_STACK];
    size_t tstack[K_STACK];
    double *logit = K <= K_STACK ? lstack : malloc(K * sizeof *logit);
    size_t *argt = K <= K_STACK ? tstack : malloc(K * sizeof *argt);
    if (!logit || !argt) {
        if (logit != lstack)
            free(logit);
        if (argt != tstack)
            free(argt);
        return NAN;
    }
    for (size_t k = 0; k < K; k++) {
        switch (kind) {
        case ST_TRAIN_LOSS_CE_MAX: {
            float m = y[k];
            size_t at = 0;
            for (size_t t = 1; t < T; t++)
                if (y[t * ld + k] > m) {
                    m = y[t * ld + k];
                    at = t;
                }
            logit[k] = m;
            argt[k] = at;
            break;
        }
        case ST_TRAIN_LOSS_CE_MEAN: {
            double s = 0;
            for (size_t t = 0; t < T; t++)
                s += y[t * ld + k];
            logit[k] = s / (double)T;
            break;
        }
        default: logit[k] = y[(T - 1) * ld + k]; break;
        }
    }
    double m = logit[0];
    int32_t best = 0;
    for (size_t k = 1; k < K; k++)
        if (logit[k] > m) {
            m = logit[k];
            best = (int32_t)k;
        }
    double se = 0;
    for (size_t k = 0; k < K; k++)
        se += exp(logit[k] - m);
    const double lse = m + log(se);
    const double loss = lse - logit[label];
    if (pred)
        *pred = best;
    if (g) {
        for (size_t k = 0; k < K; k++) {
            const double d = (exp(logit[k] - lse) - ((int32_t)k == label ? 1.0 : 0.0)) * scale;
            switch (kind) {
            case ST_TRAIN_LOSS_CE_MAX: g[argt[k] * ld + k] += (float)d; break;
            case ST_TRAIN_LOSS_CE_MEAN: {
                const float dt = (float)(d / (double)T);
                for (size_t t = 0; t < T; t++)
                    g[t * ld + k] += dt;
                break;
            }
            default: g[(T - 1) * ld + k] += (float)d; break;
            }
        }
    }
    if (logit != lstack)
        free(logit);
    if (argt != tstack)
        free(argt);
    return loss;
}

/* ---- CTC ------------------------------------------------------------------------------ */

size_t tr_ctc_work_len(size_t T, size_t L, size_t K)
{
    return 2 * T * (2 * L + 1) + T * K;
}

double tr_ctc_loss(const float *y, size_t ld, size_t T, size_t K, uint32_t blank,
                   const int32_t *labels, size_t L, float scale, float *g, double *work)
{
    const size_t S = 2 * L + 1;
    /* the steps the labels need: one each, plus a blank between repeats */
    size_t need = L;
    for (size_t s = 1; s < L; s++)
        need += labels[s] == labels[s - 1];
    if (T == 0 || need > T)
        return INFINITY;
    double *alpha = work, *beta = work + T * S, *lp = work + 2 * T * S;
#define LAB(s) ((s) % 2 ? (size_t)labels[(s) / 2] : (size_t)blank)
    /* log-softmax per step */
    for (size_t t = 0; t < T; t++) {
        const float *yt = y + t * ld;
        double m = yt[0];
        for (size_t k = 1; k < K; k++)
            m = yt[k] > m ? yt[k] : m;
        double se = 0;
        for (size_t k = 0; k < K; k++)
            se += exp(yt[k] - m);
        const double lse = m + log(se);
        for (size_t k = 0; k < K; k++)
            lp[t * K + k] = yt[k] - lse;
    }
    for (size_t s = 0; s < S; s++)
        alpha[s] = s < 2 ? lp[LAB(s)] : -INFINITY;
    for (size_t t = 1; t < T; t++)
        for (size_t s = 0; s < S; s++) {
            const double *ap = alpha + (t - 1) * S;
            double a = ap[s];
            if (s >= 1)
                a = logsumexp2(a, ap[s - 1]);
            if (s >= 2 && s % 2 == 1 && LAB(s) != LAB(s - 2))
                a = logsumexp2(a, ap[s - 2]);
            alpha[t * S + s] = a == -INFINITY ? a : a + lp[t * K + LAB(s)];
        }
    for (size_t s = 0; s < S; s++)
        beta[(T - 1) * S + s] = s + 2 >= S ? 0.0 : -INFINITY;
    for (size_t t = T - 1; t-- > 0;)
        for (size_t s = 0; s < S; s++) {
            const double *bn = beta + (t + 1) * S;
            const double *ln = lp + (t + 1) * K;
            double b = bn[s] + ln[LAB(s)];
            if (s + 1 < S)
                b = logsumexp2(b, bn[s + 1] + ln[LAB(s + 1)]);
            if (s + 2 < S && (s + 2) % 2 == 1 && LAB(s + 2) != LAB(s))
                b = logsumexp2(b, bn[s + 2] + ln[LAB(s + 2)]);
            beta[t * S + s] = b;
        }
    double logp = alpha[(T - 1) * S + S - 1];
    if (S >= 2)
        logp = logsumexp2(logp, alpha[(T - 1) * S + S - 2]);
    if (logp == -INFINITY)
        return INFINITY;
    if (g) {
        for (size_t t = 0; t < T; t++) {
            float *gt = g + t * ld;
            const double *lpt = lp + t * K;
            /* softmax minus the occupancy of each output */
            for (size_t k = 0; k < K; k++) {
                double occ = 0;
                if (k == blank) {
                    for (size_t s = 0; s < S; s += 2)
                        occ += exp(alpha[t * S + s] + beta[t * S + s] - logp);
                } else {
                    for (size_t s = 1; s < S; s += 2)
                        if ((size_t)labels[s / 2] == k)
                            occ += exp(alpha[t * S + s] + beta[t * S + s] - logp);
                }
                gt[k] += (float)((exp(lpt[k]) - occ) * scale);
            }
        }
    }
#undef LAB
    return -logp;
}

size_t tr_ctc_greedy(const float *y, size_t ld, size_t T, size_t K, uint32_t blank,
                     int32_t *out)
{
    size_t n = 0, prev = (size_t)-1;
    for (size_t t = 0; t < T; t++) {
        const float *yt = y + t * ld;
        size_t best = 0;
        for (size_t k = 1; k < K; k++)
            if (yt[k] > yt[best])
                best = k;
        if (best != prev && best != blank)
            out[n++] = (int32_t)best;
        prev = best;
    }
    return n;
}
