// The HTTP/1.1 upgrade request (RFC 6455 section 4, RFC 7230 head syntax)
// and the responses lariat writes before a connection is upgraded.
#ifndef LARIAT_HANDSHAKE_H
#define LARIAT_HANDSHAKE_H

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lariat::detail {

struct Header {
  std::string_view name;   // as sent
  std::string_view value;  // leading/trailing spaces and tabs removed
};

struct Request {
  std::string_view method;
  std::string_view target;  // request-target as sent
  std::string_view path;    // target up to '?'
  std::string_view query;   // after '?', empty if none
  int http_minor = 1;       // HTTP/1.x
  std::vector<Header> headers;

  // Filled by validate_upgrade().
  bool upgrade_requested = false;  // an Upgrade header lists "websocket"
  bool is_websocket = false;       // every check of RFC 6455 4.2.1 passed
  int ws_version = 0;              // 7, 8 or 13 when is_websocket
  std::string_view key;            // Sec-WebSocket-Key
  std::vector<std::string_view> protocols;  // Sec-WebSocket-Protocol tokens

  // First header named |name| (ASCII case-insensitive), or nullptr.
  const Header *find(std::string_view name) const;
  // Values of every header named |name|, in order.
  std::vector<std::string_view> values(std::string_view name) const;
};

enum class ParseStatus {
  kIncomplete,      // no end of head yet, still under the size limit
  kDone,            // head parsed; head_len bytes consumed
  kTooLarge,        // head over max_head bytes: answer 431
  kTooManyHeaders,  // over max_headers header lines: answer 431
  kBad,             // malformed: answer 400
};

struct ParseResult {
  ParseStatus status;
  size_t head_len;  // bytes up to and including the blank line, for kDone
};

// Parses the request head at the start of buf[0, len). Views in |out| point
// into |buf|. Call again with the grown buffer after kIncomplete.
ParseResult parse_request(const char *buf, size_t len, size_t max_head,
                          size_t max_headers, Request *out);

// Whether the head still can be valid after bytes [from, end) of |head|
// arrived without a line end: checks only those bytes (and the one before,
// a CR that was last), given that the unfinished line starts at
// |line_start|. What parse_request() would reject in them now.
bool head_tail_ok(std::string_view head, size_t line_start, size_t from);

// Checks a parsed request as a WebSocket upgrade and fills the upgrade
// fields. Returns 0 when the request is a valid upgrade OR is not an
// upgrade attempt at all (no "websocket" in Upgrade); otherwise the HTTP
// status to answer: 400 (bad method, Connection without "upgrade", missing
// Host, missing or malformed key, missing version, HTTP/1.0), 426 (a version
// other than 7, 8, 13).
int validate_upgrade(Request *req);

// The client side: the response head to an upgrade request, its status in
// |status| and its headers in |out| (only the header fields of Request are
// used). Same statuses as parse_request().
ParseResult parse_response(const char *buf, size_t len, size_t max_head,
                           size_t max_headers, int *status, Request *out);
// Whether a |name| header lists |token| (comma-separated, any case).
bool has_token(const Request &req, std::string_view name,
               std::string_view token);

// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string accept_key(std::string_view key);

// "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection,
// Sec-WebSocket-Accept, Sec-WebSocket-Protocol / -Extensions when not
// empty, then the handler's |extra| headers (already checked).
std::string response_101(
    std::string_view key, std::string_view protocol,
    std::string_view extensions,
    const std::vector<std::pair<std::string, std::string>> &extra = {});

// A complete plain response with Content-Length and Connection: close.
// |headers| are name/value pairs, already checked for CR/LF; a
// Content-Length among them is left out (lariat writes its own).
std::string response_plain(int status,
                           const std::vector<std::pair<std::string, std::string>> &headers,
                           std::string_view body);

// "Bad Request" for 400 and so on; "Unknown" for statuses it does not know.
const char *status_text(int status);

}  // namespace lariat::detail

#endif
