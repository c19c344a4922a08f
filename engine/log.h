/*
 * log.h - one-line, lower-case log messages prefixed with host and rank.
 *
 * RDT_LOG=error|warn|info|debug sets the level (default warn); RDT_LOG_SUBSYS=a,b keeps only
 * those subsystems ("bootstrap", "tcp", "exec", "select", "comm", ...). Messages go to stderr.
 */
#ifndef RDT_LOG_H
#define RDT_LOG_H

typedef enum { RDT_LOG_ERROR, RDT_LOG_WARN, RDT_LOG_INFO, RDT_LOG_DEBUG } rdt_log_level_t;

/* Set the process-wide level, subsystem filter (NULL or "" = all) and identity prefix. */
void rdt_log_configure(int level, const char *subsys);
void rdt_log_set_identity(const char *host, int rank);

int rdt_log_enabled(rdt_log_level_t level, const char *subsys);
void rdt_log_emit(rdt_log_level_t level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define rdt_log(level, subsys, ...)                                                              \
    do {                                                                                         \
        if (rdt_log_enabled((level), (subsys)))                                                  \
            rdt_log_emit((level), (subsys), __VA_ARGS__);                                        \
    } while (0)

#define rdt_error(subsys, ...) rdt_log(RDT_LOG_ERROR, subsys, __VA_ARGS__)
#define rdt_warn(subsys, ...) rdt_log(RDT_LOG_WARN, subsys, __VA_ARGS__)
#define rdt_info(subsys, ...) rdt_log(RDT_LOG_INFO, subsys, __VA_ARGS__)
#define rdt_debug(subsys, ...) rdt_log(RDT_LOG_DEBUG, subsys, __VA_ARGS__)

#endif /* RDT_LOG_H */
