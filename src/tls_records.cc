#include "tls_records.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include <cstring>

namespace lariat::detail {

namespace {

constexpr size_t kMaxPlain = 16384;
constexpr size_t kTag = 16;

// HKDF-Expand-Label (RFC 8446 7.1) with an empty context; |len| <= 64.
bool expand_label(const EVP_MD *md, const uint8_t *secret, size_t secret_len,
                  const char *label, uint8_t *out, size_t len) {
  uint8_t info[2 + 1 + 6 + 32 + 1 + 1];
  size_t label_len = std::strlen(label);
  size_t n = 0;
  info[n++] = static_cast<uint8_t>(len >> 8);
  info[n++] = static_cast<uint8_t>(len);
  info[n++] = static_cast<uint8_t>(6 + label_len);
  std::memcpy(info + n, "tls13 ", 6);
  n += 6;
  std::memcpy(info + n, label, label_len);
  n += label_len;
  info[n++] = 0;  // context
  // HKDF-Expand: T(i) = HMAC(secret, T(i-1) | info | i).
  uint8_t block[EVP_MAX_MD_SIZE], input[EVP_MAX_MD_SIZE + sizeof info + 1];
  size_t have = 0, prev = 0;
  for (uint8_t i = 1; have < len; ++i) {
    std::memcpy(input, block, prev);
    std::memcpy(input + prev, info, n);
    input[prev + n] = i;
    unsigned int out_len = 0;
    if (!HMAC(md, secret, static_cast<int>(secret_len), input, prev + n + 1,
              block, &out_len))
      return false;
    size_t take = len - have < out_len ? len - have : out_len;
    std::memcpy(out + have, block, take);
    have += take;
    prev = out_len;
  }
  return true;
}

void nonce(const uint8_t iv[12], uint64_t seq, uint8_t out[12]) {
  std::memcpy(out, iv, 12);
  for (int i = 0; i < 8; ++i) out[11 - i] ^= static_cast<uint8_t>(seq >> (8 * i));
}

}  // namespace

const EVP_MD *Tls13Records::md() const {
  return cipher_ == Cipher::kAes256Gcm ? EVP_sha384() : EVP_sha256();
}

const EVP_CIPHER *Tls13Records::cipher() const {
  switch (cipher_) {
    case Cipher::kAes128Gcm:
      return EVP_aes_128_gcm();
    case Cipher::kAes256Gcm:
      return EVP_aes_256_gcm();
    case Cipher::kChacha20Poly1305:
      break;
  }
  return EVP_chacha20_poly1305();
}

bool Tls13Records::init(uint16_t cipher_id, const uint8_t *read_secret,
                        const uint8_t *write_secret, size_t secret_len,
                        uint64_t read_seq, uint64_t write_seq) {
  switch (cipher_id) {  // the low 16 bits of SSL_CIPHER_get_id()
    case 0x1301:
      cipher_ = Cipher::kAes128Gcm;
      break;
    case 0x1302:
      cipher_ = Cipher::kAes256Gcm;
      break;
    case 0x1303:
      cipher_ = Cipher::kChacha20Poly1305;
      break;
    default:
      return false;
  }
  if (secret_len != static_cast<size_t>(EVP_MD_get_size(md()))) return false;
  secret_len_ = static_cast<uint8_t>(secret_len);
  std::memcpy(read_.secret, read_secret, secret_len);
  std::memcpy(write_.secret, write_secret, secret_len);
  read_.seq = read_seq;
  write_.seq = write_seq;
  return derive(&read_) && derive(&write_);
}

bool Tls13Records::derive(Direction *d) {
  EVP_CIPHER_CTX_free(d->ctx);
  d->ctx = nullptr;
  return expand_label(md(), d->secret, secret_len_, "key", d->key,
                      key_len()) &&
         expand_label(md(), d->secret, secret_len_, "iv", d->iv, 12);
}

bool Tls13Records::update(Direction *d) {
  uint8_t next[48];
  if (!expand_label(md(), d->secret, secret_len_, "traffic upd", next,
                    secret_len_))
    return false;
  std::memcpy(d->secret, next, secret_len_);
  d->seq = 0;
  return derive(d);
}

Tls13Records::~Tls13Records() {
  release();
  // Traffic secrets and keys do not outlive the connection in the heap.
  OPENSSL_cleanse(&read_, sizeof read_);
  OPENSSL_cleanse(&write_, sizeof write_);
}

void Tls13Records::release() {
  EVP_CIPHER_CTX_free(read_.ctx);
  EVP_CIPHER_CTX_free(write_.ctx);
  read_.ctx = write_.ctx = nullptr;
}

bool Tls13Records::ready(Direction *d, bool encrypt) {
  if (d->ctx) return true;
  d->ctx = EVP_CIPHER_CTX_new();
  if (!d->ctx) return false;
  if (EVP_CipherInit_ex(d->ctx, cipher(), nullptr, d->key, d->iv,
                        encrypt ? 1 : 0) != 1) {
    EVP_CIPHER_CTX_free(d->ctx);
    d->ctx = nullptr;
    return false;
  }
  return true;
}

bool Tls13Records::seal_record(uint8_t type, const uint8_t *p, size_t n,
                               std::string *out) {
  if (!ready(&write_, true)) return false;
  size_t body = n + 1 + kTag;
  uint8_t header[5] = {0x17, 0x03, 0x03, static_cast<uint8_t>(body >> 8),
                       static_cast<uint8_t>(body)};
  uint8_t iv[12];
  nonce(write_.iv, write_.seq, iv);
  size_t at = out->size();
  out->append(reinterpret_cast<const char *>(header), 5);
  out->resize(at + 5 + body);
  auto *dst = reinterpret_cast<uint8_t *>(&(*out)[at + 5]);
  int len = 0;
  EVP_CIPHER_CTX *c = write_.ctx;
  bool ok = EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, iv) == 1 &&
            EVP_EncryptUpdate(c, nullptr, &len, header, 5) == 1 &&
            EVP_EncryptUpdate(c, dst, &len, p, static_cast<int>(n)) == 1 &&
            EVP_EncryptUpdate(c, dst + n, &len, &type, 1) == 1 &&
            EVP_EncryptFinal_ex(c, dst + n + 1, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, kTag,
                                dst + n + 1) == 1;
  if (!ok) {
    out->resize(at);
    return false;
  }
  ++write_.seq;
  return true;
}

bool Tls13Records::seal(const uint8_t *p, size_t n, std::string *out) {
  while (n > 0) {
    size_t k = n < kMaxPlain ? n : kMaxPlain;
    if (!seal_record(0x17, p, k, out)) return false;
    p += k;
    n -= k;
  }
  return true;
}

bool Tls13Records::close_notify(std::string *out) {
  static const uint8_t alert[2] = {1, 0};
  return seal_record(0x15, alert, 2, out);
}

Tls13Records::Status Tls13Records::open_record(const uint8_t *rec, size_t len,
                                               std::string *plain,
                                               std::string *out) {
  // rec: header (5) then ciphertext and tag.
  size_t body = len - 5;
  if (rec[0] != 0x17 || body < kTag + 1 || body > kMaxPlain + 256 + kTag)
    return Status::kError;
  if (!ready(&read_, false)) return Status::kError;
  uint8_t iv[12];
  nonce(read_.iv, read_.seq, iv);
  size_t n = body - kTag;
  size_t at = plain->size();
  plain->resize(at + n);
  auto *dst = reinterpret_cast<uint8_t *>(&(*plain)[at]);
  int olen = 0;
  EVP_CIPHER_CTX *c = read_.ctx;
  bool ok =
      EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, iv) == 1 &&
      EVP_DecryptUpdate(c, nullptr, &olen, rec, 5) == 1 &&
      EVP_DecryptUpdate(c, dst, &olen, rec + 5, static_cast<int>(n)) == 1 &&
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, kTag,
                          const_cast<uint8_t *>(rec + 5 + n)) == 1 &&
      EVP_DecryptFinal_ex(c, dst + n, &olen) == 1;
  if (!ok) {
    plain->resize(at);
    return Status::kError;
  }
  ++read_.seq;
  // TLSInnerPlaintext: content, the type, then zero padding.
  while (n > 0 && dst[n - 1] == 0) --n;
  if (n == 0) {
    plain->resize(at);
    return Status::kError;
  }
  uint8_t type = dst[n - 1];
  --n;
  if (type == 0x17) {
    plain->resize(at + n);
    return Status::kOk;
  }
  std::string content(reinterpret_cast<const char *>(dst), n);
  plain->resize(at);
  if (type == 0x15) {
    // The closure alerts (RFC 8446 6.1): close_notify ends the stream;
    // user_canceled is no error and is followed by a close_notify. Any
    // other alert is fatal in TLS 1.3.
    if (content.size() != 2) return Status::kError;
    if (content[1] == 0) return Status::kClosed;
    return content[1] == 90 ? Status::kOk : Status::kError;
  }
  if (type != 0x16) return Status::kError;
  // Handshake messages: only KeyUpdate may come after the handshake.
  const auto *m = reinterpret_cast<const uint8_t *>(content.data());
  size_t left = content.size();
  while (left > 0) {
    if (left < 5 || m[0] != 24 || m[1] != 0 || m[2] != 0 || m[3] != 1)
      return Status::kError;
    bool requested = m[4] == 1;
    if (m[4] > 1 || !update(&read_)) return Status::kError;
    if (requested) {
      // Ours, under the current key, then our key moves on too.
      static const uint8_t answer[5] = {24, 0, 0, 1, 0};
      if (!seal_record(0x16, answer, 5, out) || !update(&write_))
        return Status::kError;
    }
    m += 5;
    left -= 5;
  }
  return Status::kOk;
}

Tls13Records::Status Tls13Records::open(const uint8_t *in, size_t n,
                                        std::string *plain, std::string *out) {
  const uint8_t *p = in;
  size_t left = n;
  if (!partial_.empty()) {
    // Complete the kept record first.
    size_t need = 5;
    if (partial_.size() >= 5)
      need = 5 + (static_cast<size_t>(static_cast<uint8_t>(partial_[3])) << 8 |
                  static_cast<uint8_t>(partial_[4]));
    while (left > 0 && partial_.size() < need) {
      size_t take = need - partial_.size() < left ? need - partial_.size() : left;
      partial_.append(reinterpret_cast<const char *>(p), take);
      p += take;
      left -= take;
      if (partial_.size() == 5)
        need = 5 + (static_cast<size_t>(static_cast<uint8_t>(partial_[3])) << 8 |
                    static_cast<uint8_t>(partial_[4]));
    }
    if (partial_.size() < need) return Status::kOk;
    std::string rec;
    rec.swap(partial_);
    Status s = open_record(reinterpret_cast<const uint8_t *>(rec.data()),
                           rec.size(), plain, out);
    if (s != Status::kOk) return s;
  }
  while (left >= 5) {
    size_t len = 5 + (static_cast<size_t>(p[3]) << 8 | p[4]);
    if (len > 5 + kMaxPlain + 256 + kTag) return Status::kError;
    if (left < len) break;
    Status s = open_record(p, len, plain, out);
    if (s != Status::kOk) return s;
    p += len;
    left -= len;
  }
  if (left > 0) partial_.assign(reinterpret_cast<const char *>(p), left);
  return Status::kOk;
}

}  // namespace lariat::detail
