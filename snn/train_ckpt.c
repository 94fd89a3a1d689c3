/*  snn/train_ckpt.c - checkpoints and the training log.

    A checkpoint is a tensor file (snn/snn.h's versioned, checksummed
    container) of kind "snn-train": "param/<name>" for every parameter
    tensor, "adam/m/<name>" and "adam/v/<name>" for Adam's moments,
    "tau/<name>" for trained rates (the engine's tau_*_inv, from which the
    rate is recomputed exactly as it was), "counters" (u64: optimizer steps,
    epochs done) and the configuration text under "config". Everything a run
    needs to continue bit for bit is there; the data and the epoch order are
    functions of the configuration's seeds.

    Tuned for models of up to a few million parameters, written once an
    epoch: one file, written whole through a temporary and renamed.
*/
#include "train_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tname(char *buf, size_t cap, const char *prefix, const char *name)
{
    snprintf(buf, cap, "%s%s", prefix, name);
}

int st_train_save(const st_train *self, const char *path, const char *config_text)
{
    int rc;
    st_train_model *m = st_train_get_model(self);
    float *m1, *m2;
    uint64_t *steps;
    uint32_t *epochs;
    tr_train_state((st_train *)self, &m1, &m2, &steps, &epochs);
    st_tensor_file *f = st_tensor_file_new("snn-train", &rc);
    if (!f)
        return rc;
    char name[96];
    for (size_t k = 0; k < m->n_tensors && rc == ST_OK; k++) {
        const tr_tensor *t = &m->tensors[k];
        uint64_t dims[3] = {t->dims[0], t->dims[1], t->dims[2]};
        tname(name, sizeof name, "param/", t->name);
        rc = st_tensor_file_add(f, name, ST_DTYPE_F32, t->ndim, dims, m->params + t->offset);
        tname(name, sizeof name, "adam/m/", t->name);
        if (rc == ST_OK)
            rc = st_tensor_file_add(f, name, ST_DTYPE_F32, t->ndim, dims, m1 + t->offset);
        tname(name, sizeof name, "adam/v/", t->name);
        if (rc == ST_OK)
            rc = st_tensor_file_add(f, name, ST_DTYPE_F32, t->ndim, dims, m2 + t->offset);
        const float *tau = tr_tensor_tau(m, k);
        tname(name, sizeof name, "tau/", t->name);
        if (rc == ST_OK && tau)
            rc = st_tensor_file_add(f, name, ST_DTYPE_F32, t->ndim, dims, tau);
    }
    const uint64_t counters[2] = {*steps, *epochs};
    if (rc == ST_OK)
        rc = st_tensor_file_add(f, "counters", ST_DTYPE_I64, 1, (const uint64_t[1]){2}, counters);
    if (rc == ST_OK && config_text)
        rc = st_tensor_file_add_string(f, "config", config_text);
    if (rc == ST_OK)
        rc = st_tensor_file_save(f, path);
    st_tensor_file_destroy(&f);
    return rc;
}

static int expect_like(const st_tensor_file *f, const char *name, const tr_tensor *t,
                       st_tensor *out)
{
    uint64_t dims[3] = {t->dims[0], t->dims[1], t->dims[2]};
    int rc = st_tensor_file_expect(f, name, ST_DTYPE_F32, t->ndim, dims, out);
    if (rc != ST_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", st_errmsg()); /* st_error writes where it points */
        return st_error(rc, "%s (a checkpoint of another network?)", why);
    }
    return ST_OK;
}

int st_train_load(st_train *self, const char *path)
{
    int rc;
    st_train_model *m = st_train_get_model(self);
    st_tensor_file *f = st_tensor_file_load(path, &rc);
    if (!f)
        return rc;
    if (strcmp(st_tensor_file_kind(f), "snn-train")) {
        rc = st_error(ST_ERR_FORMAT, "'%s' holds '%s', not a training checkpoint ('snn-train')",
                      path, st_tensor_file_kind(f));
        st_tensor_file_destroy(&f);
        return rc;
    }
    /* check everything before changing anything */
    st_tensor t;
    char name[96];
    for (size_t k = 0; k < m->n_tensors && rc == ST_OK; k++) {
        const char *pre[4] = {"param/", "adam/m/", "adam/v/", "tau/"};
        for (int j = 0; j < (tr_tensor_tau(m, k) ? 4 : 3) && rc == ST_OK; j++) {
            tname(name, sizeof name, pre[j], m->tensors[k].name);
            rc = expect_like(f, name, &m->tensors[k], &t);
        }
    }
    st_tensor cnt;
    if (rc == ST_OK)
        rc = st_tensor_file_expect(f, "counters", ST_DTYPE_I64, 1, (const uint64_t[1]){2}, &cnt);
    if (rc != ST_OK) {
        st_tensor_file_destroy(&f);
        return rc;
    }
    float *m1, *m2;
    uint64_t *steps;
    uint32_t *epochs;
    tr_train_state(self, &m1, &m2, &steps, &epochs);
    for (size_t k = 0; k < m->n_tensors; k++) {
        const tr_tensor *tt = &m->tensors[k];
        const size_t bytes = tt->count * sizeof(float);
        tname(name, sizeof name, "param/", tt->name);
        st_tensor_file_find(f, name, &t);
        memcpy(m->params + tt->offset, t.data, bytes);
        tname(name, sizeof name, "adam/m/", tt->name);
        st_tensor_file_find(f, name, &t);
        memcpy(m1 + tt->offset, t.data, bytes);
        tname(name, sizeof name, "adam/v/", tt->name);
        st_tensor_file_find(f, name, &t);
        memcpy(m2 + tt->offset, t.data, bytes);
        if (tr_tensor_tau(m, k)) {
            tname(name, sizeof name, "tau/", tt->name);
            st_tensor_file_find(f, name, &t);
            tr_tensor_set_tau(m, k, t.data);
        }
    }
    const uint64_t *c = cnt.data;
    *steps = c[0];
    *epochs = (uint32_t)c[1];
    st_tensor_file_destroy(&f);
    return ST_OK;
}

int st_train_checkpoint_config(const char *path, char *buf, size_t cap)
{
    int rc;
    st_tensor_file *f = st_tensor_file_load(path, &rc);
    if (!f)
        return rc;
    rc = st_tensor_file_string(f, "config", buf, cap);
    st_tensor_file_destroy(&f);
    return rc;
}

/* ---- the log ---------------------------------------------------------------------------- */

int st_train_log_append(const char *path, const st_train_log_row *row)
{
    FILE *f = fopen(path, "a");
    if (!f)
        return st_error(ST_ERR_IO, "cannot open the training log '%s' to append", path);
    fseek(f, 0, SEEK_END);
    if (ftell(f) == 0)
        fprintf(f, "epoch,steps,lr,train_loss,train_acc,train_rate,grad_norm,valid_loss,"
                   "valid_acc,valid_rate,seconds\n");
    const bool v = row->valid.samples > 0;
    fprintf(f, "%u,%llu,%.6g,%.6f,%.4f,%.5f,%.5g,", row->epoch, (unsigned long long)row->steps,
            row->lr, row->train.loss, row->train.accuracy, row->train.rate, row->train.grad_norm);
    if (v)
        fprintf(f, "%.6f,%.4f,%.5f,", row->valid.loss, row->valid.accuracy, row->valid.rate);
    else
        fprintf(f, ",,,");
    fprintf(f, "%.3f\n", row->seconds);
    if (fclose(f) != 0)
        return st_error(ST_ERR_IO, "cannot write the training log '%s'", path);
    return ST_OK;
}
