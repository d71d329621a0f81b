/* lariat-autobahn-client: runs Autobahn|Testsuite's client cases against
 * lariat's client, following the fuzzingserver protocol: /getCaseCount,
 * then /runCase?case=N&agent=AGENT for every case in turn (every text and
 * binary message echoed back, permessage-deflate offered), then
 * /updateReports?agent=AGENT.
 *
 *   lariat-autobahn-client [--ca FILE | --insecure] [URL] [AGENT]
 *
 * URL defaults to ws://127.0.0.1:9001, AGENT to "lariat"; a wss:// URL
 * runs the cases over TLS, the server verified against the system's CAs,
 * those of --ca FILE, or not at all with --insecure. Exits 0 once the
 * reports were updated, 1 when the fuzzing server could not be reached,
 * 64 for bad usage. */
#include <lariat/lariat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lariat_server *server;
static const char *base = "ws://127.0.0.1:9001";
static const char *agent = "lariat";
static const char *ca_file = NULL;
static int insecure = 0;
static int case_count = -1, current = 0, failed = 0;

enum step { COUNT, CASE, REPORT };
static enum step step = COUNT;

static void connect_step(void);

static int on_message(lariat_conn *conn, const lariat_frame *frame,
                      void *state) {
  (void)state;
  if (step == COUNT) {
    if (frame->opcode == LARIAT_OP_TEXT)
      case_count = atoi((const char *)frame->data); /* "123" */
    return LARIAT_OK;
  }
  if (step == CASE &&
      (frame->opcode == LARIAT_OP_TEXT || frame->opcode == LARIAT_OP_BINARY))
    lariat_reply(conn, frame);
  return LARIAT_OK;
}

static void on_end(lariat_conn *conn, const lariat_reason *reason,
                   void *state) {
  (void)conn;
  (void)state;
  if (step == COUNT) {
    if (case_count < 0) {
      fprintf(stderr, "lariat-autobahn-client: no case count from %s (%s)\n",
              base, lariat_reason_name(reason->kind));
      failed = 1;
      lariat_server_stop(server);
      return;
    }
    printf("%d cases\n", case_count);
    step = case_count > 0 ? CASE : REPORT;
    current = 1;
  } else if (step == CASE) {
    if (++current > case_count) step = REPORT;
  } else {
    printf("reports updated for agent %s\n", agent);
    lariat_server_stop(server);
    return;
  }
  connect_step();
}

static void connect_step(void) {
  static const lariat_handler handler = {.size = sizeof(lariat_handler),
                                         .websocket_handle = on_message,
                                         .terminate = on_end};
  char url[512];
  if (step == COUNT)
    snprintf(url, sizeof url, "%s/getCaseCount", base);
  else if (step == CASE)
    snprintf(url, sizeof url, "%s/runCase?case=%d&agent=%s", base, current, agent);
  else
    snprintf(url, sizeof url, "%s/updateReports?agent=%s", base, agent);
  lariat_client_options *opts;
  lariat_client_options_new(&opts);
  lariat_client_options_set_max_frame_size(opts, (uint64_t)64 << 20);
  if (ca_file && lariat_client_options_set_tls_ca(opts, ca_file, NULL) != 0) {
    fprintf(stderr, "lariat-autobahn-client: no CA certificate in %s\n", ca_file);
    failed = 1;
    lariat_server_stop(server);
    lariat_client_options_del(opts);
    return;
  }
  lariat_client_options_set_tls_insecure_no_verify(opts, insecure);
  if (step == CASE) {
    lariat_client_options_set_deflate(opts, LARIAT_DEFLATE_ENABLE, 1);
    if (current % 100 == 0) printf("case %d of %d\n", current, case_count);
  }
  if (lariat_connect(server, url, &handler, NULL, opts, NULL, NULL) != 0) {
    failed = 1;
    lariat_server_stop(server);
  }
  lariat_client_options_del(opts);
}

int main(int argc, char **argv) {
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--ca") && i + 1 < argc) {
      ca_file = argv[++i];
    } else if (!strcmp(argv[i], "--insecure")) {
      insecure = 1;
    } else if (argv[i][0] != '-' && positional < 2) {
      *(positional++ == 0 ? &base : &agent) = argv[i];
    } else {
      fprintf(stderr,
              "usage: lariat-autobahn-client [--ca FILE | --insecure] [URL] [AGENT]\n");
      return 64;
    }
  }
  if (lariat_server_new(&server, NULL, NULL) != 0) return 1;
  connect_step();
  lariat_server_run(server);
  lariat_server_del(server);
  return failed;
}
