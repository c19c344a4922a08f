/*
 * fuzz_tcp_handshake.c - libFuzzer target for the handshake a TCP peer sends when it connects
 * (rdt_tcp_hs_check in transport/tcp_wire.c on the hello of wire.c: what tcp.c runs on the first
 * 40 bytes of every accepted connection, before the socket is trusted).
 *
 * Input: [mode u8][self u16][nranks u16][handshake bytes ...], big-endian. The job: nranks
 * (0 is read as 1), this rank self % nranks, communicator 0x0123456789abcdef, a fixed token.
 * mode bit 0: the job's token is the handshake's own; bit 1: so are its communicator and size
 * (when the size is below 65536), so that members, not only strangers, are reached. Beyond "no
 * crash, no out-of-bounds read" (ASan, the handshake is an exact-size copy) every input must
 * satisfy:
 *   - any 40 bytes decode and re-encode to the same 40 bytes (every byte is a field);
 *   - accepted exactly when 40 bytes came with magic RDTH, version 1, the job's token,
 *     communicator and size, and a rank below self; then *rank_p is that rank (an index into
 *     the caller's peers: < self < nranks);
 *   - a rejection comes with a sentence, which fits any buffer (also 1 and 7 bytes, exactly
 *     allocated); a rank claim that is out of range is refused naming it ("claims rank N");
 *   - the verdict and sentence on the first 40 bytes are those on the whole input.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcp_wire.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *token = fuzz_token;
    unsigned char *b, again[RDT_TCP_HS_LEN];
    uint64_t comm = FUZZ_COMM;
    rdt_wire_hello_t h;
    char why[160], why40[160];
    uint32_t rank = 0xdeadbeef, rank40 = 0xdeadbeef;
    size_t len;
    int mode, self, nranks, rc, rc40, want;

    if (size < 5)
        return 0;
    mode = data[0];
    self = data[1] << 8 | data[2];
    nranks = data[3] << 8 | data[4];
    len = size - 5;
    b = malloc(len ? len : 1); /* exact size: a read past len is caught */
    if (!b)
        return 0;
    memcpy(b, data + 5, len);

    memset(&h, 0, sizeof(h));
    if (len >= RDT_TCP_HS_LEN) {
        rdt_wire_hello_unpack(b, &h);
        rdt_wire_hello_pack(&h, again);
        CHECK(memcmp(again, b, RDT_TCP_HS_LEN) == 0);
        if (mode & 1)
            token = h.token;
        if ((mode & 2) && h.nranks >= 1 && h.nranks < 65536) {
            comm = h.comm_id;
            nranks = (int)h.nranks;
        }
    }
    if (nranks == 0)
        nranks = 1;
    self %= nranks;

    memset(why, 0x5a, sizeof(why));
    rc = rdt_tcp_hs_check(b, len, token, comm, self, nranks, &rank, why, sizeof(why));
    CHECK(rc == 0 || rc == -1);
    want = len >= RDT_TCP_HS_LEN && h.magic == RDT_TCP_HS_MAGIC &&
           h.version == RDT_TCP_HS_VERSION && memcmp(h.token, token, RDT_TOKEN_LEN) == 0 &&
           h.comm_id == comm && h.nranks == (uint32_t)nranks && h.rank < (uint32_t)self;
    CHECK((rc == 0) == want);
    if (rc == 0) {
        CHECK(rank == h.rank && rank < (uint32_t)self && rank < (uint32_t)nranks);
    } else {
        CHECK(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0');
        CHECK(rank == 0xdeadbeef); /* nothing to trust on a rejection */
        if (len >= RDT_TCP_HS_LEN && h.magic == RDT_TCP_HS_MAGIC &&
            h.version == RDT_TCP_HS_VERSION && memcmp(h.token, token, RDT_TOKEN_LEN) == 0 &&
            h.comm_id == comm && h.nranks == (uint32_t)nranks) {
            char claim[40];
            snprintf(claim, sizeof(claim), "claims rank %" PRIu32, h.rank);
            CHECK(strstr(why, claim) != NULL);
        }
    }

    /* Bytes past the 40 of the handshake (the start of the message stream) change nothing. */
    if (len > RDT_TCP_HS_LEN) {
        unsigned char *b40 = malloc(RDT_TCP_HS_LEN);
        if (b40) {
            memcpy(b40, b, RDT_TCP_HS_LEN);
            rc40 = rdt_tcp_hs_check(b40, RDT_TCP_HS_LEN, token, comm, self, nranks, &rank40,
                                    why40, sizeof(why40));
            CHECK(rc40 == rc && (rc != 0 || rank40 == rank));
            CHECK(rc == 0 || strcmp(why40, why) == 0);
            free(b40);
        }
    }

    /* Tiny sentence buffers, exactly allocated, and none at all. */
    FUZZ_TINY_SENTENCES(
        rdt_tcp_hs_check(b, len, token, comm, self, nranks, &rank40, fuzz_w, fuzz_k), rc,
        rc != 0);
    CHECK(rdt_tcp_hs_check(b, len, token, comm, self, nranks, &rank40, NULL, 0) == rc);
    free(b);
    return 0;
}
