#include <doctest/doctest.h>

#include "doppel/gor.hpp"
#include "doppel/gor_stream.hpp"

using namespace doppel;

TEST_CASE("gor header round trip, 3 and 4 fields") {
  Message m(Kind::response, "a1b2c3d4e5f6a1b2c3d4e5f6", 1700000000123456789, "HTTP/1.1 200 OK\r\n\r\n");
  m.latency_ns = 1234;
  std::string record = gor::format_record(m);
  CHECK(record == "2 a1b2c3d4e5f6a1b2c3d4e5f6 1700000000123456789 1234\nHTTP/1.1 200 OK\r\n\r\n");
  auto back = gor::parse_record(record);
  REQUIRE(back);
  CHECK(back->kind == Kind::response);
  CHECK(back->id == m.id);
  CHECK(back->timestamp_ns == m.timestamp_ns);
  CHECK(back->latency_ns == 1234);
  CHECK(back->payload == m.payload);
  auto three = gor::parse_header("1 f45590522cd1838b4a0d5c5aab80b77929dea3b3 1231");
  REQUIRE(three);
  CHECK(three->latency_ns == 0);
  CHECK_FALSE(gor::parse_header("9 id 1 2"));
  CHECK_FALSE(gor::parse_header("1 id notanumber 2"));
  CHECK_FALSE(gor::parse_header("1 id 1 2 3"));
  CHECK_FALSE(gor::parse_header("1  1 2"));
  CHECK_FALSE(gor::parse_record("no newline"));
}

TEST_CASE("gor header carries doppel's proto and stream fields after the latency") {
  Message m(Kind::request, "a1b2c3d4e5f6a1b2c3d4e5f6", 17, "GET / HTTP/1.1\r\nhost: x\r\n\r\n");
  m.meta.proto = "h2";
  m.meta.stream_id = 5;
  std::string record = gor::format_record(m);
  CHECK(record.starts_with("1 a1b2c3d4e5f6a1b2c3d4e5f6 17 0 proto=h2 stream=5\n"));
  CHECK(gor::record_size(m) == record.size() + gor::kSeparator.size());
  auto back = gor::parse_record(record);
  REQUIRE(back);
  CHECK(back->meta.proto == "h2");
  CHECK(back->meta.stream_id == 5);
  CHECK(back->payload == m.payload);

  // HTTP/1.x messages keep GoReplay's four fields exactly.
  Message plain(Kind::request, "ab", 1, "GET / HTTP/1.1\r\n\r\n");
  CHECK(gor::format_header(plain) == "1 ab 1 0\n");

  // Unknown keys (a later doppel) are ignored; malformed extension tokens make the header invalid.
  auto later = gor::parse_header("1 ab 1 0 proto=h2 future=yes");
  REQUIRE(later);
  CHECK(later->proto == "h2");
  CHECK(!gor::parse_header("1 ab 1 0 proto"));
  CHECK(!gor::parse_header("1 ab 1 0 =h2"));
  CHECK(!gor::parse_header("1 ab 1 0 stream=0"));
  CHECK(!gor::parse_header("1 ab 1 0 stream=4294967296"));
  CHECK(!gor::parse_header("1 ab 1 0 proto=h2 "));
}
