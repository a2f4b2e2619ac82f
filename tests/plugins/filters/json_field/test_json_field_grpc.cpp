// json_field on gRPC requests: read through a descriptor set (tests/support/protos/catalog.proto),
// unreadable with a reason of its own otherwise.
#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>
#include <string>

#include "doppel/testing.hpp"
#include "grpc_payload.hpp"
#include "gzip_text.hpp"
#include "protobuf_text.hpp"

using namespace doppel;
using doppel::testing::grpc_frame;
using doppel::testing::make_message;

namespace {

const std::string kCatalog = DOPPEL_TEST_CATALOG_PB;
const std::string kSearch = "/doppel.catalog.Catalog/Search";

std::string search(const std::string& text_format) {
  static testing::ProtobufText text(kCatalog);
  return text.encode("doppel.catalog.SearchRequest", text_format);
}

// A gRPC request in doppel's HTTP/1.1 form of an HTTP/2 stream; `body` is the framed messages.
MessagePtr grpc_request(const std::string& body, const std::string& path = kSearch,
                        const std::string& extra_headers = "",
                        const std::string& content_type = "application/grpc") {
  return make_message(Kind::request, "POST " + path + " HTTP/1.1\r\nhost: catalog\r\ncontent-type: " + content_type +
                                         "\r\nte: trailers\r\n" + extra_headers +
                                         "content-length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
}

struct Filter {
  explicit Filter(Value options) : h(testing::linked_plugin("json_field"), options) {
    h.log().sinks().push_back(std::make_shared<spdlog::sinks::ostream_sink_st>(log));
  }
  bool keeps(MessagePtr m) {
    auto before = h.emitted().size();
    h.process(std::move(m));
    return h.emitted().size() == before + 1;
  }
  // How many log lines contain `text`.
  std::size_t logged(const std::string& text) const {
    std::size_t n = 0;
    std::istringstream lines(log.str());
    for (std::string line; std::getline(lines, line);) n += line.find(text) != std::string::npos;
    return n;
  }
  std::ostringstream log;
  testing::StageHarness h;
};

Value with_catalog(Value::Table options) {
  options.emplace_back("descriptor_set", Value(kCatalog));
  return Value(std::move(options));
}

}  // namespace

TEST_CASE("with a descriptor set the first message is read by the method's request type") {
  Filter f(with_catalog({{"field", "query"}, {"in", Value::array({"lamp"})}}));
  CHECK(f.keeps(grpc_request(grpc_frame(search(R"(query: "lamp" page_size: 20)")))));
  CHECK_FALSE(f.keeps(grpc_request(grpc_frame(search(R"(query: "chair")")))));
  CHECK(f.h.dropped("value_not_in_list") == 1);

  // Numbers compare as in JSON bodies; a scalar not sent is present at its default (proto3 JSON).
  Filter size(with_catalog({{"field", "page_size"}, {"in", Value::array({20, "0"})}}));
  CHECK(size.keeps(grpc_request(grpc_frame(search(R"(page_size: 20)")))));
  CHECK(size.keeps(grpc_request(grpc_frame(search(R"(query: "x")")))));
  CHECK_FALSE(size.keeps(grpc_request(grpc_frame(search(R"(page_size: 21)")))));

  // Client streaming is judged by the first message only.
  Filter first(with_catalog({{"field", "query"}, {"matches", Value::array({"^lamp$"})}}));
  CHECK(first.keeps(grpc_request(grpc_frame(search(R"(query: "lamp")")) + grpc_frame(search(R"(query: "x")")))));
  CHECK_FALSE(first.keeps(grpc_request(grpc_frame(search(R"(query: "x")")) + grpc_frame(search(R"(query: "lamp")")))));
  CHECK(first.h.dropped("value_not_matching") == 1);

  // A parameter on the content type, and application/grpc+proto, are gRPC too.
  CHECK(f.keeps(grpc_request(grpc_frame(search(R"(query: "lamp")")), kSearch, "", "application/grpc+proto")));
}

TEST_CASE("a gzip-compressed message is inflated before it is read") {
  Filter f(with_catalog({{"field", "query"}, {"in", Value::array({"lamp"})}}));
  std::string gz = testing::gzip_text(search(R"(query: "lamp")"));
  CHECK(f.keeps(grpc_request(grpc_frame(gz, true), kSearch, "grpc-encoding: gzip\r\n")));
  // The compressed flag without a grpc-encoding to undo it cannot be read.
  CHECK_FALSE(f.keeps(grpc_request(grpc_frame(gz, true))));
  CHECK(f.h.dropped("grpc_undecodable") == 1);
}

TEST_CASE("a request with no message has no field") {
  Filter f(with_catalog({{"field", "query"}, {"exists", true}}));
  CHECK_FALSE(f.keeps(grpc_request("")));
  CHECK(f.h.dropped("field_missing") == 1);
  Filter absent(with_catalog({{"field", "query"}, {"exists", false}}));
  CHECK(absent.keeps(grpc_request("")));
}

TEST_CASE("without a descriptor set gRPC bodies are unreadable, never read as JSON or form text") {
  Filter f(Value::table({{"field", "query"}, {"in", Value::array({"lamp"})}}));
  CHECK_FALSE(f.keeps(grpc_request(grpc_frame(search(R"(query: "lamp")")))));
  CHECK_FALSE(f.keeps(grpc_request(grpc_frame(search(R"(query: "lamp")")))));
  CHECK(f.h.dropped("grpc_no_descriptor_set") == 2);
  CHECK(f.h.dropped("field_missing") == 0);
  CHECK(f.logged("can only be read with descriptor_set") == 1);  // once, not per request

  // Bytes that would read as JSON or as a form were it not for the content type.
  Filter text(Value::table({{"field", "query"}, {"exists", true}}));
  CHECK_FALSE(text.keeps(grpc_request(R"({"query":"lamp"})")));
  CHECK_FALSE(text.keeps(grpc_request("query=lamp")));
  CHECK(text.h.dropped("grpc_no_descriptor_set") == 2);

  // The query string is still read: it is not the body.
  Filter query(Value::table({{"field", "query"}, {"in", Value::array({"lamp"})}}));
  CHECK(query.keeps(grpc_request(grpc_frame(search(R"(query: "x")")), kSearch + "?query=lamp")));
  // A body that decides nothing is not reported: not_in holds without it only when readable.
  Filter only_query(Value::table({{"field", "query"}, {"sources", Value::array({"query"})}}));
  CHECK_FALSE(only_query.keeps(grpc_request(grpc_frame(search(R"(query: "lamp")")))));
  CHECK(only_query.h.dropped("field_missing") == 1);
}

TEST_CASE("a method outside the set, a truncated prefix and foreign bytes are counted apart") {
  Filter f(with_catalog({{"field", "query"}, {"in", Value::array({"lamp"})}}));
  std::string lamp = grpc_frame(search(R"(query: "lamp")"));
  CHECK_FALSE(f.keeps(grpc_request(lamp, "/doppel.catalog.Catalog/Nope")));
  CHECK_FALSE(f.keeps(grpc_request(lamp, "/other.Service/Search")));
  CHECK(f.h.dropped("grpc_unknown_method") == 2);
  CHECK(f.logged("/doppel.catalog.Catalog/Nope is not in the descriptor set") == 1);

  CHECK_FALSE(f.keeps(grpc_request(lamp.substr(0, 3))));       // prefix cut short
  CHECK_FALSE(f.keeps(grpc_request(lamp.substr(0, lamp.size() - 1))));  // length exceeds the data
  // Well framed, but not a SearchRequest: field 7 is not declared.
  CHECK_FALSE(f.keeps(grpc_request(grpc_frame(std::string("\x38\x01", 2)))));
  // Not wire format at all.
  CHECK_FALSE(f.keeps(grpc_request(grpc_frame("\xff\xff\xff\xff"))));
  CHECK(f.h.dropped("grpc_undecodable") == 4);
  CHECK(f.logged("cannot be split into messages") == 1);  // the first reason, once

  // A complete first message is judged even when the stream was cut after it.
  CHECK(f.keeps(grpc_request(lamp + lamp.substr(0, 3))));
  // not_in cannot hold for a body it could not read.
  Filter not_in(with_catalog({{"field", "query"}, {"not_in", Value::array({"x"})}}));
  CHECK_FALSE(not_in.keeps(grpc_request(lamp.substr(0, 3))));
  CHECK(not_in.h.dropped("grpc_undecodable") == 1);
  CHECK(not_in.keeps(grpc_request(lamp)));
}

TEST_CASE("descriptor_set is checked when the pipeline is configured") {
  const auto& def = testing::linked_plugin("json_field");
  auto make = [&](Value v) { return def.create_stage(testing::validated_options(def, v)); };
  CHECK_THROWS_WITH_AS(make(Value::table({{"field", "a"}, {"descriptor_set", "/nonexistent/api.pb"}})),
                       doctest::Contains("cannot read descriptor set /nonexistent/api.pb"), ConfigError);
}
