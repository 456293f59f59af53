// C++ over libshmq: a queue of jobs shared with forked workers, a counter dict, a lock, and
// a pipe back to the parent, with RAII handles and exceptions.
//
// g++ -std=c++20 jobs.cpp $(pkg-config --cflags --libs shmq) && ./a.out [NAME-PREFIX]
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>

#include "shmq.hpp"

int main(int argc, char **argv) {
  const std::string prefix = argc > 1 ? argv[1] : "shmq-example-cpp";
  const int jobs = 500, workers = 2;
  auto q = shmq::queue::anonymous(shmq::options().with_capacity(16).with_message_size(64));
  auto totals = shmq::dict::create(prefix + "-totals");
  auto lock = shmq::named_lock::open_or_create(prefix + "-lock");
  // Room for every report: the parent reads them only once every job is put.
  auto [parent_end, child_end] =
      shmq::pipe_end::create(prefix + "-results", shmq::options().with_capacity(jobs));

  for (int w = 0; w < workers; w++) {
    if (fork() == 0) {
      int rc = 0;
      try {
        for (;;) {
          std::string job = q.get();  // throws SHMQ_CLOSED once closed and drained
          totals.add("done", 1);
          {
            std::lock_guard<shmq::named_lock> guard(lock);  // one worker reports at a time
            child_end.send("did " + job);
          }
          q.task_done();
        }
      } catch (const shmq::error &e) {
        rc = e.status() == SHMQ_CLOSED ? 0 : 1;
        if (rc) std::fprintf(stderr, "worker: %s\n", e.what());
      }
      _exit(rc);
    }
  }
  child_end.close();  // the forked workers hold end B now
  for (int i = 0; i < jobs; i++) q.put("job-" + std::to_string(i));
  if (!q.join_for(std::chrono::seconds(60))) {  // every job done, not only taken
    std::fprintf(stderr, "join timed out\n");
    return 1;
  }
  q.close();
  int reports = 0;
  while (auto line = parent_end.recv()) {  // std::nullopt: end-of-file, every worker exited
    if (line->rfind("did job-", 0) != 0) {
      std::fprintf(stderr, "unexpected report %s\n", line->c_str());
      return 1;
    }
    reports++;
  }
  int failed = 0;
  for (int w = 0; w < workers; w++) {
    int status = 0;
    if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
  }
  long long done = totals.get("done").value_or(-1);
  shmq::dict::unlink(prefix + "-totals");
  shmq::named_lock::unlink(prefix + "-lock");
  shmq::pipe_end::unlink(prefix + "-results");
  std::printf("%lld jobs done, %d reports through the pipe\n", done, reports);
  return failed || done != jobs || reports != jobs;
}
