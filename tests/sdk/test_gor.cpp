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

TEST_CASE("gor header carries how a message decrypted from TLS was protected") {
  Message m(Kind::response, "ab", 3, "HTTP/1.1 200 OK\r\n\r\n");
  m.latency_ns = 9;
  m.meta.proto = "h2";
  m.meta.stream_id = 3;
  m.meta.tls = std::make_shared<TlsMeta>(TlsMeta{"TLSv1.3", "TLS_AES_128_GCM_SHA256", "api.example", "h2"});
  std::string record = gor::format_record(m);
  CHECK(record.starts_with("2 ab 3 9 proto=h2 stream=3 tls=TLSv1.3 cipher=TLS_AES_128_GCM_SHA256 sni=api.example alpn=h2\n"));
  CHECK(gor::record_size(m) == record.size() + gor::kSeparator.size());
  auto back = gor::parse_record(record);
  REQUIRE(back);
  REQUIRE(back->meta.tls);
  CHECK(back->meta.tls->version == "TLSv1.3");
  CHECK(back->meta.tls->cipher == "TLS_AES_128_GCM_SHA256");
  CHECK(back->meta.tls->server_name == "api.example");
  CHECK(back->meta.tls->alpn == "h2");
  CHECK(back->meta.stream_id == 3);

  // No SNI, no ALPN: only what was there. A name with a space never breaks the line.
  Message plain(Kind::request, "cd", 1, "GET / HTTP/1.1\r\n\r\n");
  plain.meta.tls = std::make_shared<TlsMeta>(TlsMeta{"TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "bad name", ""});
  CHECK(gor::format_header(plain) == "1 cd 1 0 tls=TLSv1.2 cipher=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n");
  CHECK(gor::record_size(plain) == gor::format_record(plain).size() + gor::kSeparator.size());
  auto back_plain = gor::parse_header("1 cd 1 0 tls=TLSv1.2 cipher=X");
  REQUIRE(back_plain);
  REQUIRE(back_plain->tls);
  CHECK(back_plain->tls->server_name.empty());
  // A cipher field alone says nothing was decrypted: no TLS meta.
  auto no_tls = gor::parse_header("1 cd 1 0 cipher=X");
  REQUIRE(no_tls);
  CHECK(!no_tls->tls);
}
