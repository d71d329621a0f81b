/* A test's own Redis and lariat processes: redis-server on a free
 * 127.0.0.1 port (never the system service), bridge_node processes
 * (tests/bridge_node.c) whose stdout is read line by line, and a minimal
 * RESP client for the checks (PUBSUB, CLIENT KILL, CONFIG SET, PUBLISH). */
#ifndef LARIAT_TESTS_FLEET_H
#define LARIAT_TESTS_FLEET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Kills (SIGKILL) and reaps every process these functions started and
 * that still runs: a failed test leaves nothing behind. */
void fleet_kill_all(void);

/* A port nothing listens on now (bound and released). */
int fleet_free_port(void);

typedef struct fleet_redis {
  pid_t pid;
  int port;
} fleet_redis;

/* Starts redis-server on |port| (--save '' --appendonly no) and waits
 * until it answers PING (5 s at most). 0, or -1. */
int fleet_redis_start(fleet_redis *r, int port);
/* Ends it with |sig| (SIGKILL: a crash; SIGTERM: a stop) and reaps it. */
void fleet_redis_stop(fleet_redis *r, int sig);

/* One RESP reply, flattened: integers of the reply and of an array's
 * elements, the array's size. */
typedef struct fleet_reply {
  char type;        /* '+', '-', ':', '$', '*'; 0 when the call failed */
  long long integer; /* ':' */
  long long count;   /* '*': elements; '$': length */
  long long ints[4]; /* the first integers inside an array */
  char text[256];    /* '+', '-', '$': the first bytes */
} fleet_reply;

/* Sends one command (argv[i] of lens[i] bytes; lens NULL: strlen) on a
 * fresh connection to 127.0.0.1:|port| and reads its reply. */
int fleet_redis_cmd(int port, fleet_reply *out, int argc, const char **argv,
                    const size_t *lens);

typedef struct fleet_node {
  pid_t pid;
  int out;   /* its stdout */
  int port;  /* its WebSocket port */
  char *log; /* everything it printed */
  size_t len, cap, scan;
} fleet_node;

/* Starts |exe| with |argv| (NULL-terminated, argv[0] included) and waits
 * for its "port N" line (or lariat-echo's "... listening on
 * ws://127.0.0.1:N/"). 0, or -1. */
int fleet_node_start(fleet_node *n, const char *exe, const char *const *argv);
/* Waits up to |timeout_ms| for a line (after the last one matched) that
 * starts with |prefix|; 1 found, 0 not. */
int fleet_node_wait(fleet_node *n, const char *prefix, int timeout_ms);
/* How many lines so far start with |prefix|. */
int fleet_node_count(fleet_node *n, const char *prefix);
/* Waits up to |timeout_ms| until that count reaches |count|; 1 if it
 * did. */
int fleet_node_wait_count(fleet_node *n, const char *prefix, int count,
                          int timeout_ms);
/* SIGTERM, then its exit status (0 for a clean stop), or -1 if it had to
 * be killed after 15 s or died of a signal. */
int fleet_node_stop(fleet_node *n);

#ifdef __cplusplus
}
#endif

#endif
