/* An outside program: built against an installed rdmatrain through pkg-config or find_package.
 * One rank (no launcher variables): an allreduce must give back its input. */
#include <stdio.h>

#include <rdmatrain.h>

int main(void)
{
    rdt_comm_t *comm;
    double v[3] = {1.5, -2.0, 3.25}, out[3];
    int i;

    if (rdt_comm_create_from_env(&comm) != RDT_SUCCESS) {
        fprintf(stderr, "create: %s\n", rdt_comm_last_error(NULL));
        return 1;
    }
    if (rdt_allreduce(comm, v, out, 3, RDT_FLOAT64, RDT_SUM) != RDT_SUCCESS) {
        fprintf(stderr, "allreduce: %s\n", rdt_comm_last_error(comm));
        return 1;
    }
    for (i = 0; i < 3; i++)
        if (out[i] != v[i])
            return 1;
    rdt_comm_destroy(comm);
    printf("consumer ok\n");
    return 0;
}
