#include "server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <new>

#include "client.h"
#include "bridge.h"
#include "connection.h"
#include "guard.h"
#include "tcp_transport.h"
#include "tls_transport.h"

using lariat::detail::Letter;
using lariat::detail::TcpTransport;
using lariat::detail::TlsTransport;

namespace {
// Unique in the process, so an id posted to the wrong server finds
// nothing instead of a stranger. 0 is never an id.
std::atomic<lariat_conn_id> next_conn_id{1};
}  // namespace

// ------------------------------------------------------------- internals


const lariat::detail::Route *lariat_server::find_route(
    std::string_view path) const {
  auto it = routes.find(path);
  if (it != routes.end()) return &it->second;
  for (const auto &prefix : prefix_routes)  // longest first
    if (path.substr(0, prefix.first.size()) == prefix.first)
      return &prefix.second;
  it = routes.find(std::string_view("*"));
  return it == routes.end() ? nullptr : &it->second;
}

void lariat_server::arm_timer(uint64_t deadline) {
  if (deadline >= timer_armed_at || handles_closed) return;
  uint64_t now_ms = now();
  timer_armed_at = deadline;
  uv_timer_start(
      &timer,
      [](uv_timer_t *t) noexcept {
        static_cast<lariat_server *>(t->data)->on_timer();
      },
      deadline > now_ms ? deadline - now_ms : 0, 0);
}

// Nothing here allocates: entries only move or go.
void lariat_server::on_timer() {
  enter_loop_thread();
  timer_armed_at = UINT64_MAX;
  uint64_t now_ms = now();
  while (!timers.empty() && timers.top().deadline <= now_ms) {
    lariat_conn *conn = timers.top().conn;
    uint64_t real = conn->deadline();
    if (real <= now_ms) {
      // Its handler of the deadline sets the next one (or ends it).
      timers.remove(conn);
      lariat::detail::guard_callback(conn, [&] { conn->on_deadline(); });
    } else if (real == UINT64_MAX) {
      timers.remove(conn);
    } else {
      timers.set(conn, real);  // moved later (an idle timer reset by reads)
    }
  }
  if (!timers.empty()) arm_timer(timers.top().deadline);
}

void lariat_server::recycle(std::string *buf) noexcept {
  buf->clear();
  if (buf->capacity() <= kKeepCapacity) return;
  if (buf->capacity() > spare_buffer.capacity()) buf->swap(spare_buffer);
  std::string().swap(*buf);
}

void lariat_server::reuse(std::string *buf, size_t want) noexcept {
  if (want <= kKeepCapacity || buf->capacity() >= want ||
      spare_buffer.capacity() <= buf->capacity())
    return;
  buf->swap(spare_buffer);
  std::string().swap(spare_buffer);  // |buf|'s smaller one
}

// The low byte names the loop, so lariat_post() finds it without a lock.
lariat_conn_id lariat_server::new_conn_id() {
  return next_conn_id.fetch_add(1, std::memory_order_relaxed) << 8 | index;
}

bool lariat_server::adopt(lariat_conn *conn) {
  try {
    conns.insert(conn);
    primary->connection_total.fetch_add(1, std::memory_order_relaxed);
    uint64_t d = conn->deadline();
    if (d != UINT64_MAX) {
      timers.set(conn, d);
      arm_timer(d);
    }
  } catch (...) {
    conn->abandon();  // closes the transport; the connection then goes
    return false;
  }
  return true;
}

void lariat_server::forget(lariat_conn *conn) {
  timers.remove(conn);
  if (conns.erase(conn->id))
    primary->connection_total.fetch_sub(1, std::memory_order_relaxed);
  finish_stop_if_idle();
}

std::vector<Letter> lariat_server::deliver_mail() {
  enter_loop_thread();
  std::vector<Letter> letters, later;
  mailbox.take(&letters);
  // Read after the take: a letter posted after a stop request (which
  // stores the cutoff first) is seen with its cutoff.
  uint64_t cutoff = stop_cutoff.load();
  if (cutoff != UINT64_MAX) {
    try {
      later.reserve(letters.size());  // so that no letter is lost below
    } catch (...) {
      cutoff = UINT64_MAX;  // deliver them all rather than drop any
    }
  }
  // One batch for the whole take, as for one event: what the letters queue
  // for a connection (publishes, and replies from deferred calls) leaves in
  // one write per connection when the take is done, not one per letter.
  // A publisher thread's burst, or lariat.asyncio's batch of sends, costs
  // a write per connection instead of a write per message.
  ++events_running;
  try {
    for (const Letter &letter : letters) {
      if (letter.seq >= cutoff)
        later.push_back(letter);
      else
        deliver(letter);
    }
  } catch (...) {
    if (--events_running == 0) flush_batched();
    throw;
  }
  if (--events_running == 0) flush_batched();
  return later;
}

void lariat_server::deliver(const Letter &letter) {
  switch (letter.kind) {
    case Letter::kPublish: {
      auto *p = static_cast<lariat::detail::PendingPublish *>(letter.msg);
      lariat_frame frame = {};
      frame.opcode = p->opcode;
      frame.flags = p->flags;
      frame.data = reinterpret_cast<const uint8_t *>(p->payload.data());
      frame.len = p->payload.size();
      try {
        publish_local(p->topic, frame, nullptr);
      } catch (...) {
        // Out of memory midway: the subscribers reached so far have it.
      }
      break;
    }
    case Letter::kCall: {
      auto *call = static_cast<lariat::detail::DeferredCall *>(letter.msg);
      call->fn(this, call->data);
      break;
    }
    case Letter::kWake: {
      lariat_conn *conn = conns.find(letter.conn_id);
      if (conn)
        lariat::detail::guard_callback(conn,
                                       [&] { conn->transport()->woken(); });
      break;
    }
    case Letter::kConnect: {
      auto *session = static_cast<lariat::detail::ClientSession *>(letter.msg);
      if (!session->start()) session->abandon();
      return;
    }
    case Letter::kClientClose: {
      auto it = clients.find(letter.conn_id);
      if (it != clients.end()) it->second->close(false);
      return;
    }
    case Letter::kInfo:
    case Letter::kResume: {
      lariat_conn *conn = conns.find(letter.conn_id);
      if (!conn && letter.kind == Letter::kInfo) {
        // A client between connections keeps it for the next one.
        auto it = clients.find(letter.conn_id);
        if (it != clients.end()) {
          it->second->hold(letter);
          return;
        }
      }
      if (!conn) break;
      // Both hand |letter| on (deliver_info frees it, resume takes the
      // upgrade): nothing is left to free here.
      lariat::detail::guard_callback(conn, [&] {
        if (letter.kind == Letter::kResume)
          conn->resume(static_cast<lariat_upgrade *>(letter.msg));
        else
          conn->deliver_info(letter);
      });
      return;
    }
  }
  letter.discard();
}

int lariat_server::wake_transport(lariat_conn_id id) {
  Letter letter = {id, nullptr, nullptr, Letter::kWake};
  return mailbox.post(letter);
}

int lariat_server::publish_local(std::string_view name,
                                 const lariat_frame &frame,
                                 const lariat_conn *except) {
  const lariat::detail::Topic *topic = topics.find(name);
  if (!topic) return 0;
  lariat::detail::Publication pub(static_cast<uint8_t>(frame.opcode),
                                  frame.flags, frame.data, frame.len);
  // Raised so that every delivery joins the batch: one write per
  // subscriber when the outermost event ends. Nothing below runs a
  // handler, so the subscriber list cannot change while it is walked.
  ++events_running;
  int queued = 0;
  try {
    for (lariat_conn *conn : topic->subscribers)
      if (conn != except && conn->deliver_published(pub)) ++queued;
  } catch (...) {
    --events_running;
    throw;
  }
  if (--events_running == 0) flush_batched();
  return queued;
}

void lariat_server::flush_batched() {
  std::vector<lariat_conn_id> ids;
  ids.swap(batched);
  for (lariat_conn_id id : ids) {
    lariat_conn *conn = conns.find(id);
    if (!conn) continue;
    lariat::detail::guard_callback(conn, [&] { conn->flush_batched(); });
  }
}

namespace {

}  // namespace

// The last of a loop's handles closed: that loop is done; once every loop
// is, the server is.
void lariat_server::handle_closed() {
  if (--open_handles != 0 || !stopping || loop_done) return;
  loop_done = true;
  if (primary->loops_running.fetch_sub(1) == 1 && primary->on_stopped) {
    auto cb = primary->on_stopped;
    primary->on_stopped = nullptr;
    cb(primary, primary->on_stopped_data);
  }
}

namespace {

// A listening socket, and the TLS configuration of its connections (null:
// plain TCP). The handle comes first: the server's list holds it.
struct Listener {
  uv_tcp_t tcp;
  lariat_tls *tls = nullptr;  // a reference, released with the listener
};

Listener *listener_of(uv_stream_t *s) { return reinterpret_cast<Listener *>(s); }

void on_handle_closed(uv_handle_t *h) noexcept {
  static_cast<lariat_server *>(h->data)->handle_closed();
}

void on_listener_closed(uv_handle_t *h) noexcept {
  auto *server = static_cast<lariat_server *>(h->data);
  Listener *listener = listener_of(reinterpret_cast<uv_stream_t *>(h));
  if (listener->tls) listener->tls->release();
  delete listener;
  server->handle_closed();
}

// No memory for a connection: the client's socket is closed at once, so
// the listener goes on listening (libuv accepts no other until it is
// taken).
void turn_away(uv_stream_t *listener) {
  int fd = TcpTransport::take_accepted(listener);
  if (fd >= 0) ::close(fd);
}

// Every pending socket is accepted or turned away, whatever runs out.
void on_connection(uv_stream_t *listener, int status) noexcept {
  auto *server = static_cast<lariat_server *>(listener->data);
  server->enter_loop_thread();
  if (status < 0 || server->stopping) return;
  // One allocation for the connection and its socket (and its TLS).
  lariat_tls *tls = listener_of(listener)->tls;
  lariat_conn *conn =
      tls ? lariat_conn::create<TlsTransport>(server, server->new_conn_id(),
                                              tls)
          : lariat_conn::create<TcpTransport>(server, server->new_conn_id());
  if (!conn) {
    turn_away(listener);
    return;
  }
  auto *transport = static_cast<TcpTransport *>(conn->transport());
  if (transport->accept(listener) != 0) return;  // the connection is gone
                                                 // or going
  // From here the socket is ours: on failure, closing it turns it away.
  if (!server->adopt(conn)) return;
  if (transport->start() != 0) {
    conn->abandon();
    return;
  }
  if (server->primary->connection_total.load(std::memory_order_relaxed) >
      server->options.max_connections)
    lariat::detail::guard_callback(conn, [&] { conn->refuse_busy(); });
}

}  // namespace

// Once stopping and every connection is gone, the server's own handles go.
void lariat_server::finish_stop_if_idle() {
  if (!stopping || handles_closed || !conns.empty() || !clients.empty())
    return;
  handles_closed = true;
  lariat::detail::bridge_stop(this);  // its handles count as one of ours
  uv_timer_stop(&timer);
  uv_close(reinterpret_cast<uv_handle_t *>(&timer), on_handle_closed);
  // Deferred calls accepted before the close still run; the rest (posts
  // and publishes to connections that are gone) are freed.
  std::vector<Letter> rest;
  mailbox.close(on_handle_closed, &rest);
  for (const Letter &letter : rest) deliver(letter);
}

namespace {

// Both async handles (mail, stop request) land here: whichever libuv runs
// first, letters posted before a stop request are delivered before the
// stop, and the ones posted after it reach connections that are closing,
// which free them.
void on_wake(uv_async_t *a) noexcept {
  auto *server = static_cast<lariat_server *>(a->data);
  server->enter_loop_thread();
  std::vector<Letter> later = server->deliver_mail();
  if ((server->stop_requested.load() || !later.empty()) && !server->stopping) {
    // A stop was asked for (its cutoff is stored before its flag). Letters
    // posted before it may have arrived after the take above; they are all
    // queued now, so one more take delivers them before the stop.
    std::vector<Letter> more = server->deliver_mail();
    try {
      later.insert(later.end(), more.begin(), more.end());
    } catch (...) {
      for (const Letter &letter : more) letter.discard();
    }
    lariat_server_stop(server);
  }
  for (const Letter &letter : later) server->deliver(letter);
}

// "localhost", "[::1]", "::1", "127.0.0.1" -> an address; no name lookup.
int parse_host(const char *host, int port, sockaddr_storage *addr) {
  std::string text = host;
  if (text == "localhost") text = "127.0.0.1";
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  if (text.find(':') != std::string::npos)
    return uv_ip6_addr(text.c_str(), port,
                       reinterpret_cast<sockaddr_in6 *>(addr));
  return uv_ip4_addr(text.c_str(), port, reinterpret_cast<sockaddr_in *>(addr));
}

}  // namespace

// ------------------------------------------------------------------- API

extern "C" {

}  // extern "C"

namespace {

// One loop of a server: on |loop|, or on one of its own when NULL.
int new_loop(lariat_server **out, uv_loop_t *loop,
             const lariat_options &options) {
  return lariat::detail::guard_errors([&]() -> int {
    *out = nullptr;
    auto *server = new (std::nothrow) lariat_server();
    if (!server) return LARIAT_ERR_NOMEM;
    server->options = options;
    server->handshake_profile.opts.max_frame_size = options.max_frame_size;
    int rc = 0;
    if (!loop) {
      server->owned_loop.reset(new (std::nothrow) uv_loop_t);
      if (!server->owned_loop) {
        delete server;
        return LARIAT_ERR_NOMEM;
      }
      rc = uv_loop_init(server->owned_loop.get());
      if (rc != 0) {
        delete server;
        return rc;
      }
      loop = server->owned_loop.get();
    }
    server->loop = loop;
    server->read_buffer.reset(new (std::nothrow) uint8_t[server->read_buffer_size]);
    if (!server->read_buffer || server->frame_writer.init(&server->mask_keys) != 0) {
      if (server->owned_loop) uv_loop_close(loop);
      delete server;
      return LARIAT_ERR_NOMEM;
    }
    // The handles whose creation can fail come first. If the second fails,
    // the first is closed without running a loop that may be the caller's:
    // its close callback frees the server whenever that loop runs.
    rc = uv_async_init(loop, &server->stop_async, on_wake);
    if (rc != 0) {
      if (server->owned_loop) uv_loop_close(loop);
      delete server;
      return rc;
    }
    server->stop_async.data = server;
    rc = server->mailbox.init(loop, on_wake, server);
    if (rc != 0) {
      bool owned = server->owned_loop != nullptr;
      uv_close(reinterpret_cast<uv_handle_t *>(&server->stop_async),
               [](uv_handle_t *h) noexcept {
                 auto *dead = static_cast<lariat_server *>(h->data);
                 if (!dead->owned_loop) delete dead;
               });
      if (owned) {
        uv_run(loop, UV_RUN_NOWAIT);  // our own loop: the close completes
        uv_loop_close(loop);
        delete server;
      }
      return rc;
    }
    uv_timer_init(loop, &server->timer);  // cannot fail
    server->timer.data = server;
    server->stop_async.data = server;
    server->stop_async_open = true;
    // Only a stop request may wake it; it must not keep the loop alive.
    uv_unref(reinterpret_cast<uv_handle_t *>(&server->stop_async));
    server->enter_loop_thread();
    server->topics.subs_of = [](lariat_conn *c) { return c->subscriptions(true); };
    server->open_handles = 2;  // timer, mailbox
    *out = server;
    return 0;
  });
}

void stop_loop(lariat_server *server);
void del_loop(lariat_server *server);

}  // namespace

extern "C" {

LARIAT_EXTERN int lariat_server_new(lariat_server **out, uv_loop_t *loop,
                                    const lariat_options *opts) {
  if (!out) return LARIAT_ERR_INVALID_ARGUMENT;
  *out = nullptr;
  lariat_options options;
  if (opts) options = *opts;
  unsigned threads = options.threads ? options.threads
                                     : uv_available_parallelism();
  if (threads > 255) threads = 255;  // the low byte of connection ids
  if (threads > 1 && loop) return LARIAT_ERR_INVALID_ARGUMENT;
  lariat_server *primary = nullptr;
  int rc = new_loop(&primary, loop, options);
  if (rc != 0) return rc;
  rc = lariat::detail::guard_errors([&]() -> int {
    primary->loops.reserve(threads);
    primary->threads.reserve(threads);
    primary->loops.push_back(primary);
    for (unsigned i = 1; i < threads; ++i) {
      lariat_server *sibling = nullptr;
      int r = new_loop(&sibling, nullptr, options);
      if (r != 0) return r;
      sibling->primary = primary;
      sibling->index = i;
      primary->loops.push_back(sibling);
    }
    return 0;
  });
  primary->loops_running.store(static_cast<unsigned>(primary->loops.size()));
  if (rc != 0) {
    lariat_server_del(primary);
    return rc;
  }
  if (options.ignore_sigpipe) {
    struct sigaction current;
    if (sigaction(SIGPIPE, nullptr, &current) == 0 &&
        current.sa_handler == SIG_DFL)
      signal(SIGPIPE, SIG_IGN);
  }
  *out = primary;
  return 0;
}

}  // extern "C"

namespace {

int stop_async_loop(lariat_server *server) {
  if (server->stop_requested.load()) return LARIAT_ERR_STOPPED;
  // The cutoff before the flag: a wake-up that sees the flag sees it too.
  server->stop_cutoff.store(server->mailbox.posted());
  if (server->stop_requested.exchange(true)) return LARIAT_ERR_STOPPED;
  uv_async_send(&server->stop_async);
  return 0;
}

void stop_loop(lariat_server *server) {
  lariat::detail::guard_errors([&]() -> int {
    if (server->stopping) return 0;
    server->stop_requested.store(true);
    server->stopping = true;
    for (uv_tcp_t *listener : server->listeners)
      uv_close(reinterpret_cast<uv_handle_t *>(listener), on_listener_closed);
    server->listeners.clear();
    // Without allocating (a copy of the ids could fail and leave the rest
    // running): stop() may end its own connection and erase it from the
    // table, never another (TCP closes complete in later callbacks),
    // which for_each allows. One that runs out of memory is dropped; the
    // others still stop.
    server->conns.for_each([](lariat_conn *conn) {
      lariat::detail::guard_callback(conn, [&] { conn->stop(); });
    });
    // Clients without a connection end now (terminate: shutdown); the
    // others end with their connection. Closing one erases it from the
    // map, so a copy of the ids is walked (an allocation that fails
    // leaves the walk to the sessions' own ends).
    std::vector<lariat::detail::ClientSession *> sessions;
    try {
      for (auto &entry : server->clients) sessions.push_back(entry.second);
    } catch (...) {
    }
    for (lariat::detail::ClientSession *s : sessions)
      lariat::detail::guard_callback(nullptr, [&] { s->close(true); });
    server->finish_stop_if_idle();
    return 0;
  });
}

// Runs the (stopped) loop on this thread until its handles are closed,
// then frees it.
void del_loop(lariat_server *server) {
  server->enter_loop_thread();  // the loop is not running (documented)
  stop_loop(server);
  while (server->open_handles > 0) uv_run(server->loop, UV_RUN_ONCE);
  if (server->stop_async_open) {
    server->stop_async_open = false;
    ++server->open_handles;
    uv_close(reinterpret_cast<uv_handle_t *>(&server->stop_async),
             [](uv_handle_t *h) {
               --static_cast<lariat_server *>(h->data)->open_handles;
             });
    while (server->open_handles > 0) uv_run(server->loop, UV_RUN_ONCE);
  }
  if (server->owned_loop) {
    uv_run(server->loop, UV_RUN_NOWAIT);
    // Handles the user put on our loop (lariat_server_loop()) and did not
    // close keep it busy; libuv still uses its memory, so it is leaked on
    // purpose rather than freed under them.
    if (uv_loop_close(server->loop) == UV_EBUSY) server->owned_loop.release();
  }
  lariat::detail::bridge_free(server);
  delete server;
}

void run_loop_thread(void *arg) {
  auto *server = static_cast<lariat_server *>(arg);
  server->enter_loop_thread();
  uv_run(server->loop, UV_RUN_DEFAULT);
}

}  // namespace

extern "C" {

LARIAT_EXTERN int lariat_server_stop(lariat_server *server) {
  if (!server) return LARIAT_ERR_INVALID_ARGUMENT;
  lariat_server *here = server->primary->current_loop();
  if (!here) return LARIAT_ERR_INVALID_STATE;
  // This loop stops now; the others through their own stop request.
  for (lariat_server *l : server->primary->loops) {
    if (l == here || !server->primary->started.load())
      stop_loop(l);  // before run() every loop is this thread's
    else
      stop_async_loop(l);
  }
  return 0;
}

LARIAT_EXTERN void lariat_server_del(lariat_server *server) {
  if (!server) return;
  lariat_server *primary = server->primary;
  // Siblings first: the primary owns the list.
  for (size_t i = primary->loops.size(); i-- > 1;) del_loop(primary->loops[i]);
  del_loop(primary);
}

LARIAT_EXTERN int lariat_server_route(lariat_server *server, const char *path,
                                      const lariat_handler *handler,
                                      void *handler_data) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!server || !path || !handler || handler->size == 0)
      return LARIAT_ERR_INVALID_ARGUMENT;
    if (!server->on_loop_thread() || (server->multi() && server->started.load()))
      return LARIAT_ERR_INVALID_STATE;  // several loops: before run() only
    std::string_view p(path);
    bool prefix = p.size() >= 2 && p.substr(p.size() - 2) == "/*";
    std::string_view stem = prefix ? p.substr(0, p.size() - 1) : p;
    bool taken = false;
    for (const auto &r : server->prefix_routes) taken |= r.first == stem;
    if (prefix ? taken : server->routes.count(p) != 0)
      return LARIAT_ERR_EXISTS;
    lariat::detail::Route route;
    std::memset(&route.handler, 0, sizeof(route.handler));
    std::memcpy(&route.handler, handler,
                handler->size < sizeof(lariat_handler) ? handler->size
                                                       : sizeof(lariat_handler));
    route.handler.size = sizeof(lariat_handler);
    route.handler_data = handler_data;
    // Every loop has its own copy: nothing is shared while they run.
    for (lariat_server *l : server->primary->loops) {
      if (!prefix) {
        l->routes.emplace(path, route);
        continue;
      }
      auto &list = l->prefix_routes;
      auto at = list.begin();
      while (at != list.end() && at->first.size() >= stem.size()) ++at;
      list.emplace(at, std::string(stem), route);
    }
    return 0;
  });
}

}  // extern "C"

namespace {

// One listener on |server|'s loop. With |reuseport|, SO_REUSEPORT is set
// before bind so that every loop of the server listens on the port and
// the kernel spreads connections over them.
int listen_loop(lariat_server *server, const sockaddr *addr, bool reuseport,
                lariat_tls *tls) {
  auto *entry = new (std::nothrow) Listener;
  if (!entry) return LARIAT_ERR_NOMEM;
  uv_tcp_t *listener = &entry->tcp;
  int rc = uv_tcp_init_ex(server->loop, listener, addr->sa_family);
  if (rc != 0) {
    delete entry;
    return rc;
  }
  if (tls) tls->retain();
  entry->tls = tls;
  listener->data = server;
  ++server->open_handles;
  if (reuseport) {
    uv_os_fd_t fd;
    int one = 1;
    rc = uv_fileno(reinterpret_cast<uv_handle_t *>(listener), &fd);
    if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one))
      rc = uv_translate_sys_error(errno);
  }
  if (rc == 0) rc = uv_tcp_bind(listener, addr, 0);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t *>(listener), 511, on_connection);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t *>(listener), on_listener_closed);
    return rc;
  }
  server->listeners.push_back(listener);
  return 0;
}

int bound_port(uv_tcp_t *listener) {
  sockaddr_storage addr;
  int len = sizeof(addr);
  int rc = uv_tcp_getsockname(listener, reinterpret_cast<sockaddr *>(&addr), &len);
  if (rc != 0) return rc;
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<sockaddr_in6 *>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in *>(&addr)->sin_port);
}

void set_port(sockaddr_storage *addr, int port) {
  if (addr->ss_family == AF_INET6)
    reinterpret_cast<sockaddr_in6 *>(addr)->sin6_port = htons(static_cast<uint16_t>(port));
  else
    reinterpret_cast<sockaddr_in *>(addr)->sin_port = htons(static_cast<uint16_t>(port));
}

// Whether another socket holds the port: SO_REUSEPORT would let a second
// process (of the same user) share it silently, so a plain bind is tried
// first and must succeed.
int port_free(const sockaddr_storage &addr) {
  uv_os_sock_t fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as libuv
  socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6)
                                             : sizeof(sockaddr_in);
  int rc = bind(fd, reinterpret_cast<const sockaddr *>(&addr), len) == 0
               ? 0
               : uv_translate_sys_error(errno);
  ::close(fd);
  return rc;
}

}  // namespace

extern "C" {

}  // extern "C"

namespace {

int listen_on(lariat_server *server, const char *host, int port,
              lariat_tls *tls) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!server || !host || port < 0 || port > 65535)
      return LARIAT_ERR_INVALID_ARGUMENT;
    if (!server->on_loop_thread() || (server->multi() && server->started.load()))
      return LARIAT_ERR_INVALID_STATE;  // several loops: before run() only
    if (server->stopping) return LARIAT_ERR_STOPPED;
    sockaddr_storage addr;
    if (parse_host(host, port, &addr) != 0) return LARIAT_ERR_INVALID_ARGUMENT;
    if (!server->multi())
      return listen_loop(server, reinterpret_cast<sockaddr *>(&addr), false,
                         tls);
    if (port != 0) {
      int rc = port_free(addr);
      if (rc != 0) return rc;
    }
    for (lariat_server *l : server->loops) {
      int rc = listen_loop(l, reinterpret_cast<sockaddr *>(&addr), true, tls);
      if (rc != 0) return rc;  // listeners made so far close with the server
      if (port == 0) {
        port = bound_port(l->listeners.back());
        if (port < 0) return port;
        set_port(&addr, port);
      }
    }
    return 0;
  });
}

}  // namespace

extern "C" {

LARIAT_EXTERN int lariat_server_listen(lariat_server *server, const char *host,
                                       int port) {
  return listen_on(server, host, port, nullptr);
}

LARIAT_EXTERN int lariat_server_listen_tls(lariat_server *server,
                                           const char *host, int port,
                                           lariat_tls *tls) {
  if (!tls) return LARIAT_ERR_INVALID_ARGUMENT;
  if (!tls->certs()) return LARIAT_ERR_TLS;  // nothing to serve with
  return listen_on(server, host, port, tls);
}

LARIAT_EXTERN int lariat_server_port(const lariat_server *server) {
  if (!server || server->listeners.empty()) return LARIAT_ERR_INVALID_STATE;
  for (uv_tcp_t *l : server->listeners)
    if (!listener_of(reinterpret_cast<uv_stream_t *>(l))->tls)
      return bound_port(l);
  return bound_port(server->listeners.front());
}

LARIAT_EXTERN int lariat_server_tls_port(const lariat_server *server) {
  if (!server) return LARIAT_ERR_INVALID_STATE;
  for (uv_tcp_t *l : server->listeners)
    if (listener_of(reinterpret_cast<uv_stream_t *>(l))->tls)
      return bound_port(l);
  return LARIAT_ERR_INVALID_STATE;
}

LARIAT_EXTERN uv_loop_t *lariat_server_loop(const lariat_server *server) {
  return server ? server->loop : nullptr;
}

LARIAT_EXTERN int lariat_server_run(lariat_server *server) {
  if (!server) return LARIAT_ERR_INVALID_ARGUMENT;
  lariat_server *primary = server->primary;
  // One loop may run again (a caller's uv_run style); several are started
  // once.
  if (primary->started.exchange(true) && primary->multi())
    return LARIAT_ERR_INVALID_STATE;
  // Every other loop on a thread of its own; the primary on this one.
  for (size_t i = 1; i < primary->loops.size(); ++i) {
    uv_thread_t t;
    if (uv_thread_create(&t, run_loop_thread, primary->loops[i]) != 0) {
      // Not enough threads: that loop runs here after the others stop.
      stop_async_loop(primary->loops[i]);
      continue;
    }
    primary->threads.push_back(t);
  }
  primary->enter_loop_thread();
  uv_run(primary->loop, UV_RUN_DEFAULT);
  for (uv_thread_t &t : primary->threads) uv_thread_join(&t);
  return 0;
}

LARIAT_EXTERN int lariat_server_on_stopped(lariat_server *server,
                                           void (*cb)(lariat_server *, void *),
                                           void *data) {
  if (!server) return LARIAT_ERR_INVALID_ARGUMENT;
  if (!server->on_loop_thread()) return LARIAT_ERR_INVALID_STATE;
  server->on_stopped = cb;
  server->on_stopped_data = data;
  return 0;
}

LARIAT_EXTERN size_t lariat_server_connection_count(const lariat_server *server) {
  return server ? server->primary->connection_total.load() : 0;
}

// Async-signal-safe: atomics and uv_async_send(), nothing else.
LARIAT_EXTERN int lariat_server_stop_async(lariat_server *server) {
  if (!server) return LARIAT_ERR_INVALID_ARGUMENT;
  int rc = LARIAT_ERR_STOPPED;
  for (lariat_server *l : server->primary->loops)
    if (stop_async_loop(l) == 0) rc = 0;
  return rc;
}

LARIAT_EXTERN int lariat_post(lariat_server *server, lariat_conn_id id,
                              void *msg, void (*free_fn)(void *msg)) {
  return lariat::detail::guard_errors([&]() -> int {
    Letter letter = {id, msg, free_fn};
    if (!server || id == 0) {
      letter.discard();
      return LARIAT_ERR_INVALID_ARGUMENT;
    }
    // An id no loop of this server makes goes to the first: it is freed
    // there like any letter whose connection is gone.
    lariat_server *target = server->loop_of(id);
    if (!target) target = server->primary;
    return target->mailbox.post(letter);
  });
}

}  // extern "C"
