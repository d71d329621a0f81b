/* pyaq: the C half of lariat.asyncio's server connections, compiled into
 * the cffi module (build_lariat.py). Messages cross between lariat's loop
 * thread and the asyncio loop as C lists, so lariat's thread never takes
 * the GIL for them:
 *
 *  - pyaq_handle (websocket_handle) copies each text or binary message into
 *    the event list and, when the list was empty, writes the eventfd that
 *    the asyncio loop watches (one wakeup per batch); a connection with
 *    max_queue messages not yet consumed (pyaq_consumed) stops reading
 *    (lariat_conn_set_active) until it is down to half;
 *  - pyaq_op queues sends, closes, pings, subscriptions and publishes in
 *    the order asyncio made them, and one lariat_server_defer() runs the
 *    whole list (pyaq_flush) on the loop; a connection with more than
 *    write_limit bytes queued makes pyaq_op answer "wait" until its output
 *    drains (pyaq_drain, websocket_drain), signalled as a DRAINED event.
 *
 * Python keeps websocket_init and terminate (pyaq_attach, pyaq_detach and
 * the OPEN/CLOSED events of pyaq_mark) and init. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* The binding's extern "Python" callbacks, defined after this preamble. */
static int py_websocket_info(lariat_conn *conn, void *msg, void *state);
static void py_fn(lariat_server *server, void *data);

enum {
  PYAQ_TEXT = 1, PYAQ_BINARY = 2, PYAQ_CLOSE = 8, PYAQ_PING = 9,
  PYAQ_OPEN = 10, PYAQ_CLOSED = 11, PYAQ_DRAINED = 12,
  PYAQ_SUBSCRIBE = 20, PYAQ_UNSUBSCRIBE = 21, PYAQ_CONN_PUBLISH = 22,
  PYAQ_PUBLISH = 23, PYAQ_MANY = 24, PYAQ_CALL = 25
};

typedef struct pyaq_event {
  struct pyaq_event *next;
  uint64_t conn;
  int kind;
  size_t len;
  unsigned char *data;
} pyaq_event;

typedef struct pyaq_item {
  struct pyaq_item *next;
  uint64_t conn;
  int kind;
  uint16_t code;
  void *py;
  size_t tlen, len;
  char *topic, *data;
} pyaq_item;

typedef struct pyaq_conn {
  struct pyaq_conn *next;
  uint64_t id;
  lariat_conn *conn;
  long unread;
  size_t out_pending;
  int paused, resuming, blocked, write_waiting;
  int checks; /* pyaq_check rounds left for this block */
} pyaq_conn;

#define PYAQ_BUCKETS 4096

typedef struct pyaq {
  pthread_mutex_t mu;
  lariat_server *server;
  int efd;
  long max_queue;
  size_t write_limit;
  pyaq_event *ev_head, *ev_tail;
  int ev_signalled;
  pyaq_item *op_head, *op_tail;
  int op_scheduled;
  pyaq_conn *buckets[PYAQ_BUCKETS];
  struct pyaq *next_aq;
} pyaq;

/* Servers -> their pyaq, for the C callbacks (which know the connection's
 * server only). */
static pthread_mutex_t pyaq_registry_mu = PTHREAD_MUTEX_INITIALIZER;
static pyaq *pyaq_registry;
static const char pyaq_resume_marker = 0;

static pyaq *pyaq_of(lariat_server *server) {
  pthread_mutex_lock(&pyaq_registry_mu);
  pyaq *aq = pyaq_registry;
  while (aq && aq->server != server) aq = aq->next_aq;
  pthread_mutex_unlock(&pyaq_registry_mu);
  return aq;
}

static pyaq_conn **pyaq_slot(pyaq *aq, uint64_t id) {
  pyaq_conn **p = &aq->buckets[(id * 0x9E3779B97F4A7C15ull) >> 52];
  while (*p && (*p)->id != id) p = &(*p)->next;
  return p;
}

static pyaq *pyaq_new(lariat_server *server, long max_queue,
                      size_t write_limit) {
  pyaq *aq = calloc(1, sizeof *aq);
  if (!aq) return NULL;
  aq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (aq->efd < 0) {
    free(aq);
    return NULL;
  }
  pthread_mutex_init(&aq->mu, NULL);
  aq->server = server;
  aq->max_queue = max_queue > 0 ? max_queue : 1;
  aq->write_limit = write_limit;
  pthread_mutex_lock(&pyaq_registry_mu);
  aq->next_aq = pyaq_registry;
  pyaq_registry = aq;
  pthread_mutex_unlock(&pyaq_registry_mu);
  return aq;
}

static int pyaq_fd(pyaq *aq) { return aq->efd; }

static void pyaq_free_events(pyaq_event *e) {
  while (e) {
    pyaq_event *next = e->next;
    free(e);
    e = next;
  }
}

static void pyaq_free_ops(pyaq_item *o) {
  while (o) {
    pyaq_item *next = o->next;
    free(o);
    o = next;
  }
}

/* After the server was freed: no callback can come any more. */
static void pyaq_del(pyaq *aq) {
  if (!aq) return;
  pthread_mutex_lock(&pyaq_registry_mu);
  pyaq **p = &pyaq_registry;
  while (*p && *p != aq) p = &(*p)->next_aq;
  if (*p) *p = aq->next_aq;
  pthread_mutex_unlock(&pyaq_registry_mu);
  pyaq_free_events(aq->ev_head);
  pyaq_free_ops(aq->op_head);
  for (int i = 0; i < PYAQ_BUCKETS; ++i) {
    pyaq_conn *c = aq->buckets[i];
    while (c) {
      pyaq_conn *next = c->next;
      free(c);
      c = next;
    }
  }
  close(aq->efd);
  pthread_mutex_destroy(&aq->mu);
  free(aq);
}

/* Under aq->mu. */
static void pyaq_push_locked(pyaq *aq, pyaq_event *e) {
  e->next = NULL;
  if (aq->ev_tail) aq->ev_tail->next = e;
  else aq->ev_head = e;
  aq->ev_tail = e;
  if (!aq->ev_signalled) {
    uint64_t one = 1;
    aq->ev_signalled = 1;
    if (write(aq->efd, &one, sizeof one) < 0) { /* full: already readable */ }
  }
}

static pyaq_event *pyaq_event_new(uint64_t conn, int kind, const void *data,
                                  size_t len) {
  pyaq_event *e = malloc(sizeof *e + len);
  if (!e) return NULL;
  e->conn = conn;
  e->kind = kind;
  e->len = len;
  e->data = (unsigned char *)(e + 1);
  if (len) memcpy(e->data, data, len);
  return e;
}

/* asyncio: every event so far, oldest first (NULL: none). */
static pyaq_event *pyaq_take(pyaq *aq) {
  pthread_mutex_lock(&aq->mu);
  pyaq_event *e = aq->ev_head;
  aq->ev_head = aq->ev_tail = NULL;
  if (aq->ev_signalled) {
    uint64_t n;
    if (read(aq->efd, &n, sizeof n) < 0) { /* EAGAIN: nothing to clear */ }
    aq->ev_signalled = 0;
  }
  pthread_mutex_unlock(&aq->mu);
  return e;
}

/* Loop thread, from websocket_init. */
static int pyaq_attach(pyaq *aq, lariat_conn *conn) {
  pyaq_conn *c = calloc(1, sizeof *c);
  if (!c) return -1;
  c->id = lariat_conn_get_id(conn);
  c->conn = conn;
  pthread_mutex_lock(&aq->mu);
  pyaq_conn **slot = pyaq_slot(aq, c->id);
  if (*slot) {
    free(c);
  } else {
    *slot = c;
  }
  pthread_mutex_unlock(&aq->mu);
  return 0;
}

/* Loop thread, from terminate. */
static void pyaq_detach(pyaq *aq, uint64_t id) {
  pthread_mutex_lock(&aq->mu);
  pyaq_conn **slot = pyaq_slot(aq, id);
  pyaq_conn *c = *slot;
  if (c) *slot = c->next;
  pthread_mutex_unlock(&aq->mu);
  free(c);
}

/* Any thread: an event of Python's (OPEN, CLOSED) in order with the
 * messages. */
static int pyaq_mark(pyaq *aq, uint64_t id, int kind) {
  pyaq_event *e = pyaq_event_new(id, kind, NULL, 0);
  if (!e) return -1;
  pthread_mutex_lock(&aq->mu);
  pyaq_push_locked(aq, e);
  pthread_mutex_unlock(&aq->mu);
  return 0;
}

static int pyaq_handle(lariat_conn *conn, const lariat_frame *frame,
                       void *state) {
  (void)state;
  if (frame->opcode != LARIAT_OP_TEXT && frame->opcode != LARIAT_OP_BINARY)
    return LARIAT_OK;
  pyaq *aq = pyaq_of(lariat_conn_server(conn));
  if (!aq) return LARIAT_OK;
  uint64_t id = lariat_conn_get_id(conn);
  pyaq_event *e = pyaq_event_new(id, (int)frame->opcode, frame->data,
                                 frame->len);
  if (!e) {
    lariat_conn_set_crash(conn, "MemoryError", "lariat.asyncio event");
    return LARIAT_CRASH;
  }
  int pause = 0;
  pthread_mutex_lock(&aq->mu);
  pyaq_conn *c = *pyaq_slot(aq, id);
  if (c) {
    if (++c->unread >= aq->max_queue && !c->paused) {
      c->paused = 1;
      pause = 1;
    }
  }
  pyaq_push_locked(aq, e);
  pthread_mutex_unlock(&aq->mu);
  if (pause) lariat_conn_set_active(conn, 0);
  return LARIAT_OK;
}

static void pyaq_noop_free(void *msg) { (void)msg; }

/* asyncio: |n| more messages of |id| were read. */
static void pyaq_consumed(pyaq *aq, uint64_t id, long n) {
  int resume = 0;
  pthread_mutex_lock(&aq->mu);
  pyaq_conn *c = *pyaq_slot(aq, id);
  if (c) {
    c->unread -= n;
    if (c->paused && !c->resuming && c->unread <= aq->max_queue / 2) {
      c->resuming = 1;
      resume = 1;
    }
  }
  pthread_mutex_unlock(&aq->mu);
  if (resume)
    lariat_post(aq->server, id, (void *)&pyaq_resume_marker, pyaq_noop_free);
}

static int pyaq_info(lariat_conn *conn, void *msg, void *state) {
  if (msg != &pyaq_resume_marker) return py_websocket_info(conn, msg, state);
  pyaq *aq = pyaq_of(lariat_conn_server(conn));
  if (!aq) return LARIAT_OK;
  int resume = 0;
  pthread_mutex_lock(&aq->mu);
  pyaq_conn *c = *pyaq_slot(aq, lariat_conn_get_id(conn));
  if (c) {
    c->resuming = 0;
    if (c->paused) {
      c->paused = 0;
      resume = 1;
    }
  }
  pthread_mutex_unlock(&aq->mu);
  if (resume) lariat_conn_set_active(conn, 1);
  return LARIAT_OK;
}

/* Under aq->mu: tell a waiting writer when its output is low again. */
static void pyaq_maybe_drained_locked(pyaq *aq, pyaq_conn *c) {
  if (c->write_waiting && !c->blocked && c->out_pending <= aq->write_limit) {
    pyaq_event *e = pyaq_event_new(c->id, PYAQ_DRAINED, NULL, 0);
    if (e) {
      c->write_waiting = 0;
      pyaq_push_locked(aq, e);
    }
  }
}

static int pyaq_drain(lariat_conn *conn, void *state) {
  (void)state;
  pyaq *aq = pyaq_of(lariat_conn_server(conn));
  if (!aq) return LARIAT_OK;
  pthread_mutex_lock(&aq->mu);
  pyaq_conn *c = *pyaq_slot(aq, lariat_conn_get_id(conn));
  if (c) {
    c->blocked = 0;
    pyaq_maybe_drained_locked(aq, c);
  }
  pthread_mutex_unlock(&aq->mu);
  return LARIAT_OK;
}

/* Loop thread, in a later take of lariat's mail than the flush that
 * blocked a writer: that take's output has usually gone to the kernel by
 * then (a take is one batch, flushed as it ends). More than write_limit
 * still in the transport means websocket_drain will say when it went
 * (the low-water mark is write_limit); less unblocks the writer here.
 * The check may share its take with a later flush of the same
 * connection's output (still in lariat's buffer then): one more round
 * sees it flushed. */
static void pyaq_check(lariat_server *server, void *data) {
  pyaq *aq = data;
  int again = 0;
  pthread_mutex_lock(&aq->mu);
  for (int i = 0; i < PYAQ_BUCKETS; ++i)
    for (pyaq_conn *c = aq->buckets[i]; c; c = c->next) {
      if (!c->blocked || c->checks <= 0) continue;
      if (lariat_conn_buffered_amount(c->conn) <= aq->write_limit) {
        c->blocked = 0;
        c->checks = 0;
        pyaq_maybe_drained_locked(aq, c);
      } else if (--c->checks > 0) {
        again = 1;
      }
    }
  pthread_mutex_unlock(&aq->mu);
  if (again) lariat_server_defer(server, pyaq_check, aq);
}

/* Loop thread: every operation queued so far, in order. */
static void pyaq_flush(lariat_server *server, void *data) {
  pyaq *aq = data;
  int check = 0;
  (void)server;
  pthread_mutex_lock(&aq->mu);
  pyaq_item *ops = aq->op_head;
  aq->op_head = aq->op_tail = NULL;
  aq->op_scheduled = 0;
  pthread_mutex_unlock(&aq->mu);
  lariat_frame frame;
  for (pyaq_item *o = ops; o; o = o->next) {
    memset(&frame, 0, sizeof frame);
    frame.data = (const uint8_t *)o->data;
    frame.len = o->len;
    if (o->kind == PYAQ_PUBLISH) {
      frame.opcode = o->code;
      lariat_publish(aq->server, o->topic, o->tlen, &frame);
      continue;
    }
    if (o->kind == PYAQ_CALL) {
      py_fn(aq->server, o->py);
      continue;
    }
    if (o->kind == PYAQ_MANY) {
      const uint64_t *ids = (const uint64_t *)o->topic;
      size_t n = o->tlen / sizeof(uint64_t);
      frame.opcode = o->code;
      for (size_t i = 0; i < n; ++i) {
        pthread_mutex_lock(&aq->mu);
        pyaq_conn *c = *pyaq_slot(aq, ids[i]);
        lariat_conn *conn = c ? c->conn : NULL;
        pthread_mutex_unlock(&aq->mu);
        if (conn) lariat_reply(conn, &frame);
      }
      continue;
    }
    pthread_mutex_lock(&aq->mu);
    pyaq_conn *c = *pyaq_slot(aq, o->conn);
    lariat_conn *conn = c ? c->conn : NULL;
    if (c && (o->kind == PYAQ_TEXT || o->kind == PYAQ_BINARY))
      c->out_pending -= o->len;
    pthread_mutex_unlock(&aq->mu);
    if (!conn) continue;  /* ended meanwhile: dropped, as websockets does */
    switch (o->kind) {
    case PYAQ_TEXT:
    case PYAQ_BINARY:
    case PYAQ_PING:
      frame.opcode = (uint32_t)o->kind;
      lariat_reply(conn, &frame);
      break;
    case PYAQ_CLOSE:
      frame.opcode = LARIAT_OP_CLOSE;
      frame.close_code = o->code;
      lariat_reply(conn, &frame);
      break;
    case PYAQ_SUBSCRIBE:
      lariat_subscribe(conn, o->topic, o->tlen);
      break;
    case PYAQ_UNSUBSCRIBE:
      lariat_unsubscribe(conn, o->topic, o->tlen);
      break;
    case PYAQ_CONN_PUBLISH:
      frame.opcode = o->code;
      lariat_conn_publish(conn, o->topic, o->tlen, &frame);
      break;
    }
    if (o->kind == PYAQ_TEXT || o->kind == PYAQ_BINARY) {
      /* The reply may have ended the connection: look it up again. */
      size_t queued = lariat_conn_buffered_amount(conn);
      pthread_mutex_lock(&aq->mu);
      c = *pyaq_slot(aq, o->conn);
      if (c) {
        if (aq->write_limit && queued > aq->write_limit) {
          if (!c->blocked || c->checks <= 0) check = 1;
          c->blocked = 1;
          c->checks = 2;
        }
        pyaq_maybe_drained_locked(aq, c);
      }
      pthread_mutex_unlock(&aq->mu);
    }
  }
  pyaq_free_ops(ops);
  if (check && lariat_server_defer(aq->server, pyaq_check, aq) < 0) {
    /* Stopping: nobody waits for long; let the writers go. */
    pthread_mutex_lock(&aq->mu);
    for (int i = 0; i < PYAQ_BUCKETS; ++i)
      for (pyaq_conn *c = aq->buckets[i]; c; c = c->next) {
        c->blocked = 0;
        pyaq_maybe_drained_locked(aq, c);
      }
    pthread_mutex_unlock(&aq->mu);
  }
}

/* asyncio: queues an operation. |id| is the connection (0 for PUBLISH
 * and MANY); |code| the close code, or the opcode of a publish; |topic|
 * the topic, or for MANY the connection ids; |py| for CALL, a handle
 * the binding's py_fn runs. Returns 1 when the writer should wait for
 * DRAINED (sends only), 0, or -1 when the server is stopping (dropped). */
static int pyaq_op(pyaq *aq, uint64_t id, int kind, uint16_t code,
                   const char *topic, size_t tlen, const char *data,
                   size_t len, void *py) {
  pyaq_item *o = malloc(sizeof *o + tlen + len);
  if (!o) return -1;
  o->next = NULL;
  o->conn = id;
  o->kind = kind;
  o->code = code;
  o->py = py;
  o->tlen = tlen;
  o->len = len;
  o->topic = (char *)(o + 1);
  o->data = o->topic + tlen;
  if (tlen) memcpy(o->topic, topic, tlen);
  if (len) memcpy(o->data, data, len);
  int wait = 0, schedule = 0;
  pthread_mutex_lock(&aq->mu);
  if (kind == PYAQ_TEXT || kind == PYAQ_BINARY) {
    pyaq_conn *c = *pyaq_slot(aq, id);
    if (c) {
      c->out_pending += len;
      if (aq->write_limit &&
          (c->blocked || c->out_pending > aq->write_limit)) {
        c->write_waiting = 1;
        wait = 1;
      }
    }
  }
  if (aq->op_tail) aq->op_tail->next = o;
  else aq->op_head = o;
  aq->op_tail = o;
  if (!aq->op_scheduled) aq->op_scheduled = schedule = 1;
  pthread_mutex_unlock(&aq->mu);
  if (schedule && lariat_server_defer(aq->server, pyaq_flush, aq) < 0) {
    pthread_mutex_lock(&aq->mu);
    pyaq_item *drop = aq->op_head;
    aq->op_head = aq->op_tail = NULL;
    aq->op_scheduled = 0;
    pthread_mutex_unlock(&aq->mu);
    pyaq_free_ops(drop);
    return -1;
  }
  return wait;
}
