/*
 * fuzz_hostfile.c - libFuzzer target for the launcher's hosts-file and -H parser
 * (trainer/hostfile.c). Any input must parse or fail with a "source:line:col: " sentence, never
 * crash, read out of bounds (built with ASan) or leak. The first byte picks the mode: file or
 * inline list, and the rest of it the -np passed to the placement of a parsed list.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const self[] = {"fuzzhost.example", NULL};
    rdt_hostlist_t l;
    rdt_rank_place_t place[64];
    char err[256];
    char *text;
    int mode, rc;

    if (size < 1)
        return 0;
    mode = data[0];
    data++;
    size--;
    text = malloc(size + 1); /* exact copy: the parser must not read past size */
    if (!text)
        return 0;
    memcpy(text, data, size);
    if (mode & 1) {
        text[size] = '\0'; /* inline lists are strings: stop at the first NUL */
        rc = rdt_hostlist_parse_inline(text, self, &l, err, sizeof(err));
    } else {
        rc = rdt_hostlist_parse_file(text, size, "fuzz", self, &l, err, sizeof(err));
    }
    if (rc == 0) {
        int np = 1 + (mode >> 2) % 64, i;
        if (l.nhosts < 1 || l.total_slots < l.nhosts)
            abort();
        if (rdt_hostlist_place(&l, np, mode & 2, "fuzz", place, err, sizeof(err)) == 0) {
            for (i = 0; i < np; i++)
                if (place[i].host < 0 || place[i].host >= l.nhosts || place[i].local_rank < 0)
                    abort();
        } else if (!(mode & 2) && np <= l.total_slots) {
            abort(); /* refused although it fits */
        }
        rdt_hostlist_fini(&l);
    } else if (strncmp(err, mode & 1 ? "-H:1:" : "fuzz:", 5) != 0) {
        abort(); /* every error names where */
    }
    free(text);
    return 0;
}
