/*
 * fuzz_verbs_record.c - libFuzzer target for the connection record a verbs peer sends through
 * the side channel (rdt_verbs_hs_check / _unpack / _pack in transport/verbs_wire.c: what
 * verbs.c runs on the 88 bytes before it points a queue pair and RDMA writes at the peer).
 * Needs no libibverbs and no device.
 *
 * Input: [mode u8][self u16][nranks u16][record bytes ...], big-endian. The job: nranks (0 is
 * read as 1), this rank self % nranks, communicator 0x0123456789abcdef, a fixed token, slots of
 * 64 KiB, a remote buffer of 16 slots and a page. mode bit 0: the job's token is the record's
 * own; bit 1: so are its communicator and size (below 65536); bit 2: judged as the connector
 * reading the answer of peer (record's rank, if below nranks, else self), else as an acceptor
 * (any rank below self); bit 3: the remote buffer is 2^63 bytes. The record is an exact-size
 * copy (ASan catches a read past it). Every input must satisfy:
 *   - any 88 bytes decode and re-encode to the same bytes with the pads (51, 84..87) zeroed,
 *     and decoding that gives the same record;
 *   - accepted exactly when 88 bytes came with magic RDTV, version 2, the job's token,
 *     communicator, size and slot size, the expected rank (the peer's, or one below self), an
 *     MTU code from 1 to 5, a QP number from 2 to 2^24-1, a PSN below 2^24, and a nonzero
 *     remote address whose buffer does not wrap around 2^64; then the record is what was sent:
 *     rank < nranks, raddr + buf_bytes - 1 >= raddr;
 *   - a refusal comes with a sentence, which fits any buffer (also 1 and 7 bytes, exactly
 *     allocated);
 *   - the verdict and sentence on the first 88 bytes are those on the whole input.
 *   - the same bytes judged as the 56-byte rdma_cm record (rdt_verbs_cm_*, RDT_IB_CM=rdmacm):
 *     exact re-encoding, accepted exactly when magic RDTC, version 1, the job, the expected rank
 *     and a non-wrapping remote buffer; a refusal comes with a sentence.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "verbs_wire.h"
#include "fuzz_util.h"

#define SLOT (64u * 1024)
#define BUF ((uint64_t)16 * SLOT + 4096)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *b, again[RDT_VERBS_HS_LEN], pads[RDT_VERBS_HS_LEN];
    rdt_verbs_hs_want_t w;
    rdt_verbs_hs_t h, h2, out;
    char why[160], why2[160];
    size_t len;
    int mode, self, nranks, rc, want, rank_ok;

    if (size < 5)
        return 0;
    mode = data[0];
    self = data[1] << 8 | data[2];
    nranks = data[3] << 8 | data[4];
    len = size - 5;
    b = malloc(len ? len : 1);
    if (!b)
        return 0;
    memcpy(b, data + 5, len);

    memset(&w, 0, sizeof(w));
    memset(&h, 0, sizeof(h));
    w.token = fuzz_token;
    w.comm_id = FUZZ_COMM;
    if (len >= RDT_VERBS_HS_LEN) {
        rdt_verbs_hs_unpack(b, &h);
        rdt_verbs_hs_pack(&h, again);
        memcpy(pads, b, RDT_VERBS_HS_LEN);
        pads[51] = 0;
        memset(pads + 84, 0, 4);
        CHECK(memcmp(again, pads, RDT_VERBS_HS_LEN) == 0);
        memset(&h2, 0, sizeof(h2)); /* the struct has padding: compared with memcmp */
        rdt_verbs_hs_unpack(again, &h2);
        CHECK(memcmp(&h, &h2, sizeof(h)) == 0);
        if (mode & 1)
            w.token = h.hello.token;
        if ((mode & 2) && h.hello.nranks >= 1 && h.hello.nranks < 65536) {
            w.comm_id = h.hello.comm_id;
            nranks = (int)h.hello.nranks;
        }
    }
    if (nranks == 0)
        nranks = 1;
    w.nranks = nranks;
    w.self = self % nranks;
    w.peer = -1;
    if (mode & 4)
        w.peer = h.hello.rank < (uint32_t)nranks ? (int)h.hello.rank : w.self;
    w.slot_size = SLOT;
    w.buf_bytes = mode & 8 ? (uint64_t)1 << 63 : BUF;

    memset(&out, 0, sizeof(out));
    rc = rdt_verbs_hs_check(b, len, &w, &out, why, sizeof(why));
    rank_ok = w.peer >= 0 ? h.hello.rank == (uint32_t)w.peer : h.hello.rank < (uint32_t)w.self;
    want = len >= RDT_VERBS_HS_LEN && h.hello.magic == RDT_VERBS_HS_MAGIC &&
           h.hello.version == RDT_VERBS_HS_VERSION &&
           memcmp(h.hello.token, w.token, RDT_TOKEN_LEN) == 0 && h.hello.comm_id == w.comm_id &&
           h.hello.nranks == (uint32_t)nranks && h.slot_size == SLOT && rank_ok && h.mtu >= 1 &&
           h.mtu <= 5 && h.qpn >= 2 && h.qpn < (1u << 24) && h.psn < (1u << 24) && h.raddr != 0 &&
           h.raddr + (w.buf_bytes - 1) >= h.raddr;
    CHECK((rc == 0) == want);
    if (rc == 0) {
        CHECK(memcmp(&out, &h, sizeof(h)) == 0);
        CHECK(out.hello.rank < (uint32_t)nranks);
        CHECK(out.raddr + (w.buf_bytes - 1) >= out.raddr);
    } else {
        CHECK(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0');
    }

    /* Bytes past the record change nothing. */
    if (len > RDT_VERBS_HS_LEN) {
        unsigned char *r = malloc(RDT_VERBS_HS_LEN);
        if (r) {
            memcpy(r, b, RDT_VERBS_HS_LEN);
            memset(&h2, 0, sizeof(h2));
            CHECK(rdt_verbs_hs_check(r, RDT_VERBS_HS_LEN, &w, &h2, why2, sizeof(why2)) == rc);
            CHECK(rc != 0 || memcmp(&h2, &out, sizeof(h2)) == 0);
            CHECK(rc == 0 || strcmp(why, why2) == 0);
            free(r);
        }
    }
    FUZZ_TINY_SENTENCES(rdt_verbs_hs_check(b, len, &w, &h2, fuzz_w, fuzz_k), rc, rc != 0);

    /* The same bytes as the rdma_cm record (RDT_IB_CM=rdmacm): 56 bytes without pads decode and
     * re-encode exactly; accepted exactly when they say RDTC, version 1, this job, communicator,
     * size and slot size, an expected rank and a remote buffer that does not wrap. */
    memset(&h, 0, sizeof(h));
    if (len >= RDT_VERBS_CM_LEN) {
        rdt_verbs_cm_unpack(b, &h);
        rdt_verbs_cm_pack(&h, again);
        CHECK(memcmp(again, b, RDT_VERBS_CM_LEN) == 0);
    }
    if (mode & 4)
        w.peer = h.hello.rank < (uint32_t)nranks ? (int)h.hello.rank : w.self;
    memset(&out, 0, sizeof(out));
    rc = rdt_verbs_cm_check(b, len, &w, &out, why, sizeof(why));
    rank_ok = w.peer >= 0 ? h.hello.rank == (uint32_t)w.peer : h.hello.rank < (uint32_t)w.self;
    want = len >= RDT_VERBS_CM_LEN && h.hello.magic == RDT_VERBS_CM_MAGIC &&
           h.hello.version == RDT_VERBS_CM_VERSION &&
           memcmp(h.hello.token, w.token, RDT_TOKEN_LEN) == 0 && h.hello.comm_id == w.comm_id &&
           h.hello.nranks == (uint32_t)nranks && h.slot_size == SLOT && rank_ok && h.raddr != 0 &&
           h.raddr + (w.buf_bytes - 1) >= h.raddr;
    CHECK((rc == 0) == want);
    if (rc == 0)
        CHECK(memcmp(&out, &h, sizeof(h)) == 0 && out.hello.rank < (uint32_t)nranks);
    else
        CHECK(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0');
    FUZZ_TINY_SENTENCES(rdt_verbs_cm_check(b, len, &w, &h2, fuzz_w, fuzz_k), rc, rc != 0);
    free(b);
    return 0;
}
