// lariat-chat: a multi-room chat server on the C++ wrapper.
//
//   lariat-chat [--host 127.0.0.1] [--port 8080] [--redis URL]
//               [--tls-cert FILE --tls-key FILE]
//
// GET / serves the page (built into the binary); its script connects to
// /ws?room=NAME&nick=NICK (room "lobby" and nick "guest-<id>" by default).
// Every text message a client sends goes to everyone in its room, the
// sender included, as "nick: text"; lines starting with "* " are notices.
// Rooms are topics. With --tick MS a worker thread sends every member
// "* tick N" every MS milliseconds.
// With --port 0 the kernel picks the port; the first line on stdout says
// which ("listening on http://HOST:PORT/", https with --tls-cert and
// --tls-key, which serve the page over https and the chat over wss). SIGINT or SIGTERM closes every
// connection with 1001 and exits 0.
// With --redis URL (redis://host:port/db) several chat servers share their
// rooms through Redis: a line typed on one reaches the members on all.
// When the bridge finds that messages of a room were missed (Redis went
// away, say), the room's members here get a notice saying so.
#include <lariat/lariat.hpp>
#include <uv.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace {

const char kPage[] = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lariat chat</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; height: 100vh;
         display: flex; flex-direction: column; background: #f4f5f7; }
  header { display: flex; gap: 1em; align-items: baseline;
           padding: .6em 1em; background: #23395d; color: #fff; }
  header h1 { font-size: 1.1em; margin: 0; }
  #status { margin-left: auto; font-size: .9em; }
  #messages { flex: 1; overflow-y: auto; list-style: none; margin: 0;
              padding: .5em 1em; }
  #messages li { padding: .3em 0; border-bottom: 1px solid #e3e5e8; }
  #messages li.notice { color: #777; font-style: italic; }
  form { display: flex; gap: .5em; padding: .6em 1em; background: #fff;
         border-top: 1px solid #ddd; }
  #text { flex: 1; padding: .4em; font: inherit; }
  #send { padding: .4em 1.2em; font: inherit; }
</style>
</head>
<body>
<header><h1>lariat chat</h1><span id="where"></span>
<span id="status">connecting&hellip;</span></header>
<ul id="messages"></ul>
<form id="form">
  <input id="text" autocomplete="off" maxlength="1000"
         placeholder="Say something" autofocus>
  <button id="send" type="submit">Send</button>
</form>
<script>
'use strict';
const params = new URLSearchParams(location.search);
const room = params.get('room') || 'lobby';
const nick = params.get('nick') || '';
const listEl = document.getElementById('messages');
const statusEl = document.getElementById('status');
const inputEl = document.getElementById('text');
document.getElementById('where').textContent =
    'room: ' + room + (nick ? ' \u00b7 you: ' + nick : '');

function show(text) {
  const li = document.createElement('li');
  li.textContent = text;  // never innerHTML: messages come from anyone
  if (text.startsWith('* ')) li.className = 'notice';
  listEl.appendChild(li);
  listEl.scrollTop = listEl.scrollHeight;
}

const query = new URLSearchParams({room});
if (nick) query.set('nick', nick);
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') +
                         location.host + '/ws?' + query);
ws.onopen = () => { statusEl.textContent = 'connected'; };
ws.onmessage = (e) => show(e.data);
ws.onclose = (e) => { statusEl.textContent = 'disconnected (' + e.code + ')'; };
document.getElementById('form').onsubmit = (e) => {
  e.preventDefault();
  if (inputEl.value && ws.readyState === WebSocket.OPEN) {
    ws.send(inputEl.value);
    inputEl.value = '';
  }
  inputEl.focus();
};
</script>
</body>
</html>
)html";

constexpr std::uint64_t kMaxMessage = 4096;
constexpr std::size_t kMaxName = 32;

bool utf8_valid(std::string_view s) {
  static const std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07u;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded value: '+' is a space, %XX a byte.
std::string form_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    int hi = -1, lo = -1;
    if (s[i] == '%' && i + 2 < s.size()) {
      hi = hex_digit(s[i + 1]);
      lo = hex_digit(s[i + 2]);
    }
    if (s[i] == '+') {
      out += ' ';
    } else if (hi >= 0 && lo >= 0) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::optional<std::string> query_param(std::string_view query,
                                       std::string_view name) {
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? "" : query.substr(amp + 1);
    std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name)
      return form_decode(eq == std::string_view::npos ? ""
                                                      : pair.substr(eq + 1));
  }
  return std::nullopt;
}

// A room or nick name: valid UTF-8 (it goes out in text frames), no
// control characters, at most kMaxName bytes; else |fallback|.
std::string clean_name(std::optional<std::string> s, std::string fallback) {
  if (!s || s->empty() || s->size() > kMaxName || !utf8_valid(*s))
    return fallback;
  for (unsigned char c : *s)
    if (c < 0x20 || c == 0x7F) return fallback;
  return *s;
}

// The state of one chat connection.
struct member {
  member(std::string r, std::string n)
      : room(std::move(r)), nick(std::move(n)) {}
  std::string room;  // its topic is "room:" + room
  std::string nick;  // empty until websocket_init names a guest
};

// Every member also subscribes to this topic, which --tick feeds.
constexpr std::string_view kClock = "clock";

// Rooms are topics: lariat keeps the members, and a line published on the
// loop thread reaches every member, the sender too, all in the same order.
class chat : public lariat::handler<member> {
 public:
  explicit chat(lariat::server &server) : server_(server) {}

  void init(lariat::request &req, upgrade_type &up) override {
    up.max_frame_size(kMaxMessage);
    up.emplace_state(clean_name(query_param(req.query(), "room"), "lobby"),
                     clean_name(query_param(req.query(), "nick"), ""));
  }

  lariat::result websocket_init(lariat::connection &c, member &m) override {
    if (m.nick.empty()) m.nick = "guest-" + std::to_string(c.id());
    c.subscribe(topic(m));
    c.subscribe(kClock);
    c.send_text("* welcome " + m.nick + ", you are in room " + m.room + " (" +
                std::to_string(server_.subscribers(topic(m))) + " here)");
    server_.publish_text(topic(m), "* " + m.nick + " joined");
    return lariat::result::ok;
  }

  lariat::result websocket_handle(lariat::connection &, const lariat::frame &f,
                                  member &m) override {
    // Text only (lariat validated its UTF-8); binary, pings and pongs are
    // not chat.
    if (f.is_text() && !f.data.empty())
      server_.publish_text(topic(m), m.nick + ": " + std::string(f.data));
    return lariat::result::ok;
  }

  void terminate(lariat::connection *c, const lariat::reason &,
                 member *m) override {
    // Unsubscribed already; not sent (false) when the server stops. The
    // C handle, not server_: terminate also runs while server_ closes.
    if (c && m)
      lariat::publish(c->server_handle(), topic(*m),
                      lariat::frame::text("* " + m->nick + " left"));
  }

 private:
  static std::string topic(const member &m) { return "room:" + m.room; }
  lariat::server &server_;
};

// --tick MS: a worker thread publishes "* tick N" to every member through
// the any-thread publish: no connection ids, no locks around a registry.
class ticker {
 public:
  ticker(lariat::server &server, std::chrono::milliseconds every)
      : thread_([this, &server, every] {
          std::unique_lock<std::mutex> lock(mutex_);
          try {
            for (long n = 1; !wake_.wait_for(lock, every, [this] { return stop_; });
                 ++n)
              if (!server.publish_text(kClock, "* tick " + std::to_string(n)))
                break;  // the server stops
          } catch (const std::exception &e) {
            std::fprintf(stderr, "lariat-chat: ticker: %s\n", e.what());
          }
        }) {}
  ~ticker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  ticker(const ticker &) = delete;
  ticker &operator=(const ticker &) = delete;

 private:
  std::mutex mutex_;  // before thread_: the thread uses them at once
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

class page : public lariat::handler<> {
 public:
  void init(lariat::request &req, upgrade_type &up) override {
    if (req.method() != "GET") {
      up.reply(405, {{"allow", "GET"}});
      return;
    }
    up.reply(200,
             {{"content-type", "text/html; charset=utf-8"},
              {"cache-control", "no-store"}},
             std::string_view(kPage, sizeof kPage - 1));
  }
};

uv_signal_t sigint_watcher, sigterm_watcher;

void on_signal(uv_signal_t *sig, int) {
  try {
    static_cast<lariat::server *>(sig->data)->stop();
  } catch (const lariat::error &) {
    // Not after construction succeeded; and nothing may unwind into libuv.
  }
  // The loop ends once every connection has closed and nothing else is
  // open.
  uv_close(reinterpret_cast<uv_handle_t *>(&sigint_watcher), nullptr);
  uv_close(reinterpret_cast<uv_handle_t *>(&sigterm_watcher), nullptr);
}

// Bridge events: logged, and a gap told to the room it happened in (a
// local notice: the other servers did not miss anything).
void on_bridge(lariat::server &server, const lariat::bridge_event &ev) {
  using kind = lariat::bridge_event::kind_type;
  const char *link =
      ev.link == lariat::bridge_event::link_type::subscriber ? "subscriber" : "publisher";
  if (ev.kind == kind::up) {
    std::fprintf(stderr, "lariat-chat: redis %s connection up\n", link);
  } else if (ev.kind == kind::down) {
    std::fprintf(stderr, "lariat-chat: redis %s connection down: %s (%.*s)\n",
                 link, lariat_err_name(ev.error), static_cast<int>(ev.detail.size()),
                 ev.detail.data());
  } else if (ev.kind == kind::gap) {
    std::string text = "* " + std::to_string(ev.missed) +
                       " messages from another server were missed";
    lariat::frame notice = lariat::frame::text(text);
    notice.local = true;
    server.publish(ev.topic, notice);
  }
}

int usage(const char *argv0) {
  std::fprintf(stderr,
               "usage: %s [--host HOST] [--port PORT] [--tick MS] [--redis URL]\n"
               "  [--tls-cert FILE --tls-key FILE]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  std::string host = "127.0.0.1";
  int port = 8080;
  long tick_ms = 0;
  const char *tls_cert = nullptr, *tls_key = nullptr;
  std::string redis;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--host" && i + 1 < argc) {
      host = argv[++i];
    } else if (arg == "--port" && i + 1 < argc) {
      char *end = nullptr;
      long p = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || p < 0 || p > 65535) return usage(argv[0]);
      port = static_cast<int>(p);
    } else if (arg == "--tls-cert" && i + 1 < argc) {
      tls_cert = argv[++i];
    } else if (arg == "--tls-key" && i + 1 < argc) {
      tls_key = argv[++i];
    } else if (arg == "--redis" && i + 1 < argc) {
      redis = argv[++i];
    } else if (arg == "--tick" && i + 1 < argc) {
      char *end = nullptr;
      tick_ms = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || tick_ms < 0) return usage(argv[0]);
    } else {
      return usage(argv[0]);
    }
  }
  if (!tls_cert != !tls_key) return usage(argv[0]);

  try {
    lariat::server server;
    server.route<page>("/");
    server.route<chat>("/ws", server);
    if (tls_cert) {
      lariat::tls tls;
      tls.add_cert_file(tls_cert, tls_key);
      server.listen_tls(host, port, tls);  // the server keeps its own ref
    } else {
      server.listen(host, port);
    }
    if (!redis.empty()) {
      server.join_redis(redis, "lariat-chat:");
      server.on_bridge([&server](const lariat::bridge_event &ev) { on_bridge(server, ev); });
    }

    uv_loop_t *loop = server.loop();
    uv_signal_init(loop, &sigint_watcher);
    uv_signal_init(loop, &sigterm_watcher);
    sigint_watcher.data = sigterm_watcher.data = &server;
    uv_signal_start(&sigint_watcher, on_signal, SIGINT);
    uv_signal_start(&sigterm_watcher, on_signal, SIGTERM);

    bool v6 = host.find(':') != std::string::npos;
    std::printf("listening on %s://%s%s%s:%d/\n", tls_cert ? "https" : "http",
                v6 ? "[" : "", host.c_str(), v6 ? "]" : "", server.port());
    std::fflush(stdout);
    // Declared after the server, so it stops (and joins) before it.
    std::optional<ticker> tick;
    if (tick_ms > 0) tick.emplace(server, std::chrono::milliseconds(tick_ms));
    server.run();
  } catch (const lariat::error &e) {
    std::fprintf(stderr, "lariat-chat: %s (%s)\n", e.what(), e.name());
    return 1;
  }
  return 0;
}
