/*
 * sched_misc.c - pairwise alltoall and dissemination barrier.
 */
#include "sched_impl.h"

static int misc_mod(int x, int p)
{
    return ((x % p) + p) % p;
}

/*
 * Partner of @p r in round @p k of a perfect pairing (a 1-factorization: every round pairs the
 * ranks up, every pair meets exactly once), or -1 if r sits the round out. Sizes:
 *
 *   power of two:  r ^ (k + 1), rounds 0 .. p-2          p = 4:  k=0: 0-1 2-3
 *                                                                k=1: 0-2 1-3
 *                                                                k=2: 0-3 1-2
 *   odd p:         (k - r) mod p, rounds 0 .. p-1; the rank with 2r = k mod p is idle
 *   other even p:  ranks 0 .. p-2 as for odd p - 1 (rounds 0 .. p-2), the idle one pairs with
 *                  p - 1 instead; p - 1 meets the r with 2r = k mod (p-1), r = k * p/2 mod (p-1)
 */
static int pair_partner(int r, int p, int k)
{
    int m, q;

    if ((p & (p - 1)) == 0)
        return r ^ (k + 1);
    if (p % 2 == 1) {
        q = misc_mod(k - r, p);
        return q == r ? -1 : q;
    }
    m = p - 1;
    if (r == m)
        return (int)(((long long)k * (p / 2)) % m);
    q = misc_mod(k - r, m);
    return q == r ? m : q;
}

/*
 * Alltoall (nunits p, one block per unit). Must be right in place (INPUT is OUTPUT), where unit
 * x of OUTPUT may only be written once unit x of INPUT has been sent. With the classic shift
 * (send to r + k, receive from r - k) the unit arriving in round k belongs to a slot still
 * waiting to be sent; so the rounds pair ranks instead (pair_partner): in round k, r and its
 * partner x swap unit x of r and unit r of x. The same slot is sent and received in one round,
 * so the receive goes to TEMP and is copied to OUTPUT in the next round, next to the next swap:
 *
 *   round k:    send IN[x_k] -> x_k   recv TEMP[x_k] <- x_k   copy OUT[x_{k-1}] <- TEMP[x_{k-1}]
 *   round 0 also copies the rank's own unit IN[r] -> OUT[r]; a last round copies x_{last}.
 */
void rdt_sched_pairwise_alltoall(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks, k, prev = -1;
    int nrounds = p % 2 == 0 ? p - 1 : p; /* odd p: every rank sits out one round */

    b->s->nunits = (uint32_t)p;
    b->s->nblocks = (uint32_t)p;
    for (k = 0; k < nrounds; k++) {
        int x = pair_partner(r, p, k);
        if (x >= 0) {
            rdt_sched_send(b, (uint32_t)k, x, RDT_BUF_INPUT, (uint32_t)x, (uint32_t)x + 1);
            rdt_sched_recv(b, (uint32_t)k, x, RDT_BUF_TEMP, (uint32_t)x, (uint32_t)x + 1);
        }
        if (prev >= 0)
            rdt_sched_copy(b, (uint32_t)k, RDT_BUF_OUTPUT, RDT_BUF_TEMP, (uint32_t)prev,
                           (uint32_t)prev + 1);
        if (k == 0)
            rdt_sched_copy(b, 0, RDT_BUF_OUTPUT, RDT_BUF_INPUT, (uint32_t)r, (uint32_t)r + 1);
        prev = x;
    }
    if (prev >= 0)
        rdt_sched_copy(b, (uint32_t)nrounds, RDT_BUF_OUTPUT, RDT_BUF_TEMP, (uint32_t)prev,
                       (uint32_t)prev + 1);
}

/*
 * Barrier: dissemination, ceil(log2 p) rounds of zero-element messages (region [0, 0) of a
 * one-unit, one-block schedule); in round k rank r signals r + 2^k and waits for r - 2^k:
 *
 *   p = 5, round 0: 0->1 1->2 2->3 3->4 4->0    round 1: 0->2 1->3 ...    round 2: 0->4 ...
 *
 * After round k, r has heard (transitively) from r - 2^(k+1) + 1 .. r, so after ceil(log2 p)
 * rounds from everyone.
 */
void rdt_sched_dissemination_barrier(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks, k, L = rdt_log2_ceil((uint32_t)p);

    b->s->nunits = 1;
    b->s->nblocks = 1;
    for (k = 0; k < L; k++) {
        rdt_sched_send(b, (uint32_t)k, misc_mod(r + (1 << k), p), RDT_BUF_INPUT, 0, 0);
        rdt_sched_recv(b, (uint32_t)k, misc_mod(r - (1 << k), p), RDT_BUF_OUTPUT, 0, 0);
    }
}
