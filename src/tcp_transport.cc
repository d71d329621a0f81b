#include "tcp_transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <new>

#include "connection.h"
#include "guard.h"
#include "server.h"

namespace lariat::detail {

namespace {

constexpr int kSendFlags = MSG_NOSIGNAL | MSG_DONTWAIT;

// libuv's codes on Unix are -errno.
int last_error() { return -errno; }

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
  return -err;
}

}  // namespace

#if UINTPTR_MAX == 0xffffffffffffffffu
// An idle connection is this one allocation: at most 248 B is glibc's
// 256 B chunk on LP64 (request + 8, rounded up to 16); 8 B more is 272.
static_assert(lariat_conn::block_size<TcpTransport>() <= sizeof(uv_poll_t) + 88,
              "an idle plain connection outgrew its malloc size class");
#endif

int TcpTransport::take_accepted(uv_stream_t *listener) {
  // uv_accept() would hand this to a uv_tcp_t; libuv accepts the next one
  // once the connection callback leaves the field at -1, as uv_accept()
  // does.
  int fd = listener->accepted_fd;
  listener->accepted_fd = -1;
  return fd;
}

int TcpTransport::init(int fd) {
  lariat_conn *c = conn();
  int rc = uv_poll_init_socket(c->server()->loop, &poll_, fd);
  if (rc != 0) return rc;
  poll_.data = c;
  fd_ = fd;
  ++c->server()->open_handles;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return 0;
}

int TcpTransport::accept(uv_stream_t *listener) {
  lariat_conn *c = conn();
  int fd = take_accepted(listener);
  int rc = fd < 0 ? UV_EAGAIN : init(fd);
  if (rc != 0) {
    if (fd >= 0) ::close(fd);
    c->destroy();  // and this with it
  }
  return rc;
}

int TcpTransport::connect(const sockaddr *addr) {
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return last_error();
  int rc = init(fd);
  if (rc != 0) {
    ::close(fd);
    return rc;
  }
  socklen_t len = addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6)
                                              : sizeof(sockaddr_in);
  int r;
  do r = ::connect(fd, addr, len);
  while (r != 0 && errno == EINTR);
  // Refused at once or later, the error comes from the writable event.
  if (r != 0 && errno != EINPROGRESS) error_ = static_cast<int16_t>(last_error());
  connecting_ = true;
  update_events();
  return 0;
}

int TcpTransport::start() {
  reading_ = true;
  update_events();
  return 0;
}

void TcpTransport::update_events() {
  if (closing()) return;
  uint8_t want = (reading_ ? UV_READABLE : 0) |
                 (queued_ || error_ || connecting_ ? UV_WRITABLE : 0);
  if (want == events_) return;
  events_ = want;
  if (want)
    uv_poll_start(&poll_, want, on_io);
  else
    uv_poll_stop(&poll_);
}

void TcpTransport::on_io(uv_poll_t *h, int status, int events) noexcept {
  if (uv_is_closing(reinterpret_cast<uv_handle_t *>(h))) return;
  auto *conn = static_cast<lariat_conn *>(h->data);
  auto *self = static_cast<TcpTransport *>(conn->transport());
  if (status < 0) {
    guard_callback(conn, [&] { self->on_error(status); });
    return;
  }
  guard_callback(conn, [&] {
    if (events & UV_WRITABLE) self->on_writable();
    if ((events & (UV_READABLE | UV_DISCONNECT)) && self->reading_ &&
        !self->closing())
      self->on_readable();
  });
}

void TcpTransport::on_error(int status) {
  // POLLERR: libuv stopped watching. What arrived before the error is
  // read first, as from a uv_tcp_t, then recv() reports the error itself.
  events_ = 0;
  lariat_server *server = conn()->server();
  int err = 0;
  while (reading_) {
    ssize_t n = ::recv(fd_, server->read_buffer.get(), server->read_buffer_size, 0);
    if (n > 0) {
      received(server->read_buffer.get(), static_cast<size_t>(n));
      if (closing()) return;
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      err = last_error();
    break;
  }
  if (err == 0) err = socket_error(fd_);
  conn()->on_transport_error(err != 0 ? err : status);
}

void TcpTransport::on_writable() {
  if (error_) {
    int err = error_;
    error_ = 0;
    connecting_ = false;
    conn()->on_transport_error(err);
    return;
  }
  if (connecting_) {
    connecting_ = false;
    int err = socket_error(fd_);
    if (err != 0) {
      conn()->on_transport_error(err);
      return;
    }
    reading_ = true;
    update_events();
    conn()->on_connected();
    if (!closing()) connected();
    return;
  }
  WriteQueue *queued = queue();
  if (!queued) return;
  WriteQueue &q = *queued;
  ssize_t r = send_some(q.pending.data() + q.off, q.pending.size() - q.off);
  if (r < 0) {
    update_events();
    return;
  }
  q.off += static_cast<size_t>(r);
  if (q.off == q.pending.size()) {
    bool fin = q.fin_wanted;
    drop_queue();  // nothing waits: give the queue back
    if (fin) send_fin();
    update_events();
  } else if (q.off > q.pending.size() / 2) {
    q.pending.erase(0, q.off);  // amortised: the rest is the smaller half
    q.off = 0;
  }
  if (r > 0) conn()->on_output_progress();
}

void TcpTransport::on_readable() {
  lariat_server *server = conn()->server();
  // A read that fills the buffer is followed by another at once, as libuv
  // does (up to 32): one epoll_wait per 64 KiB was 6x the waits of a
  // uv_tcp_t at 1 MiB messages.
  for (int reads = 0; reads < 32 && reading_ && !closing(); ++reads) {
    ssize_t n;
    do n = ::recv(fd_, server->read_buffer.get(), server->read_buffer_size, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
      received(server->read_buffer.get(), static_cast<size_t>(n));
      if (static_cast<size_t>(n) < server->read_buffer_size) return;
    } else if (n == 0) {
      // Level-triggered: a socket at its end stays readable. Reading again
      // (set_reading) reports the end again, as libuv did.
      reading_ = false;
      update_events();
      ended();
      return;
    } else {
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        conn()->on_transport_error(last_error());
      return;
    }
  }
}

void TcpTransport::received(uint8_t *p, size_t n) { conn()->on_read(p, n); }

void TcpTransport::ended() { conn()->on_eof(); }

void TcpTransport::connected() { conn()->on_channel_ready(); }

int TcpTransport::set_reading(bool on) {
  if (closing()) return 0;
  reading_ = on;
  update_events();
  return 0;
}

size_t TcpTransport::buffered() const {
  WriteQueue *q = queue();
  return q ? q->pending.size() - q->off : 0;
}

WriteQueue *TcpTransport::queue() const {
  if (!queued_) return nullptr;
  auto it = conn()->server()->write_queues.find(this);
  return it != conn()->server()->write_queues.end() ? &it->second : nullptr;
}

WriteQueue &TcpTransport::make_queue() {
  WriteQueue &q = conn()->server()->write_queues[this];  // or the one there
  queued_ = true;
  return q;
}

void TcpTransport::drop_queue() {
  if (!queued_) return;
  conn()->server()->write_queues.erase(this);
  queued_ = false;
}

ssize_t TcpTransport::send_some(const void *p, size_t n) {
  ssize_t r;
  do r = ::send(fd_, p, n, kSendFlags);
  while (r < 0 && errno == EINTR);
  if (r >= 0) return r;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
  error_ = static_cast<int16_t>(last_error());
  return -1;
}

void TcpTransport::write(const uint8_t *p, size_t n) {
  if (closing() || n == 0 || error_) return;
  if (!queued_) {
    ssize_t r = send_some(p, n);
    if (r < 0) {
      update_events();  // the error is reported from the writable event
      return;
    }
    p += r;
    n -= static_cast<size_t>(r);
    if (n == 0) return;
  }
  try {
    WriteQueue &q = make_queue();
    q.pending.append(reinterpret_cast<const char *>(p), n);
  } catch (const std::bad_alloc &) {
    fail_nomem();
    return;
  }
  update_events();
}

void TcpTransport::fail_nomem() {
  drop_queue();
  conn()->on_transport_error(UV_ENOMEM);
}

void TcpTransport::write2(const uint8_t *a, size_t an, const uint8_t *b,
                          size_t bn) {
  if (closing() || error_) return;
  if (!queued_) {
    iovec iov[2] = {{const_cast<uint8_t *>(a), an},
                    {const_cast<uint8_t *>(b), bn}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    ssize_t r;
    do r = ::sendmsg(fd_, &msg, kSendFlags);
    while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      error_ = static_cast<int16_t>(last_error());
      update_events();
      return;
    }
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

void TcpTransport::shutdown() {
  if (closing()) return;
  if (WriteQueue *q = queue())
    q->fin_wanted = true;
  else
    send_fin();
}

// A second FIN changes nothing: no flag of our own.
void TcpTransport::send_fin() { ::shutdown(fd_, SHUT_WR); }

void TcpTransport::close() {
  if (closing()) return;
  // uv_close() stops the watch; the socket is ours to close.
  uv_close(reinterpret_cast<uv_handle_t *>(&poll_), on_closed);
  ::close(fd_);
  fd_ = -1;
  drop_queue();
}

void TcpTransport::on_closed(uv_handle_t *h) noexcept {
  auto *conn = static_cast<lariat_conn *>(h->data);
  lariat_server *server = conn->server();
  server->handle_closed();
  conn->on_transport_closed();  // frees the connection, and this
  server->finish_stop_if_idle();
}

int TcpTransport::peer(char *buf, size_t size, int *port) const {
  sockaddr_storage addr;
  socklen_t len = sizeof(addr);
  if (getpeername(fd_, reinterpret_cast<sockaddr *>(&addr), &len) != 0)
    return last_error();
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
