#include "tls_key_source.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace doppel::plugins::raw {

TlsKeySource::TlsKeySource(const std::string& keylog_path, TlsKeyLogLimits limits) : keys_(limits) {
  if (keylog_path.empty()) return;
  struct stat st{};
  if (::stat(keylog_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw std::runtime_error(keylog_path + " is a directory, not a TLS key log");
  // A file given by mistake (a capture, a PEM key) says so now, not as bad lines later. An empty
  // one is fine: a live capture follows it as it is written.
  if (std::ifstream in{keylog_path, std::ios::binary}) {
    std::string head(64 * 1024, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<std::size_t>(in.gcount()));
    if (auto last_newline = head.rfind('\n'); head.size() == 64 * 1024 && last_newline != std::string::npos)
      head.resize(last_newline + 1);  // whole lines only
    if (auto problem = keylog_problem(head))
      throw std::runtime_error(keylog_path + " is not a TLS key log (NSS format, as SSLKEYLOGFILE writes): " +
                               *problem);
  }
  file_ = std::make_unique<TlsKeyLogFile>(keylog_path, keys_);
}

void TlsKeySource::refresh(bool immediately) {
  if (!file_) return;
  std::int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (!immediately && now < next_poll_ns_.load(std::memory_order_relaxed)) return;
  std::unique_lock lock(poll_mutex_, std::defer_lock);
  if (immediately) lock.lock();
  else if (!lock.try_lock()) return;
  next_poll_ns_.store(now + 1'000'000, std::memory_order_relaxed);
  file_->poll();
}

namespace {

// pcapng (draft-ietf-opsawg-pcapng): every block is type, total length, body, total length;
// the Section Header Block's byte-order magic says how the section's numbers are written.
constexpr std::uint32_t kSectionHeader = 0x0A0D0D0A;
constexpr std::uint32_t kByteOrderMagic = 0x1A2B3C4D;
constexpr std::uint32_t kDecryptionSecrets = 0x0000000A;
constexpr std::uint32_t kTlsKeyLog = 0x544c534b;  // "TLSK": NSS key log text
constexpr std::uint32_t kMaxBlock = 64u << 20;

std::uint32_t read32(const unsigned char* p, bool swap) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return swap ? __builtin_bswap32(v) : v;
}

}  // namespace

std::string pcapng_tls_secrets(const std::string& path) {
  struct stat st{};
  if (path == "-" || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return {};
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) return {};
  unsigned char head[12];
  if (std::fread(head, 1, 12, file.get()) != 12) return {};
  std::uint32_t type;
  std::memcpy(&type, head, 4);
  if (type != kSectionHeader) return {};  // a classic pcap
  bool swap = read32(head + 8, false) != kByteOrderMagic;
  if (swap && read32(head + 8, true) != kByteOrderMagic) return {};
  std::string secrets;
  std::uint32_t length = read32(head + 4, swap);
  if (length < 28 || length % 4 != 0 || length > kMaxBlock) return {};
  if (std::fseek(file.get(), static_cast<long>(length) - 12, SEEK_CUR) != 0) return {};
  // The blocks before the first packet: interface descriptions, name resolution, secrets.
  for (;;) {
    unsigned char block[8];
    if (std::fread(block, 1, 8, file.get()) != 8) break;
    type = read32(block, swap);
    length = read32(block + 4, swap);
    if (length < 12 || length % 4 != 0 || length > kMaxBlock) break;
    bool packet = type == 0x00000002 || type == 0x00000003 || type == 0x00000006;
    if (packet || type == kSectionHeader) break;
    if (type == kDecryptionSecrets && length >= 20) {
      std::string body(length - 8, '\0');
      if (std::fread(body.data(), 1, body.size(), file.get()) != body.size()) break;
      auto* b = reinterpret_cast<const unsigned char*>(body.data());
      std::uint32_t secrets_type = read32(b, swap);
      std::uint32_t secrets_length = read32(b + 4, swap);
      if (secrets_type == kTlsKeyLog && secrets_length <= body.size() - 12) {
        secrets.append(body.data() + 8, secrets_length);
        if (!secrets.empty() && secrets.back() != '\n') secrets += '\n';
      }
      continue;
    }
    if (std::fseek(file.get(), static_cast<long>(length) - 8, SEEK_CUR) != 0) break;
  }
  return secrets;
}

}  // namespace doppel::plugins::raw
