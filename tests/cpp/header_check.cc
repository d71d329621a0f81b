// Compiles <lariat/lariat.hpp> under each supported -std with strict
// warnings (cppzmq's CI matrix), instantiating every template so the
// warnings cover the trampolines too. Run, it checks a few trivial facts.
#include <cstdio>
#include <lariat/lariat.hpp>
#include <string>

namespace {

struct state {
  int messages = 0;
};

struct every_callback : lariat::handler<state> {
  void init(lariat::request &req, upgrade_type &up) override {
    if (!req.is_websocket()) up.reply(404, {{"x", "y"}}, "no");
    up.idle_timeout(std::chrono::seconds(1)).compress(false);
    up.emplace_state();
  }
  lariat::result websocket_init(lariat::connection &c, state &) override {
    c.send_text("hi");
    return lariat::result::ok;
  }
  lariat::result websocket_handle(lariat::connection &c, const lariat::frame &f,
                                  state &s) override {
    ++s.messages;
    c.reply(f);
    if (c.subscribe("t") && c.unsubscribe("t") && c.dropped() == 0)
      s.messages += static_cast<int>(c.publish("t", f) +
                                     c.publish_binary("t", "b", 1));
    return lariat::result::hibernate;
  }
  lariat::result websocket_info(lariat::connection &c, lariat::message &m,
                                state &) override {
    if (const int *n = m.get<int>()) c.send_text(std::to_string(*n));
    return lariat::result::shutdown;
  }
  void terminate(lariat::connection *, const lariat::reason &r,
                 state *) override {
    (void)r.kind();
  }
};

}  // namespace

int main() {
  lariat::server s;
  s.route<every_callback>("/a");
  lariat::handler_fns<std::string> fns;
  fns.websocket_handle = [](lariat::connection &c, const lariat::frame &f,
                            std::string &text) {
    text.assign(f.data);
    c.send_binary(text);
    return lariat::result::ok;
  };
  s.route("/b", std::move(fns));
  bool posted = s.post(1, 42);  // no such connection: accepted, freed
  // Any thread; nobody subscribes, and the loop never runs the call, which
  // lariat_server_del() still does.
  bool published = s.publish_text("t", "x") && s.subscribers("t") == 0;
  int deferred = 0;
  bool defer_ok = s.defer([&deferred] { ++deferred; });
  lariat::error e(LARIAT_ERR_NOT_FOUND);
  s.close();
  bool ok = posted && published && defer_ok && deferred == 1 &&
            e.num() == LARIAT_ERR_NOT_FOUND && !lariat::version().empty();
  std::printf("lariat.hpp (C++ %ld) with lariat %s: %s\n",
              static_cast<long>(__cplusplus), lariat_version(0)->version_str,
              ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
