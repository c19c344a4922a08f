/*
 * tcp_wire.h - the TCP transport's wire formats as pure functions (bytes in, a verdict and a
 * sentence out; no socket, no transport state), so that tcp.c and the fuzz targets
 * (tests/fuzz/fuzz_tcp_handshake.c, fuzz_tcp_frame.c, fuzz_tcp_notice.c) run the same code.
 * Little-endian.
 *
 * The handshake, connector to acceptor only, RDT_TCP_HS_LEN bytes:
 *
 *     0        4        8                    24         32       36        40
 *     | magic  | version| token (16)         | comm_id  | rank   | nranks  |
 *
 * The frame header in front of every message (and of a failure notice, magic RDTA):
 *
 *     0        4        8                16               24
 *     | magic  | check  | tag            | length         | payload (length bytes) ...
 *
 * check is rdt_wire_hdr_check(tag, length, magic) (wire.h).
 *
 * A failure notice (tcp.c) is the last thing on a stream: a sentence of n <= RDT_TCP_NOTICE_MAX
 * bytes, then the trailer, which the receiver looks for in the last bytes it read:
 *
 *     | sentence (n) | n (u32) | check of (0, n, RDTA) (u32) | magic RDTA (u32) |
 */
#ifndef RDT_TCP_WIRE_H
#define RDT_TCP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"
#include "wire.h"

#define RDT_TCP_MSG_MAGIC 0x31544452u  /* "RDT1" on the wire */
#define RDT_TCP_NOTE_MAGIC 0x41544452u /* "RDTA": a failure notice, the last thing on a stream */
#define RDT_TCP_HDR_LEN 24
#define RDT_TCP_HS_MAGIC 0x48544452u /* "RDTH" */
#define RDT_TCP_HS_VERSION 1u
#define RDT_TCP_HS_LEN RDT_WIRE_HELLO_LEN
#define RDT_TCP_NOTICE_MAX 400 /* bytes of a notice's sentence */
#define RDT_TCP_TRAILER_LEN 12 /* after the sentence: length, check, magic */

/* The handshake is the hello of wire.h (rdt_wire_hello_pack / _unpack), with the magic and
 * version above. */

/*
 * Judge the @p len bytes @p b an accepted connection sent as its handshake, as rank @p self of
 * the @p nranks ranks of communicator @p comm_id of the job with @p token: only a lower rank
 * connects. 0 with the peer's rank in *rank_p (< self), or -1 with the reason in @p why (a
 * sentence fragment such as "wrong job token", NUL-terminated within @p n bytes when n > 0).
 * Only the first RDT_TCP_HS_LEN bytes are read; fewer is a truncated handshake. Whether that
 * rank is free to connect is the caller's business (transport state).
 */
int rdt_tcp_hs_check(const unsigned char *b, size_t len, const unsigned char *token,
                     uint64_t comm_id, int self, int nranks, uint32_t *rank_p, char *why,
                     size_t n);

typedef enum {
    RDT_TCP_FRAME_MORE,    /* fewer than RDT_TCP_HDR_LEN bytes */
    RDT_TCP_FRAME_MSG,     /* a message header: tag and length follow */
    RDT_TCP_FRAME_NOTICE,  /* a failure notice starts: the rest of the stream is its text */
    RDT_TCP_FRAME_CORRUPT, /* neither: the stream is out of sync */
} rdt_tcp_frame_t;

/* Encode a header of @p magic (RDT_TCP_MSG_MAGIC or RDT_TCP_NOTE_MAGIC) into b[0..23]. */
void rdt_tcp_frame_pack(uint32_t magic, uint64_t tag, uint64_t len, unsigned char *b);

/*
 * Judge the first RDT_TCP_HDR_LEN of the @p avail bytes at @p b as a frame header. MSG and
 * NOTICE set *tag_p and *len_p (the length is the peer's claim, not checked against anything:
 * the receive it is matched with decides); CORRUPT writes to @p why a fragment such as "corrupt
 * message header (magic 0x...)". Bytes past the header are not read.
 */
rdt_tcp_frame_t rdt_tcp_frame_parse(const unsigned char *b, size_t avail, uint64_t *tag_p,
                                    uint64_t *len_p, char *why, size_t n);

/*
 * Encode the trailer of the notice @p why (its first strnlen(why, RDT_TCP_NOTICE_MAX) bytes,
 * which go on the wire in front of it) into t[0..RDT_TCP_TRAILER_LEN-1]; returns that length.
 */
size_t rdt_tcp_notice_pack(const char *why, unsigned char *t);

/*
 * Look for a notice at the end of the @p n bytes @p tail (the last bytes read from a stream):
 * 1 if they end with a trailer (magic, check word, length <= RDT_TCP_NOTICE_MAX) behind that
 * many sentence bytes, which go to @p why with every byte outside 0x20..0x7e as '?' (it goes
 * into logs), truncated and NUL-terminated within @p len bytes when len > 0 ("(no reason
 * given)" for an empty one); 0 otherwise, @p why untouched. Only the last n' + 12 bytes (n' the
 * sentence's length, at most RDT_TCP_NOTICE_MAX) are read.
 */
int rdt_tcp_notice_parse(const unsigned char *tail, size_t n, char *why, size_t len);

#endif /* RDT_TCP_WIRE_H */
