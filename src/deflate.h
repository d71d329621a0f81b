// permessage-deflate (RFC 7692): negotiation of the offers in
// Sec-WebSocket-Extensions, and the per-connection zlib streams.
#ifndef LARIAT_DEFLATE_H
#define LARIAT_DEFLATE_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct z_stream_s;

namespace lariat::detail {

// What the handler allows (lariat_upgrade_set_deflate).
struct DeflateConfig {
  bool enabled = false;
  int level = 1;  // see LARIAT_DEFLATE_LEVEL
  int mem_level = 8;
  int server_max_window_bits = 15;
  int client_max_window_bits = 15;
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  size_t threshold = 0;
  int strategy = 0;  // see LARIAT_DEFLATE_STRATEGY: 0..4
};

// One LARIAT_DEFLATE_* knob (lariat_upgrade_set_deflate,
// lariat_client_options_set_deflate): 0, or LARIAT_ERR_INVALID_ARGUMENT.
int set_deflate_option(DeflateConfig *config, int option, int64_t value);

// What was agreed with the client.
struct DeflateParams {
  int server_window_bits = 15;  // we compress with at most this window
  int client_window_bits = 15;  // the client compresses with at most this
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
};

// Picks the first acceptable permessage-deflate offer among every
// Sec-WebSocket-Extensions header value (in order). Returns false when none
// is acceptable (unknown, duplicated or out-of-range parameters decline
// that offer; a header that does not parse declines them all) or when
// |config| is disabled. On true, |params| and the response header value
// |response| ("permessage-deflate; ...") are filled.
bool negotiate_deflate(const std::vector<std::string_view> &header_values,
                       const DeflateConfig &config, DeflateParams *params,
                       std::string *response);

// The client side. The offer lariat sends for |config| (whose "client"
// fields are ours and "server" fields the server's), and the check of the
// server's answer: false (and |why|) when it must fail the handshake;
// otherwise |agreed| says whether deflate is on, with |ours| in the
// codec's terms (its "server" side is the one compressing our output).
std::string deflate_offer(const DeflateConfig &config);
bool accept_deflate_response(const std::vector<std::string_view> &header_values,
                             const DeflateConfig &config, bool *agreed,
                             DeflateParams *ours, std::string *why);

// zlib counts bytes in uInt: a longer input goes to it in pieces of at most
// |max_piece|. Once zlib has used up its input, moves the next piece of
// the |*left| bytes at |*p| into it.
void zlib_feed(z_stream_s *z, const uint8_t **p, size_t *left,
               size_t max_piece);

// The zlib streams of one connection, created on first use.
class DeflateCodec {
 public:
  enum class Status { kOk, kCorrupt, kTooBig, kNoMemory };

  DeflateCodec(const DeflateConfig &config, const DeflateParams &params);
  ~DeflateCodec();
  DeflateCodec(const DeflateCodec &) = delete;
  DeflateCodec &operator=(const DeflateCodec &) = delete;

  // Compresses one whole message into |out| (replacing its contents),
  // without the trailing 00 00 ff ff (RFC 7692 7.2.1). On failure the
  // compressor starts afresh: the next message never refers to this one.
  Status compress(const uint8_t *p, size_t n, std::string *out);

  // Inflates the next piece of a compressed message, appending to |out|.
  // |last| is true for the final piece of the message (the 00 00 ff ff
  // tail is then fed too). Stops with kTooBig as soon as |out| would pass
  // |limit| bytes, never holding more than that (limit + 1 transiently).
  Status decompress(const uint8_t *p, size_t n, bool last, uint64_t limit,
                    std::string *out);

  // Frees the zlib state that the negotiated parameters let go between
  // messages (no context takeover in that direction).
  void release_idle();
  // Whether our compressor keeps no context between messages, so that its
  // output for a message is the same for every connection with the same
  // output_key() (a publish compresses once for all of them).
  bool shares_output() const { return params_.server_no_context_takeover; }
  uint64_t output_key() const {
    return static_cast<uint64_t>(level_) | static_cast<uint64_t>(mem_level_) << 8 |
           static_cast<uint64_t>(params_.server_window_bits) << 16;
  }
  bool holds_state() const { return deflater_ || inflater_; }
  size_t threshold() const { return threshold_; }
  // Tests: the largest piece handed to zlib at once (UINT_MAX otherwise),
  // so the chunking runs without 4 GiB buffers.
  void set_max_piece(size_t bytes) { max_piece_ = bytes; }

 private:
  bool ensure_deflater();
  bool ensure_inflater();
  Status deflate_pieces(const uint8_t *p, size_t n, std::string *out);

  z_stream_s *deflater_ = nullptr;
  z_stream_s *inflater_ = nullptr;
  bool inflate_ended_ = false;  // the client closed its stream (BFINAL)
  int level_, mem_level_, strategy_;
  size_t threshold_;
  size_t max_piece_;
  DeflateParams params_;
};

}  // namespace lariat::detail

#endif
