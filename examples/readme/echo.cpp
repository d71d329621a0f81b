#include <lariat/lariat.hpp>

#include <string>

struct echo : lariat::handler<> {
  lariat::result websocket_handle(lariat::connection &conn,
                                  const lariat::frame &frame,
                                  std::monostate &) override {
    if (frame.is_data()) conn.reply(frame);
    return lariat::result::ok;
  }
};

int main(int argc, char **argv) {
  lariat::server server;  // owns its loop; stops and frees on destruction
  server.route<echo>("/");
  server.listen("127.0.0.1", argc > 1 ? std::stoi(argv[1]) : 8080);
  server.run();
}
