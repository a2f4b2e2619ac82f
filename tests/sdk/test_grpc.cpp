#include <doctest/doctest.h>

#include <zlib.h>

#include <string>

#include "doppel/grpc.hpp"
#include "doppel/http.hpp"
#include "grpc_payload.hpp"
#include "gzip_text.hpp"

using namespace doppel;
using doppel::testing::grpc_frame;
using doppel::testing::grpc_response;
using doppel::testing::grpc_trailers_only;

namespace {

// zlib-wrapped deflate, as grpc-encoding: deflate sends it.
std::string zlib_text(const std::string& text) {
  uLongf size = compressBound(static_cast<uLong>(text.size()));
  std::string out(size, '\0');
  REQUIRE(compress(reinterpret_cast<Bytef*>(out.data()), &size, reinterpret_cast<const Bytef*>(text.data()),
                   static_cast<uLong>(text.size())) == Z_OK);
  out.resize(size);
  return out;
}

grpc::Response read(const std::string& payload) {
  static thread_local std::string keep;  // the view points into it
  keep = payload;
  return grpc::read_response(HttpView::parse(keep));
}

}  // namespace

TEST_CASE("gRPC content types: application/grpc and its +format variants, never gRPC-Web") {
  for (const char* yes : {"application/grpc", "application/grpc+proto", "application/grpc+json", "APPLICATION/GRPC",
                          "application/grpc; charset=utf-8", " application/grpc+proto ;x=y"})
    CHECK_MESSAGE(grpc::is_grpc_content_type(yes), yes);
  for (const char* no : {"application/grpc-web", "application/grpc-web+proto", "application/grpc-web-text",
                         "application/grpcx", "application/grpc+", "application/json", "", "text/grpc"})
    CHECK_FALSE_MESSAGE(grpc::is_grpc_content_type(no), no);
}

TEST_CASE("a body splits into its messages, empty ones included") {
  auto m = grpc::split_messages(grpc_frame("abc") + grpc_frame("") + grpc_frame(std::string(70000, 'x')), "");
  CHECK(m.error.empty());
  REQUIRE(m.messages.size() == 3);
  CHECK(m.messages[0] == "abc");
  CHECK(m.messages[1].empty());
  CHECK(m.messages[2] == std::string(70000, 'x'));
  CHECK(grpc::split_messages("", "").messages.empty());
  CHECK(grpc::split_messages("", "").error.empty());
  // An uncompressed message reads the same whatever encoding the stream may use.
  CHECK(grpc::split_messages(grpc_frame("abc"), "snappy").messages.at(0) == "abc");
}

TEST_CASE("compressed messages are inflated per grpc-encoding") {
  std::string text(5000, 'z');
  auto gz = grpc::split_messages(grpc_frame(testing::gzip_text(text), true) + grpc_frame("plain"), "gzip");
  CHECK(gz.error.empty());
  REQUIRE(gz.messages.size() == 2);
  CHECK(gz.messages[0] == text);
  CHECK(gz.messages[1] == "plain");
  auto deflate = grpc::split_messages(grpc_frame(zlib_text(text), true), "deflate");
  CHECK(deflate.error.empty());
  CHECK(deflate.messages.at(0) == text);
  CHECK(grpc::split_messages(grpc_frame(testing::gzip_text(text), true), " GZIP ").messages.at(0) == text);
}

TEST_CASE("bad framing is an error with the reason, and the messages before it are kept") {
  auto truncated_prefix = grpc::split_messages(grpc_frame("ok") + std::string("\0\0\0", 3), "");
  CHECK(truncated_prefix.messages.size() == 1);
  CHECK(truncated_prefix.error == "message 1: truncated length prefix (3 of 5 bytes)");
  std::string too_long = grpc_frame(std::string(100, 'a')).substr(0, 5 + 3);
  auto beyond = grpc::split_messages(grpc_frame("ok") + too_long, "");
  CHECK(beyond.messages.size() == 1);
  CHECK(beyond.error == "message 1: length prefix 100 exceeds the 3 bytes left");
  CHECK(grpc::split_messages("\x02" + grpc_frame("x").substr(1), "").error == "message 0: invalid compressed flag 2");
  CHECK(grpc::split_messages(grpc_frame("x", true), "").error == "message 0: compressed flag set but no grpc-encoding");
  CHECK(grpc::split_messages(grpc_frame("x", true), "identity").error ==
        "message 0: compressed flag set but no grpc-encoding");
  CHECK(grpc::split_messages(grpc_frame("x", true), "snappy").error == "message 0: unsupported grpc-encoding snappy");
  CHECK(grpc::split_messages(grpc_frame("not gzip at all", true), "gzip").error == "message 0: invalid gzip data");
  // Text that compresses little, so that half of it inflates to something before it ends.
  std::string varied;
  for (unsigned x = 1; varied.size() < 20000; x = x * 1103515245 + 12345) varied += static_cast<char>('a' + (x >> 16) % 26);
  std::string gz = testing::gzip_text(varied);
  CHECK(grpc::split_messages(grpc_frame(gz.substr(0, gz.size() / 2), true), "gzip").error ==
        "message 0: gzip: truncated compressed body");
}

TEST_CASE("the size limit holds for plain and compressed messages (a decompression bomb stops there)") {
  auto plain = grpc::split_messages(grpc_frame(std::string(600, 'a')) + grpc_frame(std::string(600, 'b')), "", 1000);
  CHECK(plain.messages.size() == 1);
  CHECK(plain.error == "message 1: messages larger than the limit of 1000 bytes");
  auto bomb = grpc::split_messages(grpc_frame(testing::gzip_text(std::string(50 << 20, '\0')), true), "gzip", 4096);
  CHECK(bomb.messages.empty());
  CHECK(bomb.error == "message 0: gzip: decoded body larger than the limit");
}

TEST_CASE("grpc-message is percent-decoded; malformed escapes stay as sent") {
  CHECK(grpc::percent_decode("not%20found%3A %E2%82%AC") == "not found: \xE2\x82\xAC");
  CHECK(grpc::percent_decode("100%") == "100%");
  CHECK(grpc::percent_decode("%zz%4") == "%zz%4");
  CHECK(grpc::percent_decode("%41%4a%4A") == "AJJ");
  CHECK(grpc::status_name(0) == "OK");
  CHECK(grpc::status_name(5) == "NOT_FOUND");
  CHECK(grpc::status_name(16) == "UNAUTHENTICATED");
  CHECK(grpc::status_name(17).empty());
  CHECK(grpc::status_name(-1).empty());
}

TEST_CASE("a response: messages from the body, status from the trailers") {
  auto r = read(grpc_response(grpc_frame("one") + grpc_frame("two"), "3", "bad%20name"));
  CHECK(r.is_grpc);
  CHECK(r.body.error.empty());
  CHECK(r.body.messages == std::vector<std::string>{"one", "two"});
  CHECK(r.status.code == 3);
  CHECK(r.status.code_text == "3");
  CHECK(r.status.message == "bad name");
  CHECK(r.status.has_message);
  CHECK_FALSE(r.status.trailers_only);
  auto gz = read(grpc_response(grpc_frame(testing::gzip_text("packed"), true), "0", "", "grpc-encoding: gzip\r\n"));
  CHECK(gz.body.error.empty());
  CHECK(gz.body.messages == std::vector<std::string>{"packed"});
  CHECK(gz.status.code == 0);
  CHECK_FALSE(gz.status.has_message);
}

TEST_CASE("a trailers-only response carries its status in the headers") {
  auto r = read(grpc_trailers_only("5", "no%20such%20item"));
  CHECK(r.is_grpc);
  CHECK(r.body.messages.empty());
  CHECK(r.body.error.empty());
  CHECK(r.status.code == 5);
  CHECK(r.status.message == "no such item");
  CHECK(r.status.trailers_only);
}

TEST_CASE("responses gRPC does not send are told apart, never guessed") {
  auto json = read("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
  CHECK_FALSE(json.is_grpc);
  CHECK_FALSE(json.status.code);
  auto no_status = read("HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ncontent-length: 0\r\n\r\n");
  CHECK(no_status.is_grpc);
  CHECK(no_status.status.code_text.empty());
  CHECK_FALSE(no_status.status.code);
  auto odd_status = read(grpc_response("", "abc"));
  CHECK(odd_status.status.code_text == "abc");
  CHECK_FALSE(odd_status.status.code);
  auto content_coded = read(grpc_response(grpc_frame("x"), "0", "", "content-encoding: gzip\r\n"));
  CHECK(content_coded.body.messages.empty());
  CHECK(content_coded.body.error.find("content-encoding gzip on a gRPC body") == 0);
  // A chunked body cut short: what was read is split, and the HTTP error comes first.
  std::string whole = grpc_response(grpc_frame("abc") + grpc_frame("defgh"));
  auto cut = read(whole.substr(0, whole.find("defgh") + 2));
  CHECK(cut.body.messages == std::vector<std::string>{"abc"});
  CHECK(cut.body.error.find("HTTP body: ") == 0);
  CHECK(cut.body.error.find("message 1: length prefix 5 exceeds the 2 bytes left") != std::string::npos);
}
