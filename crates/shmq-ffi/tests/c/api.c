/* Every function of libshmq and every error code a test can provoke, in one process (and
   forked children for the lock's owner-died report). Usage: api PREFIX (segment names). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static const char *prefix;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Writes `value` (8 bytes) at `offset` of /dev/shm/NAME: a foreign writer. */
static void poke_u64(const char *name, off_t offset, uint64_t value) {
  char path[512];
  snprintf(path, sizeof path, "/dev/shm/%s", name);
  int fd = open(path, O_RDWR);
  CHECK(fd >= 0);
  CHECK(pwrite(fd, &value, sizeof value, offset) == (ssize_t)sizeof value);
  close(fd);
}

static void test_versions_and_errors(void) {
  CHECK(shmq_abi_version() == SHMQ_ABI_VERSION);
  CHECK(shmq_layout_version() == SHMQ_LAYOUT_VERSION);
  CHECK(strlen(shmq_version()) > 0);
  /* Every code has a name of its own; anything else is "unknown". */
  for (int i = SHMQ_OK; i <= SHMQ_INTERNAL; i++) {
    CHECK(strcmp(shmq_strerror(i), "unknown status code") != 0);
    for (int j = SHMQ_OK; j < i; j++) CHECK(strcmp(shmq_strerror(i), shmq_strerror(j)) != 0);
  }
  CHECK(strcmp(shmq_strerror(SHMQ_INTERNAL + 1), "unknown status code") == 0);
  CHECK(strcmp(shmq_strerror(-1), "unknown status code") == 0);

  shmq_options o;
  EXPECT(shmq_options_default(NULL), SHMQ_INVALID_ARGUMENT);
  CHECK(strstr(shmq_last_error(), "out") != NULL);
  CHECK(shmq_last_errno() == 0);
  OK(shmq_options_default(&o));
  CHECK(o.capacity == 128 && o.message_size == 4096 && o.mode == 0600);
  CHECK(o.max_message_size == (size_t)1 << 30);
}

static int accept_cb(const uint8_t *data, size_t len, void *ctx) {
  memcpy(ctx, data, len);
  ((char *)ctx)[len] = 0;
  return 0;
}

static int refuse_cb(const uint8_t *data, size_t len, void *ctx) {
  (void)data;
  *(size_t *)ctx = len;
  return 7;
}

struct batch {
  size_t n;
  size_t total;
  char first[16];
};

static void batch_cb(const uint8_t *data, size_t len, void *ctx) {
  struct batch *b = ctx;
  if (b->n == 0 && len < sizeof b->first) {
    memcpy(b->first, data, len);
    b->first[len] = 0;
  }
  b->n++;
  b->total += len;
}

static void test_queue(void) {
  char name[256], pipe_name[256];
  test_name(name, sizeof name, prefix, "queue");
  test_name(pipe_name, sizeof pipe_name, prefix, "queue-not-a-queue");
  shmq_options o;
  OK(shmq_options_default(&o));
  o.capacity = 2;
  o.message_size = 32;
  o.max_message_size = 1 << 20;
  shmq_queue *q = NULL, *q2 = NULL, *bad = NULL;

  /* Arguments. */
  EXPECT(shmq_queue_create(NULL, &o, &q), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_create(name, &o, NULL), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_create("no/slash", &o, &q), SHMQ_INVALID_NAME);
  EXPECT(shmq_queue_create("\xff\xfe", &o, &q), SHMQ_INVALID_ARGUMENT);
  CHECK(strstr(shmq_last_error(), "UTF-8") != NULL);
  shmq_options zero = o;
  zero.capacity = 0;
  EXPECT(shmq_queue_create(name, &zero, &q), SHMQ_INVALID_OPTIONS);
  EXPECT(shmq_queue_open(name, &q), SHMQ_NOT_FOUND);
  EXPECT(shmq_queue_open(NULL, &q), SHMQ_INVALID_ARGUMENT);
  CHECK(q == NULL);

  OK(shmq_queue_create(name, &o, &q));
  EXPECT(shmq_queue_create(name, &o, &bad), SHMQ_ALREADY_EXISTS);
  CHECK(bad == NULL);
  OK(shmq_queue_open(name, &q2));
  shmq_queue *q3 = NULL;
  OK(shmq_queue_open_or_create(name, &o, &q3));
  EXPECT(shmq_queue_open_or_create(NULL, &o, &q3), SHMQ_INVALID_ARGUMENT);

  size_t n = 0;
  OK(shmq_queue_capacity(q, &n));
  CHECK(n == 2);
  OK(shmq_queue_message_size(q, &n));
  CHECK(n == 32);
  OK(shmq_queue_max_message_size(q, &n));
  CHECK(n == 1 << 20);

  /* Put variants, full, timeout. */
  OK(shmq_queue_put(q, (const uint8_t *)"one", 3));
  OK(shmq_queue_try_put(q2, (const uint8_t *)"", 0)); /* an empty message is a message */
  OK(shmq_queue_len(q3, &n));
  CHECK(n == 2);
  EXPECT(shmq_queue_try_put(q, (const uint8_t *)"x", 1), SHMQ_FULL);
  double t0 = now_ms();
  EXPECT(shmq_queue_put_timeout(q, (const uint8_t *)"x", 1, 30), SHMQ_TIMEOUT);
  CHECK(now_ms() - t0 >= 29);
  EXPECT(shmq_queue_put(q, NULL, 1), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_put(NULL, (const uint8_t *)"x", 1), SHMQ_INVALID_ARGUMENT);

  /* A buffer too small reports the length needed and leaves the message first. */
  uint8_t buf[64];
  size_t len = 0;
  EXPECT(shmq_queue_get(q, buf, 2, &len), SHMQ_BUFFER_TOO_SMALL);
  CHECK(len == 3);
  EXPECT(shmq_queue_try_get(q, buf, 0, &len), SHMQ_BUFFER_TOO_SMALL);
  CHECK(len == 3);
  EXPECT(shmq_queue_get(q, buf, sizeof buf, NULL), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_get(q, NULL, 4, &len), SHMQ_INVALID_ARGUMENT);
  OK(shmq_queue_len(q, &n));
  CHECK(n == 2);
  OK(shmq_queue_get(q2, buf, sizeof buf, &len));
  CHECK(len == 3 && memcmp(buf, "one", 3) == 0);
  OK(shmq_queue_get_timeout(q, buf, sizeof buf, &len, 1000));
  CHECK(len == 0);
  EXPECT(shmq_queue_try_get(q, buf, sizeof buf, &len), SHMQ_EMPTY);
  t0 = now_ms();
  EXPECT(shmq_queue_get_timeout(q, buf, sizeof buf, &len, 30), SHMQ_TIMEOUT);
  CHECK(now_ms() - t0 >= 29);

  /* Messages of any size: 100000 bytes through 32-byte slots. */
  size_t big_len = 100000;
  uint8_t *big = malloc(big_len), *back = malloc(big_len);
  CHECK(big && back);
  for (size_t i = 0; i < big_len; i++) big[i] = (uint8_t)(i * 7);
  OK(shmq_queue_put(q, big, big_len));
  EXPECT(shmq_queue_get(q, buf, sizeof buf, &len), SHMQ_BUFFER_TOO_SMALL);
  CHECK(len == big_len);
  OK(shmq_queue_get(q, back, big_len, &len));
  CHECK(len == big_len && memcmp(big, back, big_len) == 0);
  EXPECT(shmq_queue_put(q, big, (1 << 20) + 1), SHMQ_TOO_LARGE);
  CHECK(strstr(shmq_last_error(), "exceeds") != NULL);

  /* Zero-copy gets through a callback. */
  char seen[64];
  OK(shmq_queue_put(q, (const uint8_t *)"zero", 4));
  size_t refused_len = 0;
  EXPECT(shmq_queue_get_with(q, refuse_cb, &refused_len), SHMQ_REFUSED);
  CHECK(refused_len == 4);
  OK(shmq_queue_len(q, &n));
  CHECK(n == 1); /* refused: still there */
  OK(shmq_queue_get_with(q, accept_cb, seen));
  CHECK(strcmp(seen, "zero") == 0);
  EXPECT(shmq_queue_try_get_with(q, accept_cb, seen), SHMQ_EMPTY);
  EXPECT(shmq_queue_get_with_timeout(q, accept_cb, seen, 20), SHMQ_TIMEOUT);
  EXPECT(shmq_queue_get_with(q, NULL, seen), SHMQ_INVALID_ARGUMENT);
  OK(shmq_queue_put(q, (const uint8_t *)"tg", 2));
  OK(shmq_queue_try_get_with(q, accept_cb, seen));
  CHECK(strcmp(seen, "tg") == 0);
  OK(shmq_queue_put(q, (const uint8_t *)"gwt", 3));
  OK(shmq_queue_get_with_timeout(q, accept_cb, seen, 1000));
  CHECK(strcmp(seen, "gwt") == 0);
  /* A large message read in place. */
  OK(shmq_queue_put(q, big, big_len));
  struct batch bb = {0};
  OK(shmq_queue_get_many(q, 4, batch_cb, &bb, &n));
  CHECK(n == 1 && bb.total == big_len);

  /* Batches. */
  const uint8_t *msgs[3] = {(const uint8_t *)"a", (const uint8_t *)"bb", (const uint8_t *)"ccc"};
  size_t lens[3] = {1, 2, 3};
  size_t put = 99;
  OK(shmq_queue_try_put_many(q, msgs, lens, 3, &put));
  CHECK(put == 2); /* two slots */
  EXPECT(shmq_queue_try_put_many(q, msgs + 2, lens + 2, 1, &put), SHMQ_FULL);
  CHECK(put == 0);
  struct batch b = {0};
  OK(shmq_queue_get_many(q, 10, batch_cb, &b, &n));
  CHECK(n == 2 && b.n == 2 && strcmp(b.first, "a") == 0 && b.total == 3);
  OK(shmq_queue_put_many(q, msgs, lens, 2, &put));
  CHECK(put == 2);
  memset(&b, 0, sizeof b);
  OK(shmq_queue_try_get_many(q, 1, batch_cb, &b, &n));
  CHECK(n == 1 && strcmp(b.first, "a") == 0);
  OK(shmq_queue_try_get_many(q, 5, batch_cb, &b, &n));
  CHECK(n == 1 && b.n == 2);
  EXPECT(shmq_queue_try_get_many(q, 5, batch_cb, &b, &n), SHMQ_EMPTY);
  size_t bad_lens[2] = {1, (1 << 20) + 1};
  const uint8_t *bad_msgs[2] = {(const uint8_t *)"a", big};
  EXPECT(shmq_queue_put_many(q, bad_msgs, bad_lens, 2, &put), SHMQ_TOO_LARGE);
  CHECK(put == 0);
  OK(shmq_queue_len(q, &n));
  CHECK(n == 0); /* nothing of a refused batch is put */
  EXPECT(shmq_queue_put_many(q, NULL, lens, 1, &put), SHMQ_INVALID_ARGUMENT);
  OK(shmq_queue_put_many(q, NULL, NULL, 0, &put));
  CHECK(put == 0);
  OK(shmq_queue_get_many(q, 0, batch_cb, &b, &n));
  CHECK(n == 0);

  /* The task counter: puts so far: one, "", big, zero, tg, gwt, big, a, bb, a, bb = 11. */
  uint64_t unfinished = 0;
  OK(shmq_queue_unfinished(q, &unfinished));
  CHECK(unfinished == 11);
  EXPECT(shmq_queue_join_timeout(q, 20), SHMQ_TIMEOUT);
  for (int i = 0; i < 11; i++) OK(shmq_queue_task_done(q2));
  EXPECT(shmq_queue_task_done(q), SHMQ_NO_UNFINISHED_TASKS);
  OK(shmq_queue_join(q));
  OK(shmq_queue_join_timeout(q, 0));

  /* Close: puts refused, gets drain then fail. */
  OK(shmq_queue_put(q, (const uint8_t *)"last", 4));
  bool closed = true;
  OK(shmq_queue_is_closed(q, &closed));
  CHECK(!closed);
  OK(shmq_queue_close(q2));
  OK(shmq_queue_is_closed(q, &closed));
  CHECK(closed);
  EXPECT(shmq_queue_put(q, (const uint8_t *)"x", 1), SHMQ_CLOSED);
  OK(shmq_queue_get(q, buf, sizeof buf, &len));
  CHECK(len == 4);
  EXPECT(shmq_queue_get(q, buf, sizeof buf, &len), SHMQ_CLOSED);
  EXPECT(shmq_queue_try_get(q, buf, sizeof buf, &len), SHMQ_CLOSED);

  /* NULL handles and outputs. */
  EXPECT(shmq_queue_len(NULL, &n), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_len(q, NULL), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_capacity(NULL, &n), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_message_size(q, NULL), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_max_message_size(NULL, &n), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_unfinished(q, NULL), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_is_closed(NULL, &closed), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_close(NULL), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_task_done(NULL), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_join(NULL), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_join_timeout(NULL, 1), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_try_put(NULL, NULL, 0), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_put_timeout(NULL, NULL, 0, 1), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_get_timeout(NULL, buf, 1, &len, 1), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_try_put_many(NULL, msgs, lens, 1, &put), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_get_many(q, 1, NULL, NULL, &n), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_try_get_many(NULL, 1, batch_cb, &b, &n), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_try_get_with(NULL, accept_cb, seen), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_get_with_timeout(q, NULL, seen, 1), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_queue_anonymous(&o, NULL), SHMQ_INVALID_ARGUMENT);
  shmq_queue_free(NULL);

  shmq_queue_free(q3);
  shmq_queue_free(q2);
  shmq_queue_free(q);
  OK(shmq_queue_unlink(name));
  EXPECT(shmq_queue_unlink(name), SHMQ_NOT_FOUND);
  EXPECT(shmq_queue_unlink(NULL), SHMQ_INVALID_ARGUMENT);

  /* A segment of another kind, of another layout version, damaged, or not a segment. */
  shmq_pipe_end *a, *bend;
  OK(shmq_pipe_create(pipe_name, &o, &a, &bend));
  EXPECT(shmq_queue_open(pipe_name, &q), SHMQ_INCOMPATIBLE);
  shmq_pipe_free(a);
  shmq_pipe_free(bend);
  OK(shmq_pipe_unlink(pipe_name));

  OK(shmq_queue_create(name, &o, &q));
  shmq_queue_free(q);
  /* The version word is the 4 bytes at 8, the kind the 4 at 12: version 99, kind 1 (queue). */
  poke_u64(name, 8, 99 | ((uint64_t)1 << 32));
  EXPECT(shmq_queue_open(name, &q), SHMQ_INCOMPATIBLE);
  CHECK(strstr(shmq_last_error(), "version") != NULL);
  poke_u64(name, 8, SHMQ_LAYOUT_VERSION | ((uint64_t)1 << 32));
  OK(shmq_queue_open(name, &q));
  shmq_queue_free(q);
  poke_u64(name, 104, 1); /* max_message below the slot size */
  EXPECT(shmq_queue_open(name, &q), SHMQ_CORRUPT);
  OK(shmq_queue_unlink(name));

  char dir[512];
  snprintf(dir, sizeof dir, "/dev/shm/%s", name);
  CHECK(mkfifo(dir, 0600) == 0);
  EXPECT(shmq_queue_open(name, &q), SHMQ_NOT_A_SEGMENT);
  CHECK(unlink(dir) == 0);

  /* The OS refuses: no file descriptor left. errno is kept. */
  struct rlimit old, none = {0, 0};
  CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
  none.rlim_max = old.rlim_max;
  CHECK(setrlimit(RLIMIT_NOFILE, &none) == 0);
  errno = 0;
  shmq_status s = shmq_queue_create(name, &o, &q);
  int saved = errno;
  CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
  if (s != SHMQ_SYSTEM) {
    fprintf(stderr, "create without fds: %d (%s): %s\n", s, shmq_strerror(s), shmq_last_error());
    exit(1);
  }
  CHECK(saved == EMFILE);
  CHECK(shmq_last_errno() == EMFILE);

  /* Anonymous: shared with a forked child. */
  OK(shmq_queue_anonymous(NULL, &q));
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    int rc = shmq_queue_put(q, (const uint8_t *)"from child", 10) == SHMQ_OK ? 0 : 1;
    shmq_queue_free(q);
    _exit(rc);
  }
  OK(shmq_queue_get_timeout(q, buf, sizeof buf, &len, 10000));
  CHECK(len == 10 && memcmp(buf, "from child", 10) == 0);
  int status;
  CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  shmq_queue_free(q);
  free(big);
  free(back);
}

static void test_pipe(void) {
  char name[256], one[256];
  char token[300];
  test_name(name, sizeof name, prefix, "pipe");
  test_name(one, sizeof one, prefix, "pipe-one-way");
  shmq_options o;
  OK(shmq_options_default(&o));
  o.capacity = 1;
  o.message_size = 32;
  shmq_pipe_end *a = NULL, *b = NULL, *b2 = NULL, *x = NULL;

  EXPECT(shmq_pipe_create(NULL, &o, &a, &b), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_pipe_create(name, &o, NULL, &b), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_pipe_open(name, SHMQ_END_A, &x), SHMQ_NOT_FOUND);
  OK(shmq_pipe_create(name, &o, &a, &b));
  EXPECT(shmq_pipe_create(name, &o, &x, &x), SHMQ_ALREADY_EXISTS);
  EXPECT(shmq_pipe_open(name, 7, &x), SHMQ_INVALID_ARGUMENT);
  OK(shmq_pipe_open(name, SHMQ_END_B, &b2));

  shmq_end end;
  bool yes;
  size_t n, len;
  OK(shmq_pipe_which_end(b2, &end));
  CHECK(end == SHMQ_END_B);
  OK(shmq_pipe_can_send(a, &yes));
  CHECK(yes);
  OK(shmq_pipe_can_recv(a, &yes));
  CHECK(yes);
  OK(shmq_pipe_capacity(a, &n));
  CHECK(n == 1);
  OK(shmq_pipe_message_size(a, &n));
  CHECK(n == 32);
  OK(shmq_pipe_max_message_size(a, &n));
  CHECK(n == (size_t)1 << 30);

  uint8_t buf[64];
  uint8_t *got = NULL;
  bool ready = true;
  OK(shmq_pipe_poll(b, 0, &ready));
  CHECK(!ready);
  EXPECT(shmq_pipe_try_recv(b, buf, sizeof buf, &len), SHMQ_EMPTY);
  EXPECT(shmq_pipe_recv_timeout(b, buf, sizeof buf, &len, 20), SHMQ_TIMEOUT);
  EXPECT(shmq_pipe_try_recv_alloc(b, &got, &len), SHMQ_EMPTY);
  EXPECT(shmq_pipe_recv_alloc_timeout(b, &got, &len, 20), SHMQ_TIMEOUT);
  OK(shmq_pipe_send(a, (const uint8_t *)"ping", 4));
  EXPECT(shmq_pipe_try_send(a, (const uint8_t *)"x", 1), SHMQ_FULL);
  EXPECT(shmq_pipe_send_timeout(a, (const uint8_t *)"x", 1, 20), SHMQ_TIMEOUT);
  OK(shmq_pipe_poll(b, 1000, &ready));
  CHECK(ready);
  EXPECT(shmq_pipe_recv(b, buf, 3, &len), SHMQ_BUFFER_TOO_SMALL);
  CHECK(len == 4); /* and the message stays */
  EXPECT(shmq_pipe_try_recv(b, buf, 2, &len), SHMQ_BUFFER_TOO_SMALL);
  CHECK(len == 4);
  EXPECT(shmq_pipe_recv_timeout(b, buf, 1, &len, 1000), SHMQ_BUFFER_TOO_SMALL);
  CHECK(len == 4);
  OK(shmq_pipe_recv(b2, buf, sizeof buf, &len));
  CHECK(len == 4 && memcmp(buf, "ping", 4) == 0);
  OK(shmq_pipe_try_send(b, (const uint8_t *)"pong", 4));
  OK(shmq_pipe_try_recv_alloc(a, &got, &len));
  CHECK(len == 4 && memcmp(got, "pong", 4) == 0);
  free(got);
  OK(shmq_pipe_send_timeout(b, (const uint8_t *)"t", 1, 1000));
  OK(shmq_pipe_recv_alloc_timeout(a, &got, &len, 1000));
  CHECK(len == 1 && got[0] == 't');
  free(got);
  OK(shmq_pipe_send(b, (const uint8_t *)"tr", 2));
  OK(shmq_pipe_try_recv(a, buf, sizeof buf, &len));
  CHECK(len == 2 && memcmp(buf, "tr", 2) == 0);
  OK(shmq_pipe_send(b, (const uint8_t *)"rt", 2));
  OK(shmq_pipe_recv_timeout(a, buf, sizeof buf, &len, 1000));
  CHECK(len == 2 && memcmp(buf, "rt", 2) == 0);
  /* Any size: 50000 bytes through 32-byte slots. */
  size_t big_len = 50000;
  uint8_t *big = calloc(1, big_len);
  CHECK(big);
  big[big_len - 1] = 42;
  OK(shmq_pipe_send(a, big, big_len));
  OK(shmq_pipe_recv_alloc(b, &got, &len));
  CHECK(len == big_len && got[big_len - 1] == 42);
  free(got);
  free(big);
  EXPECT(shmq_pipe_recv_alloc(b, NULL, &len), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_pipe_recv(b, buf, sizeof buf, NULL), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_pipe_poll(b, 0, NULL), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_pipe_send(NULL, buf, 1), SHMQ_INVALID_ARGUMENT);

  /* The spawn hand-off: a token string another process opens. */
  size_t tlen = 0;
  EXPECT(shmq_pipe_hand_off(b, 60000, token, 3, &tlen), SHMQ_BUFFER_TOO_SMALL);
  CHECK(tlen == strlen(name) + 3);
  OK(shmq_pipe_hand_off(b, 60000, token, sizeof token, &tlen));
  CHECK(tlen == strlen(name) + 2 && token[tlen - 1] == 'B' && token[tlen] == 0);
  EXPECT(shmq_pipe_open_token("not a token", &x), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_pipe_open_token(NULL, &x), SHMQ_INVALID_ARGUMENT);
  OK(shmq_pipe_close(b));
  EXPECT(shmq_pipe_close(b), SHMQ_HANDLE_CLOSED);
  EXPECT(shmq_pipe_send(b, (const uint8_t *)"x", 1), SHMQ_HANDLE_CLOSED);
  EXPECT(shmq_pipe_which_end(b, &end), SHMQ_HANDLE_CLOSED);
  shmq_pipe_free(b);
  OK(shmq_pipe_close(b2)); /* the token still holds end B */
  shmq_pipe_free(b2);
  OK(shmq_pipe_send(a, (const uint8_t *)"to token", 8));
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    shmq_pipe_end *mine = NULL;
    int rc = 1;
    if (shmq_pipe_open_token(token, &mine) == SHMQ_OK &&
        shmq_pipe_recv(mine, buf, sizeof buf, &len) == SHMQ_OK && len == 8)
      rc = shmq_pipe_send(mine, (const uint8_t *)"bye", 3) == SHMQ_OK ? 0 : 2;
    shmq_pipe_free(mine);
    _exit(rc);
  }
  OK(shmq_pipe_recv(a, buf, sizeof buf, &len));
  CHECK(len == 3 && memcmp(buf, "bye", 3) == 0);
  /* End-of-file once the child's end is gone; end B cannot be opened again. */
  EXPECT(shmq_pipe_recv(a, buf, sizeof buf, &len), SHMQ_DISCONNECTED);
  EXPECT(shmq_pipe_send(a, (const uint8_t *)"x", 1), SHMQ_DISCONNECTED);
  int status;
  CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT(shmq_pipe_open(name, SHMQ_END_B, &x), SHMQ_DISCONNECTED);
  shmq_pipe_free(a);
  OK(shmq_pipe_unlink(name));
  EXPECT(shmq_pipe_unlink(name), SHMQ_NOT_FOUND);

  /* One-way: A receives, B sends. */
  shmq_pipe_end *rx, *tx;
  OK(shmq_pipe_create_one_way(one, &o, &rx, &tx));
  EXPECT(shmq_pipe_send(rx, (const uint8_t *)"x", 1), SHMQ_WRONG_DIRECTION);
  EXPECT(shmq_pipe_recv(tx, buf, sizeof buf, &len), SHMQ_WRONG_DIRECTION);
  OK(shmq_pipe_can_send(rx, &yes));
  CHECK(!yes);
  OK(shmq_pipe_can_recv(tx, &yes));
  CHECK(!yes);
  EXPECT(shmq_pipe_create_one_way(one, &o, &x, &x), SHMQ_ALREADY_EXISTS);
  /* The holder table is full after 64 holders (2 are these). */
  shmq_pipe_end *many[64];
  int opened = 0;
  shmq_status s;
  while ((s = shmq_pipe_open(one, SHMQ_END_B, &many[opened])) == SHMQ_OK) {
    opened++;
    CHECK(opened < 64);
  }
  EXPECT(s, SHMQ_TOO_MANY_HOLDERS);
  CHECK(opened == 62);
  for (int i = 0; i < opened; i++) shmq_pipe_free(many[i]);
  shmq_pipe_free(rx);
  shmq_pipe_free(tx);
  shmq_pipe_free(NULL);
  OK(shmq_pipe_unlink(one));
}

static void test_dict(void) {
  char name[256];
  test_name(name, sizeof name, prefix, "dict");
  shmq_dict *d = NULL, *d2 = NULL;
  EXPECT(shmq_dict_open(name, &d), SHMQ_NOT_FOUND);
  EXPECT(shmq_dict_create(NULL, 0, 0, &d), SHMQ_INVALID_ARGUMENT);
  OK(shmq_dict_create(name, 2, 4, &d));
  EXPECT(shmq_dict_create(name, 2, 4, &d2), SHMQ_ALREADY_EXISTS);
  OK(shmq_dict_open(name, &d2));
  int64_t v = 0;
  EXPECT(shmq_dict_get(d, "k", &v), SHMQ_KEY_NOT_FOUND);
  OK(shmq_dict_add(d, "k", 5, &v));
  CHECK(v == 5);
  OK(shmq_dict_add(d2, "k", -2, NULL));
  OK(shmq_dict_get(d, "k", &v));
  CHECK(v == 3);
  OK(shmq_dict_set(d2, "j", INT64_MAX));
  EXPECT(shmq_dict_add(d, "j", 1, &v), SHMQ_OVERFLOW);
  EXPECT(shmq_dict_set(d, "new", 1), SHMQ_DICT_FULL);
  EXPECT(shmq_dict_set(d, "", 1), SHMQ_INVALID_KEY);
  EXPECT(shmq_dict_get(d, "12345", &v), SHMQ_INVALID_KEY);
  EXPECT(shmq_dict_get(d, "k", NULL), SHMQ_INVALID_ARGUMENT);
  size_t n;
  OK(shmq_dict_len(d, &n));
  CHECK(n == 2);
  OK(shmq_dict_remove(d, "j", &v));
  CHECK(v == INT64_MAX);
  EXPECT(shmq_dict_remove(d, "j", &v), SHMQ_KEY_NOT_FOUND);
  OK(shmq_dict_clear(d2));
  OK(shmq_dict_len(d, &n));
  CHECK(n == 0);
  EXPECT(shmq_dict_len(NULL, &n), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_dict_clear(NULL), SHMQ_INVALID_ARGUMENT);
  shmq_dict_free(d2);
  shmq_dict_free(d);
  shmq_dict_free(NULL);
  OK(shmq_dict_unlink(name));
  EXPECT(shmq_dict_unlink(name), SHMQ_NOT_FOUND);
}

struct lock_probe {
  shmq_lock *lock;
  shmq_status try_status, timeout_status, release_status;
};

static void *probe_lock(void *arg) {
  struct lock_probe *p = arg;
  p->try_status = shmq_lock_try_acquire(p->lock, NULL);
  p->timeout_status = shmq_lock_acquire_timeout(p->lock, 20, NULL);
  p->release_status = shmq_lock_release(p->lock);
  return NULL;
}

static void test_lock(void) {
  char name[256];
  test_name(name, sizeof name, prefix, "lock");
  shmq_lock *l = NULL, *l2 = NULL, *l3 = NULL;
  EXPECT(shmq_lock_open(name, &l), SHMQ_NOT_FOUND);
  OK(shmq_lock_create(name, &l));
  EXPECT(shmq_lock_create(name, &l2), SHMQ_ALREADY_EXISTS);
  OK(shmq_lock_open(name, &l2));
  OK(shmq_lock_open_or_create(name, &l3));
  EXPECT(shmq_lock_release(l), SHMQ_NOT_OWNER);
  bool died = true;
  OK(shmq_lock_acquire(l, &died));
  CHECK(!died);
  EXPECT(shmq_lock_acquire(l2, NULL), SHMQ_DEADLOCK);
  /* Another thread: would block, times out, does not own it. */
  struct lock_probe p = {l2, SHMQ_OK, SHMQ_OK, SHMQ_OK};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, probe_lock, &p) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(p.try_status == SHMQ_WOULD_BLOCK);
  CHECK(p.timeout_status == SHMQ_TIMEOUT);
  CHECK(p.release_status == SHMQ_NOT_OWNER);
  OK(shmq_lock_release(l));
  OK(shmq_lock_try_acquire(l3, &died));
  CHECK(!died);
  OK(shmq_lock_release(l3));
  OK(shmq_lock_acquire_timeout(l2, 1000, NULL));
  OK(shmq_lock_release(l2));

  /* A child killed holding the lock: the next owner is told. */
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    if (shmq_lock_acquire(l, NULL) != SHMQ_OK) _exit(1);
    kill(getpid(), SIGKILL);
    _exit(2);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
  OK(shmq_lock_acquire_timeout(l, 10000, &died));
  CHECK(died);
  OK(shmq_lock_release(l));
  OK(shmq_lock_acquire(l, &died));
  CHECK(!died);
  /* Freeing the handle releases what this thread holds through it. */
  shmq_lock_free(l);
  OK(shmq_lock_try_acquire(l2, &died));
  CHECK(!died);
  OK(shmq_lock_release(l2));
  EXPECT(shmq_lock_acquire(NULL, NULL), SHMQ_INVALID_ARGUMENT);
  EXPECT(shmq_lock_create(NULL, &l), SHMQ_INVALID_ARGUMENT);
  shmq_lock_free(l3);
  shmq_lock_free(l2);
  shmq_lock_free(NULL);
  OK(shmq_lock_unlink(name));
  EXPECT(shmq_lock_unlink(name), SHMQ_NOT_FOUND);
}

int main(int argc, char **argv) {
  CHECK(argc == 2);
  prefix = argv[1];
  test_versions_and_errors();
  test_queue();
  test_pipe();
  test_dict();
  test_lock();
  printf("api: ok\n");
  return 0;
}
