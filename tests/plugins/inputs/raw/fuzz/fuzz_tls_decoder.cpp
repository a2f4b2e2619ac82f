// libFuzzer: TlsDecoder on bytes of both directions. The first input byte picks a mode:
//   0: arbitrary records, with a key log whose client random and secrets are the input's next
//      80 bytes, so that a ClientHello carrying that random reaches key derivation and the
//      record ciphers (its Finished then fails to authenticate, as any guessed ciphertext does);
//   1, 2: a real TLS 1.3 / 1.2 conversation made by OpenSSL at start-up, its first chunks
//      replayed unchanged, then the input's bytes XORed into the rest (a mutated stream);
//   3: the same conversations with the key log added only after the data (held, then replayed).
// Invariants besides no crash: one on_failure at most, nothing after it, on_keyed before any
// plaintext, memory charged returns to zero, and unmutated records give only what was sent.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../tls_conversation.hpp"
#include "http_stream_parser.hpp"
#include "tls_decoder.hpp"

using namespace doppel::plugins::raw;

namespace {

struct Recording {
  std::vector<tls_conversation::Chunk> wire;
  std::string keylog;
  std::string sent[2];
};

Recording record(int version, const char* ciphers) {
  tls_conversation::Options options;
  options.version = version;
  if (version == TLS1_2_VERSION) options.ciphers = ciphers;
  options.alpn = {"h2"};
  tls_conversation::Endpoints endpoints(options);
  tls_conversation::Connection connection(endpoints);
  if (!connection.handshake()) __builtin_trap();
  connection.write(0, "GET / HTTP/1.1\r\nHost: fuzz\r\n\r\n");
  connection.write(1, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody");
  connection.write(0, "GET /2 HTTP/1.1\r\nHost: fuzz\r\n\r\n");
  Recording recording{connection.wire(), endpoints.take_keylog(), {connection.sent(0), connection.sent(1)}};
  return recording;
}

const std::vector<Recording>& recordings() {
  static const std::vector<Recording> all = {record(TLS1_3_VERSION, nullptr),
                                             record(TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256"),
                                             record(TLS1_2_VERSION, "ECDHE-RSA-AES128-SHA")};
  return all;
}

class CountingMemory : public MemoryAccount {
 public:
  bool reserve(std::size_t bytes) override {
    if (limit && held + bytes > limit) return false;
    held += bytes;
    return true;
  }
  void release(std::size_t bytes) override {
    if (bytes > held) __builtin_trap();
    held -= bytes;
  }
  std::size_t held = 0, limit = 0;
};

struct CheckingListener : TlsDecoderListener {
  bool keyed = false, failed = false;
  std::string plaintext[2];
  void on_plaintext(int direction, std::string_view bytes, std::int64_t) override {
    if (!keyed || failed || (direction != 0 && direction != 1)) __builtin_trap();
    plaintext[direction].append(bytes);
  }
  void on_keyed() override {
    if (keyed || failed) __builtin_trap();
    keyed = true;
  }
  void on_failure(TlsFailure) override {
    if (failed) __builtin_trap();
    failed = true;
  }
};

std::string hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out.push_back(digits[static_cast<unsigned char>(c) >> 4]);
    out.push_back(digits[static_cast<unsigned char>(c) & 15]);
  }
  return out;
}

// Segments from the input: a byte (direction in bit 0, length-1 in the others), then the bytes.
void feed_segments(TlsDecoder& decoder, std::string_view input, std::int64_t& ts) {
  while (!input.empty()) {
    auto control = static_cast<unsigned char>(input[0]);
    input.remove_prefix(1);
    if (control == 0xFF) {
      decoder.advance(ts += 20'000'000'000);
      continue;
    }
    std::size_t length = std::min<std::size_t>(input.size(), (control >> 1) + 1);
    decoder.data(control & 1, input.substr(0, length), ts += 1000);
    input.remove_prefix(length);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  recordings();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto mode = static_cast<unsigned char>(input[0]) % 4;
  bool tight_memory = input[0] & 0x80;
  input.remove_prefix(1);

  TlsKeyLog keys;
  CountingMemory memory;
  if (tight_memory) memory.limit = 4096;
  CheckingListener listener;
  TlsLimits limits;
  limits.max_held_bytes = 64 << 10;
  {
    TlsDecoder decoder(keys, listener, &memory, limits);
    std::int64_t ts = 0;
    const Recording* recording = nullptr;
    if (mode == 0) {
      if (input.size() < 80) return 0;
      std::string random(input.substr(0, 32)), secret(input.substr(32, 48));
      std::string lines = "CLIENT_RANDOM " + hex(random) + " " + hex(secret) + "\n";
      for (const char* label : {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                                "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"})
        lines += std::string(label) + " " + hex(random) + " " + hex(secret.substr(0, 32)) + "\n";
      keys.add(lines);
      feed_segments(decoder, input.substr(80), ts);
    } else {
      auto which = static_cast<unsigned char>(input[0]);
      input.remove_prefix(1);
      recording = &recordings()[which % recordings().size()];
      if (mode != 3) keys.add(recording->keylog);
      std::size_t unchanged = input.empty() ? recording->wire.size() : static_cast<unsigned char>(input[0]);
      if (!input.empty()) input.remove_prefix(1);
      std::size_t mutated_at = 0;
      for (std::size_t i = 0; i < recording->wire.size(); ++i) {
        std::string bytes = recording->wire[i].bytes;
        if (i >= unchanged)
          for (std::size_t j = 0; j < bytes.size() && mutated_at < input.size(); ++j)
            bytes[j] = static_cast<char>(bytes[j] ^ input[mutated_at++]);
        decoder.data(recording->wire[i].direction, bytes, ts += 1000);
      }
      if (mode == 3) {
        keys.add(recording->keylog);
        decoder.advance(ts += 1000);
      }
      feed_segments(decoder, input.substr(mutated_at), ts);
    }
    decoder.close();
    if (decoder.failed() != listener.failed) __builtin_trap();
    // Only records that authenticate come out: what was sent, or a prefix of it.
    if (recording)
      for (int direction : {0, 1})
        if (recording->sent[direction].compare(0, listener.plaintext[direction].size(),
                                               listener.plaintext[direction]) != 0)
          __builtin_trap();
  }
  if (memory.held != 0) __builtin_trap();
  return 0;
}
