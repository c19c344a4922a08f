/*
 * ctl_wire.h - the status channel's datagram (ctl.h) as pure functions: rdt_ctl_pack encodes,
 * rdt_ctl_parse decodes and validates (bytes in, a verdict and a sentence out; no socket, no
 * communicator), so that ctl.c and the fuzz target (tests/fuzz/fuzz_ctl.c) run the same code.
 * The layout is described in ctl_wire.c.
 */
#ifndef RDT_CTL_WIRE_H
#define RDT_CTL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"

#define RDT_CTL_MAX_WAIT 16  /* ranks one answer lists */
#define RDT_CTL_TEXT_MAX 900 /* bytes of a sentence (a datagram fits a 1500-byte MTU) */
#define RDT_CTL_HDR_LEN  112
#define RDT_CTL_MSG_MAX  (RDT_CTL_HDR_LEN + RDT_CTL_TEXT_MAX)

enum { RDT_CTL_QUERY = 1, RDT_CTL_ANSWER = 2, RDT_CTL_GAVE_UP = 3 };
enum { RDT_CTL_IDLE = 0, RDT_CTL_WAITING = 1 };

typedef struct rdt_ctl_msg {
    int type;  /* RDT_CTL_QUERY, RDT_CTL_ANSWER or RDT_CTL_GAVE_UP */
    int state; /* answers: RDT_CTL_IDLE (no operation in progress) or RDT_CTL_WAITING */
    int from;
    int to;
    uint32_t nonce; /* a query's number, echoed by its answer */
    int nwait;
    int wait[RDT_CTL_MAX_WAIT];      /* ranks the sender waits for */
    char text[RDT_CTL_TEXT_MAX + 1]; /* what it waits in, or why it gave up; printable */
} rdt_ctl_msg_t;

/* Encode @p m into @p buf (RDT_CTL_MSG_MAX bytes); returns the datagram's length. */
size_t rdt_ctl_pack(const rdt_ctl_msg_t *m, uint64_t comm_id, const unsigned char *token,
                    unsigned char *buf);

/* Decode and validate one datagram received by rank @p me of @p nranks: 0 and *m filled, or -1
 * and one sentence in @p why saying what was wrong. Pure: no state, no system calls. */
int rdt_ctl_parse(const unsigned char *buf, size_t len, uint64_t comm_id,
                  const unsigned char *token, int nranks, int me, rdt_ctl_msg_t *m, char *why,
                  size_t whylen);

#endif /* RDT_CTL_WIRE_H */
