#include "tls_keylog.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace doppel::plugins::raw {

namespace {

constexpr std::size_t kClientRandomHexLength = 64;
constexpr std::size_t kMasterSecretLength = 48;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Raw bytes of an even-length hex string; nullopt when it is not one.
std::optional<std::string> decode_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string bytes(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    int high = hex_digit(hex[2 * i]), low = hex_digit(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    bytes[i] = static_cast<char>(high << 4 | low);
  }
  return bytes;
}

std::string_view next_field(std::string_view& line) {
  std::size_t start = line.find_first_not_of(" \t");
  if (start == std::string_view::npos) {
    line = {};
    return {};
  }
  line.remove_prefix(start);
  std::size_t end = line.find_first_of(" \t");
  std::string_view field = line.substr(0, end);
  line.remove_prefix(end == std::string_view::npos ? line.size() : end);
  return field;
}

// Where in TlsSecrets a label's secret goes; null for labels doppel has no use for.
std::string TlsSecrets::*secret_field(std::string_view label) {
  if (label == "CLIENT_RANDOM") return &TlsSecrets::master_secret;
  if (label == "CLIENT_EARLY_TRAFFIC_SECRET") return &TlsSecrets::client_early_traffic;
  if (label == "CLIENT_HANDSHAKE_TRAFFIC_SECRET") return &TlsSecrets::client_handshake_traffic;
  if (label == "SERVER_HANDSHAKE_TRAFFIC_SECRET") return &TlsSecrets::server_handshake_traffic;
  if (label == "CLIENT_TRAFFIC_SECRET_0") return &TlsSecrets::client_application_traffic;
  if (label == "SERVER_TRAFFIC_SECRET_0") return &TlsSecrets::server_application_traffic;
  return nullptr;
}

// Labels other NSS key log writers use: a file holding only these is still a key log.
bool other_known_label(std::string_view label) {
  return label == "EXPORTER_SECRET" || label == "EARLY_EXPORTER_SECRET" || label == "RSA" ||
         label == "CLIENT_TRAFFIC_SECRET_1" || label == "SERVER_TRAFFIC_SECRET_1" || label == "PMS_CLIENT_RANDOM";
}

// TlsSecrets' fields, in the order StoredSecrets keeps them.
constexpr std::string TlsSecrets::*kSecretMembers[] = {
    &TlsSecrets::master_secret,              &TlsSecrets::client_early_traffic,
    &TlsSecrets::client_handshake_traffic,   &TlsSecrets::server_handshake_traffic,
    &TlsSecrets::client_application_traffic, &TlsSecrets::server_application_traffic,
};

std::size_t field_index(std::string TlsSecrets::*field) {
  std::size_t i = 0;
  while (kSecretMembers[i] != field) ++i;
  return i;
}

enum class LineKind { secret, ignored, bad, unknown };

struct ParsedLine {
  LineKind kind = LineKind::ignored;
  std::string TlsSecrets::*field = nullptr;
  std::string client_random;
  std::string secret;
  std::string_view problem;
};

ParsedLine parse_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  ParsedLine parsed;
  std::string_view label = next_field(line);
  if (label.empty() || label.front() == '#') return parsed;
  parsed.field = secret_field(label);
  if (!parsed.field) {
    parsed.kind = other_known_label(label) ? LineKind::ignored : LineKind::unknown;
    parsed.problem = "unknown label";
    return parsed;
  }
  parsed.kind = LineKind::bad;
  std::string_view random_hex = next_field(line), secret_hex = next_field(line);
  if (!next_field(line).empty()) {
    parsed.problem = "more than three fields";
    return parsed;
  }
  auto random = random_hex.size() == kClientRandomHexLength ? decode_hex(random_hex) : std::nullopt;
  if (!random) {
    parsed.problem = "the client random is not 64 hex digits";
    return parsed;
  }
  auto secret = decode_hex(secret_hex);
  bool master = parsed.field == &TlsSecrets::master_secret;
  if (!secret || (master ? secret->size() != kMasterSecretLength : secret->size() != 32 && secret->size() != 48)) {
    parsed.problem = master ? "the master secret is not 48 bytes of hex" : "the secret is not 32 or 48 bytes of hex";
    return parsed;
  }
  parsed.kind = LineKind::secret;
  parsed.client_random = std::move(*random);
  parsed.secret = std::move(*secret);
  return parsed;
}

template <typename Visit>
void for_each_line(std::string_view text, Visit&& visit) {
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    visit(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  }
}

}  // namespace

void TlsKeyLog::add(std::string_view text) {
  std::unique_lock lock(mutex_);
  bool took = false;
  for_each_line(text, [&](std::string_view line) {
    ParsedLine parsed = parse_line(line);
    switch (parsed.kind) {
      case LineKind::secret: {
        ClientRandom random;
        std::memcpy(random.data(), parsed.client_random.data(), random.size());
        auto [it, inserted] = secrets_.try_emplace(random);
        if (inserted) secrets_order_.push_back(&it->first);
        std::size_t field = field_index(parsed.field);
        std::memcpy(it->second.value[field].data(), parsed.secret.data(), parsed.secret.size());
        it->second.length[field] = static_cast<std::uint8_t>(parsed.secret.size());
        ++stats_.lines;
        took = true;
        while (secrets_.size() > limits_.max_keys) {
          auto oldest = secrets_.find(*secrets_order_.front());
          ++stats_.evicted;
          if (!oldest->second.used.load(std::memory_order_relaxed)) ++stats_.evicted_unused;
          secrets_.erase(oldest);
          secrets_order_.pop_front();
        }
        break;
      }
      case LineKind::bad:
        ++stats_.bad_lines;
        break;
      case LineKind::ignored:
      case LineKind::unknown:
        ++stats_.ignored_lines;
        break;
    }
  });
  if (took) ++generation_;
}

std::size_t TlsKeyLog::ClientRandomHash::operator()(const ClientRandom& random) const {
  std::size_t hash;
  std::memcpy(&hash, random.data() + random.size() - sizeof hash, sizeof hash);  // TLS 1.2's first 4 are time
  return hash;
}

std::optional<TlsSecrets> TlsKeyLog::find(std::string_view client_random) const {
  if (client_random.size() != sizeof(ClientRandom)) return std::nullopt;
  ClientRandom random;
  std::memcpy(random.data(), client_random.data(), random.size());
  std::shared_lock lock(mutex_);
  auto it = secrets_.find(random);
  if (it == secrets_.end()) return std::nullopt;
  it->second.used.store(true, std::memory_order_relaxed);
  TlsSecrets found;
  for (std::size_t i = 0; i < kSecretFields; ++i)
    found.*kSecretMembers[i] = std::string(it->second.value[i].data(), it->second.length[i]);
  return found;
}

void TlsKeyLog::remember_session(std::string_view session_key, std::string_view master_secret) {
  if (session_key.empty() || master_secret.empty()) return;
  std::unique_lock lock(mutex_);
  auto [it, inserted] = sessions_.insert_or_assign(std::string(session_key), std::string(master_secret));
  if (inserted) sessions_order_.push_back(&it->first);
  while (sessions_.size() > limits_.max_sessions) {
    sessions_.erase(sessions_.find(*sessions_order_.front()));
    sessions_order_.pop_front();
    ++stats_.sessions_evicted;
  }
}

std::optional<std::string> TlsKeyLog::find_session(std::string_view session_key) const {
  if (session_key.empty()) return std::nullopt;
  std::shared_lock lock(mutex_);
  auto it = sessions_.find(std::string(session_key));
  if (it == sessions_.end()) return std::nullopt;
  return it->second;
}

std::uint64_t TlsKeyLog::generation() const {
  std::shared_lock lock(mutex_);
  return generation_;
}

TlsKeyLogStats TlsKeyLog::stats() const {
  std::shared_lock lock(mutex_);
  return stats_;
}

std::size_t TlsKeyLog::size() const {
  std::shared_lock lock(mutex_);
  return secrets_.size();
}

std::size_t TlsKeyLog::sessions() const {
  std::shared_lock lock(mutex_);
  return sessions_.size();
}

std::optional<std::string> keylog_problem(std::string_view text) {
  std::optional<std::string> first_problem;
  bool any_secret = false;
  std::size_t line_number = 0;
  for_each_line(text, [&](std::string_view line) {
    ++line_number;
    ParsedLine parsed = parse_line(line);
    if (parsed.kind == LineKind::secret) any_secret = true;
    if ((parsed.kind == LineKind::bad || parsed.kind == LineKind::unknown) && !first_problem)
      first_problem = "line " + std::to_string(line_number) + ": " + std::string(parsed.problem);
  });
  if (any_secret) return std::nullopt;
  if (text.find('\0') != std::string_view::npos) return "binary data, not a text key log";
  return first_problem;
}

TlsKeyLogFile::TlsKeyLogFile(std::string path, TlsKeyLog& log) : path_(std::move(path)), log_(log) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error("cannot read TLS key log " + path_ + ": " + std::strerror(errno));
  struct stat status {};
  if (::fstat(fd_, &status) != 0) {
    int error = errno;
    ::close(fd_);
    throw std::runtime_error("cannot read TLS key log " + path_ + ": " + std::strerror(error));
  }
  inode_ = status.st_ino;
  poll();
}

TlsKeyLogFile::~TlsKeyLogFile() {
  if (fd_ >= 0) ::close(fd_);
}

void TlsKeyLogFile::poll() {
  // A writer that replaced the file (log rotation, a new server run) leaves the old inode open
  // here: follow the path to the new one and read it from its start.
  struct stat at_path {};
  if (::stat(path_.c_str(), &at_path) == 0 && at_path.st_ino != inode_) {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      struct stat status {};
      if (::fstat(fd, &status) == 0) {
        ::close(fd_);
        fd_ = fd;
        inode_ = status.st_ino;
        offset_ = 0;
        partial_.clear();
      } else {
        ::close(fd);
      }
    }
  }
  struct stat status {};
  if (fd_ < 0 || ::fstat(fd_, &status) != 0) return;
  if (static_cast<std::uint64_t>(status.st_size) < offset_) {  // truncated: written again
    offset_ = 0;
    partial_.clear();
  }
  char buffer[16384];
  for (;;) {
    ssize_t n = ::pread(fd_, buffer, sizeof buffer, static_cast<off_t>(offset_));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    offset_ += static_cast<std::uint64_t>(n);
    partial_.append(buffer, static_cast<std::size_t>(n));
  }
  std::size_t complete = partial_.rfind('\n');
  if (complete == std::string::npos) return;
  log_.add(std::string_view(partial_).substr(0, complete + 1));
  partial_.erase(0, complete + 1);
}

}  // namespace doppel::plugins::raw
