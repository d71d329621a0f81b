/* raw_echo: a raw TCP echo server (the physical limit for the same traffic).
 * Driven the way uSockets (uWebSockets) drives its sockets, the cheapest
 * known way for this traffic: single-threaded level-triggered epoll
 * watching only readability, one recv() per readable event into one shared
 * 512 KiB buffer, the echo sent at once with send(MSG_NOSIGNAL |
 * MSG_DONTWAIT), TCP_NODELAY. Only a short send keeps the rest per
 * connection and switches the socket to writable (reading paused until it
 * drains), so the epoll set changes only under backpressure and an idle
 * connection costs no buffer.
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
  char *pend; /* unsent echo bytes */
  size_t off, len;
} conn;

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static int epfd;
static char rbuf[512 * 1024];

static void conn_close(conn *c) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->pend);
  free(c);
}

static void watch(conn *c, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends |n| bytes; keeps what the socket does not take and waits for
 * writable. Returns -1 on error. */
static int echo(conn *c, const char *p, size_t n) {
  ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
    w = 0;
  }
  if ((size_t)w == n) return 0;
  c->len = n - (size_t)w;
  c->off = 0;
  c->pend = malloc(c->len);
  if (!c->pend) return -1;
  memcpy(c->pend, p + w, c->len);
  watch(c, EPOLLOUT);
  return 0;
}

static int on_writable(conn *c) {
  while (c->off < c->len) {
    ssize_t w = send(c->fd, c->pend + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) { c->off += (size_t)w; continue; }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return -1;
  }
  free(c->pend);
  c->pend = NULL;
  c->off = c->len = 0;
  watch(c, EPOLLIN);
  return 0;
}

/* One recv per readable event: level-triggered epoll reports the socket
 * again if more is left. 0 at the peer's FIN (everything before it was
 * echoed) closes. */
static int on_readable(conn *c) {
  ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
  if (n > 0) return echo(c, rbuf, (size_t)n);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
  return -1;
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

  struct epoll_event evs[1024];
  while (!stop) {
    int n = epoll_wait(epfd, evs, 1024, 200);
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
          struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
          epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      unsigned e = evs[i].events;
      int rc = c->pend ? on_writable(c) : (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? on_readable(c) : 0;
      if (rc < 0) conn_close(c);
    }
  }
  return 0;
}
