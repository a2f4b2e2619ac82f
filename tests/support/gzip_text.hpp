#pragma once
// For tests: `text` gzip-compressed in one go (what a server sends with Content-Encoding: gzip).
// Throws when zlib fails, so a test using it fails loudly instead of comparing garbage.
#include <zlib.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace doppel::testing {

inline std::string gzip_text(std::string_view text) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("gzip_text: deflateInit2 failed");
  std::string out(compressBound(static_cast<uLong>(text.size())) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int status = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (status != Z_STREAM_END) throw std::runtime_error("gzip_text: deflate did not finish");
  return out;
}

}  // namespace doppel::testing
