/*  sim_udp: the UDP socket under a sim's DISH, and its receive buffer. */

#include "peer/sim_udp.h"

#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int
sim_udp_port (const char *endpoint)
{
    const char *colon = endpoint ? strrchr (endpoint, ':') : NULL;
    if (!colon || !colon [1])
        return 0;
    char *end;
    long port = strtol (colon + 1, &end, 10);
    return *end == 0 && port > 0 && port < 65536 ? (int) port : 0;
}

bool
sim_udp_free (const char *endpoint)
{
    int port = sim_udp_port (endpoint);
    const char *host = strstr (endpoint, "://");
    if (!port || !host)
        return true;
    host += 3;
    char name [256];
    size_t length = (size_t) (strrchr (endpoint, ':') - host);
    if (length >= sizeof name)
        return true;
    memcpy (name, host, length);
    name [length] = 0;
    if (name [0] == '[' && length > 2 && name [length - 1] == ']') {
        memmove (name, name + 1, length - 2);
        name [length - 2] = 0;
    }
    char service [8];
    snprintf (service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_DGRAM};
    struct addrinfo *found = NULL;
    if (getaddrinfo (strcmp (name, "*") ? name : NULL, service, &hints, &found))
        return true;
    bool is_free = true;
    int fd = socket (found->ai_family, SOCK_DGRAM, 0);
    if (fd >= 0) {
        //  No SO_REUSEADDR: the bind fails if anyone holds the port.
        if (bind (fd, found->ai_addr, found->ai_addrlen) && errno == EADDRINUSE)
            is_free = false;
        close (fd);
    }
    freeaddrinfo (found);
    return is_free;
}

//  The local port FD is bound to if it is a UDP socket, else 0.
static int
s_udp_port (int fd)
{
    struct stat info;
    if (fstat (fd, &info) || !S_ISSOCK (info.st_mode))
        return 0;
    int type = 0;
    socklen_t size = sizeof type;
    if (getsockopt (fd, SOL_SOCKET, SO_TYPE, &type, &size)
        || type != SOCK_DGRAM)
        return 0;
    struct sockaddr_storage address;
    size = sizeof address;
    if (getsockname (fd, (struct sockaddr *) &address, &size))
        return 0;
    if (address.ss_family == AF_INET)
        return ntohs (((struct sockaddr_in *) &address)->sin_port);
    if (address.ss_family == AF_INET6)
        return ntohs (((struct sockaddr_in6 *) &address)->sin6_port);
    return 0;
}

int
sim_udp_socket (int port)
{
    DIR *fds = opendir ("/proc/self/fd");
    if (!fds)
        return -1;
    int found = -1;
    struct dirent *entry;
    while (found < 0 && (entry = readdir (fds))) {
        char *end;
        long fd = strtol (entry->d_name, &end, 10);
        if (*end || end == entry->d_name || fd == dirfd (fds))
            continue;
        if (s_udp_port ((int) fd) == port)
            found = (int) fd;
    }
    closedir (fds);
    return found;
}

size_t
sim_udp_size (int port, size_t bytes, unsigned wait_ms, sf_fault_t *fault)
{
    int fd;
    for (unsigned waited = 0;
         (fd = sim_udp_socket (port)) < 0 && waited < wait_ms; waited++) {
        struct timespec pause = {0, 1000000};
        nanosleep (&pause, NULL);
    }
    if (fd < 0) {
        sf_fault_set (fault, SF_EINTERNAL,
                      "no UDP socket bound to port %d in this process", port);
        return 0;
    }
    int asked = bytes > (size_t) (INT_MAX / 2) ? INT_MAX / 2 : (int) bytes;
    int given = 0;
    socklen_t size = sizeof given;
    if ((bytes && setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &asked, sizeof asked))
        || getsockopt (fd, SOL_SOCKET, SO_RCVBUF, &given, &size)
        || given <= 0) {
        sf_fault_set (fault, SF_EINTERNAL,
                      "cannot set the receive buffer of UDP port %d: %s", port,
                      strerror (errno));
        return 0;
    }
    return (size_t) given / 2;
}

//  A number from /proc/sys/net/core, or FALLBACK.
static size_t
s_sysctl (const char *name, size_t fallback)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/sys/net/core/%s", name);
    size_t bytes = fallback;
    FILE *file = fopen (path, "r");
    if (file) {
        unsigned long value;
        if (fscanf (file, "%lu", &value) == 1 && value >= 4096)
            bytes = value;
        fclose (file);
    }
    return bytes;
}

size_t
sim_udp_default (void)
{
    return s_sysctl ("rmem_default", 212992) / 2;
}

int
sim_udp_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * sim_udp: ");
    assert (sim_udp_port ("udp://*:5670") == 5670);
    assert (sim_udp_port ("udp://[::1]:9") == 9);
    assert (sim_udp_port ("udp://host") == 0);
    assert (sim_udp_port ("udp://host:") == 0);
    assert (sim_udp_port ("udp://host:70000") == 0);
    assert (sim_udp_port ("udp://host:12x") == 0);
    assert (sim_udp_port (NULL) == 0);

    //  A UDP socket of ours is found by its port; a TCP socket on the same
    //  port is not. The kernel picks a port free for TCP, and the UDP
    //  socket tries it: another process may hold it for UDP (or, the
    //  other way round, for TCP), so a port where both binds succeed is
    //  looked for instead of assumed.
    int udp = -1, tcp = -1, port = 0;
    struct sockaddr_in address = {.sin_family = AF_INET};
    socklen_t size = sizeof address;
    for (int attempt = 0; attempt < 100 && udp < 0; attempt++) {
        address.sin_port = 0;
        address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        tcp = socket (AF_INET, SOCK_STREAM, 0);
        rc = bind (tcp, (struct sockaddr *) &address, sizeof address);
        assert (rc == 0);
        size = sizeof address;
        rc = getsockname (tcp, (struct sockaddr *) &address, &size);
        assert (rc == 0);
        udp = socket (AF_INET, SOCK_DGRAM, 0);
        if (bind (udp, (struct sockaddr *) &address, sizeof address)) {
            close (udp);
            close (tcp);
            udp = tcp = -1;
        }
    }
    assert (udp >= 0);
    port = ntohs (address.sin_port);
    assert (sim_udp_socket (port) == udp);

    //  The buffer asked for is what the kernel gives, up to its cap.
    size_t cap = s_sysctl ("rmem_max", 0);
    size_t asked = 1 << 20;
    sf_fault_t fault;
    size_t given = sim_udp_size (port, asked, 0, &fault);
    assert (given == (cap && cap < asked ? cap : asked));
    int kernel = 0;
    size = sizeof kernel;
    rc = getsockopt (udp, SOL_SOCKET, SO_RCVBUF, &kernel, &size);
    assert (rc == 0);
    assert ((size_t) kernel == 2 * given);
    //  A smaller buffer may be asked for as well; 0 only reads it.
    given = sim_udp_size (port, 65536, 0, &fault);
    assert (given == 65536);
    given = sim_udp_size (port, 0, 0, &fault);
    assert (given == 65536);
    close (udp);
    close (tcp);
    assert (sim_udp_default () >= 2048);

    //  A port held by a socket with SO_REUSEADDR, as a DISH holds it, is
    //  not free, by its address or by every address; once closed, it is.
    int held = socket (AF_INET, SOCK_DGRAM, 0);
    int on = 1;
    rc = setsockopt (held, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    assert (rc == 0);
    address.sin_port = htons ((uint16_t) port);
    rc = bind (held, (struct sockaddr *) &address, sizeof address);
    assert (rc == 0);
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "udp://127.0.0.1:%d", port);
    assert (!sim_udp_free (endpoint));
    snprintf (endpoint, sizeof endpoint, "udp://*:%d", port);
    assert (!sim_udp_free (endpoint));
    close (held);
    assert (sim_udp_free (endpoint));
    assert (sim_udp_free ("udp://no-port"));

    //  No socket on the port: a fault that names it, after the wait.
    given = sim_udp_size (port, asked, 2, &fault);
    assert (given == 0);
    char expected [64];
    snprintf (expected, sizeof expected, "bound to port %d", port);
    assert (strstr (fault.message, expected));
    if (verbose)
        printf ("OK\n");
    return 0;
}
