/*
 * sched_tree.c - double binary tree allreduce (as NCCL 2.4), binomial broadcast and reduce.
 */
#include "sched_impl.h"

static uint32_t tree_mod(int x, int p)
{
    return (uint32_t)(((x % p) + p) % p);
}

/* ------------------------------------------------------------------------------------------ */
/* Double binary tree                                                                           */
/* ------------------------------------------------------------------------------------------ */

/*
 * One binary tree over positions 1..N, in-order: position x with lowest set bit 2^c has the
 * children x - 2^(c-1) and x + 2^(c-1), so odd positions are leaves and even ones interior;
 * the root is the largest power of two <= N. Children beyond N are replaced by their own left
 * descendants (x + 2^j for the largest j < c - 1 that fits):
 *
 *   N = 12:                 8
 *                    ______/ \______
 *                   4               12
 *                 /   \            /
 *               2       6       10
 *              / \     / \     /  \
 *             1   3   5   7   9   11
 *
 * parent(y), c = lowest bit of y:  bit c+1 of y set    -> y - 2^c   (y is a natural right child)
 *                                  else y + 2^c <= N   -> y + 2^c   (y is a left child)
 *                                  else                -> y - 2^c   (right child after pruning:
 *                                                                    11 under 10, 12 under 8)
 *
 * Tree 0 puts rank r at position r + 1: interior ranks are the odd ones. Tree 1 must make the
 * even ranks interior: for even p it mirrors (rank = p - x), for odd p it shifts (rank =
 * x mod p: rank 0 sits at the odd position p, a leaf). So every rank is interior in at most
 * one tree, and a leaf in at least one (NCCL's double binary tree):
 *
 *   p = 6:  tree 0 (pos x = rank x-1)      tree 1 (pos x = rank 6-x)
 *                 3                               2
 *               /   \                           /   \
 *              1     5                         4     0
 *             / \   /                         / \   /
 *            0   2 4                         5   3 1
 */
static int tree_pos(int tree, int rank, int p)
{
    if (tree == 0)
        return rank + 1;
    if (p % 2 == 0)
        return p - rank;
    return rank == 0 ? p : rank;
}

static int tree_rank(int tree, int pos, int p)
{
    if (tree == 0)
        return pos - 1;
    if (p % 2 == 0)
        return p - pos;
    return pos % p;
}

static int tree_parent(int y, int n)
{
    int c = __builtin_ctz((unsigned)y);
    if (y == rdt_pow2_floor(n))
        return 0; /* the root */
    if ((y >> (c + 1)) & 1)
        return y - (1 << c);
    if (y + (1 << c) <= n)
        return y + (1 << c);
    return y - (1 << c);
}

static void tree_children(int x, int n, int *left_p, int *right_p)
{
    int c = __builtin_ctz((unsigned)x), j;

    *left_p = 0;
    *right_p = 0;
    if (c == 0)
        return;
    *left_p = x - (1 << (c - 1));
    for (j = c - 1; j >= 0; j--) {
        if (x + (1 << j) <= n) {
            *right_p = x + (1 << j);
            return;
        }
    }
}

/*
 * Round in which position y sends its partial result up. Two children must not reduce into the
 * parent's accumulator in the same round, so a natural right child (lowest bit c, parent has
 * lowest bit c + 1) goes one round after its left sibling:
 *
 *   lowest bit c:  0    1    2     left child / pruned right child: 2c
 *   send round:    0,1  2,3  4,5   natural right child:             2c + 1
 *
 * A node's children send in rounds <= 2c - 1, so it has everything by its own round 2c.
 */
static uint32_t tree_up_round(int y)
{
    int c = __builtin_ctz((unsigned)y);
    return (uint32_t)(2 * c + ((y >> (c + 1)) & 1));
}

static uint32_t tree_depth(int x, int n)
{
    uint32_t d = 0;
    while ((x = tree_parent(x, n)) != 0)
        d++;
    return d;
}

void rdt_sched_dbtree_links(int tree, int rank, int nranks, int *parent_p, int *child0_p,
                            int *child1_p)
{
    int x = tree_pos(tree, rank, nranks), q = tree_parent(x, nranks), l, rr;

    tree_children(x, nranks, &l, &rr);
    *parent_p = q ? tree_rank(tree, q, nranks) : -1;
    *child0_p = l ? tree_rank(tree, l, nranks) : -1;
    *child1_p = rr ? tree_rank(tree, rr, nranks) : -1;
}

/* The ops of one tree on block @p tree: reduce up, then broadcast down. The accumulator is
 * OUTPUT (its partial contents are overwritten by the broadcast later), so no TEMP. */
static void dbtree_one(rdt_sched_builder_t *b, int tree)
{
    int p = b->s->nranks, x = tree_pos(tree, b->s->rank, p);
    int root = rdt_pow2_floor(p), q = tree_parent(x, p), kid[2], rl, rr, i;
    uint32_t blk = (uint32_t)tree, down, kround[2];
    rdt_buf_t acc = RDT_BUF_INPUT;

    /* the broadcast starts once the root has reduced both children */
    tree_children(root, p, &rl, &rr);
    down = 1 + tree_up_round(rl);
    if (rr && tree_up_round(rr) + 1 > down)
        down = tree_up_round(rr) + 1;
    down += tree_depth(x, p);

    tree_children(x, p, &kid[0], &kid[1]);
    kround[0] = kid[0] ? tree_up_round(kid[0]) : 0;
    kround[1] = kid[1] ? tree_up_round(kid[1]) : 0;
    if (kid[1] && kround[1] < kround[0]) { /* receive in round order */
        int t = kid[0];
        uint32_t tr = kround[0];
        kid[0] = kid[1];
        kid[1] = t;
        kround[0] = kround[1];
        kround[1] = tr;
    }
    for (i = 0; i < 2; i++) {
        if (!kid[i])
            continue;
        rdt_sched_recv_reduce(b, kround[i], tree_rank(tree, kid[i], p), RDT_BUF_OUTPUT, acc, blk,
                              blk + 1);
        acc = RDT_BUF_OUTPUT;
    }
    if (q) {
        rdt_sched_send(b, tree_up_round(x), tree_rank(tree, q, p), acc, blk, blk + 1);
        rdt_sched_recv(b, down - 1, tree_rank(tree, q, p), RDT_BUF_OUTPUT, blk, blk + 1);
    }
    for (i = 0; i < 2; i++)
        if (kid[i])
            rdt_sched_send(b, down, tree_rank(tree, kid[i], p), RDT_BUF_OUTPUT, blk, blk + 1);
}

/*
 * Allreduce (nunits 1, nblocks 2): half 0 is reduced up tree 0 and broadcast down it, half 1
 * the same on tree 1, concurrently (each rank works hard in one tree only). Each half is
 * reduced once, at its root, so every rank gets the same bits. Ops of the two trees are merged
 * by round, tree 0's first inside a round on every rank, so two messages between the same pair
 * in one round are listed in the same order at both ends.
 */
void rdt_sched_dbtree_allreduce(rdt_sched_builder_t *b)
{
    b->s->nunits = 1;
    b->s->nblocks = 2;
    dbtree_one(b, 0);
    dbtree_one(b, 1);
    rdt_sched_sort_rounds(b->s);
}

/* ------------------------------------------------------------------------------------------ */
/* Binomial trees                                                                               */
/* ------------------------------------------------------------------------------------------ */

/*
 * Broadcast (nunits 1, nblocks 1) on virtual ranks v = (r - root) mod p. v with lowest set bit
 * 2^b receives from v - 2^b and then sends to v + 2^j for j = b-1 .. 0; the root sends to 2^j
 * for j = L-1 .. 0 (L = ceil(log2 p)). Sending to child v + 2^j in round L - 1 - j lines the
 * rounds up:
 *
 *   p = 8:     round 0: 0->4      round 1: 0->2 4->6      round 2: 0->1 2->3 4->5 6->7
 *
 * The root copies INPUT -> OUTPUT after its last send (same memory in place).
 */
void rdt_sched_binomial_broadcast(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks, root = b->s->root;
    int v = (int)tree_mod(r - root, p), L = rdt_log2_ceil((uint32_t)p), j, low;

    b->s->nunits = 1;
    b->s->nblocks = 1;
    if (v == 0) {
        for (j = L - 1; j >= 0; j--)
            rdt_sched_send(b, (uint32_t)(L - 1 - j), (int)tree_mod((1 << j) + root, p),
                           RDT_BUF_INPUT, 0, 1);
        rdt_sched_copy(b, (uint32_t)L, RDT_BUF_OUTPUT, RDT_BUF_INPUT, 0, 1);
        return;
    }
    low = __builtin_ctz((unsigned)v);
    rdt_sched_recv(b, (uint32_t)(L - 1 - low), (int)tree_mod(v - (1 << low) + root, p),
                   RDT_BUF_OUTPUT, 0, 1);
    for (j = low - 1; j >= 0; j--)
        if (v + (1 << j) < p)
            rdt_sched_send(b, (uint32_t)(L - 1 - j), (int)tree_mod(v + (1 << j) + root, p),
                           RDT_BUF_OUTPUT, 0, 1);
}

/*
 * Reduce (nunits 1, nblocks 1): the broadcast's tree upside down. v receives from v + 2^j in
 * round j (j below its lowest set bit b) and sends to v - 2^b in round b:
 *
 *   p = 8:     round 0: 1->0 3->2 5->4 7->6   round 1: 2->0 6->4   round 2: 4->0
 *
 * Non-roots accumulate in TEMP (they have no OUTPUT), the root in OUTPUT.
 */
void rdt_sched_binomial_reduce(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks, root = b->s->root;
    int v = (int)tree_mod(r - root, p), L = rdt_log2_ceil((uint32_t)p), j;
    int low = v == 0 ? L : __builtin_ctz((unsigned)v);
    rdt_buf_t acc = RDT_BUF_INPUT, dst = v == 0 ? RDT_BUF_OUTPUT : RDT_BUF_TEMP;

    b->s->nunits = 1;
    b->s->nblocks = 1;
    for (j = 0; j < low; j++) {
        if (v + (1 << j) >= p)
            continue;
        rdt_sched_recv_reduce(b, (uint32_t)j, (int)tree_mod(v + (1 << j) + root, p), dst, acc, 0,
                              1);
        acc = dst;
    }
    if (v != 0)
        rdt_sched_send(b, (uint32_t)low, (int)tree_mod(v - (1 << low) + root, p), acc, 0, 1);
}
