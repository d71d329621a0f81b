// Publish/subscribe through the connection core without sockets: fan-out,
// one encode per publish, compression variants, slow subscribers, order
// across threads, automatic unsubscribe, and lariat_server_defer().
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <string>
#include <thread>
#include <vector>

#include "core_harness.h"

using core_test::bytes;
using core_test::CoreServer;
using core_test::mask_frame;
using core_test::upgrade_request;
using core_test::Wire;

namespace {

const std::string kRoom = "room:42";

// Subscribes on "sub", publishes to the others on "say:<text>", publishes
// to everyone on "all:<text>", unsubscribes on "leave".
int on_handle(lariat_conn *conn, const lariat_frame *frame, void *) {
  std::string text(reinterpret_cast<const char *>(frame->data), frame->len);
  if (text == "sub") {
    assert_int_equal(lariat_subscribe(conn, kRoom.data(), kRoom.size()), 0);
    assert_int_equal(lariat_subscribe(conn, kRoom.data(), kRoom.size()), 0);
  } else if (text == "leave") {
    assert_int_equal(lariat_unsubscribe(conn, kRoom.data(), kRoom.size()), 0);
    assert_int_equal(lariat_unsubscribe(conn, kRoom.data(), kRoom.size()),
                     LARIAT_ERR_NOT_FOUND);
  } else if (text.rfind("say:", 0) == 0 || text.rfind("all:", 0) == 0) {
    lariat_frame out = *frame;
    out.data += 4;
    out.len -= 4;
    int n = text[0] == 's'
                ? lariat_conn_publish(conn, kRoom.data(), kRoom.size(), &out)
                : lariat_publish(lariat_conn_server(conn), kRoom.data(),
                                 kRoom.size(), &out);
    assert_true(n >= 0);
  } else if (text == "sleep") {
    return LARIAT_HIBERNATE;
  }
  return LARIAT_OK;
}

struct InitConfig {
  bool deflate = false;
  bool no_context_takeover = false;
  bool refuse_small_cap = false;
};

int on_init(lariat_req *, lariat_upgrade *up, void *data) {
  auto *cfg = static_cast<InitConfig *>(data);
  if (cfg->deflate) {
    lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_ENABLE, 1);
    lariat_upgrade_set_deflate(up, LARIAT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER,
                               cfg->no_context_takeover);
  }
  if (cfg->refuse_small_cap)
    lariat_upgrade_set_max_queued(up, 1000, LARIAT_BACKPRESSURE_REFUSE);
  return LARIAT_OK;
}

lariat_handler make_handler() {
  lariat_handler h = {};
  h.size = sizeof h;
  h.init = on_init;
  h.websocket_handle = on_handle;
  return h;
}
const lariat_handler kHandler = make_handler();

struct Room {
  InitConfig config;
  CoreServer core;
  explicit Room(const lariat_options *opts = nullptr) : core(opts) {
    assert_int_equal(core.route("/chat", &kHandler, &config), 0);
  }
  Wire *join(const std::string &extensions = "", size_t loop = 0) {
    Wire *w = core.open(loop);
    CoreServer::feed(w, upgrade_request("/chat", extensions) +
                            mask_frame(0x81, "sub"));
    w->out.clear();
    return w;
  }
  size_t subscribers() {
    return lariat_server_subscribers(core.server, kRoom.data(), kRoom.size());
  }
};

std::string text_frame(const std::string &payload) {
  return bytes({0x81, static_cast<int>(payload.size())}) + payload;
}

void test_publish_reaches_every_subscriber_encoded_once(void **) {
  Room room;
  std::vector<Wire *> members;
  for (int i = 0; i < 50; ++i) members.push_back(room.join());
  assert_int_equal(room.subscribers(), 50);
  uint64_t before = room.core.server->frames_encoded;
  CoreServer::feed(members[0], mask_frame(0x81, "say:hello"));
  assert_int_equal(room.core.server->frames_encoded - before, 1);
  assert_true(members[0]->out.empty());  // not to the sender itself
  for (int i = 1; i < 50; ++i) {
    assert_true(members[i]->out == text_frame("hello"));
    assert_int_equal(members[i]->writes, 2);  // the 101, then this one
  }
  CoreServer::feed(members[1], mask_frame(0x81, "all:everyone"));
  assert_true(members[1]->out == text_frame("hello") + text_frame("everyone"));
  assert_true(members[0]->out == text_frame("everyone"));
  for (Wire *w : members) CoreServer::eof(w);
  assert_int_equal(room.subscribers(), 0);  // gone before terminate
  assert_int_equal(room.core.server->topics.topic_count(), 0);
}

void test_unsubscribe_and_publish_from_another_thread_in_order(void **) {
  Room room;
  Wire *a = room.join();
  Wire *b = room.join();
  CoreServer::feed(b, mask_frame(0x81, "leave"));
  assert_int_equal(room.subscribers(), 1);
  lariat_server *server = room.core.server;
  std::thread publishers[2];
  for (int t = 0; t < 2; ++t)
    publishers[t] = std::thread([server, t] {
      for (int i = 0; i < 100; ++i) {
        std::string payload = std::to_string(t) + ":" + std::to_string(i);
        lariat_frame f = {};
        f.opcode = LARIAT_OP_TEXT;
        f.data = reinterpret_cast<const uint8_t *>(payload.data());
        f.len = payload.size();
        assert_int_equal(lariat_publish(server, kRoom.data(), kRoom.size(), &f), 0);
      }
    });
  for (auto &t : publishers) t.join();
  server->deliver_mail();  // what the mailbox's wake-up does
  assert_true(b->out.empty());
  // Parse a's frames: each publisher's messages arrive in its order.
  int next[2] = {0, 0}, total = 0;
  for (size_t off = 0; off < a->out.size();) {
    size_t n = static_cast<uint8_t>(a->out[off + 1]);
    std::string payload = a->out.substr(off + 2, n);
    int t = payload[0] - '0';
    assert_int_equal(std::stoi(payload.substr(2)), next[t]++);
    off += 2 + n;
    ++total;
  }
  assert_int_equal(total, 200);
  CoreServer::eof(a);
  CoreServer::eof(b);
}

void test_slow_subscriber_drops_are_counted_and_others_get_all(void **) {
  Room room;
  room.config.refuse_small_cap = true;
  Wire *slow = room.join();
  room.config.refuse_small_cap = false;
  Wire *fast = room.join();
  Wire *sender = room.join();
  slow->buffered = 900;  // its kernel buffer is full
  std::string payload(200, 'p');
  for (int i = 0; i < 10; ++i)
    CoreServer::feed(sender, mask_frame(0x81, "say:" + payload));
  assert_int_equal(lariat_conn_dropped(slow->conn), 10);
  assert_true(slow->out.empty());
  assert_int_equal(fast->out.size(), 10 * (payload.size() + 4));
  assert_int_equal(lariat_conn_dropped(fast->conn), 0);
  CoreServer::eof(slow);
  CoreServer::eof(fast);
  CoreServer::eof(sender);
}

void test_compressed_subscribers_share_one_frame_per_variant(void **) {
  Room room;
  room.config.deflate = true;
  const std::string offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
  room.config.no_context_takeover = true;
  Wire *shared1 = room.join(offer);
  Wire *shared2 = room.join(offer);
  room.config.no_context_takeover = false;
  Wire *own1 = room.join(offer);
  Wire *own2 = room.join(offer);
  room.config.deflate = false;
  Wire *plain = room.join();
  uint64_t before = room.core.server->frames_encoded;
  CoreServer::feed(plain, mask_frame(0x81, "say:" + std::string(300, 'z')));
  // One shared compressed frame, one per context-takeover subscriber; the
  // sender gets nothing, so no plain frame is built.
  assert_int_equal(room.core.server->frames_encoded - before, 3);
  assert_true(shared1->out == shared2->out);
  assert_true(static_cast<uint8_t>(shared1->out[0]) == 0xc1);  // RSV1: compressed
  assert_true(own1->out == own2->out);  // both fresh contexts, same bytes
  assert_true(shared1->out.size() < 300);
  for (Wire *w : {shared1, shared2, own1, own2, plain}) CoreServer::eof(w);
}

void test_published_frame_does_not_wake_a_hibernated_subscriber(void **) {
  Room room;
  Wire *sleeper = room.join();
  Wire *sender = room.join();
  CoreServer::feed(sleeper, mask_frame(0x81, "sleep"));
  assert_true(lariat_conn_hibernating(sleeper->conn));
  CoreServer::feed(sender, mask_frame(0x81, "say:tick"));
  assert_true(sleeper->out == text_frame("tick"));
  assert_true(lariat_conn_hibernating(sleeper->conn));
  CoreServer::eof(sleeper);
  CoreServer::eof(sender);
}

void test_many_subscribe_disconnect_cycles_leave_tables_empty(void **) {
  Room room;
  for (int i = 0; i < 10000; ++i) {
    Wire *w = room.join();
    if (i % 3 == 0) CoreServer::feed(w, mask_frame(0x81, "leave"));
    CoreServer::eof(w);
  }
  assert_int_equal(room.subscribers(), 0);
  assert_int_equal(room.core.server->topics.topic_count(), 0);
  assert_int_equal(room.core.server->conns.size(), 0);
}

void test_bad_arguments(void **) {
  Room room;
  Wire *w = room.join();
  lariat_frame ping = {};
  ping.opcode = LARIAT_OP_PING;
  assert_int_equal(lariat_publish(room.core.server, "t", 1, &ping),
                   LARIAT_ERR_INVALID_ARGUMENT);
  assert_int_equal(lariat_publish(room.core.server, nullptr, 1, &ping),
                   LARIAT_ERR_INVALID_ARGUMENT);
  assert_int_equal(lariat_subscribe(nullptr, "t", 1), LARIAT_ERR_INVALID_ARGUMENT);
  int rc = 0;
  std::thread other([&] { rc = lariat_subscribe(w->conn, "t", 1); });
  other.join();
  assert_int_equal(rc, LARIAT_ERR_INVALID_STATE);
  lariat_frame text = {};
  text.opcode = LARIAT_OP_TEXT;
  assert_int_equal(lariat_publish(room.core.server, "nobody", 6, &text), 0);
  CoreServer::eof(w);
}

// Two loops: one message per loop, one encode per loop, whatever the
// number of subscribers on each.
void test_a_publish_costs_one_encode_per_loop(void **) {
  lariat_options *opts = nullptr;
  assert_int_equal(lariat_options_new(&opts), 0);
  assert_int_equal(lariat_options_set_threads(opts, 2), 0);
  Room room(opts);
  lariat_options_del(opts);
  lariat_server *first = room.core.server, *second = first->loops[1];
  std::vector<Wire *> members;
  for (int i = 0; i < 6; ++i) members.push_back(room.join("", i % 2));
  lariat_frame f = {};
  f.opcode = LARIAT_OP_TEXT;
  f.data = reinterpret_cast<const uint8_t *>("hi");
  f.len = 2;
  // From this thread (the loops are not running): the first loop at once,
  // the second through its mailbox.
  assert_int_equal(lariat_publish(first, kRoom.data(), kRoom.size(), &f), 3);
  assert_int_equal(first->frames_encoded, 1);
  assert_int_equal(second->frames_encoded, 0);
  second->deliver_mail();
  assert_int_equal(second->frames_encoded, 1);
  for (Wire *w : members) assert_true(w->out == text_frame("hi"));
  for (Wire *w : members) CoreServer::eof(w);
}

int g_calls;
void count_call(lariat_server *, void *data) {
  ++g_calls;
  assert_ptr_equal(data, &g_calls);
}

void test_defer_runs_on_the_loop_also_at_stop(void **) {
  Room room;
  g_calls = 0;
  std::thread other([&] {
    assert_int_equal(lariat_server_defer(room.core.server, count_call, &g_calls), 0);
  });
  other.join();
  assert_int_equal(g_calls, 0);
  room.core.server->deliver_mail();
  assert_int_equal(g_calls, 1);
  // Accepted before the stop completes: runs when the last handles close.
  assert_int_equal(lariat_server_defer(room.core.server, count_call, &g_calls), 0);
  assert_int_equal(lariat_server_stop(room.core.server), 0);
  assert_int_equal(g_calls, 2);
  assert_int_equal(lariat_server_defer(room.core.server, count_call, &g_calls),
                   LARIAT_ERR_STOPPED);
  assert_int_equal(lariat_server_defer(room.core.server, nullptr, nullptr),
                   LARIAT_ERR_INVALID_ARGUMENT);
}

}  // namespace

int main() {
  const CMUnitTest tests[] = {
      cmocka_unit_test(test_publish_reaches_every_subscriber_encoded_once),
      cmocka_unit_test(test_unsubscribe_and_publish_from_another_thread_in_order),
      cmocka_unit_test(test_slow_subscriber_drops_are_counted_and_others_get_all),
      cmocka_unit_test(test_compressed_subscribers_share_one_frame_per_variant),
      cmocka_unit_test(test_published_frame_does_not_wake_a_hibernated_subscriber),
      cmocka_unit_test(test_many_subscribe_disconnect_cycles_leave_tables_empty),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_a_publish_costs_one_encode_per_loop),
      cmocka_unit_test(test_defer_runs_on_the_loop_also_at_stop),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
