#include "redis_link.h"

#include <lariat/lariat.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <new>

namespace lariat::detail {

namespace {

// ------------------------------------------------- the adapter (ev hooks)

// One per hiredis context. Freed by its close callback: hiredis calls
// cleanup while the context dies, possibly inside our own poll callback.
struct Watcher {
  uv_poll_t poll;
  redisAsyncContext *ac;
  RedisLink *link;
  int events = 0;
};

void watcher_apply(Watcher *w);

void on_poll(uv_poll_t *handle, int status, int events) noexcept {
  auto *w = static_cast<Watcher *>(handle->data);
  if (!w->ac) return;
  redisAsyncContext *ac = w->ac;
  if (status < 0) {
    // libuv saw POLLERR and stopped the watcher. hiredis finds the cause
    // itself: getsockopt(SO_ERROR) while connecting, read() after.
    if (!(ac->c.flags & REDIS_CONNECTED))
      redisAsyncHandleWrite(ac);
    else
      redisAsyncHandleRead(ac);
    if (w->ac) watcher_apply(w);  // restart what libuv stopped
    return;
  }
  if (events & UV_READABLE) {
    RedisLink::Owner *owner = w->link->owner();
    owner->read_begin();
    redisAsyncHandleRead(ac);
    owner->read_end();
  }
  if (w->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(ac);
}

void watcher_apply(Watcher *w) {
  if (w->events)
    uv_poll_start(&w->poll, w->events, on_poll);
  else
    uv_poll_stop(&w->poll);
}

void add_read(void *p) {
  auto *w = static_cast<Watcher *>(p);
  w->events |= UV_READABLE;
  watcher_apply(w);
}
void del_read(void *p) {
  auto *w = static_cast<Watcher *>(p);
  w->events &= ~UV_READABLE;
  watcher_apply(w);
}
void add_write(void *p) {
  auto *w = static_cast<Watcher *>(p);
  w->events |= UV_WRITABLE;
  watcher_apply(w);
}
void del_write(void *p) {
  auto *w = static_cast<Watcher *>(p);
  w->events &= ~UV_WRITABLE;
  watcher_apply(w);
}
void cleanup(void *p) {
  auto *w = static_cast<Watcher *>(p);
  w->ac = nullptr;
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t *>(&w->poll), [](uv_handle_t *h) {
    auto *dead = static_cast<Watcher *>(h->data);
    RedisLink *link = dead->link;
    delete dead;
    link->handle_released();
  });
}

// ------------------------------------------------------ hiredis callbacks

RedisLink *link_of(const redisAsyncContext *ac) {
  return static_cast<RedisLink *>(ac->data);
}

void connected_cb(const redisAsyncContext *ac, int status) {
  RedisLink *link = link_of(ac);
  if (link->owns(ac)) link->on_connected(status);
}

void disconnected_cb(const redisAsyncContext *ac, int status) {
  RedisLink *link = link_of(ac);
  if (link->owns(ac)) link->on_disconnected(status);
}

void handshake_cb(redisAsyncContext *ac, void *r, void *) {
  RedisLink *link = link_of(ac);
  if (r && link->owns(ac)) link->on_handshake_reply(static_cast<redisReply *>(r));
}

std::string context_error(const redisAsyncContext *ac) {
  return ac->errstr ? ac->errstr : "connection failed";
}

}  // namespace

int redis_error_code(int err, const char *errstr) {
  if (err == REDIS_ERR_EOF) return UV_EOF;
  if (err == REDIS_ERR_IO && errstr) {
    static const int known[] = {ECONNREFUSED, ECONNRESET,   EPIPE,
                                ETIMEDOUT,    EHOSTUNREACH, ENETUNREACH,
                                ECONNABORTED, EADDRNOTAVAIL};
    for (int e : known)
      if (std::strstr(errstr, std::strerror(e))) return -e;
  }
  return LARIAT_ERR_REDIS;
}

// ------------------------------------------------------------- the link

RedisLink::RedisLink(uv_loop_t *loop, const RedisUrl &url,
                     const RedisTimeouts &t, Owner *owner, uint64_t seed)
    : loop_(loop), url_(url), timeouts_(t), owner_(owner), rng_(seed | 1) {
  uv_timer_init(loop_, &timer_);  // cannot fail
  timer_.data = this;
  handles_ = 1;
}

RedisLink::~RedisLink() = default;

void RedisLink::start() {
  if (state_ == kDraining || state_ == kStopped) return;
  state_ = kResolving;
  connect_deadline_ = uv_now(loop_) + timeouts_.connect_ms;
  arm();
  auto *req = new (std::nothrow) uv_getaddrinfo_t;
  if (!req) {
    fail(LARIAT_ERR_NOMEM, "out of memory", false);
    return;
  }
  req->data = this;
  addrinfo hints;
  std::memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = uv_getaddrinfo(
      loop_, req,
      [](uv_getaddrinfo_t *r, int status, addrinfo *res) {
        static_cast<RedisLink *>(r->data)->on_resolved(r, status, res);
      },
      url_.host.c_str(), nullptr, &hints);
  if (rc != 0) {
    delete req;
    fail(rc, uv_strerror(rc), false);
    return;
  }
  resolving_ = req;
  ++handles_;
}

void RedisLink::on_resolved(uv_getaddrinfo_t *req, int status, addrinfo *res) {
  bool current = req == resolving_ && state_ == kResolving;
  if (req == resolving_) resolving_ = nullptr;
  delete req;
  if (!current) {  // cancelled, timed out or stopped meanwhile
    if (res) uv_freeaddrinfo(res);
    handle_released();
    return;
  }
  // The first IPv4 address, else the first IPv6 one: "localhost" often
  // lists ::1 first, and a Redis bound to 127.0.0.1 (its default) would
  // refuse it.
  char ip[64] = "";
  if (status == 0) {
    status = UV_EAI_NONAME;
    for (addrinfo *a = res; a && status != 0; a = a->ai_next)
      if (a->ai_family == AF_INET &&
          uv_ip4_name(reinterpret_cast<sockaddr_in *>(a->ai_addr), ip, sizeof ip) == 0)
        status = 0;
    for (addrinfo *a = res; a && status != 0; a = a->ai_next)
      if (a->ai_family == AF_INET6 &&
          uv_ip6_name(reinterpret_cast<sockaddr_in6 *>(a->ai_addr), ip, sizeof ip) == 0)
        status = 0;
  }
  if (res) uv_freeaddrinfo(res);
  --handles_;  // the resolve is over; the link still holds its timer
  if (status != 0) {
    fail(status, std::string("resolving ") + url_.host + ": " + uv_strerror(status),
         false);
    return;
  }
  connect_to(ip);
}

// A numeric address: hiredis' getaddrinfo on it does not block.
void RedisLink::connect_to(const char *ip) {
  state_ = kConnecting;
  redisAsyncContext *ac = redisAsyncConnect(ip, url_.port);
  if (!ac) {
    fail(LARIAT_ERR_NOMEM, "out of memory", false);
    return;
  }
  if (ac->err) {
    std::string detail = context_error(ac);
    int code = redis_error_code(ac->c.err, ac->c.errstr);
    redisAsyncFree(ac);
    fail(code, detail, false);
    return;
  }
  // Keepalive: a subscriber connection is silent when nothing is published,
  // and PING is no use on it (hiredis 0.14 loses its answer in subscribed
  // mode), so a vanished peer is found by TCP.
  int on = 1, idle = 10, intvl = 5, cnt = 3;
  setsockopt(ac->c.fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(ac->c.fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(ac->c.fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(ac->c.fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  auto *w = new (std::nothrow) Watcher;
  if (!w || uv_poll_init_socket(loop_, &w->poll, ac->c.fd) != 0) {
    delete w;
    redisAsyncFree(ac);
    fail(LARIAT_ERR_NOMEM, "cannot watch the socket", false);
    return;
  }
  w->poll.data = w;
  w->ac = ac;
  w->link = this;
  ++handles_;
  ac->data = this;
  ac->ev.data = w;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  ac_ = ac;
  redisAsyncSetDisconnectCallback(ac, disconnected_cb);
  redisAsyncSetConnectCallback(ac, connected_cb);  // watches for writable
  // The handshake is queued now and leaves once connected; the link is
  // ready when Redis answered all of it (a listener that never answers
  // times out like a connect that never completes).
  handshake_left_ = 0;
  if (!url_.password.empty()) {
    // AUTH password, or AUTH user password (Redis 6 ACLs).
    const char *argv[3] = {"AUTH", url_.user.c_str(), url_.password.c_str()};
    size_t lens[3] = {4, url_.user.size(), url_.password.size()};
    if (url_.user.empty()) {
      argv[1] = argv[2];
      lens[1] = lens[2];
    }
    redisAsyncCommandArgv(ac, handshake_cb, nullptr, url_.user.empty() ? 2 : 3,
                          argv, lens);
    ++handshake_left_;
  }
  if (url_.db != 0) {
    std::string db = std::to_string(url_.db);
    const char *argv[2] = {"SELECT", db.c_str()};
    size_t lens[2] = {6, db.size()};
    redisAsyncCommandArgv(ac, handshake_cb, nullptr, 2, argv, lens);
    ++handshake_left_;
  }
  const char *ping[1] = {"PING"};
  size_t ping_len[1] = {4};
  redisAsyncCommandArgv(ac, handshake_cb, nullptr, 1, ping, ping_len);
  ++handshake_left_;
}

void RedisLink::on_connected(int status) {
  if (status != REDIS_OK) {
    // hiredis frees the context after this callback.
    fail(redis_error_code(ac_->c.err, ac_->c.errstr), context_error(ac_), false);
  }
}

void RedisLink::on_disconnected(int status) {
  // hiredis frees the context after this callback.
  if (state_ == kDraining) {
    ac_ = nullptr;
    finish_stop();
    return;
  }
  if (status == REDIS_OK)
    fail(UV_EOF, "disconnected", false);
  else
    fail(redis_error_code(ac_->c.err, ac_->c.errstr), context_error(ac_), false);
}

void RedisLink::on_handshake_reply(redisReply *reply) {
  if (reply->type == REDIS_REPLY_ERROR) {
    fail(LARIAT_ERR_REDIS, std::string(reply->str, reply->len), true);
    return;
  }
  if (--handshake_left_ > 0 || state_ != kConnecting) return;
  state_ = kReady;
  attempt_ = 0;
  deadlines_.clear();
  arm();
  owner_->link_ready(this);
}

bool RedisLink::command(redisCallbackFn *fn, void *privdata, int argc,
                        const char **argv, const size_t *lens, bool expect) {
  if (state_ != kReady) return false;
  if (redisAsyncCommandArgv(ac_, fn, privdata, argc, argv, lens) != REDIS_OK)
    return false;
  if (expect) {
    deadlines_.push_back(uv_now(loop_) + timeouts_.command_ms);
    if (deadlines_.size() == 1) arm();
  }
  return true;
}

void RedisLink::answered() {
  if (deadlines_.empty()) return;
  deadlines_.pop_front();
  if (deadlines_.empty()) arm();
}

// Gives up on the context (hiredis frees it after the callback we are in,
// or now with |free_context|) and schedules the next attempt.
void RedisLink::fail(int error, const std::string &detail, bool free_context) {
  if (state_ == kDraining || state_ == kStopped) return;
  redisAsyncContext *ac = ac_;
  ac_ = nullptr;
  deadlines_.clear();
  state_ = kWaiting;
  retry_at_ = uv_now(loop_) + backoff();
  ++attempt_;
  arm();
  if (ac && free_context) redisAsyncFree(ac);  // deferred inside a reply callback
  owner_->link_down(this, error, detail.c_str());
}

// Exponential from backoff_min_ms, capped at backoff_max_ms; the wait is
// drawn from [d/2, d] so that a fleet does not reconnect in lockstep.
uint64_t RedisLink::backoff() {
  uint64_t d = timeouts_.backoff_min_ms;
  for (unsigned i = 0; i < attempt_ && d < timeouts_.backoff_max_ms; ++i) d *= 2;
  if (d > timeouts_.backoff_max_ms) d = timeouts_.backoff_max_ms;
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  return d / 2 + (d / 2 ? rng_ % (d / 2 + 1) : 0);
}

void RedisLink::arm() {
  if (state_ == kStopped) return;
  uint64_t at = UINT64_MAX;
  switch (state_) {
    case kResolving:
    case kConnecting:
      at = connect_deadline_;
      break;
    case kReady:
    case kDraining:
      if (!deadlines_.empty()) at = deadlines_.front();
      break;
    case kWaiting:
      at = retry_at_;
      break;
    default:
      break;
  }
  if (at == UINT64_MAX) {
    uv_timer_stop(&timer_);
    return;
  }
  uint64_t now = uv_now(loop_);
  uv_timer_start(
      &timer_, [](uv_timer_t *t) { static_cast<RedisLink *>(t->data)->on_timer(); },
      at > now ? at - now : 0, 0);
}

void RedisLink::on_timer() {
  uint64_t now = uv_now(loop_);
  switch (state_) {
    case kResolving:
    case kConnecting:
      if (now >= connect_deadline_) {
        if (resolving_) uv_cancel(reinterpret_cast<uv_req_t *>(resolving_));
        fail(UV_ETIMEDOUT, "connect timed out", true);
        return;
      }
      break;
    case kReady:
      if (!deadlines_.empty() && now >= deadlines_.front()) {
        fail(UV_ETIMEDOUT, "command timed out", true);
        return;
      }
      break;
    case kWaiting:
      if (now >= retry_at_) {
        start();
        return;
      }
      break;
    case kDraining:
      if (!deadlines_.empty() && now >= deadlines_.front()) {
        redisAsyncContext *ac = ac_;
        ac_ = nullptr;
        if (ac) redisAsyncFree(ac);
        finish_stop();
        return;
      }
      break;
    default:
      break;
  }
  arm();
}

void RedisLink::stop(bool graceful) {
  if (state_ == kDraining || state_ == kStopped) return;
  if (resolving_) uv_cancel(reinterpret_cast<uv_req_t *>(resolving_));
  if (graceful && state_ == kReady && ac_ && !deadlines_.empty()) {
    state_ = kDraining;
    redisAsyncDisconnect(ac_);  // sends what is queued, awaits the answers
    if (state_ == kDraining) arm();
    return;
  }
  redisAsyncContext *ac = ac_;
  ac_ = nullptr;
  state_ = kDraining;  // callbacks of the dying context change nothing
  if (ac) redisAsyncFree(ac);
  finish_stop();
}

void RedisLink::finish_stop() {
  if (state_ == kStopped) return;
  state_ = kStopped;
  deadlines_.clear();
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t *>(&timer_),
           [](uv_handle_t *h) { static_cast<RedisLink *>(h->data)->handle_released(); });
}

void RedisLink::handle_released() {
  if (--handles_ == 0 && state_ == kStopped) owner_->link_released(this);
}

}  // namespace lariat::detail
