/* SHMQ_NO_SPACE: in a mount namespace of its own (root), /dev/shm is a 256 KiB tmpfs; a 1 MiB
   message cannot get its side segment, the put fails and the queue is unchanged.
   Usage: no_space PREFIX */
#include <sched.h>
#include <sys/mount.h>

#include "common.h"

int main(int argc, char **argv) {
  CHECK(argc == 2);
  CHECK(unshare(CLONE_NEWNS) == 0);
  CHECK(mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
  CHECK(mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=256k") == 0);
  char name[256];
  test_name(name, sizeof name, argv[1], "full");
  shmq_options o;
  OK(shmq_options_default(&o));
  o.capacity = 4;
  o.message_size = 64;
  shmq_queue *q;
  OK(shmq_queue_create(name, &o, &q));
  size_t big = 1 << 20;
  uint8_t *msg = calloc(1, big);
  CHECK(msg);
  EXPECT(shmq_queue_put(q, msg, big), SHMQ_NO_SPACE);
  size_t n = 1;
  OK(shmq_queue_len(q, &n));
  CHECK(n == 0);
  OK(shmq_queue_put(q, msg, 64)); /* a message in a slot still goes */
  free(msg);
  shmq_queue_free(q);
  OK(shmq_queue_unlink(name));
  printf("no_space: ok\n");
  return 0;
}
