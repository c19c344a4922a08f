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

#include "ctl_wire.h"

struct rdt_comm;

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
/* After the communicator's head request timed out: ask along the chain of waiting ranks for at
 * most @p grace seconds and append what was found to @p out (which holds the timeout sentence so
 * far). */
void rdt_ctl_blame(struct rdt_comm *comm, double grace, char *out, size_t len);
void rdt_ctl_close(struct rdt_comm *comm);

#endif /* RDT_CTL_H */
