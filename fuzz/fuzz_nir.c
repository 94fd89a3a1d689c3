/*  fuzz/fuzz_nir.c - libFuzzer target for the NIR importer (snn/nir.c):
    st_snn_net_load_nir_mem on graphs the input describes, then a state and
    a few steps of what loaded.

    Why structure-aware: libhdf5 trusts an HDF5 file's internal metadata
    (snn.h says so: import untrusted files in a separate process), so raw
    mutated bytes would fuzz libhdf5, not us. Instead the input is read as a
    small program that builds a well-formed HDF5 image in memory (the core
    driver, no file) holding any NIR graph: node names and types from the
    importer's vocabulary plus a few it does not know, parameters of any
    name, rank (0 to 3), extent and value (NaN, infinities, huge, negative,
    text where numbers belong), edges between any names (dotted, missing,
    self loops), one level of nesting. Every way a hostile or broken
    exporter can shape a graph reaches the importer's checks.

    Input (fuzz/corpus/nir, written by fuzz/corpus.c): byte stream read by
    take(); running out of bytes reads zeros, so every input is a graph.
    Touches: memory only.
*/
#include "fuzz.h"
#include "snn/snn.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p;
    size_t n;
} src;

static unsigned take(src *s)
{
    if (!s->n)
        return 0;
    s->n--;
    return *s->p++;
}

static const char *const TYPES[] = {
    "Input", "Output", "Affine", "Linear", "Scale", "LI", "LIF", "IF", "I", "CubaLI",
    "CubaLIF", "Threshold", "Delay", "Conv1d", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d",
    "NIRGraph", "Bogus", ""};
#define N_TYPES (sizeof TYPES / sizeof *TYPES)

static const char *const PARAMS[] = {
    "weight", "bias", "tau", "r", "v_leak", "v_threshold", "v_reset", "tau_mem", "tau_syn",
    "w_in", "scale", "threshold", "delay", "shape", "input_shape", "output_shape", "kernel_size",
    "stride", "padding", "dilation", "groups", "type", "edges", "nodes", "x"};
#define N_PARAMS (sizeof PARAMS / sizeof *PARAMS)

static const char *const NAMES[] = {"input", "output", "a", "b", "c", "g", "lif", "lif1",
                                    "g.input", "g.output", "g.a", "missing", "a.b.c", ""};
#define N_NAMES (sizeof NAMES / sizeof *NAMES)

static double value(src *s)
{
    unsigned b = take(s);
    switch (b >> 5) {
    case 0: return NAN;
    case 1: return (b & 1) ? INFINITY : -INFINITY;
    case 2: return (b & 1) ? 1e300 : -1e-300;
    case 3: return (double)(int)((b & 31) - 16) * 0.25;
    default: return (double)(b & 31) * 1e-3 + (double)(take(s) % 8);
    }
}

static hid_t str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static void write_string(hid_t loc, const char *name, const char *text)
{
    hid_t t = str_type(), sp = H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
        H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text);
        H5Dclose(d);
    }
    H5Sclose(sp);
    H5Tclose(t);
}

static void write_param(hid_t g, const char *name, src *s)
{
    unsigned b = take(s);
    if ((b & 15) == 15) { /* text where a number belongs */
        write_string(g, name, NAMES[take(s) % N_NAMES]);
        return;
    }
    int rank = (int)(b & 3);
    hsize_t dims[3] = {1, 1, 1};
    size_t count = 1;
    for (int i = 0; i < rank; i++) {
        dims[i] = take(s) % 9; /* zero extents too */
        count *= dims[i];
    }
    double *v = malloc((count ? count : 1) * sizeof *v);
    if (!v)
        abort();
    double fill = value(s);
    for (size_t i = 0; i < count; i++)
        v[i] = (b & 16) ? value(s) : fill;
    hid_t sp = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t type = (b & 32) ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
    hid_t d = H5Dcreate2(g, name, (b & 32) ? H5T_STD_I64LE : H5T_IEEE_F64LE, sp, H5P_DEFAULT,
                         H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
        if (type == H5T_NATIVE_INT64) {
            int64_t *iv = malloc((count ? count : 1) * sizeof *iv);
            if (!iv)
                abort();
            for (size_t i = 0; i < count; i++)
                iv[i] = isfinite(v[i]) && fabs(v[i]) < 9e18 ? (int64_t)v[i] : INT64_MIN;
            H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, iv);
            free(iv);
        } else {
            H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        }
        H5Dclose(d);
    }
    H5Sclose(sp);
    free(v);
}

static void write_edges(hid_t g, src *s)
{
    unsigned n = take(s) % 12;
    if (n == 11) /* no edges dataset at all */
        return;
    const char **e = calloc(2 * (n ? n : 1), sizeof *e);
    if (!e)
        abort();
    for (unsigned i = 0; i < 2 * n; i++)
        e[i] = NAMES[take(s) % N_NAMES];
    hsize_t dims[2] = {n, 2};
    hid_t t = str_type(), sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(g, "edges", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
        if (n)
            H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, e);
        H5Dclose(d);
    }
    H5Sclose(sp);
    H5Tclose(t);
    free(e);
}

/* A graph group: type, nodes (each with type and parameters), edges. */
static void write_graph(hid_t g, src *s, int depth)
{
    write_string(g, "type", "NIRGraph");
    hid_t nodes = H5Gcreate2(g, "nodes", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    unsigned n = 1 + take(s) % 7;
    for (unsigned k = 0; k < n; k++) {
        const char *name = NAMES[take(s) % N_NAMES];
        if (!*name || H5Lexists(nodes, name, H5P_DEFAULT) > 0)
            continue; /* HDF5 itself refuses an empty link name */
        const char *type = TYPES[take(s) % N_TYPES];
        hid_t nd = H5Gcreate2(nodes, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (nd < 0)
            continue;
        if (!strcmp(type, "NIRGraph") && depth < 1) {
            write_graph(nd, s, depth + 1);
        } else {
            write_string(nd, "type", type);
            unsigned np = take(s) % 6;
            for (unsigned i = 0; i < np; i++) {
                const char *pn = PARAMS[take(s) % N_PARAMS];
                if (H5Lexists(nd, pn, H5P_DEFAULT) <= 0)
                    write_param(nd, pn, s);
            }
        }
        H5Gclose(nd);
    }
    H5Gclose(nodes);
    write_edges(g, s);
}

/* The HDF5 image of the graph, in a new buffer (*len bytes); NULL on failure. */
static void *build(src *s, size_t *len)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 1 << 16, 0);
    hid_t f = H5Fcreate("fuzz-nir.h5", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return NULL;
    write_string(f, "version", (take(s) & 1) ? "1.0.0" : "0.2.0");
    hid_t g = H5Gcreate2(f, "node", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    write_graph(g, s, 0);
    H5Gclose(g);
    H5Fflush(f, H5F_SCOPE_GLOBAL);
    void *buf = NULL;
    ssize_t n = H5Fget_file_image(f, NULL, 0);
    if (n > 0 && (buf = malloc((size_t)n)) && H5Fget_file_image(f, buf, (size_t)n) == n)
        *len = (size_t)n;
    else
        free(buf), buf = NULL;
    H5Fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_fuzz_quiet();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    src s = {data, size};
    st_nir_params params = st_nir_default_params();
    unsigned b = take(&s);
    params.convention = (st_nir_convention)(b % ST_NIR_N_CONVENTIONS);
    params.reset = (st_nir_reset)((b >> 2) % 3);
    params.dt_s = (b & 0x80) ? 1e-3 : 1e-4;
    size_t len = 0;
    void *img = build(&s, &len);
    if (!img)
        return 0;
    int err;
    st_snn_net *net = st_snn_net_load_nir_mem(img, len, &params, &err);
    free(img);
    if (!net) {
        if (err == ST_OK)
            abort();
        return 0;
    }
    st_snn_state *st = st_snn_state_new(net, &err);
    if (st) {
        size_t n_in = st_snn_net_input_len(net);
        float *in = calloc(n_in ? n_in : 1, sizeof *in);
        if (!in)
            abort();
        for (size_t i = 0; i < n_in; i++)
            in[i] = 1.0f;
        for (int t = 0; t < 4; t++)
            st_snn_step(net, st, in);
        free(in);
        st_snn_state_destroy(&st);
    }
    st_snn_net_destroy(&net);
    return 0;
}
