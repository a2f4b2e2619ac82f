#include <doctest/doctest.h>

#include "doppel/gor.hpp"

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
