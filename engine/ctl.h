/*
 * ctl.h - the status side channel: on a timeout, find the rank everyone is waiting for.
 *
 * A timeout alone only tells a rank which peer it waits for directly. In a ring of four ranks
 * where rank 3 is stopped, rank 0 waits for 3, rank 1 for 0, rank 2 for 1: each would blame its
 * neighbour, and only one rank would name the culprit. So each rank of a communicator also has a
 * small UDP socket on its bind address (its address travels with the transport's in the
 * bootstrap table). A rank that times out asks the ranks it waits for what they are doing; a
 * rank that is itself waiting (in any call on this communicator, for longer than a few tens of
 * milliseconds) answers with the ranks it waits for, and the asker follows the chain. A rank
 * that does not answer within the grace period is not in a call on this communicator: stopped,
 * stuck in computation, or blocked elsewhere. Those are the ranks that "had not arrived", and
 * every rank on the chain names them.
 *
 * The same channel carries a rank's last word: a rank whose communicator fails tells every other
 * rank why ("gave up"), so that ranks it never connected to (connections are lazy) or that are
 * blocked behind another rank hear of it within a fraction of a second rather than at their own
 * timeout. Transports
 * send their own notice on each live connection too; whichever arrives first is reported.
 *
 * The datagrams carry the job token and the communicator id; anything else (a stranger, a wrong
 * token, a truncated or oversized datagram) is dropped and counted. UDP may drop datagrams, so
 * queries are repeated until answered or the grace period ends.
 */
#ifndef RDT_CTL_H
#define RDT_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"

#define RDT_CTL_MAX_WAIT 16  /* ranks one answer lists */
#define RDT_CTL_TEXT_MAX 900 /* bytes of a sentence (a datagram fits a 1500-byte MTU) */
#define RDT_CTL_HDR_LEN 112
#define RDT_CTL_MSG_MAX (RDT_CTL_HDR_LEN + RDT_CTL_TEXT_MAX)

enum { RDT_CTL_QUERY = 1, RDT_CTL_ANSWER = 2, RDT_CTL_GAVE_UP = 3 };
enum { RDT_CTL_IDLE = 0, RDT_CTL_WAITING = 1 };

typedef struct rdt_ctl_msg {
    int type;  /* RDT_CTL_QUERY, RDT_CTL_ANSWER or RDT_CTL_GAVE_UP */
    int state; /* answers: RDT_CTL_IDLE (no operation in progress) or RDT_CTL_WAITING */
    int from;
    int to;
    uint32_t nonce; /* a query's number, echoed by its answer */
    int nwait;
    int wait[RDT_CTL_MAX_WAIT];        /* ranks the sender waits for */
    char text[RDT_CTL_TEXT_MAX + 1];   /* what it waits in, or why it gave up; printable */
} rdt_ctl_msg_t;

/* Encode @p m into @p buf (RDT_CTL_MSG_MAX bytes); returns the datagram's length. */
size_t rdt_ctl_pack(const rdt_ctl_msg_t *m, uint64_t comm_id, const unsigned char *token,
                    unsigned char *buf);

/* Decode and validate one datagram received by rank @p me of @p nranks: 0 and *m filled, or -1
 * and one sentence in @p why saying what was wrong. Pure: no state, no system calls. */
int rdt_ctl_parse(const unsigned char *buf, size_t len, uint64_t comm_id,
                  const unsigned char *token, int nranks, int me, rdt_ctl_msg_t *m, char *why,
                  size_t whylen);

struct rdt_comm;
struct rdt_request;

/* Open the communicator's socket on its bind address; @p addr (RDT_ADDR_MAX bytes) gets the
 * packed address for the others, zeros when the socket could not be opened (the channel is
 * then off for this rank, which is logged; the communicator works without it). */
void rdt_ctl_open(struct rdt_comm *comm, unsigned char *addr);
/* The others' packed addresses: rank i's at addrs + i * stride. */
void rdt_ctl_peers_set(struct rdt_comm *comm, const unsigned char *addrs, size_t stride);
/* Answer the queries that arrived; fail the communicator if a rank said it gave up and this
 * rank still waits a little later (the error then quotes it); never blocks. */
void rdt_ctl_service(struct rdt_comm *comm);
/* Tell every other rank that this one gave up, quoting comm->error (not when the failure was
 * itself heard on this channel: the others heard it too). */
void rdt_ctl_gave_up(struct rdt_comm *comm);
/* After @p req timed out: ask along the chain of waiting ranks for at most @p grace seconds and
 * append what was found to @p out (which holds the timeout sentence so far). */
void rdt_ctl_blame(struct rdt_comm *comm, struct rdt_request *req, double grace, char *out,
                   size_t len);
void rdt_ctl_close(struct rdt_comm *comm);

#endif /* RDT_CTL_H */
