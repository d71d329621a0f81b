#include "deflate.h"

#include <zlib.h>

#include <climits>
#include <cstring>
#include <new>

#include <lariat/lariat.h>

#include "http_syntax.h"

namespace lariat::detail {

// ------------------------------------------------------------ negotiation

namespace {

struct Param {
  std::string_view name;
  bool has_value = false;
  std::string value;  // unquoted
};

struct Offer {
  std::string_view name;
  std::vector<Param> params;
  bool malformed = false;
};

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}
  void skip_ows() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool at_end() const { return i_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[i_]; }
  void advance() { ++i_; }
  std::string_view token() {
    size_t start = i_;
    while (i_ < s_.size() && is_tchar(static_cast<unsigned char>(s_[i_]))) ++i_;
    return s_.substr(start, i_ - start);
  }
  // quoted-string with quoted-pair; false when unterminated.
  bool quoted(std::string *out) {
    ++i_;  // opening quote
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (i_ >= s_.size()) return false;
        c = s_[i_++];
      }
      out->push_back(c);
    }
    return false;
  }
  // Skips to just past the next top-level ',' (or the end).
  void skip_element() {
    bool in_quote = false;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (in_quote && c == '\\' && i_ < s_.size()) {
        ++i_;
      } else if (c == '"') {
        in_quote = !in_quote;
      } else if (c == ',' && !in_quote) {
        return;
      }
    }
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

// extension-list = 1#( extension-token *( ";" extension-param ) ), with
// empty list elements allowed (RFC 7230 7). A malformed element is kept
// marked; negotiate_deflate() then declines the whole header.
std::vector<Offer> parse_offers(std::string_view header) {
  std::vector<Offer> offers;
  Lexer lx(header);
  while (true) {
    lx.skip_ows();
    if (lx.at_end()) break;
    if (lx.peek() == ',') {
      lx.advance();
      continue;
    }
    Offer offer;
    offer.name = lx.token();
    if (offer.name.empty()) offer.malformed = true;
    while (!offer.malformed) {
      lx.skip_ows();
      if (lx.at_end() || lx.peek() == ',') break;
      if (lx.peek() != ';') {
        offer.malformed = true;
        break;
      }
      lx.advance();
      lx.skip_ows();
      Param p;
      p.name = lx.token();
      if (p.name.empty()) {
        offer.malformed = true;
        break;
      }
      lx.skip_ows();
      if (lx.peek() == '=') {
        lx.advance();
        lx.skip_ows();
        p.has_value = true;
        if (lx.peek() == '"') {
          if (!lx.quoted(&p.value)) offer.malformed = true;
        } else {
          p.value = std::string(lx.token());
        }
        if (p.value.empty()) offer.malformed = true;
      }
      offer.params.push_back(std::move(p));
    }
    lx.skip_element();
    offers.push_back(std::move(offer));
  }
  return offers;
}

// 8..15 in decimal without leading zeros (RFC 7692 7.1.2).
bool parse_window_bits(const std::string &v, int *bits) {
  if (v.size() == 1 && v[0] == '8') {
    *bits = 8;
    return true;
  }
  if (v.size() == 1 && v[0] == '9') {
    *bits = 9;
    return true;
  }
  if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') {
    *bits = 10 + (v[1] - '0');
    return true;
  }
  return false;
}

// Accepts or declines one permessage-deflate offer.
bool accept_offer(const Offer &offer, const DeflateConfig &config,
                  DeflateParams *params, std::string *response) {
  if (offer.malformed) return false;
  bool seen_snct = false, seen_cnct = false, seen_smwb = false,
       seen_cmwb = false;
  int offered_server_bits = 15;
  bool client_bits_offered = false;
  int offered_client_bits = 15;
  for (const Param &p : offer.params) {
    if (p.name == "server_no_context_takeover") {
      if (seen_snct || p.has_value) return false;
      seen_snct = true;
    } else if (p.name == "client_no_context_takeover") {
      if (seen_cnct || p.has_value) return false;
      seen_cnct = true;
    } else if (p.name == "server_max_window_bits") {
      if (seen_smwb || !p.has_value ||
          !parse_window_bits(p.value, &offered_server_bits))
        return false;
      seen_smwb = true;
    } else if (p.name == "client_max_window_bits") {
      if (seen_cmwb) return false;
      seen_cmwb = true;
      client_bits_offered = true;
      if (p.has_value && !parse_window_bits(p.value, &offered_client_bits))
        return false;
    } else {
      return false;  // unknown parameter (RFC 7692 5.1)
    }
  }

  DeflateParams agreed;
  agreed.server_no_context_takeover =
      seen_snct || config.server_no_context_takeover;
  // A client offering client_no_context_takeover promises to reset its
  // compressor anyway (RFC 7692 7.1.1.2); agreeing lets us free ours.
  agreed.client_no_context_takeover =
      seen_cnct || config.client_no_context_takeover;
  agreed.server_window_bits =
      offered_server_bits < config.server_max_window_bits
          ? offered_server_bits
          : config.server_max_window_bits;
  // We may only limit the client's window when it said it can be limited
  // (RFC 7692 7.1.2.2); a limit the handler set is a requirement (Cowboy),
  // so an offer that cannot take it is declined.
  if (!client_bits_offered && config.client_max_window_bits < 15)
    return false;
  agreed.client_window_bits = 15;
  if (client_bits_offered) {
    agreed.client_window_bits =
        offered_client_bits < config.client_max_window_bits
            ? offered_client_bits
            : config.client_max_window_bits;
  }

  std::string r = "permessage-deflate";
  if (agreed.server_no_context_takeover) r += "; server_no_context_takeover";
  if (agreed.client_no_context_takeover) r += "; client_no_context_takeover";
  if (seen_smwb || agreed.server_window_bits < 15)
    r += "; server_max_window_bits=" +
         std::to_string(agreed.server_window_bits);
  if (client_bits_offered && agreed.client_window_bits < 15)
    r += "; client_max_window_bits=" +
         std::to_string(agreed.client_window_bits);
  *params = agreed;
  *response = std::move(r);
  return true;
}

}  // namespace

bool negotiate_deflate(const std::vector<std::string_view> &header_values,
                       const DeflateConfig &config, DeflateParams *params,
                       std::string *response) {
  if (!config.enabled) return false;
  std::vector<Offer> offers;
  for (std::string_view value : header_values) {
    for (Offer &offer : parse_offers(value)) {
      // A header that does not parse cannot be trusted in any part.
      if (offer.malformed) return false;
      offers.push_back(std::move(offer));
    }
  }
  for (const Offer &offer : offers) {
    if (offer.name != "permessage-deflate") continue;
    if (accept_offer(offer, config, params, response)) return true;
  }
  return false;
}

int set_deflate_option(DeflateConfig *config, int option, int64_t value) {
  DeflateConfig &d = *config;
  auto in = [value](int64_t lo, int64_t hi) { return value >= lo && value <= hi; };
  switch (option) {
    case LARIAT_DEFLATE_ENABLE:
      if (!in(0, 1)) break;
      d.enabled = value != 0;
      return 0;
    case LARIAT_DEFLATE_LEVEL:
      if (!in(0, 9)) break;
      d.level = static_cast<int>(value);
      return 0;
    case LARIAT_DEFLATE_MEM_LEVEL:
      if (!in(1, 9)) break;
      d.mem_level = static_cast<int>(value);
      return 0;
    case LARIAT_DEFLATE_SERVER_MAX_WINDOW_BITS:
      if (!in(8, 15)) break;
      d.server_max_window_bits = static_cast<int>(value);
      return 0;
    case LARIAT_DEFLATE_CLIENT_MAX_WINDOW_BITS:
      if (!in(8, 15)) break;
      d.client_max_window_bits = static_cast<int>(value);
      return 0;
    case LARIAT_DEFLATE_SERVER_NO_CONTEXT_TAKEOVER:
      if (!in(0, 1)) break;
      d.server_no_context_takeover = value != 0;
      return 0;
    case LARIAT_DEFLATE_CLIENT_NO_CONTEXT_TAKEOVER:
      if (!in(0, 1)) break;
      d.client_no_context_takeover = value != 0;
      return 0;
    case LARIAT_DEFLATE_THRESHOLD:
      if (value < 0) break;
      d.threshold = static_cast<size_t>(value);
      return 0;
    case LARIAT_DEFLATE_STRATEGY:
      if (!in(0, 4)) break;
      d.strategy = static_cast<int>(value);
      return 0;
    default:
      break;
  }
  return LARIAT_ERR_INVALID_ARGUMENT;
}

std::string deflate_offer(const DeflateConfig &config) {
  std::string r = "permessage-deflate";
  if (config.server_no_context_takeover) r += "; server_no_context_takeover";
  if (config.client_no_context_takeover) r += "; client_no_context_takeover";
  if (config.server_max_window_bits < 15)
    r += "; server_max_window_bits=" +
         std::to_string(config.server_max_window_bits);
  // We can always compress with a smaller window: say so, with our limit.
  r += "; client_max_window_bits";
  if (config.client_max_window_bits < 15)
    r += "=" + std::to_string(config.client_max_window_bits);
  return r;
}

// RFC 7692 5 and 7.1: the server's answer to deflate_offer(). Anything
// not offered, unknown, duplicated, out of range or over our limits fails
// the handshake (the client must then fail the connection).
bool accept_deflate_response(const std::vector<std::string_view> &header_values,
                             const DeflateConfig &config, bool *agreed,
                             DeflateParams *ours, std::string *why) {
  *agreed = false;
  std::vector<Offer> answers;
  for (std::string_view value : header_values) {
    for (Offer &offer : parse_offers(value)) {
      if (offer.malformed) {
        *why = "malformed Sec-WebSocket-Extensions";
        return false;
      }
      answers.push_back(std::move(offer));
    }
  }
  if (answers.empty()) return true;
  if (!config.enabled || answers.size() > 1 ||
      answers[0].name != "permessage-deflate") {
    *why = "an extension that was not offered";
    return false;
  }
  bool snct = false, cnct = false, smwb = false, cmwb = false;
  int server_bits = 15, client_bits = 15;
  for (const Param &p : answers[0].params) {
    bool dup = false, bad = false;
    if (p.name == "server_no_context_takeover") {
      dup = snct;
      bad = p.has_value;
      snct = true;
    } else if (p.name == "client_no_context_takeover") {
      dup = cnct;
      bad = p.has_value;
      cnct = true;
    } else if (p.name == "server_max_window_bits") {
      dup = smwb;
      bad = !p.has_value || !parse_window_bits(p.value, &server_bits) ||
            server_bits > config.server_max_window_bits;
      smwb = true;
    } else if (p.name == "client_max_window_bits") {
      dup = cmwb;
      bad = !p.has_value || !parse_window_bits(p.value, &client_bits) ||
            client_bits > config.client_max_window_bits;
      cmwb = true;
    } else {
      bad = true;
    }
    if (dup || bad) {
      *why = "permessage-deflate parameter not as offered";
      return false;
    }
  }
  // What we asked of the server it must have agreed to (RFC 7692 7.1.1.1,
  // 7.1.2.1).
  if ((config.server_no_context_takeover && !snct) ||
      (config.server_max_window_bits < 15 && !smwb)) {
    *why = "permessage-deflate parameter not as offered";
    return false;
  }
  // The codec speaks of "server" as the side that compresses our output.
  ours->server_window_bits = client_bits;
  ours->client_window_bits = server_bits;
  ours->server_no_context_takeover = cnct || config.client_no_context_takeover;
  ours->client_no_context_takeover = snct;
  *agreed = true;
  return true;
}

// ------------------------------------------------------------------ codec

namespace {

const uint8_t kTail[4] = {0x00, 0x00, 0xff, 0xff};

// zlib cannot deflate raw streams with a 256-byte window; a 512-byte one
// is safe for a peer limited to 8 bits, since zlib's longest distance is
// the window size minus 262 (MIN_LOOKAHEAD), i.e. 250.
int zlib_window_bits(int bits) { return bits < 9 ? 9 : bits; }

// LARIAT_DEFLATE_STRATEGY values, in the header's order.
const int kStrategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY,
                           Z_RLE, Z_FIXED};

// zlib allocates through operator new like the rest of the library, so one
// hook (the failing-allocation test's) sees every allocation.
voidpf zlib_alloc(voidpf, uInt items, uInt size) {
  return ::operator new(static_cast<size_t>(items) * size, std::nothrow);
}
void zlib_free(voidpf, voidpf p) { ::operator delete(p); }

z_stream *new_stream() {
  auto *z = new (std::nothrow) z_stream();
  if (z) {
    z->zalloc = zlib_alloc;
    z->zfree = zlib_free;
  }
  return z;
}

}  // namespace

void zlib_feed(z_stream *z, const uint8_t **p, size_t *left,
               size_t max_piece) {
  if (z->avail_in != 0 || *left == 0) return;
  size_t piece = *left < max_piece ? *left : max_piece;
  if (piece > UINT_MAX) piece = UINT_MAX;
  z->next_in = const_cast<Bytef *>(*p);
  z->avail_in = static_cast<uInt>(piece);
  *p += piece;
  *left -= piece;
}

DeflateCodec::DeflateCodec(const DeflateConfig &config,
                           const DeflateParams &params)
    : level_(config.level),
      mem_level_(config.mem_level),
      strategy_(kStrategies[config.strategy >= 0 && config.strategy <= 4
                                ? config.strategy
                                : 0]),
      threshold_(config.threshold),
      max_piece_(UINT_MAX),
      params_(params) {}

DeflateCodec::~DeflateCodec() {
  if (deflater_) {
    deflateEnd(deflater_);
    delete deflater_;
  }
  if (inflater_) {
    inflateEnd(inflater_);
    delete inflater_;
  }
}

bool DeflateCodec::ensure_deflater() {
  if (deflater_) return true;
  z_stream *z = new_stream();
  if (!z) return false;
  if (deflateInit2(z, level_, Z_DEFLATED,
                   -zlib_window_bits(params_.server_window_bits), mem_level_,
                   strategy_) != Z_OK) {
    delete z;
    return false;
  }
  deflater_ = z;
  return true;
}

bool DeflateCodec::ensure_inflater() {
  if (inflater_) return true;
  z_stream *z = new_stream();
  if (!z) return false;
  if (inflateInit2(z, -zlib_window_bits(params_.client_window_bits)) != Z_OK) {
    delete z;
    return false;
  }
  inflater_ = z;
  inflate_ended_ = false;
  return true;
}

DeflateCodec::Status DeflateCodec::compress(const uint8_t *p, size_t n,
                                            std::string *out) {
  if (!ensure_deflater()) return Status::kNoMemory;
  out->clear();
  Status status;
  try {
    status = deflate_pieces(p, n, out);
  } catch (const std::bad_alloc &) {
    status = Status::kNoMemory;
  }
  if (status != Status::kOk) {
    // zlib holds part of a message the peer will never see; the next
    // message must not refer back to it.
    deflateReset(deflater_);
    out->clear();
    return status;
  }
  size_t produced = out->size();
  if (produced >= 4 && std::memcmp(out->data() + produced - 4, kTail, 4) == 0)
    out->resize(produced - 4);
  // An empty message compresses to a single 00 byte (RFC 7692 7.2.3.6),
  // whatever zlib emitted for an empty flush.
  if (out->empty()) out->push_back('\0');
  if (params_.server_no_context_takeover) deflateReset(deflater_);
  return Status::kOk;
}

DeflateCodec::Status DeflateCodec::deflate_pieces(const uint8_t *p, size_t n,
                                                  std::string *out) {
  z_stream *z = deflater_;
  z->avail_in = 0;
  size_t left = n, produced = 0;
  do {
    zlib_feed(z, &p, &left, max_piece_);
    // At least 64 bytes: a sync flush into less than 7 repeats its marker.
    size_t room = n / 2 + 64;
    if (room > UINT_MAX) room = UINT_MAX;
    out->resize(produced + room);
    z->next_out = reinterpret_cast<Bytef *>(&(*out)[produced]);
    z->avail_out = static_cast<uInt>(room);
    // One sync flush, once zlib has the whole message.
    int rc = deflate(z, left == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH);
    produced += room - z->avail_out;
    out->resize(produced);
    if (rc != Z_OK && rc != Z_BUF_ERROR) return Status::kNoMemory;
    // Done once the flush fitted: input consumed and output room left.
  } while (left > 0 || z->avail_in > 0 || z->avail_out == 0);
  return Status::kOk;
}

DeflateCodec::Status DeflateCodec::decompress(const uint8_t *p, size_t n,
                                              bool last, uint64_t limit,
                                              std::string *out) {
  if (!ensure_inflater()) return Status::kNoMemory;
  z_stream *z = inflater_;
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      if (!last) break;
      p = kTail;
      n = sizeof(kTail);
    }
    const uint8_t *next = p;
    size_t left = n;
    z->avail_in = 0;
    // Runs until the input is used up and zlib had output room to spare:
    // a full output buffer may mean output is still pending inside zlib.
    while (!inflate_ended_) {
      zlib_feed(z, &next, &left, max_piece_);
      size_t used = out->size();
      if (used > limit) return Status::kTooBig;
      // Never grow past limit + 1: one byte over proves the message too big.
      size_t room = n < 16384 ? n * 4 + 1024 : 65536;
      if (room > 65536) room = 65536;
      if (room > max_piece_) room = max_piece_;
      if (limit - used < room) room = static_cast<size_t>(limit - used) + 1;
      out->resize(used + room);
      z->next_out = reinterpret_cast<Bytef *>(&(*out)[used]);
      z->avail_out = static_cast<uInt>(room);
      int rc = inflate(z, Z_SYNC_FLUSH);
      out->resize(used + room - z->avail_out);
      if (rc == Z_STREAM_END) {
        // A final block: the next message starts a new stream.
        inflate_ended_ = true;
      } else if (rc == Z_MEM_ERROR) {
        return Status::kNoMemory;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return Status::kCorrupt;
      }
      if (out->size() > limit) {
        out->resize(limit);  // the caller never holds more than the limit
        return Status::kTooBig;
      }
      if (z->avail_out != 0 &&
          ((z->avail_in == 0 && left == 0) || rc == Z_BUF_ERROR))
        break;
    }
  }
  if (last) {
    if (params_.client_no_context_takeover || inflate_ended_) {
      inflateReset(z);
      inflate_ended_ = false;
    }
  }
  return Status::kOk;
}

void DeflateCodec::release_idle() {
  if (deflater_ && params_.server_no_context_takeover) {
    deflateEnd(deflater_);
    delete deflater_;
    deflater_ = nullptr;
  }
  if (inflater_ && params_.client_no_context_takeover) {
    inflateEnd(inflater_);
    delete inflater_;
    inflater_ = nullptr;
  }
}

}  // namespace lariat::detail
