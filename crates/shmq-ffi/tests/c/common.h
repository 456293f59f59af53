/* Helpers shared by libshmq's C tests: checks that print where and why they failed. */
#ifndef SHMQ_TEST_COMMON_H
#define SHMQ_TEST_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmq.h"

/* Fails the program unless `call` returns `want`. */
#define EXPECT(call, want)                                                               \
  do {                                                                                   \
    shmq_status got_ = (call);                                                           \
    if (got_ != (want)) {                                                                \
      fprintf(stderr, "%s:%d: %s returned %d (%s), want %d (%s); last error: %s\n",      \
              __FILE__, __LINE__, #call, (int)got_, shmq_strerror(got_), (int)(want),    \
              shmq_strerror(want), shmq_last_error());                                   \
      exit(1);                                                                           \
    }                                                                                    \
  } while (0)

#define OK(call) EXPECT(call, SHMQ_OK)

/* Fails the program unless `cond` holds. */
#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);           \
      exit(1);                                                                           \
    }                                                                                    \
  } while (0)

/* NAME = PREFIX-SUFFIX, for the test's own segment names (the harness removes the prefix's
   leftovers and fails if there are any). */
static inline void test_name(char *out, size_t cap, const char *prefix, const char *suffix) {
  int n = snprintf(out, cap, "%s-%s", prefix, suffix);
  CHECK(n > 0 && (size_t)n < cap);
}

#endif
