// Names of terminate reasons, spelled as Cowboy prints them.
#include <lariat/lariat.h>

extern "C" LARIAT_EXTERN const char *lariat_reason_name(int kind) {
  switch (kind) {
    case LARIAT_REASON_NORMAL: return "normal";
    case LARIAT_REASON_REMOTE: return "remote";
    case LARIAT_REASON_SHUTDOWN: return "shutdown";
    case LARIAT_REASON_TIMEOUT: return "timeout";
    case LARIAT_REASON_CRASH: return "crash";
    case LARIAT_REASON_ERROR_BADENCODING: return "error badencoding";
    case LARIAT_REASON_ERROR_BADFRAME: return "error badframe";
    case LARIAT_REASON_ERROR_TOO_BIG: return "error too_big";
    case LARIAT_REASON_ERROR_CLOSED: return "error closed";
    case LARIAT_REASON_ERROR_SOCKET: return "error";
    case LARIAT_REASON_ERROR_BACKPRESSURE: return "error backpressure";
    case LARIAT_REASON_HANDSHAKE_FAILED: return "handshake failed";
    default: return "unknown";
  }
}
