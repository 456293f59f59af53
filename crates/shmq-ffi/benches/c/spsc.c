/* The C row of the C-vs-Rust bench: COUNT messages of SIZE bytes from a producer process to
   a consumer process through an anonymous queue (1 -> 1), through libshmq. Prints the time
   from the first put to the consumer's last get in nanoseconds. Usage: spsc SIZE COUNT CAP */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmq.h"

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  size_t size = (size_t)atol(argv[1]);
  uint64_t count = (uint64_t)atoll(argv[2]);
  shmq_options o;
  shmq_options_default(&o);
  o.capacity = (size_t)atol(argv[3]);
  o.message_size = size;
  shmq_queue *q;
  if (shmq_queue_anonymous(&o, &q) != SHMQ_OK) return 1;
  uint8_t *buf = calloc(1, size);
  /* The consumer reports its finishing time through the queue's neighbour: a pipe(2). */
  int fds[2];
  if (!buf || pipe(fds) != 0) return 1;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    size_t len;
    for (uint64_t i = 0; i < count; i++)
      if (shmq_queue_get(q, buf, size, &len) != SHMQ_OK || len != size) _exit(1);
    uint64_t end = now_ns();
    _exit(write(fds[1], &end, sizeof end) == sizeof end ? 0 : 1);
  }
  uint64_t start = now_ns();
  for (uint64_t i = 0; i < count; i++) {
    memcpy(buf, &i, sizeof i);
    if (shmq_queue_put(q, buf, size) != SHMQ_OK) return 1;
  }
  uint64_t end = 0;
  int status;
  if (read(fds[0], &end, sizeof end) != sizeof end) return 1;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) return 1;
  printf("%llu\n", (unsigned long long)(end - start));
  shmq_queue_free(q);
  free(buf);
  return 0;
}
