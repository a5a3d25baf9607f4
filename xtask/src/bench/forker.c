/* Creates N sleeping processes for `cargo xtask bench` (tracked-process
 * memory). Children share the parent's memory (CLONE_VM without
 * CLONE_THREAD: separate processes, each with its own pid and entry in
 * proctor's process table) so that 100k of them fit in a few GiB: a forked
 * copy would cost its own page tables. Prints how many it made (and why it
 * stopped early on stderr), then waits for stdin to close, kills and reaps
 * them. Usage: forker N RATE_PER_S */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int child(void *arg) {
    (void)arg;
    for (;;)
        syscall(SYS_pause);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: forker N RATE_PER_S\n");
        return 2;
    }
    long n = atol(argv[1]), rate = atol(argv[2]), made = 0;
    const size_t stack = 8192;
    char *stacks = mmap(NULL, stack * (size_t)n, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    pid_t *pids = calloc((size_t)n, sizeof(pid_t));
    if (stacks == MAP_FAILED || !pids) {
        fprintf(stderr, "cannot allocate stacks for %ld processes\n", n);
        return 1;
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (; made < n; made++) {
        pid_t p = clone(child, stacks + stack * (size_t)(made + 1), CLONE_VM | SIGCHLD, NULL);
        if (p < 0) {
            fprintf(stderr, "process %ld: clone: %s\n", made + 1, strerror(errno));
            break;
        }
        pids[made] = p;
        if (rate > 0 && made % 100 == 99) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            double due = (double)(made + 1) / (double)rate;
            double el = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
            if (due > el)
                usleep((useconds_t)((due - el) * 1e6));
        }
    }
    printf("%ld\n", made);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
    for (long i = 0; i < made; i++)
        kill(pids[i], SIGKILL);
    while (wait(NULL) > 0 || errno == EINTR) {
    }
    return 0;
}
