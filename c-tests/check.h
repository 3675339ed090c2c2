/* Minimal test helpers shared by the C and C++ tests (valid C11 and C++17). */
#ifndef DAXPMEM_CHECK_H
#define DAXPMEM_CHECK_H
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        check_count++;                                                                \
        if (!(cond)) {                                                                \
            check_failures++;                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s (errno %d: %s; dax_errormsg: %s)\n", \
                    __FILE__, __LINE__, #cond, errno, strerror(errno), dax_errormsg()); \
            if (check_failures > 20) exit(1);                                         \
        }                                                                             \
    } while (0)

/* An expected failure: rc must equal bad, errno must be e, a message must be left. */
#define CHECK_ERR(expr, bad, e)                                                       \
    do {                                                                              \
        errno = 0;                                                                    \
        int check_rc_ = ((expr) == (bad));                                            \
        int check_errno_ = errno;                                                     \
        CHECK(check_rc_);                                                             \
        if (check_errno_ != (e))                                                      \
            fprintf(stderr, "%s:%d: errno %d (%s), expected %d (%s)\n", __FILE__,      \
                    __LINE__, check_errno_, strerror(check_errno_), (e), strerror(e)); \
        CHECK(check_errno_ == (e));                                                   \
        CHECK(dax_errormsg() != NULL && dax_errormsg()[0] != '\0');                   \
    } while (0)

#ifdef DAXPMEM_H
/* A mapping's statistics (checked). */
static inline struct dax_stats stats(const dax_map_t *m) {
    struct dax_stats s;
    memset(&s, 0, sizeof s);
    s.size = sizeof s;
    CHECK(dax_get_stats(m, &s) == 0);
    return s;
}
#endif

static int check_done(const char *name) {
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}
#endif
