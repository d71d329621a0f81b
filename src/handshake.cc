#include "handshake.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "http_syntax.h"
#include "sha1_base64.h"

namespace lariat::detail {

namespace {

constexpr std::string_view kWsGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Controls other than HTAB, and DEL: never valid in a request head line.
bool is_bad_ctl(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

// Calls fn(item) for each non-empty, trimmed item of a comma-separated list
// (RFC 7230 7: empty list elements are allowed and ignored). Stops and
// returns true as soon as fn returns true.
template <typename Fn>
bool for_each_item(std::string_view list, Fn fn) {
  while (true) {
    size_t comma = list.find(',');
    std::string_view item = trim_ows(list.substr(0, comma));
    if (!item.empty() && fn(item)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

// True when any |name| header lists |token| (case-insensitive).
bool headers_have_token(const Request &req, std::string_view name,
                        std::string_view token) {
  for (const Header &h : req.headers) {
    if (!iequals(h.name, name)) continue;
    if (for_each_item(h.value, [&](std::string_view t) { return iequals(t, token); }))
      return true;
  }
  return false;
}

size_t count_headers(const Request &req, std::string_view name) {
  size_t n = 0;
  for (const Header &h : req.headers) n += iequals(h.name, name);
  return n;
}

// method SP request-target SP HTTP-version, CRLF already stripped.
bool parse_request_line(std::string_view line, Request *out) {
  size_t i = 0;
  while (i < line.size() && is_tchar(static_cast<unsigned char>(line[i]))) ++i;
  if (i == 0 || i == line.size() || line[i] != ' ') return false;
  out->method = line.substr(0, i);

  size_t start = ++i;
  // Only origin-form: absolute-form, authority-form (CONNECT) and "*"
  // (OPTIONS) make no sense for a WebSocket server.
  if (i == line.size() || line[i] != '/') return false;
  while (i < line.size() && line[i] != ' ') {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if (c <= 0x20 || c == 0x7f) return false;
    ++i;
  }
  if (i == line.size()) return false;
  out->target = line.substr(start, i - start);

  std::string_view version = line.substr(i + 1);
  if (version == "HTTP/1.1") {
    out->http_minor = 1;
  } else if (version == "HTTP/1.0") {
    out->http_minor = 0;
  } else {
    return false;
  }
  return true;
}

// field-name ":" OWS field-value OWS, CRLF already stripped.
bool parse_header_line(std::string_view line, Request *out) {
  size_t i = 0;
  while (i < line.size() && is_tchar(static_cast<unsigned char>(line[i]))) ++i;
  // Whitespace before the colon must be rejected (RFC 7230 3.2.4): it has
  // been used for request smuggling.
  if (i == 0 || i == line.size() || line[i] != ':') return false;
  std::string_view value = line.substr(i + 1);
  for (char c : value) {
    if (is_bad_ctl(static_cast<unsigned char>(c))) return false;
  }
  out->headers.push_back(Header{line.substr(0, i), trim_ows(value)});
  return true;
}

// Early rejection of a line whose CRLF has not arrived yet, so that garbage
// (a TLS ClientHello on a plain port, say) fails now rather than at the size
// limit or the timeout. Only checks that hold whatever bytes come next.
bool partial_line_ok(std::string_view line, bool request_line) {
  if (line.empty()) return true;
  unsigned char first = static_cast<unsigned char>(line[0]);
  if (request_line && !is_tchar(first)) return false;
  if (!request_line && (first == ' ' || first == '\t')) return false;  // obs-fold
  for (size_t i = 0; i < line.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    // A CR as the last byte may still be followed by its LF.
    if (c == '\r' && i + 1 == line.size()) break;
    if (is_bad_ctl(c)) return false;
  }
  return true;
}

}  // namespace

bool head_tail_ok(std::string_view head, size_t line_start, size_t from) {
  if (from <= line_start)
    return partial_line_ok(head.substr(line_start), line_start == 0);
  // Bytes before |from| passed already; the one just before may be a CR
  // that was the last byte then and is no longer.
  for (size_t i = from - 1; i < head.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(head[i]);
    if (c == '\r' && i + 1 == head.size()) break;
    if (is_bad_ctl(c)) return false;
  }
  return true;
}

namespace {

void reset(Request *out) {
  out->method = {};
  out->target = {};
  out->path = {};
  out->query = {};
  out->http_minor = 1;
  out->headers.clear();
  out->upgrade_requested = false;
  out->is_websocket = false;
  out->ws_version = 0;
  out->key = {};
  out->protocols.clear();
}

}  // namespace

std::vector<std::string_view> Request::values(std::string_view name) const {
  std::vector<std::string_view> found;
  for (const Header &h : headers)
    if (iequals(h.name, name)) found.push_back(h.value);
  return found;
}

const Header *Request::find(std::string_view name) const {
  for (const Header &h : headers) {
    if (iequals(h.name, name)) return &h;
  }
  return nullptr;
}

ParseResult parse_request(const char *buf, size_t len, size_t max_head,
                          size_t max_headers, Request *out) {
  reset(out);
  // Nothing past max_head can belong to an acceptable head, so never look
  // there; a head whose blank line ends past max_head is too large.
  const size_t limit = std::min(len, max_head);
  size_t pos = 0;
  size_t nheaders = 0;
  bool request_line = true;

  while (pos < limit) {
    const void *lf = std::memchr(buf + pos, '\n', limit - pos);
    if (lf == nullptr) {
      if (!partial_line_ok(std::string_view(buf + pos, limit - pos), request_line))
        return {ParseStatus::kBad, 0};
      break;
    }
    size_t eol = static_cast<size_t>(static_cast<const char *>(lf) - buf);
    // CRLF only: a bare LF line ending is a smuggling vector.
    if (eol == pos || buf[eol - 1] != '\r') return {ParseStatus::kBad, 0};
    std::string_view line(buf + pos, eol - 1 - pos);
    pos = eol + 1;

    if (request_line) {
      if (!parse_request_line(line, out)) return {ParseStatus::kBad, 0};
      request_line = false;
    } else if (line.empty()) {
      size_t q = out->target.find('?');
      out->path = out->target.substr(0, q);
      if (q != std::string_view::npos) out->query = out->target.substr(q + 1);
      return {ParseStatus::kDone, pos};
    } else {
      if (line[0] == ' ' || line[0] == '\t') return {ParseStatus::kBad, 0};  // obs-fold
      // Syntax first, as for a line still arriving, so the verdict does
      // not depend on where TCP split the bytes.
      if (!parse_header_line(line, out)) return {ParseStatus::kBad, 0};
      if (++nheaders > max_headers) return {ParseStatus::kTooManyHeaders, 0};
    }
  }
  if (len >= max_head) return {ParseStatus::kTooLarge, 0};
  return {ParseStatus::kIncomplete, 0};
}

namespace {

// "HTTP/1.1 101 Switching Protocols": the version, a three-digit status
// and any reason phrase.
bool parse_status_line(std::string_view line, int *status) {
  if (line.size() < 12 || line.substr(0, 9) != "HTTP/1.1 ") return false;
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return false;
    code = code * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ') return false;
  for (char c : line.substr(12))
    if (is_bad_ctl(static_cast<unsigned char>(c))) return false;
  *status = code;
  return true;
}

}  // namespace

ParseResult parse_response(const char *buf, size_t len, size_t max_head,
                           size_t max_headers, int *status, Request *out) {
  reset(out);
  const size_t limit = std::min(len, max_head);
  size_t pos = 0, nheaders = 0;
  bool status_line = true;
  while (pos < limit) {
    const void *lf = std::memchr(buf + pos, '\n', limit - pos);
    if (!lf) break;
    size_t eol = static_cast<size_t>(static_cast<const char *>(lf) - buf);
    if (eol == pos || buf[eol - 1] != '\r') return {ParseStatus::kBad, 0};
    std::string_view line(buf + pos, eol - 1 - pos);
    pos = eol + 1;
    if (status_line) {
      if (!parse_status_line(line, status)) return {ParseStatus::kBad, 0};
      status_line = false;
    } else if (line.empty()) {
      return {ParseStatus::kDone, pos};
    } else {
      if (line[0] == ' ' || line[0] == '\t') return {ParseStatus::kBad, 0};
      if (!parse_header_line(line, out)) return {ParseStatus::kBad, 0};
      if (++nheaders > max_headers) return {ParseStatus::kTooManyHeaders, 0};
    }
  }
  if (len >= max_head) return {ParseStatus::kTooLarge, 0};
  return {ParseStatus::kIncomplete, 0};
}

bool has_token(const Request &req, std::string_view name,
               std::string_view token) {
  return headers_have_token(req, name, token);
}

int validate_upgrade(Request *req) {
  req->upgrade_requested = false;
  req->is_websocket = false;
  req->ws_version = 0;
  req->key = {};
  req->protocols.clear();

  req->upgrade_requested = headers_have_token(*req, "Upgrade", "websocket");
  if (!req->upgrade_requested) return 0;

  if (req->method != "GET") return 400;  // methods are case-sensitive
  if (req->http_minor != 1) return 400;
  // RFC 7230 5.4: a missing or repeated Host is answered with 400.
  if (count_headers(*req, "Host") != 1) return 400;
  if (!headers_have_token(*req, "Connection", "upgrade")) return 400;

  // Version before key: a client speaking another version gets 426 and the
  // list of versions we do speak, whatever its key looks like.
  size_t nversions = count_headers(*req, "Sec-WebSocket-Version");
  if (nversions == 0) return 400;
  if (nversions != 1) return 426;
  std::string_view version = req->find("Sec-WebSocket-Version")->value;
  if (version == "13") {
    req->ws_version = 13;
  } else if (version == "8") {
    req->ws_version = 8;
  } else if (version == "7") {
    req->ws_version = 7;
  } else {
    return 426;
  }

  if (count_headers(*req, "Sec-WebSocket-Key") != 1) return 400;
  std::string_view key = req->find("Sec-WebSocket-Key")->value;
  std::string nonce;
  if (key.size() != 24 || !base64_decode(key, &nonce) || nonce.size() != 16) return 400;

  for (const Header &h : req->headers) {
    if (!iequals(h.name, "Sec-WebSocket-Protocol")) continue;
    for_each_item(h.value, [&](std::string_view p) {
      req->protocols.push_back(p);
      return false;
    });
  }
  req->key = key;
  req->is_websocket = true;
  return 0;
}

std::string accept_key(std::string_view key) {
  std::string in;
  in.reserve(key.size() + kWsGuid.size());
  in.append(key);
  in.append(kWsGuid);
  uint8_t digest[kSha1Size];
  sha1(in.data(), in.size(), digest);
  return base64_encode(digest, sizeof digest);
}

std::string response_101(
    std::string_view key, std::string_view protocol,
    std::string_view extensions,
    const std::vector<std::pair<std::string, std::string>> &extra) {
  std::string r =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ";
  r += accept_key(key);
  r += "\r\n";
  if (!protocol.empty()) {
    r += "Sec-WebSocket-Protocol: ";
    r += protocol;
    r += "\r\n";
  }
  if (!extensions.empty()) {
    r += "Sec-WebSocket-Extensions: ";
    r += extensions;
    r += "\r\n";
  }
  for (const auto &h : extra) {
    r += h.first;
    r += ": ";
    r += h.second;
    r += "\r\n";
  }
  r += "\r\n";
  return r;
}

std::string response_plain(int status,
                           const std::vector<std::pair<std::string, std::string>> &headers,
                           std::string_view body) {
  std::string r = "HTTP/1.1 ";
  r += std::to_string(status);
  r += ' ';
  r += status_text(status);
  r += "\r\n";
  for (const auto &h : headers) {
    if (iequals(h.first, "content-length")) continue;  // ours is the truth
    r += h.first;
    r += ": ";
    r += h.second;
    r += "\r\n";
  }
  // RFC 7230 3.3.2: no Content-Length (and no body) in 1xx and 204.
  bool no_body = (status >= 100 && status < 200) || status == 204;
  if (!no_body) {
    r += "content-length: ";
    r += std::to_string(body.size());
    r += "\r\n";
  }
  r += "connection: close\r\n\r\n";
  if (!no_body) r += body;
  return r;
}

const char *status_text(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace lariat::detail
