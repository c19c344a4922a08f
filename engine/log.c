/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int g_level = RDT_LOG_WARN;
static char g_subsys[256];
static char g_prefix[96] = "rdmatrain";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void rdt_log_configure(int level, const char *subsys)
{
    g_level = level;
    snprintf(g_subsys, sizeof(g_subsys), "%s", subsys ? subsys : "");
}

void rdt_log_set_identity(const char *host, int rank)
{
    snprintf(g_prefix, sizeof(g_prefix), "%s:%d", host ? host : "?", rank);
}

/* Whole-word match of subsys in the comma-separated filter. */
static int subsys_selected(const char *subsys)
{
    size_t n = strlen(subsys);
    const char *p = g_subsys;

    if (!g_subsys[0])
        return 1;
    while ((p = strstr(p, subsys)) != NULL) {
        int start_ok = (p == g_subsys) || p[-1] == ',';
        int end_ok = p[n] == '\0' || p[n] == ',';
        if (start_ok && end_ok)
            return 1;
        p += n;
    }
    return 0;
}

int rdt_log_enabled(rdt_log_level_t level, const char *subsys)
{
    if ((int)level > g_level)
        return 0;
    return level == RDT_LOG_ERROR || subsys_selected(subsys);
}

void rdt_log_emit(rdt_log_level_t level, const char *subsys, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    n = snprintf(line, sizeof(line), "[%s] rdmatrain %s %s: ", g_prefix, level_names[level],
                 subsys);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One fputs of a whole line, so lines of concurrent ranks do not interleave mid-line. */
    n = (int)strlen(line);
    if (n < (int)sizeof(line) - 1) {
        line[n] = '\n';
        line[n + 1] = '\0';
    }
    fputs(line, stderr);
}
