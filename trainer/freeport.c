/* freeport.c - see freeport.h. */
#include "freeport.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Bind @p port (0: any) on loopback or every address; return the port bound, or -1. */
static int probe_port(int any, int port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, got = -1;

    if (fd < 0)
        return -1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* as rank 0 will */
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(any ? INADDR_ANY : INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        got = ntohs(a.sin_port);
    close(fd);
    return got;
}

int rdt_free_port(int any)
{
    unsigned char rnd[128];
    int lo = 32768, hi = 60999, i, fd, width;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");

    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    width = lo - 1 - 10000 < 1024 ? lo - 1 - 1024 : 10000; /* [lo - width, lo - 1] */
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (width >= 256 && fd >= 0 && read(fd, rnd, sizeof(rnd)) == (ssize_t)sizeof(rnd)) {
        for (i = 0; i < (int)sizeof(rnd) / 2; i++) {
            int port = lo - 1 - ((rnd[2 * i] << 8 | rnd[2 * i + 1]) % width);
            if (probe_port(any, port) == port) {
                close(fd);
                return port;
            }
        }
    }
    if (fd >= 0)
        close(fd);
    return probe_port(any, 0);
}
