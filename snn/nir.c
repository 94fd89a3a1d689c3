/*  snn/nir.c - NIR in and out: the Neuromorphic Intermediate Representation
    (HDF5 files written by Norse, snnTorch, Rockpool, Sinabs, Spyx and the
    NIR paper) imported as a network of ours, and our networks exported.

    Import runs in three passes, so that each kind of error is found where it
    can be named best: read the HDF5 tree into plain structs (no checks but
    the file's own structure), flatten nested graphs and resolve every edge
    by name (an edge naming a node that does not exist is refused here,
    before any parameter is looked at), then infer shapes and build the
    engine's nodes, converting the neurons' tau, r and w_in by the exporter's
    convention (st_nir_convention, docs/NIR.md). Nested graphs' Input and
    Output nodes and Flatten only pass values on (our data is always flat),
    so edges are routed through them and they make no node.

    Sized for NIR graphs as they exist: tens of nodes, up to a few hundred
    thousand parameters; lookups are linear.

    May touch: the file it is given (export: a temporary file beside it,
    renamed over it), libhdf5 (whose automatic error printing is turned off
    for the calling thread during each call and restored after), the heap.
    Never prints. Any thread (Debian's libhdf5 is built thread-safe).
*/
#include "snn_impl.h"

#include <hdf5.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 16          /* nested graphs */
#define MAX_ELEMENTS (1u << 27) /* per dataset: 1 GiB of doubles */
#define MAX_NODES 100000

/* ======================================================================
   Conventions
   ====================================================================== */

static const char *const convention_names[ST_NIR_N_CONVENTIONS] = {
    [ST_NIR_NORSE] = "norse",
    [ST_NIR_SNNTORCH] = "snntorch",
    [ST_NIR_ROCKPOOL] = "rockpool",
    [ST_NIR_EXACT] = "exact",
};

st_nir_params st_nir_default_params(void)
{
    return (st_nir_params){
        .dt_s = 1e-4,
        .convention = ST_NIR_NORSE,
        .reset = ST_NIR_RESET_AUTO,
    };
}

const char *st_nir_convention_name(st_nir_convention convention)
{
    return (unsigned)convention < ST_NIR_N_CONVENTIONS ? convention_names[convention] : NULL;
}

int st_nir_convention_from_name(const char *name, st_nir_convention *out)
{
    for (int c = 0; c < ST_NIR_N_CONVENTIONS; c++)
        if (name && !strcmp(name, convention_names[c])) {
            *out = (st_nir_convention)c;
            return ST_OK;
        }
    return st_error(ST_ERR_NOT_FOUND, "no NIR convention '%s'; the conventions are norse, "
                                      "snntorch, rockpool and exact", name ? name : "(null)");
}

/* ======================================================================
   libhdf5 glue
   ====================================================================== */

/* Turns libhdf5's automatic error printing off for this thread, for the
   length of one call. */
typedef struct {
    H5E_auto2_t fn;
    void *data;
} h5_quiet;

static void quiet_begin(h5_quiet *q)
{
    q->fn = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_end(const h5_quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

/* The innermost reason on libhdf5's error stack ("truncated file: eof =
   ..."), for messages; empty when there is none. */
static herr_t walk_error(unsigned n, const H5E_error2_t *e, void *buf)
{
    if (n == 0 && e->desc && *e->desc)
        snprintf(buf, 200, "%s", e->desc);
    return 0;
}

static const char *h5_reason(char *buf)
{
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_error, buf);
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

static void close_id(hid_t *id)
{
    if (*id < 0)
        return;
    switch (H5Iget_type(*id)) {
    case H5I_FILE: H5Fclose(*id); break;
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    default: H5Oclose(*id); break;
    }
    *id = -1;
}

/* ======================================================================
   Pass 1: the HDF5 tree as plain structs
   ====================================================================== */

/* One dataset of a node: numbers (any integer or float type, as double)
   or strings. */
typedef struct {
    char *name;
    bool is_text;
    unsigned ndim;
    uint64_t dims[ST_TENSOR_MAX_DIMS];
    size_t count;
    double *num;  /* count values, C order */
    char **text;  /* count strings */
} nparam;

typedef struct ngraph ngraph;

typedef struct {
    char *name;   /* name in its graph */
    char *type;   /* NIR type: "LIF", "NIRGraph", ... */
    nparam *p;
    size_t n_p;
    ngraph *sub;  /* NIRGraph nodes */
} nnode;

struct ngraph {
    nnode *nodes;
    size_t n_nodes;
    char **edges; /* 2 n_edges names: from, to */
    size_t n_edges;
};

typedef struct {
    const char *label;  /* the file, for messages */
    size_t n_nodes;     /* read so far, against MAX_NODES */
} reader;

static int fail_at(const reader *r, const char *where, const char *fmt, ...) ST_PRINTF(3, 4);

static int fail_at(const reader *r, const char *where, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return st_error(ST_ERR_FORMAT, "NIR file '%s': %s: %s", r->label, where, msg);
}

/* "a/b" into out (cap bytes), cut short with "..." when too long: these
   are HDF5 paths for messages. */
static void subpath(char *out, size_t cap, const char *a, const char *b)
{
    const int n = snprintf(out, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap)
        memcpy(out + cap - 4, "...", 4);
}

static void param_free(nparam *p)
{
    free(p->name);
    free(p->num);
    if (p->text)
        for (size_t k = 0; k < p->count; k++)
            free(p->text[k]);
    free(p->text);
}

static void graph_free(ngraph *g);

static void node_free(nnode *n)
{
    free(n->name);
    free(n->type);
    for (size_t k = 0; k < n->n_p; k++)
        param_free(&n->p[k]);
    free(n->p);
    if (n->sub) {
        graph_free(n->sub);
        free(n->sub);
    }
}

static void graph_free(ngraph *g)
{
    for (size_t k = 0; k < g->n_nodes; k++)
        node_free(&g->nodes[k]);
    free(g->nodes);
    for (size_t k = 0; k < 2 * g->n_edges; k++)
        free(g->edges[k]);
    free(g->edges);
    memset(g, 0, sizeof *g);
}

/* Reads a dataset's shape. */
static int read_shape(const reader *r, const char *where, hid_t ds, nparam *p)
{
    hid_t space = H5Dget_space(ds);
    int rc = ST_OK;
    if (space < 0)
        return fail_at(r, where, "cannot read the dataset's shape");
    const H5S_class_t cls = H5Sget_simple_extent_type(space);
    p->ndim = 0;
    p->count = 1;
    if (cls == H5S_NULL) {
        p->count = 0;
    } else if (cls == H5S_SIMPLE) {
        hsize_t dims[H5S_MAX_RANK];
        const int nd = H5Sget_simple_extent_ndims(space);
        if (nd < 0 || nd > ST_TENSOR_MAX_DIMS || H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
            rc = fail_at(r, where, "%d dimensions; at most %d", nd, ST_TENSOR_MAX_DIMS);
        } else {
            p->ndim = (unsigned)nd;
            for (int d = 0; d < nd; d++) {
                p->dims[d] = dims[d];
                if (dims[d] && p->count > MAX_ELEMENTS / dims[d])
                    p->count = MAX_ELEMENTS + 1;
                else
                    p->count *= dims[d];
            }
            if (p->count > MAX_ELEMENTS)
                rc = fail_at(r, where, "too large (more than %u elements)", MAX_ELEMENTS);
        }
    } else if (cls != H5S_SCALAR) {
        rc = fail_at(r, where, "the dataset has no readable shape");
    }
    close_id(&space);
    return rc;
}

static int read_text(const reader *r, const char *where, hid_t ds, hid_t ftype, nparam *p)
{
    p->is_text = true;
    p->text = calloc(p->count ? p->count : 1, sizeof *p->text);
    if (!p->text)
        return st_error(ST_ERR_NOMEM, "out of memory reading '%s'", r->label);
    int rc = ST_OK;
    char why[200];
    hid_t mtype = H5Tcopy(H5T_C_S1), space = -1;
    if (mtype < 0)
        return fail_at(r, where, "cannot read the strings");
    H5Tset_cset(mtype, H5Tget_cset(ftype));
    if (H5Tis_variable_str(ftype) > 0) {
        H5Tset_size(mtype, H5T_VARIABLE);
        char **buf = calloc(p->count ? p->count : 1, sizeof *buf);
        space = H5Dget_space(ds);
        if (!buf) {
            rc = st_error(ST_ERR_NOMEM, "out of memory reading '%s'", r->label);
        } else if (p->count && H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            rc = fail_at(r, where, "cannot read the strings (%s)", h5_reason(why));
        } else {
            for (size_t k = 0; k < p->count && rc == ST_OK; k++)
                if (!(p->text[k] = strdup(buf[k] ? buf[k] : "")))
                    rc = st_error(ST_ERR_NOMEM, "out of memory reading '%s'", r->label);
            if (p->count) {
#if H5_VERSION_GE(1, 12, 0)
                H5Treclaim(mtype, space, H5P_DEFAULT, buf);
#else
                H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, buf);
#endif
            }
        }
        free(buf);
    } else {
        const size_t size = H5Tget_size(ftype);
        char *buf = NULL;
        if (size == 0 || size > 65536) {
            rc = fail_at(r, where, "strings of %zu bytes", size);
        } else if (!(buf = calloc(p->count ? p->count : 1, size + 1))) {
            rc = st_error(ST_ERR_NOMEM, "out of memory reading '%s'", r->label);
        } else {
            H5Tset_size(mtype, size + 1);
            H5Tset_strpad(mtype, H5T_STR_NULLTERM);
            if (p->count && H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
                rc = fail_at(r, where, "cannot read the strings (%s)", h5_reason(why));
            for (size_t k = 0; k < p->count && rc == ST_OK; k++) {
                buf[k * (size + 1) + size] = '\0';
                if (!(p->text[k] = strdup(buf + k * (size + 1))))
                    rc = st_error(ST_ERR_NOMEM, "out of memory reading '%s'", r->label);
            }
        }
        free(buf);
    }
    close_id(&space);
    close_id(&mtype);
    return rc;
}

/* Reads dataset `name` of group g into p. */
static int read_dataset(const reader *r, const char *where, hid_t g, const char *name, nparam *p)
{
    char why[200];
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT), ftype = -1;
    int rc = ST_OK;
    if (ds < 0)
        return fail_at(r, where, "cannot open the dataset (%s)", h5_reason(why));
    if (!(p->name = strdup(name))) {
        rc = st_error(ST_ERR_NOMEM, "out of memory reading '%s'", r->label);
        goto done;
    }
    if ((rc = read_shape(r, where, ds, p)) != ST_OK)
        goto done;
    ftype = H5Dget_type(ds);
    const H5T_class_t cls = ftype < 0 ? H5T_NO_CLASS : H5Tget_class(ftype);
    if (cls == H5T_STRING) {
        rc = read_text(r, where, ds, ftype, p);
    } else if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
        if (!(p->num = malloc((p->count ? p->count : 1) * sizeof *p->num)))
            rc = st_error(ST_ERR_NOMEM, "out of memory reading '%s'", r->label);
        else if (p->count &&
                 H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, p->num) < 0)
            rc = fail_at(r, where, "cannot read the numbers (%s)", h5_reason(why));
    } else {
        rc = fail_at(r, where, "holds neither numbers nor strings (HDF5 type class %d)",
                     (int)cls);
    }
done:
    close_id(&ftype);
    close_id(&ds);
    return rc;
}

/* The name of link k of group g (malloc'd), or NULL. */
static char *link_name(hid_t g, hsize_t k)
{
    const ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, k, NULL, 0,
                                           H5P_DEFAULT);
    if (len <= 0 || len > 4096)
        return NULL;
    char *name = malloc((size_t)len + 1);
    if (name && H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, k, name, (size_t)len + 1,
                                   H5P_DEFAULT) != len) {
        free(name);
        name = NULL;
    }
    return name;
}

/* Is `name` in g a dataset (1), a group (2), missing (0)? Only hard links
   count: a soft or external link could reach outside the file. */
static int member_kind(hid_t g, const char *name)
{
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0)
        return 0;
    H5L_info_t li;
    if (H5Lget_info(g, name, &li, H5P_DEFAULT) < 0 || li.type != H5L_TYPE_HARD)
        return -1;
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0)
        return -1;
    const H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    return t == H5I_DATASET ? 1 : t == H5I_GROUP ? 2 : -1;
}

static int read_graph(reader *r, hid_t g, const char *where, int depth, ngraph *out);

/* A node: a group with a "type" string and its parameters as datasets (a
   NIRGraph also has "nodes" and "edges"). */
static int read_node(reader *r, hid_t g, const char *name, const char *where, int depth,
                     nnode *n)
{
    int rc = ST_OK;
    char sub[1200];
    if (++r->n_nodes > MAX_NODES)
        return fail_at(r, where, "more than %d nodes", MAX_NODES);
    if (!(n->name = strdup(name)))
        return st_error(ST_ERR_NOMEM, "out of memory reading '%s'", r->label);
    subpath(sub, sizeof sub, where, "type");
    if (member_kind(g, "type") != 1)
        return fail_at(r, where, "the node has no 'type' dataset");
    nparam t = {0};
    rc = read_dataset(r, sub, g, "type", &t);
    if (rc == ST_OK && (!t.is_text || t.count != 1))
        rc = fail_at(r, sub, "not one string");
    if (rc == ST_OK && !(n->type = strdup(t.text[0])))
        rc = st_error(ST_ERR_NOMEM, "out of memory reading '%s'", r->label);
    param_free(&t);
    if (rc != ST_OK)
        return rc;
    if (!strcmp(n->type, "NIRGraph")) {
        if (!(n->sub = calloc(1, sizeof *n->sub)))
            return st_error(ST_ERR_NOMEM, "out of memory reading '%s'", r->label);
        return read_graph(r, g, where, depth + 1, n->sub);
    }
    H5G_info_t info;
    if (H5Gget_info(g, &info) < 0)
        return fail_at(r, where, "cannot list the node's datasets");
    n->p = calloc(info.nlinks ? info.nlinks : 1, sizeof *n->p);
    if (!n->p)
        return st_error(ST_ERR_NOMEM, "out of memory reading '%s'", r->label);
    for (hsize_t k = 0; k < info.nlinks && rc == ST_OK; k++) {
        char *pname = link_name(g, k);
        if (!pname)
            return fail_at(r, where, "cannot read the name of member %llu",
                           (unsigned long long)k);
        subpath(sub, sizeof sub, where, pname);
        const int kind = member_kind(g, pname);
        if (kind == 1 && strcmp(pname, "type"))
            rc = read_dataset(r, sub, g, pname, &n->p[n->n_p++]);
        else if (kind < 0)
            rc = fail_at(r, sub, "not a dataset or group of this file");
        /* groups inside a node (metadata, input_type dictionaries) carry
           nothing the engine uses */
        free(pname);
    }
    return rc;
}

static int read_graph(reader *r, hid_t g, const char *where, int depth, ngraph *out)
{
    char sub[1200], why[200];
    int rc = ST_OK;
    hid_t nodes = -1;
    if (depth > MAX_DEPTH)
        return fail_at(r, where, "graphs nested more than %d deep", MAX_DEPTH);
    subpath(sub, sizeof sub, where, "nodes");
    if (member_kind(g, "nodes") != 2)
        return fail_at(r, where, "a NIRGraph needs a 'nodes' group");
    if ((nodes = H5Gopen2(g, "nodes", H5P_DEFAULT)) < 0)
        return fail_at(r, sub, "cannot open (%s)", h5_reason(why));
    H5G_info_t info;
    if (H5Gget_info(nodes, &info) < 0) {
        rc = fail_at(r, sub, "cannot list the nodes");
        goto done;
    }
    if (!(out->nodes = calloc(info.nlinks ? info.nlinks : 1, sizeof *out->nodes))) {
        rc = st_error(ST_ERR_NOMEM, "out of memory reading '%s'", r->label);
        goto done;
    }
    for (hsize_t k = 0; k < info.nlinks && rc == ST_OK; k++) {
        char *name = link_name(nodes, k);
        if (!name) {
            rc = fail_at(r, sub, "cannot read the name of node %llu", (unsigned long long)k);
            break;
        }
        char at[1200];
        subpath(at, sizeof at, sub, name);
        hid_t ng = -1;
        if (member_kind(nodes, name) != 2)
            rc = fail_at(r, at, "a node must be a group");
        else if ((ng = H5Gopen2(nodes, name, H5P_DEFAULT)) < 0)
            rc = fail_at(r, at, "cannot open (%s)", h5_reason(why));
        else
            rc = read_node(r, ng, name, at, depth, &out->nodes[out->n_nodes++]);
        close_id(&ng);
        free(name);
    }
    if (rc != ST_OK)
        goto done;
    /* Edges: an E x 2 table of names. h5py writes an empty list as a
       0-element float dataset; a graph may also have no edges at all. */
    subpath(sub, sizeof sub, where, "edges");
    const int ek = member_kind(g, "edges");
    if (ek == 0)
        goto done;
    if (ek != 1) {
        rc = fail_at(r, sub, "must be a dataset");
        goto done;
    }
    nparam e = {0};
    rc = read_dataset(r, sub, g, "edges", &e);
    if (rc == ST_OK && e.count == 0) {
        param_free(&e);
        goto done;
    }
    if (rc == ST_OK && (!e.is_text || e.ndim != 2 || e.dims[1] != 2))
        rc = fail_at(r, sub, "must be an E x 2 table of node names, not %u-D %s", e.ndim,
                     e.is_text ? "strings" : "numbers");
    if (rc == ST_OK) {
        out->edges = e.text;
        out->n_edges = e.count / 2;
        e.text = NULL;
    }
    param_free(&e);
done:
    close_id(&nodes);
    return rc;
}

/* Reads the whole file. */
static int read_file(reader *r, hid_t file, ngraph *root)
{
    char why[200];
    int rc = ST_OK;
    hid_t node = -1;
    const int vk = member_kind(file, "version");
    if (vk == 1) {
        nparam v = {0};
        rc = read_dataset(r, "/version", file, "version", &v);
        param_free(&v);
        if (rc != ST_OK)
            return rc;
    }
    if (member_kind(file, "node") != 2)
        return fail_at(r, "/node", "missing: a NIR file keeps its graph in the group /node");
    if ((node = H5Gopen2(file, "node", H5P_DEFAULT)) < 0)
        return fail_at(r, "/node", "cannot open (%s)", h5_reason(why));
    nnode top = {0};
    rc = read_node(r, node, "", "/node", 0, &top);
    if (rc == ST_OK && !top.sub)
        rc = fail_at(r, "/node/type", "is '%s'; the top node must be a NIRGraph", top.type);
    if (rc == ST_OK) {
        *root = *top.sub;
        free(top.sub);
        top.sub = NULL;
    }
    node_free(&top);
    close_id(&node);
    return rc;
}

/* ======================================================================
   Pass 2: flatten, resolve edges
   ====================================================================== */

typedef enum {
    T_INPUT, T_OUTPUT, T_AFFINE, T_LINEAR, T_SCALE, T_LI, T_LIF, T_IF, T_I, T_CUBALI,
    T_CUBALIF, T_THRESHOLD, T_DELAY, T_CONV1D, T_CONV2D, T_FLATTEN, T_SUMPOOL2D, T_AVGPOOL2D,
    T_N_TYPES
} ntype;

static const char *const type_names[T_N_TYPES] = {
    "Input",   "Output",    "Affine", "Linear", "Scale",  "LI",      "LIF",
    "IF",      "I",         "CubaLI", "CubaLIF", "Threshold", "Delay", "Conv1d",
    "Conv2d",  "Flatten",   "SumPool2d", "AvgPool2d",
};

typedef struct {
    const nnode *nn;
    char *name;            /* full name: "<graph>.<node>" when nested */
    ntype type;
    bool top;              /* in the top-level graph */
    bool identity;         /* passes values on: nested Input/Output, Flatten */
    int *src;              /* flat ids of its sources, in edge order */
    size_t n_src, cap_src;
    long rank;             /* first appearance as an edge's target, -1: never */
    int *real;             /* sources once identity nodes are routed through */
    size_t n_real;
    /* shape of what it makes (pass 3) */
    bool known;
    unsigned ndim;
    uint64_t shape[ST_TENSOR_MAX_DIMS];
    int id, pre;           /* engine ids of the node and of its input scale */
} fnode;

typedef struct {
    char *name;            /* full name of a nested graph */
    int *ins, *outs;       /* flat ids of its Input and Output nodes */
    size_t n_ins, n_outs;
} fgraph;

typedef struct {
    reader r;
    const st_nir_params *par;
    fnode *v;
    size_t n, cap;
    fgraph *g;
    size_t n_g, cap_g;
    long n_ranked;         /* edge targets ranked so far */
} flat;

static void flat_free(flat *F)
{
    for (size_t k = 0; k < F->n; k++) {
        free(F->v[k].name);
        free(F->v[k].src);
        free(F->v[k].real);
    }
    free(F->v);
    for (size_t k = 0; k < F->n_g; k++) {
        free(F->g[k].name);
        free(F->g[k].ins);
        free(F->g[k].outs);
    }
    free(F->g);
}

static int nomem(const flat *F)
{
    return st_error(ST_ERR_NOMEM, "out of memory importing '%s'", F->r.label);
}

static int push_id(int **list, size_t *n, int id)
{
    int *l = realloc(*list, (*n + 1) * sizeof *l);
    if (!l)
        return ST_ERR_NOMEM;
    l[(*n)++] = id;
    *list = l;
    return ST_OK;
}

static char *join(const char *prefix, const char *name)
{
    const size_t a = strlen(prefix), b = strlen(name);
    char *s = malloc(a + b + 1);
    if (s) {
        memcpy(s, prefix, a);
        memcpy(s + a, name, b + 1);
    }
    return s;
}

static long find_flat(const flat *F, const char *name)
{
    for (size_t k = 0; k < F->n; k++)
        if (!strcmp(F->v[k].name, name))
            return (long)k;
    return -1;
}

static long find_graph(const flat *F, const char *name)
{
    for (size_t k = 0; k < F->n_g; k++)
        if (!strcmp(F->g[k].name, name))
            return (long)k;
    return -1;
}

/* "input, lif1, lin, output" for messages. */
static void list_names(const ngraph *g, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < g->n_nodes && at + 8 < cap; k++) {
        int w = snprintf(buf + at, cap - at, "%s%s", k ? ", " : "", g->nodes[k].name);
        if (w < 0 || (size_t)w >= cap - at) {
            snprintf(buf + (cap > 4 ? cap - 4 : 0), 4, "...");
            break;
        }
        at += (size_t)w;
    }
}

/* Flat ids an edge endpoint `name` of the graph at `prefix` stands for: a
   node, or a nested graph's Output (as a source) or Input (as a target)
   nodes. Names may reach into a nested graph with dots ("lif1.lif"). */
static int resolve(const flat *F, const char *prefix, const char *name, bool as_source,
                   const int **ids, size_t *n, int *one)
{
    char *full = join(prefix, name);
    if (!full)
        return nomem(F);
    long k = find_flat(F, full);
    if (k >= 0) {
        *one = (int)k;
        *ids = one;
        *n = 1;
    } else if ((k = find_graph(F, full)) >= 0) {
        *ids = as_source ? F->g[k].outs : F->g[k].ins;
        *n = as_source ? F->g[k].n_outs : F->g[k].n_ins;
        if (!*n) {
            int rc = st_error(ST_ERR_FORMAT, "NIR file '%s': an edge %s nested graph '%s', which "
                                             "has no %s node", F->r.label,
                              as_source ? "comes from" : "leads into", full,
                              as_source ? "Output" : "Input");
            free(full);
            return rc;
        }
    } else {
        *n = 0;
    }
    free(full);
    return ST_OK;
}

static int parse_type(const char *t, ntype *out)
{
    for (int k = 0; k < T_N_TYPES; k++)
        if (!strcmp(t, type_names[k])) {
            *out = (ntype)k;
            return ST_OK;
        }
    return ST_ERR_NOT_FOUND;
}

/* Adds graph g's nodes under `prefix` ("" at the top) and its edges; a
   nested graph's Input and Output ids go to *fg. */
static int flatten(flat *F, const ngraph *g, const char *prefix, const char *gname, bool top,
                   fgraph *fg)
{
    int rc = ST_OK;
    for (size_t k = 0; k < g->n_nodes && rc == ST_OK; k++) {
        const nnode *nn = &g->nodes[k];
        char *full = join(prefix, nn->name);
        if (!full)
            return nomem(F);
        if (find_flat(F, full) >= 0 || find_graph(F, full) >= 0) {
            rc = st_error(ST_ERR_FORMAT, "NIR file '%s': two nodes are called '%s' once nested "
                                         "graphs are flattened", F->r.label, full);
            free(full);
            break;
        }
        if (nn->sub) {
            if (F->n_g == F->cap_g) {
                size_t cap = F->cap_g ? 2 * F->cap_g : 8;
                fgraph *gs = realloc(F->g, cap * sizeof *gs);
                if (!gs) {
                    free(full);
                    return nomem(F);
                }
                F->g = gs;
                F->cap_g = cap;
            }
            const size_t gi = F->n_g++;
            F->g[gi] = (fgraph){.name = full};
            char *sub_prefix = join(full, ".");
            if (!sub_prefix)
                return nomem(F);
            fgraph tmp = {0};
            rc = flatten(F, nn->sub, sub_prefix, full, false, &tmp);
            F->g[gi].ins = tmp.ins;
            F->g[gi].n_ins = tmp.n_ins;
            F->g[gi].outs = tmp.outs;
            F->g[gi].n_outs = tmp.n_outs;
            free(sub_prefix);
            continue;
        }
        ntype type;
        if (parse_type(nn->type, &type) != ST_OK) {
            rc = st_error(ST_ERR_UNSUPPORTED, "NIR file '%s': node '%s' has type '%s', which "
                                              "this build does not import (see docs/NIR.md)",
                          F->r.label, full, nn->type);
            free(full);
            break;
        }
        if (F->n == F->cap) {
            size_t cap = F->cap ? 2 * F->cap : 32;
            fnode *v = realloc(F->v, cap * sizeof *v);
            if (!v) {
                free(full);
                return nomem(F);
            }
            F->v = v;
            F->cap = cap;
        }
        const int id = (int)F->n++;
        F->v[id] = (fnode){
            .nn = nn,
            .name = full,
            .type = type,
            .top = top,
            .identity = type == T_FLATTEN || (!top && (type == T_INPUT || type == T_OUTPUT)),
            .id = -1,
            .pre = -1,
            .rank = -1,
        };
        if (!top && type == T_INPUT && push_id(&fg->ins, &fg->n_ins, id) != ST_OK)
            return nomem(F);
        if (!top && type == T_OUTPUT && push_id(&fg->outs, &fg->n_outs, id) != ST_OK)
            return nomem(F);
    }
    for (size_t e = 0; e < g->n_edges && rc == ST_OK; e++) {
        const char *a = g->edges[2 * e], *b = g->edges[2 * e + 1];
        const int *from, *to;
        size_t n_from, n_to;
        int one_from, one_to;
        if ((rc = resolve(F, prefix, a, true, &from, &n_from, &one_from)) != ST_OK ||
            (rc = resolve(F, prefix, b, false, &to, &n_to, &one_to)) != ST_OK)
            break;
        if (!n_from || !n_to) {
            const char *missing = !n_from ? a : b;
            char names[400];
            list_names(g, names, sizeof names);
            rc = st_error(ST_ERR_FORMAT, "NIR file '%s': %s%s%s: edge '%s' -> '%s' names node "
                                         "'%s', which does not exist (the graph has: %s)",
                          F->r.label, top ? "the top graph" : "graph '",
                          top ? "" : gname, top ? "" : "'", a, b, missing, names);
            break;
        }
        for (size_t i = 0; i < n_from && rc == ST_OK; i++)
            for (size_t j = 0; j < n_to && rc == ST_OK; j++) {
                fnode *t = &F->v[to[j]];
                if (t->top && t->type == T_INPUT) {
                    rc = st_error(ST_ERR_FORMAT, "NIR file '%s': edge '%s' -> '%s' leads into "
                                                 "the graph's Input node", F->r.label, a, b);
                    break;
                }
                if (push_id(&t->src, &t->n_src, from[i]) != ST_OK)
                    rc = nomem(F);
                if (t->rank < 0)
                    t->rank = F->n_ranked++;
            }
    }
    return rc;
}

/* ======================================================================
   Pass 3: shapes, parameters, engine nodes
   ====================================================================== */

static const nparam *param(const fnode *f, const char *name)
{
    for (size_t k = 0; k < f->nn->n_p; k++)
        if (!strcmp(f->nn->p[k].name, name))
            return &f->nn->p[k];
    return NULL;
}

static int node_error(const flat *F, const fnode *f, int code, const char *fmt, ...)
    ST_PRINTF(4, 5);

static int node_error(const flat *F, const fnode *f, int code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return st_error(code, "NIR file '%s': node '%s' (%s): %s", F->r.label, f->name,
                    type_names[f->type], msg);
}

/* A required numeric dataset. */
static int need(const flat *F, const fnode *f, const char *name, const nparam **out)
{
    const nparam *p = param(f, name);
    if (!p)
        return node_error(F, f, ST_ERR_FORMAT, "no '%s' dataset", name);
    if (p->is_text)
        return node_error(F, f, ST_ERR_FORMAT, "'%s' holds text, not numbers", name);
    *out = p;
    return ST_OK;
}

/* An optional numeric dataset: NULL when absent. */
static int maybe(const flat *F, const fnode *f, const char *name, const nparam **out)
{
    *out = NULL;
    return param(f, name) ? need(F, f, name, out) : ST_OK;
}

static uint64_t product(unsigned ndim, const uint64_t *dims)
{
    uint64_t n = 1;
    for (unsigned k = 0; k < ndim; k++)
        n *= dims[k];
    return n;
}

static const char *shape_str(char *buf, size_t cap, unsigned ndim, const uint64_t *dims)
{
    int at = snprintf(buf, cap, "[");
    for (unsigned k = 0; k < ndim && at > 0 && (size_t)at < cap; k++)
        at += snprintf(buf + at, cap - (size_t)at, "%s%llu", k ? ", " : "",
                       (unsigned long long)dims[k]);
    if (at > 0 && (size_t)at < cap)
        snprintf(buf + at, cap - (size_t)at, "]");
    return buf;
}

/* A whole number >= lo from a dataset element. */
static bool whole(double v, double lo, uint32_t *out)
{
    if (!(v >= lo) || v > 1e9 || v != floor(v))
        return false;
    *out = (uint32_t)v;
    return true;
}

/* One or two whole numbers (a scalar applies to both axes): stride,
   padding, dilation, kernel_size. */
static int pair(const flat *F, const fnode *f, const char *name, uint32_t dflt, double lo,
                unsigned want, uint32_t out[2])
{
    const nparam *p = param(f, name);
    out[0] = out[1] = dflt;
    if (!p)
        return ST_OK;
    if (p->is_text || (p->count != 1 && p->count != want))
        return node_error(F, f, ST_ERR_FORMAT, "'%s' must be %s%s", name,
                          want == 2 ? "one or two whole numbers" : "one whole number",
                          p->is_text ? ", not text" : "");
    for (unsigned k = 0; k < want; k++)
        if (!whole(p->num[p->count == 1 ? 0 : k], lo, &out[k]))
            return node_error(F, f, ST_ERR_FORMAT, "'%s' must hold whole numbers >= %g, not %g",
                              name, lo, p->num[p->count == 1 ? 0 : k]);
    if (want == 1)
        out[1] = out[0];
    return ST_OK;
}

/* The shape a parameter array gives an elementwise node (a single value
   gives none: it is broadcast). */
static bool shape_from_param(fnode *f, const char *const *names)
{
    for (; *names; names++) {
        const nparam *p = param(f, *names);
        if (p && !p->is_text && p->count > 1) {
            f->ndim = p->ndim;
            memcpy(f->shape, p->dims, sizeof f->shape);
            return true;
        }
    }
    return false;
}

static const char *const elementwise_params[T_N_TYPES][8] = {
    [T_SCALE] = {"scale", NULL},
    [T_THRESHOLD] = {"threshold", NULL},
    [T_DELAY] = {"delay", NULL},
    [T_LI] = {"tau", "r", "v_leak", NULL},
    [T_LIF] = {"tau", "r", "v_leak", "v_threshold", "v_reset", NULL},
    [T_IF] = {"r", "v_threshold", "v_reset", NULL},
    [T_I] = {"r", NULL},
    [T_CUBALI] = {"tau_mem", "tau_syn", "r", "v_leak", "w_in", NULL},
    [T_CUBALIF] = {"tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in", NULL},
};

/* The shape of the first source that has one. */
static const fnode *known_source(const flat *F, const fnode *f)
{
    for (size_t s = 0; s < f->n_src; s++)
        if (F->v[f->src[s]].known)
            return &F->v[f->src[s]];
    return NULL;
}

static void set_shape(fnode *f, unsigned ndim, const uint64_t *dims)
{
    f->ndim = ndim;
    memset(f->shape, 0, sizeof f->shape);
    memcpy(f->shape, dims, ndim * sizeof *dims);
    f->known = true;
}

/* The input extent of a convolution or pooling: [channels, (height,)
   width] from the source's shape, or from input_shape. */
static int conv_input(const flat *F, const fnode *f, unsigned spatial, uint64_t channels,
                      uint64_t in[3], bool *ok)
{
    *ok = false;
    const nparam *is = param(f, "input_shape");
    if (is && !is->is_text && is->count == spatial) {
        in[0] = channels;
        for (unsigned k = 0; k < spatial; k++) {
            uint32_t v;
            if (!whole(is->num[k], 1, &v))
                return node_error(F, f, ST_ERR_FORMAT, "'input_shape' must hold whole numbers "
                                                       ">= 1");
            in[1 + k] = v;
        }
        *ok = true;
        return ST_OK;
    }
    const fnode *s = known_source(F, f);
    if (!s)
        return ST_OK;
    if (s->ndim == spatial + 1) {
        memcpy(in, s->shape, (spatial + 1) * sizeof *in);
        if (channels && in[0] != channels) {
            char b[96];
            return node_error(F, f, ST_ERR_FORMAT, "its weights take %llu channels but its "
                                                   "source '%s' makes %s",
                              (unsigned long long)channels, s->name,
                              shape_str(b, sizeof b, s->ndim, s->shape));
        }
        *ok = true;
        return ST_OK;
    }
    char b[96];
    return node_error(F, f, ST_ERR_FORMAT, "needs a [channels, %s] input; its source '%s' "
                                           "makes %s (give the node an 'input_shape')",
                      spatial == 2 ? "height, width" : "length", s->name,
                      shape_str(b, sizeof b, s->ndim, s->shape));
}

/* Output extent of one convolution axis, padding already resolved. */
static uint64_t conv_extent(uint64_t in, uint32_t k, uint32_t stride, uint32_t pad, uint32_t dil)
{
    const int64_t span = (int64_t)dil * (k - 1) + 1, room = (int64_t)in + 2 * (int64_t)pad;
    return room < span || !stride ? 0 : (uint64_t)((room - span) / stride + 1);
}

/* Convolution geometry from the node's datasets and its input extent. */
static int conv_geometry(const flat *F, const fnode *f, const uint64_t in[3], unsigned spatial,
                         st_snn_conv_shape *c)
{
    const nparam *w;
    int rc = need(F, f, "weight", &w);
    if (rc != ST_OK)
        return rc;
    char b[96];
    if (w->ndim != spatial + 2)
        return node_error(F, f, ST_ERR_FORMAT, "'weight' is %s; expected [out_channels, "
                                               "in_channels/groups, %s]",
                          shape_str(b, sizeof b, w->ndim, w->dims),
                          spatial == 2 ? "kernel_h, kernel_w" : "kernel");
    uint32_t groups[2], stride[2], dil[2], pad[2] = {0, 0};
    if ((rc = pair(F, f, "groups", 1, 1, 1, groups)) != ST_OK ||
        (rc = pair(F, f, "stride", 1, 1, spatial, stride)) != ST_OK ||
        (rc = pair(F, f, "dilation", 1, 1, spatial, dil)) != ST_OK)
        return rc;
    const uint64_t kh = spatial == 2 ? w->dims[2] : 1, kw = w->dims[spatial + 1];
    const nparam *pp = param(f, "padding");
    if (pp && pp->is_text) {
        const char *mode = pp->count ? pp->text[0] : "";
        const uint64_t span_h = dil[0] * (kh - 1), span_w = dil[1] * (kw - 1);
        if (!strcmp(mode, "valid")) {
            pad[0] = pad[1] = 0;
        } else if (!strcmp(mode, "same") && span_h % 2 == 0 && span_w % 2 == 0 &&
                   stride[0] == 1 && stride[1] == 1) {
            pad[0] = (uint32_t)(span_h / 2);
            pad[1] = (uint32_t)(span_w / 2);
        } else {
            return node_error(F, f, ST_ERR_UNSUPPORTED, "padding '%s' (only 'valid', whole "
                                                        "numbers, and 'same' with stride 1 "
                                                        "and an odd kernel span)", mode);
        }
    } else if ((rc = pair(F, f, "padding", 0, 0, spatial, pad)) != ST_OK) {
        return rc;
    }
    *c = (st_snn_conv_shape){
        .in_channels = (uint32_t)in[0],
        .out_channels = (uint32_t)w->dims[0],
        .groups = groups[0],
        .height = spatial == 2 ? (uint32_t)in[1] : 1,
        .width = (uint32_t)in[spatial],
        .kernel_h = (uint32_t)kh,
        .kernel_w = (uint32_t)kw,
        .stride_h = spatial == 2 ? stride[0] : 1,
        .stride_w = spatial == 2 ? stride[1] : stride[0],
        .padding_h = spatial == 2 ? pad[0] : 0,
        .padding_w = spatial == 2 ? pad[1] : pad[0],
        .dilation_h = spatial == 2 ? dil[0] : 1,
        .dilation_w = spatial == 2 ? dil[1] : dil[0],
    };
    if (w->dims[1] * groups[0] != in[0] || w->dims[0] > UINT32_MAX || kh > UINT32_MAX ||
        kw > UINT32_MAX)
        return node_error(F, f, ST_ERR_FORMAT, "'weight' %s with groups = %u does not take "
                                               "the %llu input channels",
                          shape_str(b, sizeof b, w->ndim, w->dims), groups[0],
                          (unsigned long long)in[0]);
    return ST_OK;
}

/* A node's own 'shape' dataset (Input, Output). */
static int declared_shape(const flat *F, fnode *f, bool required)
{
    const nparam *sh = param(f, "shape");
    if (!sh && !required)
        return ST_OK;
    if (!sh)
        return node_error(F, f, ST_ERR_FORMAT, "no 'shape' dataset");
    if (sh->is_text || sh->count < 1 || sh->count > ST_TENSOR_MAX_DIMS)
        return node_error(F, f, ST_ERR_FORMAT, "'shape' must be 1 to %d whole numbers",
                          ST_TENSOR_MAX_DIMS);
    uint64_t d[ST_TENSOR_MAX_DIMS];
    for (size_t i = 0; i < sh->count; i++) {
        uint32_t v;
        if (!whole(sh->num[i], 1, &v))
            return node_error(F, f, ST_ERR_FORMAT, "'shape' must hold whole numbers >= 1, not "
                                                   "%g", sh->num[i]);
        d[i] = v;
    }
    set_shape(f, (unsigned)sh->count, d);
    return ST_OK;
}

/* Logs when a node's declared 'shape' disagrees with what reaches it. */
static void warn_declared(const flat *F, const fnode *f)
{
    const nparam *sh = param(f, "shape");
    if (!sh || sh->is_text || sh->count < 1 || sh->count > ST_TENSOR_MAX_DIMS)
        return;
    double n = 1;
    for (size_t i = 0; i < sh->count; i++)
        n *= sh->num[i];
    if (n != (double)product(f->ndim, f->shape))
        st_log(ST_LOG_WARN, "NIR file '%s': node '%s' (%s) declares %g values but %llu reach "
                            "it; using %llu", F->r.label, f->name, type_names[f->type], n,
               (unsigned long long)product(f->ndim, f->shape),
               (unsigned long long)product(f->ndim, f->shape));
}

/* Pass 3a: what each node makes, iterated until nothing changes (sources
   may come later in file order, and cycles go through neurons, whose shape
   their parameters give). */
static int infer_shapes(flat *F)
{
    for (size_t round = 0; round <= F->n + 1; round++) {
        bool changed = false;
        for (size_t k = 0; k < F->n; k++) {
            fnode *f = &F->v[k];
            if (f->known)
                continue;
            const fnode *s = known_source(F, f);
            const nparam *p;
            int rc;
            switch (f->type) {
            case T_INPUT:
            case T_OUTPUT:
                if (f->top && f->type == T_INPUT) {
                    if ((rc = declared_shape(F, f, true)) != ST_OK)
                        return rc;
                } else if (s) {
                    /* A nested Input or an Output takes what arrives (and
                       says so when it declared otherwise: Rockpool's
                       braille graph declares 12 values where 38 arrive). */
                    set_shape(f, s->ndim, s->shape);
                    warn_declared(F, f);
                }
                break;
            case T_AFFINE:
            case T_LINEAR:
                if ((rc = need(F, f, "weight", &p)) != ST_OK)
                    return rc;
                if (p->ndim != 2) {
                    char b[96];
                    return node_error(F, f, p->ndim > 2 ? ST_ERR_UNSUPPORTED : ST_ERR_FORMAT,
                                      "'weight' is %s; expected a 2-D [outputs, inputs] matrix",
                                      shape_str(b, sizeof b, p->ndim, p->dims));
                }
                set_shape(f, 1, &p->dims[0]);
                break;
            case T_SCALE:
            case T_THRESHOLD:
            case T_DELAY:
            case T_LI:
            case T_LIF:
            case T_IF:
            case T_I:
            case T_CUBALI:
            case T_CUBALIF:
                if (shape_from_param(f, elementwise_params[f->type]))
                    f->known = true;
                else if (s)
                    set_shape(f, s->ndim, s->shape);
                break;
            case T_FLATTEN: {
                uint64_t in[8];
                unsigned nd = 0;
                const nparam *it = param(f, "input_type");
                if (it && !it->is_text && it->count >= 1 && it->count <= 8) {
                    nd = (unsigned)it->count;
                    for (unsigned i = 0; i < nd; i++)
                        in[i] = it->num[i] >= 1 ? (uint64_t)it->num[i] : 1;
                } else if (s) {
                    nd = s->ndim;
                    memcpy(in, s->shape, nd * sizeof *in);
                } else {
                    break;
                }
                const nparam *sd = param(f, "start_dim"), *ed = param(f, "end_dim");
                long start = sd && !sd->is_text && sd->count == 1 ? (long)sd->num[0] : 1;
                long end = ed && !ed->is_text && ed->count == 1 ? (long)ed->num[0] : -1;
                start = start < 0 ? start + (long)nd : start;
                end = end < 0 ? end + (long)nd : end;
                if (start < 0 || end >= (long)nd || start > end) {
                    start = 0; /* flatten everything: our data is flat anyway */
                    end = (long)nd - 1;
                }
                uint64_t out[8];
                unsigned on = 0;
                for (long i = 0; i < (long)nd; i++) {
                    if (i > start && i <= end)
                        out[on - 1] *= in[i];
                    else
                        out[on++] = in[i];
                }
                set_shape(f, on, out);
                break;
            }
            case T_CONV1D:
            case T_CONV2D: {
                const unsigned spatial = f->type == T_CONV2D ? 2 : 1;
                if ((rc = need(F, f, "weight", &p)) != ST_OK)
                    return rc;
                uint32_t groups[2];
                if ((rc = pair(F, f, "groups", 1, 1, 1, groups)) != ST_OK)
                    return rc;
                uint64_t in[3];
                bool ok;
                if (p->ndim < 2)
                    return node_error(F, f, ST_ERR_FORMAT, "'weight' must have %u dimensions",
                                      spatial + 2);
                if ((rc = conv_input(F, f, spatial, p->dims[1] * groups[0], in, &ok)) != ST_OK)
                    return rc;
                if (!ok)
                    break;
                st_snn_conv_shape c;
                if ((rc = conv_geometry(F, f, in, spatial, &c)) != ST_OK)
                    return rc;
                const uint64_t oh = conv_extent(c.height, c.kernel_h, c.stride_h, c.padding_h,
                                                c.dilation_h);
                const uint64_t ow = conv_extent(c.width, c.kernel_w, c.stride_w, c.padding_w,
                                                c.dilation_w);
                if (!oh || !ow)
                    return node_error(F, f, ST_ERR_FORMAT, "the kernel does not fit the input");
                const uint64_t out[3] = {c.out_channels, spatial == 2 ? oh : ow, ow};
                set_shape(f, spatial + 1, out);
                break;
            }
            case T_SUMPOOL2D:
            case T_AVGPOOL2D: {
                uint64_t in[3];
                bool ok;
                if ((rc = conv_input(F, f, 2, 0, in, &ok)) != ST_OK)
                    return rc;
                if (!ok)
                    break;
                uint32_t ks[2], st[2], pd[2];
                if ((rc = pair(F, f, "kernel_size", 0, 1, 2, ks)) != ST_OK)
                    return rc;
                if (!ks[0])
                    return node_error(F, f, ST_ERR_FORMAT, "no 'kernel_size' dataset");
                if ((rc = pair(F, f, "stride", 0, 1, 2, st)) != ST_OK ||
                    (rc = pair(F, f, "padding", 0, 0, 2, pd)) != ST_OK)
                    return rc;
                if (!st[0]) {
                    st[0] = ks[0];
                    st[1] = ks[1];
                }
                const uint64_t oh = conv_extent(in[1], ks[0], st[0], pd[0], 1);
                const uint64_t ow = conv_extent(in[2], ks[1], st[1], pd[1], 1);
                if (!oh || !ow)
                    return node_error(F, f, ST_ERR_FORMAT, "the kernel does not fit the input");
                const uint64_t out[3] = {in[0], oh, ow};
                set_shape(f, 3, out);
                break;
            }
            default: break;
            }
            changed |= f->known;
        }
        if (!changed)
            break;
    }
    for (size_t k = 0; k < F->n; k++) {
        fnode *f = &F->v[k];
        if (!f->known)
            return node_error(F, f, ST_ERR_FORMAT, "cannot tell its size: no source with a "
                                                   "known shape reaches it");
        if (product(f->ndim, f->shape) == 0 || product(f->ndim, f->shape) > UINT32_MAX)
            return node_error(F, f, ST_ERR_FORMAT, "%llu values is not a usable size",
                              (unsigned long long)product(f->ndim, f->shape));
    }
    return ST_OK;
}

/* Values of a per-element dataset for n elements: one value is broadcast.
   `dflt` is used when the dataset is absent and not required. */
static int vec(const flat *F, const fnode *f, const char *name, bool required, double dflt,
               size_t n, double *out)
{
    const nparam *p = param(f, name);
    if (!p) {
        if (required)
            return node_error(F, f, ST_ERR_FORMAT, "no '%s' dataset", name);
        for (size_t k = 0; k < n; k++)
            out[k] = dflt;
        return ST_OK;
    }
    if (p->is_text)
        return node_error(F, f, ST_ERR_FORMAT, "'%s' holds text, not numbers", name);
    if (p->count != 1 && p->count != n)
        return node_error(F, f, ST_ERR_FORMAT, "'%s' has %zu values for %zu elements", name,
                          p->count, n);
    for (size_t k = 0; k < n; k++) {
        out[k] = p->num[p->count == 1 ? 0 : k];
        if (isnan(out[k]))
            return node_error(F, f, ST_ERR_FORMAT, "'%s' holds NaN at element %zu", name, k);
    }
    return ST_OK;
}

static float *to_floats(const double *x, size_t n)
{
    float *y = malloc((n ? n : 1) * sizeof *y);
    if (y)
        for (size_t k = 0; k < n; k++)
            y[k] = (float)x[k];
    return y;
}

/* Decay rate and decay complement for one time constant, by convention:
   Euler a = dt / tau (rate 1 / tau), exponential a = 1 - e^(-dt/tau). A tau
   of +inf is no leak. */
static int rate_of(const flat *F, const fnode *f, const char *name, double tau, double *rate,
                   double *a)
{
    const double dt = F->par->dt_s;
    if (!(tau > 0))
        return node_error(F, f, ST_ERR_FORMAT, "'%s' must be > 0 seconds, not %g", name, tau);
    if (isinf(tau)) {
        *rate = 0;
        *a = 0;
        return ST_OK;
    }
    if (F->par->convention == ST_NIR_ROCKPOOL || F->par->convention == ST_NIR_EXACT) {
        *a = -expm1(-dt / tau);
        *rate = *a / dt;
    } else {
        *rate = 1.0 / tau;
        *a = dt / tau;
    }
    return ST_OK;
}

/* A population for a neuron node (and a scale before it when the input
   gain is not 1 everywhere). */
static int build_neurons(flat *F, fnode *f, st_snn_net *net, size_t n)
{
    const st_nir_convention conv = F->par->convention;
    const bool rockpool = conv == ST_NIR_ROCKPOOL;
    st_snn_reset reset = rockpool ? ST_SNN_RESET_SUBTRACT : ST_SNN_RESET_VALUE;
    if (F->par->reset == ST_NIR_RESET_VALUE)
        reset = ST_SNN_RESET_VALUE;
    else if (F->par->reset == ST_NIR_RESET_SUBTRACT)
        reset = ST_SNN_RESET_SUBTRACT;
    st_snn_model model;
    switch (f->type) {
    case T_LIF: model = ST_SNN_LIFBOX; break;
    case T_LI: model = ST_SNN_LIBOX; break;
    case T_IF: model = ST_SNN_IAF; break;
    case T_I: model = ST_SNN_INTEGRATOR; break;
    case T_CUBALIF: model = ST_SNN_CUBALIF; break;
    default: model = ST_SNN_CUBALI; break;
    }
    const bool cuba = f->type == T_CUBALIF || f->type == T_CUBALI;
    const bool leaky = f->type == T_LIF || f->type == T_LI;
    const bool spiking = f->type == T_LIF || f->type == T_IF || f->type == T_CUBALIF;
    enum { TAU, TAU_SYN, R, V_LEAK, V_TH, V_RESET, W_IN, N_COLS };
    double *col = malloc(N_COLS * n * sizeof *col);
    double *gain = malloc(n * sizeof *gain);
    st_snn_neuron_params *p = malloc(n * sizeof *p);
    int rc = ST_OK;
    if (!col || !gain || !p) {
        rc = nomem(F);
        goto done;
    }
    double *tau = col + TAU * n, *tau_syn = col + TAU_SYN * n, *r = col + R * n,
           *v_leak = col + V_LEAK * n, *v_th = col + V_TH * n, *v_reset = col + V_RESET * n,
           *w_in = col + W_IN * n;
    if ((rc = vec(F, f, cuba ? "tau_mem" : "tau", leaky || cuba, INFINITY, n, tau)) ||
        (rc = vec(F, f, "tau_syn", cuba, INFINITY, n, tau_syn)) ||
        (rc = vec(F, f, "r", true, 1, n, r)) ||
        (rc = vec(F, f, "v_leak", leaky || cuba, 0, n, v_leak)) ||
        (rc = vec(F, f, "v_threshold", spiking, 1, n, v_th)) ||
        (rc = vec(F, f, "v_reset", false, 0, n, v_reset)) ||
        (rc = vec(F, f, "w_in", false, 1, n, w_in)))
        goto done;
    bool all_unit = true;
    for (size_t k = 0; k < n; k++) {
        st_snn_neuron_params *q = &p[k];
        *q = st_snn_neuron_default_params(model);
        q->dt = F->par->dt_s;
        q->reset = reset;
        q->v_leak = (float)v_leak[k];
        q->v_th = (float)v_th[k];
        q->v_reset = (float)v_reset[k];
        gain[k] = r[k];
        if (leaky || cuba) {
            double rate, a;
            if ((rc = rate_of(F, f, cuba ? "tau_mem" : "tau", tau[k], &rate, &a)) != ST_OK)
                goto done;
            q->tau_mem_inv = (float)rate;
            /* Rockpool adds the input undecayed: v' = alpha v + g x with
               g = r dt / (tau alpha), so the engine's a (x' + ...) needs
               x' = g x / a. */
            if (rockpool && a > 0)
                gain[k] = r[k] * F->par->dt_s / (tau[k] * (1 - a)) / a;
        }
        if (cuba) {
            double rate, a;
            if ((rc = rate_of(F, f, "tau_syn", tau_syn[k], &rate, &a)) != ST_OK)
                goto done;
            q->tau_syn_inv = (float)rate;
            q->w_in = (float)(rockpool && a > 0 ? w_in[k] / a : w_in[k]);
            q->r = (float)gain[k];
            gain[k] = 1; /* the engine's cubalif has r and w_in itself */
        }
        if (!isfinite(gain[k]) || !isfinite(q->w_in) || !isfinite(q->r)) {
            rc = node_error(F, f, ST_ERR_FORMAT, "neuron %zu's input gain is not finite (r, "
                                                 "w_in or tau out of range)", k);
            goto done;
        }
        all_unit &= gain[k] == 1;
    }
    if (!all_unit) {
        float *s = to_floats(gain, n);
        char *name = join(f->name, ".r");
        if (!s || !name)
            rc = nomem(F);
        else if (find_flat(F, name) >= 0)
            rc = node_error(F, f, ST_ERR_FORMAT, "its input scale would be called '%s', which "
                                                 "another node is", name);
        else
            rc = st_snn_net_add_scale(net, name, n, s);
        free(s);
        free(name);
        if (rc < 0)
            goto done;
        f->pre = rc;
    }
    rc = st_snn_net_add_neurons_each(net, f->name, p, n);
    if (rc >= 0)
        f->id = rc;
done:
    free(col);
    free(gain);
    free(p);
    return rc < 0 ? rc : ST_OK;
}

/* A bias of zeros is no bias: the engine then skips it, and our export
   writes Linear for it and a pool exported as a convolution comes back
   unchanged. NULL for no bias (or out of memory: *nomem_p). */
static float *bias_floats(const nparam *b, bool *nomem_p)
{
    *nomem_p = false;
    if (!b)
        return NULL;
    bool zero = true;
    for (size_t k = 0; k < b->count && zero; k++)
        zero = b->num[k] == 0;
    if (zero)
        return NULL;
    float *f = to_floats(b->num, b->count);
    *nomem_p = !f;
    return f;
}

/* Pass 3b: one engine node per NIR node that computes something. */
static int build_node(flat *F, fnode *f, st_snn_net *net)
{
    const size_t n_out = (size_t)product(f->ndim, f->shape);
    const nparam *w, *b;
    float *fw = NULL, *fb = NULL;
    bool fb_nomem = false;
    int rc = ST_OK;
    switch (f->type) {
    case T_INPUT: rc = st_snn_net_add_input(net, f->name, n_out); break;
    case T_OUTPUT: rc = st_snn_net_add_output(net, f->name, n_out); break;
    case T_AFFINE:
    case T_LINEAR:
        if ((rc = need(F, f, "weight", &w)) || (rc = maybe(F, f, "bias", &b)))
            break;
        if (f->type == T_LINEAR)
            b = NULL;
        if (b && b->count != w->dims[0]) {
            rc = node_error(F, f, ST_ERR_FORMAT, "'bias' has %zu values for %llu outputs",
                            b->count, (unsigned long long)w->dims[0]);
            break;
        }
        fw = to_floats(w->num, w->count);
        fb = bias_floats(b, &fb_nomem);
        if (!fw || fb_nomem)
            rc = nomem(F);
        else
            rc = st_snn_net_add_dense(net, f->name, (size_t)w->dims[0], (size_t)w->dims[1], fw,
                                      fb);
        break;
    case T_SCALE:
    case T_THRESHOLD: {
        double *v = malloc(n_out * sizeof *v);
        const char *what = f->type == T_SCALE ? "scale" : "threshold";
        if (!v) {
            rc = nomem(F);
        } else if ((rc = vec(F, f, what, true, 0, n_out, v)) == ST_OK) {
            if (!(fw = to_floats(v, n_out)))
                rc = nomem(F);
            else if (f->type == T_SCALE)
                rc = st_snn_net_add_scale(net, f->name, n_out, fw);
            else
                rc = st_snn_net_add_threshold(net, f->name, n_out, fw);
        }
        free(v);
        break;
    }
    case T_DELAY: {
        double *v = malloc(n_out * sizeof *v);
        uint32_t *steps = malloc(n_out * sizeof *steps);
        if (!v || !steps) {
            rc = nomem(F);
        } else if ((rc = vec(F, f, "delay", true, 0, n_out, v)) == ST_OK) {
            for (size_t k = 0; k < n_out && rc == ST_OK; k++) {
                const double q = v[k] / F->par->dt_s, r = nearbyint(q);
                if (!(r >= 0) || r > 65535 || fabs(q - r) > 1e-3 * fmax(1, r))
                    rc = node_error(F, f, ST_ERR_UNSUPPORTED, "element %zu delays by %g s, "
                                                              "which is not a whole number of "
                                                              "%g s steps up to 65535 (give "
                                                              "the exporter's dt)", k, v[k],
                                    F->par->dt_s);
                else
                    steps[k] = (uint32_t)r;
            }
            if (rc == ST_OK)
                rc = st_snn_net_add_delay(net, f->name, n_out, steps);
        }
        free(v);
        free(steps);
        break;
    }
    case T_CONV1D:
    case T_CONV2D: {
        const unsigned spatial = f->type == T_CONV2D ? 2 : 1;
        uint64_t in[3];
        bool ok;
        const nparam *wt;
        uint32_t groups[2];
        st_snn_conv_shape c;
        if ((rc = need(F, f, "weight", &wt)) || (rc = pair(F, f, "groups", 1, 1, 1, groups)) ||
            (rc = conv_input(F, f, spatial, wt->dims[1] * groups[0], in, &ok)) ||
            (rc = conv_geometry(F, f, in, spatial, &c)) || (rc = maybe(F, f, "bias", &b)))
            break;
        if (b && b->count != c.out_channels) {
            rc = node_error(F, f, ST_ERR_FORMAT, "'bias' has %zu values for %u channels",
                            b->count, c.out_channels);
            break;
        }
        fw = to_floats(wt->num, wt->count);
        fb = bias_floats(b, &fb_nomem);
        if (!fw || fb_nomem)
            rc = nomem(F);
        else
            rc = st_snn_net_add_conv(net, f->name, &c, fw, fb);
        break;
    }
    case T_SUMPOOL2D:
    case T_AVGPOOL2D: {
        uint64_t in[3];
        bool ok;
        uint32_t ks[2], st[2], pd[2];
        if ((rc = conv_input(F, f, 2, 0, in, &ok)) ||
            (rc = pair(F, f, "kernel_size", 0, 1, 2, ks)) ||
            (rc = pair(F, f, "stride", 0, 1, 2, st)) || (rc = pair(F, f, "padding", 0, 0, 2, pd)))
            break;
        if (!st[0]) {
            st[0] = ks[0];
            st[1] = ks[1];
        }
        rc = st_snn_net_add_pool2d(net, f->name, (uint32_t)in[0], (uint32_t)in[1],
                                   (uint32_t)in[2], ks[0], ks[1], st[0], st[1], pd[0], pd[1],
                                   f->type == T_AVGPOOL2D);
        break;
    }
    case T_LI:
    case T_LIF:
    case T_IF:
    case T_I:
    case T_CUBALI:
    case T_CUBALIF:
        return build_neurons(F, f, net, n_out);
    case T_FLATTEN:
    case T_N_TYPES: break;
    }
    free(fw);
    free(fb);
    if (rc >= 0 && f->type != T_FLATTEN)
        f->id = rc;
    return rc < 0 ? rc : ST_OK;
}

/* The real sources of a node: its sources, with identity nodes replaced by
   theirs (recursively). */
static int real_sources(const flat *F, const fnode *f, int depth, int **out, size_t *n)
{
    if (depth > 64)
        return node_error(F, f, ST_ERR_FORMAT, "is part of a loop that only passes values on");
    for (size_t s = 0; s < f->n_src; s++) {
        const fnode *src = &F->v[f->src[s]];
        int rc = src->identity ? real_sources(F, src, depth + 1, out, n)
                               : push_id(out, n, f->src[s]) == ST_OK ? ST_OK : nomem(F);
        if (rc != ST_OK)
            return rc;
    }
    return ST_OK;
}

/* Wraps an engine error with the file's name. */
static int engine_fail(const flat *F, int rc)
{
    char why[500];
    snprintf(why, sizeof why, "%s", st_errmsg());
    if (strstr(why, "NIR file '") == why)
        return rc; /* already ours */
    return st_error(rc == ST_ERR_NOMEM || rc == ST_ERR_UNSUPPORTED ? rc : ST_ERR_FORMAT,
                    "NIR file '%s': %s", F->r.label, why);
}

/* The order the engine gets its nodes in, which fixes its stepping plan
   (st_snn_net_finish: Kahn's order, lowest id first, a cycle entered at the
   lowest id that has a source already placed). Here ids follow the data:
   Kahn's order over the real nodes, top Inputs first in name order, then
   by first appearance as an edge's target. Our exporter writes edges
   grouped by target in stepping order, so a network exported and imported
   again steps in the same order and every cycle reads the previous step at
   the same edge. */
static bool before(const fnode *a, const fnode *b)
{
    const bool ia = a->top && a->type == T_INPUT, ib = b->top && b->type == T_INPUT;
    if (ia != ib)
        return ia;
    if (!ia && a->rank != b->rank)
        return a->rank >= 0 && (b->rank < 0 || a->rank < b->rank);
    return a < b; /* file (name) order */
}

static int plan(flat *F, int **order_out, size_t *n_order)
{
    bool *placed = calloc(F->n ? F->n : 1, sizeof *placed);
    int *order = malloc((F->n ? F->n : 1) * sizeof *order);
    size_t n = 0;
    if (!placed || !order) {
        free(placed);
        free(order);
        return nomem(F);
    }
    for (;;) {
        const fnode *ready = NULL, *entry = NULL, *any = NULL;
        for (size_t k = 0; k < F->n; k++) {
            const fnode *f = &F->v[k];
            if (f->identity || placed[k])
                continue;
            bool all = true, some = false;
            for (size_t s = 0; s < f->n_real; s++) {
                if (f->real[s] == (int)k)
                    continue;
                if (placed[f->real[s]])
                    some = true;
                else
                    all = false;
            }
            if (all && (!ready || before(f, ready)))
                ready = f;
            if (some && (!entry || before(f, entry)))
                entry = f;
            if (!any || before(f, any))
                any = f;
        }
        const fnode *pick = ready ? ready : entry ? entry : any;
        if (!pick)
            break;
        placed[pick - F->v] = true;
        order[n++] = (int)(pick - F->v);
    }
    free(placed);
    *order_out = order;
    *n_order = n;
    return ST_OK;
}

static st_snn_net *build(flat *F, int *err)
{
    int rc = infer_shapes(F);
    st_snn_net *net = NULL;
    int *order = NULL;
    size_t n_order = 0;
    if (rc != ST_OK)
        goto fail;
    bool any_input = false, any_output = false;
    for (size_t k = 0; k < F->n && rc == ST_OK; k++) {
        fnode *f = &F->v[k];
        any_input |= f->top && f->type == T_INPUT;
        any_output |= f->top && f->type == T_OUTPUT;
        if (!f->identity)
            rc = real_sources(F, f, 0, &f->real, &f->n_real);
    }
    if (rc != ST_OK)
        goto fail;
    if (!any_input || !any_output) {
        rc = st_error(ST_ERR_FORMAT, "NIR file '%s': the top graph has no %s node", F->r.label,
                      any_input ? "Output" : "Input");
        goto fail;
    }
    if ((rc = plan(F, &order, &n_order)) != ST_OK || !(net = st_snn_net_new(&rc)))
        goto fail;
    for (size_t k = 0; k < n_order; k++)
        if ((rc = build_node(F, &F->v[order[k]], net)) != ST_OK) {
            rc = engine_fail(F, rc);
            goto fail;
        }
    for (size_t k = 0; k < n_order; k++) {
        const fnode *f = &F->v[order[k]];
        const int into = f->pre >= 0 ? f->pre : f->id;
        for (size_t s = 0; s < f->n_real; s++)
            if ((rc = st_snn_net_connect(net, F->v[f->real[s]].id, into)) != ST_OK) {
                rc = engine_fail(F, rc);
                goto fail;
            }
        if (f->pre >= 0 && (rc = st_snn_net_connect(net, f->pre, f->id)) != ST_OK) {
            rc = engine_fail(F, rc);
            goto fail;
        }
    }
    if ((rc = st_snn_net_finish(net)) != ST_OK) {
        rc = engine_fail(F, rc);
        goto fail;
    }
    free(order);
    if (err)
        *err = ST_OK;
    return net;
fail:
    free(order);
    st_snn_net_destroy(&net);
    if (err)
        *err = rc;
    return NULL;
}

static int check_params(const st_nir_params *p)
{
    if (!(p->dt_s > 0) || !isfinite(p->dt_s))
        return st_error(ST_ERR_INVALID, "NIR import: dt must be a positive number of seconds, "
                                        "not %g", p->dt_s);
    if ((unsigned)p->convention >= ST_NIR_N_CONVENTIONS)
        return st_error(ST_ERR_INVALID, "NIR import: convention %d does not exist",
                        (int)p->convention);
    if ((unsigned)p->reset > ST_NIR_RESET_SUBTRACT)
        return st_error(ST_ERR_INVALID, "NIR import: reset %d does not exist", (int)p->reset);
    return ST_OK;
}

static const unsigned char hdf5_signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* Opens, reads and imports; `image` non-NULL reads from memory. */
static st_snn_net *load(const char *path, const void *image, size_t len,
                        const st_nir_params *params, int *err)
{
    const st_nir_params par = params ? *params : st_nir_default_params();
    flat F = {.r = {.label = path}, .par = &par};
    ngraph root = {0};
    st_snn_net *net = NULL;
    hid_t file = -1, fapl = -1;
    char why[200];
    h5_quiet q;
    int rc = check_params(&par);
    if (rc != ST_OK)
        goto done;
    quiet_begin(&q);
    if (image) {
        if (len < 8 || memcmp(image, hdf5_signature, 8)) {
            rc = st_error(ST_ERR_FORMAT, "NIR file '%s': not an HDF5 file (no HDF5 signature "
                                         "at offset 0)", path);
        } else if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0 ||
                   H5Pset_fapl_core(fapl, 65536, 0) < 0 ||
                   H5Pset_file_image(fapl, (void *)image, len) < 0 ||
                   (file = H5Fopen(path, H5F_ACC_RDONLY, fapl)) < 0) {
            rc = st_error(ST_ERR_FORMAT, "NIR file '%s': not a readable HDF5 file (%s)", path,
                          h5_reason(why));
        }
    } else {
        FILE *fp = fopen(path, "rb");
        unsigned char sig[8] = {0};
        const size_t got = fp ? fread(sig, 1, sizeof sig, fp) : 0;
        const int open_errno = errno;
        if (fp)
            fclose(fp);
        if (!fp)
            rc = st_error(open_errno == ENOENT ? ST_ERR_NOT_FOUND : ST_ERR_IO,
                          "NIR file '%s': cannot open: %s", path, strerror(open_errno));
        else if ((got < 8 || memcmp(sig, hdf5_signature, 8)) && H5Fis_hdf5(path) <= 0)
            rc = st_error(ST_ERR_FORMAT, "NIR file '%s': not an HDF5 file (no HDF5 signature)",
                          path);
        else if ((file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
            rc = st_error(ST_ERR_FORMAT, "NIR file '%s': not a readable HDF5 file (%s)", path,
                          h5_reason(why));
    }
    if (rc == ST_OK)
        rc = read_file(&F.r, file, &root);
    close_id(&file);
    close_id(&fapl);
    if (rc == ST_OK) {
        fgraph top = {0};
        rc = flatten(&F, &root, "", "", true, &top);
        free(top.ins);
        free(top.outs);
    }
    if (rc == ST_OK)
        net = build(&F, &rc);
    H5Eclear2(H5E_DEFAULT);
    quiet_end(&q);
done:
    flat_free(&F);
    graph_free(&root);
    if (err)
        *err = rc;
    return net;
}

st_snn_net *st_snn_net_load_nir(const char *path, const st_nir_params *params, int *err)
{
    return load(path, NULL, 0, params, err);
}

st_snn_net *st_snn_net_load_nir_mem(const void *buf, size_t len, const st_nir_params *params,
                                    int *err)
{
    if (!buf && len) {
        int rc = st_error(ST_ERR_INVALID, "NIR buffer: NULL with length %zu", len);
        if (err)
            *err = rc;
        return NULL;
    }
    return load("<memory>", buf ? buf : "", len, params, err);
}

/* ======================================================================
   Export
   ====================================================================== */

#define NIR_VERSION "1.0.0" /* the layout of NIR 0.2 to 1.0, with v_reset */

typedef struct {
    const char *path;
    hid_t str_type;   /* variable-length UTF-8 strings */
    int rc;           /* first error */
} writer;

static int wfail(writer *w, const char *where)
{
    char why[200];
    if (w->rc == ST_OK)
        w->rc = st_error(ST_ERR_IO, "NIR file '%s': cannot write %s (%s)", w->path, where,
                         h5_reason(why));
    return w->rc;
}

static void w_string(writer *w, hid_t loc, const char *name, const char *text)
{
    if (w->rc != ST_OK)
        return;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t ds = space < 0 ? -1 : H5Dcreate2(loc, name, w->str_type, space, H5P_DEFAULT,
                                            H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, w->str_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text) < 0)
        wfail(w, name);
    close_id(&ds);
    close_id(&space);
}

/* A numeric dataset of `ndim` dims (0: a scalar) from memory of type
   `mem`, stored as `file_type`. */
static void w_num(writer *w, hid_t loc, const char *name, hid_t mem, hid_t file_type,
                  unsigned ndim, const hsize_t *dims, const void *data)
{
    if (w->rc != ST_OK)
        return;
    hid_t space = ndim ? H5Screate_simple((int)ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t ds = space < 0 ? -1 : H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT,
                                            H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        wfail(w, name);
    close_id(&ds);
    close_id(&space);
}

static void w_f32(writer *w, hid_t loc, const char *name, unsigned ndim, const hsize_t *dims,
                  const float *data)
{
    w_num(w, loc, name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, ndim, dims, data);
}

static void w_f64(writer *w, hid_t loc, const char *name, size_t n, const double *data)
{
    const hsize_t d = n;
    w_num(w, loc, name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 1, &d, data);
}

static void w_i64(writer *w, hid_t loc, const char *name, unsigned ndim, size_t n,
                  const int64_t *data)
{
    const hsize_t d = n;
    w_num(w, loc, name, H5T_NATIVE_INT64, H5T_STD_I64LE, ndim, &d, data);
}

/* HDF5 link names cannot hold '/' nor be "." or "..": such characters
   become '_', and a clash gets a number. */
static char **export_names(const st_snn_net *net, size_t n, int *rc)
{
    char **names = calloc(n ? n : 1, sizeof *names);
    *rc = ST_OK;
    for (size_t k = 0; names && k < n && *rc == ST_OK; k++) {
        st_snn_node_info info;
        st_snn_net_node_info(net, (int)k, &info);
        const size_t len = strlen(info.name);
        char *s = malloc(len + 24);
        if (!s) {
            *rc = ST_ERR_NOMEM;
            break;
        }
        memcpy(s, info.name, len + 1);
        for (char *c = s; *c; c++)
            if (*c == '/')
                *c = '_';
        if (!strcmp(s, ".") || !strcmp(s, ".."))
            s[0] = '_';
        for (unsigned dup = 2;; dup++) {
            bool clash = false;
            for (size_t j = 0; j < k && !clash; j++)
                clash = !strcmp(names[j], s);
            if (!clash)
                break;
            snprintf(s + len, 24, "_%u", dup);
        }
        names[k] = s;
    }
    if (!names || *rc != ST_OK) {
        for (size_t k = 0; names && k < n; k++)
            free(names[k]);
        free(names);
        *rc = st_error(ST_ERR_NOMEM, "out of memory exporting a network");
        return NULL;
    }
    return names;
}

static int unsupported(const char *path, const char *node, const char *why)
{
    return st_error(ST_ERR_UNSUPPORTED, "NIR export '%s': node '%s': %s", path, node, why);
}

/* tau for NIR from an engine rate: the engine steps with a = dt_pop * rate;
   imported at dt with the norse convention a' = dt / tau, so tau = dt /
   (dt_pop rate), exactly 1 / rate when dt == dt_pop (which inverts back to
   the same float). */
static double tau_of(float rate, double dt_pop, double dt)
{
    if (rate == 0)
        return INFINITY;
    return dt == dt_pop ? 1.0 / (double)rate : dt / (dt_pop * (double)rate);
}

/* The NIR type a population is exported as, or NULL. */
static const char *nir_neuron_type(st_snn_model model)
{
    switch (model) {
    case ST_SNN_LIFBOX: return "LIF";
    case ST_SNN_LIBOX: return "LI";
    case ST_SNN_IAF: return "IF";
    case ST_SNN_INTEGRATOR: return "I";
    case ST_SNN_CUBALIF:
    case ST_SNN_LIF: return "CubaLIF";
    case ST_SNN_CUBALI:
    case ST_SNN_LI: return "CubaLI";
    default: return NULL;
    }
}

/* Refuses, before any file is touched, what NIR cannot say. */
static int check_exportable(const st_snn_net *net, const char *path)
{
    for (size_t k = 0; k < st_snn_net_node_count(net); k++) {
        const st_snn_neurons *pop = st_snn_net_neurons(net, (int)k);
        if (!pop)
            continue;
        st_snn_node_info info;
        st_snn_net_node_info(net, (int)k, &info);
        const st_snn_model model = st_snn_neurons_model(pop);
        const st_snn_neuron_params *p0 = st_snn_neurons_params(pop, 0);
        if (!nir_neuron_type(model))
            return unsupported(path, info.name, "NIR has no neuron like this model (lsnn and "
                                                "adex cannot be exported)");
        if (st_snn_model_spikes(model) && p0->reset != ST_SNN_RESET_VALUE)
            return unsupported(path, info.name, "NIR neurons reset to a value; this "
                                                "population resets by subtraction or not at "
                                                "all");
        for (size_t j = 0; (model == ST_SNN_LIF || model == ST_SNN_LI) && j < info.n_out; j++)
            if (!(st_snn_neurons_params(pop, j)->tau_syn_inv > 0))
                return unsupported(path, info.name, "a synaptic current that never decays has "
                                                    "no NIR CubaLIF equivalent");
    }
    return ST_OK;
}

static void put_neurons(writer *w, hid_t g, const st_snn_net *net, int id, const char *name,
                        double dt)
{
    const st_snn_neurons *pop = st_snn_net_neurons(net, id);
    const size_t n = st_snn_neurons_count(pop);
    const st_snn_model model = st_snn_neurons_model(pop);
    const bool spiking = st_snn_model_spikes(model);
    const char *type = nir_neuron_type(model); /* check_exportable() made sure */
    double *col = malloc(7 * n * sizeof *col);
    if (!col) {
        w->rc = st_error(ST_ERR_NOMEM, "out of memory exporting '%s'", name);
        return;
    }
    double *tau_mem = col, *tau_syn = col + n, *r = col + 2 * n, *w_in = col + 3 * n,
           *v_leak = col + 4 * n, *v_th = col + 5 * n, *v_reset = col + 6 * n;
    for (size_t k = 0; k < n; k++) {
        const st_snn_neuron_params *p = st_snn_neurons_params(pop, k);
        tau_mem[k] = tau_of(p->tau_mem_inv, p->dt, dt);
        tau_syn[k] = tau_of(p->tau_syn_inv, p->dt, dt);
        r[k] = model == ST_SNN_CUBALIF || model == ST_SNN_CUBALI ? p->r : 1;
        w_in[k] = model == ST_SNN_CUBALIF || model == ST_SNN_CUBALI ? p->w_in : 1;
        /* Norse's lif and li charge the current with the whole input: in
           NIR's CubaLIF that is w_in = 1 / (dt tau_syn_inv) per step. */
        if (model == ST_SNN_LIF || model == ST_SNN_LI) {
            const double s = (double)(float)p->dt * p->tau_syn_inv;
            w_in[k] = s > 0 ? 1 / s : INFINITY;
        }
        v_leak[k] = p->v_leak;
        v_th[k] = p->v_th;
        v_reset[k] = p->v_reset;
    }
    w_string(w, g, "type", type);
    const bool cuba = !strcmp(type, "CubaLIF") || !strcmp(type, "CubaLI");
    if (cuba) {
        w_f64(w, g, "tau_mem", n, tau_mem);
        w_f64(w, g, "tau_syn", n, tau_syn);
        w_f64(w, g, "w_in", n, w_in);
    } else if (model == ST_SNN_LIFBOX || model == ST_SNN_LIBOX) {
        w_f64(w, g, "tau", n, tau_mem);
    }
    w_f64(w, g, "r", n, r);
    if (cuba || model == ST_SNN_LIFBOX || model == ST_SNN_LIBOX)
        w_f64(w, g, "v_leak", n, v_leak);
    if (spiking) {
        w_f64(w, g, "v_threshold", n, v_th);
        w_f64(w, g, "v_reset", n, v_reset);
    }
    free(col);
}

static void put_node(writer *w, hid_t nodes, const st_snn_net *net, int id, const char *name,
                     double dt)
{
    st_snn_node_info info;
    st_snn_node_data d;
    st_snn_net_node_info(net, id, &info);
    st_snn_net_node_data(net, id, &d);
    hid_t g = H5Gcreate2(nodes, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        wfail(w, name);
        return;
    }
    const int64_t n_out = (int64_t)info.n_out;
    const hsize_t dn = info.n_out;
    float *dense = NULL;
    switch (info.kind) {
    case ST_SNN_NODE_INPUT:
        w_string(w, g, "type", "Input");
        w_i64(w, g, "shape", 1, 1, &n_out);
        break;
    case ST_SNN_NODE_OUTPUT:
        w_string(w, g, "type", "Output");
        w_i64(w, g, "shape", 1, 1, &n_out);
        break;
    case ST_SNN_NODE_DENSE:
    case ST_SNN_NODE_SPARSE: {
        const size_t ni = info.n_in, no = info.n_out;
        if (ni > SIZE_MAX / sizeof(float) / no || !(dense = calloc(ni * no, sizeof *dense))) {
            w->rc = st_error(ST_ERR_NOMEM, "out of memory exporting '%s'", name);
            break;
        }
        if (info.kind == ST_SNN_NODE_DENSE) {
            const size_t ld = st_snn_dense_ld(no);
            for (size_t i = 0; i < ni; i++)
                for (size_t o = 0; o < no; o++)
                    dense[o * ni + i] = d.w[i * ld + o];
        } else {
            for (size_t i = 0; i < ni; i++)
                for (uint32_t k = d.ptr[i]; k < d.ptr[i + 1]; k++)
                    dense[(size_t)d.idx[k] * ni + i] += d.val[k];
        }
        const hsize_t wd[2] = {no, ni};
        w_string(w, g, "type", d.bias ? "Affine" : "Linear");
        w_f32(w, g, "weight", 2, wd, dense);
        if (d.bias)
            w_f32(w, g, "bias", 1, &dn, d.bias);
        break;
    }
    case ST_SNN_NODE_CONV: {
        const st_snn_conv_shape *c = &d.conv;
        const bool one_d = c->height == 1 && c->kernel_h == 1 && c->stride_h == 1 &&
                           c->padding_h == 0 && c->dilation_h == 1;
        const size_t per = info.n_out / c->out_channels;
        float *bias = calloc(c->out_channels, sizeof *bias);
        if (!bias) {
            w->rc = st_error(ST_ERR_NOMEM, "out of memory exporting '%s'", name);
            break;
        }
        for (size_t co = 0; d.bias && co < c->out_channels; co++)
            bias[co] = d.bias[co * per];
        const int64_t groups = c->groups;
        const hsize_t nb = c->out_channels;
        w_string(w, g, "type", one_d ? "Conv1d" : "Conv2d");
        if (one_d) {
            const hsize_t wd[3] = {c->out_channels, c->in_channels / c->groups, c->kernel_w};
            const int64_t in = c->width, st = c->stride_w, pd = c->padding_w, dl = c->dilation_w;
            w_f32(w, g, "weight", 3, wd, d.w);
            w_i64(w, g, "input_shape", 0, 1, &in);
            w_i64(w, g, "stride", 0, 1, &st);
            w_i64(w, g, "padding", 0, 1, &pd);
            w_i64(w, g, "dilation", 0, 1, &dl);
        } else {
            const hsize_t wd[4] = {c->out_channels, c->in_channels / c->groups, c->kernel_h,
                                   c->kernel_w};
            const int64_t in[2] = {c->height, c->width}, st[2] = {c->stride_h, c->stride_w},
                          pd[2] = {c->padding_h, c->padding_w},
                          dl[2] = {c->dilation_h, c->dilation_w};
            w_f32(w, g, "weight", 4, wd, d.w);
            w_i64(w, g, "input_shape", 1, 2, in);
            w_i64(w, g, "stride", 1, 2, st);
            w_i64(w, g, "padding", 1, 2, pd);
            w_i64(w, g, "dilation", 1, 2, dl);
        }
        w_i64(w, g, "groups", 0, 1, &groups);
        w_f32(w, g, "bias", 1, &nb, bias);
        free(bias);
        break;
    }
    case ST_SNN_NODE_SCALE:
        w_string(w, g, "type", "Scale");
        w_f32(w, g, "scale", 1, &dn, d.w);
        break;
    case ST_SNN_NODE_THRESHOLD:
        w_string(w, g, "type", "Threshold");
        w_f32(w, g, "threshold", 1, &dn, d.w);
        break;
    case ST_SNN_NODE_DELAY: {
        double *sec = malloc(info.n_out * sizeof *sec);
        if (!sec) {
            w->rc = st_error(ST_ERR_NOMEM, "out of memory exporting '%s'", name);
            break;
        }
        for (size_t k = 0; k < info.n_out; k++)
            sec[k] = d.delay[k] * dt;
        w_string(w, g, "type", "Delay");
        w_f64(w, g, "delay", info.n_out, sec);
        free(sec);
        break;
    }
    case ST_SNN_NODE_NEURONS: put_neurons(w, g, net, id, name, dt); break;
    }
    free(dense);
    close_id(&g);
}

/* The sources an edge into `to` comes from, routed through output nodes
   (NIR's Output ends the data flow; ours may feed on). */
static int edge_sources(const st_snn_net *net, int to, int depth, int **out, size_t *n)
{
    st_snn_node_data d;
    st_snn_net_node_data(net, to, &d);
    for (size_t s = 0; s < d.n_src; s++) {
        st_snn_node_info si;
        st_snn_net_node_info(net, d.src[s], &si);
        int rc = si.kind == ST_SNN_NODE_OUTPUT && depth < 64
                     ? edge_sources(net, d.src[s], depth + 1, out, n)
                     : push_id(out, n, d.src[s]);
        if (rc != ST_OK)
            return rc;
    }
    return ST_OK;
}

int st_snn_net_save_nir(const st_snn_net *net, const char *path, const st_nir_params *params)
{
    const size_t n = st_snn_net_node_count(net);
    st_snn_node_info info;
    if (n == 0 || st_snn_net_node_info(net, 0, &info) != ST_OK || info.order < 0)
        return st_error(ST_ERR_STATE, "NIR export '%s': only a finished network can be "
                                      "exported (st_snn_net_finish)", path);
    if (params && (!(params->dt_s > 0) || !isfinite(params->dt_s)))
        return st_error(ST_ERR_INVALID, "NIR export '%s': dt must be a positive number of "
                                        "seconds, not %g", path, params->dt_s);
    if (params && params->convention != ST_NIR_NORSE && params->convention != ST_NIR_SNNTORCH)
        return st_error(ST_ERR_UNSUPPORTED, "NIR export '%s': the export writes the norse "
                                            "convention (Euler; snntorch reads it the same), "
                                            "not %s", path,
                        st_nir_convention_name(params->convention)
                            ? st_nir_convention_name(params->convention) : "?");
    /* The step the file is for: the caller's, else the populations' own. */
    double dt = params ? params->dt_s : 0;
    for (size_t k = 0; k < n && !dt; k++) {
        const st_snn_neurons *pop = st_snn_net_neurons(net, (int)k);
        if (pop)
            dt = st_snn_neurons_params(pop, 0)->dt;
    }
    if (!dt)
        dt = st_nir_default_params().dt_s;

    int rc = check_exportable(net, path);
    if (rc != ST_OK)
        return rc;
    char **names = export_names(net, n, &rc);
    if (!names)
        return rc;
    int *plan_order = malloc(n * sizeof *plan_order), *srcs = NULL;
    size_t n_srcs = 0, n_edges = 0;
    const char **edges = NULL;
    char *tmp = malloc(strlen(path) + 16);
    writer w = {.path = path, .str_type = -1, .rc = ST_OK};
    hid_t file = -1, node = -1, nodes = -1;
    h5_quiet q;
    quiet_begin(&q);
    if (!plan_order || !tmp) {
        w.rc = st_error(ST_ERR_NOMEM, "out of memory exporting a network");
        goto done;
    }
    tmp[0] = '\0';
    /* Edges grouped by target in stepping order (see before()). */
    for (size_t k = 0; k < n; k++) {
        st_snn_net_node_info(net, (int)k, &info);
        plan_order[info.order] = (int)k;
    }
    for (size_t p = 0; p < n && w.rc == ST_OK; p++) {
        const int to = plan_order[p];
        n_srcs = 0;
        if (edge_sources(net, to, 0, &srcs, &n_srcs) != ST_OK) {
            w.rc = st_error(ST_ERR_NOMEM, "out of memory exporting a network");
            break;
        }
        const char **e = realloc(edges, 2 * (n_edges + n_srcs + 1) * sizeof *e);
        if (!e) {
            w.rc = st_error(ST_ERR_NOMEM, "out of memory exporting a network");
            break;
        }
        edges = e;
        for (size_t s = 0; s < n_srcs; s++, n_edges++) {
            edges[2 * n_edges] = names[srcs[s]];
            edges[2 * n_edges + 1] = names[to];
        }
    }
    if (w.rc != ST_OK)
        goto done;
    snprintf(tmp, strlen(path) + 16, "%s.tmp-XXXXXX", path);
    const int fd = mkstemp(tmp);
    if (fd < 0) {
        w.rc = st_error(ST_ERR_IO, "NIR export '%s': cannot write: %s", path, strerror(errno));
        tmp[0] = '\0';
        goto done;
    }
    close(fd);
    if ((w.str_type = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(w.str_type, H5T_VARIABLE) < 0 ||
        H5Tset_cset(w.str_type, H5T_CSET_UTF8) < 0 ||
        (file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        (node = H5Gcreate2(file, "node", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        (nodes = H5Gcreate2(node, "nodes", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        wfail(&w, "the file");
        goto done;
    }
    w_string(&w, file, "version", NIR_VERSION);
    w_string(&w, node, "type", "NIRGraph");
    for (size_t k = 0; k < n && w.rc == ST_OK; k++)
        put_node(&w, nodes, net, (int)k, names[k], dt);
    if (w.rc == ST_OK) {
        const hsize_t ed[2] = {n_edges, 2};
        hid_t space = H5Screate_simple(2, ed, NULL);
        hid_t ds = space < 0 ? -1 : H5Dcreate2(node, "edges", w.str_type, space, H5P_DEFAULT,
                                                H5P_DEFAULT, H5P_DEFAULT);
        if (ds < 0 || (n_edges && H5Dwrite(ds, w.str_type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                           edges) < 0))
            wfail(&w, "/node/edges");
        close_id(&ds);
        close_id(&space);
    }
done:
    close_id(&nodes);
    close_id(&node);
    if (file >= 0 && H5Fclose(file) < 0)
        wfail(&w, "the file");
    file = -1;
    close_id(&w.str_type);
    if (tmp && tmp[0]) {
        if (w.rc == ST_OK && (chmod(tmp, 0644) != 0 || rename(tmp, path) != 0))
            w.rc = st_error(ST_ERR_IO, "NIR export '%s': cannot write: %s", path,
                            strerror(errno));
        if (w.rc != ST_OK)
            unlink(tmp);
    }
    H5Eclear2(H5E_DEFAULT);
    quiet_end(&q);
    for (size_t k = 0; k < n; k++)
        free(names[k]);
    free(names);
    free(plan_order);
    free(srcs);
    free(edges);
    free(tmp);
    return w.rc;
}
