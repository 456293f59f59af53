// libshmq for C++: header-only RAII wrappers over shmq.h. Requires C++20 (std::span).
//
// Errors are exceptions (shmq::error, carrying the shmq_status); the non-blocking and timed
// calls report "would block" and "timed out" in their return value instead (bool or
// std::optional). Handles are move-only and free themselves. Guide: docs/c.md.
#ifndef SHMQ_HPP
#define SHMQ_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shmq.h"

namespace shmq {

/// A failed libshmq call: the status code and the library's message.
class error : public std::runtime_error {
 public:
  error(shmq_status status, const std::string &what)
      : std::runtime_error(what), status_(status) {}
  /// The code, such as SHMQ_CLOSED.
  shmq_status status() const noexcept { return status_; }

 private:
  shmq_status status_;
};

namespace detail {
/// Throws shmq::error unless `s` is SHMQ_OK.
inline void check(shmq_status s) {
  if (s != SHMQ_OK) {
    throw error(s, std::string(shmq_strerror(s)) + ": " + shmq_last_error());
  }
}

/// A `soft` status no call returns: every failure throws.
inline constexpr shmq_status no_soft = static_cast<shmq_status>(-1);

/// true for SHMQ_OK, false for the status meaning "not now" (`soft`); throws otherwise.
inline bool check_soft(shmq_status s, shmq_status soft) {
  if (s == soft) return false;
  check(s);
  return true;
}

inline const uint8_t *bytes(std::span<const std::byte> data) {
  return reinterpret_cast<const uint8_t *>(data.data());
}

inline std::span<const std::byte> as_bytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

inline uint64_t millis(std::chrono::milliseconds t) {
  return t.count() < 0 ? 0 : static_cast<uint64_t>(t.count());
}

/// Calls `get(buf, cap, &len)` with a buffer that grows to the length a message needs.
template <class Get>
std::optional<std::string> get_string(size_t hint, shmq_status soft, Get &&get) {
  std::string buf(hint, '\0');
  for (;;) {
    size_t len = 0;
    shmq_status s = get(reinterpret_cast<uint8_t *>(buf.data()), buf.size(), &len);
    if (s == SHMQ_BUFFER_TOO_SMALL) {
      buf.resize(len);  // the message stays first: try again with room for it
      continue;
    }
    if (!check_soft(s, soft)) return std::nullopt;
    buf.resize(len);
    return buf;
  }
}
}  // namespace detail

/// The geometry of a new queue or pipe (shmq_options with the library's defaults).
struct options : shmq_options {
  options() { detail::check(shmq_options_default(this)); }
  options &with_capacity(size_t n) { capacity = n; return *this; }
  options &with_message_size(size_t n) { message_size = n; return *this; }
  options &with_max_message_size(size_t n) { max_message_size = n; return *this; }
};

/// A bounded MPMC queue between processes, with JoinableQueue's task counter and close.
class queue {
 public:
  /// Creates the named queue `name`; throws SHMQ_ALREADY_EXISTS if it exists.
  static queue create(const std::string &name, const options &o = options()) {
    shmq_queue *q = nullptr;
    detail::check(shmq_queue_create(name.c_str(), &o, &q));
    return queue(q);
  }
  /// Opens the existing named queue `name`.
  static queue open(const std::string &name) {
    shmq_queue *q = nullptr;
    detail::check(shmq_queue_open(name.c_str(), &q));
    return queue(q);
  }
  /// A queue without a name, shared with children made by fork.
  static queue anonymous(const options &o = options()) {
    shmq_queue *q = nullptr;
    detail::check(shmq_queue_anonymous(&o, &q));
    return queue(q);
  }
  /// Removes the name; open handles keep working.
  static void unlink(const std::string &name) { detail::check(shmq_queue_unlink(name.c_str())); }

  queue(queue &&o) noexcept : q_(std::exchange(o.q_, nullptr)) {}
  queue &operator=(queue &&o) noexcept {
    if (this != &o) {
      shmq_queue_free(q_);
      q_ = std::exchange(o.q_, nullptr);
    }
    return *this;
  }
  queue(const queue &) = delete;
  queue &operator=(const queue &) = delete;
  ~queue() { shmq_queue_free(q_); }

  /// Puts a message, waiting while the queue is full.
  void put(std::span<const std::byte> m) { detail::check(shmq_queue_put(q_, detail::bytes(m), m.size())); }
  void put(std::string_view m) { put(detail::as_bytes(m)); }
  /// Puts a message if a slot is free now; false if the queue is full.
  bool try_put(std::span<const std::byte> m) {
    return detail::check_soft(shmq_queue_try_put(q_, detail::bytes(m), m.size()), SHMQ_FULL);
  }
  bool try_put(std::string_view m) { return try_put(detail::as_bytes(m)); }
  /// Puts a message, waiting at most `t` for room; false on timeout.
  bool put_for(std::string_view m, std::chrono::milliseconds t) {
    auto b = detail::as_bytes(m);
    return detail::check_soft(
        shmq_queue_put_timeout(q_, detail::bytes(b), b.size(), detail::millis(t)), SHMQ_TIMEOUT);
  }
  /// Takes the oldest message into `buf`, returns its length; throws SHMQ_BUFFER_TOO_SMALL
  /// (the message stays queued) if it does not fit.
  size_t get(std::span<std::byte> buf) {
    size_t len = 0;
    detail::check(shmq_queue_get(q_, reinterpret_cast<uint8_t *>(buf.data()), buf.size(), &len));
    return len;
  }
  /// Takes the oldest message (any length), waiting while the queue is empty; throws
  /// shmq::error with SHMQ_CLOSED once it is closed and drained.
  std::string get() {
    return *detail::get_string(message_size(), detail::no_soft, [&](uint8_t *b, size_t c, size_t *l) {
      return shmq_queue_get(q_, b, c, l);
    });
  }
  /// The oldest message if there is one now.
  std::optional<std::string> try_get() {
    return detail::get_string(message_size(), SHMQ_EMPTY, [&](uint8_t *b, size_t c, size_t *l) {
      return shmq_queue_try_get(q_, b, c, l);
    });
  }
  /// The oldest message, waiting at most `t`.
  std::optional<std::string> get_for(std::chrono::milliseconds t) {
    return detail::get_string(message_size(), SHMQ_TIMEOUT, [&](uint8_t *b, size_t c, size_t *l) {
      return shmq_queue_get_timeout(q_, b, c, l, detail::millis(t));
    });
  }
  /// Zero-copy get: calls `f(std::span<const std::byte>)` on the message in place; it is
  /// taken when `f` returns. Keep `f` short; an exception from `f` leaves it queued.
  template <class F>
  void get_with(F &&f) {
    struct ctx_t {
      F *f;
      std::exception_ptr ex;
    } ctx{&f, nullptr};
    auto cb = [](const uint8_t *data, size_t len, void *p) -> int {
      auto *c = static_cast<ctx_t *>(p);
      try {
        (*c->f)(std::span<const std::byte>(reinterpret_cast<const std::byte *>(data), len));
        return 0;
      } catch (...) {
        c->ex = std::current_exception();
        return 1;
      }
    };
    shmq_status s = shmq_queue_get_with(q_, cb, &ctx);
    if (ctx.ex) std::rethrow_exception(ctx.ex);
    detail::check(s);
  }
  /// Marks one task done.
  void task_done() { detail::check(shmq_queue_task_done(q_)); }
  /// Waits until every task is done.
  void join() { detail::check(shmq_queue_join(q_)); }
  /// Waits at most `t` until every task is done; false on timeout.
  bool join_for(std::chrono::milliseconds t) {
    return detail::check_soft(shmq_queue_join_timeout(q_, detail::millis(t)), SHMQ_TIMEOUT);
  }
  /// Closes the queue for every holder (puts fail, gets drain then fail).
  void close() { detail::check(shmq_queue_close(q_)); }
  bool closed() const { bool b = false; detail::check(shmq_queue_is_closed(q_, &b)); return b; }
  size_t size() const { size_t n = 0; detail::check(shmq_queue_len(q_, &n)); return n; }
  size_t capacity() const { size_t n = 0; detail::check(shmq_queue_capacity(q_, &n)); return n; }
  size_t message_size() const { size_t n = 0; detail::check(shmq_queue_message_size(q_, &n)); return n; }
  uint64_t unfinished() const { uint64_t n = 0; detail::check(shmq_queue_unfinished(q_, &n)); return n; }
  /// The C handle, for calls this wrapper does not cover.
  shmq_queue *get_handle() const noexcept { return q_; }

 private:
  explicit queue(shmq_queue *q) : q_(q) {}
  shmq_queue *q_;
};

/// One end of a pipe; end-of-file is the exception SHMQ_DISCONNECTED from recv.
class pipe_end {
 public:
  /// Creates the named duplex pipe `name`: both ends, (A, B).
  static std::pair<pipe_end, pipe_end> create(const std::string &name, const options &o = options()) {
    shmq_pipe_end *a = nullptr, *b = nullptr;
    detail::check(shmq_pipe_create(name.c_str(), &o, &a, &b));
    return {pipe_end(a), pipe_end(b)};
  }
  /// Attaches to end `end` of the named pipe `name`.
  static pipe_end open(const std::string &name, shmq_end end) {
    shmq_pipe_end *e = nullptr;
    detail::check(shmq_pipe_open(name.c_str(), end, &e));
    return pipe_end(e);
  }
  /// Attaches with a token from hand_off.
  static pipe_end open_token(const std::string &token) {
    shmq_pipe_end *e = nullptr;
    detail::check(shmq_pipe_open_token(token.c_str(), &e));
    return pipe_end(e);
  }
  static void unlink(const std::string &name) { detail::check(shmq_pipe_unlink(name.c_str())); }

  pipe_end(pipe_end &&o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  pipe_end &operator=(pipe_end &&o) noexcept {
    if (this != &o) {
      shmq_pipe_free(e_);
      e_ = std::exchange(o.e_, nullptr);
    }
    return *this;
  }
  pipe_end(const pipe_end &) = delete;
  pipe_end &operator=(const pipe_end &) = delete;
  ~pipe_end() { shmq_pipe_free(e_); }

  void send(std::string_view m) {
    auto b = detail::as_bytes(m);
    detail::check(shmq_pipe_send(e_, detail::bytes(b), b.size()));
  }
  bool try_send(std::string_view m) {
    auto b = detail::as_bytes(m);
    return detail::check_soft(shmq_pipe_try_send(e_, detail::bytes(b), b.size()), SHMQ_FULL);
  }
  /// The next message, or std::nullopt at end-of-file.
  std::optional<std::string> recv() {
    return detail::get_string(64, SHMQ_DISCONNECTED, [&](uint8_t *b, size_t c, size_t *l) {
      return shmq_pipe_recv(e_, b, c, l);
    });
  }
  /// The next message if one is there now (throws SHMQ_DISCONNECTED at end-of-file).
  std::optional<std::string> try_recv() {
    return detail::get_string(64, SHMQ_EMPTY, [&](uint8_t *b, size_t c, size_t *l) {
      return shmq_pipe_try_recv(e_, b, c, l);
    });
  }
  /// The next message, waiting at most `t` (throws SHMQ_DISCONNECTED at end-of-file).
  std::optional<std::string> recv_for(std::chrono::milliseconds t) {
    return detail::get_string(64, SHMQ_TIMEOUT, [&](uint8_t *b, size_t c, size_t *l) {
      return shmq_pipe_recv_timeout(e_, b, c, l, detail::millis(t));
    });
  }
  /// A token another process passes to open_token to take over this end.
  std::string hand_off(std::chrono::milliseconds within) {
    std::string token(256, '\0');
    size_t len = 0;
    shmq_status s = shmq_pipe_hand_off(e_, detail::millis(within), token.data(), token.size(), &len);
    if (s == SHMQ_BUFFER_TOO_SMALL) {
      token.resize(len);
      s = shmq_pipe_hand_off(e_, detail::millis(within), token.data(), token.size(), &len);
    }
    detail::check(s);
    token.resize(len);
    return token;
  }
  /// Releases this holder now (end-of-file for the other side if it was the last).
  void close() { detail::check(shmq_pipe_close(e_)); }
  shmq_pipe_end *get_handle() const noexcept { return e_; }

 private:
  explicit pipe_end(shmq_pipe_end *e) : e_(e) {}
  shmq_pipe_end *e_;
};

/// A shared dict of int64 counters.
class dict {
 public:
  static dict create(const std::string &name, size_t capacity = 0, size_t max_key_len = 0) {
    shmq_dict *d = nullptr;
    detail::check(shmq_dict_create(name.c_str(), capacity, max_key_len, &d));
    return dict(d);
  }
  static dict open(const std::string &name) {
    shmq_dict *d = nullptr;
    detail::check(shmq_dict_open(name.c_str(), &d));
    return dict(d);
  }
  static void unlink(const std::string &name) { detail::check(shmq_dict_unlink(name.c_str())); }
  dict(dict &&o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  dict(const dict &) = delete;
  dict &operator=(const dict &) = delete;
  ~dict() { shmq_dict_free(d_); }

  /// Adds `delta` to `key` (created at 0), atomically; returns the new value.
  int64_t add(const std::string &key, int64_t delta) {
    int64_t v = 0;
    detail::check(shmq_dict_add(d_, key.c_str(), delta, &v));
    return v;
  }
  void set(const std::string &key, int64_t value) { detail::check(shmq_dict_set(d_, key.c_str(), value)); }
  std::optional<int64_t> get(const std::string &key) const {
    int64_t v = 0;
    if (!detail::check_soft(shmq_dict_get(d_, key.c_str(), &v), SHMQ_KEY_NOT_FOUND)) return std::nullopt;
    return v;
  }

 private:
  explicit dict(shmq_dict *d) : d_(d) {}
  shmq_dict *d_;
};

/// A named lock between processes; meets Lockable, so std::lock_guard and std::unique_lock
/// work with it. owner_died() tells whether the last acquire found its previous owner dead
/// (killed holding it): repair what it protects before unlocking.
class named_lock {
 public:
  static named_lock open_or_create(const std::string &name) {
    shmq_lock *l = nullptr;
    detail::check(shmq_lock_open_or_create(name.c_str(), &l));
    return named_lock(l);
  }
  static void unlink(const std::string &name) { detail::check(shmq_lock_unlink(name.c_str())); }
  named_lock(named_lock &&o) noexcept : l_(std::exchange(o.l_, nullptr)) {}
  named_lock(const named_lock &) = delete;
  named_lock &operator=(const named_lock &) = delete;
  ~named_lock() { shmq_lock_free(l_); }

  void lock() { detail::check(shmq_lock_acquire(l_, &died_)); }
  bool try_lock() { return detail::check_soft(shmq_lock_try_acquire(l_, &died_), SHMQ_WOULD_BLOCK); }
  bool try_lock_for(std::chrono::milliseconds t) {
    return detail::check_soft(shmq_lock_acquire_timeout(l_, detail::millis(t), &died_), SHMQ_TIMEOUT);
  }
  void unlock() { detail::check(shmq_lock_release(l_)); }
  bool owner_died() const noexcept { return died_; }

 private:
  explicit named_lock(shmq_lock *l) : l_(l) {}
  shmq_lock *l_;
  bool died_ = false;
};

}  // namespace shmq

#endif
