/* raw_echo: a raw TCP echo server (the physical limit for the same traffic).
 * Single-threaded epoll, edge-triggered; bytes are written back as soon as
 * they arrive, from one shared 256 KiB read buffer. Only when the socket
 * does not take everything is the rest kept per connection (and reading
 * from that connection paused until it drains), so an idle connection
 * costs no buffer.
 *   usage: raw_echo [--port N] [--host 127.0.0.1]   (SIGINT/SIGTERM stop) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct conn {
  int fd;
  int eof;        /* peer shut down its side */
  char *pend;     /* unwritten echo bytes */
  size_t off, len;
} conn;

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static int epfd;
static char rbuf[256 * 1024];

static void conn_close(conn *c) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->pend);
  free(c);
}

/* Writes what is pending; returns 0 when all is out, 1 if the socket is
 * full, -1 on error. */
static int flush_pending(conn *c) {
  while (c->off < c->len) {
    ssize_t n = send(c->fd, c->pend + c->off, c->len - c->off, MSG_NOSIGNAL);
    if (n > 0) { c->off += (size_t)n; continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
    return -1;
  }
  free(c->pend);
  c->pend = NULL;
  c->off = c->len = 0;
  return 0;
}

/* Echoes until the socket has nothing to read or cannot take more. A short
 * read means the socket is drained (edge-triggered epoll reports any later
 * data), unless the event also carried the peer's FIN. */
static int pump(conn *c, int to_eagain) {
  if (c->pend) {
    int r = flush_pending(c);
    if (r) return r < 0 ? -1 : 0;
  }
  while (!c->eof) {
    ssize_t n = read(c->fd, rbuf, sizeof rbuf);
    if (n == 0) { c->eof = 1; break; }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -1;
    }
    int drained = (size_t)n < sizeof rbuf && !to_eagain;
    size_t done = 0;
    while (done < (size_t)n) {
      ssize_t w = send(c->fd, rbuf + done, (size_t)n - done, MSG_NOSIGNAL);
      if (w > 0) { done += (size_t)w; continue; }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return -1;
    }
    if (done < (size_t)n) { /* keep the rest; wait for EPOLLOUT */
      c->len = (size_t)n - done;
      c->off = 0;
      c->pend = malloc(c->len);
      if (!c->pend) return -1;
      memcpy(c->pend, rbuf + done, c->len);
      return 0;
    }
    if (drained) return 0; /* short read: nothing left; ET signals more */
  }
  /* peer finished sending and everything is echoed: close */
  return c->pend ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 9000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
    else { fprintf(stderr, "usage: %s [--port N] [--host ADDR]\n", argv[0]); return 2; }
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) { fprintf(stderr, "bad host %s\n", host); return 2; }
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
    perror("raw_echo: bind/listen");
    return 1;
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
  printf("raw_echo listening on %s:%d\n", host, port);
  fflush(stdout);

  struct epoll_event evs[512];
  while (!stop) {
    int n = epoll_wait(epfd, evs, 512, 200);
    if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (!c) {
        for (;;) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conn *nc = calloc(1, sizeof *nc);
          if (!nc) { close(fd); continue; }
          nc->fd = fd;
          struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                    .data.ptr = nc};
          epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      if ((evs[i].events & EPOLLERR) || pump(c, evs[i].events & (EPOLLRDHUP | EPOLLHUP)) < 0) conn_close(c);
    }
  }
  return 0;
}
