// libFuzzer target: what a lariat client reads from a server it does not
// trust - the response head parser (parse_response), the RFC 6455 4.1 /
// RFC 7692 checks of the 101 (check_response, accept_deflate_response) -
// and the URL parser (parse_ws_url).
//
// Input: [split][offer][bytes...]
//   split: where the response is cut for the incremental check;
//   offer: bit 0 offers permessage-deflate, bit 1 asks for
//          server_no_context_takeover, bit 2 limits server_max_window_bits
//          to 10, bit 3 offers subprotocols "a" and "b".
//
// Besides "no crash": a verdict reached on a prefix never changes when
// more bytes arrive (read_response re-parses the grown buffer), a parsed
// head ends in CRLF CRLF, an accepted response agreed only to what was
// offered, and a parsed URL has a host, a port and a target starting
// with '/'.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "client.h"
#include "fuzz_check.h"
#include "handshake.h"

using lariat::detail::ParseResult;
using lariat::detail::ParseStatus;
using lariat::detail::Request;

namespace {

constexpr size_t kMaxHead = 8192;
constexpr size_t kMaxHeaders = 100;
// The key whose accept value is s3pPLMBiTxaQ9kYGzzhZRbK+xOo= (RFC 6455).
constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t split = data[0];
  uint8_t offer = data[1];
  const char *buf = reinterpret_cast<const char *>(data + 2);
  size_t len = size - 2;

  int status = 0;
  Request resp;
  ParseResult whole =
      lariat::detail::parse_response(buf, len, kMaxHead, kMaxHeaders, &status, &resp);
  if (split < len) {
    int s2 = 0;
    Request part;
    ParseResult first = lariat::detail::parse_response(buf, split, kMaxHead,
                                                       kMaxHeaders, &s2, &part);
    if (first.status != ParseStatus::kIncomplete) {
      CHECK(first.status == whole.status);
      if (first.status == ParseStatus::kDone) CHECK(first.head_len == whole.head_len);
    }
  }
  if (whole.status == ParseStatus::kDone) {
    CHECK(whole.head_len >= 4 && whole.head_len <= len);
    CHECK(std::memcmp(buf + whole.head_len - 4, "\r\n\r\n", 4) == 0);
    CHECK(status >= 0 && status <= 999);
    lariat_client_options opts;
    opts.deflate.enabled = offer & 1;
    opts.deflate.server_no_context_takeover = (offer & 2) != 0;
    if (offer & 4) opts.deflate.server_max_window_bits = 10;
    if (offer & 8) opts.protocols = {"a", "b"};
    lariat::detail::ClientAgreement agreed;
    const char *failure =
        lariat::detail::check_response(status, resp, kKey, opts, &agreed);
    if (!failure) {
      CHECK(status == 101);
      CHECK(agreed.protocol.empty() || agreed.protocol == "a" ||
            agreed.protocol == "b");
      if (agreed.deflate) {
        CHECK(opts.deflate.enabled);
        // Our "client" window is the codec's "server" side.
        CHECK(agreed.deflate_params.client_window_bits <=
              opts.deflate.server_max_window_bits);
        if (opts.deflate.server_no_context_takeover)
          CHECK(agreed.deflate_params.client_no_context_takeover);
      }
    } else {
      CHECK(*failure != 0);
    }
  }

  lariat::detail::Url url;
  if (lariat::detail::parse_ws_url(std::string_view(buf, len), &url)) {
    CHECK(!url.host.empty());
    CHECK(url.port != 0);
    CHECK(!url.target.empty() && url.target[0] == '/');
    CHECK(!url.host_header.empty());
  }
  return 0;
}
