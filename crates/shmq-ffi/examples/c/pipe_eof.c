/* A pipe whose reader ends on end-of-file after its writer is killed with SIGKILL: the
   writer never closes anything, yet the reader drains what was sent and then reads
   SHMQ_DISCONNECTED.

   cc pipe_eof.c $(pkg-config --cflags --libs shmq) && ./a.out [NAME-PREFIX] */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"

static void die(const char *what, shmq_status s) {
  fprintf(stderr, "%s: %s: %s\n", what, shmq_strerror(s), shmq_last_error());
  exit(1);
}

#define TRY(call)                             \
  do {                                        \
    shmq_status s_ = (call);                  \
    if (s_ != SHMQ_OK) die(#call, s_);        \
  } while (0)

int main(int argc, char **argv) {
  char name[200];
  snprintf(name, sizeof name, "%s-pipe", argc > 1 ? argv[1] : "shmq-example-pipe-eof");
  shmq_options opts;
  TRY(shmq_options_default(&opts));
  opts.capacity = 16;
  opts.message_size = 64;
  shmq_pipe_end *reader, *writer;
  TRY(shmq_pipe_create(name, &opts, &reader, &writer));
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    /* The child holds both ends from the fork on; it drops its copy of the reader's. */
    shmq_pipe_free(reader);
    for (uint64_t i = 0;; i++) TRY(shmq_pipe_send(writer, (const uint8_t *)&i, sizeof i));
  }
  shmq_pipe_free(writer); /* the parent's copy: the child is the writer now */
  uint64_t value, expect = 0;
  size_t len;
  for (int i = 0; i < 100; i++) {
    TRY(shmq_pipe_recv(reader, (uint8_t *)&value, sizeof value, &len));
    if (value != expect++) return 1;
  }
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  shmq_status s;
  while ((s = shmq_pipe_recv(reader, (uint8_t *)&value, sizeof value, &len)) == SHMQ_OK) {
    if (value != expect++) return 1; /* what was sent before the kill, in order */
  }
  if (s != SHMQ_DISCONNECTED) die("recv after the kill", s);
  shmq_pipe_free(reader);
  TRY(shmq_pipe_unlink(name));
  printf("end-of-file after %llu messages from the killed writer\n", (unsigned long long)expect);
  return 0;
}
