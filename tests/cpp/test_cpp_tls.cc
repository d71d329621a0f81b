// wss:// through the C++ wrapper: lariat::tls (files, PEM, errors,
// reload, failures), server::listen_tls and tls_port beside a plain
// listener, connection::tls_version in a handler. The client is
// tests/tlstunnel.c; the certificates are made per run by `openssl req`.
#include <unistd.h>
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <type_traits>

#include "support.hpp"
#include "tlstunnel.h"

using lariat::result;

static_assert(!std::is_copy_constructible_v<lariat::tls>);
static_assert(std::is_nothrow_move_constructible_v<lariat::tls>);
static_assert(std::is_nothrow_swappable_v<lariat::tls>);

namespace {

struct cert_files {
  std::string dir, cert, key;
  explicit cert_files(const char *cn) {
    char tmpl[] = "/tmp/lariat-cpp-tls-XXXXXX";
    dir = mkdtemp(tmpl);
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-days 1 -subj /CN=" + std::string(cn) + " -keyout " + key + " -out " +
        cert + " >/dev/null 2>&1";
    CHECK_EQ(std::system(cmd.c_str()), 0);
  }
  ~cert_files() { std::system(("rm -rf " + dir).c_str()); }
  std::string read(const std::string &path) const {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
};

struct echo : lariat::handler<> {
  result websocket_handle(lariat::connection &c, const lariat::frame &f,
                          std::monostate &) override {
    if (f.is_text() && f.data == "!tls")
      c.send_text(std::string(c.tls_version().value_or("none")));
    else if (f.is_text())
      c.send_text(f.data);
    return result::ok;
  }
};

}  // namespace

TEST(tls_configuration_errors_throw) {
  lariat::tls cfg;
  CHECK_LARIAT_ERROR(LARIAT_ERR_TLS, cfg.add_cert_pem("junk", "junk"));
  CHECK_LARIAT_ERROR(UV_ENOENT, cfg.add_cert_file("/nonexistent", "/nonexistent"));
  lariat::server s;
  CHECK_LARIAT_ERROR(LARIAT_ERR_TLS, s.listen_tls("127.0.0.1", 0, cfg));
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_STATE, (void)s.tls_port());
  lariat::tls moved(std::move(cfg));
  CHECK(!cfg);
  CHECK_LARIAT_ERROR(LARIAT_ERR_INVALID_STATE, cfg.reload(moved));
  CHECK_EQ(moved.failures().first, 0u);
}

TEST(wss_echo_beside_plain) {
  cert_files a("a.test"), b("b.test");
  t::running_server rs;
  rs.server().route<echo>("*");
  lariat::tls cfg;
  cfg.add_cert_file(a.cert, a.key);
  rs.server().listen_tls("127.0.0.1", 0, cfg);
  int port = rs.start();  // the plain listener
  int tls_port = rs.server().tls_port();
  CHECK(tls_port > 0 && tls_port != port);

  for (const char *cn : {"a.test", "b.test"}) {
    tlt_options o{};
    tlt *tunnel = nullptr;
    int fd = -1;
    char why[256];
    CHECK_EQ(tlt_open(&tunnel, tls_port, &o, &fd, why, sizeof why, 5000), 0);
    CHECK_EQ(std::string(tlt_peer_cn(tunnel)), std::string(cn));
    t::client c;
    wsc_attach(c.get(), fd);
    CHECK_EQ(wsc_handshake(c.get(), "/", nullptr, nullptr, 3000), 101);
    c.send("!tls");
    CHECK_EQ(c.recv(), "TLSv1.3");
    c.send("hello");
    CHECK_EQ(c.recv(), "hello");
    tlt_close(tunnel, 1);
    // The renewed certificate (PEM in memory) for the next connection.
    lariat::tls renewed;
    renewed.add_cert_pem(b.read(b.cert), b.read(b.key));
    cfg.reload(renewed);
  }
  t::client plain;
  CHECK_EQ(plain.open(port, "/"), 101);
  plain.send("!tls");
  CHECK_EQ(plain.recv(), "none");
  CHECK_EQ(cfg.failures().first, 0u);
}

int main(int argc, char **argv) { return t::run_all(argc, argv); }
