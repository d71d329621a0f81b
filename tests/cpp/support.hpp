// Test support for the C++ wrapper tests: a tiny exception-based check
// framework (no longjmp, so RAII fixtures - a server running on a thread
// above all - unwind cleanly when a check fails), a wsclient RAII wrapper,
// a server-on-a-thread fixture and a thread-safe event log.
#ifndef LARIAT_TESTS_CPP_SUPPORT_HPP
#define LARIAT_TESTS_CPP_SUPPORT_HPP

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <lariat/lariat.hpp>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "wsclient.h"

namespace t {

struct failure {
  std::string message;
};

template <class T>
std::string show(const T &v) {
  std::ostringstream out;
  if constexpr (std::is_enum_v<T>) {
    out << static_cast<long long>(v);
  } else if constexpr (std::is_convertible_v<const T &, std::string_view>) {
    out << '"' << std::string_view(v) << '"';
  } else if constexpr (std::is_same_v<T, std::nullptr_t>) {
    out << "nullptr";
  } else {
    out << v;
  }
  return out.str();
}

template <class T>
std::string show(const std::vector<T> &v) {
  std::string out = "{";
  for (std::size_t i = 0; i < v.size(); ++i)
    out += (i ? ", " : "") + show(v[i]);
  return out + "}";
}

[[noreturn]] inline void fail(const char *file, int line,
                              const std::string &what) {
  std::ostringstream out;
  out << file << ":" << line << ": " << what;
  throw failure{out.str()};
}

#define CHECK(cond)                                                 \
  do {                                                              \
    if (!(cond)) ::t::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

// Prints both operands, like libuv's ASSERT_EQ.
#define CHECK_EQ(a, b)                                             \
  do {                                                             \
    const auto &t_a_ = (a);                                        \
    const auto &t_b_ = (b);                                        \
    if (!(t_a_ == t_b_))                                           \
      ::t::fail(__FILE__, __LINE__,                                \
                std::string(#a " == " #b ": ") + ::t::show(t_a_) + \
                    " != " + ::t::show(t_b_));                     \
  } while (0)

// Runs |body| and checks it throws lariat::error with num() == |code|.
#define CHECK_LARIAT_ERROR(code, body)                                        \
  do {                                                                        \
    bool t_thrown_ = false;                                                   \
    try {                                                                     \
      body;                                                                   \
    } catch (const lariat::error &t_e_) {                                     \
      t_thrown_ = true;                                                       \
      CHECK_EQ(t_e_.num(), (code));                                           \
      CHECK_EQ(std::string(t_e_.what()), std::string(lariat_strerror(code))); \
    }                                                                         \
    if (!t_thrown_)                                                           \
      ::t::fail(__FILE__, __LINE__, "no lariat::error from " #body);          \
  } while (0)

struct test_case {
  const char *name;
  void (*fn)();
};

inline std::vector<test_case> &registry() {
  static std::vector<test_case> tests;
  return tests;
}

struct registrar {
  registrar(const char *name, void (*fn)()) {
    registry().push_back({name, fn});
  }
};

#define TEST(name)                                      \
  static void name();                                   \
  static ::t::registrar name##_registrar(#name, &name); \
  static void name()

// Runs every test (or those named on the command line); 1 if any failed.
inline int run_all(int argc, char **argv) {
  int failed = 0, ran = 0;
  for (const auto &tc : registry()) {
    if (argc > 1) {
      bool wanted = false;
      for (int i = 1; i < argc; ++i)
        wanted |= std::strcmp(argv[i], tc.name) == 0;
      if (!wanted) continue;
    }
    ++ran;
    std::printf("[ RUN  ] %s\n", tc.name);
    std::fflush(stdout);
    try {
      tc.fn();
      std::printf("[  OK  ] %s\n", tc.name);
    } catch (const failure &f) {
      ++failed;
      std::printf("[ FAIL ] %s\n  %s\n", tc.name, f.message.c_str());
    } catch (const std::exception &e) {
      ++failed;
      std::printf("[ FAIL ] %s\n  unexpected exception: %s\n", tc.name,
                  e.what());
    }
    std::fflush(stdout);
  }
  std::printf("%d of %d tests passed\n", ran - failed, ran);
  return failed || ran == 0 ? 1 : 0;
}

// Polls |cond| until it holds or |ms| pass; returns its last value.
inline bool eventually(const std::function<bool()> &cond, int ms = 3000) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return cond();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// An append-only log shared by the loop thread and the test thread.
class log {
 public:
  void add(std::string s) {
    std::lock_guard<std::mutex> lock(m_);
    lines_.push_back(std::move(s));
    cv_.notify_all();
  }
  std::vector<std::string> lines() const {
    std::lock_guard<std::mutex> lock(m_);
    return lines_;
  }
  std::size_t count(const std::string &prefix) const {
    std::lock_guard<std::mutex> lock(m_);
    std::size_t n = 0;
    for (const auto &l : lines_) n += l.compare(0, prefix.size(), prefix) == 0;
    return n;
  }
  // Waits until |n| lines start with |prefix|.
  bool wait(const std::string &prefix, std::size_t n = 1, int ms = 3000) {
    std::unique_lock<std::mutex> lock(m_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] {
      std::size_t c = 0;
      for (const auto &l : lines_)
        c += l.compare(0, prefix.size(), prefix) == 0;
      return c >= n;
    });
  }
  // The first line starting with |prefix| ("" if none).
  std::string find(const std::string &prefix) const {
    std::lock_guard<std::mutex> lock(m_);
    for (const auto &l : lines_)
      if (l.compare(0, prefix.size(), prefix) == 0) return l;
    return "";
  }
  void clear() {
    std::lock_guard<std::mutex> lock(m_);
    lines_.clear();
  }

 private:
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
};

// A lariat::server running on its own thread. Configure it (routes,
// listen) through server() before start(); the destructor stops it from
// this thread, joins, and then the server member closes.
class running_server {
 public:
  explicit running_server(lariat::server s = lariat::server())
      : server_(std::move(s)) {}
  ~running_server() { stop(); }
  running_server(const running_server &) = delete;
  running_server &operator=(const running_server &) = delete;

  lariat::server &server() { return server_; }
  int start(const char *host = "127.0.0.1") {
    server_.listen(host, 0);
    port_ = server_.port();
    thread_ = std::thread([this] { server_.run(); });
    return port_;
  }
  // Returns once run() has returned.
  void stop() {
    if (thread_.joinable()) {
      (void)server_.stop_async();
      thread_.join();
    }
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }

 private:
  lariat::server server_;
  std::thread thread_;
  int port_ = 0;
};

// A wsclient connection closed at scope exit.
class client {
 public:
  client() {
    std::memset(&c_, 0, sizeof c_);
    c_.fd = -1;
  }
  ~client() { wsc_close(&c_); }
  client(const client &) = delete;
  client &operator=(const client &) = delete;

  wsc *get() { return &c_; }
  void connect(int port) {
    int rc = wsc_connect(&c_, "127.0.0.1", port, 3000);
    if (rc != 0)
      fail(__FILE__, __LINE__, std::string("wsc_connect: ") + wsc_strerror(rc));
  }
  // Connects and upgrades; returns the HTTP status.
  int open(int port, const char *path, const char *extra = nullptr,
           wsc_response *resp = nullptr) {
    connect(port);
    return wsc_handshake(&c_, path, extra, resp, 3000);
  }
  void send(const std::string &text) {
    int rc = wsc_send_text(&c_, text.c_str());
    if (rc != 0)
      fail(__FILE__, __LINE__,
           std::string("wsc_send_text: ") + wsc_strerror(rc));
  }
  // The next data message as text; "<error ...>" when none came.
  std::string recv(int ms = 3000) {
    wsc_frame f;
    int rc = wsc_recv_message(&c_, &f, ms);
    if (rc != 1) return std::string("<error ") + wsc_strerror(rc) + ">";
    std::string s(reinterpret_cast<const char *>(f.payload), f.len);
    if (f.opcode == WSC_OP_CLOSE)
      s = "<close " + std::to_string(f.close_code) + ">";
    wsc_frame_free(&f);
    return s;
  }
  // The server closes: expects its close frame with |code| (see
  // wsc_expect_close), answers it, waits for the server to end TCP and
  // closes. Returns |code|, the other close code seen, or the error.
  int expect_close(int code, int ms = 3000) {
    int rc = wsc_expect_close(&c_, code, ms);
    if (rc != 0) return rc == WSC_E_CLOSE_CODE ? c_.last_close_code : rc;
    wsc_send_close(&c_, code, nullptr, 0);
    finish(ms);
    return code;
  }
  // The client closes: sends close |code| (-1: no code), expects the echo,
  // then finishes like expect_close. 0 or the error.
  int close_handshake(int code, const std::string &reason = "", int ms = 3000) {
    int rc = wsc_send_close(&c_, code, reason.data(), reason.size());
    if (rc == 0) rc = wsc_expect_close(&c_, code, ms);
    if (rc == 0) finish(ms);
    return rc;
  }
  void close() { wsc_close(&c_); }

 private:
  // lariat completes a close once TCP has ended (RFC 6455 7.1.1: the
  // server closes first), so wait for its FIN, then close our side.
  void finish(int ms) {
    (void)wsc_wait_eof(&c_, ms);
    wsc_close(&c_);
  }

 public:
 private:
  wsc c_;
};

}  // namespace t

#endif
