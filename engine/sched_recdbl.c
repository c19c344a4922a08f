/*
 * sched_recdbl.c - recursive doubling allreduce and allgather, any rank count.
 *
 * On p' = 2^k ranks, step i pairs each rank with the one whose number differs in bit i:
 *
 *   step 0:  0-1  2-3  4-5  6-7
 *   step 1:  0-2  1-3  4-6  5-7
 *   step 2:  0-4  1-5  2-6  3-7
 *
 * Other rank counts fold the 2e extra ranks into partners first (sched_impl.h, rdt_fold_*)
 * and hand the result back at the end: two more rounds.
 */
#include "sched_impl.h"

/*
 * Allreduce: every step exchanges the whole vector (nunits 1, nblocks 1) and reduces it, so
 * both partners compute a (op) b and b (op) a: identical bits because the reduction is
 * commutative bit for bit (reduce.h).
 *
 * Buffers. A step reads X and writes W = X (op) incoming while the same X is being sent, so
 * W != X: the steps alternate between TEMP and OUTPUT. A rank that starts from INPUT must write
 * TEMP first (in place INPUT is OUTPUT); one that starts from the fold's result chooses where
 * that result goes so that the last step lands in OUTPUT. Only the first kind may end in TEMP
 * (odd number of steps) and then copies TEMP -> OUTPUT.
 *
 *   rounds: [fold] step 0 .. step m-1 [unfold / copy]
 */
void rdt_sched_recdbl_allreduce(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks;
    int pp = rdt_pow2_floor(p), e = p - pp, m = rdt_log2_floor((uint32_t)pp);
    uint32_t f = e > 0 ? 1 : 0;
    int n = rdt_fold_newrank(r, e), folded_in = r < 2 * e, i;
    rdt_buf_t x, w;

    b->s->nunits = 1;
    b->s->nblocks = 1;
    if (n < 0) { /* folded out: give INPUT away, get the result back */
        rdt_sched_send(b, 0, r + 1, RDT_BUF_INPUT, 0, 1);
        rdt_sched_recv(b, f + (uint32_t)m, r + 1, RDT_BUF_OUTPUT, 0, 1);
        return;
    }
    if (folded_in) {
        /* step i writes OUTPUT when m - 1 - i is even; the fold writes the other one */
        w = ((m - 1) % 2 == 0) ? RDT_BUF_OUTPUT : RDT_BUF_TEMP;
        x = w == RDT_BUF_OUTPUT ? RDT_BUF_TEMP : RDT_BUF_OUTPUT;
        rdt_sched_recv_reduce(b, 0, r - 1, x, RDT_BUF_INPUT, 0, 1);
    } else {
        x = RDT_BUF_INPUT;
    }
    for (i = 0; i < m; i++) {
        int peer = rdt_fold_realrank(n ^ (1 << i), e);
        if (folded_in)
            w = ((m - 1 - i) % 2 == 0) ? RDT_BUF_OUTPUT : RDT_BUF_TEMP;
        else
            w = (i % 2 == 0) ? RDT_BUF_TEMP : RDT_BUF_OUTPUT;
        rdt_sched_send(b, f + (uint32_t)i, peer, x, 0, 1);
        rdt_sched_recv_reduce(b, f + (uint32_t)i, peer, w, x, 0, 1);
        x = w;
    }
    if (folded_in)
        rdt_sched_send(b, f + (uint32_t)m, r - 1, RDT_BUF_OUTPUT, 0, 1);
    else if (x != RDT_BUF_OUTPUT)
        rdt_sched_copy(b, f + (uint32_t)m, RDT_BUF_OUTPUT, x, 0, 1);
}

/*
 * Allgather (nunits p, one block per unit). New rank n owns units [U(n), U(n+1)) with
 * U = rdt_fold_unit; at step j it holds the units of the aligned group of 2^j new ranks around
 * it and swaps them with the partner group's:
 *
 *   step j, mask = 2^j:  base = n & ~(mask - 1)     send OUT[U(base), U(base + mask))
 *                        pbase = base ^ mask        recv OUT[U(pbase), U(pbase + mask))
 *
 * Round 0 copies the own unit INPUT -> OUTPUT (alone in its round, so it is safe in place) and
 * does the fold (the even extra rank's unit goes to its odd partner); the last round hands the
 * whole vector back to the folded-out ranks.
 */
void rdt_sched_recdbl_allgather(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks;
    int pp = rdt_pow2_floor(p), e = p - pp, m = rdt_log2_floor((uint32_t)pp);
    int n = rdt_fold_newrank(r, e), j;
    uint32_t ur = (uint32_t)r;

    b->s->nunits = (uint32_t)p;
    b->s->nblocks = (uint32_t)p;
    if (n < 0) {
        rdt_sched_send(b, 0, r + 1, RDT_BUF_INPUT, ur, ur + 1);
        rdt_sched_recv(b, (uint32_t)m + 1, r + 1, RDT_BUF_OUTPUT, 0, (uint32_t)p);
        return;
    }
    if (r < 2 * e)
        rdt_sched_recv(b, 0, r - 1, RDT_BUF_OUTPUT, ur - 1, ur);
    rdt_sched_copy(b, 0, RDT_BUF_OUTPUT, RDT_BUF_INPUT, ur, ur + 1);
    for (j = 0; j < m; j++) {
        int mask = 1 << j;
        int base = n & ~(mask - 1), pbase = base ^ mask;
        int peer = rdt_fold_realrank(n ^ mask, e);
        rdt_sched_send(b, (uint32_t)j + 1, peer, RDT_BUF_OUTPUT, rdt_fold_unit(base, e),
                       rdt_fold_unit(base + mask, e));
        rdt_sched_recv(b, (uint32_t)j + 1, peer, RDT_BUF_OUTPUT, rdt_fold_unit(pbase, e),
                       rdt_fold_unit(pbase + mask, e));
    }
    if (r < 2 * e)
        rdt_sched_send(b, (uint32_t)m + 1, r - 1, RDT_BUF_OUTPUT, 0, (uint32_t)p);
}
