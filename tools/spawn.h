/*
 * spawn.h - start N ranks of a function on this host, for tests and the benchmark.
 *
 * This is deliberately small: fork N children, give each the environment a launcher would
 * (RDT_RANK, RDT_SIZE, RDT_ROOT on 127.0.0.1 with a free port, a fresh RDT_TOKEN), run the
 * function, collect exit statuses within a deadline. With no more ranks than cores, rank i is
 * pinned to the i-th core, as mpirun binds np <= cores. The real launcher is trainer/'s
 * `rdmatrain -H`.
 */
#ifndef RDT_SPAWN_H
#define RDT_SPAWN_H

/* Body of one rank; its return value is the child's exit status. */
typedef int (*rdt_spawn_fn_t)(int rank, int nranks, void *arg);

/*
 * Run @p fn in @p nranks child processes and wait for them at most @p timeout_s seconds, then
 * SIGKILL what is left. statuses[i] receives rank i's exit status, or 128 + signal if it was
 * killed by a signal (so a timed-out rank shows 137). Returns 0 if every rank exited 0, 1 if any
 * did not, -1 if the children could not be started.
 */
int rdt_spawn_local(int nranks, rdt_spawn_fn_t fn, void *arg, int timeout_s, int *statuses);

/* Pin the calling process to the @p rank-th CPU it may run on, if there are at least @p nranks
 * of them (what each spawned rank does first); otherwise leave it unpinned. */
void rdt_spawn_bind(int rank, int nranks);

/* Called in the parent with the children's pids (index = rank), for tests that inject faults. */
typedef void (*rdt_spawn_hook_t)(int nranks, const int *pids, void *arg);

/* Like rdt_spawn_local, calling @p hook in the parent once all children are started. */
int rdt_spawn_local_hook(int nranks, rdt_spawn_fn_t fn, void *arg, int timeout_s, int *statuses,
                         rdt_spawn_hook_t hook, void *hook_arg);

#endif /* RDT_SPAWN_H */
