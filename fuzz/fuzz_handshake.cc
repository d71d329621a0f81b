// libFuzzer target: the HTTP upgrade request parser (parse_request,
// validate_upgrade, Request::find/values) and the responses built from it.
//
// Input: [limits][split][request bytes...]
//   limits: picks the small max_head / max_headers of the second parse;
//   split:  where the request is cut for the incremental check.
//
// Besides "no crash", it checks what the connection code relies on:
// every view points inside the parsed head, a verdict reached on a prefix
// never changes when more bytes arrive (lariat_conn::read_head re-parses
// the grown buffer), and a tighter limit never turns a rejection into an
// acceptance.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "handshake.h"
#include "http_syntax.h"

using lariat::detail::Header;
using lariat::detail::ParseResult;
using lariat::detail::ParseStatus;
using lariat::detail::Request;

namespace {

constexpr size_t kDefaultMaxHead = 8192;  // lariat_options' defaults
constexpr size_t kDefaultMaxHeaders = 100;

bool inside(std::string_view v, const char *buf, size_t len) {
  if (v.empty()) return true;  // an empty view's pointer is irrelevant
  return v.data() >= buf && v.data() + v.size() <= buf + len;
}

bool all_tchar(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!lariat::detail::is_tchar(static_cast<unsigned char>(c))) return false;
  return true;
}

bool trimmed(std::string_view s) {
  return s.empty() || (s.front() != ' ' && s.front() != '\t' &&
                       s.back() != ' ' && s.back() != '\t');
}

void check_done(const Request &req, const ParseResult &r, const char *buf,
                size_t len, size_t max_head, size_t max_headers) {
  CHECK(r.head_len >= 4 && r.head_len <= len && r.head_len <= max_head);
  CHECK(std::memcmp(buf + r.head_len - 4, "\r\n\r\n", 4) == 0);
  CHECK(req.headers.size() <= max_headers);
  CHECK(req.http_minor == 0 || req.http_minor == 1);
  CHECK(all_tchar(req.method));
  CHECK(!req.target.empty() && req.target[0] == '/');
  CHECK(!req.path.empty() && req.path[0] == '/');
  for (std::string_view v : {req.method, req.target, req.path, req.query})
    CHECK(inside(v, buf, r.head_len));
  // target == path [ "?" query ]
  if (req.path.size() == req.target.size()) {
    CHECK(req.path == req.target && req.query.empty());
  } else {
    CHECK(req.target.substr(0, req.path.size()) == req.path);
    CHECK(req.target[req.path.size()] == '?');
    CHECK(req.target.substr(req.path.size() + 1) == req.query);
  }
  CHECK(req.path.find('?') == std::string_view::npos);
  for (const Header &h : req.headers) {
    CHECK(all_tchar(h.name));
    CHECK(inside(h.name, buf, r.head_len) && inside(h.value, buf, r.head_len));
    CHECK(trimmed(h.value));
    for (char c : h.value) {
      unsigned char u = static_cast<unsigned char>(c);
      CHECK(u != '\r' && u != '\n' && u != 0 && u != 0x7f);
    }
  }
}

// find() is the first of values(); values() is every case-insensitive match.
void check_lookup(const Request &req, std::string_view name) {
  std::vector<std::string_view> vals = req.values(name);
  const Header *first = req.find(name);
  size_t n = 0;
  for (const Header &h : req.headers) n += lariat::detail::iequals(h.name, name);
  CHECK(vals.size() == n);
  CHECK((first == nullptr) == vals.empty());
  if (first) {
    CHECK(first->value.data() == vals[0].data());
    CHECK(lariat::detail::iequals(first->name, name));
  }
}

void check_upgrade(Request *req) {
  int status = lariat::detail::validate_upgrade(req);
  CHECK(status == 0 || status == 400 || status == 426);
  if (req->is_websocket) {
    CHECK(status == 0 && req->upgrade_requested);
    CHECK(req->ws_version == 7 || req->ws_version == 8 ||
          req->ws_version == 13);
    CHECK(req->key.size() == 24);
    CHECK(req->method == "GET" && req->http_minor == 1);
    for (std::string_view p : req->protocols) {
      CHECK(!p.empty() && trimmed(p) && p.find(',') == std::string_view::npos);
    }
    // The accept key is base64 of a SHA-1: 28 characters.
    CHECK(lariat::detail::accept_key(req->key).size() == 28);
    std::string r = lariat::detail::response_101(
        req->key, req->protocols.empty() ? std::string_view() : req->protocols[0],
        "permessage-deflate");
    CHECK(r.size() > 4 && r.compare(r.size() - 4, 4, "\r\n\r\n") == 0);
  } else {
    CHECK(req->protocols.empty() && req->key.empty());
  }
  if (status != 0) {
    CHECK(req->upgrade_requested && !req->is_websocket);
    std::string r = lariat::detail::response_plain(status, {}, "");
    CHECK(r.rfind("HTTP/1.1 " + std::to_string(status) + " ", 0) == 0);
  }
  // Idempotent: the connection validates a copy of the parsed request.
  Request again = *req;
  CHECK(lariat::detail::validate_upgrade(&again) == status);
  CHECK(again.is_websocket == req->is_websocket);
}

ParseResult parse_copy(const uint8_t *p, size_t n, size_t max_head,
                       size_t max_headers, Request *req,
                       std::vector<char> *storage) {
  // An exactly sized heap copy, so ASan sees any read past the end.
  storage->assign(p, p + n);
  return lariat::detail::parse_request(storage->data(), n, max_head,
                                       max_headers, req);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  const size_t small_head = 16 + (data[0] & 0x3f) * 8;   // 16..520
  const size_t small_headers = 1 + (data[0] >> 6);       // 1..4
  const uint8_t *p = data + 2;
  const size_t len = size - 2;
  const size_t split = len * data[1] / 256;

  std::vector<char> whole_buf, small_buf, prefix_buf;
  Request whole, small, prefix;
  ParseResult rw = parse_copy(p, len, kDefaultMaxHead, kDefaultMaxHeaders,
                              &whole, &whole_buf);
  ParseResult rs =
      parse_copy(p, len, small_head, small_headers, &small, &small_buf);
  ParseResult rp = parse_copy(p, split, kDefaultMaxHead, kDefaultMaxHeaders,
                              &prefix, &prefix_buf);

  // Incremental: a verdict on a prefix is final and is the whole's verdict;
  // an incomplete whole was incomplete at every prefix.
  if (rp.status != ParseStatus::kIncomplete) {
    // Seed 21043d83... once gave 400 on a prefix and 431 whole.
    CHECK(rw.status == rp.status);
    if (rw.status == ParseStatus::kDone) CHECK(rw.head_len == rp.head_len);
  }
  if (rw.status == ParseStatus::kIncomplete)
    CHECK(rp.status == ParseStatus::kIncomplete);
  if (rw.status == ParseStatus::kIncomplete)
    CHECK(len < kDefaultMaxHead);
  if (rw.status == ParseStatus::kDone && rw.head_len <= split)
    CHECK(rp.status == ParseStatus::kDone);

  // Tighter limits only ever refuse more.
  if (rs.status == ParseStatus::kDone) {
    CHECK(rw.status == ParseStatus::kDone && rw.head_len == rs.head_len);
  }
  if (rw.status == ParseStatus::kDone && rs.status != ParseStatus::kDone)
    CHECK(rs.status == ParseStatus::kTooLarge ||
          rs.status == ParseStatus::kTooManyHeaders ||
          rs.status == ParseStatus::kIncomplete);

  if (rw.status == ParseStatus::kDone)
    check_done(whole, rw, whole_buf.data(), len, kDefaultMaxHead,
               kDefaultMaxHeaders);
  if (rs.status == ParseStatus::kDone)
    check_done(small, rs, small_buf.data(), len, small_head, small_headers);
  if (rp.status == ParseStatus::kDone)
    check_done(prefix, rp, prefix_buf.data(), split, kDefaultMaxHead,
               kDefaultMaxHeaders);

  if (rw.status == ParseStatus::kDone) {
    for (std::string_view name :
         {"host", "UPGRADE", "Connection", "sec-websocket-key",
          "Sec-WebSocket-Version", "sec-websocket-extensions",
          "Sec-WebSocket-Protocol", "", "x"})
      check_lookup(whole, name);
    // And names the input itself uses, in another case.
    for (const Header &h : whole.headers) {
      std::string upper(h.name);
      for (char &c : upper)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
      check_lookup(whole, upper);
      break;
    }
    if (!whole.headers.empty()) check_lookup(whole, whole.headers.back().name);
    Request copy = whole;
    check_upgrade(&whole);
    // The same head parsed from the prefix or under small limits validates
    // the same way.
    if (rs.status == ParseStatus::kDone) {
      CHECK(lariat::detail::validate_upgrade(&small) ==
            lariat::detail::validate_upgrade(&copy));
      CHECK(small.is_websocket == copy.is_websocket);
    }
    if (rp.status == ParseStatus::kDone) {
      CHECK(lariat::detail::validate_upgrade(&prefix) ==
            lariat::detail::validate_upgrade(&copy));
    }
  }
  return 0;
}
