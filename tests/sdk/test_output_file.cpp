// How outputs create and write files (doppel/output_file.hpp): private modes, no symlinks, no
// silent truncation, and honest counting when the disk fills up (simulated with RLIMIT_FSIZE:
// file_size_limit.hpp; tests/plugins/outputs/file fills a real tmpfs).
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "doppel/gor.hpp"
#include "doppel/gor_stream.hpp"
#include "doppel/options.hpp"
#include "doppel/output_file.hpp"
#include "file_size_limit.hpp"

using namespace doppel;
using doppel::testing::FileSizeLimit;
namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string name = (fs::temp_directory_path() / "doppel-output-file-XXXXXX").string();
    if (::mkdtemp(name.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = name;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// A known umask for the test, the caller's restored after.
class Umask {
 public:
  explicit Umask(mode_t mask) : saved_(::umask(mask)) {}
  ~Umask() { ::umask(saved_); }

 private:
  mode_t saved_;
};

OutputFilePolicy policy(ExistingFile existing, unsigned mode = 0600) {
  OutputFilePolicy p;
  p.existing = existing;
  p.mode = mode;
  return p;
}

// The records of a .gor file as the file input reads them; `clean` is false when the file does
// not end cleanly after its last record (a partial record, a cut gzip member).
std::size_t count_records(const std::string& path, bool& clean) {
  gor::RecordReader reader(path);
  gor::RecordReader::Record r;
  std::size_t n = 0;
  gor::RecordReader::Status s;
  while ((s = reader.next(r)) == gor::RecordReader::Status::record) {
    REQUIRE(gor::parse_record(r.bytes).has_value());
    ++n;
  }
  clean = s == gor::RecordReader::Status::end;
  return n;
}

Message record(int i, std::size_t payload_size) {
  std::string payload = "GET /" + std::to_string(i) + " HTTP/1.1\r\n\r\n";
  std::uint32_t x = static_cast<std::uint32_t>(i) * 2654435761u;
  while (payload.size() < payload_size) {  // poorly compressible, so gzip sizes are predictable
    x = x * 1103515245u + 12345u;
    payload += static_cast<char>('a' + (x >> 24) % 26);
  }
  return Message(Kind::request, "id" + std::to_string(i), 1700000000000000000 + i, std::move(payload));
}

}  // namespace

TEST_CASE("file modes: octal text, 0600 by default, the mode given otherwise") {
  CHECK(parse_file_mode("0600") == 0600u);
  CHECK(parse_file_mode("640") == 0640u);
  CHECK(parse_file_mode("0o644") == 0644u);
  CHECK(parse_file_mode("0777") == 0777u);
  CHECK_FALSE(parse_file_mode("").has_value());
  CHECK_FALSE(parse_file_mode("0800").has_value());
  CHECK_FALSE(parse_file_mode("rw-------").has_value());
  CHECK_FALSE(parse_file_mode("4755").has_value());  // setuid: refused
  CHECK_FALSE(parse_file_mode("00600").has_value());
  CHECK(format_file_mode(0640) == "0640");

  TempDir dir;
  Umask mask(022);
  ::close(open_output_file(dir.file("default"), OutputFilePolicy{}));
  CHECK(mode_of(dir.file("default")) == 0600u);
  ::close(open_output_file(dir.file("custom"), policy(ExistingFile::refuse, 0640)));
  CHECK(mode_of(dir.file("custom")) == 0640u);
  // The umask still removes bits, as for any program.
  ::close(open_output_file(dir.file("masked"), policy(ExistingFile::refuse, 0666)));
  CHECK(mode_of(dir.file("masked")) == 0644u);
  // An existing file keeps its own mode.
  write(dir.file("kept"), "x");
  fs::permissions(dir.file("kept"), fs::perms(0604));
  ::close(open_output_file(dir.file("kept"), policy(ExistingFile::append)));
  CHECK(mode_of(dir.file("kept")) == 0604u);
}

TEST_CASE("a symbolic link at the path is refused with a clear error, and its target is untouched") {
  TempDir dir;
  write(dir.file("victim"), "precious");
  fs::create_symlink(dir.file("victim"), dir.file("out.gor"));
  for (auto existing : {ExistingFile::refuse, ExistingFile::append, ExistingFile::overwrite}) {
    CAPTURE(static_cast<int>(existing));
    auto problem = output_path_problem(dir.file("out.gor"), policy(existing));
    REQUIRE(problem.has_value());
    CHECK(problem->find(dir.file("out.gor") + " is a symbolic link") != std::string::npos);
    CHECK_THROWS_WITH(open_output_file(dir.file("out.gor"), policy(existing)),
                      doctest::Contains((dir.file("out.gor") + " is a symbolic link").c_str()));
    CHECK_THROWS_WITH(OutputFile::open(dir.file("out.gor"), policy(existing), true),
                      doctest::Contains("symbolic link"));
  }
  CHECK(read(dir.file("victim")) == "precious");
  CHECK(fs::is_symlink(dir.file("out.gor")));
  // A dangling link is refused too: following it would create a file wherever it points.
  fs::create_symlink(dir.file("elsewhere"), dir.file("dangling.gor"));
  CHECK_THROWS_WITH(open_output_file(dir.file("dangling.gor"), OutputFilePolicy{}), doctest::Contains("symbolic link"));
  CHECK_FALSE(fs::exists(dir.file("elsewhere")));
}

TEST_CASE("an existing file is refused unless appended to or overwritten") {
  TempDir dir;
  std::string path = dir.file("out.gor");
  write(path, "earlier capture\n");
  auto problem = output_path_problem(path, OutputFilePolicy{});
  REQUIRE(problem.has_value());
  CHECK(*problem == path + " already exists; set append = true to add to it, or overwrite = true to replace it");
  CHECK_THROWS_WITH(open_output_file(path, OutputFilePolicy{}), doctest::Contains("already exists"));
  CHECK(read(path) == "earlier capture\n");
  CHECK_FALSE(output_path_problem(path, policy(ExistingFile::append)).has_value());
  CHECK_FALSE(output_path_problem(dir.file("absent"), OutputFilePolicy{}).has_value());
  CHECK(output_path_problem(dir.path().string(), policy(ExistingFile::overwrite)) ==
        dir.path().string() + " is a directory");

  SUBCASE("append adds to the end") {
    auto file = OutputFile::open(path, policy(ExistingFile::append), false);
    CHECK(file->size() == 16);
    file->add({"more", "\n"});
    file->close();
    CHECK(read(path) == "earlier capture\nmore\n");
    CHECK(file->progress().records_written == 1);
  }
  SUBCASE("overwrite starts anew") {
    auto file = OutputFile::open(path, policy(ExistingFile::overwrite), false);
    CHECK(file->size() == 0);
    file->add({"new", "\n"});
    file->close();
    CHECK(read(path) == "new\n");
  }
}

TEST_CASE("the append/overwrite/mode options are read and checked in one place") {
  std::vector<OptionSpec> specs = {
      option("append", OptionType::boolean, "").default_value(false),
      option("overwrite", OptionType::boolean, "").default_value(false),
      option("mode", OptionType::string, "").default_value("0600"),
  };
  auto parse = [&](Value table) {
    std::vector<ConfigError> errors;
    Options options = Options::validate(table, specs, errors);
    REQUIRE(errors.empty());
    return output_file_policy(options);
  };
  auto defaults = parse(Value::table({}));
  CHECK(defaults.existing == ExistingFile::refuse);
  CHECK(defaults.mode == 0600u);
  CHECK(parse(Value::table({{"append", true}})).existing == ExistingFile::append);
  auto replacing = parse(Value::table({{"overwrite", true}, {"mode", "0640"}}));
  CHECK(replacing.existing == ExistingFile::overwrite);
  CHECK(replacing.mode == 0640u);
  CHECK_THROWS_WITH_AS(parse(Value::table({{"append", true}, {"overwrite", true}})),
                       doctest::Contains("exclude each other"), ConfigError);
  CHECK_THROWS_WITH_AS(parse(Value::table({{"mode", "u=rw"}})), doctest::Contains("octal"), ConfigError);
}

TEST_CASE("replace_file: a new file renamed over the old, mode 0600, a planted link replaced, not followed") {
  TempDir dir;
  Umask mask(022);
  std::string path = dir.file("report.html");
  replace_file(path, "first");
  CHECK(read(path) == "first");
  CHECK(mode_of(path) == 0600u);
  replace_file(path, "second", 0640);
  CHECK(read(path) == "second");
  CHECK(mode_of(path) == 0640u);

  write(dir.file("victim"), "precious");
  fs::remove(path);
  fs::create_symlink(dir.file("victim"), path);
  replace_file(path, "report");
  CHECK(read(dir.file("victim")) == "precious");
  CHECK_FALSE(fs::is_symlink(path));
  CHECK(read(path) == "report");
  // Nothing is left behind: only the report and the victim.
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 2);

  CHECK_THROWS_WITH(replace_file(dir.file("no/such/dir/report.html"), "x"), doctest::Contains("no/such/dir"));
  fs::create_directory(dir.file("a-directory"));
  CHECK_THROWS_WITH(replace_file(dir.file("a-directory"), "x"), doctest::Contains("rename"));
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 3);
}

TEST_CASE("disk full, plain: only whole records stay, the counts say what is in the file, writing resumes") {
  TempDir dir;
  std::string path = dir.file("out.gor");
  auto file = gor::RecordWriter::open_file(path, OutputFilePolicy{}, false, 4096);
  std::size_t one = gor::record_size(record(0, 300));
  std::size_t sent = 0;
  {
    FileSizeLimit limit(10 * one + one / 2);  // room for 10.5 records
    std::size_t failures = 0;
    for (int i = 0; i < 100; ++i, ++sent) {
      try {
        file->write(record(i, 300));
      } catch (const std::system_error& e) {
        ++failures;
        CHECK(e.code().value() == EFBIG);
        CHECK(std::string(e.what()).find(path) != std::string::npos);
      }
    }
    try {
      file->flush(false);
    } catch (const std::system_error&) {
      ++failures;
    }
    CHECK(failures > 0);
    const auto& p = file->progress();
    CHECK(p.records_written == 10);
    CHECK(p.records_written + p.records_lost == sent);
    CHECK(p.bytes_written == 10 * one);
    CHECK(fs::file_size(path) == 10 * one);  // the 11th, partly written, was taken back
    bool clean = false;
    CHECK(count_records(path, clean) == 10);
    CHECK(clean);

    // Space returns: the next write goes through, after the last complete record.
    limit.lift();
    for (int i = 100; i < 120; ++i, ++sent) file->write(record(i, 300));
    file->close();
  }
  const auto& p = file->progress();
  CHECK(p.records_written == 30);
  CHECK(p.records_written + p.records_lost == sent);
  bool clean = false;
  CHECK(count_records(path, clean) == 30);
  CHECK(clean);
}

TEST_CASE("disk full, gzip: the file stays a valid gzip stream of whole members, counted by member") {
  TempDir dir;
  std::string path = dir.file("out.gor.gz");
  auto file = gor::RecordWriter::open_file(path, OutputFilePolicy{}, true, 16 << 10);
  std::size_t sent = 0;
  std::uint64_t written_before_full = 0;
  {
    // The first members fit; a later one is cut by the limit and must be taken back.
    FileSizeLimit limit(40 << 10);
    std::size_t failures = 0;
    for (int i = 0; i < 400; ++i, ++sent) {
      try {
        file->write(record(i, 500));
      } catch (const std::system_error&) {
        ++failures;
      }
    }
    try {
      file->flush(false);
    } catch (const std::system_error&) {
      ++failures;
    }
    CHECK(failures > 0);
    const auto& p = file->progress();
    written_before_full = p.records_written;
    CHECK(p.records_written > 0);
    CHECK(p.records_lost > 0);
    CHECK(p.records_written + p.records_lost == sent);
    CHECK(fs::file_size(path) <= (40 << 10));
    bool clean = false;
    CHECK(count_records(path, clean) == p.records_written);
    CHECK(clean);  // no cut member at the end
    if (std::system("command -v gzip >/dev/null") == 0) CHECK(std::system(("gzip -t '" + path + "'").c_str()) == 0);

    limit.lift();
    for (int i = 400; i < 450; ++i, ++sent) file->write(record(i, 500));
    file->close();
  }
  const auto& p = file->progress();
  CHECK(p.records_written == written_before_full + 50);
  CHECK(p.records_written + p.records_lost == sent);
  bool clean = false;
  CHECK(count_records(path, clean) == p.records_written);
  CHECK(clean);
  if (std::system("command -v gzip >/dev/null") == 0) CHECK(std::system(("gzip -t '" + path + "'").c_str()) == 0);
}

TEST_CASE("a record larger than the buffer that does not fit is taken back whole") {
  TempDir dir;
  std::string path = dir.file("big.gor");
  auto file = gor::RecordWriter::open_file(path, OutputFilePolicy{}, false, 4096);
  file->write(record(0, 100));
  file->flush(false);
  std::uint64_t before = fs::file_size(path);
  {
    FileSizeLimit limit(before + 50000);
    CHECK_THROWS_AS(file->write(record(1, 100000)), std::system_error);
    CHECK(fs::file_size(path) == before);
  }
  file->write(record(2, 100000));
  file->close();
  CHECK(file->progress().records_written == 2);
  CHECK(file->progress().records_lost == 1);
  bool clean = false;
  CHECK(count_records(path, clean) == 2);
  CHECK(clean);
}

TEST_CASE("an empty gzip file is still valid gzip") {
  TempDir dir;
  std::string path = dir.file("empty.gor.gz");
  gor::RecordWriter::open_file(path, OutputFilePolicy{}, true)->close();
  CHECK(fs::file_size(path) > 0);
  bool clean = false;
  CHECK(count_records(path, clean) == 0);
  CHECK(clean);
  if (std::system("command -v gzip >/dev/null") == 0) CHECK(std::system(("gzip -t '" + path + "'").c_str()) == 0);
}
