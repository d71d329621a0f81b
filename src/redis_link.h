// One connection to Redis on a libuv loop: hiredis' async API on lariat's
// own adapter (uv_poll_t on hiredis' socket), plus what the bundled
// adapter of hiredis 0.14 lacks. libuv reports POLLERR (a refused or reset
// connection) as a poll status and stops the watcher; the bundled adapter
// returns on any status, so hiredis never learns of the error (hiredis
// #240, #450, #508). Here an error status is handed to hiredis, which
// reads the socket error. On top: name resolution with uv_getaddrinfo
// (hiredis would block in getaddrinfo), a connect timeout covering
// resolve, connect, AUTH, SELECT and a PING, a command timeout on the
// oldest unanswered command, and reconnection with exponential backoff and
// jitter after every failure.
#ifndef LARIAT_REDIS_LINK_H
#define LARIAT_REDIS_LINK_H

#include <hiredis/async.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <string>

#include "redis_url.h"

namespace lariat::detail {

struct RedisTimeouts {
  uint64_t connect_ms = 2000;
  uint64_t command_ms = 5000;
  uint64_t backoff_min_ms = 100;
  uint64_t backoff_max_ms = 2000;
};

class RedisLink {
 public:
  struct Owner {
    // The connection answers (handshake done): commands may be sent.
    virtual void link_ready(RedisLink *link) = 0;
    // An attempt failed or a ready connection was lost; |detail| is
    // borrowed for the call. A retry is scheduled already.
    virtual void link_down(RedisLink *link, int error, const char *detail) = 0;
    // After stop(): every handle of the link is closed.
    virtual void link_released(RedisLink *link) = 0;
    // Around each read of the socket (every reply it held is handled in
    // between): the bridge batches the deliveries of one read.
    virtual void read_begin() {}
    virtual void read_end() {}
    virtual ~Owner() = default;
  };

  RedisLink(uv_loop_t *loop, const RedisUrl &url, const RedisTimeouts &t,
            Owner *owner, uint64_t seed);
  ~RedisLink();
  RedisLink(const RedisLink &) = delete;
  RedisLink &operator=(const RedisLink &) = delete;

  void start();
  bool ready() const { return state_ == kReady; }
  // Whether |ac| is this link's live context (callbacks of a context
  // the link gave up on still run once, with a NULL reply).
  bool owns(const redisAsyncContext *ac) const { return ac && ac == ac_; }
  // Sends a command on a ready link; with |expect|, an answer is due
  // within the command timeout, and answered() says it came.
  bool command(redisCallbackFn *fn, void *privdata, int argc,
               const char **argv, const size_t *lens, bool expect);
  void answered();
  size_t unanswered() const { return deadlines_.size(); }
  // Closes the connection (|graceful|: after the answers still due, within
  // the command timeout); Owner::link_released() follows.
  void stop(bool graceful);

  // Internal (hiredis and libuv callbacks).
  void on_connected(int status);
  void on_disconnected(int status);
  void on_handshake_reply(redisReply *reply);
  void on_timer();
  void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res);
  void handle_released();
  Owner *owner() const { return owner_; }

 private:
  enum State { kIdle, kResolving, kConnecting, kReady, kWaiting, kDraining, kStopped };
  void connect_to(const char *ip);
  void fail(int error, const std::string &detail, bool free_context);
  void arm();
  void finish_stop();
  uint64_t backoff();

  uv_loop_t *loop_;
  RedisUrl url_;
  RedisTimeouts timeouts_;
  Owner *owner_;
  State state_ = kIdle;
  redisAsyncContext *ac_ = nullptr;
  uv_timer_t timer_;
  uv_getaddrinfo_t *resolving_ = nullptr;
  int handles_ = 0;  // the timer, a pending resolve, poll watchers
  int handshake_left_ = 0;
  uint64_t connect_deadline_ = 0;
  uint64_t retry_at_ = 0;
  unsigned attempt_ = 0;
  uint64_t rng_;
  std::deque<uint64_t> deadlines_;  // of commands still unanswered
};

// -errno (libuv's code) for hiredis' I/O errors it names, UV_EOF for a
// closed connection, LARIAT_ERR_REDIS otherwise.
int redis_error_code(int err, const char *errstr);

}  // namespace lariat::detail

#endif
