// link: -lxenstore
/*
 * xs-bench TRANSPORT OP PATH COUNT: the libxenstore reference for the store
 * bench. Does COUNT sequential OPs on PATH with Xen's own libxenstore and prints
 * "ops=<COUNT> seconds=<elapsed>".
 *
 *   TRANSPORT  socket: xenstored's unix socket (xs_open(XS_OPEN_SOCKETONLY));
 *              xenbus: /dev/xen/xenbus (libxenstore opens whatever
 *              XENSTORED_PATH names, so the device is forced through it).
 *   OP         read: xs_read of PATH; write: xs_write of an 8-byte value.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xenstore.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: xs-bench socket|xenbus read|write PATH COUNT\n");
        return 2;
    }
    const char *transport = argv[1], *op = argv[2], *path = argv[3];
    long count = strtol(argv[4], NULL, 10);
    bool writing = strcmp(op, "write") == 0;
    if (count < 1 || (!writing && strcmp(op, "read") != 0)) {
        fprintf(stderr, "xs-bench: bad operation %s or count %s\n", op, argv[4]);
        return 2;
    }

    struct xs_handle *xs;
    if (strcmp(transport, "socket") == 0) {
        xs = xs_open(XS_OPEN_SOCKETONLY);
    } else if (strcmp(transport, "xenbus") == 0) {
        setenv("XENSTORED_PATH", "/dev/xen/xenbus", 1);
        xs = xs_open(0);
    } else {
        fprintf(stderr, "xs-bench: unknown transport %s\n", transport);
        return 2;
    }
    if (!xs) {
        perror("xs-bench: xs_open");
        return 1;
    }

    double t0 = now();
    for (long i = 0; i < count; i++) {
        if (writing) {
            if (!xs_write(xs, XBT_NULL, path, "01234567", 8)) {
                perror("xs-bench: xs_write");
                xs_close(xs);
                return 1;
            }
        } else {
            unsigned int len;
            char *value = xs_read(xs, XBT_NULL, path, &len);
            if (!value) {
                perror("xs-bench: xs_read");
                xs_close(xs);
                return 1;
            }
            free(value);
        }
    }
    double seconds = now() - t0;
    printf("ops=%ld seconds=%.6f\n", count, seconds);
    xs_close(xs);
    return 0;
}
