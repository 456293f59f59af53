/* Producer/consumer across fork: an anonymous queue shared with forked consumers; the
   producer closes it when done and the consumers drain it to the end (no sentinel). Each
   consumer adds what it took to a shared dict of counters; the parent checks the totals.

   cc producer_consumer.c $(pkg-config --cflags --libs shmq) && ./a.out [NAME-PREFIX] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"

#define CONSUMERS 3
#define MESSAGES 20000

static void die(const char *what, shmq_status s) {
  fprintf(stderr, "%s: %s: %s\n", what, shmq_strerror(s), shmq_last_error());
  exit(1);
}

#define TRY(call)                             \
  do {                                        \
    shmq_status s_ = (call);                  \
    if (s_ != SHMQ_OK) die(#call, s_);        \
  } while (0)

static int consume(shmq_queue *q, shmq_dict *totals) {
  uint64_t n = 0, sum = 0, value;
  size_t len;
  for (;;) {
    shmq_status s = shmq_queue_get(q, (uint8_t *)&value, sizeof value, &len);
    if (s == SHMQ_CLOSED) break; /* closed and drained: the end of the work */
    if (s != SHMQ_OK || len != sizeof value) die("get", s);
    n++;
    sum += value;
  }
  TRY(shmq_dict_add(totals, "count", (int64_t)n, NULL));
  TRY(shmq_dict_add(totals, "sum", (int64_t)sum, NULL));
  return 0;
}

int main(int argc, char **argv) {
  char dict_name[200];
  snprintf(dict_name, sizeof dict_name, "%s-totals",
           argc > 1 ? argv[1] : "shmq-example-producer-consumer");
  shmq_options opts;
  TRY(shmq_options_default(&opts));
  opts.capacity = 64;
  opts.message_size = sizeof(uint64_t);
  shmq_queue *q;
  shmq_dict *totals;
  TRY(shmq_queue_anonymous(&opts, &q));
  TRY(shmq_dict_create(dict_name, 4, 8, &totals));

  pid_t pids[CONSUMERS];
  for (int i = 0; i < CONSUMERS; i++) {
    pids[i] = fork();
    if (pids[i] < 0) return 1;
    if (pids[i] == 0) { /* the child's copies of the handles are its own */
      int rc = consume(q, totals);
      shmq_queue_free(q);
      shmq_dict_free(totals);
      _exit(rc);
    }
  }
  uint64_t want = 0;
  for (uint64_t i = 1; i <= MESSAGES; i++) {
    TRY(shmq_queue_put(q, (const uint8_t *)&i, sizeof i));
    want += i;
  }
  TRY(shmq_queue_close(q)); /* consumers drain what is left, then see SHMQ_CLOSED */
  int failed = 0;
  for (int i = 0; i < CONSUMERS; i++) {
    int status;
    if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status))
      failed = 1;
  }
  int64_t count = 0, sum = 0;
  TRY(shmq_dict_get(totals, "count", &count));
  TRY(shmq_dict_get(totals, "sum", &sum));
  shmq_dict_free(totals);
  TRY(shmq_dict_unlink(dict_name));
  shmq_queue_free(q);
  printf("%d consumers took %lld messages, sum %lld (want %d, %llu)\n", CONSUMERS,
         (long long)count, (long long)sum, MESSAGES, (unsigned long long)want);
  return failed || count != MESSAGES || (uint64_t)sum != want;
}
