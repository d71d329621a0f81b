#include <lariat/lariat.h>
#include <stdlib.h>

static int echo(lariat_conn *conn, const lariat_frame *frame, void *state) {
  (void)state;
  if (frame->opcode == LARIAT_OP_TEXT || frame->opcode == LARIAT_OP_BINARY)
    lariat_reply(conn, frame); /* copied; written after we return */
  return LARIAT_OK;
}

int main(int argc, char **argv) {
  static const lariat_handler handler = {.size = sizeof(lariat_handler),
                                         .websocket_handle = echo};
  lariat_server *server;
  if (lariat_server_new(&server, NULL, NULL) != 0) return 1;
  lariat_server_route(server, "/", &handler, NULL);
  int port = argc > 1 ? atoi(argv[1]) : 8080;
  if (lariat_server_listen(server, "127.0.0.1", port) != 0) return 1;
  lariat_server_run(server); /* until lariat_server_stop() */
  lariat_server_del(server);
  return 0;
}
