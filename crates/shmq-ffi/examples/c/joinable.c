/* A JoinableQueue: workers mark each job done with shmq_queue_task_done, and the producer's
   shmq_queue_join returns once every job put so far is done.

   cc joinable.c $(pkg-config --cflags --libs shmq) && ./a.out [NAME-PREFIX] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmq.h"

#define WORKERS 2
#define JOBS 2000

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
  char name[200], dict_name[220];
  snprintf(name, sizeof name, "%s-jobs", argc > 1 ? argv[1] : "shmq-example-joinable");
  snprintf(dict_name, sizeof dict_name, "%s-done", name);
  shmq_options opts;
  TRY(shmq_options_default(&opts));
  opts.capacity = 32;
  opts.message_size = 64;
  shmq_queue *q;
  shmq_dict *done;
  TRY(shmq_queue_create(name, &opts, &q));
  TRY(shmq_dict_create(dict_name, 2, 8, &done));

  for (int i = 0; i < WORKERS; i++) {
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      /* A worker opens the queue by name, as an unrelated process would. */
      shmq_queue *mine;
      TRY(shmq_queue_open(name, &mine));
      uint32_t job;
      size_t len;
      shmq_status s;
      while ((s = shmq_queue_get(mine, (uint8_t *)&job, sizeof job, &len)) == SHMQ_OK) {
        TRY(shmq_dict_add(done, "jobs", 1, NULL)); /* the work */
        TRY(shmq_queue_task_done(mine));
      }
      shmq_queue_free(mine);
      shmq_queue_free(q);
      shmq_dict_free(done);
      _exit(s == SHMQ_CLOSED ? 0 : 1);
    }
  }
  for (uint32_t job = 0; job < JOBS; job++) TRY(shmq_queue_put(q, (const uint8_t *)&job, sizeof job));
  TRY(shmq_queue_join_timeout(q, 60000)); /* every job done, not only taken */
  int64_t jobs = 0;
  TRY(shmq_dict_get(done, "jobs", &jobs));
  uint64_t unfinished = 1;
  TRY(shmq_queue_unfinished(q, &unfinished));
  TRY(shmq_queue_close(q));
  int failed = 0;
  for (int i = 0; i < WORKERS; i++) {
    int status;
    if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) failed = 1;
  }
  shmq_queue_free(q);
  shmq_dict_free(done);
  TRY(shmq_queue_unlink(name));
  TRY(shmq_dict_unlink(dict_name));
  printf("join returned with %lld of %d jobs done, %llu unfinished\n", (long long)jobs, JOBS,
         (unsigned long long)unfinished);
  return failed || jobs != JOBS || unfinished != 0;
}
