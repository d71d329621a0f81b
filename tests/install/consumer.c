/* Built against an installed lariat (pkg-config or find_package): creates a
 * server on a free port, routes, listens and tears down. */
#include <lariat/lariat.h>
#include <stdio.h>

static int echo(lariat_conn *conn, const lariat_frame *frame, void *state) {
  (void)state;
  return lariat_reply(conn, frame) == 0 ? LARIAT_OK : LARIAT_CRASH;
}

int main(void) {
  const lariat_info *info = lariat_version(0);
  if (!info || info->version_num != LARIAT_VERSION_NUM) return 1;
  lariat_server *server;
  if (lariat_server_new(&server, NULL, NULL) != 0) return 2;
  static const lariat_handler handler = {sizeof(lariat_handler), NULL, NULL,
                                         echo, NULL, NULL};
  if (lariat_server_route(server, "/", &handler, NULL) != 0) return 3;
  if (lariat_server_listen(server, "127.0.0.1", 0) != 0) return 4;
  int port = lariat_server_port(server);
  lariat_server_del(server);
  printf("lariat %s (ABI %d) listened on port %d\n", info->version_str,
         info->abi_version, port);
  return port > 0 ? 0 : 5;
}
