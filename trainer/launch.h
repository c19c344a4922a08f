/*
 * launch.h - start the ranks of a job, stream their output, stop them all when one fails, the
 * job times out or the launcher is signalled, and leave no process behind.
 *
 * Local ranks are fork/exec'd, each the leader of its own process group; remote ranks are an
 * ssh (or --rsh agent) each, whose remote side is a small /bin/sh wrapper that forwards signals
 * sent as lines on ssh's standard input and stops the program when that input closes. Every
 * rank gets RDT_RANK, RDT_SIZE, RDT_LOCAL_RANK, RDT_ROOT and RDT_TOKEN (fresh, random), the
 * environment of rdt_comm_create_from_env().
 *
 * RDT_ROOT, where rank 0 listens for the rendezvous (rank 0 binds that very address), is
 * --root HOST[:PORT] when given, else:
 * - rank 0 on a remote host: that host as listed (user@ removed);
 * - rank 0 here and every rank here: 127.0.0.1;
 * - rank 0 here and some ranks remote: this machine's address on the interface that routes to
 *   the first remote host (the source address of a UDP connect() to it, which sends nothing),
 *   so that the remote ranks can reach it; if that host's name does not resolve here (an ssh
 *   alias, say) or has no route, this machine's name (gethostname()).
 * The port, unless given, is one free on this machine when chosen (and, for a remote rank 0,
 * only assumed free there).
 *
 * What is guaranteed (to be said the same way in the README):
 * - SIGINT, SIGTERM, SIGHUP to the launcher: forwarded to every rank (local: its process group;
 *   remote: the program's process group, through the wrapper), SIGKILL 3 s later for what is
 *   left; a second signal kills at once. The launcher exits 128 + the signal number.
 * - A rank that exits non-zero or is killed: the others get SIGTERM, then SIGKILL after 3 s; the
 *   launcher names the rank, its host and the status, and exits with that status (128 + signal;
 *   a remote rank killed by a signal shows as ssh's 255).
 * - --timeout: the same, exit status 124.
 * - When a rank's process exits, what is left of its process group is killed (on remote hosts
 *   too, by the wrapper), and local processes that left it (daemons) are swept at the end: the
 *   launcher is their subreaper.
 * - SIGKILL to remote ranks goes through ssh; an ssh that has not exited 3 s later is killed,
 *   and the remote wrapper then stops the program when it sees its input close.
 * - If the launcher itself is killed by SIGKILL: local ranks die with it (PR_SET_PDEATHSIG), and
 *   a watchdog process kills their process groups and every ssh; remote wrappers then send
 *   SIGTERM, and SIGKILL once the program exited or after 3 s.
 * Not covered: processes that leave their group on a remote host, or locally once the launcher
 * was SIGKILLed (setsid daemons); stdin is not forwarded (ranks read /dev/null).
 */
#ifndef RDT_LAUNCH_H
#define RDT_LAUNCH_H

#include "hostfile.h"

/* Exit statuses of the launcher besides a rank's own status. */
#define RDT_LAUNCH_EXIT_USAGE    2   /* bad command line or hosts file, nothing started */
#define RDT_LAUNCH_EXIT_TIMEOUT  124 /* --timeout expired (as timeout(1)) */
#define RDT_LAUNCH_EXIT_NOTFOUND 127 /* the program cannot be run here */

typedef struct rdt_launch {
    const rdt_hostlist_t *hosts;
    const rdt_rank_place_t *place; /* np entries: where each rank runs */
    int np;
    char *const *argv;      /* the program and its arguments, NULL-terminated */
    const char *output_dir; /* NULL: stream to this terminal with [rank] prefixes */
    double timeout_s;       /* 0: no limit */
    double grace_s;         /* from the stop signal to SIGKILL */
    const char *rsh;        /* remote agent, split on blanks; NULL: "ssh -o BatchMode=yes" */
    char *const *xvars;     /* -x VAR=VAL or -x VAR entries */
    int nx;
    const char *self_name; /* this machine's name, the last resort for the rendezvous host */
    const char *root_host; /* --root: the rendezvous host (an IPv6 address in brackets); NULL:
                              chosen as above */
    int root_port;         /* --root's port; 0: a free one */
} rdt_launch_t;

/*
 * Run the job and return the launcher's exit status: 0 when every rank exited 0, else as
 * above. Errors before anything started (program not found, output directory, token) are
 * printed on stderr and return RDT_LAUNCH_EXIT_USAGE or RDT_LAUNCH_EXIT_NOTFOUND.
 */
int rdt_launch_run(const rdt_launch_t *job);

#endif /* RDT_LAUNCH_H */
