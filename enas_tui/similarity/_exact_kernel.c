/* Exact graph edit distance between small directed graphs of equal size, unit costs.
 *
 * The compiled half of enas_tui/similarity/exact.py, which states the problem and proves the
 * bounds; this file only has to be fast. With both graphs of n nodes and a node substitution
 * costing at most 1 (< delete + insert), an optimal edit path is a bijection pi of the nodes, of cost
 *
 *     cost(pi) = #{u : label1(u) != label2(pi(u))} + |E1| + |E2| - 2 #{(a,b) in E1 : (pi(a),pi(b)) in E2}.
 *
 * Depth-first branch and bound over partial bijections. At each search node, with S the assigned
 * nodes of G1 and U the rest, every edge of either graph is charged in exactly one place:
 *   - both ends in S: decided, part of `fixed`;
 *   - one end in S, one u in U: decided once u is placed at w, charged exactly in C[u][w];
 *   - both ends in U: each end charges half the difference of its in- and out-degrees within U.
 * The linear assignment minimum over C (Hungarian algorithm, integer costs doubled so halves stay
 * exact) is a lower bound on every completion; its dual potentials give each candidate (u, w) the
 * bound LB + reduced cost, which prunes a child before it is built. We branch on the node with the
 * most unplaced neighbours (ties: the fewest surviving candidates) and try its candidates in order
 * of reduced cost. Nodes of G1 that are twins
 * (same label, same in- and out-neighbours) are interchangeable, so their images are kept
 * increasing: one representative of each symmetric family of bijections is searched.
 *
 * The first upper bound is the better of two swap local searches: from the identity (the caller's
 * node order, for cells the decision-order correspondence) and from the root assignment.
 *
 * No numpy headers: arrays arrive through the buffer protocol. The GIL is released while solving,
 * so Python threads run batches in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_NODES 64
#define INF_COST (1 << 29)

typedef uint64_t mask_t;

#if defined(__GNUC__) || defined(__clang__)
#define POPCOUNT(x) __builtin_popcountll(x)
#define LOWEST(x) __builtin_ctzll(x)
#else
static int POPCOUNT(mask_t x) { int c = 0; while (x) { x &= x - 1; c++; } return c; }
static int LOWEST(mask_t x) { int i = 0; while (!(x & 1)) { x >>= 1; i++; } return i; }
#endif

#define BIT(i) (((mask_t)1) << (i))

typedef struct {
    int n;
    const int32_t *lab1, *lab2;
    mask_t out1[MAX_NODES], in1[MAX_NODES], out2[MAX_NODES], in2[MAX_NODES];
    mask_t twins1[MAX_NODES];        /* G1 nodes interchangeable with u (u included) */
    int pi1[MAX_NODES], pi2[MAX_NODES];
    mask_t free1, free2;
    int best, root_lb;
    int64_t nodes;
    double deadline;                 /* seconds since the epoch; 0: none */
    int timed_out;
    /* scratch: one cost matrix and lists per depth, Hungarian arrays shared */
    int *matrices;                   /* (n + 1) levels of n * n */
    int *lists;                      /* (n + 1) levels of 3 * n: U1, U2, candidates */
    int hu[MAX_NODES + 1], hv[MAX_NODES + 1], hp[MAX_NODES + 1], hway[MAX_NODES + 1];
    int hminv[MAX_NODES + 1];
    char hused[MAX_NODES + 1];
    int perm[MAX_NODES];
} Search;

/* Minimum of an m x m assignment problem; leaves potentials in hu/hv (1-based) with
 * a[i][j] - hu[i+1] - hv[j+1] >= 0 and sum(hu) + sum(hv) = minimum, and hp[j+1] = row of column j. */
static int hungarian(Search *s, int m, const int *a) {
    int *u = s->hu, *v = s->hv, *p = s->hp, *way = s->hway, *minv = s->hminv;
    char *used = s->hused;
    for (int j = 0; j <= m; j++) { u[j] = 0; v[j] = 0; p[j] = 0; way[j] = 0; }
    for (int i = 1; i <= m; i++) {
        p[0] = i;
        int j0 = 0;
        for (int j = 0; j <= m; j++) { minv[j] = INF_COST; used[j] = 0; }
        do {
            used[j0] = 1;
            int i0 = p[j0], delta = INF_COST, j1 = 0;
            const int *row = a + (i0 - 1) * m;
            for (int j = 1; j <= m; j++) {
                if (used[j]) continue;
                int cur = row[j - 1] - u[i0] - v[j];
                if (cur < minv[j]) { minv[j] = cur; way[j] = j0; }
                if (minv[j] < delta) { delta = minv[j]; j1 = j; }
            }
            for (int j = 0; j <= m; j++) {
                if (used[j]) { u[p[j]] += delta; v[j] -= delta; }
                else minv[j] -= delta;
            }
            j0 = j1;
        } while (p[j0] != 0);
        do { int j1 = way[j0]; p[j0] = p[j1]; j0 = j1; } while (j0);
    }
    return -v[0];
}

/* The G2 images of the G1 nodes in `mask` (all assigned). */
static mask_t image(const Search *s, mask_t mask) {
    mask_t out = 0;
    while (mask) { int b = LOWEST(mask); mask &= mask - 1; out |= BIT(s->pi1[b]); }
    return out;
}

/* Cost of a full bijection perm (G1 node -> G2 node). */
static int full_cost(const Search *s, const int *perm) {
    int cost = 0;
    for (int u = 0; u < s->n; u++) {
        cost += s->lab1[u] != s->lab2[perm[u]];
        cost += POPCOUNT(s->out1[u]) + POPCOUNT(s->out2[u]);
        mask_t img = 0, m = s->out1[u];
        while (m) { int b = LOWEST(m); m &= m - 1; img |= BIT(perm[b]); }
        cost -= 2 * POPCOUNT(img & s->out2[perm[u]]);
    }
    return cost;
}

/* Swap local search from perm (modified in place); returns its final cost. */
static int local_search(const Search *s, int *perm) {
    int cost = full_cost(s, perm), improved = 1;
    while (improved) {
        improved = 0;
        for (int i = 0; i < s->n; i++) {
            for (int j = i + 1; j < s->n; j++) {
                int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
                int c = full_cost(s, perm);
                if (c < cost) { cost = c; improved = 1; }
                else { t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
            }
        }
    }
    return cost;
}

/* Exact cost of placing u at w given the assigned nodes: label, plus every edge between u (or w)
 * and the assigned part that the placement does not preserve. */
static int placement_cost(const Search *s, int u, int w) {
    mask_t done1 = ~s->free1, done2 = ~s->free2;
    int kept = POPCOUNT(image(s, s->in1[u] & done1) & s->in2[w])
             + POPCOUNT(image(s, s->out1[u] & done1) & s->out2[w]);
    return (s->lab1[u] != s->lab2[w])
         + POPCOUNT(s->in1[u] & done1) + POPCOUNT(s->out1[u] & done1)
         + POPCOUNT(s->in2[w] & done2) + POPCOUNT(s->out2[w] & done2) - 2 * kept;
}

/* Images allowed for u by the twin order: above the images of assigned smaller twins, below those
 * of assigned larger ones. */
static mask_t twin_allowed(const Search *s, int u) {
    mask_t allowed = s->free2, assigned = s->twins1[u] & ~s->free1 & ~BIT(u);
    while (assigned) {
        int t = LOWEST(assigned);
        assigned &= assigned - 1;
        int k = s->pi1[t];
        if (t < u) allowed &= (k >= 63) ? 0 : (~(mask_t)0) << (k + 1);
        else allowed &= BIT(k) - 1;
    }
    return allowed;
}

static double now(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void search(Search *s, int depth, int fixed) {
    s->nodes++;
    if (s->deadline > 0 && (s->nodes & 1023) == 0 && now() > s->deadline) s->timed_out = 1;
    if (s->timed_out) return;
    int n = s->n, m = n - depth;
    if (m == 0) {
        if (fixed < s->best) s->best = fixed;
        return;
    }
    int *c = s->matrices + (size_t)depth * n * n;
    int *u1 = s->lists + (size_t)depth * 3 * n, *u2 = u1 + n, *cand = u2 + n;
    mask_t done1 = ~s->free1, done2 = ~s->free2;
    int k = 0;
    for (mask_t f = s->free1; f; f &= f - 1) u1[k++] = LOWEST(f);
    k = 0;
    for (mask_t f = s->free2; f; f &= f - 1) u2[k++] = LOWEST(f);

    int d2[MAX_NODES], in2[MAX_NODES], out2[MAX_NODES];
    for (int j = 0; j < m; j++) {
        int w = u2[j];
        d2[j] = POPCOUNT(s->in2[w] & done2) + POPCOUNT(s->out2[w] & done2);
        in2[j] = POPCOUNT(s->in2[w] & s->free2);
        out2[j] = POPCOUNT(s->out2[w] & s->free2);
    }
    for (int i = 0; i < m; i++) {
        int u = u1[i];
        mask_t img_in = image(s, s->in1[u] & done1), img_out = image(s, s->out1[u] & done1);
        int d1 = POPCOUNT(s->in1[u] & done1) + POPCOUNT(s->out1[u] & done1);
        int in1 = POPCOUNT(s->in1[u] & s->free1), out1 = POPCOUNT(s->out1[u] & s->free1);
        int *row = c + i * m;
        for (int j = 0; j < m; j++) {
            int w = u2[j];
            int kept = POPCOUNT(img_in & s->in2[w]) + POPCOUNT(img_out & s->out2[w]);
            int exact = (s->lab1[u] != s->lab2[w]) + d1 + d2[j] - 2 * kept;
            int din = in1 - in2[j], dout = out1 - out2[j];
            row[j] = 2 * exact + (din < 0 ? -din : din) + (dout < 0 ? -dout : dout);
        }
    }
    int lb2 = 2 * fixed + hungarian(s, m, c);
    if (depth == 0) {
        s->root_lb = (lb2 + 1) / 2;
        for (int j = 1; j <= m; j++) s->perm[u1[s->hp[j] - 1]] = u2[j - 1];
        int cost = local_search(s, s->perm);
        if (cost < s->best) s->best = cost;
    }
    if (lb2 > 2 * s->best - 2) return;
    /* reduced costs, in place */
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) c[i * m + j] -= s->hu[i + 1] + s->hv[j + 1];

    /* Branch on the node with the most unplaced neighbours (placing it anchors the most edges),
     * then the fewest surviving candidates; a node with none left ends this branch. */
    int limit = 2 * s->best - 2 - lb2, pick = -1, fewest = 0, most_open = -1;
    for (int i = 0; i < m; i++) {
        mask_t allowed = twin_allowed(s, u1[i]);
        int count = 0;
        for (int j = 0; j < m; j++)
            if ((allowed & BIT(u2[j])) && c[i * m + j] <= limit) count++;
        if (count == 0) return;
        int open = POPCOUNT((s->in1[u1[i]] | s->out1[u1[i]]) & s->free1);
        if (open > most_open || (open == most_open && count < fewest)) {
            most_open = open; fewest = count; pick = i;
        }
    }
    int u = u1[pick], ncand = 0;
    const int *reduced = c + pick * m;
    mask_t allowed = twin_allowed(s, u);
    for (int j = 0; j < m; j++) {
        if (!(allowed & BIT(u2[j])) || reduced[j] > limit) continue;
        int at = ncand++;  /* insertion sort by reduced cost */
        while (at > 0 && reduced[cand[at - 1]] > reduced[j]) { cand[at] = cand[at - 1]; at--; }
        cand[at] = j;
    }
    for (int t = 0; t < ncand; t++) {
        int j = cand[t];
        if (lb2 + reduced[j] > 2 * s->best - 2) break;  /* best may have dropped meanwhile */
        int w = u2[j], step = placement_cost(s, u, w);
        s->pi1[u] = w; s->pi2[w] = u;
        s->free1 &= ~BIT(u); s->free2 &= ~BIT(w);
        search(s, depth + 1, fixed + step);
        s->free1 |= BIT(u); s->free2 |= BIT(w);
        s->pi1[u] = -1; s->pi2[w] = -1;
        if (s->best <= s->root_lb || s->timed_out) return;  /* optimal: nothing beats the root bound */
    }
}

/* Solve one pair (graphs given by labels and out-neighbour masks); -1 when time_limit (> 0) passed. */
static int solve_pair(Search *s, int n, const int32_t *lab1, const mask_t *out1,
                      const int32_t *lab2, const mask_t *out2, double time_limit, int64_t *nodes) {
    s->n = n;
    s->lab1 = lab1; s->lab2 = lab2;
    for (int u = 0; u < n; u++) {
        s->out1[u] = out1[u]; s->out2[u] = out2[u];
        s->in1[u] = 0; s->in2[u] = 0;
        s->pi1[u] = -1; s->pi2[u] = -1;
    }
    for (int u = 0; u < n; u++) {
        for (mask_t m = out1[u]; m; m &= m - 1) s->in1[LOWEST(m)] |= BIT(u);
        for (mask_t m = out2[u]; m; m &= m - 1) s->in2[LOWEST(m)] |= BIT(u);
    }
    for (int u = 0; u < n; u++) {
        s->twins1[u] = 0;
        for (int v = 0; v < n; v++)
            if (lab1[u] == lab1[v] && s->in1[u] == s->in1[v] && s->out1[u] == s->out1[v])
                s->twins1[u] |= BIT(v);
    }
    s->free1 = s->free2 = (n == 64) ? ~(mask_t)0 : BIT(n) - 1;
    int identity[MAX_NODES];
    for (int u = 0; u < n; u++) identity[u] = u;
    s->best = local_search(s, identity);
    s->root_lb = 0;
    s->nodes = 0;
    s->timed_out = 0;
    s->deadline = time_limit > 0 ? now() + time_limit : 0;
    search(s, 0, 0);
    *nodes = s->nodes;
    return s->timed_out ? -1 : s->best;
}

static int check_buffer(Py_buffer *buf, Py_ssize_t itemsize, Py_ssize_t count, const char *name) {
    if (buf->len != itemsize * count) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd bytes, got %zd", name, itemsize * count, buf->len);
        return 0;
    }
    return 1;
}

static PyObject *solve_many(PyObject *self, PyObject *args) {
    int n;
    double time_limit;
    Py_buffer labels, masks, pairs, costs, nodes;
    (void)self;
    if (!PyArg_ParseTuple(args, "iy*y*y*w*w*d", &n, &labels, &masks, &pairs, &costs, &nodes, &time_limit))
        return NULL;
    PyObject *result = NULL;
    Search *s = NULL;
    if (n < 1 || n > MAX_NODES) {
        PyErr_Format(PyExc_ValueError, "graphs must have 1 to %d nodes, got %d", MAX_NODES, n);
        goto done;
    }
    Py_ssize_t graphs = labels.len / (4 * (Py_ssize_t)n), count = pairs.len / 8;
    if (!check_buffer(&labels, 4, graphs * n, "labels") || !check_buffer(&masks, 8, graphs * n, "masks")
        || !check_buffer(&pairs, 8, count, "pairs") || !check_buffer(&costs, 4, count, "costs")
        || !check_buffer(&nodes, 8, count, "nodes"))
        goto done;
    const int32_t *lab = labels.buf, *pr = pairs.buf;
    const mask_t *adj = masks.buf;
    for (Py_ssize_t p = 0; p < 2 * count; p++) {
        if (pr[p] < 0 || pr[p] >= graphs) {
            PyErr_Format(PyExc_ValueError, "pair index %d is not a graph (0..%zd)", pr[p], graphs - 1);
            goto done;
        }
    }
    for (Py_ssize_t g = 0; g < graphs * n; g++) {
        if (n < 64 && (adj[g] >> n)) {
            PyErr_SetString(PyExc_ValueError, "an edge mask names a node past the graph's size");
            goto done;
        }
    }
    s = calloc(1, sizeof(Search));
    if (s) {
        s->matrices = malloc(sizeof(int) * (size_t)(n + 1) * n * n);
        s->lists = malloc(sizeof(int) * (size_t)(n + 1) * 3 * n);
    }
    if (!s || !s->matrices || !s->lists) { PyErr_NoMemory(); goto done; }
    int32_t *out_cost = costs.buf;
    int64_t *out_nodes = nodes.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t p = 0; p < count; p++) {
        int a = pr[2 * p], b = pr[2 * p + 1];
        out_cost[p] = solve_pair(s, n, lab + (size_t)a * n, adj + (size_t)a * n,
                                 lab + (size_t)b * n, adj + (size_t)b * n, time_limit, &out_nodes[p]);
    }
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    if (s) { free(s->matrices); free(s->lists); free(s); }
    PyBuffer_Release(&labels); PyBuffer_Release(&masks); PyBuffer_Release(&pairs);
    PyBuffer_Release(&costs); PyBuffer_Release(&nodes);
    return result;
}

static PyMethodDef methods[] = {
    {"solve_many", solve_many, METH_VARARGS,
     "solve_many(n, labels, masks, pairs, costs, nodes, time_limit): exact GED of each pair of graphs.\n\n"
     "labels: int32 (graphs * n); masks: uint64 out-neighbour masks (graphs * n); pairs: int32\n"
     "(count * 2) graph indices; costs (int32, count) and nodes (int64, count) are written; a pair\n"
     "still unproven after time_limit seconds (> 0; 0: no limit) gets cost -1."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_exact_kernel",
    "Compiled branch and bound for the exact GED of small equal-sized digraphs (see exact.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__exact_kernel(void) { return PyModule_Create(&module); }
