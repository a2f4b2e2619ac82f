#include "zlib_inflate.hpp"

#include <zlib.h>

namespace doppel::detail {

bool inflate_into(std::string_view in, int window_bits, std::string& out, std::string& error,
                  std::size_t max_size) {
  z_stream zs{};
  if (inflateInit2(&zs, window_bits) != Z_OK) {
    error = "zlib init failed";
    return false;
  }
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  char buf[16384];
  int rc = Z_OK;
  std::string result;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    result.append(buf, sizeof(buf) - zs.avail_out);
    if (result.size() > max_size) {
      inflateEnd(&zs);
      error = "decoded body larger than the limit";
      out = std::move(result);
      out.resize(max_size);
      return true;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // input ended early
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    if (result.empty()) return false;
    error = "truncated compressed body";
  }
  out = std::move(result);
  return true;
}

}  // namespace doppel::detail
