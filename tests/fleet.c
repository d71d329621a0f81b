#define _GNU_SOURCE
#include "fleet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 64
static pid_t children[MAX_CHILDREN];

static void track(pid_t pid) {
  for (int i = 0; i < MAX_CHILDREN; ++i)
    if (children[i] == 0) {
      children[i] = pid;
      return;
    }
}

static void untrack(pid_t pid) {
  for (int i = 0; i < MAX_CHILDREN; ++i)
    if (children[i] == pid) children[i] = 0;
}

void fleet_kill_all(void) {
  for (int i = 0; i < MAX_CHILDREN; ++i)
    if (children[i] > 0) {
      kill(children[i], SIGKILL);
      waitpid(children[i], NULL, 0);
      children[i] = 0;
    }
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fleet_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  close(fd);
  return ntohs(a.sin_port);
}

static int connect_port(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

/* ------------------------------------------------------------------ RESP */

typedef struct reader {
  int fd;
  char buf[65536];
  size_t len, pos;
} reader;

static int fill(reader *r) {
  if (r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
  }
  if (r->len == sizeof r->buf) return -1;
  ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
  if (n <= 0) return -1;
  r->len += (size_t)n;
  return 0;
}

/* A line without its CRLF, NUL-terminated in place. */
static char *line(reader *r) {
  for (;;) {
    char *end = memmem(r->buf + r->pos, r->len - r->pos, "\r\n", 2);
    if (end) {
      char *start = r->buf + r->pos;
      *end = 0;
      r->pos = (size_t)(end - r->buf) + 2;
      return start;
    }
    if (fill(r) != 0) return NULL;
  }
}

static int skip(reader *r, size_t n) {
  while (r->len - r->pos < n)
    if (fill(r) != 0) return -1;
  r->pos += n;
  return 0;
}

static int parse(reader *r, fleet_reply *out, int depth, int *ints) {
  char *l = line(r);
  if (!l) return -1;
  char type = l[0];
  long long v = atoll(l + 1);
  if (depth == 0) out->type = type;
  switch (type) {
    case '+':
    case '-':
      if (depth == 0) snprintf(out->text, sizeof out->text, "%s", l + 1);
      return 0;
    case ':':
      if (depth == 0) out->integer = v;
      if (*ints < 4) out->ints[(*ints)++] = v;
      return 0;
    case '$': {
      if (depth == 0) out->count = v;
      if (v < 0) return 0;
      size_t n = (size_t)v;
      while (r->len - r->pos < n + 2)
        if (fill(r) != 0) {
          if (r->len - r->pos == sizeof r->buf) break;
          return -1;
        }
      if (depth == 0)
        snprintf(out->text, sizeof out->text, "%.*s",
                 (int)(n < 255 ? n : 255), r->buf + r->pos);
      return skip(r, n + 2);
    }
    case '*':
      if (depth == 0) out->count = v;
      for (long long i = 0; i < v; ++i)
        if (parse(r, out, depth + 1, ints) != 0) return -1;
      return 0;
  }
  return -1;
}

int fleet_redis_cmd(int port, fleet_reply *out, int argc, const char **argv,
                    const size_t *lens) {
  memset(out, 0, sizeof *out);
  int fd = connect_port(port);
  if (fd < 0) return -1;
  size_t cap = 64;
  for (int i = 0; i < argc; ++i) cap += 32 + (lens ? lens[i] : strlen(argv[i]));
  char *cmd = malloc(cap);
  size_t n = (size_t)snprintf(cmd, cap, "*%d\r\n", argc);
  for (int i = 0; i < argc; ++i) {
    size_t l = lens ? lens[i] : strlen(argv[i]);
    n += (size_t)snprintf(cmd + n, cap - n, "$%zu\r\n", l);
    memcpy(cmd + n, argv[i], l);
    n += l;
    memcpy(cmd + n, "\r\n", 2);
    n += 2;
  }
  int rc = send(fd, cmd, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
  free(cmd);
  reader *r = calloc(1, sizeof *r);
  r->fd = fd;
  int ints = 0;
  if (rc == 0) rc = parse(r, out, 0, &ints);
  if (rc != 0) out->type = 0;
  free(r);
  close(fd);
  return rc;
}

/* ----------------------------------------------------------------- Redis */

int fleet_redis_start(fleet_redis *r, int port) {
  char p[16];
  snprintf(p, sizeof p, "%d", port);
  r->port = port;
  r->pid = fork();
  if (r->pid < 0) return -1;
  if (r->pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1",
           "--save", "", "--appendonly", "no", "--daemonize", "no",
           "--loglevel", "warning", (char *)NULL);
    _exit(127);
  }
  track(r->pid);
  long long until = now_ms() + 5000;
  while (now_ms() < until) {
    fleet_reply reply;
    const char *ping[] = {"PING"};
    if (fleet_redis_cmd(port, &reply, 1, ping, NULL) == 0 && reply.type == '+')
      return 0;
    usleep(20000);
  }
  fleet_redis_stop(r, SIGKILL);
  return -1;
}

void fleet_redis_stop(fleet_redis *r, int sig) {
  if (r->pid <= 0) return;
  kill(r->pid, sig);
  waitpid(r->pid, NULL, 0);
  untrack(r->pid);
  r->pid = 0;
}

/* ----------------------------------------------------------------- nodes */

static int read_more(fleet_node *n, int timeout_ms) {
  struct pollfd p = {.fd = n->out, .events = POLLIN};
  if (poll(&p, 1, timeout_ms) <= 0) return 0;
  if (n->cap - n->len < 4096) {
    n->cap = n->cap * 2 + 8192;
    n->log = realloc(n->log, n->cap);
  }
  ssize_t got = read(n->out, n->log + n->len, n->cap - n->len - 1);
  if (got <= 0) return -1;
  n->len += (size_t)got;
  n->log[n->len] = 0;
  return 1;
}

/* The first complete line at or after |from| that starts with |prefix|;
 * its end in *end. */
static const char *find_line(fleet_node *n, size_t from, const char *prefix,
                             size_t *end) {
  size_t at = from, plen = strlen(prefix);
  while (at < n->len) {
    char *nl = memchr(n->log + at, '\n', n->len - at);
    if (!nl) return NULL;
    if ((size_t)(nl - (n->log + at)) >= plen &&
        memcmp(n->log + at, prefix, plen) == 0) {
      *end = (size_t)(nl - n->log) + 1;
      return n->log + at;
    }
    at = (size_t)(nl - n->log) + 1;
  }
  return NULL;
}

int fleet_node_wait(fleet_node *n, const char *prefix, int timeout_ms) {
  long long until = now_ms() + timeout_ms;
  for (;;) {
    size_t end;
    if (find_line(n, n->scan, prefix, &end)) {
      n->scan = end;
      return 1;
    }
    long long left = until - now_ms();
    if (left <= 0 || read_more(n, (int)left) < 0) return 0;
  }
}

int fleet_node_count(fleet_node *n, const char *prefix) {
  while (read_more(n, 0) > 0) {
  }
  int count = 0;
  size_t at = 0, end;
  while (find_line(n, at, prefix, &end)) {
    ++count;
    at = end;
  }
  return count;
}

int fleet_node_wait_count(fleet_node *n, const char *prefix, int count,
                          int timeout_ms) {
  long long until = now_ms() + timeout_ms;
  for (;;) {
    if (fleet_node_count(n, prefix) >= count) return 1;
    long long left = until - now_ms();
    if (left <= 0) return 0;
    read_more(n, left < 50 ? (int)left : 50);
  }
}

int fleet_node_start(fleet_node *n, const char *exe, const char *const *argv) {
  memset(n, 0, sizeof *n);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  n->pid = fork();
  if (n->pid < 0) return -1;
  if (n->pid == 0) {
    dup2(fds[1], 1);
    execv(exe, (char *const *)argv);
    _exit(127);
  }
  track(n->pid);
  close(fds[1]);
  n->out = fds[0];
  static const char echo[] = "lariat-echo listening on ws://127.0.0.1:";
  long long until = now_ms() + 10000;
  size_t end;
  const char *l;
  while (!(l = find_line(n, 0, "port ", &end)) && !(l = find_line(n, 0, echo, &end))) {
    long long left = until - now_ms();
    if (left <= 0 || read_more(n, (int)left) < 0) return -1;
  }
  n->port = atoi(l[0] == 'p' ? l + 5 : l + sizeof echo - 1);
  return n->port > 0 ? 0 : -1;
}

int fleet_node_stop(fleet_node *n) {
  int status = -1;
  if (n->pid > 0) {
    kill(n->pid, SIGTERM);
    long long until = now_ms() + 15000;
    int done = 0;
    while (now_ms() < until) {
      while (read_more(n, 0) > 0) {
      }
      if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
        done = 1;
        break;
      }
      usleep(10000);
    }
    if (!done) {
      kill(n->pid, SIGKILL);
      waitpid(n->pid, &status, 0);
      status = -1;
    } else {
      status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    untrack(n->pid);
    n->pid = 0;
  }
  if (n->out >= 0) close(n->out);
  n->out = -1;
  free(n->log);
  n->log = NULL;
  return status;
}
