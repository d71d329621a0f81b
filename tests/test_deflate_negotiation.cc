// permessage-deflate (RFC 7692): offer negotiation as a table, and the
// zlib codec against RFC 7692 7.2.3 vectors; no I/O.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
// cmocka 1.1.5 (Debian 12) declares its functions without extern "C".
extern "C" {
#include <cmocka.h>
}

#include <unistd.h>
#include <zlib.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "deflate.h"
#include "upgrade.h"

using namespace lariat::detail;
using Status = DeflateCodec::Status;

namespace {

// ---- negotiation ----------------------------------------------------------

constexpr int kAny = -1;  // the server may choose; consistency still checked

DeflateConfig config(int server_bits = 15, int client_bits = 15,
                     bool server_nct = false, bool client_nct = false) {
  DeflateConfig c;
  c.enabled = true;
  c.server_max_window_bits = server_bits;
  c.client_max_window_bits = client_bits;
  c.server_no_context_takeover = server_nct;
  c.client_no_context_takeover = client_nct;
  return c;
}

DeflateConfig disabled() {
  DeflateConfig c = config();
  c.enabled = false;
  return c;
}

struct Want {
  int server_bits = 15, client_bits = 15;
  int server_nct = 0, client_nct = 0;  // 0/1 or kAny
};

Want want(int server_bits = 15, int client_bits = 15, int server_nct = 0,
          int client_nct = 0) {
  return Want{server_bits, client_bits, server_nct, client_nct};
}

struct Case {
  int line;
  std::vector<std::string_view> headers;
  DeflateConfig config;
  bool accepted;
  Want want;
  // Response parameters that must be there ("name" or "name=value", value
  // compared unquoted) and names that must not.
  std::vector<std::string> has, lacks;
  // With client_bits kAny: a client_max_window_bits in the response must
  // not exceed this (the offered value).
  int client_bits_cap = 15;
};

Case accept(int line, std::vector<std::string_view> headers, DeflateConfig c,
            Want w, std::vector<std::string> has = {},
            std::vector<std::string> lacks = {}, int client_bits_cap = 15) {
  return Case{line, std::move(headers), c, true, w, std::move(has),
              std::move(lacks), client_bits_cap};
}

Case decline(int line, std::vector<std::string_view> headers,
             DeflateConfig c = config()) {
  return Case{line, std::move(headers), c, false, Want{}, {}, {}, 15};
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string_view::npos ? "" : std::string(s.substr(b, e - b + 1));
}

// RFC 7692 7.1.2: 1*DIGIT without a leading zero, 8..15; else -1.
int window_bits(const std::string &v) {
  if (v.size() == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
  if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
    return 10 + v[1] - '0';
  return -1;
}

// Splits the response into its parameters (name -> unquoted value, "" when
// none) and checks its shape. Returns an error message or "".
std::string parse_response(const std::string &response,
                           std::map<std::string, std::string> *params) {
  if (response.find(',') != std::string::npos) return "more than one extension";
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t semi = response.find(';', start);
    parts.push_back(trim(std::string_view(response).substr(
        start, semi == std::string::npos ? std::string::npos : semi - start)));
    if (semi == std::string::npos) break;
    start = semi + 1;
  }
  if (parts[0] != "permessage-deflate") return "does not start with the name";
  for (size_t i = 1; i < parts.size(); i++) {
    size_t eq = parts[i].find('=');
    std::string name = trim(parts[i].substr(0, eq));
    std::string value =
        eq == std::string::npos ? "" : trim(parts[i].substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    if (params->count(name)) return "repeats " + name;
    bool is_bits = name == "server_max_window_bits" ||
                   name == "client_max_window_bits";
    bool is_flag = name == "server_no_context_takeover" ||
                   name == "client_no_context_takeover";
    if (!is_bits && !is_flag) return "unknown parameter '" + name + "'";
    // In a response both window parameters need a value (7.1.2).
    if (is_bits && window_bits(value) < 0) return "bad value of " + name;
    if (is_flag && eq != std::string::npos) return "value on " + name;
    (*params)[name] = value;
  }
  return "";
}

std::string describe(const Case &k) {
  std::string s = "line " + std::to_string(k.line) + " {";
  for (std::string_view h : k.headers) s += " '" + std::string(h) + "'";
  return s + " }";
}

// Checks one case; returns "" or what went wrong.
std::string check(const Case &k) {
  DeflateParams params;
  params.server_window_bits = params.client_window_bits = 99;  // must be set
  std::string response = "untouched";
  bool ok = negotiate_deflate(k.headers, k.config, &params, &response);
  if (ok != k.accepted) return ok ? "accepted: " + response : "declined";
  if (!ok) return "";

  std::map<std::string, std::string> got;
  std::string err = parse_response(response, &got);
  if (!err.empty()) return "response '" + response + "': " + err;
  auto mismatch = [&](const std::string &what) {
    char p[128];
    snprintf(p, sizeof p, " (params %d %d %d %d)", params.server_window_bits,
             params.client_window_bits, params.server_no_context_takeover,
             params.client_no_context_takeover);
    return what + " in '" + response + "'" + p;
  };

  // The response is what the client learns, so params must follow it.
  if (params.server_window_bits < 8 || params.server_window_bits > 15)
    return mismatch("server_window_bits out of range");
  if (got.count("server_max_window_bits") &&
      window_bits(got["server_max_window_bits"]) != params.server_window_bits)
    return mismatch("server_max_window_bits differs from params");
  if (got.count("client_max_window_bits")
          ? window_bits(got["client_max_window_bits"]) !=
                params.client_window_bits
          : params.client_window_bits != 15)
    return mismatch("client_max_window_bits differs from params");
  if (got.count("server_no_context_takeover") !=
      (params.server_no_context_takeover ? 1u : 0u))
    return mismatch("server_no_context_takeover differs from params");
  if (got.count("client_no_context_takeover") !=
      (params.client_no_context_takeover ? 1u : 0u))
    return mismatch("client_no_context_takeover differs from params");

  const Want &w = k.want;
  if (w.server_bits != kAny && params.server_window_bits != w.server_bits)
    return mismatch("server_window_bits != " + std::to_string(w.server_bits));
  if (w.client_bits != kAny && params.client_window_bits != w.client_bits)
    return mismatch("client_window_bits != " + std::to_string(w.client_bits));
  if (w.client_bits == kAny && params.client_window_bits != 15 &&
      params.client_window_bits > k.client_bits_cap)
    return mismatch("client_window_bits above the offer");
  if (w.server_nct != kAny &&
      params.server_no_context_takeover != (w.server_nct == 1))
    return mismatch("server_no_context_takeover");
  if (w.client_nct != kAny &&
      params.client_no_context_takeover != (w.client_nct == 1))
    return mismatch("client_no_context_takeover");
  for (const std::string &h : k.has) {
    size_t eq = h.find('=');
    std::string name = h.substr(0, eq);
    if (!got.count(name)) return mismatch("no " + name);
    if (eq != std::string::npos && got[name] != h.substr(eq + 1))
      return mismatch(name + " is not " + h.substr(eq + 1));
  }
  for (const std::string &name : k.lacks)
    if (got.count(name)) return mismatch("unexpected " + name);
  return "";
}

const char kSmwb[] = "server_max_window_bits";
const char kCmwb[] = "client_max_window_bits";
const char kSnct[] = "server_no_context_takeover";
const char kCnct[] = "client_no_context_takeover";

std::vector<Case> cases() {
  // Owns the generated header strings the views point into.
  static std::vector<std::string> storage;
  storage.reserve(200);
  auto keep = [](std::string s) -> std::string_view {
    storage.push_back(std::move(s));
    return storage.back();
  };
  const std::vector<std::string> kNoExtras = {kSmwb, kCmwb, kSnct, kCnct};

  std::vector<Case> t = {
      // Each parameter alone.
      accept(__LINE__, {"permessage-deflate"}, config(), want(), {}, kNoExtras),
      accept(__LINE__, {"permessage-deflate; server_no_context_takeover"},
             config(), want(15, 15, 1, 0), {kSnct}, {kCmwb, kCnct}),
      // The client promises; the server may or may not make it agreed.
      accept(__LINE__, {"permessage-deflate; client_no_context_takeover"},
             config(), want(15, 15, 0, kAny), {}, {kCmwb, kSnct}),
      // Without a value and with our default 15 there is nothing to ask.
      accept(__LINE__, {"permessage-deflate; client_max_window_bits"},
             config(), want(), {}, {kCmwb, kSmwb}),
      accept(__LINE__, {"permessage-deflate; client_max_window_bits"},
             config(15, 10), want(15, 10), {"client_max_window_bits=10"}),
      accept(__LINE__, {"permessage-deflate; client_max_window_bits"},
             config(15, 8), want(15, 8), {"client_max_window_bits=8"}),
      // A client window limit below 15 is a requirement (Cowboy's
      // ws_deflate_opts_client_max_window_bits_only_in_server): an offer
      // that cannot be limited is declined, never accepted at 15 bits.
      decline(__LINE__, {"permessage-deflate"}, config(15, 10)),
      decline(__LINE__, {"permessage-deflate; server_no_context_takeover"},
              config(15, 9)),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=10"},
              config(15, 8)),
      // ...but a later offer that can be limited is taken.
      accept(__LINE__,
             {"permessage-deflate, permessage-deflate; client_max_window_bits"},
             config(15, 10), want(15, 10), {"client_max_window_bits=10"}),

      // Invalid window values decline the offer.
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=7"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=16"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=0"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=08"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=010"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=abc"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=-9"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=+9"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=9a"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=1 0"}),
      decline(__LINE__,
              {"permessage-deflate; server_max_window_bits=4294967306"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits="}),
      decline(__LINE__, {"permessage-deflate; client_max_window_bits=7"}),
      decline(__LINE__, {"permessage-deflate; client_max_window_bits=16"}),
      decline(__LINE__, {"permessage-deflate; client_max_window_bits=0"}),
      decline(__LINE__, {"permessage-deflate; client_max_window_bits=09"}),
      decline(__LINE__, {"permessage-deflate; client_max_window_bits=abc"}),
      decline(__LINE__, {"permessage-deflate; client_max_window_bits="}),
      // The no_context_takeover parameters take no value.
      decline(__LINE__, {"permessage-deflate; server_no_context_takeover=1"}),
      decline(__LINE__, {"permessage-deflate; client_no_context_takeover=1"}),
      decline(__LINE__,
              {"permessage-deflate; client_no_context_takeover=\"\""}),

      // Quoted values (7.1.2.1: unquoted they must be 1*DIGIT).
      accept(__LINE__, {"permessage-deflate; server_max_window_bits=\"10\""},
             config(), want(10), {"server_max_window_bits=10"}),
      accept(__LINE__, {"permessage-deflate; client_max_window_bits=\"9\""},
             config(15, 12), want(15, 9), {"client_max_window_bits=9"}),
      // A quoted-pair unescapes to the same digits (RFC 7230 3.2.6).
      accept(__LINE__, {"permessage-deflate; server_max_window_bits=\"1\\0\""},
             config(), want(10), {"server_max_window_bits=10"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=\"10"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=10\""}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=\"\""}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=\"1\"0"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=\"08\""}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=\"abc\""}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=\""}),
      decline(__LINE__,
              {"permessage-deflate; server_max_window_bits=\"10\", "
               "permessage-deflate; client_max_window_bits=\"9"}),

      // Duplicates decline that offer; a later one may still win.
      decline(__LINE__, {"permessage-deflate; server_no_context_takeover; "
                         "server_no_context_takeover"}),
      decline(__LINE__, {"permessage-deflate; client_no_context_takeover; "
                         "client_no_context_takeover"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=10; "
                         "server_max_window_bits=10"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=10; "
                         "server_max_window_bits=12"}),
      decline(__LINE__, {"permessage-deflate; client_max_window_bits; "
                         "client_max_window_bits=10"}),
      accept(__LINE__,
             {"permessage-deflate; client_no_context_takeover; "
              "client_no_context_takeover, "
              "permessage-deflate; server_max_window_bits=12"},
             config(), want(12), {"server_max_window_bits=12"}, {kCnct}),
      accept(__LINE__,
             {"permessage-deflate; server_max_window_bits=9; "
              "server_max_window_bits=9",
              "permessage-deflate; server_no_context_takeover"},
             config(), want(15, 15, 1, 0), {kSnct}, {kSmwb}),

      // Unknown parameters decline that offer.
      decline(__LINE__, {"permessage-deflate; foo"}),
      decline(__LINE__, {"permessage-deflate; foo=1"}),
      decline(__LINE__, {"permessage-deflate; server_max_window"}),
      decline(__LINE__, {"permessage-deflate; mux"}),
      accept(__LINE__, {"permessage-deflate; foo=1, permessage-deflate"},
             config(), want(), {}, kNoExtras),
      accept(__LINE__,
             {"permessage-deflate; x=\"a,b\"; server_max_window_bits=8, "
              "permessage-deflate; server_max_window_bits=9"},
             config(), want(9), {"server_max_window_bits=9"}),

      // Several offers: the first acceptable wins, across header values too.
      accept(__LINE__,
             {"permessage-deflate; server_max_window_bits=10, "
              "permessage-deflate"},
             config(), want(10), {"server_max_window_bits=10"}),
      accept(__LINE__,
             {"permessage-deflate, "
              "permessage-deflate; server_max_window_bits=10"},
             config(), want(), {}, kNoExtras),
      accept(__LINE__,
             {"permessage-deflate; server_max_window_bits=7, "
              "permessage-deflate; server_max_window_bits=9"},
             config(), want(9), {"server_max_window_bits=9"}),
      accept(__LINE__,
             {"permessage-deflate; server_max_window_bits=16",
              "permessage-deflate; server_no_context_takeover"},
             config(), want(15, 15, 1, 0), {kSnct}, {kSmwb}),
      accept(__LINE__,
             {"foo", "permessage-deflate; client_max_window_bits=abc",
              "permessage-deflate; server_max_window_bits=11",
              "permessage-deflate"},
             config(), want(11), {"server_max_window_bits=11"}),
      accept(__LINE__,
             {"permessage-deflate; server_max_window_bits=12",
              "permessage-deflate; server_max_window_bits=10"},
             config(), want(12), {"server_max_window_bits=12"}),
      decline(__LINE__, {"permessage-deflate; a", "permessage-deflate; b",
                         "permessage-deflate; server_max_window_bits=99"}),

      // Other extensions are not ours to judge.
      decline(__LINE__, {"x-webkit-deflate-frame"}),
      decline(__LINE__, {"deflate-frame; no_context_takeover"}),
      decline(__LINE__, {"x-permessage-deflate, permessage-deflatex"}),
      decline(__LINE__, {"foo; bar=1"}),
      accept(__LINE__, {"x-webkit-deflate-frame, permessage-deflate"},
             config(), want(), {}, kNoExtras),
      accept(__LINE__,
             {"foo; bar=1, permessage-deflate; server_no_context_takeover"},
             config(), want(15, 15, 1, 0), {kSnct}),
      accept(__LINE__, {"foo; bar=1", "permessage-deflate"}, config(), want(),
             {}, kNoExtras),
      accept(__LINE__,
             {"deflate-frame; server_max_window_bits=99; bogus, "
              "permessage-deflate"},
             config(), want(), {}, kNoExtras),
      accept(__LINE__, {"foo; bar=\"a, b; c\", permessage-deflate"}, config(),
             want(), {}, kNoExtras),

      // Whitespace around separators (optional whitespace, RFC 7230 3.2.3).
      accept(__LINE__,
             {"  permessage-deflate ;server_no_context_takeover\t;\t"
              "server_max_window_bits=9  "},
             config(), want(9, 15, 1, 0), {kSnct, "server_max_window_bits=9"}),
      accept(__LINE__, {"foo ,permessage-deflate"}, config(), want()),
      // RFC 6455 9.1 uses the implied *LWS of RFC 2616 around "=".
      accept(__LINE__, {"permessage-deflate; server_max_window_bits = 10"},
             config(), want(10), {"server_max_window_bits=10"}),

      // Nothing offered, or not parseable.
      decline(__LINE__, {}),
      decline(__LINE__, {""}),
      decline(__LINE__, {" , "}),
      decline(__LINE__, {"permessage-deflate; =10"}),
      decline(__LINE__, {"permessage-deflate; server_max_window_bits=10 11"}),
      decline(__LINE__, {"permessage-deflate server_no_context_takeover"}),
      decline(__LINE__, {"permessage-deflate;; server_no_context_takeover"}),
      decline(__LINE__, {"permessage-deflate; server_no_context_takeover;"}),
      decline(__LINE__, {"permessage-deflate=1"}),
      decline(__LINE__, {"\"permessage-deflate\""}),

      // Disabled: nothing is accepted.
      decline(__LINE__, {"permessage-deflate"}, disabled()),
      decline(__LINE__,
              {"permessage-deflate; client_max_window_bits",
               "permessage-deflate; server_no_context_takeover"},
              disabled()),

      // What the configuration adds on its own.
      accept(__LINE__, {"permessage-deflate"}, config(15, 15, true, false),
             want(15, 15, 1, 0), {kSnct}, {kCnct, kCmwb}),
      // 7.1.1.2: the server may ask this even when it was not offered.
      accept(__LINE__, {"permessage-deflate"}, config(15, 15, false, true),
             want(15, 15, 0, 1), {kCnct}, {kSnct, kCmwb}),
      accept(__LINE__, {"permessage-deflate; client_no_context_takeover"},
             config(15, 15, false, true), want(15, 15, 0, 1), {kCnct}),
      accept(__LINE__, {"permessage-deflate; server_no_context_takeover"},
             config(15, 15, true, false), want(15, 15, 1, 0), {kSnct}),
      accept(__LINE__, {"permessage-deflate"}, config(15, 15, true, true),
             want(15, 15, 1, 1), {kSnct, kCnct}, {kCmwb}),
      // 7.1.2.1: a smaller server window may be announced unasked.
      accept(__LINE__, {"permessage-deflate"}, config(10), want(10), {},
             {kCmwb}),
      accept(__LINE__, {"permessage-deflate"}, config(8), want(8), {},
             {kCmwb}),
      accept(__LINE__, {"permessage-deflate; server_max_window_bits=12"},
             config(10), want(10), {"server_max_window_bits=10"}),
      accept(__LINE__, {"permessage-deflate; server_max_window_bits=9"},
             config(10), want(9), {"server_max_window_bits=9"}),
      accept(__LINE__, {"permessage-deflate; server_max_window_bits=10"},
             config(10), want(10), {"server_max_window_bits=10"}),

      // Combinations.
      accept(__LINE__,
             {"permessage-deflate; client_max_window_bits; "
              "server_max_window_bits=10; server_no_context_takeover; "
              "client_no_context_takeover"},
             config(), want(10, 15, 1, kAny),
             {"server_max_window_bits=10", kSnct}, {kCmwb}),
      accept(__LINE__,
             {"permessage-deflate; client_no_context_takeover; "
              "server_no_context_takeover; server_max_window_bits=11; "
              "client_max_window_bits"},
             config(12, 9), want(11, 9, 1, kAny),
             {"server_max_window_bits=11", "client_max_window_bits=9",
              kSnct}),
      accept(__LINE__,
             {"permessage-deflate; server_max_window_bits=8; "
              "client_max_window_bits=8"},
             config(15, 15, true, true), want(8, kAny, 1, 1),
             {"server_max_window_bits=8", kSnct, kCnct}, {}, 8),
  };

  // Every valid window size, each direction alone.
  for (int bits = 8; bits <= 15; bits++) {
    std::string b = std::to_string(bits);
    t.push_back(accept(
        __LINE__,
        {keep("permessage-deflate; server_max_window_bits=" + b)}, config(),
        want(bits), {"server_max_window_bits=" + b}, {kCmwb, kSnct, kCnct}));
    // 7.1.2.2: with a value the server may ignore it (then 15) or echo
    // one no larger.
    t.push_back(accept(
        __LINE__, {keep("permessage-deflate; client_max_window_bits=" + b)},
        config(), want(15, kAny), {}, {kSmwb, kSnct, kCnct}, bits));
    // Our smaller limit must be asked for; a smaller offer stands.
    int agreed = bits < 10 ? bits : 10;
    t.push_back(accept(
        __LINE__, {keep("permessage-deflate; client_max_window_bits=" + b)},
        config(15, 10), want(15, agreed),
        {"client_max_window_bits=" + std::to_string(agreed)}));
    t.push_back(accept(
        __LINE__, {"permessage-deflate; client_max_window_bits"},
        config(15, bits), want(15, bits),
        bits < 15 ? std::vector<std::string>{"client_max_window_bits=" + b}
                  : std::vector<std::string>{},
        bits < 15 ? std::vector<std::string>{}
                  : std::vector<std::string>{kCmwb}));
  }
  return t;
}

void test_negotiation_table(void **) {
  int failures = 0;
  size_t total;
  {  // destroyed before fail_msg longjmps past it
    std::vector<Case> table = cases();
    total = table.size();
    for (const Case &k : table) {
      std::string err = check(k);
      if (!err.empty()) {
        print_error("%s: %s\n", describe(k).c_str(), err.c_str());
        failures++;
      }
    }
  }
  if (failures) fail_msg("%d of %zu cases failed", failures, total);
}

// The response is replaced, not appended to.
void test_response_replaced(void **) {
  DeflateParams params;
  std::string response = "stale";
  assert_true(negotiate_deflate({"permessage-deflate"}, config(), &params,
                                &response));
  assert_string_equal(response.c_str(), "permessage-deflate");
}

// ---- codec ----------------------------------------------------------------

const uint8_t kHelloFresh[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
const uint8_t kHelloAgain[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
const uint8_t kHello[] = {'H', 'e', 'l', 'l', 'o'};
constexpr uint64_t kNoLimit = uint64_t{1} << 40;

DeflateParams params(int server_bits = 15, int client_bits = 15,
                     bool server_nct = false, bool client_nct = false) {
  DeflateParams p;
  p.server_window_bits = server_bits;
  p.client_window_bits = client_bits;
  p.server_no_context_takeover = server_nct;
  p.client_no_context_takeover = client_nct;
  return p;
}

std::string bytes(const uint8_t *p, size_t n) {
  return std::string(reinterpret_cast<const char *>(p), n);
}
template <size_t N>
std::string bytes(const uint8_t (&a)[N]) {
  return bytes(a, N);
}

std::string hex(const std::string &s) {
  std::string h;
  char b[4];
  for (unsigned char c : s) {
    snprintf(b, sizeof b, "%02x ", c);
    h += b;
  }
  return h;
}

void assert_bytes(const std::string &got, const std::string &want) {
  if (got != want)
    fail_msg("got [%s] want [%s]", hex(got).c_str(), hex(want).c_str());
}

std::string compress(DeflateCodec &codec, const std::string &s) {
  std::string out = "stale";
  assert_int_equal(
      codec.compress(reinterpret_cast<const uint8_t *>(s.data()), s.size(),
                     &out),
      Status::kOk);
  return out;
}

std::string decompress(DeflateCodec &codec, const std::string &z,
                       uint64_t limit = kNoLimit) {
  std::string out;
  assert_int_equal(
      codec.decompress(reinterpret_cast<const uint8_t *>(z.data()), z.size(),
                       true, limit, &out),
      Status::kOk);
  return out;
}

// The client's side, straight zlib: raw deflate with a sync flush and the
// 00 00 ff ff removed (RFC 7692 7.2.1).
class ClientDeflater {
 public:
  explicit ClientDeflater(int bits, int level = Z_DEFAULT_COMPRESSION) {
    memset(&z_, 0, sizeof z_);
    assert_int_equal(deflateInit2(&z_, level, Z_DEFLATED, -(bits < 9 ? 9 : bits),
                                  8, Z_DEFAULT_STRATEGY),
                     Z_OK);
  }
  ~ClientDeflater() { deflateEnd(&z_); }
  std::string compress(const std::string &s) {
    std::string out;
    z_.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(s.data()));
    z_.avail_in = static_cast<uInt>(s.size());
    do {
      char buf[65536];
      z_.next_out = reinterpret_cast<Bytef *>(buf);
      z_.avail_out = sizeof buf;
      int rc = deflate(&z_, Z_SYNC_FLUSH);
      assert_true(rc == Z_OK || rc == Z_BUF_ERROR);
      out.append(buf, sizeof buf - z_.avail_out);
    } while (z_.avail_out == 0 || z_.avail_in > 0);
    if (out.empty()) return std::string(1, '\0');
    assert_true(out.size() >= 4);
    assert_bytes(out.substr(out.size() - 4), std::string("\0\0\xff\xff", 4));
    out.resize(out.size() - 4);
    return out;
  }

 private:
  z_stream z_;
};

// The client's inflater with exactly the agreed window. inflate only checks
// distances against its window plus what the current call produced, so one
// output byte per call makes the window a hard limit.
class ClientInflater {
 public:
  explicit ClientInflater(int bits) {
    memset(&z_, 0, sizeof z_);
    assert_int_equal(inflateInit2(&z_, -bits), Z_OK);
  }
  ~ClientInflater() { inflateEnd(&z_); }
  // False when the data is corrupt or reaches beyond the window.
  bool inflate_message(const std::string &z, std::string *out) {
    std::string in = z + std::string("\0\0\xff\xff", 4);
    z_.next_in = reinterpret_cast<Bytef *>(&in[0]);
    z_.avail_in = static_cast<uInt>(in.size());
    out->clear();
    for (;;) {
      unsigned char byte;
      z_.next_out = &byte;
      z_.avail_out = 1;
      int rc = inflate(&z_, Z_SYNC_FLUSH);
      if (z_.avail_out == 0) out->push_back(static_cast<char>(byte));
      if (rc == Z_STREAM_END) return inflateReset(&z_) == Z_OK;
      if (rc == Z_BUF_ERROR && z_.avail_in == 0) return true;
      if (rc != Z_OK) return false;
    }
  }

 private:
  z_stream z_;
};

// Text with repeats at every distance.
std::string text(size_t n, uint32_t seed) {
  static const char *const kWords[] = {"permessage", "deflate", "window",
                                       "lariat",     "frame",   "the",
                                       "context",    "\xc3\xa9t\xc3\xa9"};
  std::string s;
  uint32_t x = seed * 2654435761u + 1;
  while (s.size() < n) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s += kWords[x % 8];
    s += ' ';
  }
  s.resize(n);
  return s;
}

void test_compress_vectors(void **) {
  DeflateConfig cfg = config();
  DeflateCodec takeover(cfg, params());
  assert_bytes(compress(takeover, "Hello"), bytes(kHelloFresh));
  assert_bytes(compress(takeover, "Hello"), bytes(kHelloAgain));

  DeflateCodec reset(cfg, params(15, 15, true, false));
  assert_bytes(compress(reset, "Hello"), bytes(kHelloFresh));
  assert_bytes(compress(reset, "Hello"), bytes(kHelloFresh));

  // RFC 7692 7.2.3.6: an empty message is the single byte 00.
  DeflateCodec empty(cfg, params());
  ClientInflater client(15);
  std::string z = compress(empty, ""), plain;
  assert_bytes(z, std::string(1, '\0'));
  assert_true(client.inflate_message(z, &plain));
  assert_bytes(plain, "");
  assert_true(client.inflate_message(compress(empty, "Hello"), &plain));
  assert_bytes(plain, "Hello");
  // zlib produces nothing for a second flush in a row, yet an empty
  // payload would not inflate: it must still be 00 or similar.
  z = compress(empty, "");
  assert_true(z.size() >= 1);
  assert_true(client.inflate_message(z, &plain));
  assert_bytes(plain, "");
  z = compress(empty, "");
  assert_true(client.inflate_message(z, &plain));
  assert_bytes(plain, "");
}

// What the server sends inflates with exactly the agreed window, with and
// without context takeover, so 8 bits is honoured (zlib deflates with 9).
void test_compress_window(void **) {
  for (int bits = 8; bits <= 15; bits++) {
    for (int nct = 0; nct <= 1; nct++) {
      DeflateCodec codec(config(), params(bits, 15, nct, false));
      ClientInflater client(bits);
      for (uint32_t m = 0; m < 3; m++) {
        std::string s = text(70000, m % 2);  // the same text again: takeover
        std::string plain;
        if (!client.inflate_message(compress(codec, s), &plain))
          fail_msg("window %d nct %d message %u does not inflate", bits, nct,
                   m);
        assert_true(plain == s);
      }
    }
  }
}

void test_decompress_vectors(void **) {
  DeflateConfig cfg = config();
  DeflateCodec codec(cfg, params());
  assert_bytes(decompress(codec, bytes(kHelloFresh)), bytes(kHello));
  assert_bytes(decompress(codec, bytes(kHelloAgain)), bytes(kHello));
  // 7.2.3.3: a stored block.
  const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                            0x65, 0x6c, 0x6c, 0x6f, 0x00};
  assert_bytes(decompress(codec, bytes(stored)), bytes(kHello));
  // 7.2.3.5: two blocks in one message.
  const uint8_t two_blocks[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
                                0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};
  assert_bytes(decompress(codec, bytes(two_blocks)), bytes(kHello));
  // 7.2.3.6: empty.
  assert_bytes(decompress(codec, std::string(1, '\0')), "");
  assert_bytes(decompress(codec, bytes(kHelloAgain)), bytes(kHello));

  // The client promised no context takeover: each message stands alone.
  DeflateCodec no_takeover(cfg, params(15, 15, false, true));
  assert_bytes(decompress(no_takeover, bytes(kHelloFresh)), bytes(kHello));
  assert_bytes(decompress(no_takeover, bytes(kHelloFresh)), bytes(kHello));

  // Fresh context, then "00" on a fresh stream.
  DeflateCodec empty(cfg, params());
  assert_bytes(decompress(empty, std::string(1, '\0')), "");
  assert_bytes(decompress(empty, bytes(kHelloFresh)), bytes(kHello));
}

// 7.2.3.4: a client may end its stream with BFINAL; the next message then
// starts a new one.
void test_decompress_bfinal(void **) {
  DeflateCodec codec(config(), params());
  const uint8_t final_block[] = {0xf3, 0x48, 0xcd, 0xc9,
                                 0xc9, 0x07, 0x00, 0x00};
  assert_bytes(decompress(codec, bytes(final_block)), bytes(kHello));
  assert_bytes(decompress(codec, bytes(kHelloFresh)), bytes(kHello));
  assert_bytes(decompress(codec, bytes(final_block)), bytes(kHello));
  assert_bytes(decompress(codec, bytes(final_block)), bytes(kHello));
}

void test_decompress_pieces(void **) {
  DeflateConfig cfg = config();
  DeflateCodec codec(cfg, params());
  // One byte per call, as from one-byte continuation frames.
  for (const std::string &z : {bytes(kHelloFresh), bytes(kHelloAgain)}) {
    std::string out;
    for (size_t i = 0; i < z.size(); i++)
      assert_int_equal(
          codec.decompress(reinterpret_cast<const uint8_t *>(&z[i]), 1,
                           i + 1 == z.size(), kNoLimit, &out),
          Status::kOk);
    assert_bytes(out, bytes(kHello));
  }
  // A final empty frame: the tail comes alone.
  {
    std::string out;
    const uint8_t *p = kHelloAgain;
    assert_int_equal(
        codec.decompress(p, sizeof kHelloAgain, false, kNoLimit, &out),
        Status::kOk);
    assert_int_equal(codec.decompress(p, 0, true, kNoLimit, &out),
                     Status::kOk);
    assert_bytes(out, bytes(kHello));
  }
  // A larger message one byte at a time, with every window the client may
  // use and context taken over between messages.
  for (int bits = 8; bits <= 15; bits++) {
    DeflateCodec server(cfg, params(15, bits));
    ClientDeflater client(bits);
    for (uint32_t m = 0; m < 2; m++) {
      std::string s = text(20000, 7);
      std::string z = client.compress(s), out;
      for (size_t i = 0; i < z.size(); i++)
        assert_int_equal(
            server.decompress(reinterpret_cast<const uint8_t *>(&z[i]), 1,
                              i + 1 == z.size(), kNoLimit, &out),
            Status::kOk);
      assert_true(out == s);
    }
  }
}

void test_decompress_corrupt(void **) {
  DeflateCodec codec(config(), params());
  const uint8_t corrupt[] = {0xff, 0xff, 0xff};  // reserved block type
  std::string out;
  assert_int_equal(codec.decompress(corrupt, sizeof corrupt, true, kNoLimit,
                                    &out),
                   Status::kCorrupt);

  // A back reference with nothing before it.
  DeflateCodec fresh(config(), params());
  out.clear();
  assert_int_equal(fresh.decompress(kHelloAgain, sizeof kHelloAgain, true,
                                    kNoLimit, &out),
                   Status::kCorrupt);
}

void test_decompress_limit(void **) {
  DeflateConfig cfg = config();
  {
    DeflateCodec codec(cfg, params());
    std::string out;
    assert_int_equal(
        codec.decompress(kHelloFresh, sizeof kHelloFresh, true, 5, &out),
        Status::kOk);
    assert_bytes(out, bytes(kHello));
  }
  {
    DeflateCodec codec(cfg, params());
    std::string out;
    assert_int_equal(
        codec.decompress(kHelloFresh, sizeof kHelloFresh, true, 4, &out),
        Status::kTooBig);
    assert_true(out.size() <= 4);
  }

  // A bomb: 10 MiB of zeros is about 10 KiB compressed.
  std::string zeros(10u << 20, '\0');
  ClientDeflater client(15);
  std::string z = client.compress(zeros);
  assert_true(z.size() < 20000);
  const uint64_t limit = 1u << 20;
  {
    DeflateCodec codec(cfg, params());
    std::string out;
    assert_int_equal(
        codec.decompress(reinterpret_cast<const uint8_t *>(z.data()), z.size(),
                         true, limit, &out),
        Status::kTooBig);
    assert_true(out.size() <= limit);
  }
  {
    // In frames of 1000 bytes: it stops within the first ones.
    DeflateCodec codec(cfg, params());
    std::string out;
    Status st = Status::kOk;
    size_t i = 0;
    for (; i < z.size() && st == Status::kOk; i += 1000) {
      size_t n = z.size() - i < 1000 ? z.size() - i : 1000;
      st = codec.decompress(reinterpret_cast<const uint8_t *>(z.data()) + i, n,
                            i + n == z.size(), limit, &out);
      assert_true(out.size() <= limit);
    }
    assert_int_equal(st, Status::kTooBig);
  }
}

// UINT64_MAX is a natural "no limit" (lariat_upgrade_set_max_frame_size
// accepts it), so limit + 1 must not wrap. A hang here dies by SIGALRM.
void test_decompress_unlimited(void **) {
  alarm(10);
  DeflateCodec codec(config(), params());
  std::string out;
  assert_int_equal(codec.decompress(kHelloFresh, sizeof kHelloFresh, true,
                                    UINT64_MAX, &out),
                   Status::kOk);
  alarm(0);
  assert_bytes(out, bytes(kHello));
}

void test_release_idle(void **) {
  DeflateConfig cfg = config();
  cfg.threshold = 123;
  // Both directions reset: nothing needs to survive between messages.
  DeflateCodec both(cfg, params(15, 15, true, true));
  assert_int_equal(both.threshold(), 123);
  assert_bytes(compress(both, "Hello"), bytes(kHelloFresh));
  assert_bytes(decompress(both, bytes(kHelloFresh)), bytes(kHello));
  both.release_idle();
  assert_false(both.holds_state());
  assert_bytes(compress(both, "Hello"), bytes(kHelloFresh));
  assert_bytes(decompress(both, bytes(kHelloFresh)), bytes(kHello));

  // Takeover both ways: the state is the context and must stay.
  DeflateCodec none(cfg, params());
  assert_bytes(compress(none, "Hello"), bytes(kHelloFresh));
  assert_bytes(decompress(none, bytes(kHelloFresh)), bytes(kHello));
  none.release_idle();
  assert_true(none.holds_state());
  assert_bytes(compress(none, "Hello"), bytes(kHelloAgain));
  assert_bytes(decompress(none, bytes(kHelloAgain)), bytes(kHello));

  // Only our side resets: the inflater keeps the client's context.
  DeflateCodec ours(cfg, params(15, 15, true, false));
  compress(ours, "Hello");
  assert_bytes(decompress(ours, bytes(kHelloFresh)), bytes(kHello));
  ours.release_idle();
  assert_true(ours.holds_state());
  assert_bytes(compress(ours, "Hello"), bytes(kHelloFresh));
  assert_bytes(decompress(ours, bytes(kHelloAgain)), bytes(kHello));
}


// LARIAT_DEFLATE_STRATEGY takes zlib's five strategies and nothing else.
void test_strategy_option(void **) {
  lariat_upgrade up = {};
  assert_int_equal(up.deflate.strategy, 0);  // Z_DEFAULT_STRATEGY
  for (int64_t v : std::initializer_list<int64_t>{4, 3, 2, 1, 0, 2}) {
    assert_int_equal(lariat_upgrade_set_deflate(&up, LARIAT_DEFLATE_STRATEGY, v),
                     0);
    assert_int_equal(up.deflate.strategy, v);
  }
  for (int64_t v :
       std::initializer_list<int64_t>{-1, 5, 9, INT64_MIN, INT64_MAX}) {
    assert_int_equal(lariat_upgrade_set_deflate(&up, LARIAT_DEFLATE_STRATEGY, v),
                     LARIAT_ERR_INVALID_ARGUMENT);
    assert_int_equal(up.deflate.strategy, 2);  // unchanged
  }
}

// Every strategy inflates back with takeover; Huffman-only really is used
// (no LZ77 matches, so repetitive text compresses far worse).
void test_strategy_round_trip(void **) {
  std::string s = text(70000, 3);
  size_t sizes[5];
  for (int strategy = 0; strategy <= 4; strategy++) {
    DeflateConfig cfg = config();
    cfg.strategy = strategy;
    DeflateCodec codec(cfg, params());
    ClientInflater client(15);
    for (int m = 0; m < 2; m++) {
      std::string z = compress(codec, s), plain;
      if (m == 0) sizes[strategy] = z.size();
      if (!client.inflate_message(z, &plain))
        fail_msg("strategy %d message %d does not inflate", strategy, m);
      assert_true(plain == s);
    }
  }
  assert_true(sizes[2] > 2 * sizes[0]);  // Z_HUFFMAN_ONLY vs default
}

// Lengths past 4 GiB go to zlib in uInt pieces, nothing dropped (only the
// arithmetic: the bytes are never read).
void test_zlib_feed_over_4gib(void **) {
  static const uint8_t base[1] = {0};
  const uint64_t five_gib = 5ull << 30;
  z_stream z = {};
  const uint8_t *p = base;
  size_t left = five_gib;
  zlib_feed(&z, &p, &left, UINT_MAX);
  assert_int_equal(z.avail_in, UINT_MAX);
  assert_true(z.next_in == base);
  assert_int_equal(left, five_gib - UINT_MAX);
  zlib_feed(&z, &p, &left, UINT_MAX);  // zlib has not used its input yet
  assert_int_equal(left, five_gib - UINT_MAX);
  z.avail_in = 0;
  zlib_feed(&z, &p, &left, UINT_MAX);
  assert_int_equal(z.avail_in, five_gib - UINT_MAX);
  assert_int_equal(reinterpret_cast<uintptr_t>(z.next_in) -
                       reinterpret_cast<uintptr_t>(base),
                   UINT_MAX);
  assert_int_equal(left, 0);
  // A piece size above UINT_MAX is still cut to what zlib can count.
  left = five_gib;
  z.avail_in = 0;
  zlib_feed(&z, &p, &left, SIZE_MAX);
  assert_int_equal(z.avail_in, UINT_MAX);
}

// The same pieces in both directions with a tiny piece size: input and
// output cut at every few bytes still round-trip, with takeover.
void test_small_pieces_round_trip(void **) {
  for (size_t piece : {size_t(1), size_t(7), size_t(1000)}) {
    DeflateCodec codec(config(), params());
    codec.set_max_piece(piece);
    DeflateCodec peer(config(), params());
    peer.set_max_piece(piece);
    for (uint32_t m = 0; m < 3; m++) {
      std::string s = text(5000, m % 2);
      std::string z = compress(codec, s);
      ClientInflater check(15);  // first message: a fresh inflater agrees
      std::string plain;
      if (m == 0) {
        assert_true(check.inflate_message(z, &plain));
        assert_true(plain == s);
      }
      plain.clear();
      assert_int_equal(peer.decompress(reinterpret_cast<const uint8_t *>(
                                           z.data()),
                                       z.size(), true, UINT64_MAX, &plain),
                       Status::kOk);
      if (plain != s) fail_msg("piece %zu message %u differs", piece, m);
    }
  }
}

}  // namespace

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_negotiation_table),
      cmocka_unit_test(test_response_replaced),
      cmocka_unit_test(test_compress_vectors),
      cmocka_unit_test(test_compress_window),
      cmocka_unit_test(test_decompress_vectors),
      cmocka_unit_test(test_decompress_bfinal),
      cmocka_unit_test(test_decompress_pieces),
      cmocka_unit_test(test_decompress_corrupt),
      cmocka_unit_test(test_decompress_limit),
      cmocka_unit_test(test_decompress_unlimited),
      cmocka_unit_test(test_release_idle),
      cmocka_unit_test(test_strategy_option),
      cmocka_unit_test(test_strategy_round_trip),
      cmocka_unit_test(test_zlib_feed_over_4gib),
      cmocka_unit_test(test_small_pieces_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
