#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "doppel/gor_stream.hpp"
#include "doppel/message.hpp"

namespace doppel::plugins {

// How the records of several files are put in one sequence.
enum class FileOrder {
  timestamp,  // merged by record timestamp across files (GoReplay); each file keeps its own order
  name,       // one file after the other, in chunk order
};

// Reads a set of .gor files as one sequence of messages, reporting what it skips on the way.
// With FileOrder::timestamp a file is opened only once its first record is due, so a chunked
// capture (x_0, x_1, ...) keeps one file open at a time while captures from several hosts
// that overlap in time are interleaved.
class FileSetReader {
 public:
  struct Event {
    enum class Type {
      message,     // `message` holds the next record
      corrupt,     // a record was skipped: `detail` says why, `offset`/`size` where, `preview` what
      read_error,  // a file could not be opened or read to its end: `detail` is the error
      opened,      // a file was opened
    };
    Type type = Type::message;
    std::string path;
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
    std::string detail;
    std::string preview;  // the first bytes of a corrupt record, printable
    std::optional<Message> message;
  };

  FileSetReader(std::vector<std::string> files, FileOrder order);
  ~FileSetReader();

  // The next event; false once every file has been read.
  bool next(Event& out);

 private:
  struct Source;
  void open_due_files();
  void advance(Source& source);  // to its next message, queueing what it skips

  FileOrder order_;
  std::deque<std::pair<std::optional<std::int64_t>, std::string>> unopened_;  // (first timestamp, path)
  std::vector<std::unique_ptr<Source>> open_;
  std::deque<Event> events_;
};

}  // namespace doppel::plugins
