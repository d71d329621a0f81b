// Query parameters and cookies of the request init sees, percent-decoded
// into the caller's buffer (lariat_req_query_param, lariat_req_cookie).
#include <lariat/lariat.h>

#include <cstring>
#include <string>
#include <string_view>

#include "guard.h"
#include "http_syntax.h"
#include "upgrade.h"

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 2.1 percent-decoding; with |plus_is_space|, also the
// application/x-www-form-urlencoded '+'. False for a malformed escape.
bool percent_decode(std::string_view in, bool plus_is_space, std::string *out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      int hi = i + 1 < in.size() ? hex_value(in[i + 1]) : -1;
      int lo = i + 2 < in.size() ? hex_value(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

int copy_out(const std::string &value, char *buf, size_t size, size_t *len) {
  if (len) *len = value.size();
  if (size <= value.size()) return LARIAT_ERR_BUFFER_TOO_SMALL;
  std::memcpy(buf, value.data(), value.size());
  buf[value.size()] = '\0';
  return 0;
}

bool args_ok(const lariat_req *req, const char *name, const char *buf,
             size_t size) {
  return req && name && (buf || size == 0);
}

}  // namespace

extern "C" {

LARIAT_EXTERN int lariat_req_query_param(const lariat_req *req,
                                         const char *name, char *buf,
                                         size_t size, size_t *len) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!args_ok(req, name, buf, size)) return LARIAT_ERR_INVALID_ARGUMENT;
    std::string_view query = req->request->query;
    std::string key, value;
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view()
                                            : query.substr(amp + 1);
      if (pair.empty()) continue;
      size_t eq = pair.find('=');
      std::string_view raw_key = pair.substr(0, eq);
      std::string_view raw_value =
          eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      if (!percent_decode(raw_key, true, &key) || key != name) continue;
      if (!percent_decode(raw_value, true, &value))
        return LARIAT_ERR_INVALID_ARGUMENT;
      return copy_out(value, buf, size, len);
    }
    return LARIAT_ERR_NOT_FOUND;
  });
}

LARIAT_EXTERN int lariat_req_cookie(const lariat_req *req, const char *name,
                                    char *buf, size_t size, size_t *len) {
  return lariat::detail::guard_errors([&]() -> int {
    if (!args_ok(req, name, buf, size)) return LARIAT_ERR_INVALID_ARGUMENT;
    std::string value;
    for (std::string_view header : req->request->values("cookie")) {
      // cookie-string = cookie-pair *( ";" SP cookie-pair ), read leniently
      // about the spaces.
      while (!header.empty()) {
        size_t semi = header.find(';');
        std::string_view pair = lariat::detail::trim_ows(header.substr(0, semi));
        header = semi == std::string_view::npos ? std::string_view()
                                                : header.substr(semi + 1);
        size_t eq = pair.find('=');
        if (eq == std::string_view::npos) continue;
        if (lariat::detail::trim_ows(pair.substr(0, eq)) != name) continue;
        std::string_view raw = lariat::detail::trim_ows(pair.substr(eq + 1));
        if (raw.size() >= 2 && raw.front() == '"' && raw.back() == '"')
          raw = raw.substr(1, raw.size() - 2);
        if (!percent_decode(raw, false, &value))
          return LARIAT_ERR_INVALID_ARGUMENT;
        return copy_out(value, buf, size, len);
      }
    }
    return LARIAT_ERR_NOT_FOUND;
  });
}

}  // extern "C"
