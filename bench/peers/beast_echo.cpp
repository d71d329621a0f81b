// beast_echo: a minimal Boost.Beast WebSocket echo server (Debian's
// libboost-dev; Beast and Boost.System are header-only in Boost 1.74).
// One io_context on one thread; each connection reads a whole message and
// writes it back with the same text/binary type, then reads the next.
// auto_fragment is turned off (Beast's default splits every outgoing
// message into 4 KiB frames), so like the other servers it answers with one
// frame per message. Text messages are UTF-8 validated (Beast's default).
//   usage: beast_echo [--port N] [--host 127.0.0.1] [--deflate]
// --deflate enables permessage-deflate (server side).
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

static bool g_deflate = false;

class session : public std::enable_shared_from_this<session> {
 public:
  explicit session(tcp::socket s) : ws_(std::move(s)) {}

  void start() {
    ws_.next_layer().set_option(tcp::no_delay(true));
    ws_.auto_fragment(false);
    ws_.read_message_max(64u << 20);
    if (g_deflate) {
      websocket::permessage_deflate pmd;
      pmd.server_enable = true;
      pmd.client_enable = false;
      ws_.set_option(pmd);
    }
    ws_.async_accept([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->read();
    });
  }

 private:
  void read() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec,
                                                     std::size_t) {
      if (ec) return;  // closed (close handshake answered by Beast) or error
      self->ws_.text(self->ws_.got_text());
      self->ws_.async_write(
          self->buf_.data(),
          [self](beast::error_code ec2, std::size_t) {
            if (ec2) return;
            self->buf_.consume(self->buf_.size());
            self->read();
          });
    });
  }

  websocket::stream<tcp::socket> ws_;
  beast::flat_buffer buf_;
};

static void do_accept(tcp::acceptor &acceptor) {
  acceptor.async_accept([&acceptor](beast::error_code ec, tcp::socket s) {
    if (!ec) std::make_shared<session>(std::move(s))->start();
    do_accept(acceptor);
  });
}

int main(int argc, char **argv) {
  std::string host = "127.0.0.1";
  unsigned short port = 9003;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--port") && i + 1 < argc) {
      port = static_cast<unsigned short>(std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--host") && i + 1 < argc) {
      host = argv[++i];
    } else if (!std::strcmp(argv[i], "--deflate")) {
      g_deflate = true;
    } else {
      std::fprintf(stderr, "usage: %s [--port N] [--host ADDR] [--deflate]\n",
                   argv[0]);
      return 2;
    }
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  asio::io_context ioc(1);
  tcp::acceptor acceptor(ioc);
  tcp::endpoint ep(asio::ip::make_address(host), port);
  acceptor.open(ep.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(ep);
  acceptor.listen(asio::socket_base::max_listen_connections);
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&ioc](beast::error_code, int) { ioc.stop(); });
  do_accept(acceptor);
  std::printf("beast_echo listening on %s:%u%s\n", host.c_str(), port,
              g_deflate ? ", permessage-deflate on" : "");
  std::fflush(stdout);
  ioc.run();
  return 0;
}
