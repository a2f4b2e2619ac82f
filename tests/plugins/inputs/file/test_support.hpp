#pragma once
// Temporary directories and .gor files for the file input's tests.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "doppel/gor.hpp"
#include "doppel/gor_stream.hpp"
#include "doppel/message.hpp"

namespace file_test {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "doppel-file-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline doppel::Message request(std::string id, std::int64_t ts, std::string payload = "") {
  if (payload.empty()) payload = "GET /" + id + " HTTP/1.1\r\nHost: a\r\n\r\n";
  return doppel::Message(doppel::Kind::request, std::move(id), ts, std::move(payload));
}

inline doppel::Message response(std::string id, std::int64_t ts, std::int64_t latency) {
  doppel::Message m(doppel::Kind::response, std::move(id), ts, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  m.latency_ns = latency;
  return m;
}

// Writes `messages` as a .gor file (gzip when the name ends in .gz) with the SDK writer.
inline void write_gor(const std::string& path, const std::vector<doppel::Message>& messages) {
  auto writer = doppel::gor::RecordWriter::open_file(path, false, path.ends_with(".gz"));
  for (const auto& m : messages) writer->write(m);
  writer->close();
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every byte value, plus the separator's pieces, CRLFs and NULs: what a binary body can hold.
inline std::string nasty_body() {
  std::string body;
  for (int i = 0; i < 256; ++i) body += static_cast<char>(i);
  body += "\r\n\r\n";
  body += std::string("\0\0\n\0", 4);
  body += "\n\xF0\x9F\x90\xB5x";                                // the separator's first half
  body += "\xF0\x9F\x99\x88\xF0\x9F\x99\x89\nx";                // its second half
  body += "\xF0\x9F\x90\xB5\xF0\x9F\x99\x88\xF0\x9F\x99\x89x";  // the monkeys without the newlines
  body += "\n\xF0\x9F\x90\xB5\xF0\x9F\x99\x88\xF0\x9F\x99";     // all but the last byte, at the end
  return body;
}

}  // namespace file_test
