// The SDK's .gor stream helpers (doppel/gor_stream.hpp) that the file input and outputs share.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <fstream>
#include <thread>

#include "test_support.hpp"

using namespace doppel;
using file_test::TempDir;
using Status = gor::RecordReader::Status;

namespace {
std::vector<std::string> read_all(const std::string& path, std::size_t buffer_size, Status* last = nullptr,
                                  std::vector<std::uint64_t>* offsets = nullptr) {
  gor::RecordReader reader(path, buffer_size);
  std::vector<std::string> records;
  gor::RecordReader::Record r;
  Status s;
  while ((s = reader.next(r)) == Status::record) {
    records.emplace_back(r.bytes);
    if (offsets) offsets->push_back(r.offset);
  }
  if (last) *last = s;
  return records;
}
}  // namespace

TEST_CASE("records split at the separator wherever buffer boundaries fall, offsets exact") {
  TempDir dir;
  std::string sep(gor::kSeparator);
  std::vector<std::string> records;
  std::string file;
  std::vector<std::uint64_t> expected_offsets;
  // Sizes around the 4 KiB buffer, so separators straddle refills, plus records bigger than it.
  for (std::size_t size : {1u, 13u, 4070u, 4083u, 4096u, 9000u, 3u, 20000u, 4095u}) {
    std::string record = "1 id" + std::to_string(size) + " 1 0\n" + std::string(size, 'x');
    record += file_test::nasty_body();
    expected_offsets.push_back(file.size());
    records.push_back(record);
    file += record + sep;
  }
  file_test::write_bytes(dir.file("a.gor"), file);
  Status last;
  std::vector<std::uint64_t> offsets;
  CHECK(read_all(dir.file("a.gor"), 4096, &last, &offsets) == records);
  CHECK(last == Status::end);
  CHECK(offsets == expected_offsets);
  CHECK(read_all(dir.file("a.gor"), 1 << 20) == records);
}

TEST_CASE("a file cut inside a record ends with `truncated` and the partial bytes") {
  TempDir dir;
  std::string sep(gor::kSeparator);
  // Cut in the middle of a separator too: "\n\xF0\x9F" is not a separator.
  file_test::write_bytes(dir.file("cut.gor"), "1 a 1 0\nA" + sep + "1 b 2 0\nB" + sep.substr(0, 3));
  gor::RecordReader reader(dir.file("cut.gor"), 4096);
  gor::RecordReader::Record r;
  REQUIRE(reader.next(r) == Status::record);
  CHECK(r.bytes == "1 a 1 0\nA");
  REQUIRE(reader.next(r) == Status::truncated);
  CHECK(r.bytes == "1 b 2 0\nB" + sep.substr(0, 3));
  CHECK(r.offset == 9 + sep.size());
  CHECK(reader.next(r) == Status::end);
}

TEST_CASE("gzip files read back byte-exact, appended gzip members too") {
  TempDir dir;
  std::string path = dir.file("z.gor.gz");
  Message a = file_test::request("a", 1, "GET /a HTTP/1.1\r\n\r\n" + file_test::nasty_body());
  Message b = file_test::request("b", 2);
  {
    auto w = gor::RecordWriter::open_file(path, false, true);
    w->write(a);
    w->close();
  }
  {
    auto w = gor::RecordWriter::open_file(path, true, true);  // a second gzip member
    w->write(b);
    w->close();
  }
  std::string raw = file_test::read_bytes(path);
  REQUIRE(raw.size() > 2);
  CHECK(static_cast<unsigned char>(raw[0]) == 0x1f);
  gor::RecordReader reader(path);
  CHECK(reader.compressed());
  std::vector<std::string> got = read_all(path, 4096);
  REQUIRE(got.size() == 2);
  CHECK(got[0] == gor::format_record(a));
  CHECK(got[1] == gor::format_record(b));
}

TEST_CASE("a cut-off gzip file yields its whole records, then an error") {
  TempDir dir;
  std::string path = dir.file("cut.gor.gz");
  std::vector<Message> many;
  for (int i = 0; i < 2000; ++i)
    many.push_back(file_test::request("id" + std::to_string(i), i, std::string(200, char('a' + i % 26))));
  file_test::write_gor(path, many);
  std::string raw = file_test::read_bytes(path);
  file_test::write_bytes(path, raw.substr(0, raw.size() / 2));
  gor::RecordReader reader(path, 4096);
  gor::RecordReader::Record r;
  std::size_t records = 0;
  Status s;
  while ((s = reader.next(r)) == Status::record) ++records;
  CHECK(records > 0);
  CHECK(records < 2000);
  // A cut stream is a truncation (zlib: "unexpected end of file"), not an I/O error.
  CHECK(s == Status::truncated);
  CHECK(reader.error().find("gzip") != std::string::npos);
  CHECK(r.offset + r.size == reader.position());
  CHECK(reader.next(r) == Status::end);  // told once
}

TEST_CASE("gzip data damaged in the middle: the records before it, then `damaged`") {
  TempDir dir;
  std::string path = dir.file("bad.gor.gz");
  std::vector<Message> many;
  // Several MB of varied payloads: zlib emits many blocks, and what it decoded before the damage
  // (it discards the output of the inflate call that fails: up to 512 KiB here) is returned.
  constexpr int kCount = 60000;
  for (int i = 0; i < kCount; ++i) {
    std::string payload = "GET /" + std::to_string(i * 7919 % 100003) + std::string(std::size_t(i % 97), 'q');
    many.push_back(file_test::request("id" + std::to_string(i), i, payload));
  }
  file_test::write_gor(path, many);
  std::string raw = file_test::read_bytes(path);
  for (std::size_t i = raw.size() * 3 / 4; i < raw.size() * 3 / 4 + 64; ++i) raw[i] = static_cast<char>(raw[i] ^ 0x5a);
  file_test::write_bytes(path, raw);
  gor::RecordReader reader(path, 4096);
  gor::RecordReader::Record r;
  std::size_t records = 0;
  Status s;
  while ((s = reader.next(r)) == Status::record) ++records;
  CHECK(records > 0);
  CHECK(records < kCount);
  CHECK(s == Status::damaged);
  CHECK(reader.error().find("gzip") != std::string::npos);
}

// ---- The record-size bound ----

namespace {
std::string header(const std::string& id) { return "1 " + id + " 1700000000000000000 0\n"; }
}  // namespace

TEST_CASE("a payload one byte over the bound is skipped and counted; one at the bound and the next are read") {
  TempDir dir;
  std::string sep(gor::kSeparator);
  constexpr std::size_t kBound = 1000;
  std::string at_bound = header("a") + std::string(kBound, 'a');
  std::string over = header("b") + std::string(kBound + 1, 'b');
  std::string after = header("c") + "GET / HTTP/1.1\r\n\r\n";
  file_test::write_bytes(dir.file("x.gor"), at_bound + sep + over + sep + after + sep);
  gor::RecordReader reader(dir.file("x.gor"), 4096, kBound);
  gor::RecordReader::Record r;
  REQUIRE(reader.next(r) == Status::record);
  CHECK(r.bytes == at_bound);
  REQUIRE(reader.next(r) == Status::too_large);
  CHECK(r.offset == at_bound.size() + sep.size());
  CHECK(r.size == over.size());
  CHECK(r.bytes == over.substr(0, r.bytes.size()));  // its start, to show where it was
  CHECK(!r.bytes.empty());
  REQUIRE(reader.next(r) == Status::record);
  CHECK(r.bytes == after);
  CHECK(r.offset == at_bound.size() + over.size() + 2 * sep.size());
  CHECK(reader.next(r) == Status::end);
}

TEST_CASE("a last record without a separator is bound too, even when it is short of being skipped while read") {
  // Found by fuzz_gor_reader: payload over the bound, but within the bound plus a header line,
  // so reading never had to skip it; the end of the file must not keep it.
  TempDir dir;
  constexpr std::size_t kBound = 641;
  std::string unended(4741, 'x');
  file_test::write_bytes(dir.file("z.gor"), unended);
  gor::RecordReader reader(dir.file("z.gor"), 4096, kBound);
  gor::RecordReader::Record r;
  REQUIRE(reader.next(r) == Status::too_large);
  CHECK(r.size == unended.size());
  CHECK(reader.next(r) == Status::end);
}

TEST_CASE("a record far over the bound is skipped without being held, wherever the separator falls") {
  TempDir dir;
  std::string sep(gor::kSeparator);
  constexpr std::size_t kBound = 2000, kBuffer = 4096;
  // Sizes that put the separator after the skipped record across the buffer's edges.
  for (std::size_t size : {9000u, 12279u, 12280u, 12281u, 12290u, 50000u, 65536u}) {
    CAPTURE(size);
    std::string big = header("big") + std::string(size, 'x');
    std::string small = header("small") + file_test::nasty_body();
    file_test::write_bytes(dir.file("y.gor"), small + sep + big + sep + small + sep + big);
    gor::RecordReader reader(dir.file("y.gor"), kBuffer, kBound);
    gor::RecordReader::Record r;
    REQUIRE(reader.next(r) == Status::record);
    CHECK(r.bytes == small);
    REQUIRE(reader.next(r) == Status::too_large);
    CHECK(r.offset == small.size() + sep.size());
    CHECK(r.size == big.size());
    REQUIRE(reader.next(r) == Status::record);
    CHECK(r.bytes == small);
    CHECK(r.offset == small.size() + big.size() + 2 * sep.size());
    // The last one runs to the end of the file without a separator: too large all the same.
    REQUIRE(reader.next(r) == Status::too_large);
    CHECK(r.size == big.size());
    CHECK(reader.next(r) == Status::end);
    CHECK(reader.position() == 2 * small.size() + 2 * big.size() + 3 * sep.size());
    CHECK(reader.buffer_capacity() <= std::max(kBuffer, kBound + gor::kMaxHeaderLine + sep.size()));
  }
}

TEST_CASE("200 MB without a separator through a 1 MiB bound: memory stays bounded, the next record is read") {
  // A pipe, so that nothing lands on disk: a writer thread streams the bytes as they are read.
  TempDir dir;
  std::string fifo = dir.file("stream.gor");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  constexpr std::size_t kTotal = 200u << 20, kBound = 1u << 20;
  std::string sep(gor::kSeparator);
  std::string after = header("after") + "GET /after HTTP/1.1\r\n\r\n";
  auto rss_peak_kib = [] {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("VmHWM:", 0) == 0) return std::stoul(line.substr(6));
    return 0ul;
  };
  // "5" resets the peak to the current size (Linux 4.0+): the growth measured is this test's.
  std::ofstream("/proc/self/clear_refs") << "5";
  unsigned long peak_before = rss_peak_kib();
  std::thread writer([&] {
    int fd = ::open(fifo.c_str(), O_WRONLY);
    if (fd < 0) return;
    std::string chunk(1 << 16, 'A');
    std::string first = header("huge");
    std::size_t sent = 0;
    (void)!::write(fd, first.data(), first.size());
    while (sent < kTotal) {
      std::size_t n = std::min(chunk.size(), kTotal - sent);
      ssize_t w = ::write(fd, chunk.data(), n);
      if (w <= 0) break;
      sent += static_cast<std::size_t>(w);
    }
    std::string tail = sep + after + sep;
    (void)!::write(fd, tail.data(), tail.size());
    ::close(fd);
  });
  {
    gor::RecordReader reader(fifo, 64 << 10, kBound);
    gor::RecordReader::Record r;
    REQUIRE(reader.next(r) == Status::too_large);
    CHECK(r.offset == 0);
    CHECK(r.size == header("huge").size() + kTotal);
    CHECK(reader.buffer_capacity() <= kBound + gor::kMaxHeaderLine + sep.size());
    REQUIRE(reader.next(r) == Status::record);
    CHECK(r.bytes == after);
    CHECK(reader.next(r) == Status::end);
  }
  writer.join();
  // The peak resident size grew by about the bound, not by the 200 MB that went through.
  unsigned long growth_kib = rss_peak_kib() - peak_before;
  MESSAGE("peak RSS growth: " << growth_kib << " KiB");
  CHECK(growth_kib < 16 * 1024);
}

// ---- Probing a file's first bytes ----

TEST_CASE("probe: a .gor file gives its first header; gzip or not, whatever the name") {
  TempDir dir;
  file_test::write_gor(dir.file("a.gor"), {file_test::request("first", 1234), file_test::request("second", 5678)});
  file_test::write_gor(dir.file("a.gor.gz"), {file_test::request("first", 1234)});
  file_test::write_bytes(dir.file("plain-named.gz"), file_test::read_bytes(dir.file("a.gor")));
  for (const char* name : {"a.gor", "a.gor.gz", "plain-named.gz"}) {
    CAPTURE(std::string(name));
    auto probe = gor::probe_file(dir.file(name));
    REQUIRE(probe.verdict == gor::FileProbe::Verdict::records);
    REQUIRE(probe.first);
    CHECK(probe.first->id == "first");
    CHECK(probe.first->timestamp_ns == 1234);
    CHECK(probe.gzip == std::string_view(name).ends_with(".gor.gz"));
  }
}

TEST_CASE("probe: an empty file, or a gzip stream of nothing, is an empty recording") {
  TempDir dir;
  file_test::write_bytes(dir.file("empty.gor"), "");
  {
    auto w = gor::RecordWriter::open_file(dir.file("empty.gor.gz"), false, true);
    w->close();
  }
  for (const char* name : {"empty.gor", "empty.gor.gz"}) {
    CAPTURE(std::string(name));
    CHECK(gor::probe_file(dir.file(name)).verdict == gor::FileProbe::Verdict::empty);
  }
}

TEST_CASE("probe: random bytes, gzip garbage, text and a header-less stream are not .gor files, and say why") {
  TempDir dir;
  std::string random;
  std::uint32_t x = 2463534242u;
  for (int i = 0; i < 100000; ++i) {  // xorshift: no separator, no header
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    random += static_cast<char>(x & 0xff);
  }
  random[0] = '\x8f';  // not a digit, not gzip
  file_test::write_bytes(dir.file("random.gor"), random);
  file_test::write_bytes(dir.file("random.gor.gz"), random);
  file_test::write_bytes(dir.file("garbage.gor.gz"), std::string("\x1f\x8b", 2) + random.substr(2));
  file_test::write_bytes(dir.file("text.gor"), "hello world\nthis is not a recording\n");
  file_test::write_bytes(dir.file("long.gor"), "1 " + std::string(10000, 'a'));
  struct Case {
    const char* name;
    const char* says;
  };
  for (Case c : {Case{"random.gor", "its first"}, Case{"random.gor.gz", "not gzip"},
                 Case{"garbage.gor.gz", "does not decompress"}, Case{"text.gor", "\"hello world\""},
                 Case{"long.gor", "no line break in its first 4096 bytes"}}) {
    CAPTURE(std::string(c.name));
    auto probe = gor::probe_file(dir.file(c.name));
    CHECK(probe.verdict == gor::FileProbe::Verdict::not_gor);
    CHECK(probe.problem.find(dir.file(c.name) + " is not a .gor file") == 0);
    CHECK(probe.problem.find("expected a first line \"TYPE ID TIMESTAMP [LATENCY]\"") != std::string::npos);
    CHECK(probe.problem.find(c.says) != std::string::npos);
    MESSAGE(probe.problem);
  }
  CHECK_THROWS_AS(gor::probe_file(dir.file("missing.gor")), std::system_error);
}

TEST_CASE("peek shows the next bytes without consuming them") {
  TempDir dir;
  std::string sep(gor::kSeparator);
  std::string record = header("p") + std::string(10000, 'z');
  file_test::write_bytes(dir.file("p.gor"), record + sep);
  gor::RecordReader reader(dir.file("p.gor"), 4096);
  CHECK(reader.peek(5) == record.substr(0, 5));
  CHECK(reader.peek(8000) == record.substr(0, 8000));  // more than the buffer held
  gor::RecordReader::Record r;
  REQUIRE(reader.next(r) == Status::record);
  CHECK(r.bytes == record);
  CHECK(reader.peek(10).empty());
  CHECK(reader.next(r) == Status::end);
}

TEST_CASE("writer flush makes records visible before close; size counts what the file holds") {
  TempDir dir;
  std::string path = dir.file("w.gor");
  auto w = gor::RecordWriter::open_file(path, false, false);
  Message m = file_test::request("abc", 42, "GET / HTTP/1.1\r\n\r\n");
  CHECK(w->write(m) == gor::record_size(m));
  CHECK(w->size() == gor::record_size(m));
  CHECK(file_test::read_bytes(path).empty());  // still buffered
  w->flush(true);
  CHECK(file_test::read_bytes(path) == gor::format_record(m) + std::string(gor::kSeparator));
  w->close();
  // Appending starts from the existing size.
  auto again = gor::RecordWriter::open_file(path, true, false);
  CHECK(again->size() == gor::record_size(m));
}

TEST_CASE("a payload larger than the writer's buffer is written whole") {
  TempDir dir;
  std::string path = dir.file("big.gor");
  Message big = file_test::request("big", 1, std::string(5 << 20, 'q'));
  Message small = file_test::request("small", 2);
  auto w = gor::RecordWriter::open_file(path, false, false, 4096);
  w->write(small);
  w->write(big);
  w->write(small);
  w->close();
  auto got = read_all(path, 4096);
  REQUIRE(got.size() == 3);
  CHECK(got[1] == gor::format_record(big));
}

TEST_CASE("record_size matches the bytes written") {
  Message m = file_test::request("0123456789abcdef01234567", -5, "x");
  m.latency_ns = 1234567;
  CHECK(gor::record_size(m) == gor::format_record(m).size() + gor::kSeparator.size());
}

TEST_CASE("chunk names and the last existing chunk") {
  CHECK(gor::chunk_name("out.gor", 0) == "out_0.gor");
  CHECK(gor::chunk_name("dir.v2/out.gor.gz", 12) == "dir.v2/out_12.gor.gz");
  CHECK(gor::chunk_name("dir.v2/out", 3) == "dir.v2/out_3");
  CHECK(gor::chunk_name(".hidden", 1) == ".hidden_1");
  TempDir dir;
  CHECK_FALSE(gor::last_chunk_index(dir.file("out.gor")).has_value());
  for (auto name : {"out_0.gor", "out_7.gor", "out_12.gor", "out_x.gor", "out_99.gor.gz", "other_50.gor"})
    file_test::write_bytes(dir.file(name), "");
  CHECK(gor::last_chunk_index(dir.file("out.gor")) == 12u);
  CHECK(gor::last_chunk_index(dir.file("out.gor.gz")) == 99u);
}

TEST_CASE("time patterns expand in local time; others are refused") {
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 2;
  tm.tm_mday = 7;
  tm.tm_hour = 5;
  tm.tm_min = 4;
  tm.tm_sec = 9;
  tm.tm_isdst = -1;
  std::time_t when = std::mktime(&tm);
  CHECK(gor::expand_time_pattern("/x/%Y%m%d-%H%M%S.gor", when) == "/x/20240307-050409.gor");
  CHECK(gor::expand_time_pattern("100%%.gor", when) == "100%.gor");
  CHECK_FALSE(gor::expand_time_pattern("%r.gor", when).has_value());
  CHECK_FALSE(gor::expand_time_pattern("trailing%", when).has_value());
  CHECK(gor::has_time_pattern("a-%H.gor"));
  CHECK_FALSE(gor::has_time_pattern("a.gor"));
}

TEST_CASE("globs list files in chunk order") {
  TempDir dir;
  for (auto name : {"b.gor", "a_10.gor", "a_2.gor", "a_1.gor.gz", "a.gor", "c_1"})
    file_test::write_bytes(dir.file(name), "");
  ::mkdir(dir.file("a_3.gor").c_str(), 0755);  // a directory never matches
  auto files = gor::expand_glob(dir.file("*"));
  std::vector<std::string> names;
  for (auto& f : files) names.push_back(f.substr(dir.path().string().size() + 1));
  CHECK(names == std::vector<std::string>{"a.gor", "a_1.gor.gz", "a_2.gor", "a_10.gor", "b.gor", "c_1"});
  CHECK(gor::expand_glob(dir.file("b.gor")).size() == 1);
  CHECK(gor::expand_glob(dir.file("nothing.gor")).empty());
}
