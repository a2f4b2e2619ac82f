// The SDK's .gor stream helpers (doppel/gor_stream.hpp) that the file input and outputs share.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <zlib.h>

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
  CHECK(s == Status::error);
  CHECK(reader.error().find("gzip") != std::string::npos);
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
