/* An unmodified threaded program that forks (not linked to daxpmem): run under
 * LD_PRELOAD=libdaxpmem-preload.so DAXPMEM_PRELOAD_ADOPT=all by the torture suite.
 *   plfork DIR [FORKS]
 * At least FORKS forks (default 200), then more (up to 2000) while 2.5 s have not passed.
 * One thread maps a file MAP_SHARED, writes, msyncs and unmaps it in a loop; the main
 * thread forks; each child writes into a shared mapping the parent made before, msyncs
 * it and _exits; the parent waits for it (at most 3 s, then it counts as hung).
 * Exit 0 when every child exited 0 and nothing failed. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include "torture.h"

static atomic_int stop;
static atomic_long loops, errors;
static char tpath[512];

static void *mapper(void *arg) {
    size_t len = 64 * 1024;
    (void)arg;
    int fd = open(tpath, O_RDWR | O_CREAT, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)len) != 0) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    while (!atomic_load(&stop)) {
        char *p = (char *)mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            atomic_fetch_add(&errors, 1);
            continue;
        }
        p[atomic_load(&loops) % (long)len] = 1;
        if (msync(p, len, MS_SYNC) != 0) atomic_fetch_add(&errors, 1);
        if (munmap(p, len) != 0) atomic_fetch_add(&errors, 1);
        atomic_fetch_add(&loops, 1);
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int forks = argc > 2 ? atoi(argv[2]) : 200;
    size_t len = 256 * 1024, pg = t_page();
    char spath[512];
    t_path(tpath, sizeof tpath, argv[1], "plfork-thread.dat");
    t_path(spath, sizeof spath, argv[1], "plfork-shared.dat");
    int fd = t_make_file(spath, len, 0);
    if (fd < 0) return 2;
    char *sh = (char *)mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sh == MAP_FAILED) return 2;
    pthread_t th;
    pthread_create(&th, NULL, mapper, NULL);
    while (atomic_load(&loops) < 5 && atomic_load(&errors) == 0) sched_yield();
    int done = 0, bad = 0;
    char sb[96];
    double end = t_now() + 2.5;
    for (; done < 2000 && (done < forks || t_now() < end) && bad == 0; done++) {
        pid_t pid = fork();
        if (pid < 0) break;
        if (pid == 0) {
            size_t off = ((size_t)done * pg) % len;
            memset(sh + off, 'c', 128);
            if (msync(sh + off, pg, MS_SYNC) != 0) _exit(3);
            _exit(0);
        }
        int st = 0, w = t_wait_child(pid, 3.0, &st);
        if (w == -1) {
            fprintf(stderr, "fork %d: the child hung (killed after 3 s)\n", done);
            bad++;
        } else if (w != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "fork %d: child %s\n", done, t_status(st, sb, sizeof sb));
            bad++;
        }
    }
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    memset(sh, 'p', 64);
    if (msync(sh, len, MS_SYNC) != 0) t_failures++, fprintf(stderr, "parent msync failed\n");
    if (munmap(sh, len) != 0) t_failures++, fprintf(stderr, "parent munmap failed\n");
    char c = 0;
    if (pread(fd, &c, 1, 0) != 1 || c != 'p') t_failures++, fprintf(stderr, "parent's write lost\n");
    close(fd);
    unlink(spath);
    unlink(tpath);
    fprintf(stderr, "plfork: %d forks, %ld map/msync/unmap loops on the other thread, %ld errors\n",
            done, (long)atomic_load(&loops), (long)atomic_load(&errors));
    if (bad || done < forks) t_failures++;
    if (atomic_load(&errors)) t_failures++;
    return t_done("plfork");
}
