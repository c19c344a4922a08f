/*
 * metrics.c - see metrics.h. The metrics file is flushed after every record, so a job killed
 * mid-run keeps the epochs it finished; the plot is written to PATH.tmp and renamed, so a
 * browser reloading it never sees half a document.
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

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

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Metrics file                                                                                 */
/* ------------------------------------------------------------------------------------------- */

#define CSV_HEADER                                                                                 \
    "epoch,train_loss,train_acc,test_loss,test_acc,seconds,samples_per_s,comm_share,bytes_sent\n"

int rdt_metrics_open(rdt_metrics_t *m, const char *path, char *err, size_t errlen)
{
    FILE *f;

    if (strlen(path) >= sizeof(m->path)) {
        set_err(err, errlen, "metrics file %s: path too long", path);
        return -1;
    }
    f = fopen(path, "we");
    if (!f) {
        set_err(err, errlen, "cannot create metrics file %s: %s", path, strerror(errno));
        return -1;
    }
    m->json = ends_with(path, ".jsonl") || ends_with(path, ".json");
    if (!m->json && (fputs(CSV_HEADER, f) < 0 || fflush(f) != 0)) {
        set_err(err, errlen, "cannot write metrics file %s: %s", path, strerror(errno));
        fclose(f);
        return -1;
    }
    m->f = f;
    snprintf(m->path, sizeof(m->path), "%s", path);
    return 0;
}

/* A JSON number, or null for NaN and infinities, which JSON cannot spell. */
static const char *json_num(char *buf, size_t len, double v)
{
    if (!isfinite(v))
        return "null";
    snprintf(buf, len, "%.6g", v);
    return buf;
}

int rdt_metrics_append(rdt_metrics_t *m, const rdt_epoch_metrics_t *r, char *err, size_t errlen)
{
    int n;

    if (!m->f) {
        set_err(err, errlen, "metrics file %s is not open", m->path);
        return -1;
    }
    if (m->json) {
        char b[7][32];
        n = fprintf(m->f,
                    "{\"epoch\":%d,\"train_loss\":%s,\"train_acc\":%s,\"test_loss\":%s,"
                    "\"test_acc\":%s,\"seconds\":%s,\"samples_per_s\":%s,\"comm_share\":%s,"
                    "\"bytes_sent\":%" PRIu64 "}\n",
                    r->epoch, json_num(b[0], 32, r->train_loss), json_num(b[1], 32, r->train_acc),
                    json_num(b[2], 32, r->test_loss), json_num(b[3], 32, r->test_acc),
                    json_num(b[4], 32, r->seconds), json_num(b[5], 32, r->samples_per_s),
                    json_num(b[6], 32, r->comm_share), r->bytes_sent);
    } else {
        n = fprintf(m->f, "%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%" PRIu64 "\n", r->epoch,
                    r->train_loss, r->train_acc, r->test_loss, r->test_acc, r->seconds,
                    r->samples_per_s, r->comm_share, r->bytes_sent);
    }
    if (n < 0 || fflush(m->f) != 0) {
        set_err(err, errlen, "cannot write metrics file %s: %s", m->path, strerror(errno));
        return -1;
    }
    return 0;
}

int rdt_metrics_close(rdt_metrics_t *m, char *err, size_t errlen)
{
    int bad;

    if (!m->f)
        return 0;
    bad = ferror(m->f);
    if (fclose(m->f) != 0 || bad) {
        m->f = NULL;
        set_err(err, errlen, "cannot write metrics file %s: %s", m->path,
                bad ? "an earlier write failed" : strerror(errno));
        return -1;
    }
    m->f = NULL;
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* SVG plot                                                                                     */
/* ------------------------------------------------------------------------------------------- */

/*
 *   +------------------------------- 900 -------------------------------+
 *   |                              title                                  |  y 28
 *   |            loss                              accuracy               |  y 50
 *   |  1.2 +-----------------+              1 +-----------------+        |  y 60
 *   |      |  plot area      |                |                 |        |
 *   |  0.2 +-----------------+            0.8 +-----------------+        |  y 350
 *   |      0   2   4   6                      0   2   4   6              |  y 366
 *   |          epoch                              epoch                  |  y 388
 *   |    - train loss  - test loss           - train acc  - test acc     |  y 408
 *   +--------------------------------------------------------------------+  420
 */
#define SVG_W      900
#define SVG_H      420
#define PLOT_TOP   60.0
#define PLOT_BOT   350.0
#define MARKERS_LE 60 /* epochs up to which each point gets a marker */

typedef struct {
    double lo, hi, step;
} axis_t;

typedef struct {
    const char *label;
    size_t off; /* offsetof a double in rdt_epoch_metrics_t */
    const char *color;
    const char *dash; /* stroke-dasharray, or NULL for a solid line */
} series_t;

typedef struct {
    const char *title;
    double x0, x1; /* plot area, pixels */
    const series_t *series;
    int nseries;
} panel_t;

static const series_t loss_series[] = {
    {"train loss", offsetof(rdt_epoch_metrics_t, train_loss), "#1f77b4", "6,3"},
    {"test loss", offsetof(rdt_epoch_metrics_t, test_loss), "#d62728", NULL},
};
static const series_t acc_series[] = {
    {"train accuracy", offsetof(rdt_epoch_metrics_t, train_acc), "#1f77b4", "6,3"},
    {"test accuracy", offsetof(rdt_epoch_metrics_t, test_acc), "#2ca02c", NULL},
};

static double row_value(const rdt_epoch_metrics_t *r, size_t off)
{
    double v;

    memcpy(&v, (const char *)r + off, sizeof(v));
    return v;
}

/*
 * Round [lo, hi] out to about @p want steps of 1, 2 or 5 times a power of ten (whole steps for
 * an integer axis). A single value gets room on both sides.
 */
static axis_t axis_nice(double lo, double hi, int want, int integer)
{
    axis_t a;
    double raw, mag, norm;

    if (!(hi > lo)) {
        double pad = lo != 0 ? fabs(lo) * 0.1 : 1;
        lo -= pad;
        hi += pad;
    }
    raw = (hi - lo) / want;
    mag = pow(10, floor(log10(raw)));
    norm = raw / mag;
    a.step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
    if (integer && a.step < 1)
        a.step = 1;
    a.lo = floor(lo / a.step) * a.step;
    a.hi = ceil(hi / a.step) * a.step;
    return a;
}

/* A tick label with as many decimals as the step needs, never "-0". */
static void tick_label(char *buf, size_t len, double v, double step)
{
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);

    if (fabs(v) < step * 1e-6)
        v = 0;
    if (dec > 6 || fabs(v) >= 1e7)
        snprintf(buf, len, "%.3g", v);
    else
        snprintf(buf, len, "%.*f", dec, v);
}

/* Text as XML character data or attribute value; control characters XML forbids become '?'. */
static void xml_puts(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '&')
            fputs("&amp;", f);
        else if (c == '<')
            fputs("&lt;", f);
        else if (c == '>')
            fputs("&gt;", f);
        else if (c == '"')
            fputs("&quot;", f);
        else if (c == '\'')
            fputs("&apos;", f);
        else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            fputc('?', f);
        else
            fputc(c, f);
    }
}

static void plot_panel(FILE *f, const panel_t *p, const rdt_epoch_metrics_t *rows, int n)
{
    double ymin = INFINITY, ymax = -INFINITY, emin = rows[0].epoch, emax = rows[0].epoch;
    axis_t ax, ay;
    char label[64];
    int i, s, k, nticks;

    for (i = 0; i < n; i++) {
        emin = fmin(emin, rows[i].epoch);
        emax = fmax(emax, rows[i].epoch);
        for (s = 0; s < p->nseries; s++) {
            double v = row_value(&rows[i], p->series[s].off);
            if (isfinite(v)) {
                ymin = fmin(ymin, v);
                ymax = fmax(ymax, v);
            }
        }
    }
    if (ymin > ymax) { /* nothing finite to show: an empty 0..1 frame */
        ymin = 0;
        ymax = 1;
    }
    ax = axis_nice(emin, emax, 6, 1);
    ay = axis_nice(ymin, ymax, 5, 0);

#define PX(x) (p->x0 + ((x)-ax.lo) / (ax.hi - ax.lo) * (p->x1 - p->x0))
#define PY(y) (PLOT_BOT - ((y)-ay.lo) / (ay.hi - ay.lo) * (PLOT_BOT - PLOT_TOP))

    fprintf(f, "<text x=\"%.1f\" y=\"50\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n",
            (p->x0 + p->x1) / 2, p->title);
    nticks = (int)fmin(100, round((ay.hi - ay.lo) / ay.step));
    for (k = 0; k <= nticks; k++) {
        double v = ay.lo + k * ay.step, y = PY(v);
        tick_label(label, sizeof(label), v, ay.step);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                p->x0, y, p->x1, y, p->x0 - 6, y + 4, label);
    }
    nticks = (int)fmin(100, round((ax.hi - ax.lo) / ax.step));
    for (k = 0; k <= nticks; k++) {
        double v = ax.lo + k * ax.step, x = PX(v);
        tick_label(label, sizeof(label), v, ax.step);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000000\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                x, PLOT_BOT, x, PLOT_BOT + 5, x, PLOT_BOT + 18, label);
    }
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#000000\"/>\n"
            "<text x=\"%.1f\" y=\"388\" text-anchor=\"middle\">epoch</text>\n",
            p->x0, PLOT_TOP, p->x1 - p->x0, PLOT_BOT - PLOT_TOP, (p->x0 + p->x1) / 2);

    for (s = 0; s < p->nseries; s++) {
        const series_t *se = &p->series[s];
        double lx = p->x0 + 10 + 170 * s;

        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"", se->color);
        if (se->dash)
            fprintf(f, " stroke-dasharray=\"%s\"", se->dash);
        fputs(" points=\"", f);
        for (i = 0, k = 0; i < n; i++) {
            double v = row_value(&rows[i], se->off);
            if (isfinite(v))
                fprintf(f, "%s%.1f,%.1f", k++ ? " " : "", PX(rows[i].epoch), PY(v));
        }
        fputs("\"/>\n", f);
        for (i = 0; n <= MARKERS_LE && i < n; i++) {
            double v = row_value(&rows[i], se->off);
            if (isfinite(v))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                        PX(rows[i].epoch), PY(v), se->color);
        }
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"404\" x2=\"%.1f\" y2=\"404\" stroke=\"%s\" "
                "stroke-width=\"2\"%s%s%s/>\n"
                "<text x=\"%.1f\" y=\"408\">%s</text>\n",
                lx, lx + 24, se->color, se->dash ? " stroke-dasharray=\"" : "",
                se->dash ? se->dash : "", se->dash ? "\"" : "", lx + 30, se->label);
    }
#undef PX
#undef PY
}

int rdt_plot_svg(const char *path, const rdt_epoch_metrics_t *rows, int n, const char *title,
                 char *err, size_t errlen)
{
    const panel_t panels[2] = {
        {"loss", 70, 420, loss_series, 2},
        {"accuracy", 520, 870, acc_series, 2},
    };
    char tmp[4096];
    FILE *f;
    int bad;

    if (!rows || n < 1) {
        set_err(err, errlen, "plot %s: no epochs to plot", path);
        return -1;
    }
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        set_err(err, errlen, "plot %s: path too long", path);
        return -1;
    }
    f = fopen(tmp, "we");
    if (!f) {
        set_err(err, errlen, "cannot create plot %s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n"
            "<text x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">",
            SVG_W, SVG_H, SVG_W, SVG_H, SVG_W, SVG_H, SVG_W / 2);
    xml_puts(f, title ? title : "");
    fputs("</text>\n", f);
    plot_panel(f, &panels[0], rows, n);
    plot_panel(f, &panels[1], rows, n);
    fputs("</svg>\n", f);

    bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        set_err(err, errlen, "cannot write plot %s: %s", tmp,
                bad ? "write error" : strerror(errno));
        goto err_unlink;
    }
    if (rename(tmp, path) < 0) {
        set_err(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto err_unlink;
    }
    return 0;

err_unlink:
    unlink(tmp);
    return -1;
}

/* ------------------------------------------------------------------------------------------- */
/* Progress                                                                                     */
/* ------------------------------------------------------------------------------------------- */

#define BAR_WIDTH 20

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The step at which the line after the one for @p step is due: the next tenth, rounded up. */
static long next_tenth(long step, long total)
{
    long k = step * 10 / total + 1;

    return (k * total + 9) / 10;
}

void rdt_progress_begin(rdt_progress_t *p, FILE *out, int tty, int epoch, int epochs,
                        long total_steps)
{
    p->out = out;
    p->tty = tty;
    p->epoch = epoch;
    p->epochs = epochs;
    p->total = total_steps;
    p->next_line = total_steps > 0 ? next_tenth(0, total_steps) : 0;
    p->t0 = now_s();
    p->last_draw = -1; /* nothing drawn yet */
}

/*
 * On a terminal the bar is redrawn in place, at most every 0.1 s (a fast loop must not spend
 * its time in the terminal) but always at the last step, so it ends at 100%. In a log file one
 * line per tenth of the epoch, and none in between.
 */
void rdt_progress_update(rdt_progress_t *p, long step, double loss, double samples_per_s)
{
    char bar[BAR_WIDTH + 1];
    double t;
    long pct;
    int i, fill;

    if (!p->out || p->total <= 0)
        return;
    if (step > p->total)
        step = p->total;
    pct = step * 100 / p->total;
    if (p->tty) {
        t = now_s();
        if (p->last_draw >= 0 && t - p->last_draw < 0.1 && step < p->total)
            return;
        p->last_draw = t;
        fill = (int)(step * BAR_WIDTH / p->total);
        for (i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[BAR_WIDTH] = '\0';
        fprintf(p->out, "\repoch %d/%d [%s] %3ld%%  %ld/%ld steps  loss %.4f  %.0f samples/s\033[K",
                p->epoch, p->epochs, bar, pct, step, p->total, loss, samples_per_s);
    } else {
        if (step < p->next_line)
            return;
        p->next_line = next_tenth(step, p->total);
        fprintf(p->out, "epoch %d/%d %3ld%%  %ld/%ld steps  loss %.4f  %.0f samples/s\n", p->epoch,
                p->epochs, pct, step, p->total, loss, samples_per_s);
    }
    fflush(p->out);
}

void rdt_progress_end(rdt_progress_t *p)
{
    if (!p->out)
        return;
    if (p->tty && p->last_draw >= 0)
        fputc('\n', p->out);
    p->last_draw = -1;
    fflush(p->out);
}
