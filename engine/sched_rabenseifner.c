/*
 * sched_rabenseifner.c - recursive halving reduce-scatter (+ recursive doubling allgather for
 * allreduce), any rank count.
 *
 * Recursive halving on p' = 2^k (new) ranks: at step i the partner is n ^ (p' >> (i + 1)); each
 * keeps the half of the current range its own number falls in, sends the other half and
 * reduces the kept half with what arrives. After k steps new rank n holds piece n:
 *
 *   p' = 4    range [0,4)          step 0: 0,1 keep [0,2)  2,3 keep [2,4)   (partners n ^ 2)
 *             then                 step 1: 0 keeps [0,1) 1 keeps [1,2) ...  (partners n ^ 1)
 *
 * Other rank counts fold the first 2e ranks first (sched_impl.h); the folded-out ranks get
 * their share back at the end.
 */
#include "sched_impl.h"

/*
 * Allreduce (nunits 1, nblocks p'): halving reduce-scatter of the p' blocks into OUTPUT, then
 * the doubling allgather of sched_recdbl.c in reverse order. Send and kept halves are disjoint,
 * so one buffer serves: the first step reads INPUT (sends one half, reduces the other into
 * OUTPUT, which in place is the same memory only for the kept half, read by the same op), all
 * later ones OUTPUT. Each block is reduced exactly once per step by one rank and then copied:
 * every rank ends with the same bits. No TEMP.
 */
void rdt_sched_rabenseifner_allreduce(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks;
    int pp = rdt_pow2_floor(p), e = p - pp, m = rdt_log2_floor((uint32_t)pp);
    uint32_t f = e > 0 ? 1 : 0, npp = (uint32_t)pp;
    int n = rdt_fold_newrank(r, e), i, lo = 0;
    rdt_buf_t x = RDT_BUF_INPUT;

    b->s->nunits = 1;
    b->s->nblocks = npp;
    if (n < 0) {
        rdt_sched_send(b, 0, r + 1, RDT_BUF_INPUT, 0, npp);
        rdt_sched_recv(b, f + 2 * (uint32_t)m, r + 1, RDT_BUF_OUTPUT, 0, npp);
        return;
    }
    if (r < 2 * e) {
        rdt_sched_recv_reduce(b, 0, r - 1, RDT_BUF_OUTPUT, RDT_BUF_INPUT, 0, npp);
        x = RDT_BUF_OUTPUT;
    }
    for (i = 0; i < m; i++) {
        int mask = pp >> (i + 1), peer = rdt_fold_realrank(n ^ mask, e);
        int keep = (n & mask) ? lo + mask : lo, give = (n & mask) ? lo : lo + mask;
        rdt_sched_send(b, f + (uint32_t)i, peer, x, (uint32_t)give, (uint32_t)(give + mask));
        rdt_sched_recv_reduce(b, f + (uint32_t)i, peer, RDT_BUF_OUTPUT, x, (uint32_t)keep,
                              (uint32_t)(keep + mask));
        lo = keep;
        x = RDT_BUF_OUTPUT;
    }
    for (i = 0; i < m; i++) {
        int mask = 1 << i, peer = rdt_fold_realrank(n ^ mask, e);
        int base = n & ~(mask - 1), pbase = base ^ mask;
        uint32_t round = f + (uint32_t)(m + i);
        rdt_sched_send(b, round, peer, RDT_BUF_OUTPUT, (uint32_t)base, (uint32_t)(base + mask));
        rdt_sched_recv(b, round, peer, RDT_BUF_OUTPUT, (uint32_t)pbase, (uint32_t)(pbase + mask));
    }
    if (r < 2 * e)
        rdt_sched_send(b, f + 2 * (uint32_t)m, r - 1, RDT_BUF_OUTPUT, 0, npp);
}

/*
 * Reduce-scatter (nunits p, one block per unit). New rank n stands for units
 * [U(n), U(n + 1)) (U = rdt_fold_unit), so halving new-rank ranges halves unit ranges:
 *
 *   p = 6 (p' = 4, e = 2):  new ranks 0..3 = real 1, 3, 4, 5, units [0,2) [2,4) [4,5) [5,6)
 *
 * Partial sums go to TEMP; the last step of an unfolded rank reduces straight into OUTPUT (its
 * own unit); a folded-in rank ends with its own and its partner's unit in TEMP, copies its own
 * to OUTPUT and sends the other to the folded-out partner.
 */
void rdt_sched_rabenseifner_reduce_scatter(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks;
    int pp = rdt_pow2_floor(p), e = p - pp, m = rdt_log2_floor((uint32_t)pp);
    uint32_t f = e > 0 ? 1 : 0, up = (uint32_t)p, ur = (uint32_t)r;
    int n = rdt_fold_newrank(r, e), folded_in = r < 2 * e, i, lo = 0;
    rdt_buf_t x = RDT_BUF_INPUT;

    b->s->nunits = up;
    b->s->nblocks = up;
    if (n < 0) {
        rdt_sched_send(b, 0, r + 1, RDT_BUF_INPUT, 0, up);
        rdt_sched_recv(b, f + (uint32_t)m, r + 1, RDT_BUF_OUTPUT, ur, ur + 1);
        return;
    }
    if (folded_in) {
        rdt_sched_recv_reduce(b, 0, r - 1, RDT_BUF_TEMP, RDT_BUF_INPUT, 0, up);
        x = RDT_BUF_TEMP;
    }
    for (i = 0; i < m; i++) {
        int mask = pp >> (i + 1), peer = rdt_fold_realrank(n ^ mask, e);
        int keep = (n & mask) ? lo + mask : lo, give = (n & mask) ? lo : lo + mask;
        rdt_buf_t w = (i == m - 1 && !folded_in) ? RDT_BUF_OUTPUT : RDT_BUF_TEMP;
        rdt_sched_send(b, f + (uint32_t)i, peer, x, rdt_fold_unit(give, e),
                       rdt_fold_unit(give + mask, e));
        rdt_sched_recv_reduce(b, f + (uint32_t)i, peer, w, x, rdt_fold_unit(keep, e),
                              rdt_fold_unit(keep + mask, e));
        lo = keep;
        x = w;
    }
    if (folded_in) {
        rdt_sched_send(b, f + (uint32_t)m, r - 1, RDT_BUF_TEMP, ur - 1, ur);
        rdt_sched_copy(b, f + (uint32_t)m, RDT_BUF_OUTPUT, RDT_BUF_TEMP, ur, ur + 1);
    }
}
