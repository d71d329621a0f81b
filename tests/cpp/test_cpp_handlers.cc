// The C++ wrapper over real loopback sockets: class and lambda handlers,
// the typed per-connection state's lifetime, the request and upgrade
// views, permessage-deflate knobs, hibernate, and Cowboy's terminate
// reasons as the wrapper reports them.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>

#include "support.hpp"

using namespace std::chrono_literals;
using lariat::result;

namespace {

// "terminate <kind> code=.. payload=.. class=.. reason=.. conn=0|1".
std::string describe(const lariat::connection *c, const lariat::reason &r) {
  return "terminate " + std::string(r.name()) +
         " code=" + std::to_string(r.code()) +
         " payload=" + std::string(r.payload()) +
         " class=" + std::string(r.crash_class()) +
         " reason=" + std::string(r.crash_reason()) +
         " conn=" + (c ? "1" : "0");
}

// ------------------------------------------------------------ echo

struct echo_handler : lariat::handler<> {
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          std::monostate &) override {
    if (f.is_data()) c.reply(f);
    return result::ok;
  }
};

TEST(class_handler_echo) {
  t::running_server rs;
  rs.server().route<echo_handler>("/echo");
  int port = rs.start();
  t::client c;
  CHECK_EQ(c.open(port, "/echo"), 101);
  c.send("hello");
  CHECK_EQ(c.recv(), "hello");
  const unsigned char bin[] = {0, 1, 2, 255};
  CHECK_EQ(wsc_send_binary(c.get(), bin, sizeof bin), 0);
  wsc_frame f;
  CHECK_EQ(wsc_recv_message(c.get(), &f, 3000), 1);
  bool same = f.opcode == WSC_OP_BINARY && f.len == sizeof bin &&
              std::memcmp(f.payload, bin, sizeof bin) == 0;
  wsc_frame_free(&f);
  CHECK(same);
}

TEST(lambda_handler_echo_with_typed_state) {
  t::log log;
  lariat::handler_fns<int> fns;
  fns.init = [](lariat::request &, lariat::upgrade<int> &up) {
    up.emplace_state(100);
  };
  fns.websocket_init = [](lariat::connection &c, int &n) {
    c.send_text("welcome " + std::to_string(n));
    return result::ok;
  };
  // Generic lambdas work too.
  fns.websocket_handle = [](auto &c, const auto &f, int &n) {
    ++n;
    c.send_text(std::to_string(n) + ":" + std::string(f.data));
    return result::ok;
  };
  fns.terminate = [&log](lariat::connection *c, const lariat::reason &r,
                         int *n) {
    log.add(describe(c, r) + " state=" + (n ? std::to_string(*n) : "none"));
  };
  t::running_server rs;
  rs.server().route("/fns", std::move(fns));
  int port = rs.start();
  t::client c;
  CHECK_EQ(c.open(port, "/fns"), 101);
  CHECK_EQ(c.recv(), "welcome 100");
  c.send("a");
  CHECK_EQ(c.recv(), "101:a");
  c.send("b");
  CHECK_EQ(c.recv(), "102:b");
  CHECK_EQ(c.close_handshake(1000), 0);
  CHECK(log.wait("terminate"));
  CHECK_EQ(log.find("terminate"),
           "terminate remote code=1000 payload= class= reason= conn=1 "
           "state=102");
}

// A handler_fns with nothing set accepts and ignores everything.
TEST(empty_handler_fns_accepts) {
  t::running_server rs;
  rs.server().route("/nothing", lariat::handler_fns<>{});
  int port = rs.start();
  t::client c;
  CHECK_EQ(c.open(port, "/nothing"), 101);
  c.send("ignored");
  CHECK_EQ(c.recv(200),
           "<error " + std::string(wsc_strerror(-ETIMEDOUT)) + ">");
}

// ------------------------------------------------- state lifetime

struct counted {
  static std::atomic<int> ctors, dtors;
  static t::log *log;
  std::string name;
  counted() : name("default") { ++ctors; }
  explicit counted(std::string n) : name(std::move(n)) { ++ctors; }
  counted(const counted &) = delete;
  counted &operator=(const counted &) = delete;
  ~counted() {
    ++dtors;
    if (log) log->add("dtor " + name);
  }
};
std::atomic<int> counted::ctors{0}, counted::dtors{0};
t::log *counted::log = nullptr;

struct lifetime_handler : lariat::handler<counted> {
  explicit lifetime_handler(t::log &l) : log(l) {}
  void init(lariat::request &req, upgrade_type &up) override {
    std::string_view q = req.query();
    if (q == "plain") {
      up.reply(200, {{"content-type", "text/plain"}}, "plain");
      return;
    }
    if (q.substr(0, 5) == "name=") up.emplace_state(std::string(q.substr(5)));
  }
  result websocket_init(lariat::connection &c, counted &s) override {
    c.send_text(s.name);
    return result::ok;
  }
  void terminate(lariat::connection *c, const lariat::reason &r,
                 counted *s) override {
    log.add(describe(c, r) + " state=" + (s ? s->name : "none") +
            " alive=" + std::to_string(counted::ctors - counted::dtors));
  }
  t::log &log;
};

TEST(state_constructed_once_destroyed_after_terminate) {
  t::log log;
  counted::log = &log;
  counted::ctors = 0;
  counted::dtors = 0;
  {
    t::running_server rs;
    rs.server().route<lifetime_handler>("/life", log);
    int port = rs.start();

    t::client a, b, plain;
    CHECK_EQ(a.open(port, "/life?name=alice"), 101);  // emplace_state
    CHECK_EQ(a.recv(), "alice");
    CHECK_EQ(b.open(port, "/life"), 101);  // default-constructed
    CHECK_EQ(b.recv(), "default");
    CHECK_EQ(counted::ctors.load(), 2);

    // A plain answer from init: no state, no connection, reason normal.
    plain.connect(port);
    wsc_response resp;
    CHECK_EQ(
        wsc_request(plain.get(), "GET /life?plain HTTP/1.1\r\nHost: x\r\n\r\n",
                    &resp, 3000),
        200);
    std::string body = resp.body ? resp.body : "";
    wsc_response_free(&resp);
    CHECK_EQ(body, "plain");
    plain.close();  // lariat ends a plain answer once the client has gone
    CHECK(log.wait("terminate"));
    CHECK_EQ(log.find("terminate"),
             "terminate normal code=0 payload= class= reason= conn=0 "
             "state=none alive=2");

    CHECK_EQ(a.close_handshake(4001, "bye"), 0);
    b.close();  // TCP end without a close frame
    CHECK(log.wait("dtor", 2));
  }
  counted::log = nullptr;
  CHECK_EQ(counted::ctors.load(), 2);
  CHECK_EQ(counted::dtors.load(), 2);
  // Each state is still alive in its terminate and dies right after it.
  auto lines = log.lines();
  auto index = [&](const std::string &prefix) {
    for (std::size_t i = 0; i < lines.size(); ++i)
      if (lines[i].compare(0, prefix.size(), prefix) == 0) return int(i);
    return -1;
  };
  int ta = index(
      "terminate remote code=4001 payload=bye class= reason= "
      "conn=1 state=alice");
  int tb = index(
      "terminate error closed code=0 payload= class= reason= "
      "conn=1 state=default");
  CHECK(ta >= 0);
  CHECK(tb >= 0);
  CHECK_EQ(index("dtor alice"), ta + 1);
  CHECK_EQ(index("dtor default"), tb + 1);
  CHECK_EQ(log.count("dtor"), 2u);
}

// ------------------------------------------- terminate reasons

struct reasons_handler : lariat::handler<> {
  explicit reasons_handler(t::log &l) : log(l) {}
  void init(lariat::request &req, upgrade_type &up) override {
    if (req.query() == "idle") up.idle_timeout(150ms);
  }
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          std::monostate &) override {
    if (f.data == "!shutdown") return result::shutdown;
    if (f.data == "!close") {
      c.close(4000, "done");
      // Expected condition, not an exception: the close was sent.
      log.add(c.send_text("late") ? "late sent" : "late refused");
      return result::ok;
    }
    if (f.data == "!stop") {
      lariat_server_stop(c.server_handle());
      return result::ok;
    }
    c.reply(f);
    return result::ok;
  }
  void terminate(lariat::connection *c, const lariat::reason &r,
                 std::monostate *) override {
    log.add(describe(c, r));
  }
  t::log &log;
};

TEST(terminate_reasons_through_the_wrapper) {
  t::log log;
  t::running_server rs(lariat::server(lariat::options().close_timeout(500ms)));
  rs.server().route<reasons_handler>("/r", log);
  int port = rs.start();

  {  // remote, with a code and a payload
    t::client c;
    CHECK_EQ(c.open(port, "/r"), 101);
    CHECK_EQ(c.close_handshake(4001, "see you"), 0);
    CHECK(log.wait("terminate"));
    CHECK_EQ(log.find("terminate"),
             "terminate remote code=4001 payload=see you class= reason= "
             "conn=1");
    log.clear();
  }
  {  // remote, without a code
    t::client c;
    CHECK_EQ(c.open(port, "/r"), 101);
    CHECK_EQ(c.close_handshake(-1), 0);
    CHECK(log.wait("terminate"));
    CHECK_EQ(log.find("terminate"),
             "terminate remote code=0 payload= class= reason= conn=1");
    log.clear();
  }
  {  // result::shutdown: close 1000
    t::client c;
    CHECK_EQ(c.open(port, "/r"), 101);
    c.send("!shutdown");
    CHECK_EQ(c.expect_close(1000), 1000);
    CHECK(log.wait("terminate"));
    CHECK_EQ(log.find("terminate"),
             "terminate shutdown code=0 payload= class= reason= conn=1");
    log.clear();
  }
  {  // connection::close(code, reason); later replies come back false
    t::client c;
    CHECK_EQ(c.open(port, "/r"), 101);
    c.send("!close");
    wsc_frame f;
    CHECK_EQ(wsc_recv_frame(c.get(), &f, 3000), 1);
    int op = f.opcode, code = f.close_code;
    std::string why = f.close_reason ? f.close_reason : "";
    wsc_frame_free(&f);
    CHECK_EQ(op, WSC_OP_CLOSE);  // not "late"
    CHECK_EQ(code, 4000);
    CHECK_EQ(why, "done");
    CHECK_EQ(wsc_send_close(c.get(), 4000, nullptr, 0), 0);
    c.close();
    CHECK(log.wait("terminate"));
    CHECK_EQ(log.find("late"), "late refused");
    CHECK_EQ(log.find("terminate"),
             "terminate shutdown code=0 payload= class= reason= conn=1");
    log.clear();
  }
  {  // idle timeout set through the upgrade
    t::client c;
    CHECK_EQ(c.open(port, "/r?idle"), 101);
    CHECK_EQ(c.expect_close(1000), 1000);
    CHECK(log.wait("terminate"));
    CHECK_EQ(log.find("terminate"),
             "terminate timeout code=0 payload= class= reason= conn=1");
    log.clear();
  }
  {  // invalid UTF-8
    t::client c;
    CHECK_EQ(c.open(port, "/r"), 101);
    CHECK_EQ(wsc_send_frame(c.get(), 1, 0, WSC_OP_TEXT, "\xff", 1), 0);
    CHECK_EQ(c.expect_close(1007), 1007);
    CHECK(log.wait("terminate"));
    CHECK_EQ(log.find("terminate"),
             "terminate error badencoding code=0 payload= class= reason= "
             "conn=1");
    log.clear();
  }
  {  // the server stops: close 1001, reason shutdown
    t::client c;
    CHECK_EQ(c.open(port, "/r"), 101);
    c.send("!stop");
    CHECK_EQ(c.expect_close(1001), 1001);
    rs.join();
    CHECK_EQ(log.find("terminate"),
             "terminate shutdown code=0 payload= class= reason= conn=1");
  }
}

// ------------------------------- request, upgrade, connection views

struct views_handler : lariat::handler<> {
  explicit views_handler(t::log &l) : log(l) {}
  void init(lariat::request &req, upgrade_type &up) override {
    std::string protocols;
    for (auto p : req.protocols()) protocols += std::string(p) + ",";
    auto peer = req.peer();
    log.add(
        "init method=" + std::string(req.method()) + " path=" +
        std::string(req.path()) + " query=" + std::string(req.query()) +
        " x-test=" + std::string(req.header("X-TEST").value_or("none")) +
        " sv=" +
        std::string(req.header(std::string_view("x-test")).value_or("none")) +
        " missing=" + (req.header("x-missing") ? "yes" : "no") +
        " ws=" + (req.is_websocket() ? "1" : "0") + " protocols=" + protocols +
        " peer=" + peer.address + " port_ok=" + (peer.port > 0 ? "1" : "0"));
    std::size_t headers = 0;
    for (const auto &h : req.headers()) headers += h.first == "X-Test";
    log.add("headers x-test=" + std::to_string(headers));
    if (req.is_websocket()) up.protocol("superchat").max_frame_size(64);
  }
  result websocket_init(lariat::connection &c, std::monostate &) override {
    c.send_text("v=" + std::to_string(c.version()) +
                " p=" + std::string(c.protocol().value_or("none")) +
                " c=" + (c.compressed() ? "1" : "0") +
                " id=" + (c.id() > 0 ? "ok" : "zero"));
    return result::ok;
  }
  void terminate(lariat::connection *c, const lariat::reason &r,
                 std::monostate *) override {
    log.add(describe(c, r));
  }
  t::log &log;
};

TEST(request_and_upgrade_views) {
  t::log log;
  t::running_server rs;
  rs.server().route<views_handler>("/v", log);
  int port = rs.start();
  t::client c;
  CHECK_EQ(c.open(port, "/v?a=1&b",
                  "X-Test: yes\r\nSec-WebSocket-Protocol: chat, superchat\r\n"),
           101);
  CHECK_EQ(c.recv(), "v=13 p=superchat c=0 id=ok");
  CHECK_EQ(log.find("init"),
           "init method=GET path=/v query=a=1&b x-test=yes sv=yes missing=no "
           "ws=1 protocols=chat,superchat, peer=127.0.0.1 port_ok=1");
  CHECK_EQ(log.find("headers"), "headers x-test=1");
  // max_frame_size(64) from the upgrade: a 65-byte message closes 1009.
  c.send(std::string(65, 'x'));
  CHECK_EQ(c.expect_close(1009), 1009);
  CHECK(log.wait("terminate"));
  CHECK_EQ(log.find("terminate"),
           "terminate error too_big code=0 payload= class= reason= conn=1");
}

// ------------------------------------------------ deflate, hibernate

struct query_hibernating {};

struct deflate_handler : lariat::handler<> {
  explicit deflate_handler(t::log &l) : log(l) {}
  void init(lariat::request &req, upgrade_type &up) override {
    if (req.query() == "off") return;
    up.compress(true).deflate(lariat::deflate_option::threshold, 0);
    try {
      up.deflate(lariat::deflate_option::level, 10);  // out of 0..9
    } catch (const lariat::error &e) {
      log.add("level 10: " + std::string(e.name()));
    }
  }
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          std::monostate &) override {
    if (f.data == "!hibernate") {
      c.send_text("zzz");
      return result::hibernate;
    }
    std::string text = "compressed=" + std::string(c.compressed() ? "1" : "0") +
                       " got=" + std::string(f.data);
    lariat::frame out = lariat::frame::text(text);
    out.compress = false;  // so this raw client can read it either way
    c.reply(out);
    return result::ok;
  }
  result websocket_info(lariat::connection &c, lariat::message &m,
                        std::monostate &) override {
    if (m.is<query_hibernating>())
      c.send_text(c.hibernating() ? "hib=1" : "hib=0");
    return result::ok;
  }
  t::log &log;
};

TEST(deflate_options_and_hibernate) {
  t::log log;
  t::running_server rs;
  rs.server().route<deflate_handler>("/d", log);
  int port = rs.start();
  {
    t::client c;
    wsc_response resp;
    CHECK_EQ(c.open(port, "/d",
                    "Sec-WebSocket-Extensions: permessage-deflate\r\n", &resp),
             101);
    const char *ext = wsc_header(&resp, "Sec-WebSocket-Extensions");
    std::string extensions = ext ? ext : "";
    wsc_response_free(&resp);
    CHECK_EQ(extensions.compare(0, 18, "permessage-deflate"), 0);
    CHECK_EQ(log.find("level 10"), "level 10: LARIAT_ERR_INVALID_ARGUMENT");
    c.get()->allowed_rsv = WSC_RSV1;
    c.send("hi");  // an uncompressed message is valid after negotiation
    CHECK_EQ(c.recv(), "compressed=1 got=hi");
  }
  {
    t::client c;
    CHECK_EQ(c.open(port, "/d?off",
                    "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
             101);
    c.send("hi");
    CHECK_EQ(c.recv(), "compressed=0 got=hi");
    // result::hibernate, observed through the connection view.
    c.send("!hibernate");
    CHECK_EQ(c.recv(), "zzz");
    c.send("awake");
    CHECK_EQ(c.recv(), "compressed=0 got=awake");
  }
}

// The id a handler reports lets the test post to it.
struct hib_handler : lariat::handler<> {
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          std::monostate &) override {
    if (f.data == "!hibernate") {
      c.send_text(std::to_string(c.id()));
      return result::hibernate;
    }
    return result::ok;
  }
  result websocket_info(lariat::connection &c, lariat::message &m,
                        std::monostate &) override {
    if (m.is<query_hibernating>())
      c.send_text(c.hibernating() ? "hib=1" : "hib=0");
    return result::ok;
  }
};

TEST(hibernate_result) {
  t::running_server rs;
  rs.server().route<hib_handler>("/h");
  int port = rs.start();
  t::client c;
  CHECK_EQ(c.open(port, "/h"), 101);
  c.send("!hibernate");
  lariat::conn_id id = std::stoull(c.recv());
  CHECK(rs.server().post(id, query_hibernating{}));
  CHECK_EQ(c.recv(), "hib=1");
  // A reply does not wake it for good: once written, it sleeps again.
  CHECK(rs.server().post(id, query_hibernating{}));
  CHECK_EQ(c.recv(), "hib=1");
}

// Flow control through the wrapper: reply() says false past the cap
// instead of throwing, websocket_drain fires once the client catches up,
// and set_active(false) stops reading until a posted message resumes it.
struct resume {};

struct flow_handler : lariat::handler<> {
  void init(lariat::request &, lariat::upgrade<std::monostate> &up) override {
    up.max_queued(256 * 1024, LARIAT_BACKPRESSURE_REFUSE).low_water(1024);
  }
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          std::monostate &) override {
    if (f.data == "!flood") {
      std::string chunk(64 * 1024, 'f');
      int sent = 0;
      while (sent < 1000 && c.reply(lariat::frame::binary(chunk))) ++sent;
      c.send_text("sent=" + std::to_string(sent) + " queued<=cap=" +
                  (c.buffered_amount() <= 256 * 1024 ? "1" : "0"));
    } else if (f.data == "!pause") {
      c.send_text(std::to_string(c.id()));
      c.set_active(false);
    } else {
      c.reply(f);
    }
    return result::ok;
  }
  result websocket_info(lariat::connection &c, lariat::message &m,
                        std::monostate &) override {
    if (m.is<resume>()) c.set_active(true);
    return result::ok;
  }
  result websocket_drain(lariat::connection &c, std::monostate &) override {
    c.send_text("drained");
    return result::ok;
  }
};

TEST(flow_control_through_the_wrapper) {
  t::running_server rs;
  rs.server().route<flow_handler>("/f");
  int port = rs.start();
  t::client c;
  CHECK_EQ(c.open(port, "/f"), 101);
  c.send("!flood");
  // Everything the handler could queue, then its report, then drain.
  int binaries = 0;
  std::string text;
  for (;;) {
    wsc_frame f;
    CHECK_EQ(wsc_recv_message(c.get(), &f, 5000), 1);
    bool binary = f.opcode == WSC_OP_BINARY;
    if (!binary) text.assign(reinterpret_cast<char *>(f.payload), f.len);
    wsc_frame_free(&f);
    if (binary) {
      ++binaries;
      continue;
    }
    if (text == "drained") break;
    CHECK_EQ(text, "sent=" + std::to_string(binaries) + " queued<=cap=1");
  }
  CHECK(binaries > 0 && binaries < 1000);
  c.send("!pause");
  lariat::conn_id id = std::stoull(c.recv());
  c.send("while paused");
  wsc_frame f;
  CHECK_EQ(wsc_recv_frame(c.get(), &f, 200), -ETIMEDOUT);
  CHECK(rs.server().post(id, resume{}));
  CHECK_EQ(c.recv(), "while paused");
}

}  // namespace

int main(int argc, char **argv) { return t::run_all(argc, argv); }
