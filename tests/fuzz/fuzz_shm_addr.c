/*
 * fuzz_shm_addr.c - libFuzzer target for what a shared-memory peer publishes: its address
 * (rdt_shm_addr_parse / _pack) and the header page of its segment (rdt_shm_seg_check), in
 * transport/shm_wire.c: what shm.c runs before it maps a slot of another process's memfd.
 *
 * Input: [mode u8][nranks u16][self u16][peer u16][file size u64][address (16)][header page
 * bytes ...], big-endian, shorter inputs padded with zeros up to the page. The job: nranks (0 is
 * read as 1), this rank self % nranks, communicator 0x0123456789abcdef, a fixed token; the pid
 * expected is the address's. mode bit 0: the job's token is the header's own; bit 1: so are its
 * communicator and size (below 65536), and peer is the header's rank; bit 2: the address names
 * the header's pid; bit 3: the file is as large as the header implies; so that real segments,
 * not only garbage, are reached. The address and the
 * page are exact-size copies (ASan catches a read past them). Every input must satisfy:
 *   - the address is accepted exactly when it starts 'S', version 1; its pid, memfd and eventfd
 *     are then its little-endian words, and re-encoding gives the same 16 bytes but for bytes 2
 *     and 3 (zero); fewer than 16 bytes are refused;
 *   - the header is accepted exactly when it is the peer's (magic, version, rank, size,
 *     communicator, pid, token) with rings of a power of two from 4 KiB to 1 GiB, in a file
 *     that holds them all; then this rank's slot lies within the segment and the file:
 *     PAGE <= out_off, out_off + out_len <= seg_bytes <= file size (no overflow, seg_bytes below
 *     2^63 so it is an off_t), out_len = PAGE + ring, the slots of two ranks do not
 *     overlap, and the share area ends the segment after every slot;
 *   - every refusal comes with a sentence, which fits any buffer (also 1 and 7 bytes, exactly
 *     allocated);
 *   - the verdicts depend only on the first 16 bytes of the address and the first
 *     sizeof(rdt_shm_seg_hdr_t) of the page.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shm_wire.h"
#include "wire.h"
#include "fuzz_util.h"

#define PRE 15

static void check_addr(const unsigned char *in)
{
    unsigned char *a = malloc(RDT_SHM_ADDR_LEN), again[RDT_SHM_ADDR_LEN];
    rdt_shm_addr_t ad, ad2;
    char why[160];
    size_t k;
    int rc;

    if (!a)
        return;
    memcpy(a, in, RDT_SHM_ADDR_LEN);
    memset(&ad, 0x5a, sizeof(ad));
    rc = rdt_shm_addr_parse(a, RDT_SHM_ADDR_LEN, &ad, why, sizeof(why));
    CHECK((rc == 0) == (a[0] == 'S' && a[1] == RDT_SHM_VERSION));
    if (rc == 0) {
        CHECK(ad.pid == rdt_wire_get_u32(a + 4) && ad.memfd == rdt_wire_get_u32(a + 8) &&
              ad.efd == rdt_wire_get_u32(a + 12));
        rdt_shm_addr_pack(&ad, again);
        CHECK(again[2] == 0 && again[3] == 0);
        again[2] = a[2];
        again[3] = a[3];
        CHECK(memcmp(again, a, RDT_SHM_ADDR_LEN) == 0);
        CHECK(rdt_shm_addr_parse(again, RDT_SHM_ADDR_LEN, &ad2, why, sizeof(why)) == 0 &&
              memcmp(&ad, &ad2, sizeof(ad)) == 0);
    } else {
        CHECK(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0');
    }
    for (k = 0; k < RDT_SHM_ADDR_LEN; k += 5) { /* truncated: refused, within its k bytes */
        CHECK(rdt_shm_addr_parse(a + RDT_SHM_ADDR_LEN - k, k, &ad2, why, sizeof(why)) == -1);
        CHECK(why[0] != '\0');
    }
    FUZZ_TINY_SENTENCES(rdt_shm_addr_parse(a, RDT_SHM_ADDR_LEN, &ad2, fuzz_w, fuzz_k), rc, rc != 0);
    free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char in[PRE + RDT_SHM_ADDR_LEN + sizeof(rdt_shm_seg_hdr_t)], *page;
    const unsigned char *token = fuzz_token;
    uint64_t comm = FUZZ_COMM;
    rdt_shm_seg_hdr_t h;
    rdt_shm_seg_t seg, seg2;
    uint64_t file, implied = 0;
    uint32_t pid;
    size_t plen, k;
    char why[160], why2[160];
    int mode, nranks, self, peer, rc, want;

    memset(in, 0, sizeof(in));
    memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
    mode = in[0];
    nranks = in[1] << 8 | in[2];
    self = in[3] << 8 | in[4];
    peer = in[5] << 8 | in[6];
    file = 0;
    for (k = 7; k < PRE; k++)
        file = file << 8 | in[k];
    check_addr(in + PRE);

    /* the page: what the input has of it, at least the header's size */
    plen = size > PRE + RDT_SHM_ADDR_LEN ? size - PRE - RDT_SHM_ADDR_LEN : 0;
    if (plen < sizeof(h))
        plen = sizeof(h);
    page = malloc(plen);
    if (!page)
        return 0;
    memset(page, 0, plen);
    if (size > PRE + RDT_SHM_ADDR_LEN)
        memcpy(page, data + PRE + RDT_SHM_ADDR_LEN, size - PRE - RDT_SHM_ADDR_LEN);
    memcpy(&h, page, sizeof(h));

    pid = rdt_wire_get_u32(in + PRE + 4);
    if (mode & 1)
        token = h.token;
    if ((mode & 2) && h.nranks >= 1 && h.nranks < 65536) {
        comm = h.comm_id;
        nranks = (int)h.nranks;
        peer = (int)(h.rank & 0xffff);
    }
    if (mode & 4)
        pid = h.pid;
    if (nranks == 0)
        nranks = 1;
    self %= nranks;
    if (h.ring_bytes <= RDT_SHM_RING_MAX)
        implied = RDT_SHM_PAGE + (uint64_t)nranks * (RDT_SHM_PAGE + h.ring_bytes) +
                  RDT_SHM_SHARE_BYTES;
    if (mode & 8)
        file = implied;

    memset(&seg, 0x5a, sizeof(seg));
    rc = rdt_shm_seg_check(page, plen, file, pid, peer, self, nranks, comm, token, &seg, why,
                           sizeof(why));
    want = h.magic == RDT_SHM_SEG_MAGIC && h.version == RDT_SHM_VERSION &&
           h.rank == (uint32_t)peer && h.nranks == (uint32_t)nranks && h.comm_id == comm &&
           h.pid == pid && memcmp(h.token, token, RDT_TOKEN_LEN) == 0 &&
           h.ring_bytes >= RDT_SHM_RING_MIN && h.ring_bytes <= RDT_SHM_RING_MAX &&
           (h.ring_bytes & (h.ring_bytes - 1)) == 0 && file >= implied;
    CHECK((rc == 0) == want);
    if (rc == 0) {
        CHECK(seg.ring_bytes == h.ring_bytes);
        CHECK(seg.out_len == RDT_SHM_PAGE + seg.ring_bytes);
        CHECK(seg.out_off >= RDT_SHM_PAGE);
        CHECK(seg.out_off + seg.out_len >= seg.out_off); /* no wrap */
        CHECK(seg.out_off + seg.out_len <= seg.seg_bytes);
        CHECK(seg.seg_bytes <= (uint64_t)INT64_MAX && seg.seg_bytes <= file);
        CHECK(seg.seg_bytes ==
              RDT_SHM_PAGE + (uint64_t)nranks * seg.out_len + RDT_SHM_SHARE_BYTES);
        /* the share area follows every slot and ends the segment */
        CHECK(seg.share_off + RDT_SHM_SHARE_BYTES == seg.seg_bytes);
        CHECK(seg.out_off + seg.out_len <= seg.share_off);
        CHECK(seg.probe_addr == h.probe_addr && seg.probe_value == h.probe_value);
        /* another rank's slot in the same segment does not overlap ours */
        if (nranks > 1) {
            int other = (self + 1 + (mode >> 4) % (nranks - 1)) % nranks;
            CHECK(rdt_shm_seg_check(page, plen, file, pid, peer, other, nranks, comm, token,
                                    &seg2, why2, sizeof(why2)) == 0);
            CHECK(seg2.out_off + seg2.out_len <= seg.out_off ||
                  seg.out_off + seg.out_len <= seg2.out_off);
        }
    } else {
        CHECK(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0');
    }

    /* Only the header is read: the same verdict from an exact-size copy of it. */
    if (plen > sizeof(h)) {
        unsigned char *hb = malloc(sizeof(h));
        if (hb) {
            memcpy(hb, page, sizeof(h));
            CHECK(rdt_shm_seg_check(hb, sizeof(h), file, pid, peer, self, nranks, comm, token,
                                    &seg2, why2, sizeof(why2)) == rc);
            CHECK(rc != 0 || memcmp(&seg, &seg2, sizeof(seg)) == 0);
            CHECK(rc == 0 || strcmp(why, why2) == 0);
            free(hb);
        }
    }
    /* A short header is refused. */
    CHECK(rdt_shm_seg_check(page, sizeof(h) - 1, file, pid, peer, self, nranks, comm, token,
                            &seg2, why2, sizeof(why2)) == -1 &&
          why2[0] != '\0');
    FUZZ_TINY_SENTENCES(rdt_shm_seg_check(page, plen, file, pid, peer, self, nranks, comm, token,
                                          &seg2, fuzz_w, fuzz_k),
                        rc, rc != 0);
    free(page);
    return 0;
}
