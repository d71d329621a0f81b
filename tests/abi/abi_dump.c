/* Prints the binary interface that C callers compile into their programs:
 * struct field offsets, the size of the fixed struct, enum and macro
 * values. tests/abi/check_abi.sh compares it with the committed record.
 * When a field is appended to a growable struct, add a line here. */
#include <lariat/lariat.h>
#include <stddef.h>
#include <stdio.h>

#define FIELD(type, field) \
  printf("offset %s.%s %zu\n", #type, #field, offsetof(type, field))
#define VALUE(name) printf("value %s %lld\n", #name, (long long)(name))

int main(void) {
  /* lariat_frame is fixed forever: its size is part of the ABI. */
  printf("sizeof lariat_frame %zu\n", sizeof(lariat_frame));
  FIELD(lariat_frame, opcode);
  FIELD(lariat_frame, flags);
  FIELD(lariat_frame, close_code);
  FIELD(lariat_frame, data);
  FIELD(lariat_frame, len);
  /* Growable structs: existing offsets never move. */
  FIELD(lariat_handler, size);
  FIELD(lariat_handler, init);
  FIELD(lariat_handler, websocket_init);
  FIELD(lariat_handler, websocket_handle);
  FIELD(lariat_handler, websocket_info);
  FIELD(lariat_handler, terminate);
  FIELD(lariat_reason, kind);
  FIELD(lariat_reason, code);
  FIELD(lariat_reason, data);
  FIELD(lariat_reason, len);
  FIELD(lariat_reason, crash_class);
  FIELD(lariat_reason, crash_reason);
  FIELD(lariat_reason, socket_error);
  FIELD(lariat_info, age);
  FIELD(lariat_info, version_num);
  FIELD(lariat_info, version_str);
  FIELD(lariat_info, abi_version);
#define LARIAT__DUMP_ERR(name, val, str) VALUE(LARIAT_ERR_##name);
  LARIAT_ERRNO_MAP(LARIAT__DUMP_ERR)
  VALUE(LARIAT_OP_TEXT);
  VALUE(LARIAT_OP_BINARY);
  VALUE(LARIAT_OP_CLOSE);
  VALUE(LARIAT_OP_PING);
  VALUE(LARIAT_OP_PONG);
  VALUE(LARIAT_FRAME_NO_COMPRESS);
  VALUE(LARIAT_REASON_NORMAL);
  VALUE(LARIAT_REASON_REMOTE);
  VALUE(LARIAT_REASON_SHUTDOWN);
  VALUE(LARIAT_REASON_TIMEOUT);
  VALUE(LARIAT_REASON_CRASH);
  VALUE(LARIAT_REASON_ERROR_BADENCODING);
  VALUE(LARIAT_REASON_ERROR_BADFRAME);
  VALUE(LARIAT_REASON_ERROR_TOO_BIG);
  VALUE(LARIAT_REASON_ERROR_CLOSED);
  VALUE(LARIAT_REASON_ERROR_SOCKET);
  VALUE(LARIAT_OK);
  VALUE(LARIAT_HIBERNATE);
  VALUE(LARIAT_SHUTDOWN);
  VALUE(LARIAT_CRASH);
  VALUE(LARIAT_TIMEOUT_INFINITY);
  VALUE(LARIAT_DEFLATE_ENABLE);
  VALUE(LARIAT_DEFLATE_LEVEL);
  VALUE(LARIAT_DEFLATE_MEM_LEVEL);
  VALUE(LARIAT_DEFLATE_SERVER_MAX_WINDOW_BITS);
  VALUE(LARIAT_DEFLATE_CLIENT_MAX_WINDOW_BITS);
  VALUE(LARIAT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER);
  VALUE(LARIAT_DEFLATE_CLIENT_NO_CONTEXT_TAKEOVER);
  VALUE(LARIAT_DEFLATE_THRESHOLD);
  return 0;
}
