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
// that overlap in time are interleaved. Each file's first bytes are probed before it is read
// (only its first header line: gor::probe_file), so a file that is not a .gor file is skipped
// whole instead of being read as one long corrupt record.
class FileSetReader {
 public:
  struct Event {
    enum class Type {
      message,     // `message` holds the next record
      opened,      // a file was opened
      empty,       // a file holds no record at all; it is not opened
      unreadable,  // a file was skipped whole: it cannot be opened or is not a .gor file (`detail`)
      corrupt,     // a record without a valid header was skipped: `offset`/`size` where, `preview` what
      too_large,   // a record whose payload is over the bound was skipped, unread
      truncated,   // the file ends inside a record, or its gzip stream is cut off: the rest is missing
      damaged,     // gzip data that cannot be decompressed: the rest of the file is lost (`detail`)
      read_error,  // an I/O error while reading (`detail`): the file cannot be trusted any further
    };
    Type type = Type::message;
    std::string path;
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
    std::string detail;
    std::string preview;  // the first bytes of a skipped record, printable
    std::optional<Message> message;
  };

  // Records whose payload is larger than `max_payload_size` are skipped (Event::too_large).
  FileSetReader(std::vector<std::string> files, FileOrder order,
                std::size_t max_payload_size = gor::kDefaultMaxPayloadSize);
  ~FileSetReader();

  // The next event; false once every file has been read.
  bool next(Event& out);

  // How far through its files the reader is, in bytes of the files (compressed bytes for a
  // gzip file): those done or skipped whole, plus what was read of the open ones. `total` is
  // the sum of the files' sizes; 0 when one of them has no size (a pipe).
  struct Progress {
    std::uint64_t read = 0;
    std::uint64_t total = 0;
  };
  Progress progress() const;

 private:
  struct Source;
  struct Pending {
    std::string path;
    std::uint64_t size = 0;  // of the file when the reader was made
    std::optional<gor::FileProbe> probe;  // once probed
    std::string probe_error;              // why probing failed (the file cannot be opened)
  };
  void probe(Pending& file);
  void open_due_files();
  void advance(Source& source);  // to its next message, queueing what it skips

  FileOrder order_;
  std::size_t max_payload_size_;
  std::deque<Pending> unopened_;
  std::vector<std::unique_ptr<Source>> open_;
  std::deque<Event> events_;
  std::uint64_t done_bytes_ = 0;   // of the files finished or skipped whole
  std::uint64_t total_bytes_ = 0;  // 0: unknown
};

}  // namespace doppel::plugins
