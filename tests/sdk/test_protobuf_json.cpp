#include <doctest/doctest.h>

#include <google/protobuf/descriptor.pb.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "doppel/protobuf_json.hpp"
#include "protobuf_text.hpp"

using namespace doppel;

namespace {

const std::string kCatalog = DOPPEL_TEST_CATALOG_PB;

testing::ProtobufText& text() {
  static testing::ProtobufText instance(kCatalog);
  return instance;
}
std::string reply(const std::string& text_format) { return text().encode("doppel.catalog.SearchReply", text_format); }

const protobuf::DescriptorSet& catalog() {
  static auto set = protobuf::DescriptorSet::load_file(kCatalog);
  return *set;
}

std::string to_json(const std::string& type, const std::string& bytes) {
  std::string json, error;
  REQUIRE_MESSAGE(catalog().to_json(type, bytes, json, error), error);
  return json;
}
std::string to_json_error(const std::string& type, const std::string& bytes) {
  std::string json, error;
  CHECK_FALSE(catalog().to_json(type, bytes, json, error));
  return error;
}
std::string raw(const std::string& bytes) {
  std::string json, error;
  REQUIRE_MESSAGE(protobuf::raw_to_json(bytes, json, error), error);
  return json;
}

std::string load_error(std::string_view bytes) {
  try {
    protobuf::DescriptorSet::parse(bytes, "api.pb");
  } catch (const protobuf::DescriptorSetError& e) {
    return e.what();
  }
  return "(loaded)";
}

}  // namespace

TEST_CASE("a descriptor set names the methods of its services and their message types") {
  auto search = catalog().method("/doppel.catalog.Catalog/Search");
  REQUIRE(search);
  CHECK(search->input_type == "doppel.catalog.SearchRequest");
  CHECK(search->output_type == "doppel.catalog.SearchReply");
  CHECK_FALSE(search->server_streaming);
  auto watch = catalog().method("/doppel.catalog.Catalog/Watch?ignored=1");
  REQUIRE(watch);
  CHECK(watch->server_streaming);
  CHECK_FALSE(watch->client_streaming);
  CHECK_FALSE(catalog().method("/doppel.catalog.Catalog/Nope"));
  CHECK_FALSE(catalog().method("/Search"));
  CHECK(catalog().methods().size() == 2);
  CHECK(catalog().has_message_type("doppel.catalog.Item"));
  CHECK(catalog().has_message_type("google.protobuf.Timestamp"));  // imported
  CHECK_FALSE(catalog().has_message_type("doppel.catalog.Nope"));
}

TEST_CASE("descriptor sets that cannot be used are refused with the reason") {
  try {
    protobuf::DescriptorSet::load_file("/nonexistent/api.pb");
    FAIL("loaded");
  } catch (const protobuf::DescriptorSetError& e) {
    CHECK(std::string(e.what()) == "cannot read descriptor set /nonexistent/api.pb");
  }
  CHECK(load_error("\xff\xff\xff garbage").find("api.pb is not a FileDescriptorSet (make one with protoc "
                                                "--descriptor_set_out=api.pb --include_imports") == 0);
  CHECK(load_error("") == "api.pb holds no .proto file");
  // Made without --include_imports: the import is missing.
  std::ifstream in(kCatalog, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  google::protobuf::FileDescriptorSet set;
  REQUIRE(set.ParseFromString(bytes));
  google::protobuf::FileDescriptorSet without_imports;
  for (const auto& file : set.file())
    if (file.name() == "catalog.proto") *without_imports.add_file() = file;
  CHECK(load_error(without_imports.SerializeAsString()) ==
        "api.pb: catalog.proto imports google/protobuf/timestamp.proto, which the set does not hold (make it with "
        "protoc --include_imports)");
  // A file that refers to a type nobody declares.
  google::protobuf::FileDescriptorSet broken = set;
  for (auto& file : *broken.mutable_file())
    if (file.name() == "catalog.proto") file.mutable_message_type(0)->mutable_field(0)->set_type_name(".no.Such");
  CHECK(load_error(broken.SerializeAsString()) ==
        "api.pb: catalog.proto (doppel.catalog.Item.id): \".no.Such\" is not defined.");
}

TEST_CASE("with a descriptor set: proto3 JSON with .proto names, defaults printed, enums by name, 64-bit integers as strings") {
  CHECK(to_json("doppel.catalog.SearchReply",
                reply(R"(items { id: "a" price: 1.5 tags: "x" tags: "y" stock: 7 } total: 3 color: GREEN
                         trace_id: "t-1" counts { key: "k" value: 2 } blob: "\377" at { seconds: 1 })")) ==
        R"({"items":[{"id":"a","price":1.5,"tags":["x","y"],"stock":"7"}],"total":"3","color":"GREEN",)"
        R"("trace_id":"t-1","counts":{"k":2},"score":0,"blob":"/w==","at":"1970-01-01T00:00:01Z"})");
  // Every default: a field changed to 0 or "" still reads as changed, not as missing.
  CHECK(to_json("doppel.catalog.SearchReply", "") ==
        R"({"items":[],"total":"0","color":"COLOR_UNSPECIFIED","trace_id":"","counts":{},"score":0,"blob":""})");
  CHECK(to_json("doppel.catalog.SearchRequest", text().encode("doppel.catalog.SearchRequest", "query: 'q'")) ==
        R"({"query":"q","page_size":0})");
}

TEST_CASE("bytes that do not match the message type are an error with the reason, never a partial JSON") {
  CHECK(to_json_error("doppel.catalog.SearchReply", "\xff\xff\xff") ==
        "not a valid doppel.catalog.SearchReply (wire format or UTF-8 of a string field)");
  // trace_id (a proto3 string) holding invalid UTF-8.
  CHECK(to_json_error("doppel.catalog.SearchReply", std::string("\x22\x01\xff", 3)) ==
        "not a valid doppel.catalog.SearchReply (wire format or UTF-8 of a string field)");
  // Field 20 (varint 5): a field the type does not declare, at the top and inside items[1].
  const std::string unknown("\xa0\x01\x05", 3);
  CHECK(to_json_error("doppel.catalog.SearchReply", unknown) ==
        "does not match doppel.catalog.SearchReply in " + kCatalog +
            ": doppel.catalog.SearchReply: field 20 is not declared");
  std::string nested = reply("items { id: 'a' }") + "\x0a\x03" + unknown;
  CHECK(to_json_error("doppel.catalog.SearchReply", nested) ==
        "does not match doppel.catalog.SearchReply in " + kCatalog + ": items[1]: field 20 is not declared");
  CHECK(to_json_error("doppel.catalog.Nope", "") == "message type doppel.catalog.Nope is not in " + kCatalog);
}

TEST_CASE("without a descriptor set: a field-number tree like protoc --decode_raw") {
  CHECK(raw(reply(R"(items { id: "a" price: 1.5 tags: "x" tags: "y" } total: 3 color: GREEN trace_id: "hi")")) ==
        R"({"1":{"1":"a","2":"0x3ff8000000000000","3":["x","y"]},"2":3,"3":2,"4":"hi"})");
  // Repeated messages become an array; a short string that would parse as a message stays text.
  CHECK(raw(reply(R"(items { id: "a" } items { id: "b" } trace_id: "hi")")) ==
        R"({"1":[{"1":"a"},{"1":"b"}],"4":"hi"})");
  // Bytes neither text nor a message nor UTF-8: base64. Empty: "".
  CHECK(raw(reply(R"(blob: "\377\000\001")")) == R"({"8":"/wAB"})");
  CHECK(raw(std::string("\x42\x00", 2)) == R"({"8":""})");
  // Fixed32 as decode_raw prints it, the largest varint, a group (field 1, wire types 3 and 4).
  CHECK(raw(std::string("\x0d\x01\x00\x00\x00", 5)) == R"({"1":"0x00000001"})");
  CHECK(raw("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01") == R"({"1":18446744073709551615})");
  CHECK(raw("\x0b\x10\x07\x0c") == R"({"1":{"2":7}})");
  CHECK(raw("") == "{}");
}

TEST_CASE("raw decoding: bytes that are not wire format are an error; deep nesting is bounded") {
  std::string json, error;
  CHECK_FALSE(protobuf::raw_to_json("\xff\xff\xff", json, error));
  CHECK(error == "not protobuf wire format");
  CHECK_FALSE(protobuf::raw_to_json("\x0a\x05" "ab", json, error));  // length beyond the data
  CHECK_FALSE(protobuf::raw_to_json("\x0c", json, error));           // an end-group tag alone
  // Field 1 holding a message holding a message ... (60 levels): from max_depth on, a
  // length-delimited value is no more parsed as a message (here it is then ASCII text).
  std::string nested = "\x08\x01";
  while (nested.size() < 127) nested = "\x0a" + std::string(1, static_cast<char>(nested.size())) + nested;
  REQUIRE(protobuf::raw_to_json(nested, json, error, 3));
  CHECK(json.rfind(R"({"1":{"1":{"1":{"1":")", 0) == 0);
  CHECK(json.find(R"({"1":{"1":{"1":{"1":{)") == std::string::npos);
  REQUIRE(protobuf::raw_to_json(nested, json, error));
  CHECK(json.find(R"({"1":1})") != std::string::npos);  // within the default depth: all of it
}
