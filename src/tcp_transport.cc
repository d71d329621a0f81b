#include "tcp_transport.h"

#include <new>

#include "connection.h"
#include "guard.h"
#include "server.h"

namespace lariat::detail {

int TcpTransport::accept(uv_stream_t *listener) {
  lariat_conn *c = conn();
  int rc = uv_tcp_init(c->server->loop, &tcp_);
  if (rc != 0) {
    c->destroy();  // and this with it
    return rc;
  }
  tcp_.data = c;
  ++c->server->open_handles;
  rc = uv_accept(listener, stream());
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t *>(&tcp_), on_closed);
    return rc;
  }
  uv_tcp_nodelay(&tcp_, 1);
  return 0;
}

int TcpTransport::connect(const sockaddr *addr) {
  lariat_conn *c = conn();
  int rc = uv_tcp_init(c->server->loop, &tcp_);
  if (rc != 0) return rc;
  tcp_.data = c;
  ++c->server->open_handles;
  auto *req = new (std::nothrow) uv_connect_t;
  rc = req ? uv_tcp_connect(req, &tcp_, addr, on_connect) : UV_ENOMEM;
  if (rc != 0) {
    delete req;
    guard_callback(c, [&] { c->on_transport_error(rc); });
  }
  return 0;
}

void TcpTransport::on_connect(uv_connect_t *req, int status) noexcept {
  auto *h = reinterpret_cast<uv_handle_t *>(req->handle);
  delete req;
  if (status == UV_ECANCELED || uv_is_closing(h)) return;  // closing
  auto *conn = static_cast<lariat_conn *>(h->data);
  auto *self = static_cast<TcpTransport *>(conn->transport());
  guard_callback(conn, [&] {
    if (status < 0) {
      conn->on_transport_error(status);
      return;
    }
    uv_tcp_nodelay(&self->tcp_, 1);
    int rc = self->start();
    if (rc != 0) {
      conn->on_transport_error(rc);
      return;
    }
    conn->on_connected();
    if (!self->closing()) self->connected();
  });
}

int TcpTransport::start() {
  return uv_read_start(stream(), on_alloc, on_read);
}

void TcpTransport::on_alloc(uv_handle_t *h, size_t, uv_buf_t *buf) noexcept {
  lariat_server *server = static_cast<lariat_conn *>(h->data)->server;
  buf->base = reinterpret_cast<char *>(server->read_buffer.get());
  buf->len = server->read_buffer_size;
}

void TcpTransport::on_read(uv_stream_t *s, ssize_t nread,
                           const uv_buf_t *buf) noexcept {
  if (uv_is_closing(reinterpret_cast<uv_handle_t *>(s))) return;
  auto *conn = static_cast<lariat_conn *>(s->data);
  auto *self = static_cast<TcpTransport *>(conn->transport());
  guard_callback(conn, [&] {
    if (nread > 0)
      self->received(reinterpret_cast<uint8_t *>(buf->base),
                     static_cast<size_t>(nread));
    else if (nread == UV_EOF)
      self->ended();
    else if (nread < 0)
      conn->on_transport_error(static_cast<int>(nread));
  });
}

void TcpTransport::received(uint8_t *p, size_t n) { conn()->on_read(p, n); }

void TcpTransport::ended() { conn()->on_eof(); }

void TcpTransport::connected() { conn()->on_channel_ready(); }

int TcpTransport::set_reading(bool on) {
  if (closing()) return 0;
  return on ? uv_read_start(stream(), on_alloc, on_read) : uv_read_stop(stream());
}

size_t TcpTransport::buffered() const {
  return queue_ ? queue_->inflight.size() + queue_->pending.size() : 0;
}

void TcpTransport::write(const uint8_t *p, size_t n) {
  if (closing() || n == 0) return;
  if (!queue_ || (!queue_->writing && queue_->pending.empty())) {
    uv_buf_t buf = to_uv_buf(p, n);
    int r = uv_try_write(stream(), &buf, 1);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      if (n == 0) return;
    }
    // Other errors surface from the uv_write below, through on_written.
  }
  try {
    if (!queue_) {
      queue_.reset(new WriteQueue);
      queue_->req.data = conn();
    }
    queue_->pending.append(reinterpret_cast<const char *>(p), n);
  } catch (const std::bad_alloc &) {
    fail_nomem();
    return;
  }
  start_write();
}

void TcpTransport::fail_nomem() {
  if (queue_ && !queue_->writing) queue_.reset();
  conn()->on_transport_error(UV_ENOMEM);
}

void TcpTransport::write2(const uint8_t *a, size_t an, const uint8_t *b,
                          size_t bn) {
  if (closing()) return;
  if (!queue_) {
    uv_buf_t bufs[2] = {to_uv_buf(a, an), to_uv_buf(b, bn)};
    int r = uv_try_write(stream(), bufs, 2);
    size_t sent = r > 0 ? static_cast<size_t>(r) : 0;
    if (sent >= an) {
      write(b + (sent - an), bn - (sent - an));  // queues what is left
      return;
    }
    a += sent;
    an -= sent;
  }
  write(a, an);
  write(b, bn);
}

void TcpTransport::start_write() {
  if (closing()) return;
  if (!queue_ || queue_->pending.empty()) {
    if (!queue_ || !queue_->writing) {
      bool fin = queue_ && queue_->fin_wanted;
      queue_.reset();  // nothing waits: give the queue back
      if (fin) send_fin();
    }
    return;
  }
  if (queue_->writing) return;
  queue_->inflight.swap(queue_->pending);
  queue_->pending.clear();
  uv_buf_t buf = to_uv_buf(queue_->inflight.data(), queue_->inflight.size());
  int rc = uv_write(&queue_->req, stream(), &buf, 1, on_written);
  if (rc != 0) {
    queue_->inflight.clear();
    conn()->on_transport_error(rc);
    return;
  }
  queue_->writing = true;
}

void TcpTransport::on_written(uv_write_t *req, int status) noexcept {
  auto *conn = static_cast<lariat_conn *>(req->data);
  auto *self = static_cast<TcpTransport *>(conn->transport());
  self->queue_->writing = false;
  std::string().swap(self->queue_->inflight);
  if (self->closing()) return;
  guard_callback(conn, [&] {
    if (status < 0) {
      conn->on_transport_error(status);
    } else {
      self->start_write();
      conn->on_output_progress();
    }
  });
}

void TcpTransport::shutdown() {
  if (closing()) return;
  if (queue_)
    queue_->fin_wanted = true;
  else
    send_fin();
}

// A second FIN is refused by libuv (UV_ENOTCONN): no flag of our own.
void TcpTransport::send_fin() {
  auto *req = new (std::nothrow) uv_shutdown_t;
  if (!req) return;  // no FIN: the close that follows ends the connection
  if (uv_shutdown(req, stream(), on_shutdown) != 0) delete req;
}

void TcpTransport::on_shutdown(uv_shutdown_t *req, int) noexcept {
  delete req;
}

void TcpTransport::close() {
  if (closing()) return;
  uv_close(reinterpret_cast<uv_handle_t *>(&tcp_), on_closed);
}

void TcpTransport::on_closed(uv_handle_t *h) noexcept {
  auto *conn = static_cast<lariat_conn *>(h->data);
  lariat_server *server = conn->server;
  server->handle_closed();
  conn->on_transport_closed();  // frees the connection, and this
  server->finish_stop_if_idle();
}

int TcpTransport::peer(char *buf, size_t size, int *port) const {
  sockaddr_storage addr;
  int len = sizeof(addr);
  int rc = uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr *>(&addr), &len);
  if (rc != 0) return rc;
  if (addr.ss_family == AF_INET6) {
    auto *a = reinterpret_cast<sockaddr_in6 *>(&addr);
    if (port) *port = ntohs(a->sin6_port);
    return uv_ip6_name(a, buf, size);
  }
  auto *a = reinterpret_cast<sockaddr_in *>(&addr);
  if (port) *port = ntohs(a->sin_port);
  return uv_ip4_name(a, buf, size);
}

}  // namespace lariat::detail
