/*
 * data.c - see data.h. IDX files are read through zlib's gz* functions, which read gzipped and
 * plain files alike. The file is treated as hostile: every size in the header is checked before
 * it is used, the buffer grows with the bytes that really arrive (a 20-byte file claiming 2 GiB
 * allocates nothing large), and a file longer than its header says is refused too.
 */
#include "data.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define RDT_IDX_UBYTE     0x08
#define RDT_IDX_MAX_BYTES (UINT64_C(1) << 31) /* largest data section accepted */
#define RDT_IDX_CHUNK     (1u << 20)          /* first allocation and largest single gzread */

/* Format into err (if any); always returns -1. */
static int __attribute__((format(printf, 3, 4)))
fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The other IDX element types, named for the error message; NULL: not an IDX type at all. */
static const char *idx_type_name(int type)
{
    switch (type) {
    case 0x09:
        return "signed bytes";
    case 0x0B:
        return "16-bit integers";
    case 0x0C:
        return "32-bit integers";
    case 0x0D:
        return "32-bit floats";
    case 0x0E:
        return "64-bit floats";
    default:
        return NULL;
    }
}

/* zlib's description of the stream's error without the "PATH: " it starts with, or "". */
static const char *gz_error_text(gzFile f, const char *path)
{
    int errnum = Z_OK;
    const char *msg = gzerror(f, &errnum);
    size_t n = strlen(path);

    if (errnum == Z_OK || !msg)
        return "";
    if (errnum == Z_ERRNO)
        return strerror(errno);
    if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
        msg += n + 2;
    return msg;
}

/*
 * Read up to n bytes into buf; *got_p says how many arrived. Returns -1 on a read or
 * decompression error (the bytes before it are counted), else 0 (a short count is end of file).
 */
static int gz_read_full(gzFile f, unsigned char *buf, size_t n, size_t *got_p)
{
    size_t got = 0;

    while (got < n) {
        size_t want = n - got > RDT_IDX_CHUNK ? RDT_IDX_CHUNK : n - got;
        int r = gzread(f, buf + got, (unsigned)want);

        if (r < 0) {
            *got_p = got;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    *got_p = got;
    return 0;
}

/* Check the 4-byte magic of @p path: 0x00 0x00 type ndims. */
static int idx_check_magic(const char *path, const unsigned char *m, int want_dims, char *err,
                           size_t errlen)
{
    const char *tname;

    if (m[0] != 0 || m[1] != 0)
        return fail(err, errlen,
                    "%s: not an IDX file (magic 0x%02x%02x%02x%02x, expected 0x000008%02x)", path,
                    m[0], m[1], m[2], m[3], want_dims);
    if (m[2] != RDT_IDX_UBYTE) {
        tname = idx_type_name(m[2]);
        if (!tname)
            return fail(err, errlen,
                        "%s: not an IDX file (element type 0x%02x in magic 0x0000%02x%02x is no "
                        "IDX type)",
                        path, m[2], m[2], m[3]);
        return fail(err, errlen,
                    "%s: element type 0x%02x (%s); only unsigned bytes (0x08) are supported", path,
                    m[2], tname);
    }
    if (m[3] != want_dims)
        return fail(err, errlen, "%s: %d dimensions, expected %d (%s)", path, m[3], want_dims,
                    want_dims == 3 ? "images: count, rows, columns" : "labels: count");
    return 0;
}

/*
 * Read the data section of @p len bytes. The buffer starts at 1 MiB and doubles as data arrives,
 * so a lying header costs at most twice what the file really holds.
 */
static int idx_read_data(gzFile f, const char *path, uint64_t len, unsigned char **data_p,
                         char *err, size_t errlen)
{
    size_t cap = len < RDT_IDX_CHUNK ? (size_t)len : RDT_IDX_CHUNK;
    size_t got = 0, want, n;
    unsigned char *buf = malloc(cap ? cap : 1), *nbuf, extra;
    int r;

    if (!buf)
        return fail(err, errlen, "%s: out of memory for %zu bytes", path, cap);
    while (got < len) {
        if (got == cap) {
            cap = (uint64_t)cap * 2 > len ? (size_t)len : cap * 2;
            nbuf = realloc(buf, cap);
            if (!nbuf) {
                fail(err, errlen, "%s: out of memory for %zu bytes", path, cap);
                goto err_free;
            }
            buf = nbuf;
        }
        want = cap - got;
        r = gz_read_full(f, buf + got, want, &n);
        got += n;
        if (r < 0 || n < want) {
            const char *why = r < 0 ? gz_error_text(f, path) : "";

            fail(err, errlen, "%s: truncated: expected %llu bytes of data, got %zu%s%s", path,
                 (unsigned long long)len, got, *why ? ": " : "", why);
            goto err_free;
        }
    }
    /* One byte more: there must be none. This read also checks a gzip stream's CRC. */
    r = gzread(f, &extra, 1);
    if (r > 0) {
        fail(err, errlen,
             "%s: trailing bytes after the %llu bytes of data its header announces "
             "(corrupt header, or not an IDX file)",
             path, (unsigned long long)len);
        goto err_free;
    }
    if (r < 0) {
        fail(err, errlen, "%s: corrupt after its %llu bytes of data: %s", path,
             (unsigned long long)len, gz_error_text(f, path));
        goto err_free;
    }
    *data_p = buf;
    return 0;

err_free:
    free(buf);
    return -1;
}

int rdt_idx_read(const char *path, int want_dims, int dims[3], uint8_t **data_p, size_t *len_p,
                 char *err, size_t errlen)
{
    unsigned char hdr[4 + 4 * 3];
    uint32_t d[3] = {0, 0, 0};
    uint64_t len = 1;
    unsigned char *data = NULL;
    size_t got;
    gzFile f;
    int r;

    if (want_dims < 1 || want_dims > 3)
        return fail(err, errlen, "%s: cannot read IDX files of %d dimensions", path, want_dims);
    errno = 0;
    f = gzopen(path, "rb");
    if (!f)
        return fail(err, errlen, "cannot open %s: %s", path,
                    errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 128 * 1024);

    r = gz_read_full(f, hdr, 4, &got);
    if (r < 0) {
        fail(err, errlen, "%s: cannot read: %s", path, gz_error_text(f, path));
        goto err_close;
    }
    if (got < 4) {
        fail(err, errlen, "%s: not an IDX file (%zu bytes, shorter than the 4-byte magic)", path,
             got);
        goto err_close;
    }
    if (idx_check_magic(path, hdr, want_dims, err, errlen) < 0)
        goto err_close;

    r = gz_read_full(f, hdr + 4, 4 * (size_t)want_dims, &got);
    if (r < 0 || got < 4 * (size_t)want_dims) {
        fail(err, errlen, "%s: truncated header: %zu of the %d bytes of sizes", path, got,
             4 * want_dims);
        goto err_close;
    }
    /* Each size is at most 2^31 and so is the running product: no step can overflow. */
    for (int i = 0; i < want_dims; i++) {
        d[i] = be32(hdr + 4 + 4 * i);
        len *= d[i];
        if (d[i] > INT_MAX || len > RDT_IDX_MAX_BYTES) {
            fail(err, errlen,
                 "%s: sizes %u x %u x %u are too large (more than 2 GiB of data, or a size above "
                 "%d): corrupt header?",
                 path, be32(hdr + 4), want_dims > 1 ? be32(hdr + 8) : 1,
                 want_dims > 2 ? be32(hdr + 12) : 1, INT_MAX);
            goto err_close;
        }
    }
    if (idx_read_data(f, path, len, &data, err, errlen) < 0)
        goto err_close;
    gzclose(f);

    for (int i = 0; i < 3; i++)
        dims[i] = i < want_dims ? (int)d[i] : 0;
    *data_p = data;
    *len_p = (size_t)len;
    return 0;

err_close:
    gzclose(f);
    return -1;
}

/* dir/name.gz if it exists, else dir/name if it exists, into path. */
static int find_file(const char *dir, const char *name, char *path, size_t pathlen, char *err,
                     size_t errlen)
{
    struct stat st;
    int n, why;

    n = snprintf(path, pathlen, "%s/%s.gz", dir, name);
    if (n < 0 || (size_t)n >= pathlen)
        return fail(err, errlen, "%s/%s.gz: path too long", dir, name);
    if (stat(path, &st) == 0)
        return 0;
    snprintf(path, pathlen, "%s/%s", dir, name);
    if (stat(path, &st) == 0)
        return 0;
    why = errno;
    return fail(err, errlen, "dataset file missing: neither %s.gz nor %s exists (%s)%s", path, path,
                strerror(why),
                strcmp(dir, RDT_DATA_DEFAULT_DIR) == 0
                    ? "; install the Debian package dataset-fashion-mnist (tools/install-deps.sh "
                      "does)"
                    : "");
}

int rdt_dataset_load(const char *dir, int test, int limit, rdt_dataset_t *ds, char *err,
                     size_t errlen)
{
    const char *iname = test ? "t10k-images-idx3-ubyte" : "train-images-idx3-ubyte";
    const char *lname = test ? "t10k-labels-idx1-ubyte" : "train-labels-idx1-ubyte";
    char ipath[PATH_MAX], lpath[PATH_MAX];
    int idims[3], ldims[3], n, dim;
    uint8_t *img, *lab;
    size_t ilen, llen, nvals;
    float *x;
    uint8_t *y;

    if (find_file(dir, iname, ipath, sizeof(ipath), err, errlen) < 0 ||
        find_file(dir, lname, lpath, sizeof(lpath), err, errlen) < 0)
        return -1;
    if (rdt_idx_read(ipath, 3, idims, &img, &ilen, err, errlen) < 0)
        return -1;
    if (rdt_idx_read(lpath, 1, ldims, &lab, &llen, err, errlen) < 0)
        goto err_free_img;

    if (idims[1] == 0 || idims[2] == 0 || (int64_t)idims[1] * idims[2] > INT_MAX) {
        fail(err, errlen, "%s: images of %d x %d pixels cannot be used", ipath, idims[1], idims[2]);
        goto err_free_lab;
    }
    if (idims[0] != ldims[0]) {
        fail(err, errlen, "%s holds %d images but %s holds %d labels: counts differ", ipath,
             idims[0], lpath, ldims[0]);
        goto err_free_lab;
    }
    if (idims[0] == 0) {
        fail(err, errlen, "%s: holds no samples", ipath);
        goto err_free_lab;
    }
    for (size_t i = 0; i < llen; i++) {
        if (lab[i] >= RDT_DATA_CLASSES) {
            fail(err, errlen, "%s: label of sample %zu is %u, out of range (classes are 0 to %d)",
                 lpath, i, lab[i], RDT_DATA_CLASSES - 1);
            goto err_free_lab;
        }
    }

    n = limit > 0 && limit < idims[0] ? limit : idims[0];
    dim = idims[1] * idims[2];
    nvals = (size_t)n * (size_t)dim;
    x = malloc(nvals * sizeof(*x));
    y = malloc((size_t)n);
    if (!x || !y) {
        fail(err, errlen, "%s: out of memory for %d samples of %d values", ipath, n, dim);
        goto err_free_xy;
    }
    for (size_t i = 0; i < nvals; i++)
        x[i] = img[i] / 255.0f;
    memcpy(y, lab, (size_t)n);
    free(lab);
    free(img);

    ds->n = n;
    ds->dim = dim;
    ds->rows = idims[1];
    ds->cols = idims[2];
    ds->x = x;
    ds->y = y;
    return 0;

err_free_xy:
    free(y);
    free(x);
err_free_lab:
    free(lab);
err_free_img:
    free(img);
    return -1;
}

void rdt_dataset_free(rdt_dataset_t *ds)
{
    if (!ds)
        return;
    free(ds->x);
    free(ds->y);
    ds->x = NULL;
    ds->y = NULL;
    ds->n = 0;
}
