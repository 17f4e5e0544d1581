// link: -lxenstore
/*
 * xs-read-loop PATH COUNT: reads PATH COUNT times with libxenstore over
 * /dev/xen/xenbus (the reference for the platform suite's raw XS_READ) and
 * prints "value=<last value> count=<COUNT> seconds=<elapsed>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <xenstore.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: xs-read-loop PATH COUNT\n");
        return 2;
    }
    long count = strtol(argv[2], NULL, 10);
    if (count < 1) {
        fprintf(stderr, "xs-read-loop: bad count %s\n", argv[2]);
        return 2;
    }
    struct xs_handle *xs = xs_open(0);
    if (!xs) {
        perror("xs-read-loop: xs_open");
        return 1;
    }
    struct timespec t0, t1;
    char *value = NULL;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < count; i++) {
        unsigned int len;
        free(value);
        value = xs_read(xs, XBT_NULL, argv[1], &len);
        if (!value) {
            perror("xs-read-loop: xs_read");
            xs_close(xs);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("value=%s count=%ld seconds=%.6f\n", value, count, seconds);
    free(value);
    xs_close(xs);
    return 0;
}
