/* The producer of the kill test: puts numbered messages on the named queue NAME (round
   ROUND), every fifth one larger than a slot, and after each put that returned SHMQ_OK
   writes its number to standard output: the acknowledgement. It never stops; the test kills
   it with SIGKILL. Usage: kill_producer NAME ROUND */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

int main(int argc, char **argv) {
  CHECK(argc == 3);
  uint32_t round = (uint32_t)atoi(argv[2]);
  shmq_queue *q;
  OK(shmq_queue_open(argv[1], &q));
  size_t big = 3000;
  uint8_t *msg = calloc(1, big);
  CHECK(msg);
  char line[32];
  for (uint32_t i = 0;; i++) {
    memcpy(msg, &round, 4);
    memcpy(msg + 4, &i, 4);
    size_t len = i % 5 == 4 ? big : 8;
    memset(msg + 8, (int)(i & 0xff), len - 8 > 0 ? len - 8 : 0);
    OK(shmq_queue_put(q, msg, len));
    int n = snprintf(line, sizeof line, "%u\n", i);
    CHECK(write(1, line, (size_t)n) == n);
  }
}
