#include "tls_decoder.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <vector>

#include "http_stream_parser.hpp"
#include "tls_record_protection.hpp"

namespace doppel::plugins::raw {

namespace {

constexpr std::size_t kHeaderLength = 5;
constexpr std::size_t kMaxFragment = (std::size_t{1} << 14) + 2048;
// Certificate chains are the largest handshake messages; far beyond this is not a handshake.
constexpr std::size_t kMaxHandshakeMessage = std::size_t{1} << 18;
// TLS 1.3 records of rejected 0-RTT data that are skipped (the server skips them too) before a
// client record that never authenticates is taken for a wrong key instead.
constexpr std::size_t kMaxSkippedEarlyBytes = std::size_t{1} << 20;

enum ContentType : std::uint8_t { kChangeCipherSpec = 20, kAlert = 21, kHandshake = 22, kApplicationData = 23 };
enum HandshakeType : std::uint8_t {
  kHelloRequest = 0,
  kClientHello = 1,
  kServerHello = 2,
  kNewSessionTicket = 4,
  kEncryptedExtensions = 8,
  kFinished = 20,
  kKeyUpdate = 24,
};
enum Extension : std::uint16_t {
  kServerName = 0,
  kAlpn = 16,
  kEncryptThenMac = 22,
  kSessionTicket = 35,
  kPreSharedKey = 41,
  kEarlyData = 42,
  kSupportedVersions = 43,
};
constexpr std::uint16_t kTls12 = 0x0303, kTls13 = 0x0304;

// RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest.
constexpr std::array<unsigned char, 32> kHelloRetryRandom = {
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C};

// Big-endian fields of a handshake message; a read past the end marks it bad and yields zeros.
struct Reader {
  std::string_view rest;
  bool bad = false;

  std::string_view take(std::size_t n) {
    if (bad || n > rest.size()) {
      bad = true;
      return {};
    }
    std::string_view taken = rest.substr(0, n);
    rest.remove_prefix(n);
    return taken;
  }
  std::uint32_t number(std::size_t n) {
    std::uint32_t value = 0;
    for (char c : take(n)) value = value << 8 | static_cast<unsigned char>(c);
    return value;
  }
  std::uint32_t u8() { return number(1); }
  std::uint32_t u16() { return number(2); }
  std::string_view vector8() { return take(u8()); }
  std::string_view vector16() { return take(u16()); }
};

// Calls visit(type, body) for each extension of a block; false when the block is malformed.
template <typename Visit>
bool for_each_extension(std::string_view block, Visit&& visit) {
  Reader reader{block};
  while (!reader.rest.empty() && !reader.bad) {
    std::uint32_t type = reader.u16();
    std::string_view body = reader.vector16();
    if (reader.bad) break;
    if (!visit(static_cast<std::uint16_t>(type), body)) return false;
  }
  return !reader.bad;
}

// The one protocol of a server's ALPN extension (RFC 7301 3.1).
std::optional<std::string_view> selected_protocol(std::string_view body) {
  Reader reader{body};
  Reader list{reader.vector16()};
  std::string_view protocol = list.vector8();
  if (reader.bad || list.bad || !reader.rest.empty() || !list.rest.empty() || protocol.empty()) return std::nullopt;
  return protocol;
}

std::string version_name(std::uint16_t version) {
  switch (version) {
    case 0x0300:
      return "SSLv3";
    case 0x0301:
      return "TLSv1";
    case 0x0302:
      return "TLSv1.1";
    case kTls12:
      return "TLSv1.2";
    case kTls13:
      return "TLSv1.3";
    default:
      return "unknown";
  }
}

bool valid_header(const unsigned char* header) {
  bool known_type = header[0] >= kChangeCipherSpec && header[0] <= kApplicationData;
  std::size_t length = static_cast<std::size_t>(header[3] << 8 | header[4]);
  return known_type && header[1] == 3 && header[2] <= 4 && length <= kMaxFragment;
}

}  // namespace

std::string_view tls_failure_name(TlsFailure failure) {
  switch (failure) {
    case TlsFailure::none:
      return "none";
    case TlsFailure::no_key:
      return "no_key";
    case TlsFailure::bad_key:
      return "bad_key";
    case TlsFailure::gap:
      return "gap";
    case TlsFailure::malformed:
      return "malformed";
    case TlsFailure::unsupported_version:
      return "unsupported_version";
    case TlsFailure::unsupported_cipher:
      return "unsupported_cipher";
    case TlsFailure::renegotiation:
      return "renegotiation";
    case TlsFailure::early_data:
      return "early_data";
    case TlsFailure::too_large:
      return "too_large";
  }
  return "unknown";
}

class TlsDecoder::Impl {
 public:
  Impl(TlsKeyLog& keys, TlsDecoderListener& listener, MemoryAccount* memory, TlsLimits limits)
      : keys_(keys), listener_(listener), memory_(memory), limits_(limits) {}
  ~Impl() {
    if (memory_ && charged_) memory_->release(charged_);
  }

  void data(int direction, std::string_view bytes, std::int64_t ts);
  void hole(int) { fail(TlsFailure::gap); }
  void advance(std::int64_t now);
  void close();
  void shed() { fail(TlsFailure::too_large); }
  void free_buffers() {
    for (Direction& side : directions_) {
      std::string().swap(side.partial_record);
      std::string().swap(side.partial_handshake);
    }
  }

  TlsInfo info_;
  bool failed_ = false;
  bool keyed_ = false;
  bool waiting() const { return waiting_; }

 private:
  // Which traffic secret protects a direction's records (TLS 1.3).
  enum class Epoch : std::uint8_t { plaintext, handshake, application };

  struct Direction {
    std::string partial_record;     // a record whose last bytes have not come yet
    std::string partial_handshake;  // handshake messages split across records
    tls::RecordOpener opener;
    bool encrypted = false;  // TLS 1.2: after ChangeCipherSpec; TLS 1.3: after ServerHello
    Epoch wanted = Epoch::plaintext;
    Epoch installed = Epoch::plaintext;
    bool finished = false;        // its Finished was seen
    std::string traffic_secret;  // TLS 1.3 application secret, for KeyUpdate
  };

  struct HeldBytes {
    int direction;
    std::string bytes;
    std::int64_t ts;
  };

  enum class Step : std::uint8_t { next, stop };

  void process(int direction, std::string_view bytes, std::int64_t ts);
  std::size_t consume_records(int direction, std::string_view bytes, std::int64_t ts, Step& step);
  Step on_record(int direction, std::string_view record, std::int64_t ts);
  Step on_content(int direction, std::uint8_t type, std::string_view content, std::int64_t ts);
  Step on_handshake_bytes(int direction, std::string_view bytes);
  Step on_handshake_message(int direction, std::uint8_t type, std::string_view body);
  Step on_client_hello(std::string_view body);
  Step on_server_hello(std::string_view body);
  Step on_encrypted_extensions(std::string_view body);
  Step on_finished(int direction);
  Step install_tls13_key(int direction);
  Step install_tls12_keys(int direction);
  bool find_master_secret();
  std::string* secret(std::string TlsSecrets::*field);
  void look_up_secrets();
  void mark_keyed();

  Step wait_for_key();
  void hold(int direction, std::string_view bytes, std::int64_t ts);
  void retry_held(bool always);
  void fail(TlsFailure failure);
  void update_charge();

  TlsKeyLog& keys_;
  TlsDecoderListener& listener_;
  MemoryAccount* memory_;
  TlsLimits limits_;
  std::size_t charged_ = 0;

  std::array<Direction, 2> directions_;
  std::uint16_t version_ = 0;
  const tls::CipherSuite* suite_ = nullptr;
  std::string client_random_, server_random_;
  std::string client_session_id_, server_session_id_;
  std::string offered_ticket_;
  std::vector<std::string> issued_tickets_;  // TLS 1.2 tickets seen before the master secret
  bool client_hello_seen_ = false;
  bool server_hello_seen_ = false;
  bool client_offers_tls13_ = false;
  bool early_data_offered_ = false;
  bool hello_retry_ = false;  // a HelloRetryRequest: a second ClientHello comes
  bool encrypt_then_mac_ = false;
  std::size_t skipped_early_bytes_ = 0;
  bool client_past_early_data_ = false;

  // TLS 1.2 keys, derived at the first ChangeCipherSpec.
  bool tls12_keys_ready_ = false;
  std::string master_secret_;
  tls::TrafficKeys tls12_keys_[2];

  // Secrets as last found in the key log, and the log's generation then.
  TlsSecrets secrets_;
  bool looked_up_ = false;
  std::uint64_t secrets_generation_ = 0;

  // Waiting for a key: bytes of both directions in arrival order, from the record that needs it.
  bool waiting_ = false;
  bool replaying_ = false;
  std::deque<HeldBytes> held_;
  std::size_t held_bytes_ = 0;
  std::int64_t wait_started_ = 0;
  std::uint64_t waited_generation_ = 0;
  std::uint64_t records_done_ = 0;
};

// ---- Bytes in, records out ----

void TlsDecoder::Impl::data(int direction, std::string_view bytes, std::int64_t ts) {
  if (failed_ || bytes.empty() || (direction != 0 && direction != 1)) return;
  if (waiting_) retry_held(false);
  if (failed_) return;
  if (waiting_ && ts - wait_started_ > limits_.key_wait_ns) return fail(TlsFailure::no_key);
  process(direction, bytes, ts);
  update_charge();
}

void TlsDecoder::Impl::process(int direction, std::string_view bytes, std::int64_t ts) {
  if (waiting_) return hold(direction, bytes, ts);
  Direction& side = directions_[direction];
  Step step = Step::next;
  // A record begun in an earlier segment is completed first, copying only its own bytes.
  while (!side.partial_record.empty() && !bytes.empty()) {
    std::string& record = side.partial_record;
    if (record.size() < kHeaderLength) {
      std::size_t take = std::min(kHeaderLength - record.size(), bytes.size());
      record.append(bytes.substr(0, take));
      bytes.remove_prefix(take);
      if (record.size() < kHeaderLength) break;
    }
    auto header = reinterpret_cast<const unsigned char*>(record.data());
    if (!valid_header(header)) return fail(TlsFailure::malformed);
    std::size_t wanted = kHeaderLength + static_cast<std::size_t>(header[3] << 8 | header[4]);
    std::size_t take = std::min(wanted - record.size(), bytes.size());
    record.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (record.size() < wanted) break;
    std::size_t used = consume_records(direction, record, ts, step);
    if (failed_) return;
    if (step == Step::stop) {  // waiting: this record and all after it are held
      std::string rest = record.substr(used);
      rest.append(bytes);
      record.clear();
      hold(direction, rest, ts);
      return;
    }
    record.erase(0, used);
  }
  if (bytes.empty()) return;
  std::size_t used = consume_records(direction, bytes, ts, step);
  if (failed_) return;
  if (step == Step::stop) return hold(direction, bytes.substr(used), ts);
  side.partial_record.assign(bytes.substr(used));
}

// Handles the complete records at the start of `bytes`; returns how many bytes they took.
std::size_t TlsDecoder::Impl::consume_records(int direction, std::string_view bytes, std::int64_t ts, Step& step) {
  std::size_t used = 0;
  while (bytes.size() - used >= kHeaderLength) {
    auto header = reinterpret_cast<const unsigned char*>(bytes.data() + used);
    std::size_t length = static_cast<std::size_t>(header[3] << 8 | header[4]);
    if (!valid_header(header)) {
      fail(TlsFailure::malformed);
      return used;
    }
    if (bytes.size() - used < kHeaderLength + length) break;
    step = on_record(direction, bytes.substr(used, kHeaderLength + length), ts);
    if (failed_ || step == Step::stop) return used;
    used += kHeaderLength + length;
    ++records_done_;
  }
  return used;
}

TlsDecoder::Impl::Step TlsDecoder::Impl::on_record(int direction, std::string_view record, std::int64_t ts) {
  Direction& side = directions_[direction];
  auto type = static_cast<std::uint8_t>(record[0]);
  std::string_view header = record.substr(0, kHeaderLength), fragment = record.substr(kHeaderLength);

  if (type == kChangeCipherSpec) {
    if (fragment != "\x01") return fail(TlsFailure::malformed), Step::stop;
    // TLS 1.3 middlebox compatibility (RFC 8446 D.4): meaningless, possibly before ServerHello.
    if (version_ == kTls13 || hello_retry_ || (version_ == 0 && client_offers_tls13_)) return Step::next;
    if (version_ != kTls12 || side.encrypted) return fail(TlsFailure::malformed), Step::stop;
    return install_tls12_keys(direction);
  }

  bool tls13_protected = version_ == kTls13 && type == kApplicationData;
  if (!side.encrypted && !tls13_protected) {
    if (type == kApplicationData || fragment.empty()) return fail(TlsFailure::malformed), Step::stop;
    return on_content(direction, type, fragment, ts);
  }

  if (version_ == kTls13) {
    if (type == kAlert) return Step::next;  // a peer that could not read the other's records
    if (type != kApplicationData) return fail(TlsFailure::malformed), Step::stop;
    bool early_phase = direction == 0 && early_data_offered_ && !client_past_early_data_;
    if (side.wanted == Epoch::plaintext) {
      // Client records before the ServerHello can only be 0-RTT data.
      if (!early_phase) return fail(TlsFailure::malformed), Step::stop;
      skipped_early_bytes_ += record.size();
      return skipped_early_bytes_ > kMaxSkippedEarlyBytes ? (fail(TlsFailure::bad_key), Step::stop) : Step::next;
    }
    if (side.installed != side.wanted && install_tls13_key(direction) == Step::stop) return Step::stop;
    std::string_view plaintext;
    std::uint8_t inner_type = 0;
    tls::OpenStatus status = side.opener.open(header, fragment, plaintext, inner_type);
    if (status != tls::OpenStatus::ok && early_phase && side.installed == Epoch::handshake) {
      // 0-RTT data the server rejected (or that doppel cannot read): the server skips it too.
      skipped_early_bytes_ += record.size();
      return skipped_early_bytes_ > kMaxSkippedEarlyBytes ? (fail(TlsFailure::bad_key), Step::stop) : Step::next;
    }
    if (status != tls::OpenStatus::ok)
      return fail(status == tls::OpenStatus::bad_key ? TlsFailure::bad_key : TlsFailure::malformed), Step::stop;
    if (direction == 0) client_past_early_data_ = true;
    if (inner_type == kChangeCipherSpec || (plaintext.empty() && inner_type != kApplicationData))
      return fail(TlsFailure::malformed), Step::stop;
    return on_content(direction, inner_type, plaintext, ts);
  }

  std::string_view plaintext;
  std::uint8_t content_type = 0;
  tls::OpenStatus status = side.opener.open(header, fragment, plaintext, content_type);
  if (status != tls::OpenStatus::ok)
    return fail(status == tls::OpenStatus::bad_key ? TlsFailure::bad_key : TlsFailure::malformed), Step::stop;
  if (type == kHandshake && plaintext.empty()) return fail(TlsFailure::malformed), Step::stop;
  return on_content(direction, type, plaintext, ts);
}

TlsDecoder::Impl::Step TlsDecoder::Impl::on_content(int direction, std::uint8_t type, std::string_view content,
                                                    std::int64_t ts) {
  switch (type) {
    case kAlert:  // warnings and close_notify change nothing; a fatal alert ends the connection
      return Step::next;
    case kHandshake:
      return on_handshake_bytes(direction, content);
    case kApplicationData:
      if (!keyed_) mark_keyed();
      if (failed_) return Step::stop;
      if (!content.empty()) listener_.on_plaintext(direction, content, ts);
      return failed_ ? Step::stop : Step::next;
    default:
      return fail(TlsFailure::malformed), Step::stop;
  }
}

// ---- Handshake messages ----

TlsDecoder::Impl::Step TlsDecoder::Impl::on_handshake_bytes(int direction, std::string_view bytes) {
  std::string& partial = directions_[direction].partial_handshake;
  std::string_view messages = bytes;
  if (!partial.empty()) {
    partial.append(bytes);
    messages = partial;
  }
  std::size_t used = 0;
  Step step = Step::next;
  while (messages.size() - used >= 4 && step == Step::next) {
    auto header = reinterpret_cast<const unsigned char*>(messages.data() + used);
    std::size_t length = static_cast<std::size_t>(header[1] << 16 | header[2] << 8 | header[3]);
    if (length > kMaxHandshakeMessage) return fail(TlsFailure::too_large), Step::stop;
    if (messages.size() - used < 4 + length) break;
    step = on_handshake_message(direction, header[0], messages.substr(used + 4, length));
    used += 4 + length;
  }
  if (failed_) return Step::stop;
  if (partial.empty())
    partial.assign(messages.substr(used));
  else
    partial.erase(0, used);
  return step;
}

TlsDecoder::Impl::Step TlsDecoder::Impl::on_handshake_message(int direction, std::uint8_t type,
                                                              std::string_view body) {
  Direction& side = directions_[direction];
  if (side.finished) {
    if (version_ == kTls12) return fail(TlsFailure::renegotiation), Step::stop;
    switch (type) {
      case kNewSessionTicket:  // resumption works through the logged secrets
        return direction == 1 ? Step::next : (fail(TlsFailure::malformed), Step::stop);
      case kKeyUpdate: {
        if (body.size() != 1 || side.installed != Epoch::application) return fail(TlsFailure::malformed), Step::stop;
        tls::TrafficKeys keys;
        if (!tls::next_tls13_traffic_secret(*suite_, side.traffic_secret) ||
            !tls::derive_tls13_keys(*suite_, side.traffic_secret, keys) ||
            !side.opener.install(*suite_, keys, true, false))
          return fail(TlsFailure::bad_key), Step::stop;
        return Step::next;
      }
      case kClientHello:
      case kServerHello:
        return fail(TlsFailure::malformed), Step::stop;
      default:  // post-handshake authentication: nothing doppel needs
        return Step::next;
    }
  }
  switch (type) {
    case kClientHello:
      if (direction != 0) return fail(TlsFailure::malformed), Step::stop;
      return on_client_hello(body);
    case kServerHello:
      if (direction != 1 || !client_hello_seen_ || server_hello_seen_) return fail(TlsFailure::malformed), Step::stop;
      return on_server_hello(body);
    case kHelloRequest:
      return direction == 1 ? Step::next : (fail(TlsFailure::malformed), Step::stop);
    case kNewSessionTicket:
      if (direction == 1 && version_ == kTls12) {  // RFC 5077 3.3: sent before the server's CCS
        Reader reader{body};
        reader.number(4);
        std::string_view ticket = reader.vector16();
        if (reader.bad) return fail(TlsFailure::malformed), Step::stop;
        if (!master_secret_.empty())
          keys_.remember_session(ticket, master_secret_);
        else
          issued_tickets_.emplace_back(ticket);
      }
      return Step::next;
    case kEncryptedExtensions:
      if (direction != 1 || version_ != kTls13) return fail(TlsFailure::malformed), Step::stop;
      return on_encrypted_extensions(body);
    case kFinished:
      return on_finished(direction);
    default:  // certificates, key exchange: doppel decrypts with logged secrets, not with these
      if (!server_hello_seen_ && !(direction == 0 && client_hello_seen_)) return fail(TlsFailure::malformed), Step::stop;
      return Step::next;
  }
}

TlsDecoder::Impl::Step TlsDecoder::Impl::on_client_hello(std::string_view body) {
  bool second = client_hello_seen_;
  if (second && !(hello_retry_ && !server_hello_seen_)) return fail(TlsFailure::malformed), Step::stop;
  Reader reader{body};
  std::uint32_t legacy_version = reader.u16();
  std::string_view random = reader.take(32);
  std::string_view session_id = reader.vector8();
  std::string_view suites = reader.vector16();
  std::string_view compression = reader.vector8();
  std::string_view extensions = reader.rest.empty() ? std::string_view() : reader.vector16();
  if (reader.bad || !reader.rest.empty() || session_id.size() > 32 || suites.empty() || suites.size() % 2 != 0 ||
      compression.empty() || legacy_version >> 8 != 3)
    return fail(TlsFailure::malformed), Step::stop;
  bool early_data = false;
  std::string ticket;
  bool ok = for_each_extension(extensions, [&](std::uint16_t type, std::string_view ext) {
    Reader r{ext};
    switch (type) {
      case kServerName: {
        Reader list{r.vector16()};
        while (!list.rest.empty() && !list.bad) {
          std::uint32_t name_type = list.u8();
          std::string_view name = list.vector16();
          if (name_type == 0 && !list.bad) info_.sni.assign(name);
        }
        return !r.bad && !list.bad && r.rest.empty();
      }
      case kAlpn: {
        Reader list{r.vector16()};
        while (!list.rest.empty() && !list.bad)
          if (list.vector8().empty()) return false;
        return !r.bad && !list.bad && r.rest.empty();
      }
      case kSupportedVersions: {
        Reader list{r.vector8()};
        while (!list.rest.empty() && !list.bad)
          if (list.u16() == kTls13) client_offers_tls13_ = true;
        return !r.bad && !list.bad && r.rest.empty();
      }
      case kSessionTicket:
        ticket.assign(ext);
        return true;
      case kEarlyData:
        early_data = true;
        return ext.empty();
      default:
        return true;
    }
  });
  if (!ok) return fail(TlsFailure::malformed), Step::stop;
  // RFC 8446 4.1.2: the second ClientHello keeps the random, and never asks for 0-RTT.
  if (second && random != client_random_) return fail(TlsFailure::malformed), Step::stop;
  client_random_.assign(random);
  client_session_id_.assign(session_id);
  offered_ticket_ = std::move(ticket);
  early_data_offered_ = early_data_offered_ || early_data;
  client_hello_seen_ = true;
  hello_retry_ = false;
  return Step::next;
}

TlsDecoder::Impl::Step TlsDecoder::Impl::on_server_hello(std::string_view body) {
  Reader reader{body};
  std::uint32_t legacy_version = reader.u16();
  std::string_view random = reader.take(32);
  std::string_view session_id = reader.vector8();
  auto suite_id = static_cast<std::uint16_t>(reader.u16());
  reader.u8();  // compression
  std::string_view extensions = reader.rest.empty() ? std::string_view() : reader.vector16();
  if (reader.bad || !reader.rest.empty() || session_id.size() > 32) return fail(TlsFailure::malformed), Step::stop;
  std::uint16_t version = static_cast<std::uint16_t>(legacy_version);
  std::optional<std::string_view> alpn;
  bool encrypt_then_mac = false, pre_shared_key = false;
  bool ok = for_each_extension(extensions, [&](std::uint16_t type, std::string_view ext) {
    switch (type) {
      case kSupportedVersions: {
        Reader r{ext};
        version = static_cast<std::uint16_t>(r.u16());
        return !r.bad && r.rest.empty();
      }
      case kAlpn:
        alpn = selected_protocol(ext);
        return alpn.has_value();
      case kEncryptThenMac:
        encrypt_then_mac = true;
        return true;
      case kPreSharedKey:
        pre_shared_key = true;
        return true;
      default:
        return true;
    }
  });
  if (!ok) return fail(TlsFailure::malformed), Step::stop;
  info_.version = version_name(version);
  if (version != kTls12 && version != kTls13) return fail(TlsFailure::unsupported_version), Step::stop;
  info_.cipher = tls::cipher_suite_name(suite_id);
  const tls::CipherSuite* suite = tls::find_cipher_suite(suite_id);
  if (!suite || suite->cipher == tls::RecordCipher::unsupported || suite->tls13 != (version == kTls13))
    return fail(TlsFailure::unsupported_cipher), Step::stop;
  version_ = version;
  suite_ = suite;

  if (version == kTls13 && std::memcmp(random.data(), kHelloRetryRandom.data(), kHelloRetryRandom.size()) == 0) {
    hello_retry_ = true;  // the ServerHello that counts follows the second ClientHello
    return Step::next;
  }
  server_hello_seen_ = true;
  server_random_.assign(random);
  server_session_id_.assign(session_id);
  if (version == kTls12) {
    if (alpn) info_.alpn.assign(*alpn);
    encrypt_then_mac_ = encrypt_then_mac && suite->cipher == tls::RecordCipher::aes_cbc;
    info_.resumed = !session_id.empty() && session_id == client_session_id_;
  } else {
    info_.resumed = pre_shared_key;
    directions_[0].wanted = directions_[1].wanted = Epoch::handshake;
  }
  return Step::next;
}

TlsDecoder::Impl::Step TlsDecoder::Impl::on_encrypted_extensions(std::string_view body) {
  Reader reader{body};
  std::string_view extensions = reader.vector16();
  if (reader.bad || !reader.rest.empty()) return fail(TlsFailure::malformed), Step::stop;
  bool early_data_accepted = false;
  bool ok = for_each_extension(extensions, [&](std::uint16_t type, std::string_view ext) {
    if (type == kAlpn) {
      auto alpn = selected_protocol(ext);
      if (!alpn) return false;
      info_.alpn.assign(*alpn);
    } else if (type == kEarlyData) {
      early_data_accepted = true;
    }
    return true;
  });
  if (!ok) return fail(TlsFailure::malformed), Step::stop;
  // Accepted 0-RTT data is part of the stream; doppel does not decrypt it and must not skip it.
  if (early_data_accepted) return fail(TlsFailure::early_data), Step::stop;
  return Step::next;
}

TlsDecoder::Impl::Step TlsDecoder::Impl::on_finished(int direction) {
  Direction& side = directions_[direction];
  if (!side.encrypted) return fail(TlsFailure::malformed), Step::stop;
  side.finished = true;
  if (version_ == kTls13) side.wanted = Epoch::application;
  // Keyed once both directions' keys are proven: TLS 1.3's client Finished is the last message
  // of its handshake (the server's came first, under another secret); TLS 1.2's directions
  // share one master secret, so either Finished proves it.
  if (direction == 0 || version_ == kTls12) mark_keyed();
  return failed_ ? Step::stop : Step::next;
}

void TlsDecoder::Impl::mark_keyed() {
  if (keyed_) return;
  keyed_ = true;
  listener_.on_keyed();
}

// ---- Keys ----

void TlsDecoder::Impl::look_up_secrets() {
  secrets_generation_ = keys_.generation();  // before find: a line added meanwhile moves it again
  if (auto found = keys_.find(client_random_)) secrets_ = std::move(*found);
  looked_up_ = true;
}

std::string* TlsDecoder::Impl::secret(std::string TlsSecrets::*field) {
  if (!looked_up_ || ((secrets_.*field).empty() && keys_.generation() != secrets_generation_)) look_up_secrets();
  std::string& found = secrets_.*field;
  return found.empty() ? nullptr : &found;
}

bool TlsDecoder::Impl::find_master_secret() {
  if (std::string* logged = secret(&TlsSecrets::master_secret)) {
    master_secret_ = *logged;
    return true;
  }
  // Resumption (RFC 5246 7.3, RFC 5077): the master secret of the session resumed.
  std::optional<std::string> remembered;
  if (info_.resumed) remembered = keys_.find_session(server_session_id_);
  if (!remembered && !offered_ticket_.empty()) remembered = keys_.find_session(offered_ticket_);
  if (!remembered) return false;
  master_secret_ = std::move(*remembered);
  return true;
}

TlsDecoder::Impl::Step TlsDecoder::Impl::install_tls12_keys(int direction) {
  if (!tls12_keys_ready_) {
    if (!server_hello_seen_) return fail(TlsFailure::malformed), Step::stop;
    if (!find_master_secret()) return wait_for_key();
    if (!tls::derive_tls12_keys(*suite_, master_secret_, client_random_, server_random_, tls12_keys_[0],
                                tls12_keys_[1]))
      return fail(TlsFailure::bad_key), Step::stop;
    tls12_keys_ready_ = true;
    keys_.remember_session(server_session_id_, master_secret_);
    for (const std::string& ticket : issued_tickets_) keys_.remember_session(ticket, master_secret_);
    issued_tickets_.clear();
  }
  Direction& side = directions_[direction];
  if (!side.opener.install(*suite_, tls12_keys_[direction], false, encrypt_then_mac_))
    return fail(TlsFailure::bad_key), Step::stop;
  side.encrypted = true;
  return Step::next;
}

TlsDecoder::Impl::Step TlsDecoder::Impl::install_tls13_key(int direction) {
  Direction& side = directions_[direction];
  bool handshake = side.wanted == Epoch::handshake;
  auto field = direction == 0
                   ? (handshake ? &TlsSecrets::client_handshake_traffic : &TlsSecrets::client_application_traffic)
                   : (handshake ? &TlsSecrets::server_handshake_traffic : &TlsSecrets::server_application_traffic);
  std::string* traffic_secret = secret(field);
  if (!traffic_secret) return wait_for_key();
  tls::TrafficKeys keys;
  if (!tls::derive_tls13_keys(*suite_, *traffic_secret, keys) || !side.opener.install(*suite_, keys, true, false))
    return fail(TlsFailure::bad_key), Step::stop;
  if (!handshake) side.traffic_secret = *traffic_secret;
  side.installed = side.wanted;
  side.encrypted = true;
  return Step::next;
}

// ---- Waiting for a key ----

TlsDecoder::Impl::Step TlsDecoder::Impl::wait_for_key() {
  if (!waiting_) {
    waiting_ = true;
    waited_generation_ = secrets_generation_;
  }
  return Step::stop;
}

void TlsDecoder::Impl::hold(int direction, std::string_view bytes, std::int64_t ts) {
  if (bytes.empty()) return;
  if (held_.empty() && !replaying_) wait_started_ = ts;
  held_bytes_ += bytes.size();
  if (held_bytes_ > limits_.max_held_bytes) return fail(TlsFailure::too_large);
  held_.push_back({direction, std::string(bytes), ts});
}

// Replays the held bytes when the key log has new lines (or `always`, at close).
void TlsDecoder::Impl::retry_held(bool always) {
  if (!waiting_ || failed_) return;
  std::uint64_t generation = keys_.generation();
  if (!always && generation == waited_generation_) return;
  look_up_secrets();
  std::deque<HeldBytes> queue;
  queue.swap(held_);
  held_bytes_ = 0;
  waiting_ = false;
  replaying_ = true;
  std::uint64_t records_before = records_done_;
  std::int64_t started = wait_started_;
  while (!queue.empty() && !failed_) {
    HeldBytes entry = std::move(queue.front());
    queue.pop_front();
    if (waiting_) {
      held_bytes_ += entry.bytes.size();
      held_.push_back(std::move(entry));
    } else {
      process(entry.direction, entry.bytes, entry.ts);
    }
  }
  replaying_ = false;
  if (failed_) return;
  if (waiting_) {
    // Still waiting, for the same key (no record got through) or for the next one.
    wait_started_ = records_done_ == records_before || held_.empty() ? started : held_.front().ts;
    waited_generation_ = secrets_generation_;
  }
  update_charge();
}

void TlsDecoder::Impl::advance(std::int64_t now) {
  if (failed_ || !waiting_) return;
  retry_held(false);
  if (!failed_ && waiting_ && now - wait_started_ > limits_.key_wait_ns) fail(TlsFailure::no_key);
}

void TlsDecoder::Impl::close() {
  if (failed_) return;
  retry_held(true);
  if (failed_) return;
  if (waiting_) return fail(TlsFailure::no_key);
  // A record cut short: its bytes were never captured (or never sent), so it cannot be read.
  if (!directions_[0].partial_record.empty() || !directions_[1].partial_record.empty()) fail(TlsFailure::gap);
}

void TlsDecoder::Impl::fail(TlsFailure failure) {
  if (failed_) return;
  failed_ = true;
  held_.clear();
  held_bytes_ = 0;
  waiting_ = false;
  // Views into these buffers may still be on the stack: emptied now, freed by free_buffers().
  for (Direction& side : directions_) {
    side.partial_record.clear();
    side.partial_handshake.clear();
  }
  if (memory_ && charged_) memory_->release(charged_);
  charged_ = 0;
  listener_.on_failure(failure);
}

// Charges the account with what is held now: partial records and messages, and held bytes.
void TlsDecoder::Impl::update_charge() {
  if (failed_) return;
  std::size_t held = held_bytes_;
  for (const Direction& side : directions_) held += side.partial_record.size() + side.partial_handshake.size();
  if (!memory_) {
    charged_ = held;
    return;
  }
  if (held < charged_) {
    memory_->release(charged_ - held);
    charged_ = held;
  } else if (held > charged_) {
    if (!memory_->reserve(held - charged_)) return fail(TlsFailure::too_large);
    charged_ = held;
  }
}

// ---- TlsDecoder ----

TlsDecoder::TlsDecoder(TlsKeyLog& keys, TlsDecoderListener& listener, MemoryAccount* memory, TlsLimits limits)
    : impl_(std::make_unique<Impl>(keys, listener, memory, limits)) {}

TlsDecoder::~TlsDecoder() = default;

TlsDecoder::Detection TlsDecoder::detect_client_hello(std::string_view first_bytes) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(first_bytes[i]); };
  std::size_t n = first_bytes.size();
  if (n >= 1 && byte(0) != kHandshake) return Detection::no;
  if (n >= 2 && byte(1) != 3) return Detection::no;
  if (n >= 3 && byte(2) > 4) return Detection::no;
  if (n >= 5) {
    std::size_t length = static_cast<std::size_t>(byte(3) << 8 | byte(4));
    if (length < 4 || length > kMaxFragment) return Detection::no;
  }
  if (n >= 6 && byte(5) != kClientHello) return Detection::no;
  if (n >= 9) {
    std::size_t length = static_cast<std::size_t>(byte(6) << 16 | byte(7) << 8 | byte(8));
    // version, random, session id, a suite and a compression method at least
    if (length < 2 + 32 + 1 + 4 + 2 || length > kMaxHandshakeMessage) return Detection::no;
  }
  if (n >= 10 && byte(9) != 3) return Detection::no;
  return n >= 11 ? Detection::yes : Detection::maybe;
}

bool TlsDecoder::looks_like_record(std::string_view bytes) {
  if (bytes.size() < kHeaderLength) return false;
  auto header = reinterpret_cast<const unsigned char*>(bytes.data());
  return valid_header(header) && (header[3] | header[4]) != 0;
}

void TlsDecoder::data(int direction, std::string_view bytes, std::int64_t ts) {
  impl_->data(direction, bytes, ts);
  if (impl_->failed_) impl_->free_buffers();
}
void TlsDecoder::hole(int direction) { impl_->hole(direction); }
void TlsDecoder::advance(std::int64_t now_ns) { impl_->advance(now_ns); }
void TlsDecoder::close() { impl_->close(); }
void TlsDecoder::shed() { impl_->shed(); }
const TlsInfo& TlsDecoder::info() const { return impl_->info_; }
bool TlsDecoder::failed() const { return impl_->failed_; }
bool TlsDecoder::keyed() const { return impl_->keyed_; }
bool TlsDecoder::waiting() const { return impl_->waiting(); }

}  // namespace doppel::plugins::raw
