#pragma once
// zlib inflation shared by the SDK's body decoders (HTTP content coding, gRPC message encoding).
// SDK-internal: plugins reach it through decode_body() and grpc::split_messages().
#include <cstddef>
#include <string>
#include <string_view>

namespace doppel::detail {

// Inflates `in` into `out`: window_bits 15+32 detects gzip or zlib, -15 is raw deflate. At most
// `max_size` bytes: beyond that `out` is cut there, `error` says so and the result is true. False
// when nothing could be inflated; true with `error` set when the input ended early after some
// output ("truncated compressed body").
bool inflate_into(std::string_view in, int window_bits, std::string& out, std::string& error, std::size_t max_size);

}  // namespace doppel::detail
