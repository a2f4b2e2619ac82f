#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <vector>

#include "doppel/testing.hpp"
#include "grpc_payload.hpp"
#include "gzip_text.hpp"
#include "protobuf_text.hpp"

using namespace doppel;
using doppel::testing::grpc_frame;
using doppel::testing::grpc_response;
using doppel::testing::grpc_trailers_only;
using doppel::testing::make_message;

namespace {

const std::string kCatalog = DOPPEL_TEST_CATALOG_PB;
const std::string kSearch = "/doppel.catalog.Catalog/Search";
const std::string kWatch = "/doppel.catalog.Catalog/Watch";

std::string reply(const std::string& text_format) {
  static testing::ProtobufText text(kCatalog);
  return text.encode("doppel.catalog.SearchReply", text_format);
}
// The frames of several SearchReply messages.
std::string stream(const std::vector<std::string>& text_formats) {
  std::string body;
  for (const auto& t : text_formats) body += grpc_frame(reply(t));
  return body;
}

Value with_catalog(Value::Table options = {}) {
  options.emplace_back("descriptor_set", Value(kCatalog));
  return Value(std::move(options));
}

std::unique_ptr<Comparator> comparator(Value options = Value::table({})) {
  const auto& def = testing::linked_plugin("grpc");
  return def.create_comparator(testing::validated_options(def, options));
}

MessagePtr request(const std::string& path) {
  return make_message(Kind::request,
                      "POST " + path +
                          " HTTP/1.1\r\nhost: catalog\r\ncontent-type: application/grpc\r\nte: trailers\r\n"
                          "content-length: 5\r\n\r\n" + grpc_frame(""),
                      "0123456789abcdef01234567");
}

Judgement judge(const Comparator& c, const std::string& original, const std::string& replay,
                const std::string& path = kSearch) {
  Judgement out;
  c.compare_async(Exchange{request(path), make_message(Kind::response, original, "0123456789abcdef01234567"),
                           make_message(Kind::replay, replay, "0123456789abcdef01234567")},
                  [&](Judgement j) { out = std::move(j); });
  return out;
}

// "path kind original replay" per difference, joined by " | "; the error when there is one.
std::string summary(const Judgement& j) {
  if (!j.error.empty()) return "error: " + j.error;
  std::string out;
  for (const auto& d : j.differences) {
    if (!out.empty()) out += " | ";
    out += d.path + " " + d.kind + " " + d.original + " " + d.replay;
  }
  return out;
}
std::string diff(const Comparator& c, const std::string& original, const std::string& replay,
                 const std::string& path = kSearch) {
  return summary(judge(c, original, replay, path));
}

const std::string kReply = R"(items { id: "a" price: 1.5 stock: 3 } items { id: "b" price: 2 } total: 2
                              color: GREEN trace_id: "t1")";

}  // namespace

TEST_CASE("equal responses pass, with and without a descriptor set") {
  std::string body = grpc_response(grpc_frame(reply(kReply)));
  CHECK(diff(*comparator(with_catalog()), body, body).empty());
  CHECK(diff(*comparator(), body, body).empty());
  // The same message gzip-compressed on one side only: the messages are equal.
  std::string gz = grpc_response(grpc_frame(testing::gzip_text(reply(kReply)), true), "0", "",
                                 "grpc-encoding: gzip\r\n");
  CHECK(diff(*comparator(with_catalog()), body, gz).empty());
  CHECK(diff(*comparator(), body, gz).empty());
  // Trailers-only on both sides, same status.
  CHECK(diff(*comparator(), grpc_trailers_only("5", "gone"), grpc_trailers_only("5", "gone")).empty());
}

TEST_CASE("one field changed: named with a descriptor set, numbered without") {
  std::string a = grpc_response(grpc_frame(reply(kReply)));
  std::string b = grpc_response(grpc_frame(reply(R"(items { id: "a" price: 1.5 stock: 4 } items { id: "b" price: 2 }
                                                    total: 2 color: RED trace_id: "t1")")));
  CHECK(diff(*comparator(with_catalog()), a, b) ==
        R"([0].items[0].stock changed "3" "4" | [0].color changed "GREEN" "RED")");
  CHECK(diff(*comparator(), a, b) == "[0].1[0].4 changed 3 4 | [0].3 changed 2 1");
  // A field set to its default reads as changed, not as missing.
  std::string zero = grpc_response(grpc_frame(reply(R"(items { id: "a" price: 1.5 stock: 3 }
                                                       items { id: "b" price: 2 } color: GREEN trace_id: "t1")")));
  CHECK(diff(*comparator(with_catalog()), a, zero) == R"([0].total changed "2" "0")");
  CHECK(diff(*comparator(), a, zero) == "[0].2 missing 2 ");
}

TEST_CASE("grpc-status and grpc-message are compared; grpc-message only when asked") {
  std::string ok = grpc_response(grpc_frame(reply(kReply)));
  std::string failed = grpc_response(grpc_frame(reply(kReply)), "5", "item%20gone");
  CHECK(diff(*comparator(), ok, failed) == "grpc-status changed 0 OK 5 NOT_FOUND | grpc-message extra  item gone");
  CHECK(diff(*comparator(Value::table({{"compare_message", false}})), ok, failed) ==
        "grpc-status changed 0 OK 5 NOT_FOUND");
  CHECK(diff(*comparator(), grpc_response("", "13", "a"), grpc_response("", "13", "b")) ==
        "grpc-message changed a b");
  CHECK(diff(*comparator(Value::table({{"compare_message", false}})), grpc_response("", "13", "a"),
             grpc_response("", "13", "b"))
            .empty());
  // A trailers-only error against a full answer: the status, and the messages it lacks.
  CHECK(diff(*comparator(), ok, grpc_trailers_only("14", "unavailable")) ==
        "grpc-status changed 0 OK 14 UNAVAILABLE | grpc-message extra  unavailable | messages length 1 0");
  // No grpc-status at all on one side (a stream cut before its trailers).
  std::string no_trailers = "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ncontent-length: " +
                            std::to_string(grpc_frame(reply(kReply)).size()) + "\r\n\r\n" + grpc_frame(reply(kReply));
  CHECK(diff(*comparator(), ok, no_trailers) == "grpc-status missing 0 OK (none)");
}

TEST_CASE("streams: each message compared in order; a count mismatch is a difference") {
  std::string three = grpc_response(stream({"total: 1", "total: 2", "total: 3"}));
  std::string changed = grpc_response(stream({"total: 1", "total: 5", "total: 3"}));
  std::string two = grpc_response(stream({"total: 1", "total: 2"}));
  auto c = comparator(with_catalog());
  CHECK(diff(*c, three, three, kWatch).empty());
  CHECK(diff(*c, three, changed, kWatch) == R"([1].total changed "2" "5")");
  CHECK(diff(*c, three, two, kWatch) == "messages length 3 2");
  CHECK(diff(*c, two, changed, kWatch) == R"(messages length 2 3 | [1].total changed "2" "5")");
  CHECK(diff(*c, grpc_response(""), two, kWatch) == "messages length 0 2");
}

TEST_CASE("ignore, unordered and tolerance: paths inside one message, applied to every message") {
  std::string a = grpc_response(stream({R"(trace_id: "x1" items { id: "a" } items { id: "b" } score: 1.0)",
                                        R"(trace_id: "x2" items { id: "c" stock: 1 })"}));
  std::string b = grpc_response(stream({R"(trace_id: "y1" items { id: "b" } items { id: "a" } score: 1.004)",
                                        R"(trace_id: "y2" items { id: "c" stock: 2 })"}));
  CHECK(diff(*comparator(with_catalog()), a, b, kWatch) ==
        R"([0].items order [{"id":"a","price":0,"tags":[],"stock":"0"},{"id":"b","price":0,"tags":[],"stock":"0"}] )"
        R"([{"id":"b","price":0,"tags":[],"stock":"0"},{"id":"a","price":0,"tags":[],"stock":"0"}] | )"
        R"([0].trace_id changed "x1" "y1" | [0].score changed 1 1.004 | )"
        R"([1].items[0].stock changed "1" "2" | [1].trace_id changed "x2" "y2")");
  auto c = comparator(with_catalog({{"ignore", Value::array({"trace_id", "items[*].stock"})},
                                    {"unordered", Value::array({"items"})},
                                    {"tolerance", 0.01}}));
  CHECK(diff(*c, a, b, kWatch).empty());
  // Without a descriptor set the same rules are written with field numbers.
  auto raw = comparator(Value::table({{"ignore", Value::array({"4", "1[*].4"})},
                                      {"unordered", Value::array({"1"})},
                                      {"tolerance", 0.01}}));
  std::string ra = grpc_response(stream({R"(trace_id: "x1" items { id: "a" } items { id: "b" })",
                                         R"(trace_id: "x2" items { id: "c" stock: 1 } total: 7)"}));
  std::string rb = grpc_response(stream({R"(trace_id: "y1" items { id: "b" } items { id: "a" })",
                                         R"(trace_id: "y2" items { id: "c" stock: 2 } total: 8)"}));
  // A field that occurs once is a value, not an array: without a schema a repeated field with
  // one element cannot be told from a singular one, so `1[*].4` misses message 1's lone item.
  CHECK(diff(*raw, ra, rb, kWatch) == "[1].1.4 changed 1 2 | [1].2 changed 7 8");
  auto raw_both = comparator(Value::table({{"ignore", Value::array({"4", "1[*].4", "1.4"})},
                                           {"unordered", Value::array({"1"})}}));
  CHECK(diff(*raw_both, ra, rb, kWatch) == "[1].2 changed 7 8");
  // An ignore path never matches by substring: `trace` does not ignore trace_id.
  CHECK(diff(*comparator(with_catalog({{"ignore", Value::array({"trace"})}})),
             grpc_response(grpc_frame(reply(R"(trace_id: "1")"))), grpc_response(grpc_frame(reply(R"(trace_id: "2")")))) ==
        R"([0].trace_id changed "1" "2")");
}

TEST_CASE("max_differences holds across the messages of a stream") {
  std::string a = grpc_response(stream({"total: 1 trace_id: 'a'", "total: 2 trace_id: 'b'", "total: 3"}));
  std::string b = grpc_response(stream({"total: 9 trace_id: 'x'", "total: 8 trace_id: 'y'", "total: 7"}));
  auto j = judge(*comparator(with_catalog({{"max_differences", 3}})), a, b, kWatch);
  REQUIRE(j.differences.size() == 4);
  CHECK(j.differences[2].path == "[1].total");
  CHECK(j.differences[3].path == "$");
  CHECK(j.differences[3].kind == "truncated");
  CHECK(j.differences[3].replay == "more than 3 differences; the rest are not shown");
}

TEST_CASE("bad inputs are differences of their own kind with the reason, never a crash or a pass") {
  std::string good = grpc_response(grpc_frame(reply(kReply)));
  auto c = comparator(with_catalog());
  // A length prefix beyond the data.
  std::string frame = grpc_frame(reply(kReply));
  std::string cut = grpc_response(frame.substr(0, frame.size() - 4));
  CHECK(diff(*c, good, cut) == "messages invalid_grpc 1 messages message 0: length prefix " +
                                   std::to_string(frame.size() - 5) + " exceeds the " +
                                   std::to_string(frame.size() - 9) + " bytes left");
  CHECK(diff(*c, cut, cut).empty());  // equally broken, byte for byte
  // A truncated prefix, a compressed message without grpc-encoding.
  CHECK(diff(*c, good, grpc_response(frame + std::string("\0\0", 2))) ==
        "messages invalid_grpc 1 messages message 1: truncated length prefix (2 of 5 bytes)");
  CHECK(diff(*c, good, grpc_response(grpc_frame(reply(kReply), true))) ==
        "messages invalid_grpc 1 messages message 0: compressed flag set but no grpc-encoding");
  // Garbage in a well-framed message, with and without a descriptor set.
  std::string garbage = grpc_response(grpc_frame("\xff\xff\xff\xff"));
  auto j = judge(*c, good, garbage);
  REQUIRE(j.differences.size() == 1);
  CHECK(j.differences[0].path == "[0]");
  CHECK(j.differences[0].kind == "invalid_protobuf");
  CHECK(j.differences[0].original.rfind(R"({"items":[{"id":"a")", 0) == 0);
  CHECK(j.differences[0].replay ==
        "(undecodable: not a valid doppel.catalog.SearchReply (wire format or UTF-8 of a string field))");
  CHECK(j.differences[0].message == "a message does not match doppel.catalog.SearchReply");
  CHECK(diff(*comparator(), good, garbage) ==
        R"([0] invalid_protobuf {"1":[{"1":"a","2":"0x3ff8000000000000","4":3},{"1":"b","2":"0x4000000000000000"}],"2":2,"3":2,"4":"t1"} (undecodable: not protobuf wire format))");
  // Valid wire format of another type: a field SearchReply does not declare.
  CHECK(diff(*c, good, grpc_response(grpc_frame(std::string("\xa0\x01\x05", 3)))).find(
            "[0] invalid_protobuf") == 0);
  // A response that is not gRPC at all.
  std::string json = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
  CHECK(diff(*c, good, json) == "content-type not_grpc gRPC application/json (HTTP 503)");
  CHECK(diff(*c, json, json) == "content-type not_grpc application/json (HTTP 503) application/json (HTTP 503)");
}

TEST_CASE("a method the descriptor set does not hold is an error of the judgement, never a pass") {
  std::string a = grpc_response(grpc_frame(reply("total: 1")));
  std::string b = grpc_response(grpc_frame(reply("total: 2")));
  CHECK(diff(*comparator(with_catalog()), a, b, "/doppel.catalog.Catalog/Nope") ==
        "error: method /doppel.catalog.Catalog/Nope is not in the descriptor set (compare it with a `grpc` "
        "comparator without descriptor_set, or add its .proto to the set)");
  // Equal messages too: the set's gap shows on the first call, not on the first difference.
  CHECK(diff(*comparator(with_catalog()), a, a, "/doppel.catalog.Catalog/Nope").rfind("error: method", 0) == 0);
  // A trailers-only answer has no message to decode.
  CHECK(diff(*comparator(with_catalog()), grpc_trailers_only("12"), grpc_trailers_only("12"),
             "/doppel.catalog.Catalog/Nope")
            .empty());
  // Without a request there is no method to read the messages by.
  Judgement j;
  comparator(with_catalog())
      ->compare_async(Exchange{nullptr, make_message(Kind::response, a), make_message(Kind::replay, b)},
                      [&](Judgement r) { j = std::move(r); });
  CHECK(j.error == "no request to tell the gRPC method by: the messages cannot be decoded");
  // Missing sides and failed replays are left to the compare stage.
  CHECK(comparator()->compare(Exchange{request(kSearch), make_message(Kind::response, a), nullptr}).empty());
}

TEST_CASE("application/grpc+json messages are diffed as the JSON they are") {
  auto json_response = [](const std::string& message) {
    return grpc_response(grpc_frame(message), "0", "", "", "application/grpc+json");
  };
  auto c = comparator(with_catalog());
  CHECK(diff(*c, json_response(R"({"total":"1"})"), json_response(R"({"total":"2"})")) ==
        R"([0].total changed "1" "2")");
  CHECK(diff(*c, json_response(R"({"total":"1"})"), json_response("{")).find("[0] invalid_json") == 0);
}

TEST_CASE("descriptor_set is checked when the pipeline is configured") {
  const auto& def = testing::linked_plugin("grpc");
  auto make = [&](Value v) { return def.create_comparator(testing::validated_options(def, v)); };
  CHECK_THROWS_WITH_AS(make(Value::table({{"descriptor_set", "/nonexistent/api.pb"}})),
                       doctest::Contains("cannot read descriptor set /nonexistent/api.pb"), ConfigError);
  std::string not_a_set = std::string(DOPPEL_TEST_CATALOG_PB) + ".garbage";
  std::ofstream(not_a_set, std::ios::binary) << "\xff\xff\xff not protobuf";
  CHECK_THROWS_WITH_AS(make(Value::table({{"descriptor_set", not_a_set}})),
                       doctest::Contains("is not a FileDescriptorSet"), ConfigError);
  CHECK_THROWS_WITH_AS(make(Value::table({{"ignore", Value::array({"items[*"})}})),
                       doctest::Contains("invalid path \"items[*\""), ConfigError);
  CHECK_THROWS_AS(make(Value::table({{"tolerance", -1.0}})), ConfigError);
  CHECK_THROWS_AS(make(Value::table({{"max_differences", 0}})), ConfigError);
}
