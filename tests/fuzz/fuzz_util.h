/* fuzz_util.h - what the libFuzzer targets of tests/fuzz/ share. */
#ifndef RDT_FUZZ_UTIL_H
#define RDT_FUZZ_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property that does not hold is a crash, which libFuzzer reports with the input. */
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

/* The job the targets judge bytes for: its communicator id and token ("RDT-fuzz-token!"). */
#define FUZZ_COMM 0x0123456789abcdefULL
static const unsigned char fuzz_token[16] = {0x52, 0x44, 0x54, 0x2d, 0x66, 0x75, 0x7a, 0x7a,
                                             0x2d, 0x74, 0x6f, 0x6b, 0x65, 0x6e, 0x21, 0x00};

/*
 * A verdict must not depend on the room given for its sentence: @p call, which writes its
 * sentence into `fuzz_w` of `fuzz_k` bytes, is made again with 1- and 7-byte buffers allocated
 * exactly (ASan sees a write past them) and must give @p verdict; when @p rejected, the sentence
 * must end within the buffer.
 */
#define FUZZ_TINY_SENTENCES(call, verdict, rejected)                                               \
    do {                                                                                           \
        size_t fuzz_k;                                                                             \
        for (fuzz_k = 1; fuzz_k <= 7; fuzz_k += 6) {                                               \
            char *fuzz_w = malloc(fuzz_k);                                                         \
            if (!fuzz_w)                                                                           \
                break;                                                                             \
            CHECK((call) == (verdict));                                                            \
            CHECK(!(rejected) || memchr(fuzz_w, '\0', fuzz_k) != NULL);                            \
            free(fuzz_w);                                                                          \
        }                                                                                          \
    } while (0)

#endif /* RDT_FUZZ_UTIL_H */
