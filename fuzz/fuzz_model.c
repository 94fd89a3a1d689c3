/*  fuzz/fuzz_model.c - libFuzzer target for our own model container
    (snn/model_file.c, docs/MODEL_FORMAT.md) and the loaders built on it:
    st_tensor_file_load_mem, st_snn_net_load_mem (then a state and a few
    steps of what loaded), st_lm_model_load and st_asr_load (through an
    in-memory file: both take a path).

    Seeds: fuzz/corpus/model (a small net of each node kind, a tensor file
    of every dtype, a tiny language model, written by fuzz/corpus.c).

    The container is checksummed (header, index, each tensor), so nearly
    every mutation would stop at a CRC and the loaders behind it would never
    see a damaged table. The raw input goes to st_tensor_file_load_mem (the
    checksum paths); then a copy with every CRC recomputed where the
    header and index allow (repair_crcs) goes to every loader, which is
    what an attacker who writes a file, rather than damages one, sends.
    Touches: a memfd per input.
*/
#include "fuzz.h"
#include "snn/asr.h"
#include "snn/lm.h"
#include "snn/snn.h"

#include <stdlib.h>
#include <string.h>

static uint64_t rd(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

/* Recomputes the tensors' CRCs (where the entry and its data lie inside
   the buffer), then the index CRC and the header CRC (docs/MODEL_FORMAT.md). */
static void repair_crcs(uint8_t *b, size_t len)
{
    if (len < 64 || memcmp(b, "STNN", 4))
        return;
    uint64_t n = rd(b + 12, 4), index_len = rd(b + 32, 8), data_offset = rd(b + 40, 8);
    size_t end = index_len <= len - 64 ? 64 + (size_t)index_len : len;
    size_t pos = 64;
    for (uint64_t k = 0; k < n && k < 4096 && pos + 24 <= end; k++) {
        unsigned name_len = (unsigned)rd(b + pos, 2), ndim = b[pos + 3];
        uint64_t off = rd(b + pos + 8, 8), nbytes = rd(b + pos + 16, 8);
        if (ndim > 8)
            break;
        if (data_offset <= len && off <= len - data_offset && nbytes <= len - data_offset - off)
            wr32(b + pos + 4, st_crc32(0, b + data_offset + off, (size_t)nbytes));
        pos += 24 + 8 * (size_t)ndim + (((size_t)name_len + 1 + 7) & ~(size_t)7);
    }
    wr32(b + 56, st_crc32(0, b + 64, end - 64));
    wr32(b + 60, st_crc32(0, b, 60));
}

static void walk_tensors(const st_tensor_file *f)
{
    size_t n = st_tensor_file_count(f);
    for (size_t k = 0; k < n; k++) {
        st_tensor t;
        if (st_tensor_file_at(f, k, &t))
            abort();
        if (t.nbytes != t.count * st_dtype_size(t.dtype) || t.ndim > ST_TENSOR_MAX_DIMS)
            abort();
        volatile unsigned char sink = 0;
        for (size_t i = 0; i < t.nbytes; i++)
            sink ^= ((const unsigned char *)t.data)[i];
        (void)sink;
        st_tensor again;
        if (st_tensor_file_find(f, t.name, &again) || again.data != t.data)
            abort();
    }
}

static void run_net(const st_snn_net *net)
{
    int err;
    st_snn_state *s = st_snn_state_new(net, &err);
    if (!s)
        return;
    size_t n_in = st_snn_net_input_len(net);
    float *in = calloc(n_in ? n_in : 1, sizeof *in);
    if (!in)
        abort();
    for (size_t i = 0; i < n_in; i++)
        in[i] = (float)(i % 3);
    for (int t = 0; t < 4; t++)
        st_snn_step(net, s, in);
    free(in);
    st_snn_state_destroy(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *raw, size_t size)
{
    st_fuzz_quiet();
    int err;
    st_tensor_file *f = st_tensor_file_load_mem(raw, size, &err);
    if (f) {
        walk_tensors(f);
        st_tensor_file_destroy(&f);
    } else if (err == ST_OK) {
        abort();
    }

    uint8_t *data = malloc(size ? size : 1);
    if (!data)
        abort();
    memcpy(data, raw, size);
    repair_crcs(data, size);
    f = st_tensor_file_load_mem(data, size, &err);
    if (f) {
        walk_tensors(f);
        st_tensor_file_destroy(&f);
    }

    st_snn_net *net = st_snn_net_load_mem(data, size, &err);
    if (net) {
        run_net(net);
        st_snn_net_destroy(&net);
    }

    char path[32];
    int fd = st_fuzz_memfile(data, size, path, sizeof path);
    free(data);
    if (fd < 0)
        return 0;
    st_lm_model *lm = st_lm_model_load(path, &err);
    st_lm_model_destroy(&lm);
    st_asr *asr = st_asr_load(path, &err);
    st_asr_destroy(&asr);
    close(fd);
    return 0;
}
