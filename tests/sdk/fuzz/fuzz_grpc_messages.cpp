// libFuzzer: gRPC messages as plugins read them, from untrusted bytes: the framing
// (doppel/grpc.hpp: length prefixes, compressed flag, grpc-encoding, the size limit, a response's
// trailers) and the protobuf decoding behind the `grpc` comparator (doppel/protobuf_json.hpp:
// field-number trees without a schema, proto3 JSON with tests/support/protos/catalog.proto).
// Byte 0 chooses the mode; the rest is
//  - (byte 0 & 3) == 0: an HTTP payload read with grpc::read_response;
//  - otherwise a gRPC body split with the grpc-encoding byte 0 selects (none, identity, gzip,
//    deflate), each message then decoded with and without the descriptor set.
// Whatever decodes must be valid JSON, and the messages must stay within the size limit.
#include <simdjson.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "doppel/grpc.hpp"
#include "doppel/http.hpp"
#include "doppel/protobuf_json.hpp"

using namespace doppel;

namespace {

constexpr std::size_t kMaxSize = 1 << 20;  // small, so that inflating inputs reach the limit too

void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "%s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

void check_json(std::string_view json) {
  static simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size()).get(root)) fail("not valid JSON", json);
}

const protobuf::DescriptorSet& catalog() {
  static auto set = protobuf::DescriptorSet::load_file(DOPPEL_TEST_CATALOG_PB);
  return *set;
}

void decode(const std::string& message) {
  std::string json, error;
  if (protobuf::raw_to_json(message, json, error)) check_json(json);
  else if (error.empty()) fail("raw_to_json failed without a reason", message);
  for (const char* type : {"doppel.catalog.SearchReply", "doppel.catalog.SearchRequest"}) {
    if (catalog().to_json(type, message, json, error)) check_json(json);
    else if (error.empty()) fail("to_json failed without a reason", message);
  }
}

void check_messages(const grpc::Messages& m) {
  std::size_t total = 0;
  for (const auto& message : m.messages) total += message.size();
  if (total > kMaxSize) fail("messages beyond the size limit", std::to_string(total));
  for (const auto& message : m.messages) decode(message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::uint8_t mode = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((mode & 3) == 0) {
    HttpView view = HttpView::parse(rest);
    grpc::Response response = grpc::read_response(view, kMaxSize);
    if (response.status.code && response.status.code_text.empty()) fail("a code without its text", rest);
    check_messages(response.body);
    return 0;
  }
  static const char* const encodings[] = {"", "identity", "gzip", "deflate"};
  grpc::Messages m = grpc::split_messages(rest, encodings[(mode >> 2) & 3], kMaxSize);
  check_messages(m);
  (void)grpc::percent_decode(rest);
  (void)grpc::is_grpc_content_type(rest);
  return 0;
}
