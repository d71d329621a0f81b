// The client through the C++ wrapper, over loopback: a handler object
// connects to a lariat echo server, echoes 100 messages in order, ends
// with shutdown; a failed handshake reports its status and headers; the
// state lives across a reconnect and is destroyed once; over wss:// the
// test CA is trusted through client_options and an unknown one refused.
#include <atomic>
#include <memory>
#include <string>

#include "support.hpp"
#include "test_certs.h"

using lariat::result;

namespace {

struct echo : lariat::handler<> {
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          std::monostate &) override {
    if (f.is_data()) c.reply(f);
    return result::ok;
  }
};

struct counter_state {
  int next = 0;
  std::shared_ptr<std::atomic<int>> destroyed;
  ~counter_state() {
    if (destroyed) ++*destroyed;
  }
  counter_state() = default;
  counter_state(counter_state &&o) noexcept
      : next(o.next), destroyed(std::move(o.destroyed)) {}
};

struct counting_client : lariat::handler<counter_state> {
  std::atomic<int> inits{0}, ends{0}, echoes{0};
  std::atomic<int> last_kind{-1};
  std::atomic<bool> resumed{false};
  result websocket_init(lariat::connection &c, counter_state &s) override {
    ++inits;
    resumed = c.tls_resumed();
    s.next = 0;
    c.send_text("0");
    return result::ok;
  }
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          counter_state &s) override {
    CHECK(f.data == std::to_string(s.next));
    ++echoes;
    if (++s.next == 100) return result::shutdown;
    c.send_text(std::to_string(s.next));
    return result::ok;
  }
  void terminate(lariat::connection *, const lariat::reason &why,
                 counter_state *) override {
    last_kind = static_cast<int>(why.kind());
    ++ends;
  }
};

TEST(client_echoes_through_the_wrapper) {
  t::running_server rs;
  rs.server().route<echo>("*");
  int port = rs.start();
  auto destroyed = std::make_shared<std::atomic<int>>(0);
  auto h = std::make_unique<counting_client>();
  counting_client &ref = *h;
  counter_state initial;
  initial.destroyed = destroyed;
  CHECK(rs.server().defer([&, port] {
    lariat::client_options o;
    o.protocol("x").deflate(LARIAT_DEFLATE_ENABLE, 1);
    CHECK(rs.server().connect("ws://127.0.0.1:" + std::to_string(port) + "/",
                              std::move(h), o, std::move(initial)) != 0);
  }));
  for (int i = 0; i < 500 && ref.ends == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK_EQ(ref.inits.load(), 1);
  CHECK_EQ(ref.echoes.load(), 100);
  CHECK_EQ(ref.last_kind.load(), LARIAT_REASON_SHUTDOWN);
  CHECK_EQ(destroyed->load(), 1);
}

TEST(failed_handshake_reports_status_and_headers) {
  t::running_server rs;
  rs.server().route<echo>("/only");
  int port = rs.start();
  std::atomic<int> status{0};
  std::atomic<bool> done{false};
  std::string failure;
  lariat::handler_fns<> fns;
  fns.terminate = [&](lariat::connection *c, const lariat::reason &why,
                      std::monostate *) {
    CHECK(c == nullptr);
    CHECK(why.kind() == lariat::reason_kind::handshake_failed);
    CHECK(!why.retrying());
    CHECK(why.header("content-length").has_value());
    failure = std::string(why.failure());
    status = why.http_status();
    done = true;
  };
  CHECK(rs.server().defer([&, port] {
    rs.server().connect("ws://127.0.0.1:" + std::to_string(port) + "/elsewhere",
                        std::move(fns));
  }));
  for (int i = 0; i < 500 && !done; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK_EQ(status.load(), 404);
  CHECK(failure.find("101") != std::string::npos);
}

// wss:// to a server whose certificate the run's test CA signed: echoes
// with the CA trusted; refused (verification on by default) without it.
TEST(wss_client_verifies_through_the_wrapper) {
  test_cert ca, leaf;
  test_cert_make(&ca, "lariat test CA", nullptr, nullptr, 1);
  test_cert_make(&leaf, "localhost", "DNS:localhost,IP:127.0.0.1", &ca, 0);
  {
    lariat::server s;
    lariat::tls cfg;
    cfg.add_cert_pem(std::string_view(leaf.cert, leaf.cert_len),
                     std::string_view(leaf.key, leaf.key_len));
    s.route<echo>("*");
    s.listen_tls("127.0.0.1", 0, cfg);
    t::running_server rs(std::move(s));
    rs.start();
    std::string url =
        "wss://localhost:" + std::to_string(rs.server().tls_port()) + "/";
    CHECK_LARIAT_ERROR(LARIAT_ERR_TLS,
                       lariat::client_options().tls_ca("/nonexistent"));

    auto trusted = std::make_unique<counting_client>();
    counting_client &ok = *trusted;
    std::atomic<int> refused_kind{-1};
    std::string refused_failure;
    lariat::handler_fns<> fns;
    fns.terminate = [&](lariat::connection *, const lariat::reason &why,
                        std::monostate *) {
      refused_failure = std::string(why.failure());
      refused_kind = static_cast<int>(why.kind());
    };
    CHECK(rs.server().defer([&] {
      lariat::client_options o;
      o.tls_ca(ca.cafile).tls_server_name("localhost");
      rs.server().connect(url, std::move(trusted), o, counter_state());
      rs.server().connect(url, std::move(fns));  // the system's CAs
    }));
    for (int i = 0; i < 1000 && (ok.ends == 0 || refused_kind < 0); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK_EQ(ok.echoes.load(), 100);
    CHECK(!ok.resumed);  // the client's first connection: a full handshake
    CHECK_EQ(ok.last_kind.load(), LARIAT_REASON_SHUTDOWN);
    CHECK_EQ(refused_kind.load(), LARIAT_REASON_HANDSHAKE_FAILED);
    CHECK(refused_failure.find("unable to get local issuer certificate") !=
          std::string::npos);
  }
  test_cert_free(&leaf);
  test_cert_free(&ca);
}

}  // namespace

int main(int argc, char **argv) { return t::run_all(argc, argv); }
