/*
 * hostfile.h - the hosts of a job: parsing hosts files and -H lists, and placing ranks on them.
 *
 * Pure: these functions read only the text they are given (the caller reads the file), so they
 * can be unit-tested and fuzzed. Accepted forms, one host per line, mixed freely:
 *
 *   # Open MPI                      # Horovod
 *   node1 slots=4                   node1:4
 *   node2 slots=4 max_slots=8       node2:4
 *   node3                  (1 slot)
 *
 * `#` starts a comment (whole line or after a host); blank lines are ignored; `\r\n` works. The
 * inline form of `-H` is `node1:2,node2:2` or `node1,node2` (1 slot each). A host name is letters,
 * digits, `.`, `-`, `_`, optionally `user@` in front (passed to ssh as written).
 *
 * Errors are one sentence "SOURCE:LINE:COLUMN: what was expected, got 'what'" (columns count
 * bytes from 1; for -H lists SOURCE is "-H" and LINE is 1). Refused: malformed lines, zero,
 * negative or huge slot counts, a host listed twice (the machine itself counts once, however it
 * is named: localhost, 127.0.0.1 and its host name are one host), an empty list.
 */
#ifndef RDT_HOSTFILE_H
#define RDT_HOSTFILE_H

#include <stddef.h>
#include <stdint.h>

#define RDT_HOST_NAME_MAX  255     /* bytes of a host name, user@ included */
#define RDT_HOST_SLOTS_MAX 65536   /* slots of one host */
#define RDT_JOB_RANKS_MAX  1048576 /* ranks of one job (-np) */

typedef struct rdt_host {
    char name[RDT_HOST_NAME_MAX + 1]; /* as written, user@ included */
    int slots;
    int local;     /* 1 if this is the machine the launcher runs on */
    int line, col; /* where it was listed */
} rdt_host_t;

typedef struct rdt_hostlist {
    rdt_host_t *hosts;
    int nhosts;
    int64_t total_slots;
} rdt_hostlist_t;

/* Where each rank runs: index into the host list, and its rank among that host's ranks. */
typedef struct rdt_rank_place {
    int host;
    int local_rank;
} rdt_rank_place_t;

/*
 * Parse a hosts file. @p text holds @p len bytes (NUL bytes are errors, not terminators);
 * @p source names it in errors ("hosts.txt"). @p self_names is a NULL-terminated list of this
 * machine's names (gethostname()), used with "localhost" and 127.x.y.z to mark hosts local;
 * may be NULL. On success fills *list_p (free it with rdt_hostlist_fini()) and returns 0; on
 * failure writes the error sentence to @p err and returns -1, *list_p untouched.
 */
int rdt_hostlist_parse_file(const char *text, size_t len, const char *source,
                            const char *const *self_names, rdt_hostlist_t *list_p, char *err,
                            size_t errlen);

/* Parse an inline list "h1:2,h2:2" (or "h1,h2"); as rdt_hostlist_parse_file, SOURCE "-H". */
int rdt_hostlist_parse_inline(const char *spec, const char *const *self_names,
                              rdt_hostlist_t *list_p, char *err, size_t errlen);

/* A list of one local host named "localhost" with @p slots slots (the default without -H). */
int rdt_hostlist_local(int slots, rdt_hostlist_t *list_p, char *err, size_t errlen);

/* Free what a parse allocated; accepts a zeroed or already finished list. */
void rdt_hostlist_fini(rdt_hostlist_t *list);

/* 1 if @p name (user@ allowed) is this machine: localhost, 127.x.y.z or one of @p self_names. */
int rdt_host_is_local(const char *name, const char *const *self_names);

/*
 * Place @p np ranks on the hosts, in order: host 0 gets ranks 0..slots0-1, host 1 the next, and
 * so on, so the ranks of one host are consecutive (as mpirun's default by-slot mapping). With
 * @p np less than the slots the last hosts get fewer ranks or none. More ranks than slots is an
 * error unless @p oversubscribe, which then spreads the extra ranks evenly over the hosts.
 * place[np] receives each rank's host and local rank. @p source names the list in errors.
 * Returns 0, or -1 with a sentence in @p err.
 */
int rdt_hostlist_place(const rdt_hostlist_t *list, int np, int oversubscribe, const char *source,
                       rdt_rank_place_t *place, char *err, size_t errlen);

#endif /* RDT_HOSTFILE_H */
