/*  snn/train_export.c - a trained model as an engine network (snn/snn.h),
    and through it as the engine's model file and as NIR.

    Each layer becomes the nodes the trainer's forward computes, in the
    same order of summation: "<name>.w" (dense, bias first then the inputs
    in ascending order; or conv), "<name>.rec" (dense, no bias, from the
    population back to itself: the engine breaks that cycle with one step of
    delay, which is the trainer's z(t - 1)), the population "<name>" with
    the feed-forward edge connected before the recurrent one (so its input
    is ff + rec, as the trainer adds them), delays as delay nodes rounded to
    whole steps (as the trainer's forward rounds them). Trained rates go to
    the engine as tau_*_inv = the values kept beside the rates, from which
    the engine recomputes exactly the trainer's a, s, ad.

    Runs once at the end of training; allocates freely.
*/
#include "train_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_population(st_snn_net *net, const st_train_model *m, const tr_layer *L)
{
    const tr_coef c = tr_layer_coef(m, L);
    const bool each = L->o_a != TR_NONE || L->o_th != TR_NONE;
    if (!each)
        return st_snn_net_add_neurons(net, L->p.name, &L->p.neuron, L->n);
    st_snn_neuron_params *p = malloc(L->n * sizeof *p);
    if (!p)
        return st_error(ST_ERR_NOMEM, "out of memory exporting '%s'", L->p.name);
    for (size_t k = 0; k < L->n; k++) {
        p[k] = L->p.neuron;
        p[k].tau_mem_inv = L->tau_mem[k];
        p[k].tau_syn_inv = L->tau_syn[k];
        p[k].tau_adapt_inv = L->tau_adapt[k];
        p[k].v_th = c.th[k];
    }
    int id = st_snn_net_add_neurons_each(net, L->p.name, p, L->n);
    free(p);
    return id;
}

st_snn_net *st_train_export(const st_train_model *self, int *err)
{
    int rc = ST_OK;
    float *tmp = NULL;
    char name[ST_TRAIN_NAME_LEN + 8];
    st_snn_net *net = st_snn_net_new(&rc);
    if (!net)
        goto fail;
    int prev = st_snn_net_add_input(net, "input", self->n_in);
    if (prev < 0) {
        rc = prev;
        goto fail;
    }
#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if ((rc = (expr)) < 0)                                                                     \
            goto fail;                                                                             \
    } while (0)
    for (size_t l = 0; l < self->n_layers; l++) {
        const tr_layer *L = &self->layers[l];
        const float *P = self->params;
        if (L->p.kind == ST_TRAIN_DELAY) {
            uint32_t *steps = malloc(L->n * sizeof *steps);
            if (!steps)
                goto nomem;
            for (size_t k = 0; k < L->n; k++)
                steps[k] = (uint32_t)floorf(P[L->o_d + k] + 0.5f);
            rc = st_snn_net_add_delay(net, L->p.name, L->n, steps);
            free(steps);
            if (rc < 0)
                goto fail;
            const int id = rc;
            CHECK(st_snn_net_connect(net, prev, id));
            prev = id;
            continue;
        }
        const float *bias = L->o_b != TR_NONE ? P + L->o_b : NULL;
        snprintf(name, sizeof name, "%s.w", L->p.name);
        int w;
        if (L->p.kind == ST_TRAIN_DENSE) {
            tmp = malloc(L->n * L->n_in * sizeof *tmp);
            if (!tmp)
                goto nomem;
            tr_transpose(P + L->o_w, L->n_in, L->n, tmp); /* the engine's [n_out][n_in] */
            CHECK(w = st_snn_net_add_dense(net, name, L->n, L->n_in, tmp, bias));
            free(tmp);
            tmp = NULL;
        } else {
            st_snn_conv_shape sh =
                st_snn_conv_1d(L->p.in_channels, L->p.out_channels, L->len_in, L->p.kernel);
            sh.stride_w = L->p.stride;
            sh.padding_w = L->p.padding;
            CHECK(w = st_snn_net_add_conv(net, name, &sh, P + L->o_w, bias));
        }
        int pop;
        CHECK(pop = add_population(net, self, L));
        CHECK(st_snn_net_connect(net, prev, w));
        CHECK(st_snn_net_connect(net, w, pop));
        if (L->o_rec != TR_NONE) {
            tmp = malloc(L->n * L->n * sizeof *tmp);
            if (!tmp)
                goto nomem;
            tr_transpose(P + L->o_rec, L->n, L->n, tmp);
            snprintf(name, sizeof name, "%s.rec", L->p.name);
            int rec;
            CHECK(rec = st_snn_net_add_dense(net, name, L->n, L->n, tmp, NULL));
            free(tmp);
            tmp = NULL;
            CHECK(st_snn_net_connect(net, pop, rec));
            CHECK(st_snn_net_connect(net, rec, pop));
        }
        prev = pop;
    }
    int out;
    CHECK(out = st_snn_net_add_output(net, "output", st_train_model_outputs(self)));
    CHECK(st_snn_net_connect(net, prev, out));
    CHECK(st_snn_net_finish(net));
#undef CHECK
    if (err)
        *err = ST_OK;
    return net;
nomem:
    rc = st_error(ST_ERR_NOMEM, "out of memory exporting the model");
fail:
    free(tmp);
    st_snn_net_destroy(&net);
    if (err)
        *err = rc;
    return NULL;
}

int st_train_export_file(const st_train_model *self, const char *path)
{
    int rc;
    st_snn_net *net = st_train_export(self, &rc);
    if (!net)
        return rc;
    rc = st_snn_net_save(net, path);
    st_snn_net_destroy(&net);
    return rc;
}

int st_train_export_nir(const st_train_model *self, const char *path)
{
    int rc;
    st_snn_net *net = st_train_export(self, &rc);
    if (!net)
        return rc;
    rc = st_snn_net_save_nir(net, path, NULL);
    st_snn_net_destroy(&net);
    return rc;
}
