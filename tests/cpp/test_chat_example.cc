// lariat-chat as a black box, over loopback with the C test client: the
// page, rooms chosen by query, broadcast to every member of a room (the
// sender included) and to nobody else, names from the query, the --tick
// worker's publishes, and a clean exit with close 1001 on SIGTERM. The binary comes from $LARIAT_CHAT.
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

extern char **environ;

namespace {

// lariat-chat --port 0, its first stdout line read for the port.
class chat_process {
 public:
  explicit chat_process(const std::vector<std::string> &extra = {}) {
    const char *path = std::getenv("LARIAT_CHAT");
    if (!path) t::fail(__FILE__, __LINE__, "LARIAT_CHAT is not set");
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::vector<char *> argv = {
        const_cast<char *>(path),        const_cast<char *>("--host"),
        const_cast<char *>("127.0.0.1"), const_cast<char *>("--port"),
        const_cast<char *>("0")};
    for (const std::string &arg : extra)
      argv.push_back(const_cast<char *>(arg.c_str()));
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, path, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    out_ = fds[0];
    CHECK_EQ(rc, 0);
    std::string first = read_line(10000);
    const std::string prefix = "listening on http://127.0.0.1:";
    if (first.compare(0, prefix.size(), prefix) != 0)
      t::fail(__FILE__, __LINE__, "unexpected first line: " + first);
    port_ = std::atoi(first.c_str() + prefix.size());
    CHECK(port_ > 0);
  }
  ~chat_process() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }
  int port() const { return port_; }

  void signal(int sig) { kill(pid_, sig); }
  // The exit status, 128 + N for signal N, -1 if still running after |ms|.
  int wait_exit(int ms) {
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

 private:
  std::string read_line(int ms) {
    std::string line;
    char ch;
    while (true) {
      pollfd p = {out_, POLLIN, 0};
      if (poll(&p, 1, ms) != 1 || read(out_, &ch, 1) != 1 || ch == '\n')
        return line;
      line += ch;
    }
  }
  pid_t pid_ = -1;
  int out_ = -1;
  int port_ = 0;
};

std::string get(int port, const std::string &path, int *status,
                std::string *content_type = nullptr) {
  t::client c;
  c.connect(port);
  wsc_response resp;
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  *status = wsc_request(c.get(), request.c_str(), &resp, 3000);
  std::string body = resp.body ? std::string(resp.body, resp.body_len) : "";
  if (content_type) {
    const char *ct = wsc_header(&resp, "content-type");
    *content_type = ct ? ct : "";
  }
  wsc_response_free(&resp);
  return body;
}

const std::string kTimedOut =
    "<error " + std::string(wsc_strerror(-ETIMEDOUT)) + ">";

TEST(chat_page_rooms_and_broadcast) {
  chat_process chat;
  int port = chat.port();

  int status = 0;
  std::string type;
  std::string page = get(port, "/", &status, &type);
  CHECK_EQ(status, 200);
  CHECK_EQ(type, "text/html; charset=utf-8");
  CHECK(page.find("<ul id=\"messages\">") != std::string::npos);
  CHECK(page.find("<input id=\"text\"") != std::string::npos);
  CHECK(page.find("<button id=\"send\"") != std::string::npos);
  CHECK(page.find("'/ws?'") != std::string::npos);
  get(port, "/nope", &status);
  CHECK_EQ(status, 404);

  t::client alice, bob, carol;
  CHECK_EQ(alice.open(port, "/ws?room=r1&nick=alice"), 101);
  CHECK_EQ(alice.recv(), "* welcome alice, you are in room r1 (1 here)");
  CHECK_EQ(alice.recv(), "* alice joined");
  CHECK_EQ(bob.open(port, "/ws?nick=b%C3%B6b+the+2nd&room=r1"), 101);
  CHECK_EQ(bob.recv(),
           "* welcome b\xC3\xB6"
           "b the 2nd, you are in room r1 (2 here)");
  CHECK_EQ(bob.recv(),
           "* b\xC3\xB6"
           "b the 2nd joined");
  CHECK_EQ(alice.recv(),
           "* b\xC3\xB6"
           "b the 2nd joined");
  // Default room; a nick that is not UTF-8 falls back to a guest name.
  CHECK_EQ(carol.open(port, "/ws?nick=%FF"), 101);
  std::string welcome = carol.recv();
  CHECK_EQ(welcome.compare(0, 16, "* welcome guest-"), 0);
  CHECK(welcome.find(", you are in room lobby (1 here)") != std::string::npos);
  carol.recv();  // her own "joined"

  alice.send("hello");
  CHECK_EQ(alice.recv(), "alice: hello");  // the sender too
  CHECK_EQ(bob.recv(), "alice: hello");
  bob.send("hi alice");
  CHECK_EQ(bob.recv(),
           "b\xC3\xB6"
           "b the 2nd: hi alice");
  CHECK_EQ(alice.recv(),
           "b\xC3\xB6"
           "b the 2nd: hi alice");
  CHECK_EQ(carol.recv(300), kTimedOut);  // another room

  bob.close();
  CHECK_EQ(alice.recv(),
           "* b\xC3\xB6"
           "b the 2nd left");

  // A clean stop: 1001 to everyone, then exit status 0.
  chat.signal(SIGTERM);
  CHECK_EQ(alice.expect_close(1001), 1001);
  CHECK_EQ(carol.expect_close(1001), 1001);
  CHECK_EQ(chat.wait_exit(10000), 0);
}

// --tick: a worker thread's publishes reach every member of every room,
// consecutively numbered, after the member's own welcome.
TEST(chat_tick_reaches_every_room) {
  chat_process chat({"--tick", "20"});
  t::client alice, dave;
  CHECK_EQ(alice.open(chat.port(), "/ws?room=r1&nick=alice"), 101);
  CHECK_EQ(alice.recv(), "* welcome alice, you are in room r1 (1 here)");
  CHECK_EQ(alice.recv(), "* alice joined");
  CHECK_EQ(dave.open(chat.port(), "/ws?room=r2&nick=dave"), 101);
  CHECK_EQ(dave.recv(), "* welcome dave, you are in room r2 (1 here)");
  CHECK_EQ(dave.recv(), "* dave joined");
  for (t::client *c : {&alice, &dave}) {
    long last = 0;
    for (int i = 0; i < 3; ++i) {
      std::string line = c->recv();
      CHECK_EQ(line.compare(0, 7, "* tick "), 0);
      long n = std::atol(line.c_str() + 7);
      if (last) CHECK_EQ(n, last + 1);
      last = n;
    }
  }
  chat.signal(SIGTERM);
  CHECK_EQ(alice.expect_close(1001), 1001);
  CHECK_EQ(dave.expect_close(1001), 1001);
  CHECK_EQ(chat.wait_exit(10000), 0);
}

}  // namespace

int main(int argc, char **argv) { return t::run_all(argc, argv); }
