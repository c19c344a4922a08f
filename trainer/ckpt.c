/*
 * ckpt.c - see ckpt.h. The file is written field by field, never as a struct (padding and
 * size_t differ between ABIs); every integer is little-endian and fixed-width, a signed one is
 * stored as its 32-bit two's complement:
 *
 *   offset size  field
 *        0    8  magic "RDTCKPT1"
 *        8    4  format version (1)
 *       12   16  mode, NUL-padded
 *       28    4  nranks
 *       32   16  layout[0..3]
 *       48    4  nsizes
 *       52   68  sizes[0..16] (entries from nsizes on are 0)
 *      120    4  batch
 *      124    4  epoch
 *      128    8  seed
 *      136    8  step
 *      144    8  nparams
 *      152    4  has_vel (0 or 1)
 *      156    4  CRC-32 of the payload
 *      160    4  CRC-32 of bytes 0..159
 *      164       payload: params[nparams], then vel[nparams] if has_vel, float32 little-endian
 *
 * Floats are converted through their bit patterns one by one, so the file is the same on a
 * big-endian host and no branch on the byte order is needed.
 */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CKPT_MAGIC       "RDTCKPT1"
#define CKPT_VERSION     1u
#define CKPT_MODE_LEN    16
#define CKPT_SIZES       17
#define CKPT_OFF_VERSION 8
#define CKPT_OFF_PCRC    156
#define CKPT_OFF_HCRC    160
#define CKPT_HDR_SIZE    164
#define CKPT_CHUNK       4096 /* floats converted per write or read */
#define CKPT_PATH_MAX    4096

_Static_assert(RDT_MLP_LAYERS_MAX + 1 == CKPT_SIZES,
               "the file stores 17 layer sizes: a new RDT_MLP_LAYERS_MAX needs a new version");
_Static_assert(sizeof(((rdt_ckpt_meta_t *)0)->mode) == CKPT_MODE_LEN, "mode is 16 bytes");
_Static_assert(sizeof(float) == 4, "float32 parameters");

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_i32(unsigned char *p, int v)
{
    put_u32(p, (uint32_t)v);
}

static int get_i32(const unsigned char *p)
{
    uint32_t u = get_u32(p);
    int v;

    memcpy(&v, &u, sizeof(v)); /* two's complement back, without an implementation-defined cast */
    return v;
}

/* Write all of buf, across short writes and signals. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) { /* no progress and no error: only a full device does this */
            errno = ENOSPC;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read len bytes, or fewer only at end of file. Returns the count, or -1. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Bytes of a payload of nparams floats per array; -1 if no file or memory could hold them. */
static int payload_bytes(uint64_t nparams, int has_vel, uint64_t *bytes_p)
{
    uint64_t arrays = has_vel ? 2 : 1;

    if (nparams > (UINT64_MAX - CKPT_HDR_SIZE) / (4 * arrays) || nparams > SIZE_MAX / 4)
        return -1;
    *bytes_p = nparams * 4 * arrays;
    return 0;
}

/*
 * The payload, converted chunk by chunk to little-endian bytes: each chunk is added to *crc
 * when crc is not NULL and written to fd when fd >= 0 (the CRC goes in the header, so save
 * makes one pass for it and one to write).
 */
static int payload_emit(const float *params, const float *vel, size_t n, int fd, uLong *crc)
{
    unsigned char buf[CKPT_CHUNK * 4];
    const float *arr[2] = {params, vel};
    int a;

    for (a = 0; a < 2 && arr[a]; a++) {
        size_t i, k;
        for (i = 0; i < n; i += k) {
            k = n - i < CKPT_CHUNK ? n - i : CKPT_CHUNK;
            for (size_t j = 0; j < k; j++) {
                uint32_t u;
                memcpy(&u, &arr[a][i + j], 4);
                put_u32(buf + 4 * j, u);
            }
            if (crc)
                *crc = crc32(*crc, buf, (uInt)(4 * k));
            if (fd >= 0 && write_all(fd, buf, 4 * k) < 0)
                return -1;
        }
    }
    return 0;
}

static void header_encode(const rdt_ckpt_meta_t *m, uint32_t payload_crc,
                          unsigned char hdr[CKPT_HDR_SIZE])
{
    int i;

    memset(hdr, 0, CKPT_HDR_SIZE);
    memcpy(hdr, CKPT_MAGIC, 8);
    put_u32(hdr + CKPT_OFF_VERSION, CKPT_VERSION);
    memcpy(hdr + 12, m->mode, strnlen(m->mode, CKPT_MODE_LEN));
    put_i32(hdr + 28, m->nranks);
    for (i = 0; i < 4; i++)
        put_i32(hdr + 32 + 4 * i, m->layout[i]);
    put_i32(hdr + 48, m->nsizes);
    for (i = 0; i < m->nsizes; i++)
        put_i32(hdr + 52 + 4 * i, m->sizes[i]);
    put_i32(hdr + 120, m->batch);
    put_i32(hdr + 124, m->epoch);
    put_u64(hdr + 128, m->seed);
    put_u64(hdr + 136, m->step);
    put_u64(hdr + 144, (uint64_t)m->nparams);
    put_u32(hdr + 152, m->has_vel ? 1u : 0u);
    put_u32(hdr + CKPT_OFF_PCRC, payload_crc);
    put_u32(hdr + CKPT_OFF_HCRC, (uint32_t)crc32(crc32(0L, Z_NULL, 0), hdr, CKPT_OFF_HCRC));
}

/* Decode a header whose CRC has been checked; -1 if a field is out of range all the same. */
static int header_decode(const unsigned char hdr[CKPT_HDR_SIZE], rdt_ckpt_meta_t *m,
                         uint64_t *nparams_p, uint32_t *has_vel_p)
{
    int i;

    memset(m, 0, sizeof(*m));
    memcpy(m->mode, hdr + 12, CKPT_MODE_LEN);
    if (m->mode[CKPT_MODE_LEN - 1] != '\0')
        return -1;
    m->nranks = get_i32(hdr + 28);
    for (i = 0; i < 4; i++)
        m->layout[i] = get_i32(hdr + 32 + 4 * i);
    m->nsizes = get_i32(hdr + 48);
    if (m->nsizes < 0 || m->nsizes > CKPT_SIZES)
        return -1;
    for (i = 0; i < m->nsizes; i++)
        m->sizes[i] = get_i32(hdr + 52 + 4 * i);
    m->batch = get_i32(hdr + 120);
    m->epoch = get_i32(hdr + 124);
    m->seed = get_u64(hdr + 128);
    m->step = get_u64(hdr + 136);
    *nparams_p = get_u64(hdr + 144);
    *has_vel_p = get_u32(hdr + 152);
    if (*has_vel_p > 1)
        return -1;
    m->has_vel = (int)*has_vel_p;
    return 0;
}

/* DIR/checkpoint.rdt and its .tmp, without doubling a trailing slash. */
static int make_paths(const char *dir, char *path, char *tmp, char *err, size_t errlen)
{
    size_t len = dir ? strlen(dir) : 0;
    int n;

    if (len == 0) {
        set_err(err, errlen, "no checkpoint directory given");
        return -1;
    }
    while (len > 1 && dir[len - 1] == '/')
        len--;
    n = snprintf(path, CKPT_PATH_MAX, "%.*s/%s", (int)len, dir, RDT_CKPT_FILE);
    if (n < 0 || n + 4 >= CKPT_PATH_MAX) {
        set_err(err, errlen, "checkpoint directory %s: path too long", dir);
        return -1;
    }
    if (tmp)
        snprintf(tmp, CKPT_PATH_MAX, "%s.tmp", path);
    return 0;
}

/* mkdir DIR (one level) unless it is a directory already. */
static int ensure_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;

    if (mkdir(dir, 0755) == 0)
        return 0;
    if (errno != EEXIST) {
        set_err(err, errlen, "cannot create checkpoint directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (stat(dir, &st) < 0) {
        set_err(err, errlen, "cannot stat checkpoint directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "checkpoint directory %s exists and is not a directory", dir);
        return -1;
    }
    return 0;
}

static int meta_check(const rdt_ckpt_meta_t *meta, const float *params, const float *vel, char *err,
                      size_t errlen)
{
    uint64_t bytes;

    if (!meta) {
        set_err(err, errlen, "checkpoint save: no metadata");
        return -1;
    }
    if (!memchr(meta->mode, '\0', CKPT_MODE_LEN)) {
        set_err(err, errlen, "checkpoint save: mode is not a string of at most 15 characters");
        return -1;
    }
    if (meta->nsizes < 0 || meta->nsizes > CKPT_SIZES) {
        set_err(err, errlen, "checkpoint save: %d layer sizes, at most %d", meta->nsizes,
                CKPT_SIZES);
        return -1;
    }
    if ((meta->has_vel != 0 && meta->has_vel != 1) ||
        payload_bytes(meta->nparams, meta->has_vel, &bytes) < 0 ||
        (meta->nparams > 0 && (!params || (meta->has_vel && !vel)))) {
        set_err(err, errlen, "checkpoint save: bad arguments (nparams %zu, has_vel %d, %s)",
                meta->nparams, meta->has_vel,
                params ? (vel ? "params and vel" : "params, no vel") : "no params");
        return -1;
    }
    return 0;
}

/*
 * Write the temporary file completely and durably before the rename, then sync the directory
 * so that the rename itself survives a crash. Every failure before the rename leaves the old
 * checkpoint untouched and removes the temporary file.
 */
int rdt_ckpt_save(const char *dir, const rdt_ckpt_meta_t *meta, const float *params,
                  const float *vel, char *err, size_t errlen)
{
    char path[CKPT_PATH_MAX], tmp[CKPT_PATH_MAX];
    unsigned char hdr[CKPT_HDR_SIZE];
    const float *v = meta && meta->has_vel ? vel : NULL;
    uLong crc = crc32(0L, Z_NULL, 0);
    int fd, dfd;

    if (meta_check(meta, params, vel, err, errlen) < 0 ||
        make_paths(dir, path, tmp, err, errlen) < 0 || ensure_dir(dir, err, errlen) < 0)
        return -1;
    payload_emit(params, v, meta->nparams, -1, &crc);
    header_encode(meta, (uint32_t)crc, hdr);

    fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        set_err(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (write_all(fd, hdr, sizeof(hdr)) < 0 || payload_emit(params, v, meta->nparams, fd, NULL)) {
        set_err(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto err_close;
    }
    if (fsync(fd) < 0) {
        set_err(err, errlen, "cannot fsync %s: %s", tmp, strerror(errno));
        goto err_close;
    }
    if (close(fd) < 0) { /* NFS and some others report a failed write only here */
        set_err(err, errlen, "cannot close %s: %s", tmp, strerror(errno));
        goto err_unlink;
    }
    if (rename(tmp, path) < 0) {
        set_err(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto err_unlink;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        set_err(err, errlen, "cannot open directory %s to sync %s: %s", dir, path, strerror(errno));
        return -1;
    }
    /* A file system that cannot sync a directory says EINVAL: nothing more can be done there. */
    if (fsync(dfd) < 0 && errno != EINVAL) {
        set_err(err, errlen, "cannot fsync directory %s after writing %s: %s", dir, path,
                strerror(errno));
        close(dfd);
        return -1;
    }
    close(dfd);
    return 0;

err_close:
    close(fd);
err_unlink:
    unlink(tmp);
    return -1;
}

/* "784-256-128-10" */
static void sizes_str(char *buf, size_t len, const int *sizes, int nsizes)
{
    size_t o = 0;
    int i;

    buf[0] = '\0';
    if (nsizes < 0 || nsizes > CKPT_SIZES)
        nsizes = 0;
    for (i = 0; i < nsizes && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? "-" : "", sizes[i]);
    if (nsizes == 0)
        snprintf(buf, len, "(none)");
}

static void mismatch(char *err, size_t errlen, const char *path, const char *field,
                     const char *in_file, const char *here)
{
    set_err(err, errlen,
            "%s: %s %s in the checkpoint, %s here: the checkpoint came from another model shape "
            "or rank layout (resume with the options that wrote it, or use another checkpoint "
            "directory)",
            path, field, in_file, here);
}

/* Refuse a checkpoint written by another job shape: the first field that differs, both values. */
static int meta_compare(const char *path, const rdt_ckpt_meta_t *f, uint64_t nparams,
                        const rdt_ckpt_meta_t *e, char *err, size_t errlen)
{
    char a[160], b[160];
    int i;

    if (strncmp(f->mode, e->mode, CKPT_MODE_LEN) != 0) {
        snprintf(a, sizeof(a), "\"%.*s\"", CKPT_MODE_LEN, f->mode);
        snprintf(b, sizeof(b), "\"%.*s\"", CKPT_MODE_LEN, e->mode);
        mismatch(err, errlen, path, "mode", a, b);
        return -1;
    }
    if (f->nranks != e->nranks) {
        snprintf(a, sizeof(a), "%d", f->nranks);
        snprintf(b, sizeof(b), "%d", e->nranks);
        mismatch(err, errlen, path, "nranks", a, b);
        return -1;
    }
    for (i = 0; i < 4 && f->layout[i] == e->layout[i]; i++)
        ;
    if (i < 4) {
        snprintf(a, sizeof(a), "%d,%d,%d,%d", f->layout[0], f->layout[1], f->layout[2],
                 f->layout[3]);
        snprintf(b, sizeof(b), "%d,%d,%d,%d", e->layout[0], e->layout[1], e->layout[2],
                 e->layout[3]);
        mismatch(err, errlen, path, "layout", a, b);
        return -1;
    }
    for (i = 0; f->nsizes == e->nsizes && i < f->nsizes && f->sizes[i] == e->sizes[i]; i++)
        ;
    if (f->nsizes != e->nsizes || i < f->nsizes) {
        sizes_str(a, sizeof(a), f->sizes, f->nsizes);
        sizes_str(b, sizeof(b), e->sizes, e->nsizes);
        mismatch(err, errlen, path, "model shape", a, b);
        return -1;
    }
    if (f->batch != e->batch) {
        snprintf(a, sizeof(a), "%d", f->batch);
        snprintf(b, sizeof(b), "%d", e->batch);
        mismatch(err, errlen, path, "batch", a, b);
        return -1;
    }
    if (f->seed != e->seed) {
        snprintf(a, sizeof(a), "%" PRIu64, f->seed);
        snprintf(b, sizeof(b), "%" PRIu64, e->seed);
        mismatch(err, errlen, path, "seed", a, b);
        return -1;
    }
    if (nparams != (uint64_t)e->nparams) {
        snprintf(a, sizeof(a), "%" PRIu64, nparams);
        snprintf(b, sizeof(b), "%zu", e->nparams);
        mismatch(err, errlen, path, "nparams", a, b);
        return -1;
    }
    if (f->has_vel != e->has_vel) {
        snprintf(a, sizeof(a), "%d", f->has_vel);
        snprintf(b, sizeof(b), "%d", e->has_vel);
        mismatch(err, errlen, path, "has_vel (momentum buffers)", a, b);
        return -1;
    }
    return 0;
}

/*
 * Read the payload into params and vel (vel may be NULL: its bytes are still read for the CRC),
 * checking the CRC over the bytes as stored.
 */
static int payload_read(int fd, const char *path, size_t n, int has_vel, float *params, float *vel,
                        uint32_t want_crc, char *err, size_t errlen)
{
    unsigned char buf[CKPT_CHUNK * 4];
    float *arr[2] = {params, vel};
    uLong crc = crc32(0L, Z_NULL, 0);
    int a;

    for (a = 0; a < 1 + has_vel; a++) {
        size_t i, k;
        for (i = 0; i < n; i += k) {
            ssize_t got;
            k = n - i < CKPT_CHUNK ? n - i : CKPT_CHUNK;
            got = read_full(fd, buf, 4 * k);
            if (got < 0) {
                set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
                return -1;
            }
            if ((size_t)got < 4 * k) {
                set_err(err, errlen, "%s: truncated while reading (the file shrank)", path);
                return -1;
            }
            crc = crc32(crc, buf, (uInt)(4 * k));
            for (size_t j = 0; arr[a] && j < k; j++) {
                uint32_t u = get_u32(buf + 4 * j);
                memcpy(&arr[a][i + j], &u, 4);
            }
        }
    }
    if ((uint32_t)crc != want_crc) {
        set_err(err, errlen,
                "%s is corrupt: CRC-32 of the parameters is 0x%08" PRIx32
                ", the header says 0x%08" PRIx32,
                path, (uint32_t)crc, want_crc);
        return -1;
    }
    return 0;
}

/* Check the header in the order that gives the most useful sentence for a bad file. */
static int header_read(int fd, const char *path, const struct stat *st, rdt_ckpt_meta_t *m,
                       uint64_t *nparams_p, uint32_t *payload_crc_p, char *err, size_t errlen)
{
    unsigned char hdr[CKPT_HDR_SIZE];
    uint64_t bytes, want;
    uint32_t has_vel, version;
    ssize_t n = read_full(fd, hdr, sizeof(hdr));

    if (n < 0) {
        set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (memcmp(hdr, CKPT_MAGIC, n < 8 ? (size_t)n : 8) != 0) {
        set_err(err, errlen, "%s is not an rdmatrain checkpoint (no %s magic)", path, CKPT_MAGIC);
        return -1;
    }
    if (n >= CKPT_OFF_VERSION + 4) {
        version = get_u32(hdr + CKPT_OFF_VERSION);
        if (version != CKPT_VERSION) {
            set_err(err, errlen,
                    "%s has checkpoint format version %" PRIu32
                    ", this build reads version %u only",
                    path, version, CKPT_VERSION);
            return -1;
        }
    }
    if (n < CKPT_HDR_SIZE) {
        set_err(err, errlen, "%s is truncated: expected at least %d bytes, got %zd", path,
                CKPT_HDR_SIZE, n);
        return -1;
    }
    if (get_u32(hdr + CKPT_OFF_HCRC) != (uint32_t)crc32(crc32(0L, Z_NULL, 0), hdr, CKPT_OFF_HCRC)) {
        set_err(err, errlen, "%s is corrupt: CRC-32 mismatch in the header", path);
        return -1;
    }
    if (header_decode(hdr, m, nparams_p, &has_vel) < 0) {
        set_err(err, errlen, "%s is corrupt: a header field is out of range", path);
        return -1;
    }
    if (payload_bytes(*nparams_p, (int)has_vel, &bytes) < 0) {
        set_err(err, errlen,
                "%s is corrupt: it claims %" PRIu64 " parameters, more than a file can hold", path,
                *nparams_p);
        return -1;
    }
    want = CKPT_HDR_SIZE + bytes;
    if ((uint64_t)st->st_size != want) {
        set_err(err, errlen,
                "%s is %s: %" PRIu64 " parameters%s need %" PRIu64 " bytes, got %" PRIu64, path,
                (uint64_t)st->st_size < want ? "truncated" : "corrupt (trailing bytes)", *nparams_p,
                has_vel ? " and momentum" : "", want, (uint64_t)st->st_size);
        return -1;
    }
    *payload_crc_p = get_u32(hdr + CKPT_OFF_PCRC);
    return 0;
}

/*
 * The file is validated before anything is returned: magic, version, header CRC, size against
 * nparams, the job shape against expect, then the payload CRC. *got is set only on success;
 * params and vel may hold part of a file that is then refused.
 */
int rdt_ckpt_load(const char *dir, const rdt_ckpt_meta_t *expect, rdt_ckpt_meta_t *got,
                  float *params, float *vel, char *err, size_t errlen)
{
    char path[CKPT_PATH_MAX];
    rdt_ckpt_meta_t m;
    uint64_t nparams;
    uint32_t payload_crc;
    struct stat st;
    int fd;

    if (make_paths(dir, path, NULL, err, errlen) < 0)
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 1;
    if (fd < 0) {
        set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        set_err(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        goto err_close;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s is not a regular file", path);
        goto err_close;
    }
    if (header_read(fd, path, &st, &m, &nparams, &payload_crc, err, errlen) < 0)
        goto err_close;
    if (expect && meta_compare(path, &m, nparams, expect, err, errlen) < 0)
        goto err_close;
    m.nparams = (size_t)nparams; /* payload_bytes() checked that it fits */
    if (params &&
        payload_read(fd, path, m.nparams, m.has_vel, params, vel, payload_crc, err, errlen) < 0)
        goto err_close;
    close(fd);
    if (got)
        *got = m;
    return 0;

err_close:
    close(fd);
    return -1;
}
