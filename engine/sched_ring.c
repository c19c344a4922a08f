/*
 * sched_ring.c - ring allreduce, reduce_scatter and allgather; chain broadcast and reduce.
 *
 * Every rank sends to its right neighbour and receives from its left one, so each link carries
 * one message per round in each direction:
 *
 *        +----> 1 ----> 2 ----+
 *        |                    v
 *        0 <---- 4 <---- 3 <--+        next = (r + 1) % p, prev = (r - 1 + p) % p
 */
#include "sched_impl.h"

static uint32_t ring_mod(int x, int p)
{
    return (uint32_t)(((x % p) + p) % p);
}

/*
 * Allreduce: reduce-scatter then allgather over p blocks (nunits 1, nblocks p). Step s of the
 * reduce-scatter: r sends block r - s and folds the incoming block r - s - 1 into OUTPUT, so
 * after p - 1 steps OUTPUT block r + 1 holds the full reduction (every block is reduced exactly
 * once, along the ring, hence bit-identical everywhere). The allgather then passes the finished
 * blocks on: step s sends block r + 1 - s, receives block r - s.
 *
 *   p = 3, rank 0:  RS s=0: send IN[0]   OUT[2] = IN[2] + recv     AG s=0: send OUT[1] recv OUT[0]
 *                   RS s=1: send OUT[2]  OUT[1] = IN[1] + recv     AG s=1: send OUT[0] recv OUT[2]
 *
 * In place: IN[b] is read only by the op that first writes OUT[b], or (block r) in round 0,
 * before the allgather writes OUT[r].
 */
void rdt_sched_ring_allreduce(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks;
    int next = (int)ring_mod(r + 1, p), prev = (int)ring_mod(r - 1, p);
    int s;

    b->s->nunits = 1;
    b->s->nblocks = (uint32_t)p;
    for (s = 0; s < p - 1; s++) {
        uint32_t out = ring_mod(r - s, p), in = ring_mod(r - s - 1, p);
        rdt_sched_send(b, (uint32_t)s, next, s == 0 ? RDT_BUF_INPUT : RDT_BUF_OUTPUT, out, out + 1);
        rdt_sched_recv_reduce(b, (uint32_t)s, prev, RDT_BUF_OUTPUT, RDT_BUF_INPUT, in, in + 1);
    }
    for (s = 0; s < p - 1; s++) {
        uint32_t out = ring_mod(r + 1 - s, p), in = ring_mod(r - s, p);
        uint32_t round = (uint32_t)(p - 1 + s);
        rdt_sched_send(b, round, next, RDT_BUF_OUTPUT, out, out + 1);
        rdt_sched_recv(b, round, prev, RDT_BUF_OUTPUT, in, in + 1);
    }
}

/*
 * Reduce-scatter (nunits p, one block per unit). The partial sum of unit u starts at rank
 * u + 1 and travels the ring to rank u, which adds its own contribution last and keeps the
 * result: step s sends unit r - s - 1 and reduces unit r - s - 2; in the last step
 * (s = p - 2) that is unit r itself, reduced into OUTPUT. Partial sums travel through TEMP.
 *
 *   unit 0 on 4 ranks:  1 --IN[0]--> 2 --TEMP[0]--> 3 --TEMP[0]--> 0: OUT[0] = IN[0] + recv
 */
void rdt_sched_ring_reduce_scatter(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks;
    int next = (int)ring_mod(r + 1, p), prev = (int)ring_mod(r - 1, p);
    int s;

    b->s->nunits = (uint32_t)p;
    b->s->nblocks = (uint32_t)p;
    for (s = 0; s < p - 1; s++) {
        uint32_t out = ring_mod(r - s - 1, p), in = ring_mod(r - s - 2, p);
        rdt_sched_send(b, (uint32_t)s, next, s == 0 ? RDT_BUF_INPUT : RDT_BUF_TEMP, out, out + 1);
        rdt_sched_recv_reduce(b, (uint32_t)s, prev, s == p - 2 ? RDT_BUF_OUTPUT : RDT_BUF_TEMP,
                              RDT_BUF_INPUT, in, in + 1);
    }
}

/*
 * Allgather (nunits p, one block per unit): step s forwards unit r - s (its own, from INPUT,
 * at s = 0) and receives unit r - s - 1. The rank's own unit is copied INPUT -> OUTPUT in
 * round 1, after round 0 has sent it: in place the two are the same memory and a copy
 * concurrent with the send would be a race.
 */
void rdt_sched_ring_allgather(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks;
    int next = (int)ring_mod(r + 1, p), prev = (int)ring_mod(r - 1, p);
    int s;

    b->s->nunits = (uint32_t)p;
    b->s->nblocks = (uint32_t)p;
    for (s = 0; s < p - 1; s++) {
        uint32_t out = ring_mod(r - s, p), in = ring_mod(r - s - 1, p);
        rdt_sched_send(b, (uint32_t)s, next, s == 0 ? RDT_BUF_INPUT : RDT_BUF_OUTPUT, out, out + 1);
        rdt_sched_recv(b, (uint32_t)s, prev, RDT_BUF_OUTPUT, in, in + 1);
        if (s == 1)
            rdt_sched_copy(b, 1, RDT_BUF_OUTPUT, RDT_BUF_INPUT, (uint32_t)r, (uint32_t)r + 1);
    }
    if (p == 2)
        rdt_sched_copy(b, 1, RDT_BUF_OUTPUT, RDT_BUF_INPUT, (uint32_t)r, (uint32_t)r + 1);
}

/*
 * Broadcast along the chain root -> root+1 -> ... -> root-1 (nunits 1, nblocks 1); the
 * executor's slices pipeline it. v = (r - root) mod p is the position in the chain: v receives
 * in round v - 1 and forwards in round v. The root copies INPUT -> OUTPUT in round 1, after its
 * send (same memory in place).
 *
 *   root=2, p=4:   2 --r0--> 3 --r1--> 0 --r2--> 1
 */
void rdt_sched_chain_broadcast(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks, root = b->s->root;
    int next = (int)ring_mod(r + 1, p), prev = (int)ring_mod(r - 1, p);
    int v = (int)ring_mod(r - root, p);

    b->s->nunits = 1;
    b->s->nblocks = 1;
    if (v == 0) {
        rdt_sched_send(b, 0, next, RDT_BUF_INPUT, 0, 1);
        rdt_sched_copy(b, 1, RDT_BUF_OUTPUT, RDT_BUF_INPUT, 0, 1);
        return;
    }
    rdt_sched_recv(b, (uint32_t)(v - 1), prev, RDT_BUF_OUTPUT, 0, 1);
    if (v < p - 1)
        rdt_sched_send(b, (uint32_t)v, next, RDT_BUF_OUTPUT, 0, 1);
}

/*
 * Reduce along the chain root+1 -> root+2 -> ... -> root-1 -> root (nunits 1, nblocks 1):
 * v = (r - root) mod p; v = 1 sends its INPUT in round 0, v >= 2 adds its INPUT to what it
 * receives in round v - 2 (into TEMP: non-roots have no OUTPUT) and forwards it in round v - 1;
 * the root adds its own last, into OUTPUT, in round p - 2.
 *
 *   root=0, p=4:   1 --r0--> 2 --r1--> 3 --r2--> 0
 */
void rdt_sched_chain_reduce(rdt_sched_builder_t *b)
{
    int r = b->s->rank, p = b->s->nranks, root = b->s->root;
    int next = (int)ring_mod(r + 1, p), prev = (int)ring_mod(r - 1, p);
    int v = (int)ring_mod(r - root, p);

    b->s->nunits = 1;
    b->s->nblocks = 1;
    if (v == 0) {
        rdt_sched_recv_reduce(b, (uint32_t)(p - 2), prev, RDT_BUF_OUTPUT, RDT_BUF_INPUT, 0, 1);
    } else if (v == 1) {
        rdt_sched_send(b, 0, next, RDT_BUF_INPUT, 0, 1);
    } else {
        rdt_sched_recv_reduce(b, (uint32_t)(v - 2), prev, RDT_BUF_TEMP, RDT_BUF_INPUT, 0, 1);
        rdt_sched_send(b, (uint32_t)(v - 1), next, RDT_BUF_TEMP, 0, 1);
    }
}
