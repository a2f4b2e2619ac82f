// redact on gRPC bodies: messages decoded through a descriptor set
// (tests/support/protos/catalog.proto), redacted as JSON, re-encoded; unreadable otherwise.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "doppel/grpc.hpp"
#include "doppel/protobuf_json.hpp"
#include "doppel/testing.hpp"
#include "grpc_payload.hpp"
#include "gzip_text.hpp"
#include "protobuf_text.hpp"
#include "pseudonymizer.hpp"

using namespace doppel;
using doppel::plugins::Pseudonymizer;
using doppel::testing::grpc_frame;
using doppel::testing::grpc_response;
using doppel::testing::make_message;

namespace {

const std::string kKey = "0123456789abcdef";
const std::string kCatalog = DOPPEL_TEST_CATALOG_PB;
const std::string kSearch = "/doppel.catalog.Catalog/Search";
const std::string kWatch = "/doppel.catalog.Catalog/Watch";
const std::string kId = "0123456789abcdef01234567";
const std::string kSecret = "hunter2-very-secret";

std::string encode(const std::string& type, const std::string& text_format) {
  static testing::ProtobufText text(kCatalog);
  return text.encode("doppel.catalog." + type, text_format);
}
const protobuf::DescriptorSet& catalog() {
  static auto set = protobuf::DescriptorSet::load_file(kCatalog);
  return *set;
}

MessagePtr grpc_request(const std::string& body, const std::string& path = kSearch,
                        const std::string& extra_headers = "", const std::string& id = kId) {
  return make_message(Kind::request,
                      "POST " + path + " HTTP/1.1\r\nhost: catalog\r\ncontent-type: application/grpc\r\nte: trailers\r\n" +
                          extra_headers + "content-length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
                      id);
}
MessagePtr response(const std::string& payload, const std::string& id = kId) {
  return make_message(Kind::response, payload, id);
}

Value options(Value::Table table, bool with_catalog = true) {
  table.emplace_back("key", Value(kKey));
  if (with_catalog) table.emplace_back("descriptor_set", Value(kCatalog));
  return Value(std::move(table));
}

struct Redactor {
  explicit Redactor(Value o) : h(testing::linked_plugin("redact"), o) {}
  // The payload emitted for `m`, or "" when it was dropped.
  std::string run(MessagePtr m) {
    auto before = h.emitted().size();
    h.process(std::move(m));
    auto out = h.emitted();
    return out.size() == before ? std::string() : out.back()->payload;
  }
  testing::StageHarness h;
};

// The messages of an emitted payload as JSON of `type`; CHECKs that the body reads cleanly.
std::vector<std::string> decoded(const std::string& payload, const std::string& type) {
  auto view = HttpView::parse(payload);
  grpc::Response read = grpc::read_response(view);
  CHECK(read.body.error == "");
  std::vector<std::string> out;
  for (const auto& m : read.body.messages) {
    std::string json, error;
    CHECK_MESSAGE(catalog().to_json("doppel.catalog." + type, m, json, error), error);
    out.push_back(json);
  }
  return out;
}

std::string token(const std::string& value) { return Pseudonymizer(kKey).token(value); }
std::string head_of(const std::string& payload) { return payload.substr(0, payload.find("\r\n\r\n") + 4); }
std::string body_of(const std::string& payload) { return payload.substr(payload.find("\r\n\r\n") + 4); }

}  // namespace

TEST_CASE("from_json is to_json's reverse, and refuses what does not fit the type") {
  std::string bytes = encode("SearchReply", R"(items { id: "a" tags: "x" stock: 5 } total: 3 color: GREEN trace_id: "t")");
  std::string json, error, again;
  REQUIRE(catalog().to_json("doppel.catalog.SearchReply", bytes, json, error));
  REQUIRE(catalog().from_json("doppel.catalog.SearchReply", json, again, error));
  std::string json_again;
  REQUIRE(catalog().to_json("doppel.catalog.SearchReply", again, json_again, error));
  CHECK(json_again == json);
  CHECK_FALSE(catalog().from_json("doppel.catalog.SearchRequest", R"({"page_size":"REDACTED-x"})", again, error));
  CHECK(error.find("page_size") != std::string::npos);
  CHECK_FALSE(catalog().from_json("doppel.catalog.SearchRequest", R"({"nope":1})", again, error));
  CHECK_FALSE(catalog().from_json("doppel.catalog.Nope", "{}", again, error));
  CHECK(error == "message type doppel.catalog.Nope is not in " + kCatalog);
}

TEST_CASE("a request's string field is redacted, re-encoded, and the secret is gone") {
  Redactor r(options({{"fields", Value::array({"query"})}}));
  std::string in_body = grpc_frame(encode("SearchRequest", "query: \"" + kSecret + "\" page_size: 20"));
  MessagePtr in = grpc_request(in_body);
  std::string out = r.run(in);
  REQUIRE(out != "");
  CHECK(out.find(kSecret) == std::string::npos);
  auto messages = decoded(out, "SearchRequest");
  REQUIRE(messages.size() == 1);
  CHECK(messages[0] == R"({"query":")" + token(kSecret) + R"(","page_size":20})");
  // The head as it was but Content-Length; the new message framed uncompressed.
  std::string new_body = body_of(out);
  CHECK(head_of(out) == head_of(in->payload).replace(head_of(in->payload).find(std::to_string(in_body.size())),
                                                     std::to_string(in_body.size()).size(),
                                                     std::to_string(new_body.size())));
  CHECK(new_body[0] == '\0');
  CHECK(r.h.counter("redacted_values").value() == 1);

  // Nothing listed in the message: the very same message goes on.
  std::string no_query = grpc_frame(encode("SearchRequest", "page_size: 20"));
  MessagePtr untouched = grpc_request(no_query);
  r.h.process(untouched);
  CHECK(r.h.emitted().back() == untouched);
}

TEST_CASE("a response's messages are read by the output type of its request's method; trailers stay") {
  Redactor r(options({{"fields", Value::array({"trace_id", "items[*].id"})}, {"headers", Value::array({"x-token"})}}));
  std::string clean = grpc_frame(testing::gzip_text(encode("SearchReply", "total: 1")), true);
  std::string secret = grpc_frame(encode("SearchReply", "items { id: \"" + kSecret + "\" price: 2.5 } trace_id: \"" +
                                                            kSecret + "-t\" total: 2"));
  CHECK(r.run(grpc_request(grpc_frame(encode("SearchRequest", "query: \"a\"")), kWatch)) != "");
  std::string payload = grpc_response(clean + secret, "0", "", "grpc-encoding: gzip\r\n");
  // A trailer listed in `headers` is redacted in the trailer section that stays.
  payload.insert(payload.size() - 2, "x-token: tok-" + kSecret + "\r\n");
  std::string out = r.run(response(payload));
  REQUIRE(out != "");
  CHECK(out.find(kSecret) == std::string::npos);
  auto messages = decoded(out, "SearchReply");
  REQUIRE(messages.size() == 2);
  CHECK(messages[1].find(R"("id":")" + token(kSecret) + "\"") != std::string::npos);
  CHECK(messages[1].find(R"("trace_id":")" + token(kSecret + "-t") + "\"") != std::string::npos);
  CHECK(messages[1].find(R"("price":2.5)") != std::string::npos);
  // The unchanged message keeps its compressed frame; grpc-encoding stays for it.
  CHECK(out.find(clean) != std::string::npos);
  CHECK(head_of(out) == head_of(payload));
  auto status = grpc::read_response(HttpView::parse(out)).status;
  CHECK(status.code == 0);
  CHECK(out.find("\r\n0\r\ngrpc-status: 0\r\nx-token: " + token("tok-" + kSecret) + "\r\n\r\n") != std::string::npos);
  CHECK(r.h.counter("redacted_values").value() == 3);

  // A gzip-compressed message with the secret is re-framed uncompressed, the secret gone.
  std::string gz = grpc_frame(testing::gzip_text(encode("SearchRequest", "query: \"" + kSecret + "\"")), true);
  Redactor q(options({{"fields", Value::array({"query"})}}));
  std::string request_out = q.run(grpc_request(gz, kSearch, "grpc-encoding: gzip\r\n"));
  REQUIRE(request_out != "");
  CHECK(request_out.find(gz) == std::string::npos);
  CHECK(body_of(request_out)[0] == '\0');
  REQUIRE(decoded(request_out, "SearchRequest").size() == 1);
  CHECK(decoded(request_out, "SearchRequest")[0].find(token(kSecret)) != std::string::npos);
  CHECK(request_out.find(kSecret) == std::string::npos);
}

TEST_CASE("without a descriptor set a gRPC body is unreadable: dropped, or passed and counted") {
  std::string body = grpc_frame(encode("SearchRequest", "query: \"" + kSecret + "\""));
  Redactor drop(options({{"fields", Value::array({"query"})}}, false));
  CHECK(drop.run(grpc_request(body)) == "");
  CHECK(drop.h.dropped("grpc_no_descriptor_set") == 1);

  Redactor pass(options({{"fields", Value::array({"query"})}, {"on_unreadable", "pass"}}, false));
  MessagePtr in = grpc_request(body);
  CHECK(pass.run(in) == in->payload);
  CHECK(pass.h.counter("unredacted_bodies").value() == 1);

  // Headers alone never need the body read.
  Redactor headers(options({{"headers", Value::array({"host"})}}, false));
  std::string out = headers.run(grpc_request(body));
  CHECK(out.find("host: " + token("catalog")) != std::string::npos);
  CHECK(body_of(out) == body);
}

TEST_CASE("an unknown method, a response without its request, a truncated prefix, a non-string field") {
  Redactor r(options({{"fields", Value::array({"query", "page_size"})}}));
  std::string body = grpc_frame(encode("SearchRequest", "query: \"" + kSecret + "\""));
  CHECK(r.run(grpc_request(body, "/doppel.catalog.Catalog/Nope")) == "");
  CHECK(r.h.dropped("grpc_unknown_method") == 1);
  // Its response cannot be read either: the request named no method of the set.
  CHECK(r.run(response(grpc_response(body))) == "");
  CHECK(r.h.dropped("grpc_unknown_method") == 2);
  CHECK(r.run(response(grpc_response(body), "ffffffffffffffffffffffff")) == "");
  CHECK(r.h.dropped("grpc_request_not_seen") == 1);

  CHECK(r.run(grpc_request(body.substr(0, 3))) == "");
  // One message whole and the next cut short: the second may hold a secret too.
  CHECK(r.run(grpc_request(body + body.substr(0, body.size() - 2))) == "");
  CHECK(r.run(grpc_request(grpc_frame("\xff\xff\xff\xff"))) == "");
  CHECK(r.h.dropped("grpc_undecodable") == 3);

  // page_size is an int32: a token cannot go there, so the message cannot be sent redacted.
  CHECK(r.run(grpc_request(grpc_frame(encode("SearchRequest", "page_size: 7")))) == "");
  CHECK(r.h.dropped("grpc_unencodable") == 1);
  CHECK(r.h.emitted().empty());

  // Nor can a message field named whole, nor a bytes field (its JSON is base64, which a token is not).
  Redactor whole(options({{"fields", Value::array({"best", "blob"})}}));
  for (std::string id : {"1", "2"}) CHECK(whole.run(grpc_request(grpc_frame(""), kSearch, "", id)) != "");
  CHECK(whole.run(response(grpc_response(grpc_frame(encode("SearchReply", "best { id: \"x\" }"))), "1")) == "");
  CHECK(whole.run(response(grpc_response(grpc_frame(encode("SearchReply", "blob: \"" + kSecret + "\""))), "2")) == "");
  CHECK(whole.h.dropped("grpc_unencodable") == 2);
}

TEST_CASE("requests' methods are remembered at most max_grpc_requests, for grpc_request_ttl") {
  Redactor r(options({{"fields", Value::array({"query"})}, {"max_grpc_requests", 3}, {"grpc_request_ttl", "200ms"}}));
  std::string body = grpc_frame(encode("SearchRequest", "query: \"a\""));
  std::string reply = grpc_response(grpc_frame(encode("SearchReply", "total: 1")));
  for (int i = 0; i < 5; ++i) CHECK(r.run(grpc_request(body, kSearch, "", "id" + std::to_string(i))) != "");
  CHECK(r.h.gauge("table.grpc_requests").value() == 3);
  CHECK(r.h.counter("grpc_requests_evicted").value() == 2);
  CHECK(r.run(response(reply, "id0")) == "");  // forgotten at the bound
  CHECK(r.h.dropped("grpc_request_not_seen") == 1);
  CHECK(r.run(response(reply, "id4")) != "");
  CHECK(r.run(response(reply, "id4")) != "");  // a replay after the original: still remembered
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(r.run(response(reply, "id3")) == "");  // expired
  CHECK(r.h.dropped("grpc_request_not_seen") == 2);
  CHECK(r.h.gauge("table.grpc_requests").value() == 0);
  CHECK(r.h.counter("grpc_requests_evicted").value() == 2);  // expiry is no eviction

  auto& def = testing::linked_plugin("redact");
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, options({{"fields", Value::array({"q"})}, {"max_grpc_requests", 0}})),
                       doctest::Contains("max_grpc_requests must be at least 1"), ConfigError);
  CHECK_THROWS_WITH_AS(
      testing::StageHarness(def, options({{"fields", Value::array({"q"})}, {"grpc_request_ttl", "0s"}})),
      doctest::Contains("grpc_request_ttl must be positive"), ConfigError);
}

TEST_CASE("descriptor_set is checked when the pipeline is configured") {
  const auto& def = testing::linked_plugin("redact");
  auto make = [&](Value v) { return def.create_stage(testing::validated_options(def, v)); };
  CHECK_THROWS_WITH_AS(
      make(options({{"fields", Value::array({"query"})}, {"descriptor_set", "/nonexistent/api.pb"}}, false)),
      doctest::Contains("cannot read descriptor set /nonexistent/api.pb"), ConfigError);
}
