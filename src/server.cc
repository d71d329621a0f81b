#include "server.h"

#include <csignal>
#include <cstring>
#include <new>

#include "connection.h"
#include "guard.h"
#include "tcp_transport.h"

using lariat::detail::Letter;
using lariat::detail::TcpTransport;

namespace {
// Connection ids start at 1, so id 0 in the mailbox means "stop".
constexpr lariat_conn_id kStopLetter = 0;
}  // namespace

// ------------------------------------------------------------- internals


const lariat::detail::Route *lariat_server::find_route(
    std::string_view path) const {
  auto it = routes.find(path);
  if (it == routes.end()) it = routes.find(std::string_view("*"));
  return it == routes.end() ? nullptr : &it->second;
}

void lariat_server::schedule(uint64_t deadline, lariat_conn_id id) {
  timers.push(deadline, id);
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

// Pushes below follow pops, so the heap never grows here (and never
// throws): only a connection's own work can, and that drops it alone.
void lariat_server::on_timer() {
  timer_armed_at = UINT64_MAX;
  uint64_t now_ms = now();
  while (!timers.empty() && timers.top().deadline <= now_ms) {
    lariat_conn_id id = timers.top().id;
    timers.pop();
    auto it = conns.find(id);
    if (it == conns.end()) continue;
    lariat_conn *conn = it->second;
    uint64_t real = conn->deadline();
    if (real <= now_ms)
      lariat::detail::guard_callback(conn, [&] { conn->on_deadline(); });
    else if (real != UINT64_MAX)
      timers.push(real, id);
  }
  if (!timers.empty()) {
    auto top = timers.top();
    timers.pop();
    schedule(top.deadline, top.id);
  }
}

lariat_conn *lariat_server::accept(
    std::unique_ptr<lariat::detail::Transport> transport) {
  lariat_conn_id id = next_id++;
  lariat::detail::Transport *raw = transport.release();
  auto *conn = new (std::nothrow)
      lariat_conn(this, id, std::unique_ptr<lariat::detail::Transport>(raw));
  if (!conn) {
    raw->close();  // with no connection attached, it frees itself
    return nullptr;
  }
  try {
    conns.emplace(id, conn);
    schedule(conn->deadline(), id);
  } catch (...) {
    conn->abandon();  // closes the transport; the connection then goes
    return nullptr;
  }
  return conn;
}

void lariat_server::forget(lariat_conn *conn) {
  conns.erase(conn->id);
  finish_stop_if_idle();
}

void lariat_server::deliver_mail() {
  std::vector<Letter> letters;
  mailbox.take(&letters);  // a swap: no allocation
  for (const Letter &letter : letters) {
    if (letter.conn_id == kStopLetter) {
      lariat_server_stop(this);
      continue;
    }
    auto it = conns.find(letter.conn_id);
    if (it == conns.end()) {
      letter.discard();
      continue;
    }
    lariat_conn *conn = it->second;
    lariat::detail::guard_callback(conn, [&] { conn->deliver_info(letter); });
  }
}

namespace {

void on_handle_closed(uv_handle_t *h) noexcept {
  auto *server = static_cast<lariat_server *>(h->data);
  --server->open_handles;
}

void on_listener_closed(uv_handle_t *h) noexcept {
  auto *server = static_cast<lariat_server *>(h->data);
  delete reinterpret_cast<uv_tcp_t *>(h);
  --server->open_handles;
}

void on_connection(uv_stream_t *listener, int status) noexcept;

void on_spare_closed(uv_handle_t *h) noexcept {
  auto *server = static_cast<lariat_server *>(h->data);
  --server->open_handles;
  server->spare_busy = false;
  if (!server->spare_retry) return;
  // A listener waited for the spare: each gets another try (one with
  // nothing pending just finds nothing to accept).
  server->spare_retry = false;
  for (size_t i = 0; i < server->listeners.size(); ++i)
    on_connection(reinterpret_cast<uv_stream_t *>(server->listeners[i]), 0);
}

// No memory for a connection: the client is accepted and closed at once,
// so the listener goes on listening.
void turn_away(lariat_server *server, uv_stream_t *listener) {
  if (server->spare_busy) {
    server->spare_retry = true;  // accepted when the spare is free again
    return;
  }
  if (uv_tcp_init(server->loop, &server->spare) != 0) return;
  server->spare.data = server;
  server->spare_busy = true;
  ++server->open_handles;
  uv_accept(listener, reinterpret_cast<uv_stream_t *>(&server->spare));
  uv_close(reinterpret_cast<uv_handle_t *>(&server->spare), on_spare_closed);
}

// Every pending socket is accepted or turned away, whatever runs out.
void on_connection(uv_stream_t *listener, int status) noexcept {
  auto *server = static_cast<lariat_server *>(listener->data);
  if (status < 0 || server->stopping) return;
  auto *transport = new (std::nothrow) TcpTransport(server);
  if (!transport) {
    turn_away(server, listener);
    return;
  }
  if (transport->accept(listener) != 0) return;  // it cleans up after itself
  // From here the socket is ours: on failure, closing it turns it away.
  lariat_conn *conn =
      server->accept(std::unique_ptr<lariat::detail::Transport>(transport));
  if (!conn) return;
  if (transport->start() != 0) {
    conn->abandon();
    return;
  }
  if (server->conns.size() > server->options.max_connections)
    lariat::detail::guard_callback(conn, [&] { conn->refuse_busy(); });
}

}  // namespace

// Once stopping and every connection is gone, the server's own handles go.
void lariat_server::finish_stop_if_idle() {
  if (!stopping || handles_closed || !conns.empty()) return;
  handles_closed = true;
  uv_timer_stop(&timer);
  uv_close(reinterpret_cast<uv_handle_t *>(&timer), on_handle_closed);
  mailbox.close(on_handle_closed);
}

// ------------------------------------------------------------------- API

extern "C" {

LARIAT_EXTERN int lariat_server_new(lariat_server **out, uv_loop_t *loop,
                                    const lariat_options *opts) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!out) return LARIAT_ERR_INVALID_ARGUMENT;
    *out = nullptr;
    auto *server = new (std::nothrow) lariat_server();
    if (!server) return LARIAT_ERR_NOMEM;
    if (opts) server->options = *opts;
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
    if (!server->read_buffer || server->frame_writer.init() != 0) {
      if (server->owned_loop) uv_loop_close(loop);
      delete server;
      return LARIAT_ERR_NOMEM;
    }
    // The one handle whose creation can fail comes first: on failure no
    // handle of ours is on the loop, so there is nothing to close and no
    // reason to run a loop that may be the caller's.
    rc = server->mailbox.init(
        loop,
        [](uv_async_t *a) noexcept {
          static_cast<lariat_server *>(a->data)->deliver_mail();
        },
        server);
    if (rc != 0) {
      if (server->owned_loop) uv_loop_close(loop);
      delete server;
      return rc;
    }
    uv_timer_init(loop, &server->timer);  // cannot fail
    server->timer.data = server;
    server->open_handles = 2;  // timer, mailbox
    if (server->options.ignore_sigpipe) {
      struct sigaction current;
      if (sigaction(SIGPIPE, nullptr, &current) == 0 &&
          current.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    }
    *out = server;
    return 0;
  });
}

LARIAT_EXTERN int lariat_server_stop(lariat_server *server) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!server) return LARIAT_ERR_INVALID_ARGUMENT;
    if (server->stopping) return 0;
    server->stopping = true;
    for (uv_tcp_t *listener : server->listeners)
      uv_close(reinterpret_cast<uv_handle_t *>(listener), on_listener_closed);
    server->listeners.clear();
    // Without allocating (a copy of the ids could fail and leave the rest
    // running): stop() may end its own connection and erase it from the
    // map, never another (TCP closes complete in later callbacks), so
    // the next entry is taken first. One that runs out of memory is
    // dropped; the others still stop.
    for (auto it = server->conns.begin(); it != server->conns.end();) {
      lariat_conn *conn = (it++)->second;
      lariat::detail::guard_callback(conn, [&] { conn->stop(); });
    }
    server->finish_stop_if_idle();
    return 0;
  });
}

LARIAT_EXTERN void lariat_server_del(lariat_server *server) {
  if (!server) return;
  lariat_server_stop(server);
  while (server->open_handles > 0) uv_run(server->loop, UV_RUN_ONCE);
  if (server->owned_loop) {
    uv_run(server->loop, UV_RUN_NOWAIT);
    // Handles the user put on our loop (lariat_server_loop()) and did not
    // close keep it busy; libuv still uses its memory, so it is leaked on
    // purpose rather than freed under them.
    if (uv_loop_close(server->loop) == UV_EBUSY) server->owned_loop.release();
  }
  delete server;
}

LARIAT_EXTERN int lariat_server_route(lariat_server *server, const char *path,
                                      const lariat_handler *handler,
                                      void *handler_data) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!server || !path || !handler || handler->size == 0)
      return LARIAT_ERR_INVALID_ARGUMENT;
    if (server->routes.count(std::string_view(path))) return LARIAT_ERR_EXISTS;
    lariat::detail::Route route;
    std::memset(&route.handler, 0, sizeof(route.handler));
    std::memcpy(&route.handler, handler,
                handler->size < sizeof(lariat_handler) ? handler->size
                                                       : sizeof(lariat_handler));
    route.handler.size = sizeof(lariat_handler);
    route.handler_data = handler_data;
    server->routes.emplace(path, route);
    return 0;
  });
}

LARIAT_EXTERN int lariat_server_listen(lariat_server *server, const char *host,
                                       int port) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!server || !host || port < 0 || port > 65535)
      return LARIAT_ERR_INVALID_ARGUMENT;
    if (server->stopping) return LARIAT_ERR_STOPPED;
    sockaddr_storage addr;
    int rc = std::strchr(host, ':')
                 ? uv_ip6_addr(host, port, reinterpret_cast<sockaddr_in6 *>(&addr))
                 : uv_ip4_addr(host, port, reinterpret_cast<sockaddr_in *>(&addr));
    if (rc != 0) return LARIAT_ERR_INVALID_ARGUMENT;
    auto *listener = new (std::nothrow) uv_tcp_t;
    if (!listener) return LARIAT_ERR_NOMEM;
    rc = uv_tcp_init(server->loop, listener);
    if (rc != 0) {
      delete listener;
      return rc;
    }
    listener->data = server;
    ++server->open_handles;
    rc = uv_tcp_bind(listener, reinterpret_cast<sockaddr *>(&addr), 0);
    if (rc == 0)
      rc = uv_listen(reinterpret_cast<uv_stream_t *>(listener), 511, on_connection);
    if (rc != 0) {
      uv_close(reinterpret_cast<uv_handle_t *>(listener), on_listener_closed);
      return rc;
    }
    server->listeners.push_back(listener);
    return 0;
  });
}

LARIAT_EXTERN int lariat_server_port(const lariat_server *server) {
  if (!server || server->listeners.empty()) return LARIAT_ERR_INVALID_STATE;
  sockaddr_storage addr;
  int len = sizeof(addr);
  int rc = uv_tcp_getsockname(server->listeners.front(),
                              reinterpret_cast<sockaddr *>(&addr), &len);
  if (rc != 0) return rc;
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<sockaddr_in6 *>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in *>(&addr)->sin_port);
}

LARIAT_EXTERN uv_loop_t *lariat_server_loop(const lariat_server *server) {
  return server ? server->loop : nullptr;
}

LARIAT_EXTERN int lariat_server_run(lariat_server *server) {
  if (!server) return LARIAT_ERR_INVALID_ARGUMENT;
  uv_run(server->loop, UV_RUN_DEFAULT);
  return 0;
}

LARIAT_EXTERN size_t lariat_server_connection_count(const lariat_server *server) {
  return server ? server->conns.size() : 0;
}

LARIAT_EXTERN int lariat_server_stop_async(lariat_server *server) {
  if (!server) return LARIAT_ERR_INVALID_ARGUMENT;
  return server->mailbox.post(Letter{kStopLetter, nullptr, nullptr});
}

LARIAT_EXTERN int lariat_post(lariat_server *server, lariat_conn_id id,
                              void *msg, void (*free_fn)(void *msg)) {
  return lariat::detail::guard_errors([&]() -> int {
    Letter letter = {id, msg, free_fn};
    if (!server || id == kStopLetter) {
      letter.discard();
      return LARIAT_ERR_INVALID_ARGUMENT;
    }
    return server->mailbox.post(letter);
  });
}

}  // extern "C"
