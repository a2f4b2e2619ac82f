#include "file_set_reader.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>

namespace doppel::plugins {
namespace {

std::string preview(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes.substr(0, 40)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (bytes.size() > 40) out += "...";
  return out;
}

}  // namespace

struct FileSetReader::Source {
  std::string path;
  std::uint64_t size = 0;
  std::unique_ptr<gor::RecordReader> reader;
  std::optional<Message> head;  // the next message; empty once the file is done
};

FileSetReader::FileSetReader(std::vector<std::string> files, FileOrder order, std::size_t max_payload_size)
    : order_(order), max_payload_size_(max_payload_size) {
  bool sizes_known = true;
  for (auto& path : files) {
    struct stat st {};
    bool regular = ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    sizes_known = sizes_known && regular;
    std::uint64_t size = regular ? static_cast<std::uint64_t>(st.st_size) : 0;
    total_bytes_ += size;
    unopened_.push_back({std::move(path), size, std::nullopt, {}});
    // Merging needs each file's first timestamp now; read one after another, a file is probed
    // when its turn comes.
    if (order_ == FileOrder::timestamp) probe(unopened_.back());
  }
  if (!sizes_known) total_bytes_ = 0;
  // Stable: equal first timestamps keep chunk order. A file without one (empty, not a .gor file,
  // unreadable) goes first, so that what is wrong with it is reported at once.
  auto first = [](const Pending& p) {
    return p.probe && p.probe->first ? p.probe->first->timestamp_ns : INT64_MIN;
  };
  if (order_ == FileOrder::timestamp)
    std::stable_sort(unopened_.begin(), unopened_.end(),
                     [&](const Pending& a, const Pending& b) { return first(a) < first(b); });
}

FileSetReader::~FileSetReader() = default;

FileSetReader::Progress FileSetReader::progress() const {
  Progress p{done_bytes_, total_bytes_};
  for (const auto& source : open_)
    // A file still open whose reader is done waits only for its last record to be taken.
    p.read += source->reader ? std::min(source->reader->file_position(), source->size) : source->size;
  return p;
}

void FileSetReader::probe(Pending& file) {
  struct stat st {};
  if (::stat(file.path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    // A pipe (/dev/stdin, a named pipe): its first bytes can be read only once, by the reader.
    file.probe = gor::FileProbe{gor::FileProbe::Verdict::records, false, std::nullopt, {}};
    return;
  }
  try {
    file.probe = gor::probe_file(file.path);
  } catch (const std::exception& e) {
    file.probe_error = e.what();
  }
}

void FileSetReader::advance(Source& source) {
  source.head.reset();
  if (!source.reader) return;
  gor::RecordReader::Record record;
  using Status = gor::RecordReader::Status;
  for (;;) {
    auto status = source.reader->next(record);
    switch (status) {
      case Status::record:
        if (auto message = gor::parse_record(record.bytes)) {
          source.head.emplace(std::move(*message));
          return;
        }
        events_.push_back({Event::Type::corrupt, source.path, record.offset, record.size,
                           "corrupt (no valid \"TYPE ID TIMESTAMP [LATENCY]\" header)", preview(record.bytes), {}});
        continue;
      case Status::too_large:
        events_.push_back({Event::Type::too_large, source.path, record.offset, record.size,
                           "too large (its payload is over max_record_size; not read into memory)",
                           preview(record.bytes), {}});
        continue;
      case Status::truncated:
        events_.push_back({Event::Type::truncated, source.path, record.offset, record.size,
                           source.reader->error().empty() ? "the file ends before the record separator"
                                                          : source.reader->error() + ": the gzip stream is cut off",
                           preview(record.bytes), {}});
        break;
      case Status::damaged:
        events_.push_back({Event::Type::damaged, source.path, record.offset + record.size, record.size,
                           source.reader->error(), preview(record.bytes), {}});
        break;
      case Status::error:
        events_.push_back({Event::Type::read_error, source.path, record.offset + record.size, 0,
                           source.reader->error(), {}, {}});
        break;
      case Status::end:
        break;
    }
    source.reader.reset();  // done: release the buffer and the descriptor now
    return;
  }
}

void FileSetReader::open_due_files() {
  for (;;) {
    if (unopened_.empty()) return;
    Pending& next = unopened_.front();
    if (order_ == FileOrder::name) {
      if (!open_.empty()) return;
      probe(next);
    } else if (!open_.empty() && next.probe && next.probe->first) {
      // Open the next file once its first record is not later than every open file's next one.
      std::int64_t earliest = INT64_MAX;
      for (const auto& source : open_) earliest = std::min(earliest, source->head->timestamp_ns);
      if (next.probe->first->timestamp_ns > earliest) return;
    }
    Pending file = std::move(next);
    unopened_.pop_front();
    if (!file.probe) {
      done_bytes_ += file.size;
      events_.push_back({Event::Type::unreadable, file.path, 0, 0, file.probe_error, {}, {}});
      continue;
    }
    if (file.probe->verdict == gor::FileProbe::Verdict::not_gor) {
      done_bytes_ += file.size;
      events_.push_back({Event::Type::unreadable, file.path, 0, 0, file.probe->problem, {}, {}});
      continue;
    }
    if (file.probe->verdict == gor::FileProbe::Verdict::empty) {
      done_bytes_ += file.size;
      events_.push_back({Event::Type::empty, file.path, 0, 0, {}, {}, {}});
      continue;
    }
    auto source = std::make_unique<Source>();
    source->path = std::move(file.path);
    source->size = file.size;
    try {
      source->reader = std::make_unique<gor::RecordReader>(source->path, 1 << 20, max_payload_size_);
      events_.push_back({Event::Type::opened, source->path, 0, 0, {}, {}, {}});
    } catch (const std::exception& e) {
      events_.push_back({Event::Type::unreadable, source->path, 0, 0, e.what(), {}, {}});
    }
    advance(*source);
    if (source->head) open_.push_back(std::move(source));
    else done_bytes_ += source->size;
  }
}

bool FileSetReader::next(Event& out) {
  for (;;) {
    if (events_.empty()) open_due_files();
    if (!events_.empty()) {
      out.type = events_.front().type;
      out.path = std::move(events_.front().path);
      out.offset = events_.front().offset;
      out.size = events_.front().size;
      out.detail = std::move(events_.front().detail);
      out.preview = std::move(events_.front().preview);
      out.message.reset();
      events_.pop_front();
      return true;
    }
    if (open_.empty()) return false;  // open_due_files opened everything left
    // The open file whose next record is earliest; ties go to the file opened first.
    std::size_t best = 0;
    for (std::size_t i = 1; i < open_.size(); ++i)
      if (open_[i]->head->timestamp_ns < open_[best]->head->timestamp_ns) best = i;
    Source& source = *open_[best];
    out.type = Event::Type::message;
    out.path = source.path;
    out.message.emplace(std::move(*source.head));
    advance(source);
    if (!source.head) {
      done_bytes_ += source.size;
      open_.erase(open_.begin() + static_cast<std::ptrdiff_t>(best));
    }
    return true;
  }
}

}  // namespace doppel::plugins
