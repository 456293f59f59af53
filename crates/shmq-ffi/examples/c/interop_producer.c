/* The C side of the interop example: puts COUNT messages "c-<i>" on the named queue NAME
   (creating it if needed), then closes it. A Rust consumer (examples/interop_consumer.rs)
   and a Python consumer (shmq.Queue.attach(NAME).get_bytes()) take them from the same
   queue; each message is delivered to exactly one of them.

   cc interop_producer.c $(pkg-config --cflags --libs shmq) && ./a.out NAME COUNT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmq.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s NAME COUNT\n", argv[0]);
    return 2;
  }
  if (shmq_abi_version() != SHMQ_ABI_VERSION) {
    fprintf(stderr, "libshmq's interface is version %u, this program was built for %u\n",
            shmq_abi_version(), SHMQ_ABI_VERSION);
    return 1;
  }
  long count = atol(argv[2]);
  shmq_options opts;
  shmq_options_default(&opts);
  opts.capacity = 64;
  opts.message_size = 32;
  shmq_queue *q;
  shmq_status s = shmq_queue_open_or_create(argv[1], &opts, &q);
  if (s != SHMQ_OK) {
    fprintf(stderr, "open %s: %s\n", argv[1], shmq_last_error());
    return 1;
  }
  char msg[32];
  for (long i = 0; i < count; i++) {
    int n = snprintf(msg, sizeof msg, "c-%ld", i);
    if ((s = shmq_queue_put(q, (const uint8_t *)msg, (size_t)n)) != SHMQ_OK) {
      fprintf(stderr, "put: %s\n", shmq_last_error());
      return 1;
    }
  }
  s = shmq_queue_close(q);
  shmq_queue_free(q);
  printf("produced %ld\n", count);
  return s != SHMQ_OK;
}
