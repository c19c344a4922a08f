/* rdt-test-labels: softroce */
/*
 * test_fault_verbs.c - test_fault's SIGKILL case over RDT_TRANSPORT=verbs: 3 ranks loop over
 * allreduce, broadcast and alltoall (1000 to 1 Mi int32, results checked), one rank is killed
 * at a random point (seed printed, RDT_TEST_SEED replays it), a handful of times; every other
 * rank must fail, not by the timeout (RDT_TIMEOUT=60), naming the killed rank.
 *
 * The cases live in test_fault.c (its --verbs mode), next to this program in the build tree, so
 * that the fault machinery exists once. This program applies the rule of the `softroce` label
 * first: without an RDMA device it exits 77 (skipped), or fails under RDT_TEST_REQUIRE_RDMA=1
 * (rdt_test_require_rdma(), testutil.h); then it becomes `test_fault --verbs`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

int main(void)
{
    char path[4096];
    char *slash;
    ssize_t n;

    rdt_test_require_rdma("test_fault_verbs", NULL);
    n = readlink("/proc/self/exe", path, sizeof(path) - 32);
    if (n <= 0) {
        perror("test_fault_verbs: readlink /proc/self/exe");
        return 1;
    }
    path[n] = '\0';
    slash = strrchr(path, '/');
    if (!slash)
        return 1;
    strcpy(slash + 1, "test_fault");
    execl(path, path, "--verbs", (char *)NULL);
    fprintf(stderr, "test_fault_verbs: cannot run %s (build the whole tree): ", path);
    perror(NULL);
    return 1;
}
