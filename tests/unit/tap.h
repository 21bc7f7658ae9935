/* tap: a minimal Test Anything Protocol harness for the C unit tests (run by prove). */
#ifndef PRESENCED_TAP_H
#define PRESENCED_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count, tap_failed;

#define ok(cond, ...)                                                                              \
    do {                                                                                           \
        int ok_pass_ = (cond) ? 1 : 0;                                                             \
        tap_count++;                                                                               \
        if (!ok_pass_)                                                                             \
            tap_failed++;                                                                          \
        printf("%sok %d - ", ok_pass_ ? "" : "not ", tap_count);                                   \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        if (!ok_pass_)                                                                             \
            printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        fflush(stdout);                                                                            \
    } while (0)

#define is_int(got, want, ...)                                                                     \
    do {                                                                                           \
        long long is_got_ = (long long)(got), is_want_ = (long long)(want);                        \
        ok(is_got_ == is_want_, __VA_ARGS__);                                                      \
        if (is_got_ != is_want_)                                                                   \
            printf("#   got %lld, want %lld\n", is_got_, is_want_);                                \
    } while (0)

#define is_str(got, want, ...)                                                                     \
    do {                                                                                           \
        const char *is_got_ = (got), *is_want_ = (want);                                           \
        int is_same_ = is_got_ && is_want_ && strcmp(is_got_, is_want_) == 0;                      \
        ok(is_same_, __VA_ARGS__);                                                                 \
        if (!is_same_)                                                                             \
            printf("#   got '%s', want '%s'\n", is_got_ ? is_got_ : "(null)",                      \
                   is_want_ ? is_want_ : "(null)");                                                \
    } while (0)

#define diag(...)                                                                                  \
    do {                                                                                           \
        printf("# ");                                                                              \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
    } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif
