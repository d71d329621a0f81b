// Opening-handshake parsing, validation and responses; no I/O.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
// cmocka 1.1.5 (Debian 12) declares its functions without extern "C".
extern "C" {
#include <cmocka.h>
}

#include <cstdlib>
#include <cstring>
#include <string>

#include "handshake.h"
#include "sha1_base64.h"

using namespace lariat::detail;

namespace {

constexpr size_t kMaxHead = 8192;
constexpr size_t kMaxHeaders = 64;

const char kRfcKey[] = "dGhlIHNhbXBsZSBub25jZQ==";
const char kRfcAccept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const char kValid[] =
    "GET /chat?room=1&x=y HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

// Views in *req point into s: pass literals or strings that outlive req.
ParseStatus parse(std::string_view s, Request *req, size_t max_head = kMaxHead,
                  size_t max_headers = kMaxHeaders, size_t *head_len = nullptr) {
  ParseResult r = parse_request(s.data(), s.size(), max_head, max_headers, req);
  if (head_len) *head_len = r.head_len;
  return r.status;
}

bool eq(std::string_view a, const char *b) { return a == std::string_view(b); }

// Builds an upgrade request from the given header lines (each without CRLF).
std::string upgrade_request(std::initializer_list<const char *> lines,
                            const char *request_line = "GET / HTTP/1.1") {
  std::string s = request_line;
  s += "\r\n";
  for (const char *l : lines) {
    s += l;
    s += "\r\n";
  }
  s += "\r\n";
  return s;
}

// Parses and validates; the request must parse.
int validate(const std::string &s) {
  Request req;
  assert_int_equal(parse(s, &req), ParseStatus::kDone);
  return validate_upgrade(&req);
}

#define HOST "Host: h"
#define UPG "Upgrade: websocket"
#define CONN "Connection: Upgrade"
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
#define V13 "Sec-WebSocket-Version: 13"

void test_rfc_vector(void **) {
  assert_string_equal(accept_key(kRfcKey).c_str(), kRfcAccept);
  std::string r = response_101(kRfcKey, "", "");
  assert_string_equal(r.c_str(),
                      "HTTP/1.1 101 Switching Protocols\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                      "\r\n");
  r = response_101(kRfcKey, "chat", "permessage-deflate");
  assert_string_equal(r.c_str(),
                      "HTTP/1.1 101 Switching Protocols\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                      "Sec-WebSocket-Protocol: chat\r\n"
                      "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                      "\r\n");
}

void test_base64(void **) {
  // RFC 4648 section 10 vectors.
  const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (size_t i = 0; i < 7; ++i) {
    std::string e = base64_encode(reinterpret_cast<const uint8_t *>(plain[i]),
                                  std::strlen(plain[i]));
    assert_string_equal(e.c_str(), enc[i]);
    std::string d = "junk";
    assert_true(base64_decode(enc[i], &d));
    assert_string_equal(d.c_str(), plain[i]);
  }
  std::string d = "keep";
  const char *bad[] = {"Zg=",  "Zg",   "Z===", "Zm9v\n", "Zm 9", "Zm9*",
                       "=Zm9", "Zg=a", "Zh==", "Zm9=",   "Zm8=Zm8=", "Zg\r\n=="};
  for (const char *b : bad) {
    assert_false(base64_decode(b, &d));
  }
  assert_string_equal(d.c_str(), "keep");

  uint8_t digest[kSha1Size];
  sha1("abc", 3, digest);
  std::string hex;
  for (uint8_t b : digest) {
    static const char x[] = "0123456789abcdef";
    hex += x[b >> 4];
    hex += x[b & 15];
  }
  assert_string_equal(hex.c_str(), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

void check_valid(const Request &req) {
  assert_true(eq(req.method, "GET"));
  assert_true(eq(req.target, "/chat?room=1&x=y"));
  assert_true(eq(req.path, "/chat"));
  assert_true(eq(req.query, "room=1&x=y"));
  assert_int_equal(req.http_minor, 1);
  assert_int_equal(req.headers.size(), 7);
  assert_true(eq(req.headers[0].name, "Host"));
  assert_true(eq(req.headers[0].value, "server.example.com"));
}

void test_parse_whole(void **) {
  Request req;
  size_t head_len = 0;
  std::string s = kValid;
  assert_int_equal(parse(s, &req, kMaxHead, kMaxHeaders, &head_len), ParseStatus::kDone);
  assert_int_equal(head_len, s.size());
  check_valid(req);
  assert_int_equal(validate_upgrade(&req), 0);
  assert_true(req.upgrade_requested);
  assert_true(req.is_websocket);
  assert_int_equal(req.ws_version, 13);
  assert_true(eq(req.key, kRfcKey));
  assert_int_equal(req.protocols.size(), 2);
  assert_true(eq(req.protocols[0], "chat"));
  assert_true(eq(req.protocols[1], "superchat"));
}

// Grows the buffer one byte at a time, each prefix in an exactly sized heap
// block so ASan catches any read past the end.
void test_parse_byte_at_a_time(void **) {
  const std::string head = kValid;
  const std::string all = head + "\x81\x05hello";  // a pipelined frame
  Request req;
  for (size_t n = 0; n <= all.size(); ++n) {
    char *buf = static_cast<char *>(std::malloc(n ? n : 1));
    std::memcpy(buf, all.data(), n);
    ParseResult r = parse_request(buf, n, kMaxHead, kMaxHeaders, &req);
    if (n < head.size()) {
      assert_int_equal(r.status, ParseStatus::kIncomplete);
    } else {
      assert_int_equal(r.status, ParseStatus::kDone);
      assert_int_equal(r.head_len, head.size());
      check_valid(req);
    }
    std::free(buf);
  }
}

void test_limits(void **) {
  const std::string s = kValid;
  Request req;
  // The head may be exactly max_head bytes, not one more.
  assert_int_equal(parse(s, &req, s.size()), ParseStatus::kDone);
  assert_int_equal(parse(s, &req, s.size() - 1), ParseStatus::kTooLarge);
  // No end of head within max_head bytes, whether or not more has arrived.
  std::string big = "GET / HTTP/1.1\r\nX: " + std::string(100, 'a');
  assert_int_equal(parse(big, &req, 64), ParseStatus::kTooLarge);
  assert_int_equal(parse(big.substr(0, 64), &req, 64), ParseStatus::kTooLarge);
  assert_int_equal(parse(big.substr(0, 63), &req, 64), ParseStatus::kIncomplete);

  // Seven header lines.
  assert_int_equal(parse(s, &req, kMaxHead, 7), ParseStatus::kDone);
  assert_int_equal(parse(s, &req, kMaxHead, 6), ParseStatus::kTooManyHeaders);
  // Detected before the head is complete.
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 5; ++i) many += "A: b\r\n";
  assert_int_equal(parse(many, &req, kMaxHead, 4), ParseStatus::kTooManyHeaders);
  assert_int_equal(parse(many, &req, kMaxHead, 5), ParseStatus::kIncomplete);
}

void test_parse_bad(void **) {
  Request req;
  const char *bad[] = {
      "GET / HTTP/1.1\r\nHost: h\r\n X-Fold: y\r\n\r\n",     // obs-fold
      "GET / HTTP/1.1\r\nHost: h\r\n\tX-Fold: y\r\n\r\n",    // obs-fold, tab
      "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",             // bare LF
      "GET / HTTP/1.1\nHost: h\n\n",                         // bare LF
      "GET / HTTP/1.1\r\nHost : h\r\n\r\n",                  // space before colon
      "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n",                 // tab before colon
      "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
      "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
      "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",                   // bare CR
      "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n",                 // control char
      "GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n",                 // DEL
      "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",           // absolute-form
      "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",               // asterisk-form
      "GET chat HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.2\r\nHost: h\r\n\r\n",
      "GET / http/1.1\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
      "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n",
      "G@T / HTTP/1.1\r\nHost: h\r\n\r\n",
      "\r\nGET / HTTP/1.1\r\n\r\n",                       // leading empty line
      "GET /\r\n\r\n",
  };
  for (const char *b : bad) {
    assert_int_equal(parse(b, &req), ParseStatus::kBad);
  }
  // NUL inside a header value.
  std::string nul = "GET / HTTP/1.1\r\nX: a";
  nul += '\0';
  nul += "b\r\n\r\n";
  assert_int_equal(parse(nul, &req), ParseStatus::kBad);

  // Garbage is rejected before its end arrives.
  assert_int_equal(parse("\x16\x03\x01\x02", &req), ParseStatus::kBad);
  assert_int_equal(parse("GET / HTTP/1.1\r\n X", &req), ParseStatus::kBad);
  assert_int_equal(parse("GET / HTTP/1.1\r\nX: a\rb", &req), ParseStatus::kBad);
  assert_int_equal(parse("GET / HTTP/1.1\r\nX: a\r", &req), ParseStatus::kIncomplete);
  assert_int_equal(parse("GET / HTTP/1.1\r\nHost : h\r\n", &req), ParseStatus::kBad);
}

void test_parse_edges(void **) {
  Request req;
  // OWS around values trimmed, empty values kept, HTTP/1.0 parsed.
  assert_int_equal(parse("POST /p HTTP/1.0\r\nA:\t x y \t\r\nB:\r\nC:z\r\n\r\n", &req),
                   ParseStatus::kDone);
  assert_true(eq(req.method, "POST"));
  assert_int_equal(req.http_minor, 0);
  assert_true(eq(req.path, "/p"));
  assert_true(req.query.empty());
  assert_int_equal(req.headers.size(), 3);
  assert_true(eq(req.headers[0].value, "x y"));
  assert_true(eq(req.headers[1].value, ""));
  assert_true(eq(req.headers[2].value, "z"));
  // Empty query after '?'; obs-text allowed in values.
  assert_int_equal(parse("GET /a? HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", &req),
                   ParseStatus::kDone);
  assert_true(eq(req.path, "/a"));
  assert_true(eq(req.query, ""));
  // Results are cleared on each call.
  assert_int_equal(parse("GET / HTTP/1.1\r\n", &req), ParseStatus::kIncomplete);
  assert_true(req.headers.empty());
  assert_true(req.path.empty());
}

void test_find_case_insensitive(void **) {
  Request req;
  assert_int_equal(parse("GET / HTTP/1.1\r\nhOsT: h\r\nSEC-WEBSOCKET-KEY: k\r\n\r\n", &req),
                   ParseStatus::kDone);
  const Header *h = req.find("Host");
  assert_non_null(h);
  assert_true(eq(h->value, "h"));
  h = req.find("sec-websocket-key");
  assert_non_null(h);
  assert_true(eq(h->value, "k"));
  assert_null(req.find("Hos"));
  assert_null(req.find("Hostx"));

  // Header names and tokens are matched case-insensitively.
  assert_int_equal(validate(upgrade_request({"host: h", "upgrade: WebSocket",
                                             "connection: UPGRADE",
                                             "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
                                             "sec-websocket-version: 13"})),
                   0);
}

void test_token_lists(void **) {
  Request req;
  std::string s = upgrade_request({HOST, "Upgrade: foo, websocket", "Connection: keep-alive, Upgrade",
                                   KEY, V13});
  assert_int_equal(parse(s, &req), ParseStatus::kDone);
  assert_int_equal(validate_upgrade(&req), 0);
  assert_true(req.is_websocket);

  s = upgrade_request({HOST, "Upgrade: h2c", "Upgrade: websocket", "Connection: keep-alive",
                       "Connection: Upgrade", KEY, V13});
  assert_int_equal(parse(s, &req), ParseStatus::kDone);
  assert_int_equal(validate_upgrade(&req), 0);
  assert_true(req.is_websocket);

  s = upgrade_request({HOST, UPG, "Connection: ,keep-alive ,\t upgrade\t,", KEY, V13});
  assert_int_equal(validate(s), 0);

  // "upgrade" as a substring of a token does not count.
  s = upgrade_request({HOST, UPG, "Connection: upgraded, noupgrade", KEY, V13});
  assert_int_equal(validate(s), 400);
  s = upgrade_request({HOST, "Upgrade: websockets", CONN, KEY, V13});
  assert_int_equal(parse(s, &req), ParseStatus::kDone);
  assert_int_equal(validate_upgrade(&req), 0);
  assert_false(req.upgrade_requested);
  assert_false(req.is_websocket);
}

void test_rejections(void **) {
  assert_int_equal(validate(upgrade_request({HOST, UPG, CONN, KEY, V13})), 0);
  assert_int_equal(validate(upgrade_request({HOST, UPG, CONN, KEY, V13}, "POST / HTTP/1.1")),
                   400);
  assert_int_equal(validate(upgrade_request({HOST, UPG, CONN, KEY, V13}, "get / HTTP/1.1")),
                   400);
  assert_int_equal(validate(upgrade_request({HOST, UPG, CONN, KEY, V13}, "GET / HTTP/1.0")),
                   400);
  assert_int_equal(validate(upgrade_request({UPG, CONN, KEY, V13})), 400);
  assert_int_equal(validate(upgrade_request({HOST, "Host: other", UPG, CONN, KEY, V13})), 400);
  assert_int_equal(validate(upgrade_request({HOST, UPG, KEY, V13})), 400);
  assert_int_equal(validate(upgrade_request({HOST, UPG, "Connection: keep-alive", KEY, V13})),
                   400);
  // Key: missing, repeated, 15 and 17 bytes, not base64, unpadded.
  assert_int_equal(validate(upgrade_request({HOST, UPG, CONN, V13})), 400);
  assert_int_equal(validate(upgrade_request({HOST, UPG, CONN, KEY, KEY, V13})), 400);
  assert_int_equal(validate(upgrade_request(
                       {HOST, UPG, CONN, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA", V13})),
                   400);
  assert_int_equal(validate(upgrade_request(
                       {HOST, UPG, CONN, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=", V13})),
                   400);
  assert_int_equal(validate(upgrade_request({HOST, UPG, CONN,
                                             "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==AA",
                                             V13})),
                   400);
  assert_int_equal(validate(upgrade_request(
                       {HOST, UPG, CONN, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!!", V13})),
                   400);
  assert_int_equal(validate(upgrade_request(
                       {HOST, UPG, CONN, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ", V13})),
                   400);
  assert_int_equal(validate(upgrade_request({HOST, UPG, CONN, "Sec-WebSocket-Key:", V13})), 400);
  // Version: missing → 400; 7, 8, 13 accepted; anything else → 426, even
  // with a bad key.
  assert_int_equal(validate(upgrade_request({HOST, UPG, CONN, KEY})), 400);
  const char *ok_versions[] = {"7", "8", "13"};
  for (const char *v : ok_versions) {
    std::string line = std::string("Sec-WebSocket-Version: ") + v;
    Request req;
    std::string s = upgrade_request({HOST, UPG, CONN, KEY, line.c_str()});
    assert_int_equal(parse(s, &req), ParseStatus::kDone);
    assert_int_equal(validate_upgrade(&req), 0);
    assert_int_equal(req.ws_version, std::atoi(v));
  }
  const char *bad_versions[] = {"12", "abc", "0", "013", "13, 8", "", "+13", "14"};
  for (const char *v : bad_versions) {
    std::string line = std::string("Sec-WebSocket-Version: ") + v;
    assert_int_equal(validate(upgrade_request({HOST, UPG, CONN, KEY, line.c_str()})), 426);
    assert_int_equal(validate(upgrade_request({HOST, UPG, CONN, line.c_str()})), 426);
  }
  assert_int_equal(validate(upgrade_request({HOST, UPG, CONN, KEY, V13,
                                             "Sec-WebSocket-Version: 8"})),
                   426);
}

void test_hixie76(void **) {
  std::string s =
      "GET /demo HTTP/1.1\r\n"
      "Host: example.com\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n"
      "Sec-WebSocket-Protocol: sample\r\n"
      "Upgrade: WebSocket\r\n"
      "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
      "Origin: http://example.com\r\n"
      "\r\n"
      "^n:ds[4U";
  Request req;
  size_t head_len = 0;
  assert_int_equal(parse(s, &req, kMaxHead, kMaxHeaders, &head_len), ParseStatus::kDone);
  assert_int_equal(head_len, s.size() - 8);
  assert_int_equal(validate_upgrade(&req), 400);
  assert_true(req.upgrade_requested);
  assert_false(req.is_websocket);
}

void test_not_upgrade(void **) {
  Request req;
  assert_int_equal(parse("GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n", &req),
                   ParseStatus::kDone);
  assert_int_equal(validate_upgrade(&req), 0);
  assert_false(req.upgrade_requested);
  assert_false(req.is_websocket);
  // Even HTTP/1.0 POST without Host is not the upgrade check's business.
  assert_int_equal(parse("POST /x HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
                         &req),
                   ParseStatus::kDone);
  assert_int_equal(validate_upgrade(&req), 0);
  assert_false(req.is_websocket);
}

void test_protocols(void **) {
  Request req;
  std::string s = upgrade_request({HOST, UPG, CONN, KEY, V13,
                                   "Sec-WebSocket-Protocol: chat, superchat",
                                   "Sec-WebSocket-Protocol: , v2 ,,"});
  assert_int_equal(parse(s, &req), ParseStatus::kDone);
  assert_int_equal(validate_upgrade(&req), 0);
  assert_int_equal(req.protocols.size(), 3);
  assert_true(eq(req.protocols[0], "chat"));
  assert_true(eq(req.protocols[1], "superchat"));
  assert_true(eq(req.protocols[2], "v2"));
  // A second validation does not accumulate.
  assert_int_equal(validate_upgrade(&req), 0);
  assert_int_equal(req.protocols.size(), 3);
}

void test_responses(void **) {
  assert_string_equal(status_text(400), "Bad Request");
  assert_string_equal(status_text(426), "Upgrade Required");
  assert_string_equal(status_text(431), "Request Header Fields Too Large");
  assert_string_equal(status_text(599), "Unknown");
  const int known[] = {101, 200, 204, 301, 302, 304, 400, 401, 403,
                       404, 405, 408, 413, 426, 431, 500, 501, 503};
  for (int st : known) assert_string_not_equal(status_text(st), "Unknown");

  std::string r = response_plain(
      426, {{"Sec-WebSocket-Version", "13, 8, 7"}, {"Upgrade", "websocket"},
            {"Connection", "upgrade"}},
      "no");
  assert_string_equal(r.c_str(),
                      "HTTP/1.1 426 Upgrade Required\r\n"
                      "Sec-WebSocket-Version: 13, 8, 7\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: upgrade\r\n"
                      "content-length: 2\r\n"
                      "connection: close\r\n"
                      "\r\n"
                      "no");
  r = response_plain(400, {}, "");
  assert_string_equal(r.c_str(),
                      "HTTP/1.1 400 Bad Request\r\n"
                      "content-length: 0\r\n"
                      "connection: close\r\n"
                      "\r\n");
  r = response_plain(204, {}, "ignored");
  assert_string_equal(r.c_str(), "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
}

// The verdict on a head never depends on where TCP split it: a bad byte in
// the header line past the limit is 400 whether the line is still arriving
// or complete (found by fuzz_handshake, seed 21043d83...).
void test_verdict_independent_of_split(void **) {
  std::string head = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 100; ++i) head += "a:\r\n";
  head += std::string("b\x01\r\n\r\n");
  Request req;
  ParseStatus whole = parse(head, &req, kMaxHead, 100);
  assert_int_equal(whole, ParseStatus::kBad);
  for (size_t cut = 1; cut < head.size(); ++cut) {
    ParseStatus prefix = parse(std::string_view(head).substr(0, cut), &req,
                               kMaxHead, 100);
    if (prefix != ParseStatus::kIncomplete) assert_int_equal(prefix, whole);
  }
}

}  // namespace

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc_vector),
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_parse_whole),
      cmocka_unit_test(test_parse_byte_at_a_time),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_parse_bad),
      cmocka_unit_test(test_parse_edges),
      cmocka_unit_test(test_find_case_insensitive),
      cmocka_unit_test(test_token_lists),
      cmocka_unit_test(test_rejections),
      cmocka_unit_test(test_hixie76),
      cmocka_unit_test(test_not_upgrade),
      cmocka_unit_test(test_protocols),
      cmocka_unit_test(test_responses),
      cmocka_unit_test(test_verdict_independent_of_split),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
