/*  tests/test_snn_files.c - suite `snn_files`: our model format and NIR.

    The STNN container and networks in it: round trips that step bit for bit
    like the saved net, a checked-in v1 file the writer must still produce
    byte for byte (tests/fixtures/snn_tiny_v1.stm; rewrite it with
    ST_WRITE_FIXTURES=1 only when the format version changes), every
    corruption class refused with a message that names the file and the
    place (each single-byte flip, each truncation, wrong magic, a future
    version, shapes that disagree), and a 1 MB model loaded. NIR: every file
    in ../shared/data/snn/nir/good loads and runs, the NIR paper's LIF spikes
    at 460, 510, 710, 760 with Norse's v (and Rockpool's and the exact
    solver's under their conventions), the bad files are refused naming the
    missing node, malformed HDF5 is refused without a crash, export and
    import give back a net that steps the same, the exported layout checked
    with h5py, and the `snn run`, `convert` and `info` commands.

    Touches: temporary files only (st_test_tmpfile); reads the shared data
    and tests/fixtures; runs build/spiketalk ($ST_CLI) and /usr/bin/python3.
*/
#include "testutil.h"

#include "snn/snn.h"

#include <hdf5.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define FIXTURE "tests/fixtures/snn_tiny_v1.stm"

/* ---- helpers --------------------------------------------------------------- */

static uint32_t rng = 2463534242u;

static float frand(float lo, float hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return lo + (hi - lo) * (float)((rng >> 8) * (1.0 / 16777216.0));
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(buf, 1, n > 0 ? (size_t)n : 0, f);
    fclose(f);
    return buf;
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
    fclose(f);
}

static bool contains(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

/* Steps two nets side by side on the same inputs (a mix of spikes and
   real values) and counts the steps where any node's output differs by
   more than tol (0: bit for bit). Nodes are matched by name. */
static int compare_nets(const st_snn_net *a, const st_snn_net *b, int steps, float tol)
{
    const size_t n_in = st_snn_net_input_len(a);
    CU_ASSERT_EQUAL_FATAL(n_in, st_snn_net_input_len(b));
    st_snn_state *sa = st_snn_state_new(a, NULL), *sb = st_snn_state_new(b, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sa);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sb);
    float *x = malloc((n_in ? n_in : 1) * sizeof *x);
    int bad = 0;
    for (int t = 0; t < steps; t++) {
        for (size_t k = 0; k < n_in; k++)
            x[k] = t % 3 == 0 ? (frand(0, 1) < 0.3f) : frand(-0.5f, 2.0f);
        st_snn_step(a, sa, x);
        st_snn_step(b, sb, x);
        bool same = true;
        for (size_t k = 0; k < st_snn_net_node_count(a); k++) {
            st_snn_node_info ia;
            st_snn_net_node_info(a, (int)k, &ia);
            const int kb = st_snn_net_find(b, ia.name);
            if (kb < 0)
                continue; /* only nodes both have */
            size_t na, nb;
            const float *ya = st_snn_state_output(sa, (int)k, &na);
            const float *yb = st_snn_state_output(sb, kb, &nb);
            if (na != nb) {
                same = false;
                continue;
            }
            for (size_t j = 0; j < na; j++)
                if (tol == 0 ? memcmp(&ya[j], &yb[j], sizeof *ya) != 0
                             : !(fabsf(ya[j] - yb[j]) <= tol))
                    same = false;
        }
        bad += !same;
    }
    free(x);
    st_snn_state_destroy(&sa);
    st_snn_state_destroy(&sb);
    return bad;
}

/* A small net with one node of most kinds, a recurrent loop and
   per-neuron parameters: the fixture, and the round trips. */
static st_snn_net *build_tiny_gain(float g)
{
    st_snn_net *net = st_snn_net_new(NULL);
    float w[4 * 3] = {0.5f, -0.25f, 1.0f, 0.75f, 0.125f, -0.5f,
                      1.5f, 0.25f,  0.0f, -1.0f, 0.5f,   0.25f};
    for (size_t k = 0; k < 12; k++)
        w[k] *= g;
    const float bias[4] = {0.1f, 0.0f, -0.1f, 0.2f};
    int in = st_snn_net_add_input(net, "in", 3);
    int fc = st_snn_net_add_dense(net, "fc", 4, 3, w, bias);
    st_snn_neuron_params p[4];
    for (int k = 0; k < 4; k++) {
        p[k] = st_snn_neuron_default_params(ST_SNN_CUBALIF);
        p[k].dt = 1e-3;
        p[k].v_th = 0.25f + 0.125f * (float)k;
        p[k].w_in = 2.0f;
    }
    int lif = st_snn_net_add_neurons_each(net, "lif", p, 4);
    int rec = st_snn_net_add_scale(net, "rec", 4, (const float[]){-0.5f, 0.25f, -0.5f, 0.25f});
    int dly = st_snn_net_add_delay(net, "dly", 4, (const uint32_t[]){0, 1, 2, 3});
    const uint32_t row_ptr[3] = {0, 2, 3}, col[3] = {0, 3, 2};
    const float val[3] = {1.0f, -0.5f, 0.75f};
    int sp = st_snn_net_add_sparse(net, "sp", 2, 4, row_ptr, col, val, NULL);
    st_snn_neuron_params li = st_snn_neuron_default_params(ST_SNN_LIBOX);
    li.dt = 1e-3;
    int leak = st_snn_net_add_neurons(net, "leak", &li, 2);
    int out = st_snn_net_add_output(net, "out", 2);
    st_snn_net_connect(net, in, fc);
    st_snn_net_connect(net, fc, lif);
    st_snn_net_connect(net, rec, lif);
    st_snn_net_connect(net, lif, rec);
    st_snn_net_connect(net, lif, dly);
    st_snn_net_connect(net, dly, sp);
    st_snn_net_connect(net, sp, leak);
    st_snn_net_connect(net, leak, out);
    CU_ASSERT_EQUAL(st_snn_net_finish(net), ST_OK);
    return net;
}

static st_snn_net *build_tiny(void)
{
    return build_tiny_gain(1.0f);
}

/* Every node kind, several neuron models, a conv and a pool, a threshold
   and an output that feeds on. */
static st_snn_net *build_all_kinds(bool nir_only)
{
    st_snn_net *net = st_snn_net_new(NULL);
    const uint32_t C = 2, H = 4, W = 5;
    int in = st_snn_net_add_input(net, "image", C * H * W);
    int in2 = st_snn_net_add_input(net, "pulse", 3);
    st_snn_conv_shape c = {.in_channels = C, .out_channels = 3, .groups = 1, .height = H,
                           .width = W, .kernel_h = 3, .kernel_w = 3, .stride_h = 1,
                           .stride_w = 2, .padding_h = 1, .padding_w = 1, .dilation_h = 1,
                           .dilation_w = 1};
    float cw[3 * 2 * 3 * 3], cb[3] = {0.1f, -0.2f, 0.05f};
    for (size_t k = 0; k < sizeof cw / sizeof cw[0]; k++)
        cw[k] = frand(-0.6f, 0.6f);
    int conv = st_snn_net_add_conv(net, "conv", &c, cw, cb);
    const uint32_t oh = st_snn_conv_out_h(&c), ow = st_snn_conv_out_w(&c);
    const size_t n_conv = 3u * oh * ow;
    st_snn_neuron_params iaf = st_snn_neuron_default_params(ST_SNN_IAF);
    iaf.v_th = 0.4f;
    int if1 = st_snn_net_add_neurons(net, "if1", &iaf, n_conv);
    int pool = st_snn_net_add_pool2d(net, "pool", 3, oh, ow, 2, 2, 2, 2, 0, 0, false);
    st_snn_node_info pi;
    st_snn_net_node_info(net, pool, &pi);
    const size_t n_pool = pi.n_out;
    /* 1-D conv over the pooled map seen as one channel */
    st_snn_conv_shape c1 = st_snn_conv_1d(1, 2, (uint32_t)n_pool, 2);
    float c1w[4] = {0.5f, -0.25f, 0.75f, 0.5f};
    int conv1 = st_snn_net_add_conv(net, "conv1d", &c1, c1w, NULL);
    st_snn_net_node_info(net, conv1, &pi);
    const size_t n_c1 = pi.n_out;
    float *dw = malloc(6 * n_c1 * sizeof *dw);
    for (size_t k = 0; k < 6 * n_c1; k++)
        dw[k] = frand(-0.8f, 0.8f);
    int fc = st_snn_net_add_dense(net, "fc", 6, n_c1, dw, (const float[]){0, 0.1f, 0, 0, 0.2f, 0});
    free(dw);
    st_snn_neuron_params lb = st_snn_neuron_default_params(ST_SNN_LIFBOX);
    lb.tau_mem_inv = 150;
    lb.v_leak = 0.05f;
    lb.v_th = 0.3f;
    int lifbox = st_snn_net_add_neurons(net, "lifbox", &lb, 6);
    st_snn_neuron_params cl = st_snn_neuron_default_params(ST_SNN_CUBALIF);
    cl.tau_syn_inv = 300;
    cl.tau_mem_inv = 120;
    cl.w_in = 1.5f;
    cl.r = 0.8f;
    cl.v_th = 0.2f;
    cl.v_reset = -0.1f;
    int cuba = st_snn_net_add_neurons(net, "cuba", &cl, 6);
    int wrec = st_snn_net_add_dense(net, "w_rec", 6, 6, (const float[36]){
        0, .2f, 0, -.3f, 0, 0, .1f, 0, 0, 0, .4f, 0, 0, 0, 0, .2f, 0, -.1f,
        .3f, 0, 0, 0, 0, 0, 0, .2f, 0, 0, 0, .3f, -.2f, 0, .1f, 0, 0, 0}, NULL);
    int sc = st_snn_net_add_scale(net, "scale", 6, (const float[]){1, 2, 0.5f, -1, 1.5f, 1});
    int th = st_snn_net_add_threshold(net, "thr", 6, (const float[]){0.1f, 0.2f, 0, 0.3f, 0.1f, 0});
    int dl = st_snn_net_add_delay(net, "delay", 6, (const uint32_t[]){0, 1, 2, 1, 0, 3});
    st_snn_neuron_params lbx = st_snn_neuron_default_params(ST_SNN_LIBOX);
    lbx.tau_mem_inv = 80;
    int libox = st_snn_net_add_neurons(net, "libox", &lbx, 6);
    st_snn_neuron_params ig = st_snn_neuron_default_params(ST_SNN_INTEGRATOR);
    int integ = st_snn_net_add_neurons(net, "integ", &ig, 3);
    st_snn_neuron_params cli = st_snn_neuron_default_params(ST_SNN_CUBALI);
    cli.w_in = 0.5f;
    int cubali = st_snn_net_add_neurons(net, "cubali", &cli, 3);
    const uint32_t rp[4] = {0, 2, 3, 5}, col[5] = {0, 5, 2, 1, 1};
    const float val[5] = {0.5f, -0.5f, 1, 0.25f, 0.25f};
    int sp = st_snn_net_add_sparse(net, "sparse", 3, 6, rp, col, val, (const float[]){0, 0.1f, 0});
    int mid = st_snn_net_add_output(net, "mid", 3);
    int out = st_snn_net_add_output(net, "out", 3);
    int lsnn = -1;
    if (!nir_only) {
        st_snn_neuron_params ls = st_snn_neuron_default_params(ST_SNN_LSNN);
        ls.reset = ST_SNN_RESET_SUBTRACT;
        lsnn = st_snn_net_add_neurons(net, "lsnn", &ls, 3);
    }
    st_snn_net_connect(net, in, conv);
    st_snn_net_connect(net, conv, if1);
    st_snn_net_connect(net, if1, pool);
    st_snn_net_connect(net, pool, conv1);
    st_snn_net_connect(net, conv1, fc);
    st_snn_net_connect(net, fc, lifbox);
    st_snn_net_connect(net, lifbox, cuba);
    st_snn_net_connect(net, wrec, cuba);
    st_snn_net_connect(net, cuba, wrec);
    st_snn_net_connect(net, cuba, sc);
    st_snn_net_connect(net, sc, th);
    st_snn_net_connect(net, th, dl);
    st_snn_net_connect(net, dl, libox);
    st_snn_net_connect(net, libox, sp);
    st_snn_net_connect(net, sp, mid);
    st_snn_net_connect(net, mid, integ);
    st_snn_net_connect(net, in2, integ);
    st_snn_net_connect(net, integ, cubali);
    st_snn_net_connect(net, cubali, out);
    if (lsnn >= 0) {
        st_snn_net_connect(net, in2, lsnn);
        st_snn_net_connect(net, lsnn, out);
    }
    CU_ASSERT_EQUAL(st_snn_net_finish(net), ST_OK);
    return net;
}

/* ---- an ensemble as one net ------------------------------------------------------ */

/* Steps the nets a, c (may be NULL) and the ensemble e on the same random
   inputs; the worst difference over `steps` steps between e's "output" and
   a's node oa (c NULL) or the mean of a's and c's node oa. */
static double ensemble_gap(const st_snn_net *a, const char *oa, const st_snn_net *c,
                           const st_snn_net *e, int steps)
{
    st_snn_state *sa = st_snn_state_new(a, NULL), *se = st_snn_state_new(e, NULL);
    st_snn_state *sc = c ? st_snn_state_new(c, NULL) : NULL;
    const int ia = st_snn_net_find(a, oa), ie = st_snn_net_find(e, "output");
    const int ic = c ? st_snn_net_find(c, oa) : -1;
    CU_ASSERT_FATAL(sa && se && ia >= 0 && ie >= 0 && (!c || (sc && ic >= 0)));
    double worst = 0;
    float x[3];
    for (int t = 0; t < steps; t++) {
        for (size_t k = 0; k < 3; k++)
            x[k] = frand(-0.5f, 2.0f);
        st_snn_step(a, sa, x);
        st_snn_step(e, se, x);
        if (c)
            st_snn_step(c, sc, x);
        size_t na, ne, nc;
        const float *ya = st_snn_state_output(sa, ia, &na), *ye = st_snn_state_output(se, ie, &ne);
        const float *yc = c ? st_snn_state_output(sc, ic, &nc) : NULL;
        CU_ASSERT_EQUAL_FATAL(na, ne);
        for (size_t j = 0; j < na; j++) {
            const double want = c ? 0.5 * ((double)ya[j] + yc[j]) : ya[j];
            const double gap = fabs(ye[j] - want);
            worst = gap > worst ? gap : worst;
        }
    }
    st_snn_state_destroy(&sa);
    st_snn_state_destroy(&se);
    st_snn_state_destroy(&sc);
    return worst;
}

/* st_snn_net_ensemble: one member steps as it did alone, bit for bit; two
   copies of one net give its outputs exactly; two nets their mean; the
   ensemble survives the file; members that do not fit are refused; members
   on two inputs (st_snn_net_ensemble_inputs) each read theirs. */
static void test_net_ensemble(void)
{
    st_snn_net *a = build_tiny(), *b = build_tiny_gain(1.75f), *other = build_all_kinds(false);
    int err = 0;
    st_snn_net *e1 = st_snn_net_ensemble((const st_snn_net *[]){a}, 1, &err);
    st_snn_net *e2 = st_snn_net_ensemble((const st_snn_net *[]){a, a}, 2, &err);
    st_snn_net *eab = st_snn_net_ensemble((const st_snn_net *[]){a, b}, 2, &err);
    CU_ASSERT_FATAL(e1 && e2 && eab);
    CU_ASSERT_TRUE(st_snn_net_find(eab, "m1.lif") >= 0);
    CU_ASSERT_EQUAL(ensemble_gap(a, "out", NULL, e1, 200), 0.0);
    CU_ASSERT_EQUAL(ensemble_gap(a, "out", NULL, e2, 200), 0.0);
    CU_ASSERT(ensemble_gap(a, "out", b, eab, 200) < 1e-6);
    CU_ASSERT(ensemble_gap(a, "out", NULL, eab, 200) > 1e-3); /* b is not a */
    void *buf = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(st_snn_net_save_mem(eab, &buf, &len), ST_OK);
    st_snn_net *back = st_snn_net_load_mem(buf, len, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    CU_ASSERT_EQUAL(compare_nets(eab, back, 100, 0), 0);
    free(buf);
    st_snn_net_destroy(&back);
    CU_ASSERT_PTR_NULL(st_snn_net_ensemble((const st_snn_net *[]){a, other}, 2, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT(contains(st_errmsg(), "member 1"));
    CU_ASSERT_PTR_NULL(st_snn_net_ensemble((const st_snn_net *[]){a}, 0, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    /* members on two inputs: b reads the second, a the first */
    st_snn_net *e_in = st_snn_net_ensemble_inputs((const st_snn_net *[]){a, b}, 2,
                                                  (const int[]){0, 1}, 2, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e_in);
    CU_ASSERT_EQUAL(st_snn_net_input_len(e_in), 6);
    CU_ASSERT_TRUE(st_snn_net_find(e_in, "input1") >= 0);
    st_snn_state *sa = st_snn_state_new(a, NULL), *sb = st_snn_state_new(b, NULL);
    st_snn_state *se = st_snn_state_new(e_in, NULL);
    CU_ASSERT_FATAL(sa && sb && se);
    const int ia = st_snn_net_find(a, "out"), ie = st_snn_net_find(e_in, "output");
    double worst = 0, moved = 0;
    for (int t = 0; t < 200; t++) {
        float x[6];
        for (size_t k = 0; k < 6; k++)
            x[k] = frand(-0.5f, 2.0f);
        st_snn_step(a, sa, x);
        st_snn_step(b, sb, x + 3);
        st_snn_step(e_in, se, x);
        size_t n;
        const float *ya = st_snn_state_output(sa, ia, &n), *yb = st_snn_state_output(sb, ia, NULL);
        const float *ye = st_snn_state_output(se, ie, NULL);
        for (size_t j = 0; j < n; j++) {
            double gap = fabs(ye[j] - 0.5 * ((double)ya[j] + yb[j]));
            worst = gap > worst ? gap : worst;
            moved += fabs(ya[j] - yb[j]);
        }
    }
    CU_ASSERT(worst < 1e-6);
    CU_ASSERT(moved > 1e-3); /* a and b differ: the gap above tells them apart */
    st_snn_state_destroy(&sa);
    st_snn_state_destroy(&sb);
    st_snn_state_destroy(&se);
    st_snn_net_destroy(&e_in);
    /* an input that no member reads, a member on an input beyond them */
    CU_ASSERT_PTR_NULL(st_snn_net_ensemble_inputs((const st_snn_net *[]){a, b}, 2,
                                                  (const int[]){0, 0}, 2, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT(contains(st_errmsg(), "no member reads input 1"));
    CU_ASSERT_PTR_NULL(st_snn_net_ensemble_inputs((const st_snn_net *[]){a, b}, 2,
                                                  (const int[]){0, 2}, 2, &err));
    CU_ASSERT(contains(st_errmsg(), "member 1 reads input 2"));
    CU_ASSERT_PTR_NULL(st_snn_net_ensemble_inputs((const st_snn_net *[]){a}, 1, NULL, 2, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    st_snn_net_destroy(&e1);
    st_snn_net_destroy(&e2);
    st_snn_net_destroy(&eab);
    st_snn_net_destroy(&a);
    st_snn_net_destroy(&b);
    st_snn_net_destroy(&other);
}

/* ---- the container ------------------------------------------------------------- */

static void test_tensor_file_api(void)
{
    CU_ASSERT_EQUAL(st_crc32(0, "123456789", 9), 0xCBF43926u); /* the CRC-32 check value */
    CU_ASSERT_EQUAL(st_crc32(st_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    CU_ASSERT_EQUAL(st_dtype_size(ST_DTYPE_F64), 8);
    CU_ASSERT_STRING_EQUAL(st_dtype_name(ST_DTYPE_U8), "u8");
    CU_ASSERT_PTR_NULL(st_dtype_name((st_dtype)99));

    int err;
    CU_ASSERT_PTR_NULL(st_tensor_file_new("has space", &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NULL(st_tensor_file_new("much-too-long-a-kind", &err));
    st_tensor_file *f = st_tensor_file_new("spikegpt", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    const float emb[2][3] = {{1, 2, 3}, {4, 5, 6}};
    const int32_t ids[4] = {-1, 0, 7, 1 << 30};
    const uint8_t bytes[5] = {0, 1, 2, 254, 255};
    const double scalar = 0.125;
    CU_ASSERT_EQUAL(st_tensor_file_add(f, "emb", ST_DTYPE_F32, 2, (const uint64_t[]){2, 3}, emb),
                    ST_OK);
    CU_ASSERT_EQUAL(st_tensor_file_add(f, "ids", ST_DTYPE_I32, 1, (const uint64_t[]){4}, ids),
                    ST_OK);
    CU_ASSERT_EQUAL(st_tensor_file_add(f, "bytes", ST_DTYPE_U8, 1, (const uint64_t[]){5}, bytes),
                    ST_OK);
    CU_ASSERT_EQUAL(st_tensor_file_add(f, "lr", ST_DTYPE_F64, 0, NULL, &scalar), ST_OK);
    CU_ASSERT_EQUAL(st_tensor_file_add(f, "empty", ST_DTYPE_F32, 2, (const uint64_t[]){0, 4},
                                       NULL), ST_OK);
    CU_ASSERT_EQUAL(st_tensor_file_add_string(f, "vocab/name", "spikegpt-77"), ST_OK);
    /* misuse */
    CU_ASSERT_EQUAL(st_tensor_file_add(f, "emb", ST_DTYPE_F32, 1, (const uint64_t[]){1}, emb),
                    ST_ERR_INVALID);
    CU_ASSERT(contains(st_errmsg(), "already a tensor called 'emb'"));
    CU_ASSERT_EQUAL(st_tensor_file_add(f, "", ST_DTYPE_F32, 1, (const uint64_t[]){1}, emb),
                    ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_tensor_file_add(f, "x", (st_dtype)0, 1, (const uint64_t[]){1}, emb),
                    ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_tensor_file_add(f, "x", ST_DTYPE_F32, 9, (const uint64_t[9]){1}, emb),
                    ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_tensor_file_add(f, "x", ST_DTYPE_F32, 1, (const uint64_t[]){1}, NULL),
                    ST_ERR_INVALID);

    void *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(st_tensor_file_save_mem(f, &buf, &len), ST_OK);
    CU_ASSERT_EQUAL(len % 64, 0);
    st_tensor_file *g = st_tensor_file_load_mem(buf, len, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_STRING_EQUAL(st_tensor_file_kind(g), "spikegpt");
    CU_ASSERT_STRING_EQUAL(st_tensor_file_path(g), "<memory>");
    CU_ASSERT_EQUAL(st_tensor_file_count(g), 6);
    st_tensor t;
    CU_ASSERT_EQUAL(st_tensor_file_at(g, 0, &t), ST_OK);
    CU_ASSERT_STRING_EQUAL(t.name, "emb");
    CU_ASSERT_EQUAL(st_tensor_file_at(g, 6, &t), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_tensor_file_find(g, "emb", &t), ST_OK);
    CU_ASSERT(t.dtype == ST_DTYPE_F32 && t.ndim == 2 && t.dims[0] == 2 && t.dims[1] == 3);
    CU_ASSERT(t.count == 6 && t.nbytes == 24 && ((uintptr_t)t.data & 63) == 0);
    CU_ASSERT_EQUAL(memcmp(t.data, emb, sizeof emb), 0);
    CU_ASSERT_EQUAL(st_tensor_file_find(g, "ids", &t), ST_OK);
    CU_ASSERT_EQUAL(memcmp(t.data, ids, sizeof ids), 0);
    CU_ASSERT_EQUAL(st_tensor_file_find(g, "bytes", &t), ST_OK);
    CU_ASSERT_EQUAL(memcmp(t.data, bytes, sizeof bytes), 0);
    CU_ASSERT_EQUAL(st_tensor_file_find(g, "lr", &t), ST_OK);
    CU_ASSERT(t.ndim == 0 && t.count == 1 && *(const double *)t.data == 0.125);
    CU_ASSERT_EQUAL(st_tensor_file_find(g, "empty", &t), ST_OK);
    CU_ASSERT(t.count == 0 && t.nbytes == 0);
    CU_ASSERT_EQUAL(st_tensor_file_find(g, "nope", &t), ST_ERR_NOT_FOUND);
    char text[32];
    CU_ASSERT_EQUAL(st_tensor_file_string(g, "vocab/name", text, sizeof text), ST_OK);
    CU_ASSERT_STRING_EQUAL(text, "spikegpt-77");
    CU_ASSERT_EQUAL(st_tensor_file_string(g, "vocab/name", text, 5), ST_ERR_FORMAT);
    /* the typed lookup the model loaders use */
    CU_ASSERT_EQUAL(st_tensor_file_expect(g, "emb", ST_DTYPE_F32, 2, (const uint64_t[]){0, 3},
                                          &t), ST_OK);
    CU_ASSERT_EQUAL(st_tensor_file_expect(g, "emb", ST_DTYPE_F32, 2, (const uint64_t[]){2, 4},
                                          &t), ST_ERR_FORMAT);
    CU_ASSERT(contains(st_errmsg(), "'emb' is f32 [2, 3], expected f32 [2, 4]"));
    CU_ASSERT_EQUAL(st_tensor_file_expect(g, "ids", ST_DTYPE_F32, 1, (const uint64_t[]){4}, &t),
                    ST_ERR_FORMAT);
    CU_ASSERT_EQUAL(st_tensor_file_expect(g, "gone", ST_DTYPE_F32, 1, (const uint64_t[]){4}, &t),
                    ST_ERR_FORMAT);
    CU_ASSERT(contains(st_errmsg(), "'gone' is missing"));
    /* a loaded file takes more tensors and saves again */
    CU_ASSERT_EQUAL(st_tensor_file_add_string(g, "more", "yes"), ST_OK);
    void *buf2;
    size_t len2;
    CU_ASSERT_EQUAL(st_tensor_file_save_mem(g, &buf2, &len2), ST_OK);
    st_tensor_file *h = st_tensor_file_load_mem(buf2, len2, NULL);
    CU_ASSERT_PTR_NOT_NULL(h);
    CU_ASSERT_EQUAL(h ? st_tensor_file_count(h) : 0, 7);
    /* and to a file */
    char path[4096];
    st_test_tmpfile(path, sizeof path, "tensors.stm");
    CU_ASSERT_EQUAL(st_tensor_file_save(h, path), ST_OK);
    st_tensor_file *i = st_tensor_file_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL(i);
    CU_ASSERT_STRING_EQUAL(i ? st_tensor_file_path(i) : "", path);
    CU_ASSERT_EQUAL(st_tensor_file_save(h, "/nonexistent-dir/x.stm"), ST_ERR_IO);
    CU_ASSERT(contains(st_errmsg(), "/nonexistent-dir/x.stm"));
    CU_ASSERT_PTR_NULL(st_tensor_file_load("/nonexistent-dir/x.stm", &err));
    CU_ASSERT_EQUAL(err, ST_ERR_NOT_FOUND);
    st_tensor_file_destroy(&i);
    st_tensor_file_destroy(&h);
    st_tensor_file_destroy(&g);
    st_tensor_file_destroy(&f);
    CU_ASSERT_PTR_NULL(f);
    st_tensor_file_destroy(&f);
    st_tensor_file_destroy(NULL);
    free(buf);
    free(buf2);
}

/* ---- networks in the container ----------------------------------------------------- */

static void test_net_roundtrip(void)
{
    st_snn_net *net = build_all_kinds(false);
    void *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(st_snn_net_save_mem(net, &buf, &len), ST_OK);
    int err;
    st_snn_net *back = st_snn_net_load_mem(buf, len, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    CU_ASSERT_EQUAL(st_snn_net_node_count(back), st_snn_net_node_count(net));
    for (size_t k = 0; k < st_snn_net_node_count(net); k++) {
        st_snn_node_info a, b;
        st_snn_net_node_info(net, (int)k, &a);
        st_snn_net_node_info(back, (int)k, &b);
        CU_ASSERT_STRING_EQUAL(a.name, b.name);
        CU_ASSERT(a.kind == b.kind && a.n_in == b.n_in && a.n_out == b.n_out &&
                  a.n_weights == b.n_weights && a.order == b.order);
    }
    CU_ASSERT_EQUAL(compare_nets(net, back, 80, 0), 0);
    /* saving the loaded net gives the same bytes */
    void *buf2;
    size_t len2;
    CU_ASSERT_EQUAL(st_snn_net_save_mem(back, &buf2, &len2), ST_OK);
    CU_ASSERT(len2 == len && !memcmp(buf, buf2, len));
    free(buf2);
    /* through a file */
    char path[4096];
    st_test_tmpfile(path, sizeof path, "all_kinds.stm");
    CU_ASSERT_EQUAL(st_snn_net_save(net, path), ST_OK);
    st_snn_net *from_file = st_snn_net_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(from_file);
    CU_ASSERT_EQUAL(compare_nets(net, from_file, 40, 0), 0);
    /* an unfinished net is refused */
    st_snn_net *raw = st_snn_net_new(NULL);
    st_snn_net_add_input(raw, "x", 2);
    CU_ASSERT_EQUAL(st_snn_net_save_mem(raw, &buf2, &len2), ST_ERR_STATE);
    st_snn_net_destroy(&raw);
    st_snn_net_destroy(&from_file);
    st_snn_net_destroy(&back);
    st_snn_net_destroy(&net);
    free(buf);
}

/* Two networks and weights of its own in one file, under prefixes: how the
   recognizer or the VAD would keep theirs. */
static void test_net_embedded(void)
{
    st_snn_net *a = build_tiny(), *b = build_all_kinds(true);
    st_tensor_file *f = st_tensor_file_new("recognizer", NULL);
    CU_ASSERT_EQUAL(st_snn_net_to_file(a, f, "vad/"), ST_OK);
    CU_ASSERT_EQUAL(st_snn_net_to_file(b, f, "asr/"), ST_OK);
    CU_ASSERT_EQUAL(st_tensor_file_add_string(f, "labels", "yes,no"), ST_OK);
    void *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(st_tensor_file_save_mem(f, &buf, &len), ST_OK);
    st_tensor_file *g = st_tensor_file_load_mem(buf, len, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    int err;
    st_snn_net *a2 = st_snn_net_from_file(g, "vad/", &err);
    st_snn_net *b2 = st_snn_net_from_file(g, "asr/", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b2);
    CU_ASSERT_EQUAL(compare_nets(a, a2, 30, 0), 0);
    CU_ASSERT_EQUAL(compare_nets(b, b2, 30, 0), 0);
    CU_ASSERT_PTR_NULL(st_snn_net_from_file(g, "lm/", &err));
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT(contains(st_errmsg(), "'lm/net/format' is missing"));
    /* a file of another kind is not a network */
    CU_ASSERT_PTR_NULL(st_snn_net_load_mem(buf, len, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT(contains(st_errmsg(), "holds a 'recognizer', not a network"));
    st_snn_net_destroy(&a2);
    st_snn_net_destroy(&b2);
    st_tensor_file_destroy(&g);
    st_tensor_file_destroy(&f);
    st_snn_net_destroy(&a);
    st_snn_net_destroy(&b);
    free(buf);
}

/* The checked-in v1 file: this build must read it, step it like the net it
   was made from, and write exactly the same bytes. */
static void test_fixture_v1(void)
{
    st_snn_net *net = build_tiny();
    void *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(st_snn_net_save_mem(net, &buf, &len), ST_OK);
    if (getenv("ST_WRITE_FIXTURES"))
        spit(FIXTURE, buf, len);
    size_t flen = 0;
    unsigned char *fixture = slurp(FIXTURE, &flen);
    if (!fixture) {
        st_test_skip("snn_files:fixture_v1", "no " FIXTURE " (run from the repository root)");
    } else {
        CU_ASSERT(flen <= 4096); /* a few KB at most */
        CU_ASSERT(flen == len && !memcmp(fixture, buf, len));
        int err;
        st_snn_net *old = st_snn_net_load(FIXTURE, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(old);
        CU_ASSERT_EQUAL(compare_nets(net, old, 50, 0), 0);
        st_snn_net_destroy(&old);
    }
    free(fixture);
    free(buf);
    st_snn_net_destroy(&net);
}

/* ---- corruption ------------------------------------------------------------------ */

static void test_corrupt_every_byte(void)
{
    st_snn_net *net = build_tiny();
    unsigned char *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(st_snn_net_save_mem(net, (void **)&buf, &len), ST_OK);
    st_snn_net_destroy(&net);
    int accepted = 0, not_format = 0, unnamed = 0, header = 0, index = 0, tensor = 0;
    for (size_t k = 0; k < len; k++) {
        buf[k] ^= 0x10;
        int err = ST_OK;
        st_snn_net *bad = st_snn_net_load_mem(buf, len, &err);
        buf[k] ^= 0x10;
        accepted += bad != NULL;
        not_format += err != ST_ERR_FORMAT;
        const char *msg = st_errmsg();
        unnamed += !contains(msg, "model file '<memory>'");
        header += contains(msg, "header checksum");
        index += contains(msg, "index checksum");
        tensor += contains(msg, "checksum mismatch: the file is corrupt") &&
                  contains(msg, "tensor '");
        st_snn_net_destroy(&bad);
    }
    CU_ASSERT_EQUAL(accepted, 0);
    CU_ASSERT_EQUAL(not_format, 0);
    CU_ASSERT_EQUAL(unnamed, 0);
    CU_ASSERT(header > 0 && index > 0 && tensor > 0);
    free(buf);
}

static void test_truncated(void)
{
    st_snn_net *net = build_tiny();
    unsigned char *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(st_snn_net_save_mem(net, (void **)&buf, &len), ST_OK);
    st_snn_net_destroy(&net);
    int accepted = 0, not_format = 0, said = 0;
    for (size_t cut = 0; cut < len; cut++) {
        int err = ST_OK;
        st_snn_net *bad = st_snn_net_load_mem(buf, cut, &err);
        accepted += bad != NULL;
        not_format += err != ST_ERR_FORMAT;
        said += contains(st_errmsg(), "truncated");
        st_snn_net_destroy(&bad);
    }
    CU_ASSERT_EQUAL(accepted, 0);
    CU_ASSERT_EQUAL(not_format, 0);
    CU_ASSERT(said >= (int)len - 4); /* all but the cuts inside the magic */
    /* on disk, at a few offsets: the message names the path */
    char path[4096];
    st_test_tmpfile(path, sizeof path, "truncated.stm");
    const size_t cuts[] = {0, 3, 40, 64, 200, len / 2, len - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        spit(path, buf, cuts[k]);
        int err;
        CU_ASSERT_PTR_NULL(st_snn_net_load(path, &err));
        CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
        CU_ASSERT(contains(st_errmsg(), path));
    }
    /* and a byte too many */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    int err;
    CU_ASSERT_PTR_NULL(st_snn_net_load_mem(longer, len + 1, &err));
    CU_ASSERT(contains(st_errmsg(), "unexpected data after the end"));
    free(longer);
    free(buf);
}

static void test_magic_and_version(void)
{
    st_snn_net *net = build_tiny();
    unsigned char *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(st_snn_net_save_mem(net, (void **)&buf, &len), ST_OK);
    st_snn_net_destroy(&net);
    char path[4096];
    st_test_tmpfile(path, sizeof path, "magic.stm");
    int err;
    /* wrong magic */
    memcpy(buf, "GGUF", 4);
    spit(path, buf, len);
    CU_ASSERT_PTR_NULL(st_snn_net_load(path, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT(contains(st_errmsg(), path));
    CU_ASSERT(contains(st_errmsg(), "not a spiketalk model file: it starts with 'GGUF'"));
    memcpy(buf, "STNN", 4);
    /* a future version is refused before anything else is read */
    buf[4] = 2;
    spit(path, buf, len);
    CU_ASSERT_PTR_NULL(st_snn_net_load(path, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT(contains(st_errmsg(), "format version 2 (offset 4) is newer than this build"));
    buf[4] = 0;
    CU_ASSERT_PTR_NULL(st_snn_net_load_mem(buf, len, &err));
    CU_ASSERT(contains(st_errmsg(), "format version 0"));
    buf[4] = 1;
    /* not a file at all */
    CU_ASSERT_PTR_NULL(st_snn_net_load("/nonexistent-dir/model.stm", &err));
    CU_ASSERT_EQUAL(err, ST_ERR_NOT_FOUND);
    CU_ASSERT(contains(st_errmsg(), "/nonexistent-dir/model.stm"));
    CU_ASSERT_PTR_NULL(st_snn_net_load("/tmp", &err));
    CU_ASSERT_EQUAL(err, ST_ERR_IO);
    /* intact again */
    net = st_snn_net_load_mem(buf, len, &err);
    CU_ASSERT_PTR_NOT_NULL(net);
    st_snn_net_destroy(&net);
    free(buf);
}

/* Copies every tensor of `src` but `skip` into a new snn-net file, then
   adds `name` with the given shape of zeros. */
static void *rebuild(const st_tensor_file *src, const char *skip, const char *name,
                     st_dtype dtype, unsigned ndim, const uint64_t *dims, size_t *len)
{
    st_tensor_file *f = st_tensor_file_new("snn-net", NULL);
    for (size_t k = 0; k < st_tensor_file_count(src); k++) {
        st_tensor t;
        st_tensor_file_at(src, k, &t);
        if (strcmp(t.name, skip))
            st_tensor_file_add(f, t.name, t.dtype, t.ndim, t.dims, t.data);
    }
    if (name) {
        uint64_t n = 1;
        for (unsigned d = 0; d < ndim; d++)
            n *= dims[d];
        void *zeros = calloc(n ? n : 1, 8);
        st_tensor_file_add(f, name, dtype, ndim, dims, zeros);
        free(zeros);
    }
    void *buf = NULL;
    st_tensor_file_save_mem(f, &buf, len);
    st_tensor_file_destroy(&f);
    return buf;
}

static void expect_refused(void *buf, size_t len, const char *what)
{
    int err = ST_OK;
    st_snn_net *net = st_snn_net_load_mem(buf, len, &err);
    CU_ASSERT_PTR_NULL(net);
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    if (!contains(st_errmsg(), what))
        fprintf(stderr, "\n  expected '%s' in: %s\n", what, st_errmsg());
    CU_ASSERT(contains(st_errmsg(), what));
    st_snn_net_destroy(&net);
    free(buf);
}

static void test_mismatched_shapes(void)
{
    st_snn_net *net = build_tiny();
    st_tensor_file *f = st_tensor_file_new("snn-net", NULL);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_to_file(net, f, NULL), ST_OK);
    size_t len;
    void *buf;
    /* a weight of the wrong shape */
    buf = rebuild(f, "node/fc/weight", "node/fc/weight", ST_DTYPE_F32, 2,
                  (const uint64_t[]){4, 5}, &len);
    expect_refused(buf, len, "tensor 'node/fc/weight' is f32 [4, 5], expected f32 [4, 3]");
    /* of the wrong type */
    buf = rebuild(f, "node/fc/weight", "node/fc/weight", ST_DTYPE_F64, 2,
                  (const uint64_t[]){4, 3}, &len);
    expect_refused(buf, len, "'node/fc/weight' is f64 [4, 3]");
    /* missing */
    buf = rebuild(f, "node/dly/delay", NULL, 0, 0, NULL, &len);
    expect_refused(buf, len, "tensor 'node/dly/delay' is missing");
    /* a node table that disagrees with the weights: fc as 4 -> 4 */
    st_tensor t;
    st_tensor_file_find(f, "net/nodes", &t);
    uint32_t *nodes = malloc(t.nbytes);
    memcpy(nodes, t.data, t.nbytes);
    nodes[3 * 1 + 1] = 4;
    st_tensor_file *g = st_tensor_file_new("snn-net", NULL);
    for (size_t k = 0; k < st_tensor_file_count(f); k++) {
        st_tensor u;
        st_tensor_file_at(f, k, &u);
        st_tensor_file_add(g, u.name, u.dtype, u.ndim, u.dims,
                           strcmp(u.name, "net/nodes") ? u.data : nodes);
    }
    st_tensor_file_save_mem(g, &buf, &len);
    expect_refused(buf, len, "'node/fc/weight' is f32 [4, 3], expected f32 [4, 4]");
    st_tensor_file_destroy(&g);
    /* an edge between nodes of different sizes: in (3) -> lif (4) */
    st_tensor_file_find(f, "net/edges", &t);
    uint32_t *edges = malloc(t.nbytes);
    memcpy(edges, t.data, t.nbytes);
    edges[0] = 0; /* the first edge is in -> fc; make it in -> lif */
    edges[1] = (uint32_t)st_snn_net_find(net, "lif");
    g = st_tensor_file_new("snn-net", NULL);
    for (size_t k = 0; k < st_tensor_file_count(f); k++) {
        st_tensor u;
        st_tensor_file_at(f, k, &u);
        st_tensor_file_add(g, u.name, u.dtype, u.ndim, u.dims,
                           strcmp(u.name, "net/edges") ? u.data : edges);
    }
    st_tensor_file_save_mem(g, &buf, &len);
    expect_refused(buf, len, "'in' makes 3 values but 'lif' takes 4");
    st_tensor_file_destroy(&g);
    /* an edge to a node that does not exist */
    edges[1] = 99;
    g = st_tensor_file_new("snn-net", NULL);
    for (size_t k = 0; k < st_tensor_file_count(f); k++) {
        st_tensor u;
        st_tensor_file_at(f, k, &u);
        st_tensor_file_add(g, u.name, u.dtype, u.ndim, u.dims,
                           strcmp(u.name, "net/edges") ? u.data : edges);
    }
    st_tensor_file_save_mem(g, &buf, &len);
    expect_refused(buf, len, "names a node beyond the 8 there are");
    st_tensor_file_destroy(&g);
    /* neuron parameters of the wrong length */
    buf = rebuild(f, "node/lif/params", "node/lif/params", ST_DTYPE_F32, 2,
                  (const uint64_t[]){3, 13}, &len);
    expect_refused(buf, len, "'node/lif/params' is [3, 13]; expected [1 or 4, 13]");
    free(nodes);
    free(edges);
    st_tensor_file_destroy(&f);
    st_snn_net_destroy(&net);
}

/* 1 MB of weights: loads with one read (timing is printed by `spiketalk
   snn info`, not asserted here). */
static void test_load_1mb(void)
{
    const size_t n = 512;
    float *w = malloc(n * n * sizeof *w);
    for (size_t k = 0; k < n * n; k++)
        w[k] = frand(-0.1f, 0.1f);
    st_snn_net *net = st_snn_net_new(NULL);
    int in = st_snn_net_add_input(net, "in", n);
    int fc = st_snn_net_add_dense(net, "fc", n, n, w, NULL);
    st_snn_neuron_params p = st_snn_neuron_default_params(ST_SNN_LIF);
    int lif = st_snn_net_add_neurons(net, "lif", &p, n);
    int out = st_snn_net_add_output(net, "out", n);
    st_snn_net_connect(net, in, fc);
    st_snn_net_connect(net, fc, lif);
    st_snn_net_connect(net, lif, out);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
    free(w);
    char path[4096];
    st_test_tmpfile(path, sizeof path, "1mb.stm");
    CU_ASSERT_EQUAL_FATAL(st_snn_net_save(net, path), ST_OK);
    struct stat st;
    CU_ASSERT(stat(path, &st) == 0 && st.st_size > (off_t)(n * n * 4) &&
              st.st_size < (off_t)(n * n * 4 + 4096));
    int err;
    st_snn_net *back = st_snn_net_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    CU_ASSERT_EQUAL(compare_nets(net, back, 5, 0), 0);
    st_snn_net_destroy(&back);
    st_snn_net_destroy(&net);
}

/* ---- NIR: the shared files ----------------------------------------------------------- */

static const char *nir_dir(const char *test, const char *sub, char *buf, size_t cap)
{
    const char *data = st_test_shared_data();
    if (!data) {
        st_test_skip(test, "no shared data (../shared/data or $ST_SHARED_DATA): the NIR files "
                           "live in snn/nir/");
        return NULL;
    }
    snprintf(buf, cap, "%s/snn/nir/%s", data, sub);
    struct stat st;
    if (stat(buf, &st) != 0) {
        char why[512];
        snprintf(why, sizeof why, "%s is missing from the shared data", buf);
        st_test_skip(test, why);
        return NULL;
    }
    return buf;
}

static void test_nir_good_files(void)
{
    char dir[4096];
    if (!nir_dir("snn_files:nir_good_files", "good", dir, sizeof dir))
        return;
    DIR *d = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".nir"))
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int err;
        st_snn_net *net = st_snn_net_load_nir(path, NULL, &err);
        if (!net)
            fprintf(stderr, "\n  %s: %s\n", e->d_name, st_errmsg());
        CU_ASSERT_PTR_NOT_NULL(net);
        if (!net)
            continue;
        files++;
        /* a few steps of input; every output finite */
        st_snn_state *st = st_snn_state_new(net, NULL);
        const size_t n_in = st_snn_net_input_len(net);
        float *x = malloc(n_in * sizeof *x);
        bool finite = true, any_output = false;
        for (int t = 0; t < 8; t++) {
            for (size_t k = 0; k < n_in; k++)
                x[k] = (k + (size_t)t) % 4 == 0 ? 1.0f : 0.0f;
            st_snn_step(net, st, x);
            for (size_t k = 0; k < st_snn_net_node_count(net); k++) {
                st_snn_node_info info;
                st_snn_net_node_info(net, (int)k, &info);
                if (info.kind != ST_SNN_NODE_OUTPUT)
                    continue;
                any_output = true;
                const float *y = st_snn_state_output(st, (int)k, NULL);
                for (size_t j = 0; j < info.n_out; j++)
                    finite &= isfinite(y[j]);
            }
        }
        CU_ASSERT(finite && any_output);
        free(x);
        st_snn_state_destroy(&st);
        /* and through our own format, unchanged */
        void *buf;
        size_t len;
        CU_ASSERT_EQUAL(st_snn_net_save_mem(net, &buf, &len), ST_OK);
        st_snn_net *copy = st_snn_net_load_mem(buf, len, NULL);
        CU_ASSERT_PTR_NOT_NULL(copy);
        if (copy)
            CU_ASSERT_EQUAL(compare_nets(net, copy, 6, 0), 0);
        st_snn_net_destroy(&copy);
        free(buf);
        st_snn_net_destroy(&net);
    }
    closedir(d);
    CU_ASSERT(files >= 14);
}

typedef struct {
    int spikes[8];
    int n_spikes;
    int z_bad;
    double worst_v;         /* over all steps */
    double worst_v_before;  /* before the first spike of the reference */
} lif_run;

/* Runs a paper_01 graph on a reference CSV (input, v, spike) and compares. */
static bool run_paper_lif(const char *nir, const char *csv, st_nir_convention conv,
                          lif_run *r)
{
    st_nir_params p = st_nir_default_params();
    p.dt_s = 1e-4;
    p.convention = conv;
    int err;
    st_snn_net *net = st_snn_net_load_nir(nir, &p, &err);
    CU_ASSERT_PTR_NOT_NULL(net);
    FILE *f = fopen(csv, "r");
    CU_ASSERT_PTR_NOT_NULL(f);
    if (!net || !f) {
        if (f)
            fclose(f);
        st_snn_net_destroy(&net);
        return false;
    }
    int lif = -1;
    for (size_t k = 0; k < st_snn_net_node_count(net); k++)
        if (st_snn_net_neurons(net, (int)k))
            lif = (int)k;
    const int out = st_snn_net_find(net, "output");
    st_snn_state *st = st_snn_state_new(net, NULL);
    memset(r, 0, sizeof *r);
    double x, v, z;
    bool ref_spiked = false;
    for (int t = 0; fscanf(f, "%lf,%lf,%lf", &x, &v, &z) == 3; t++) {
        const float in = (float)x;
        st_snn_step(net, st, &in);
        const bool spike = st_snn_state_output(st, out, NULL)[0] == 1.0f;
        const double dv = fabs(st_snn_state_var(st, lif, ST_SNN_VAR_V)[0] - v);
        if (spike && r->n_spikes < 8)
            r->spikes[r->n_spikes++] = t;
        r->z_bad += spike != (z != 0);
        ref_spiked |= z != 0;
        r->worst_v = fmax(r->worst_v, dv);
        if (!ref_spiked)
            r->worst_v_before = fmax(r->worst_v_before, dv);
    }
    fclose(f);
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);
    return true;
}

static void test_nir_paper_lif(void)
{
    char dir[4096];
    if (!nir_dir("snn_files:nir_paper_lif", "paper_01_lif", dir, sizeof dir))
        return;
    char good[4096], nir[8192], csv[8192];
    nir_dir("snn_files:nir_paper_lif", "good", good, sizeof good);
    lif_run r;
    /* Norse's export, read as Norse does: its trace, to float precision */
    snprintf(nir, sizeof nir, "%s/NIR__paper_01_lif_lif_norse.nir", good);
    snprintf(csv, sizeof csv, "%s/lif_norse.csv", dir);
    if (run_paper_lif(nir, csv, ST_NIR_NORSE, &r)) {
        CU_ASSERT_EQUAL(r.n_spikes, 4);
        CU_ASSERT(r.spikes[0] == 460 && r.spikes[1] == 510 && r.spikes[2] == 710 &&
                  r.spikes[3] == 760);
        CU_ASSERT_EQUAL(r.z_bad, 0);
        CU_ASSERT(r.worst_v <= 1e-6);
    }
    /* the exact solver: the same spikes; its v until it resets inside a step */
    snprintf(csv, sizeof csv, "%s/lif_exact.csv", dir);
    if (run_paper_lif(nir, csv, ST_NIR_EXACT, &r)) {
        CU_ASSERT(r.n_spikes == 4 && r.spikes[0] == 460 && r.spikes[3] == 760);
        CU_ASSERT_EQUAL(r.z_bad, 0);
        CU_ASSERT(r.worst_v_before <= 1e-6);
    }
    /* Rockpool's export, read as Rockpool computes: its own trace */
    snprintf(nir, sizeof nir, "%s/NIR__paper_01_lif_lif_rockpool.nir", good);
    snprintf(csv, sizeof csv, "%s/lif_rockpool.csv", dir);
    if (run_paper_lif(nir, csv, ST_NIR_ROCKPOOL, &r)) {
        CU_ASSERT(r.n_spikes == 4 && r.spikes[0] == 450 && r.spikes[1] == 500 &&
                  r.spikes[2] == 710 && r.spikes[3] == 760);
        CU_ASSERT_EQUAL(r.z_bad, 0);
        CU_ASSERT(r.worst_v <= 1e-6);
    }
}

static void test_nir_bad_files(void)
{
    char dir[4096];
    if (!nir_dir("snn_files:nir_bad_files", "bad", dir, sizeof dir))
        return;
    DIR *d = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".nir"))
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int err = ST_OK;
        st_snn_net *net = st_snn_net_load_nir(path, NULL, &err);
        CU_ASSERT_PTR_NULL(net);
        CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
        /* the graph 'lif1' has an edge to 'lif'; its node is 'lif1' */
        CU_ASSERT(contains(st_errmsg(), path));
        CU_ASSERT(contains(st_errmsg(), "graph 'lif1'"));
        CU_ASSERT(contains(st_errmsg(), "names node 'lif', which does not exist"));
        st_snn_net_destroy(&net);
        files++;
    }
    closedir(d);
    CU_ASSERT_EQUAL(files, 2);
}

/* ---- NIR: malformed files, made here with libhdf5 ---------------------------------------- */

static hid_t h5_new(const char *path)
{
    return H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
}

static void h5_str(hid_t loc, const char *name, const char *text)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text);
    H5Dclose(d);
    H5Sclose(s);
    H5Tclose(t);
}

static void h5_f32(hid_t loc, const char *name, int ndim, const hsize_t *dims, const float *x)
{
    hid_t s = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
    H5Dclose(d);
    H5Sclose(s);
}

static void h5_i64(hid_t loc, const char *name, int64_t v)
{
    const hsize_t one = 1;
    hid_t s = H5Screate_simple(1, &one, NULL);
    hid_t d = H5Dcreate2(loc, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
    H5Dclose(d);
    H5Sclose(s);
}

static void h5_edges(hid_t loc, size_t n, const char *const *pairs)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    const hsize_t dims[2] = {n, 2};
    hid_t s = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(loc, "edges", t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, pairs);
    H5Dclose(d);
    H5Sclose(s);
    H5Tclose(t);
}

static hid_t h5_group(hid_t loc, const char *name)
{
    return H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

/* Input(2) -> Affine -> Output(2), with what `variant` breaks. */
static void write_small_nir(const char *path, int variant)
{
    hid_t f = h5_new(path);
    h5_str(f, "version", "1.0.0");
    if (variant == 1) { /* no /node */
        H5Fclose(f);
        return;
    }
    hid_t node = h5_group(f, "node");
    h5_str(node, "type", "NIRGraph");
    hid_t nodes = h5_group(node, "nodes");
    hid_t in = h5_group(nodes, "input"), fc = h5_group(nodes, "fc");
    hid_t out = h5_group(nodes, "output");
    h5_str(in, "type", "Input");
    h5_i64(in, "shape", 2);
    h5_str(out, "type", "Output");
    h5_i64(out, "shape", 2);
    if (variant != 2) /* 2: a node without type */
        h5_str(fc, "type", variant == 5 ? "Spiral" : "Affine");
    const float w[4] = {1, 2, 3, 4}, b[2] = {0.5f, 0};
    if (variant == 3) /* a 1-D weight */
        h5_f32(fc, "weight", 1, (const hsize_t[]){4}, w);
    else if (variant != 4) /* 4: no weight */
        h5_f32(fc, "weight", 2, (const hsize_t[]){2, 2}, w);
    h5_f32(fc, "bias", 1, (const hsize_t[]){variant == 6 ? 1 : 2}, b); /* 6: short bias */
    if (variant == 7) { /* edges as numbers */
        h5_f32(node, "edges", 2, (const hsize_t[]){2, 2}, w);
    } else {
        const char *edges[] = {"input", "fc", variant == 8 ? "fcc" : "fc", "output"};
        h5_edges(node, 2, edges);
    }
    H5Gclose(in);
    H5Gclose(fc);
    H5Gclose(out);
    H5Gclose(nodes);
    H5Gclose(node);
    H5Fclose(f);
}

static void test_nir_malformed(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "small.nir");
    int err;
    /* the well-formed one works */
    write_small_nir(path, 0);
    st_snn_net *net = st_snn_net_load_nir(path, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    st_snn_state *st = st_snn_state_new(net, NULL);
    st_snn_step(net, st, (const float[]){1, 1});
    const float *y = st_snn_state_output(st, st_snn_net_find(net, "output"), NULL);
    CU_ASSERT(y[0] == 3.5f && y[1] == 7.0f);
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);

    static const struct {
        int variant;
        int code;
        const char *says;
    } cases[] = {
        {1, ST_ERR_FORMAT, "/node: missing"},
        {2, ST_ERR_FORMAT, "/node/nodes/fc: the node has no 'type' dataset"},
        {3, ST_ERR_FORMAT, "node 'fc' (Affine): 'weight' is [4]; expected a 2-D"},
        {4, ST_ERR_FORMAT, "node 'fc' (Affine): no 'weight' dataset"},
        {5, ST_ERR_UNSUPPORTED, "node 'fc' has type 'Spiral'"},
        {6, ST_ERR_FORMAT, "'bias' has 1 values for 2 outputs"},
        {7, ST_ERR_FORMAT, "must be an E x 2 table of node names"},
        {8, ST_ERR_FORMAT, "names node 'fcc', which does not exist"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        write_small_nir(path, cases[k].variant);
        net = st_snn_net_load_nir(path, NULL, &err);
        CU_ASSERT_PTR_NULL(net);
        CU_ASSERT_EQUAL(err, cases[k].code);
        if (!contains(st_errmsg(), cases[k].says))
            fprintf(stderr, "\n  variant %d: expected '%s' in: %s\n", cases[k].variant,
                    cases[k].says, st_errmsg());
        CU_ASSERT(contains(st_errmsg(), cases[k].says));
        CU_ASSERT(contains(st_errmsg(), path));
        st_snn_net_destroy(&net);
    }
    /* not HDF5 at all; empty; absent */
    spit(path, "input,v\n1,2\n", 12);
    CU_ASSERT_PTR_NULL(st_snn_net_load_nir(path, NULL, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT(contains(st_errmsg(), "not an HDF5 file"));
    spit(path, "", 0);
    CU_ASSERT_PTR_NULL(st_snn_net_load_nir(path, NULL, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(st_snn_net_load_nir("/nonexistent-dir/g.nir", NULL, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_NOT_FOUND);
    /* one of our own model files given as NIR */
    st_snn_net *tiny = build_tiny();
    st_snn_net_save(tiny, path);
    st_snn_net_destroy(&tiny);
    CU_ASSERT_PTR_NULL(st_snn_net_load_nir(path, NULL, &err));
    CU_ASSERT(contains(st_errmsg(), "not an HDF5 file"));
    /* bad parameters */
    st_nir_params p = st_nir_default_params();
    p.dt_s = -1;
    CU_ASSERT_PTR_NULL(st_snn_net_load_nir(path, &p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    /* a real HDF5 file cut short anywhere: refused, never a crash */
    write_small_nir(path, 0);
    size_t len;
    unsigned char *img = slurp(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(img);
    net = st_snn_net_load_nir_mem(img, len, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL(net);
    st_snn_net_destroy(&net);
    int refused = 0, tried = 0;
    for (size_t cut = 0; cut < len; cut += len / 97 + 1, tried++) {
        net = st_snn_net_load_nir_mem(img, cut, NULL, &err);
        refused += !net && err == ST_ERR_FORMAT;
        st_snn_net_destroy(&net);
    }
    CU_ASSERT_EQUAL(refused, tried);
    free(img);
}

/* ---- NIR: export ------------------------------------------------------------------------ */

static void test_nir_export_roundtrip(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "all_kinds.nir");
    st_snn_net *net = build_all_kinds(true);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_save_nir(net, path, NULL), ST_OK);
    int err;
    st_nir_params p = st_nir_default_params();
    p.dt_s = 1e-3; /* the populations' step */
    st_snn_net *back = st_snn_net_load_nir(path, &p, &err);
    if (!back)
        fprintf(stderr, "\n  %s\n", st_errmsg());
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    /* the output node 'mid' feeds on: NIR routes its edge around it */
    CU_ASSERT_EQUAL(compare_nets(net, back, 120, 0), 0);
    /* the same nodes, in the same stepping order */
    for (size_t k = 0; k < st_snn_net_node_count(net); k++) {
        st_snn_node_info a, b;
        st_snn_net_node_info(net, (int)k, &a);
        const int kb = st_snn_net_find(back, a.name);
        CU_ASSERT_FATAL(kb >= 0);
        st_snn_net_node_info(back, kb, &b);
        /* NIR has no sparse matrices: a sparse node comes back dense */
        CU_ASSERT(a.kind == b.kind || (a.kind == ST_SNN_NODE_SPARSE &&
                                       b.kind == ST_SNN_NODE_DENSE));
        CU_ASSERT(a.n_in == b.n_in && a.n_out == b.n_out && a.order == b.order);
    }
    st_snn_net_destroy(&back);
    /* imported at another dt, an exported net keeps its per-step arithmetic
       (tau scales with dt) */
    st_nir_params half = {.dt_s = 5e-4, .convention = ST_NIR_NORSE};
    CU_ASSERT_EQUAL(st_snn_net_save_nir(net, path, &half), ST_OK);
    back = st_snn_net_load_nir(path, &half, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    CU_ASSERT_EQUAL(compare_nets(net, back, 60, 1e-4f), 0);
    st_snn_net_destroy(&back);
    st_snn_net_destroy(&net);

    /* Norse's lif goes out as a CubaLIF: the same up to float rounding */
    net = st_snn_net_new(NULL);
    int in = st_snn_net_add_input(net, "in", 3);
    st_snn_neuron_params lp = st_snn_neuron_default_params(ST_SNN_LIF);
    lp.v_th = 0.3f;
    int lif = st_snn_net_add_neurons(net, "lif", &lp, 3);
    int out = st_snn_net_add_output(net, "out", 3);
    st_snn_net_connect(net, in, lif);
    st_snn_net_connect(net, lif, out);
    st_snn_net_finish(net);
    CU_ASSERT_EQUAL(st_snn_net_save_nir(net, path, NULL), ST_OK);
    back = st_snn_net_load_nir(path, &p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    CU_ASSERT_EQUAL(compare_nets(net, back, 200, 1e-5f), 0);
    st_snn_net_destroy(&back);
    st_snn_net_destroy(&net);

    /* what NIR cannot say is refused by name */
    net = build_all_kinds(false);
    CU_ASSERT_EQUAL(st_snn_net_save_nir(net, path, NULL), ST_ERR_UNSUPPORTED);
    CU_ASSERT(contains(st_errmsg(), "node 'lsnn'"));
    st_nir_params rock = {.dt_s = 1e-3, .convention = ST_NIR_ROCKPOOL};
    CU_ASSERT_EQUAL(st_snn_net_save_nir(net, path, &rock), ST_ERR_UNSUPPORTED);
    st_snn_net_destroy(&net);
    net = st_snn_net_new(NULL);
    in = st_snn_net_add_input(net, "in", 2);
    st_snn_neuron_params sub = st_snn_neuron_default_params(ST_SNN_LIFBOX);
    sub.reset = ST_SNN_RESET_SUBTRACT;
    int n1 = st_snn_net_add_neurons(net, "sub", &sub, 2);
    out = st_snn_net_add_output(net, "out", 2);
    st_snn_net_connect(net, in, n1);
    st_snn_net_connect(net, n1, out);
    st_snn_net_finish(net);
    CU_ASSERT_EQUAL(st_snn_net_save_nir(net, path, NULL), ST_ERR_UNSUPPORTED);
    CU_ASSERT(contains(st_errmsg(), "node 'sub'"));
    CU_ASSERT_EQUAL(st_snn_net_save_nir(net, "/nonexistent-dir/x.nir", NULL), ST_ERR_UNSUPPORTED);
    st_snn_net_destroy(&net);
    net = build_tiny();
    CU_ASSERT_EQUAL(st_snn_net_save_nir(net, "/nonexistent-dir/x.nir", NULL), ST_ERR_IO);
    CU_ASSERT(contains(st_errmsg(), "/nonexistent-dir/x.nir"));
    st_snn_net_destroy(&net);
}

static bool have_h5py(void)
{
    return system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") == 0;
}

/* The layout of docs/NIR.md, as h5py (what every NIR tool reads with) sees
   it. */
static void test_nir_layout_h5py(void)
{
    if (!have_h5py()) {
        st_test_skip("snn_files:nir_layout_h5py", "/usr/bin/python3 has no h5py (apt-get "
                                                  "install python3-h5py)");
        return;
    }
    char path[4096], script[4096], cmd[16384];
    st_test_tmpfile(path, sizeof path, "layout.nir");
    st_test_tmpfile(script, sizeof script, "layout.py");
    st_snn_net *net = build_all_kinds(true);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_save_nir(net, path, NULL), ST_OK);
    st_snn_net_destroy(&net);
    static const char py[] =
        "import sys, h5py\n"
        "f = h5py.File(sys.argv[1], 'r')\n"
        "bad = []\n"
        "def no_attrs(name, obj):\n"
        "    if len(obj.attrs): bad.append('attributes on ' + name)\n"
        "f.visititems(no_attrs)\n"
        "if len(f.attrs): bad.append('root attributes')\n"
        "assert isinstance(f['version'][()], bytes), 'version is not a string'\n"
        "g = f['node']\n"
        "assert g['type'][()] == b'NIRGraph'\n"
        "e = g['edges'][()]\n"
        "assert e.ndim == 2 and e.shape[1] == 2, e.shape\n"
        "nodes = g['nodes']\n"
        "for a, b in e:\n"
        "    assert a.decode() in nodes and b.decode() in nodes, (a, b)\n"
        "need = {'Input': ['shape'], 'Output': ['shape'], 'Affine': ['weight', 'bias'],\n"
        "        'Linear': ['weight'], 'Conv2d': ['weight', 'bias', 'stride', 'padding',\n"
        "        'dilation', 'groups', 'input_shape'], 'Conv1d': ['weight', 'bias', 'stride',\n"
        "        'padding', 'dilation', 'groups', 'input_shape'], 'IF': ['r', 'v_threshold'],\n"
        "        'LIF': ['tau', 'r', 'v_leak', 'v_threshold'], 'LI': ['tau', 'r', 'v_leak'],\n"
        "        'CubaLIF': ['tau_mem', 'tau_syn', 'r', 'v_leak', 'v_threshold', 'w_in'],\n"
        "        'CubaLI': ['tau_mem', 'tau_syn', 'r', 'v_leak', 'w_in'], 'I': ['r'],\n"
        "        'Scale': ['scale'], 'Threshold': ['threshold'], 'Delay': ['delay']}\n"
        "seen = set()\n"
        "for name, n in nodes.items():\n"
        "    t = n['type'][()].decode()\n"
        "    seen.add(t)\n"
        "    for p in need[t]:\n"
        "        assert p in n and isinstance(n[p], h5py.Dataset), (name, t, p)\n"
        "w = nodes['fc']['weight']\n"
        "assert w.shape == (6, nodes['conv1d']['weight'].shape[0] * 0 + w.shape[1]), w.shape\n"
        "assert nodes['image']['shape'][()].tolist() == [40]\n"
        "assert nodes['conv']['weight'].shape == (3, 2, 3, 3)\n"
        "assert nodes['conv']['stride'][()].tolist() == [1, 2]\n"
        "assert nodes['conv1d']['type'][()] == b'Conv1d'\n"
        "assert abs(nodes['lifbox']['tau'][0] - 1 / 150) < 1e-9\n"
        "assert nodes['delay']['delay'][()].tolist() == [0, 1e-3, 2e-3, 1e-3, 0, 3e-3]\n"
        "assert [b'cuba', b'w_rec'] in e.tolist() and [b'w_rec', b'cuba'] in e.tolist()\n"
        "assert [b'sparse', b'integ'] in e.tolist(), 'mid is routed around'\n"
        "missing = {'Input', 'Output', 'Affine', 'Linear', 'Conv2d', 'Conv1d', 'IF', 'LIF',\n"
        "           'LI', 'CubaLIF', 'CubaLI', 'I', 'Scale', 'Threshold', 'Delay'} - seen\n"
        "assert not missing, missing\n"
        "assert not bad, bad\n"
        "print('layout ok')\n";
    spit(script, py, strlen(py));
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s 2>&1", script, path);
    FILE *f = popen(cmd, "r");
    char out[4096] = "";
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = '\0';
    const int status = f ? pclose(f) : -1;
    if (!contains(out, "layout ok"))
        fprintf(stderr, "\n  h5py check: %s\n", out);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT(contains(out, "layout ok"));
}

/* ---- the commands ------------------------------------------------------------------------ */

static int run_cli(const char *args, char **out)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", st_test_cli(), args);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    const int status = pclose(f);
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_commands(void)
{
    struct stat st;
    if (stat(st_test_cli(), &st) != 0) {
        st_test_skip("snn_files:commands", "the spiketalk binary is not built ($ST_CLI or "
                                           "build/spiketalk)");
        return;
    }
    char model[4096], nir[4096], in[4096], args[16384], *out;
    st_test_tmpfile(model, sizeof model, "cmd.stm");
    st_test_tmpfile(nir, sizeof nir, "cmd.nir");
    st_test_tmpfile(in, sizeof in, "cmd_in.csv");
    st_snn_net *net = build_tiny();
    st_snn_net_save(net, model);
    st_snn_net_destroy(&net);
    /* help teaches */
    CU_ASSERT_EQUAL(run_cli("snn run --help", &out), 0);
    CU_ASSERT(contains(out, "--convention") && contains(out, "examples:"));
    free(out);
    CU_ASSERT_EQUAL(run_cli("snn --help", &out), 0);
    CU_ASSERT(contains(out, "run MODEL") && contains(out, "convert IN OUT"));
    free(out);
    /* a run: header, one row per step */
    spit(in, "a,b,c\n1,0,1\n0.5,0.25,2\n\n0,0,0\n", 31);
    snprintf(args, sizeof args, "snn run %s --input %s --probe lif:v", model, in);
    CU_ASSERT_EQUAL(run_cli(args, &out), 0);
    CU_ASSERT(contains(out, "t,out_0,out_1,lif:v_0,lif:v_1,lif:v_2,lif:v_3\n0,"));
    CU_ASSERT(contains(out, "\n2,"));
    free(out);
    /* bad CSV: the file and the line */
    spit(in, "1,0,1\n1,x,1\n", 12);
    snprintf(args, sizeof args, "snn run %s --input %s", model, in);
    CU_ASSERT_EQUAL(run_cli(args, &out), 1);
    snprintf(args, sizeof args, "%s line 2, column 2: 'x' is not a number", in);
    CU_ASSERT(contains(out, args));
    free(out);
    spit(in, "1,0,1\n1,1\n", 10);
    snprintf(args, sizeof args, "snn run %s --input %s", model, in);
    CU_ASSERT_EQUAL(run_cli(args, &out), 1);
    CU_ASSERT(contains(out, "line 2 has 2 columns, but the network takes 3 input values per "
                            "step ('in': 3)"));
    free(out);
    /* a model that is not one */
    snprintf(args, sizeof args, "snn run %s --input %s", in, in);
    CU_ASSERT_EQUAL(run_cli(args, &out), 1);
    CU_ASSERT(contains(out, "neither a spiketalk model file (STNN) nor a NIR graph"));
    free(out);
    /* convert both ways; info */
    snprintf(args, sizeof args, "snn convert %s %s", model, nir);
    CU_ASSERT_EQUAL(run_cli(args, &out), 0);
    free(out);
    snprintf(args, sizeof args, "snn info %s --dt 1e-3", nir);
    CU_ASSERT_EQUAL(run_cli(args, &out), 0);
    CU_ASSERT(contains(out, "8 nodes, 3 input values per step") && contains(out, "cubalif"));
    free(out);
    /* a recognizer's file shows its net (it said "holds a 'asr', not a network") */
    CU_ASSERT_EQUAL(run_cli("snn info models/asr.stm", &out), 0);
    CU_ASSERT(contains(out, "80 input values per step") && contains(out, "m7.mean"));
    free(out);
    /* a model file of another kind is named as such (read once, its kind looked at) */
    CU_ASSERT_EQUAL(run_cli("snn info models/dialogue.stnn", &out), 1);
    CU_ASSERT(contains(out, "holds a 'spikegpt', not a network ('snn-net')"));
    free(out);

    /* the NIR paper's LIF from the command line */
    char good[4096], dir[4096];
    if (!nir_dir("snn_files:commands", "good", good, sizeof good) ||
        !nir_dir("snn_files:commands", "paper_01_lif", dir, sizeof dir))
        return;
    char csv[8192];
    snprintf(csv, sizeof csv, "%s/lif_norse.csv", dir);
    snprintf(args, sizeof args, "cut -d, -f1 %s > %s", csv, in); /* the input column */
    CU_ASSERT_EQUAL(system(args), 0);
    snprintf(args, sizeof args,
             "snn run %s/NIR__paper_01_lif_lif_norse.nir --dt 1e-4 --input %s | "
             "awk -F, 'NR > 1 && $2 == 1 { printf \"%%s \", $1 }'", good, in);
    CU_ASSERT_EQUAL(run_cli(args, &out), 0);
    CU_ASSERT_STRING_EQUAL(out, "460 510 710 760 ");
    free(out);
}

CU_TestInfo st_tests_snn_files[] = {
    {"tensor_file_api", test_tensor_file_api},
    {"net_roundtrip", test_net_roundtrip},
    {"net_ensemble", test_net_ensemble},
    {"net_embedded", test_net_embedded},
    {"fixture_v1", test_fixture_v1},
    {"corrupt_every_byte", test_corrupt_every_byte},
    {"truncated", test_truncated},
    {"magic_and_version", test_magic_and_version},
    {"mismatched_shapes", test_mismatched_shapes},
    {"load_1mb", test_load_1mb},
    {"nir_good_files", test_nir_good_files},
    {"nir_paper_lif", test_nir_paper_lif},
    {"nir_bad_files", test_nir_bad_files},
    {"nir_malformed", test_nir_malformed},
    {"nir_export_roundtrip", test_nir_export_roundtrip},
    {"nir_layout_h5py", test_nir_layout_h5py},
    {"commands", test_commands},
    CU_TEST_INFO_NULL,
};
