/*  snn/network.c - networks: a graph of nodes built once, frozen, then
    stepped by any number of streams, each with its own state.

    Tuned for streaming: a handful to a few dozen nodes, one step per 1-10 ms
    frame, batch 1 per stream. st_snn_net_finish() does all the planning
    (stepping order, which edges read the previous step, one arena layout for
    every stream's dynamic data), so st_snn_step() is a walk down an array of
    nodes that touches only the state's arena: no allocation, no lock, no
    logging. Whether a synaptic node takes the event-driven path is decided
    per source and per step from what that source produced: spiking nodes
    know they made 0/1 (and the indices of the 1s); inputs, delays and outputs
    check their values (O(n), far below the cost of the synapses after them).

    Per-stream state is one arena (node outputs, spike lists, neuron states,
    delay lines), so reset is a memset plus the neurons' initial values and a
    snapshot is a header plus a copy of the arena.
*/
#include "snn_impl.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

#define ARENA_ALIGN 64
#define MAX_DELAY 65535u

typedef struct {
    char *name;
    st_snn_node_kind kind;
    size_t n_in, n_out;
    int *src;             /* source node ids, in order of connection */
    size_t n_src, cap_src;
    /* weights and parameters, by kind */
    float *w;             /* dense: column-major [n_in][ld], 64-byte aligned; conv:
                             PyTorch layout; scale: factors; threshold: thresholds */
    size_t ld;            /* dense: floats from one column to the next (>= n_out) */
    float *bias;          /* n_out (dense, sparse, conv expanded per output) or NULL */
    uint32_t *ptr, *idx;  /* sparse, grouped by input */
    float *val;
    size_t n_weights;
    st_snn_conv_shape conv;
    uint32_t out_h, out_w;
    uint64_t conv_macs;
    st_snn_neurons *pop;
    bool spiking;         /* neurons: the model spikes */
    uint32_t *delay;      /* delay: steps per element */
    uint32_t ring_len;    /* delay: max delay + 1 */
    size_t input_offset;  /* input: where its part of st_snn_step's vector starts */
    /* arena layout, in bytes (finish) */
    size_t off_out, off_fired, off_neuron, off_sum, off_ring;
    int order;
} node;

/* Per node, per stream: what the last step produced. In the arena. */
typedef struct {
    uint32_t n_fired;  /* entries in the node's spike list */
    uint32_t binary;   /* 1 when the output was all 0/1 and the list is valid */
    uint32_t ring_pos; /* delay: the slot the next input goes to */
    uint32_t dirty;    /* sparse: 0, or 1 + the number of outputs the last step
                          touched, listed in the node's spike-list buffer (which
                          a synaptic node does not otherwise use): all other
                          outputs still hold their bias (or 0) */
} node_rt;

typedef struct {
    uint64_t neuron_updates, syn_ops, dense_macs, spikes, spike_slots;
} counts;

struct st_snn_net {
    node *nodes;
    size_t n_nodes, cap_nodes;
    int *order;           /* node ids in stepping order (finish) */
    size_t input_len;
    size_t arena_len;     /* bytes of per-stream arena (finish) */
    uint64_t fingerprint; /* of the layout, for snapshots */
    bool finished;
};

struct st_snn_state {
    const st_snn_net *net;
    unsigned char *arena;
    node_rt *rt;
    counts *cnt;
    uint64_t steps;
    st_snn_path path;
};

/* ---- building ------------------------------------------------------------ */

st_snn_conv_shape st_snn_conv_1d(uint32_t in_channels, uint32_t out_channels, uint32_t length,
                                 uint32_t kernel)
{
    return (st_snn_conv_shape){
        .in_channels = in_channels,
        .out_channels = out_channels,
        .groups = 1,
        .height = 1,
        .width = length,
        .kernel_h = 1,
        .kernel_w = kernel,
        .stride_h = 1,
        .stride_w = 1,
        .dilation_h = 1,
        .dilation_w = 1,
    };
}

static uint32_t conv_extent(uint32_t in, uint32_t k, uint32_t stride, uint32_t pad, uint32_t dil)
{
    if (!stride || !dil || !k)
        return 0;
    const int64_t span = (int64_t)dil * (k - 1) + 1, room = (int64_t)in + 2 * (int64_t)pad;
    if (room < span)
        return 0;
    const int64_t out = (room - span) / stride + 1;
    return out > UINT32_MAX ? 0 : (uint32_t)out;
}

uint32_t st_snn_conv_out_h(const st_snn_conv_shape *c)
{
    return conv_extent(c->height, c->kernel_h, c->stride_h, c->padding_h, c->dilation_h);
}

uint32_t st_snn_conv_out_w(const st_snn_conv_shape *c)
{
    return conv_extent(c->width, c->kernel_w, c->stride_w, c->padding_w, c->dilation_w);
}

st_snn_net *st_snn_net_new(int *err)
{
    st_snn_net *self = calloc(1, sizeof *self);
    if (!self) {
        int rc = st_error(ST_ERR_NOMEM, "out of memory for a network");
        if (err)
            *err = rc;
        return NULL;
    }
    if (err)
        *err = ST_OK;
    return self;
}

static void node_free(node *nd)
{
    free(nd->name);
    free(nd->src);
    free(nd->w);
    free(nd->bias);
    free(nd->ptr);
    free(nd->idx);
    free(nd->val);
    free(nd->delay);
    st_snn_neurons_destroy(&nd->pop);
    memset(nd, 0, sizeof *nd);
}

void st_snn_net_destroy(st_snn_net **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_snn_net *self = *self_p;
    for (size_t k = 0; k < self->n_nodes; k++)
        node_free(&self->nodes[k]);
    free(self->nodes);
    free(self->order);
    free(self);
    *self_p = NULL;
}

static const char *kind_name(st_snn_node_kind k)
{
    static const char *names[] = {"input",   "output",  "dense",     "sparse", "conv",
                                  "scale",   "neurons", "threshold", "delay"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

/* Checks and starts a node; the caller fills its weights and then either
   commits it (returns its id) or frees it. */
static int begin_node(st_snn_net *self, const char *name, st_snn_node_kind kind, size_t n_in,
                      size_t n_out, node *nd)
{
    memset(nd, 0, sizeof *nd);
    if (self->finished)
        return st_error(ST_ERR_STATE, "cannot add %s node '%s': the network is finished",
                        kind_name(kind), name ? name : "");
    if (!name || !*name)
        return st_error(ST_ERR_INVALID, "a %s node needs a name", kind_name(kind));
    if (self->n_nodes >= INT32_MAX)
        return st_error(ST_ERR_INVALID, "too many nodes");
    for (size_t k = 0; k < self->n_nodes; k++)
        if (!strcmp(self->nodes[k].name, name))
            return st_error(ST_ERR_INVALID, "there is already a node called '%s'", name);
    if (n_out == 0 || n_out > UINT32_MAX || n_in > UINT32_MAX)
        return st_error(ST_ERR_INVALID, "%s node '%s': sizes must be 1 to %u, not %zu -> %zu",
                        kind_name(kind), name, (unsigned)UINT32_MAX, n_in, n_out);
    nd->kind = kind;
    nd->n_in = n_in;
    nd->n_out = n_out;
    nd->order = -1;
    nd->name = strdup(name);
    if (!nd->name)
        return st_error(ST_ERR_NOMEM, "out of memory for node '%s'", name);
    return ST_OK;
}

static int commit_node(st_snn_net *self, node *nd)
{
    if (self->n_nodes == self->cap_nodes) {
        size_t cap = self->cap_nodes ? 2 * self->cap_nodes : 16;
        node *nodes = realloc(self->nodes, cap * sizeof *nodes);
        if (!nodes) {
            node_free(nd);
            return st_error(ST_ERR_NOMEM, "out of memory for a node");
        }
        self->nodes = nodes;
        self->cap_nodes = cap;
    }
    self->nodes[self->n_nodes] = *nd;
    return (int)self->n_nodes++;
}

static int fail_node(node *nd, int rc)
{
    node_free(nd);
    return rc;
}

static float *copy_floats(const float *x, size_t n)
{
    float *y = malloc(n * sizeof *y);
    if (y)
        memcpy(y, x, n * sizeof *y);
    return y;
}

int st_snn_net_add_input(st_snn_net *self, const char *name, size_t n)
{
    node nd;
    int rc = begin_node(self, name, ST_SNN_NODE_INPUT, 0, n, &nd);
    if (rc != ST_OK)
        return fail_node(&nd, rc);
    nd.input_offset = self->input_len;
    rc = commit_node(self, &nd);
    if (rc >= 0)
        self->input_len += n;
    return rc;
}

int st_snn_net_add_output(st_snn_net *self, const char *name, size_t n)
{
    node nd;
    int rc = begin_node(self, name, ST_SNN_NODE_OUTPUT, n, n, &nd);
    return rc != ST_OK ? fail_node(&nd, rc) : commit_node(self, &nd);
}

int st_snn_net_add_dense(st_snn_net *self, const char *name, size_t n_out, size_t n_in,
                         const float *w, const float *bias)
{
    node nd;
    int rc = begin_node(self, name, ST_SNN_NODE_DENSE, n_in, n_out, &nd);
    if (rc != ST_OK)
        return fail_node(&nd, rc);
    if (n_in == 0 || !w)
        return fail_node(&nd, st_error(ST_ERR_INVALID, "dense node '%s' needs n_in >= 1 and "
                                                       "weights", name));
    if (n_in > SIZE_MAX / sizeof(float) / n_out)
        return fail_node(&nd, st_error(ST_ERR_INVALID, "dense node '%s': %zu x %zu weights are "
                                                       "too many", name, n_out, n_in));
    /* Column-major with aligned columns (see snn/layer.c); the padding is
       zero and never read into an output. */
    nd.ld = st_snn_dense_ld(n_out);
    if (n_in >= SIZE_MAX / 2 / sizeof(float) / nd.ld)
        return fail_node(&nd, st_error(ST_ERR_INVALID, "dense node '%s': %zu x %zu weights are "
                                                       "too many", name, n_out, n_in));
    const size_t w_bytes =
        (n_in * nd.ld * sizeof *nd.w + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    nd.w = aligned_alloc(ARENA_ALIGN, w_bytes);
    if (bias && !(nd.bias = copy_floats(bias, n_out)))
        return fail_node(&nd, st_error(ST_ERR_NOMEM, "out of memory for '%s'", name));
    if (!nd.w)
        return fail_node(&nd, st_error(ST_ERR_NOMEM, "out of memory for the %zu x %zu weights "
                                                     "of '%s'", n_out, n_in, name));
    memset(nd.w, 0, w_bytes);
    for (size_t o = 0; o < n_out; o++)
        for (size_t i = 0; i < n_in; i++)
            nd.w[i * nd.ld + o] = w[o * n_in + i];
    nd.n_weights = n_in * n_out;
    return commit_node(self, &nd);
}

int st_snn_net_add_sparse(st_snn_net *self, const char *name, size_t n_out, size_t n_in,
                          const uint32_t *row_ptr, const uint32_t *col, const float *val,
                          const float *bias)
{
    node nd;
    int rc = begin_node(self, name, ST_SNN_NODE_SPARSE, n_in, n_out, &nd);
    if (rc != ST_OK)
        return fail_node(&nd, rc);
    if (n_in == 0 || !row_ptr || row_ptr[0] != 0)
        return fail_node(&nd, st_error(ST_ERR_INVALID, "sparse node '%s': needs n_in >= 1 and "
                                                       "row_ptr[0] = 0", name));
    for (size_t o = 0; o < n_out; o++)
        if (row_ptr[o + 1] < row_ptr[o])
            return fail_node(&nd, st_error(ST_ERR_INVALID, "sparse node '%s': row_ptr decreases "
                                                           "at row %zu", name, o));
    const size_t nnz = row_ptr[n_out];
    if (nnz && (!col || !val))
        return fail_node(&nd, st_error(ST_ERR_INVALID, "sparse node '%s': no col/val arrays",
                                       name));
    for (size_t k = 0; k < nnz; k++)
        if (col[k] >= n_in)
            return fail_node(&nd, st_error(ST_ERR_INVALID, "sparse node '%s': entry %zu names "
                                                           "input %u of %zu", name, k, col[k],
                                           n_in));
    nd.ptr = calloc(n_in + 1, sizeof *nd.ptr);
    nd.idx = malloc((nnz ? nnz : 1) * sizeof *nd.idx);
    nd.val = malloc((nnz ? nnz : 1) * sizeof *nd.val);
    if (!nd.ptr || !nd.idx || !nd.val || (bias && !(nd.bias = copy_floats(bias, n_out))))
        return fail_node(&nd, st_error(ST_ERR_NOMEM, "out of memory for '%s'", name));
    /* Transpose to by-input groups (a stable counting sort, so each group
       keeps ascending outputs). */
    for (size_t k = 0; k < nnz; k++)
        nd.ptr[col[k] + 1]++;
    for (size_t i = 0; i < n_in; i++)
        nd.ptr[i + 1] += nd.ptr[i];
    uint32_t *fill = malloc((n_in ? n_in : 1) * sizeof *fill);
    if (!fill)
        return fail_node(&nd, st_error(ST_ERR_NOMEM, "out of memory for '%s'", name));
    memcpy(fill, nd.ptr, n_in * sizeof *fill);
    for (size_t o = 0; o < n_out; o++)
        for (uint32_t k = row_ptr[o]; k < row_ptr[o + 1]; k++) {
            const uint32_t at = fill[col[k]]++;
            nd.idx[at] = (uint32_t)o;
            nd.val[at] = val[k];
        }
    free(fill);
    nd.n_weights = nnz;
    return commit_node(self, &nd);
}

static int check_conv(const char *name, const st_snn_conv_shape *c)
{
    if (!c->in_channels || !c->out_channels || !c->groups || c->in_channels % c->groups ||
        c->out_channels % c->groups)
        return st_error(ST_ERR_INVALID, "conv node '%s': channels %u -> %u must be >= 1 and "
                                        "divisible by groups %u", name, c->in_channels,
                        c->out_channels, c->groups);
    if (!c->height || !c->width || !c->kernel_h || !c->kernel_w || !c->stride_h ||
        !c->stride_w || !c->dilation_h || !c->dilation_w)
        return st_error(ST_ERR_INVALID, "conv node '%s': extents, kernel, stride and dilation "
                                        "must be >= 1", name);
    if (!st_snn_conv_out_h(c) || !st_snn_conv_out_w(c))
        return st_error(ST_ERR_INVALID, "conv node '%s': a %ux%u kernel (dilation %ux%u) does "
                                        "not fit the %ux%u input with padding %ux%u", name,
                        c->kernel_h, c->kernel_w, c->dilation_h, c->dilation_w, c->height,
                        c->width, c->padding_h, c->padding_w);
    const uint64_t n_in = (uint64_t)c->in_channels * c->height * c->width;
    const uint64_t n_out = (uint64_t)c->out_channels * st_snn_conv_out_h(c) * st_snn_conv_out_w(c);
    const uint64_t n_w = (uint64_t)c->out_channels * (c->in_channels / c->groups);
    if (n_in > UINT32_MAX || n_out > UINT32_MAX || n_w > UINT32_MAX ||
        (uint64_t)c->kernel_h * c->kernel_w > UINT32_MAX / n_w)
        return st_error(ST_ERR_INVALID, "conv node '%s' is too large", name);
    return ST_OK;
}

int st_snn_net_add_conv(st_snn_net *self, const char *name, const st_snn_conv_shape *shape,
                        const float *w, const float *bias)
{
    assert(shape);
    node nd;
    int rc = check_conv(name ? name : "", shape);
    if (rc != ST_OK)
        return rc;
    const uint32_t oh = st_snn_conv_out_h(shape), ow = st_snn_conv_out_w(shape);
    const size_t n_in = (size_t)shape->in_channels * shape->height * shape->width;
    const size_t n_out = (size_t)shape->out_channels * oh * ow;
    if ((rc = begin_node(self, name, ST_SNN_NODE_CONV, n_in, n_out, &nd)) != ST_OK)
        return fail_node(&nd, rc);
    if (!w)
        return fail_node(&nd, st_error(ST_ERR_INVALID, "conv node '%s' needs weights", name));
    nd.conv = *shape;
    nd.out_h = oh;
    nd.out_w = ow;
    nd.n_weights = (size_t)shape->out_channels * (shape->in_channels / shape->groups) *
                   shape->kernel_h * shape->kernel_w;
    nd.conv_macs = st_snn_conv_mac_count(shape, oh, ow);
    if (!(nd.w = copy_floats(w, nd.n_weights)))
        return fail_node(&nd, st_error(ST_ERR_NOMEM, "out of memory for '%s'", name));
    if (bias) {
        if (!(nd.bias = malloc(n_out * sizeof *nd.bias)))
            return fail_node(&nd, st_error(ST_ERR_NOMEM, "out of memory for '%s'", name));
        for (size_t co = 0; co < shape->out_channels; co++)
            for (size_t k = 0; k < (size_t)oh * ow; k++)
                nd.bias[co * oh * ow + k] = bias[co];
    }
    return commit_node(self, &nd);
}

int st_snn_net_add_pool2d(st_snn_net *self, const char *name, uint32_t channels,
                          uint32_t height, uint32_t width, uint32_t kernel_h, uint32_t kernel_w,
                          uint32_t stride_h, uint32_t stride_w, uint32_t padding_h,
                          uint32_t padding_w, bool average)
{
    st_snn_conv_shape c = {
        .in_channels = channels,
        .out_channels = channels,
        .groups = channels,
        .height = height,
        .width = width,
        .kernel_h = kernel_h,
        .kernel_w = kernel_w,
        .stride_h = stride_h,
        .stride_w = stride_w,
        .padding_h = padding_h,
        .padding_w = padding_w,
        .dilation_h = 1,
        .dilation_w = 1,
    };
    const size_t nw = (size_t)channels * kernel_h * kernel_w;
    if (!nw)
        return st_error(ST_ERR_INVALID, "pool node '%s': channels and kernel must be >= 1",
                        name ? name : "");
    float *w = malloc(nw * sizeof *w);
    if (!w)
        return st_error(ST_ERR_NOMEM, "out of memory for pool node '%s'", name ? name : "");
    const float v = average ? 1.0f / (float)((double)kernel_h * kernel_w) : 1.0f;
    for (size_t k = 0; k < nw; k++)
        w[k] = v;
    int rc = st_snn_net_add_conv(self, name, &c, w, NULL);
    free(w);
    return rc;
}

int st_snn_net_add_scale(st_snn_net *self, const char *name, size_t n, const float *s)
{
    node nd;
    int rc = begin_node(self, name, ST_SNN_NODE_SCALE, n, n, &nd);
    if (rc != ST_OK)
        return fail_node(&nd, rc);
    if (!s)
        return fail_node(&nd, st_error(ST_ERR_INVALID, "scale node '%s' needs factors", name));
    if (!(nd.w = copy_floats(s, n)))
        return fail_node(&nd, st_error(ST_ERR_NOMEM, "out of memory for '%s'", name));
    nd.n_weights = n;
    return commit_node(self, &nd);
}

static int add_population(st_snn_net *self, const char *name, st_snn_neurons *pop, int err)
{
    node nd;
    if (!pop) {
        const char *why = st_errmsg();
        char msg[400];
        snprintf(msg, sizeof msg, "%s", why);
        return st_error(err, "neurons node '%s': %s", name ? name : "", msg);
    }
    int rc = begin_node(self, name, ST_SNN_NODE_NEURONS, st_snn_neurons_input_len(pop),
                        st_snn_neurons_count(pop), &nd);
    if (rc != ST_OK) {
        st_snn_neurons_destroy(&pop);
        return fail_node(&nd, rc);
    }
    nd.pop = pop;
    nd.spiking = st_snn_model_spikes(st_snn_neurons_model(pop));
    return commit_node(self, &nd);
}

int st_snn_net_add_neurons(st_snn_net *self, const char *name, const st_snn_neuron_params *p,
                           size_t n)
{
    int err = ST_OK;
    st_snn_neurons *pop = st_snn_neurons_new(p, n, &err);
    return add_population(self, name, pop, err);
}

int st_snn_net_add_neurons_each(st_snn_net *self, const char *name,
                                const st_snn_neuron_params *p, size_t n)
{
    int err = ST_OK;
    st_snn_neurons *pop = st_snn_neurons_new_each(p, n, &err);
    return add_population(self, name, pop, err);
}

int st_snn_net_add_threshold(st_snn_net *self, const char *name, size_t n, const float *th)
{
    node nd;
    int rc = begin_node(self, name, ST_SNN_NODE_THRESHOLD, n, n, &nd);
    if (rc != ST_OK)
        return fail_node(&nd, rc);
    if (!th)
        return fail_node(&nd, st_error(ST_ERR_INVALID, "threshold node '%s' needs thresholds",
                                       name));
    if (!(nd.w = copy_floats(th, n)))
        return fail_node(&nd, st_error(ST_ERR_NOMEM, "out of memory for '%s'", name));
    return commit_node(self, &nd);
}

int st_snn_net_add_delay(st_snn_net *self, const char *name, size_t n, const uint32_t *steps)
{
    node nd;
    int rc = begin_node(self, name, ST_SNN_NODE_DELAY, n, n, &nd);
    if (rc != ST_OK)
        return fail_node(&nd, rc);
    if (!steps)
        return fail_node(&nd, st_error(ST_ERR_INVALID, "delay node '%s' needs delays", name));
    uint32_t max = 0;
    for (size_t k = 0; k < n; k++) {
        if (steps[k] > MAX_DELAY)
            return fail_node(&nd, st_error(ST_ERR_INVALID, "delay node '%s': element %zu has a "
                                                           "delay of %u steps; at most %u", name,
                                           k, steps[k], MAX_DELAY));
        max = steps[k] > max ? steps[k] : max;
    }
    if (!(nd.delay = malloc(n * sizeof *nd.delay)))
        return fail_node(&nd, st_error(ST_ERR_NOMEM, "out of memory for '%s'", name));
    memcpy(nd.delay, steps, n * sizeof *nd.delay);
    nd.ring_len = max + 1;
    return commit_node(self, &nd);
}

int st_snn_net_connect(st_snn_net *self, int from, int to)
{
    if (self->finished)
        return st_error(ST_ERR_STATE, "cannot connect: the network is finished");
    if (from < 0 || (size_t)from >= self->n_nodes || to < 0 || (size_t)to >= self->n_nodes)
        return st_error(ST_ERR_INVALID, "connect %d -> %d: no such node (there are %zu)", from,
                        to, self->n_nodes);
    node *a = &self->nodes[from], *b = &self->nodes[to];
    if (b->kind == ST_SNN_NODE_INPUT)
        return st_error(ST_ERR_INVALID, "connect '%s' -> '%s': an input node takes no edges",
                        a->name, b->name);
    if (a->n_out != b->n_in)
        return st_error(ST_ERR_INVALID, "connect '%s' -> '%s': '%s' makes %zu values but '%s' "
                                        "takes %zu", a->name, b->name, a->name, a->n_out,
                        b->name, b->n_in);
    if (b->n_src == b->cap_src) {
        size_t cap = b->cap_src ? 2 * b->cap_src : 4;
        int *src = realloc(b->src, cap * sizeof *src);
        if (!src)
            return st_error(ST_ERR_NOMEM, "out of memory for an edge");
        b->src = src;
        b->cap_src = cap;
    }
    b->src[b->n_src++] = from;
    return ST_OK;
}

/* ---- finishing ------------------------------------------------------------- */

/* Kahn's order, taking the lowest id among the ready nodes. When a cycle
   leaves none ready, the lowest-id node with a source already placed enters
   the cycle: its edges from unplaced nodes read their previous step. */
static int plan_order(st_snn_net *self)
{
    const size_t n = self->n_nodes;
    bool *placed = calloc(n ? n : 1, sizeof *placed);
    self->order = malloc((n ? n : 1) * sizeof *self->order);
    if (!placed || !self->order) {
        free(placed);
        return st_error(ST_ERR_NOMEM, "out of memory planning the network");
    }
    for (size_t pos = 0; pos < n; pos++) {
        size_t pick = n, entry = n, any = n;
        for (size_t k = 0; k < n && pick == n; k++) {
            if (placed[k])
                continue;
            const node *nd = &self->nodes[k];
            bool ready = true, some = false;
            for (size_t s = 0; s < nd->n_src; s++) {
                if ((size_t)nd->src[s] == k)
                    continue; /* a self loop always reads the previous step */
                if (placed[nd->src[s]])
                    some = true;
                else
                    ready = false;
            }
            if (ready)
                pick = k;
            else if (some && entry == n)
                entry = k;
            if (any == n)
                any = k;
        }
        if (pick == n)
            pick = entry != n ? entry : any;
        placed[pick] = true;
        self->order[pos] = (int)pick;
        self->nodes[pick].order = (int)pos;
    }
    free(placed);
    return ST_OK;
}

static size_t align_up(size_t x)
{
    return (x + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t k = 0; k < len; k++) {
        h ^= p[k];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define FNV_SEED 0xcbf29ce484222325ULL

int st_snn_net_finish(st_snn_net *self)
{
    if (self->finished)
        return st_error(ST_ERR_STATE, "the network is already finished");
    if (self->n_nodes == 0)
        return st_error(ST_ERR_INVALID, "the network has no nodes");
    for (size_t k = 0; k < self->n_nodes; k++) {
        const node *nd = &self->nodes[k];
        if (nd->kind != ST_SNN_NODE_INPUT && nd->n_src == 0)
            return st_error(ST_ERR_INVALID, "%s node '%s' has no input: connect a source to it",
                            kind_name(nd->kind), nd->name);
    }
    int rc = plan_order(self);
    if (rc != ST_OK)
        return rc;
    /* The arena: the per-node records, then each node's buffers. */
    size_t off = align_up(self->n_nodes * sizeof(node_rt));
    uint64_t fp = FNV_SEED;
    for (size_t k = 0; k < self->n_nodes; k++) {
        node *nd = &self->nodes[k];
        nd->off_out = off;
        off = align_up(off + nd->n_out * sizeof(float));
        nd->off_fired = off;
        off = align_up(off + nd->n_out * sizeof(uint32_t));
        if (nd->pop) {
            nd->off_neuron = off;
            off = align_up(off + st_snn_neurons_state_len(nd->pop) * sizeof(float));
        }
        const bool elementwise = nd->kind == ST_SNN_NODE_NEURONS ||
                                 nd->kind == ST_SNN_NODE_THRESHOLD ||
                                 nd->kind == ST_SNN_NODE_DELAY || nd->kind == ST_SNN_NODE_OUTPUT;
        if (elementwise && nd->n_src > 1) {
            nd->off_sum = off;
            off = align_up(off + nd->n_in * sizeof(float));
        }
        if (nd->kind == ST_SNN_NODE_DELAY) {
            nd->off_ring = off;
            off = align_up(off + (size_t)nd->ring_len * nd->n_out * sizeof(float));
        }
        const uint64_t shape[] = {nd->kind, nd->n_in, nd->n_out, nd->n_src, (uint64_t)nd->order,
                                  nd->pop ? (uint64_t)st_snn_neurons_model(nd->pop) : 99,
                                  nd->ring_len};
        fp = fnv1a(fp, shape, sizeof shape);
    }
    self->arena_len = off;
    self->fingerprint = fnv1a(fp, &off, sizeof off);
    self->finished = true;
    return ST_OK;
}

int st_snn_net_find(const st_snn_net *self, const char *name)
{
    for (size_t k = 0; k < self->n_nodes; k++)
        if (name && !strcmp(self->nodes[k].name, name))
            return (int)k;
    return st_error(ST_ERR_NOT_FOUND, "no node called '%s'", name ? name : "");
}

size_t st_snn_net_node_count(const st_snn_net *self)
{
    return self->n_nodes;
}

int st_snn_net_node_info(const st_snn_net *self, int id, st_snn_node_info *out)
{
    if (id < 0 || (size_t)id >= self->n_nodes)
        return st_error(ST_ERR_INVALID, "no node %d (there are %zu)", id, self->n_nodes);
    const node *nd = &self->nodes[id];
    *out = (st_snn_node_info){
        .name = nd->name,
        .kind = nd->kind,
        .n_in = nd->n_in,
        .n_out = nd->n_out,
        .n_weights = nd->n_weights,
        .model = nd->pop ? st_snn_neurons_model(nd->pop) : ST_SNN_N_MODELS,
        .order = nd->order,
    };
    return ST_OK;
}

size_t st_snn_net_input_len(const st_snn_net *self)
{
    return self->input_len;
}

const st_snn_neurons *st_snn_net_neurons(const st_snn_net *self, int id)
{
    if (id < 0 || (size_t)id >= self->n_nodes)
        return NULL;
    return self->nodes[id].pop;
}

/* ---- state --------------------------------------------------------------- */

#define AT(st, off, type) ((type *)(void *)((st)->arena + (off)))

st_snn_state *st_snn_state_new(const st_snn_net *net, int *err)
{
    int rc = ST_OK;
    st_snn_state *self = NULL;
    if (!net->finished) {
        rc = st_error(ST_ERR_STATE, "a state needs a finished network (st_snn_net_finish)");
        goto fail;
    }
    self = calloc(1, sizeof *self);
    if (!self)
        goto nomem;
    self->net = net;
    self->arena = aligned_alloc(ARENA_ALIGN, net->arena_len);
    self->cnt = calloc(net->n_nodes, sizeof *self->cnt);
    if (!self->arena || !self->cnt)
        goto nomem;
    self->rt = AT(self, 0, node_rt);
    st_snn_state_reset(self);
    if (err)
        *err = ST_OK;
    return self;
nomem:
    rc = st_error(ST_ERR_NOMEM, "out of memory for a network state (%zu bytes)",
                  net->arena_len);
fail:
    st_snn_state_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

void st_snn_state_destroy(st_snn_state **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_snn_state *self = *self_p;
    free(self->arena);
    free(self->cnt);
    free(self);
    *self_p = NULL;
}

size_t st_snn_state_bytes(const st_snn_state *self)
{
    return sizeof *self + self->net->arena_len + self->net->n_nodes * sizeof *self->cnt;
}

void st_snn_state_reset(st_snn_state *self)
{
    const st_snn_net *net = self->net;
    memset(self->arena, 0, net->arena_len);
    for (size_t k = 0; k < net->n_nodes; k++) {
        const node *nd = &net->nodes[k];
        self->rt[k].binary = 1; /* all zeros: spikes, none fired */
        if (nd->pop)
            st_snn_neurons_init_state(nd->pop, AT(self, nd->off_neuron, float));
    }
}

void st_snn_state_set_path(st_snn_state *self, st_snn_path path)
{
    self->path = path;
}

/* ---- stepping ------------------------------------------------------------ */

/* Finds whether x is all 0/1 and lists the 1s (snn/layer.c). */
static uint32_t classify(const float *x, size_t n, uint32_t *fired, uint32_t *binary)
{
    bool bin;
    const size_t nf = st_snn_classify(x, n, fired, &bin);
    *binary = bin;
    return (uint32_t)nf;
}

/* The summed input of an elementwise node: its one source's output as is,
   or the sum of several in the node's scratch. */
/* sum[k] = a[k] + b[k] (sum may be a), four at a time where SSE is (every x86-64): the
   same bits as the scalar loop, which -O2 does not vectorise. */
static void add_arrays(float *sum, const float *a, const float *b, size_t n)
{
    size_t k = 0;
#ifdef __SSE2__
    for (; k + 4 <= n; k += 4)
        _mm_storeu_ps(sum + k, _mm_add_ps(_mm_loadu_ps(a + k), _mm_loadu_ps(b + k)));
#endif
    for (; k < n; k++)
        sum[k] = a[k] + b[k];
}

static const float *gather_input(st_snn_state *st, const node *nd)
{
    const st_snn_net *net = st->net;
    const float *first = AT(st, net->nodes[nd->src[0]].off_out, float);
    if (nd->n_src == 1)
        return first;
    float *sum = AT(st, nd->off_sum, float);
    for (size_t s = 1; s < nd->n_src; s++)
        add_arrays(sum, s == 1 ? first : sum, AT(st, net->nodes[nd->src[s]].off_out, float),
                   nd->n_in);
    return sum;
}

/* A sparse node driven by spikes touches few of its outputs (the CUBA
   network: about 200 of 8000 a step), so instead of clearing all of them
   each step it lists the ones it touched and puts back only those. */
static void clear_sparse(const node *nd, node_rt *rt, float *out, const uint32_t *touched)
{
    if (rt->dirty) {
        const uint32_t m = rt->dirty - 1;
        for (uint32_t k = 0; k < m; k++)
            out[touched[k]] = nd->bias ? nd->bias[touched[k]] : 0.0f;
    } else if (nd->bias) {
        memcpy(out, nd->bias, nd->n_out * sizeof *out);
    } else {
        memset(out, 0, nd->n_out * sizeof *out);
    }
    rt->dirty = nd->n_out < UINT32_MAX; /* the count must fit */
}

/* Lists the outputs a spike-driven sparse step touched (the targets of the
   fired inputs, contiguous in idx), or gives up (dirty = 0: clear all next
   time) when they would not fit in n_out entries. */
static void note_touched(const node *nd, node_rt *rt, uint32_t *touched, const uint32_t *fired,
                         size_t nf)
{
    for (size_t f = 0; f < nf && rt->dirty; f++) {
        const uint32_t b = nd->ptr[fired[f]], e = nd->ptr[fired[f] + 1];
        if ((size_t)rt->dirty - 1 + (e - b) > nd->n_out) {
            rt->dirty = 0;
            break;
        }
        memcpy(touched + rt->dirty - 1, nd->idx + b, (e - b) * sizeof *touched);
        rt->dirty += e - b;
    }
}

static void step_synapses(st_snn_state *st, const node *nd, node_rt *rt, counts *c)
{
    const st_snn_net *net = st->net;
    float *out = AT(st, nd->off_out, float);
    uint32_t *touched = AT(st, nd->off_fired, uint32_t);
    if (nd->kind == ST_SNN_NODE_SPARSE)
        clear_sparse(nd, rt, out, touched);
    else if (nd->bias)
        memcpy(out, nd->bias, nd->n_out * sizeof *out);
    else
        memset(out, 0, nd->n_out * sizeof *out);
    for (size_t s = 0; s < nd->n_src; s++) {
        const node *src = &net->nodes[nd->src[s]];
        const node_rt *srt = &st->rt[nd->src[s]];
        const float *x = AT(st, src->off_out, float);
        const uint32_t *fired = AT(st, src->off_fired, uint32_t);
        const bool spikes = srt->binary && st->path == ST_SNN_PATH_AUTO;
        const size_t nf = srt->n_fired;
        switch (nd->kind) {
        case ST_SNN_NODE_DENSE:
            if (spikes)
                c->syn_ops += st_snn_dense_spikes(nd->w, nd->ld, nd->n_out, fired, nf, out);
            else
                c->dense_macs += st_snn_dense_mac(nd->w, nd->ld, nd->n_in, nd->n_out, x, out);
            break;
        case ST_SNN_NODE_SPARSE:
            if (spikes) {
                c->syn_ops += st_snn_sparse_spikes(nd->ptr, nd->idx, nd->val, fired, nf, out);
                note_touched(nd, rt, touched, fired, nf);
            } else {
                c->dense_macs += st_snn_sparse_mac(nd->ptr, nd->idx, nd->val, nd->n_in, x, out);
                rt->dirty = 0;
            }
            break;
        case ST_SNN_NODE_CONV:
            if (spikes)
                c->syn_ops += st_snn_conv_spikes(&nd->conv, nd->out_h, nd->out_w, nd->w, fired,
                                                 nf, out);
            else
                c->dense_macs += st_snn_conv_mac(&nd->conv, nd->out_h, nd->out_w, nd->w, x, out);
            break;
        case ST_SNN_NODE_SCALE:
            if (spikes)
                c->syn_ops += st_snn_scale_spikes(nd->w, fired, nf, out);
            else
                c->dense_macs += st_snn_scale_mac(nd->w, nd->n_out, x, out);
            break;
        default: assert(!"not a synaptic node");
        }
    }
    rt->binary = 0;
    rt->n_fired = 0;
}

static void step_node(st_snn_state *st, const node *nd, size_t id, const float *in)
{
    node_rt *rt = &st->rt[id];
    counts *c = &st->cnt[id];
    float *out = AT(st, nd->off_out, float);
    uint32_t *fired = AT(st, nd->off_fired, uint32_t);
    const size_t n = nd->n_out;
    switch (nd->kind) {
    case ST_SNN_NODE_INPUT:
        memcpy(out, in + nd->input_offset, n * sizeof *out);
        rt->n_fired = classify(out, n, fired, &rt->binary);
        break;
    case ST_SNN_NODE_OUTPUT:
        memcpy(out, gather_input(st, nd), n * sizeof *out);
        rt->n_fired = classify(out, n, fired, &rt->binary);
        break;
    case ST_SNN_NODE_DENSE:
    case ST_SNN_NODE_SPARSE:
    case ST_SNN_NODE_CONV:
    case ST_SNN_NODE_SCALE: step_synapses(st, nd, rt, c); break;
    case ST_SNN_NODE_NEURONS: {
        const float *x = gather_input(st, nd);
        const size_t nf =
            st_snn_neurons_step(nd->pop, AT(st, nd->off_neuron, float), x, out, fired);
        rt->n_fired = (uint32_t)nf;
        rt->binary = nd->spiking;
        c->neuron_updates += n;
        if (nd->spiking) {
            c->spikes += nf;
            c->spike_slots += n;
        }
        break;
    }
    case ST_SNN_NODE_THRESHOLD: {
        const float *x = gather_input(st, nd);
        uint32_t nf = 0;
        for (size_t k = 0; k < n; k++) {
            const bool z = x[k] - nd->w[k] > 0.0f;
            out[k] = z ? 1.0f : 0.0f;
            fired[nf] = (uint32_t)k;
            nf += z;
        }
        rt->n_fired = nf;
        rt->binary = 1;
        c->spikes += nf;
        c->spike_slots += n;
        break;
    }
    case ST_SNN_NODE_DELAY: {
        const float *x = gather_input(st, nd);
        float *ring = AT(st, nd->off_ring, float);
        const uint32_t len = nd->ring_len, pos = rt->ring_pos;
        memcpy(ring + (size_t)pos * n, x, n * sizeof *ring);
        for (size_t k = 0; k < n; k++) {
            const uint32_t d = nd->delay[k];
            const uint32_t slot = pos >= d ? pos - d : pos + len - d;
            out[k] = ring[(size_t)slot * n + k];
        }
        rt->ring_pos = pos + 1 == len ? 0 : pos + 1;
        rt->n_fired = classify(out, n, fired, &rt->binary);
        break;
    }
    }
}

int st_snn_step(const st_snn_net *net, st_snn_state *state, const float *in)
{
    assert(net && state && state->net == net);
    assert(in || net->input_len == 0);
    for (size_t p = 0; p < net->n_nodes; p++) {
        const size_t id = (size_t)net->order[p];
        step_node(state, &net->nodes[id], id, in);
    }
    state->steps++;
    return ST_OK;
}

/* ---- reading the state ------------------------------------------------------- */

const float *st_snn_state_output(const st_snn_state *self, int id, size_t *n)
{
    assert(id >= 0 && (size_t)id < self->net->n_nodes);
    const node *nd = &self->net->nodes[id];
    if (n)
        *n = nd->n_out;
    return AT(self, nd->off_out, const float);
}

const uint32_t *st_snn_state_spikes(const st_snn_state *self, int id, size_t *n_fired)
{
    assert(id >= 0 && (size_t)id < self->net->n_nodes);
    const node *nd = &self->net->nodes[id];
    const node_rt *rt = &self->rt[id];
    if (n_fired)
        *n_fired = rt->binary ? rt->n_fired : 0;
    return rt->binary ? AT(self, nd->off_fired, const uint32_t) : NULL;
}

float *st_snn_state_var(st_snn_state *self, int id, st_snn_var var)
{
    if (id < 0 || (size_t)id >= self->net->n_nodes || !self->net->nodes[id].pop)
        return NULL;
    const node *nd = &self->net->nodes[id];
    return st_snn_neurons_var(nd->pop, AT(self, nd->off_neuron, float), var);
}

static void fill_counters(st_snn_counters *out, const counts *c, uint64_t steps)
{
    *out = (st_snn_counters){
        .steps = steps,
        .neuron_updates = c->neuron_updates,
        .syn_ops = c->syn_ops,
        .dense_macs = c->dense_macs,
        .spikes = c->spikes,
        .spike_slots = c->spike_slots,
        .spike_rate = c->spike_slots ? (double)c->spikes / (double)c->spike_slots : 0.0,
    };
}

int st_snn_state_counters(const st_snn_state *self, int id, st_snn_counters *out)
{
    const st_snn_net *net = self->net;
    if (id >= 0 && (size_t)id < net->n_nodes) {
        fill_counters(out, &self->cnt[id], self->steps);
        return ST_OK;
    }
    if (id != -1)
        return st_error(ST_ERR_INVALID, "no node %d (there are %zu)", id, net->n_nodes);
    counts sum = {0};
    for (size_t k = 0; k < net->n_nodes; k++) {
        sum.neuron_updates += self->cnt[k].neuron_updates;
        sum.syn_ops += self->cnt[k].syn_ops;
        sum.dense_macs += self->cnt[k].dense_macs;
        sum.spikes += self->cnt[k].spikes;
        sum.spike_slots += self->cnt[k].spike_slots;
    }
    fill_counters(out, &sum, self->steps);
    return ST_OK;
}

void st_snn_state_clear_counters(st_snn_state *self)
{
    memset(self->cnt, 0, self->net->n_nodes * sizeof *self->cnt);
    self->steps = 0;
}

/* ---- snapshots ----------------------------------------------------------- */

/* A snapshot: this header, then the arena. Little-endian host layout; a
   snapshot moves between streams of one build, not between machines. */
typedef struct {
    char magic[8];        /* "STSNNST\0" */
    uint32_t version;     /* 1 */
    uint32_t header_len;
    uint64_t fingerprint; /* of the network's layout */
    uint64_t arena_len;
    uint64_t checksum;    /* FNV-1a 64 of the arena */
} snapshot_header;

static const char snapshot_magic[8] = "STSNNST";

size_t st_snn_state_save_len(const st_snn_state *self)
{
    return sizeof(snapshot_header) + self->net->arena_len;
}

int st_snn_state_save(const st_snn_state *self, void *buf, size_t cap)
{
    const size_t need = st_snn_state_save_len(self);
    if (!buf || cap < need)
        return st_error(ST_ERR_INVALID, "a state snapshot needs %zu bytes, the buffer has %zu",
                        need, cap);
    snapshot_header h = {
        .version = 1,
        .header_len = sizeof h,
        .fingerprint = self->net->fingerprint,
        .arena_len = self->net->arena_len,
        .checksum = fnv1a(FNV_SEED, self->arena, self->net->arena_len),
    };
    memcpy(h.magic, snapshot_magic, sizeof h.magic);
    memcpy(buf, &h, sizeof h);
    memcpy((unsigned char *)buf + sizeof h, self->arena, self->net->arena_len);
    return ST_OK;
}

int st_snn_state_restore(st_snn_state *self, const void *buf, size_t len)
{
    const st_snn_net *net = self->net;
    snapshot_header h;
    if (!buf || len < sizeof h)
        return st_error(ST_ERR_FORMAT, "state snapshot truncated: %zu bytes, a header alone is "
                                       "%zu", len, sizeof h);
    memcpy(&h, buf, sizeof h);
    if (memcmp(h.magic, snapshot_magic, sizeof h.magic) || h.header_len != sizeof h)
        return st_error(ST_ERR_FORMAT, "not a spiketalk network state snapshot");
    if (h.version != 1)
        return st_error(ST_ERR_FORMAT, "state snapshot version %u; this build reads version 1",
                        h.version);
    if (h.fingerprint != net->fingerprint || h.arena_len != net->arena_len)
        return st_error(ST_ERR_FORMAT, "the state snapshot is of another network (layout "
                                       "%016llx, %llu bytes; this one %016llx, %zu bytes)",
                        (unsigned long long)h.fingerprint, (unsigned long long)h.arena_len,
                        (unsigned long long)net->fingerprint, net->arena_len);
    if (len < sizeof h + net->arena_len)
        return st_error(ST_ERR_FORMAT, "state snapshot truncated: %zu bytes of %zu", len,
                        sizeof h + net->arena_len);
    const unsigned char *arena = (const unsigned char *)buf + sizeof h;
    if (fnv1a(FNV_SEED, arena, net->arena_len) != h.checksum)
        return st_error(ST_ERR_FORMAT, "state snapshot corrupt: checksum mismatch");
    /* The step trusts the spike lists and ring positions: check them. */
    const node_rt *rt = (const node_rt *)(const void *)arena;
    for (size_t k = 0; k < net->n_nodes; k++) {
        const node *nd = &net->nodes[k];
        const uint32_t *fired = (const uint32_t *)(const void *)(arena + nd->off_fired);
        bool ok = rt[k].binary <= 1 && rt[k].n_fired <= nd->n_out &&
                  (nd->kind != ST_SNN_NODE_DELAY || rt[k].ring_pos < nd->ring_len) &&
                  (nd->kind == ST_SNN_NODE_SPARSE ? rt[k].dirty <= nd->n_out + 1 : !rt[k].dirty);
        for (uint32_t f = 0; ok && rt[k].binary && f < rt[k].n_fired; f++)
            ok = fired[f] < nd->n_out;
        for (uint32_t f = 0; ok && rt[k].dirty && f < rt[k].dirty - 1; f++)
            ok = fired[f] < nd->n_out;
        if (!ok)
            return st_error(ST_ERR_FORMAT, "state snapshot corrupt: node '%s' is inconsistent",
                            nd->name);
    }
    memcpy(self->arena, arena, net->arena_len);
    return ST_OK;
}

/* ---- read access for the file formats (snn/model_file.c, snn/nir.c) ------ */

int st_snn_net_node_data(const st_snn_net *self, int id, st_snn_node_data *out)
{
    if (id < 0 || (size_t)id >= self->n_nodes)
        return st_error(ST_ERR_INVALID, "no node %d (there are %zu)", id, self->n_nodes);
    const node *nd = &self->nodes[id];
    *out = (st_snn_node_data){
        .src = nd->src,
        .n_src = nd->n_src,
        .w = nd->w,
        .bias = nd->bias,
        .ptr = nd->ptr,
        .idx = nd->idx,
        .val = nd->val,
        .delay = nd->delay,
        .conv = nd->conv,
    };
    return ST_OK;
}
