#include "file_input.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <ostream>
#include <stdexcept>

#include "doppel/units.hpp"

namespace doppel::plugins {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::nanoseconds;

// At most this many skipped records are logged one by one per run; the rest are only counted.
constexpr std::uint64_t kSkippedLogLimit = 20;
constexpr std::size_t kBatch = 256;  // records per emit_batch at max speed

std::string utc_time(std::int64_t ns) {
  std::time_t seconds = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string megabytes(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

std::string speed_text(const ReplayTiming& t) {
  if (t.max_speed) return "max speed";
  if (t.fixed_rate) return format_rate(Rate{Rate::Unit::per_second, *t.fixed_rate});
  return format_rate(Rate{Rate::Unit::percent, t.speed_factor * 100});
}

}  // namespace

void FileInput::start(StageContext& context) {
  Stage::start(context);
  lag_ms_ = &context.gauge("lag_ms");
  out_of_order_ = &context.counter("out_of_order");
  read_errors_ = &context.counter("read_errors");
  files_read_ = &context.counter("files_read");
  progress_read_ = &context.gauge("progress.bytes_read");
  progress_total_ = &context.gauge("progress.bytes_total");
}

bool FileInput::wait_until(Clock::time_point until, std::stop_token& stop) {
  std::unique_lock lock(wait_mutex_);
  // The stop token wakes the wait at once; the runtime's stopping() flag is polled every 100 ms
  // in case shutdown is signalled only through the context.
  while (!stopping(stop)) {
    auto now = Clock::now();
    if (now >= until) return true;
    wakeup_.wait_until(lock, stop, std::min(until, now + std::chrono::milliseconds(100)), [] { return false; });
  }
  return false;
}

void FileInput::skip_record(const FileSetReader::Event& event, std::string_view reason) {
  context().drop(reason);
  if (skipped_logged_++ < kSkippedLogLimit) {
    context().log().warn("{}: skipped the record at byte offset {} ({} bytes), {}: \"{}\"", event.path, event.offset,
                         event.size, event.detail, event.preview);
    if (skipped_logged_ == kSkippedLogLimit)
      context().log().warn("further skipped records are counted as dropped.corrupt_record or "
                           "dropped.record_too_large, not logged");
  }
}

FileInput::Outcome FileInput::read_files(std::stop_token& stop, ReplaySchedule& schedule, Clock::time_point& due,
                                         std::uint64_t& emitted) {
  // The glob is expanded again at each pass: files may have come or gone since validation.
  std::vector<std::string> files = gor::expand_glob(config_.pattern);  // throws for an unreadable directory
  if (files.empty()) throw std::runtime_error("no file matches \"" + config_.pattern + "\" any more");
  std::size_t file_count = files.size();
  FileSetReader reader(std::move(files), config_.order, config_.max_payload_size);
  FileSetReader::Event event;
  // At max speed, records go downstream in batches (one queue hand-off per batch); timed
  // replay emits each when it is due.
  std::vector<MessagePtr> batch;
  auto emit_batch = [&] {
    std::size_t n = batch.size();
    return n == 0 || context().emit_batch(batch) == n;
  };
  bool any_readable = false;  // a file opened, or found empty
  // A looping replay has no end to be a percentage of.
  progress_total_->set(config_.loop ? 0 : static_cast<std::int64_t>(reader.progress().total));
  auto publish_progress = [&] { progress_read_->set(static_cast<std::int64_t>(reader.progress().read)); };
  publish_progress();
  std::uint64_t events = 0;
  while (!stopping(stop) && reader.next(event)) {
    // At full speed every 64 events (a gzip file's position costs a system call); a timed
    // replay is slow enough for every one.
    if (!config_.timing.max_speed || ++events % 64 == 0) publish_progress();
    switch (event.type) {
      case FileSetReader::Event::Type::opened:
        files_read_->add();
        any_readable = true;
        continue;
      case FileSetReader::Event::Type::empty:
        // GoReplay writes an empty file when it captured nothing: a recording of no traffic.
        any_readable = true;
        context().log().warn("no records in {}: the file is empty", event.path);
        continue;
      case FileSetReader::Event::Type::unreadable:
        read_errors_->add();
        context().drop("unreadable_file");
        context().log().error("file skipped: {}", event.detail);
        continue;
      case FileSetReader::Event::Type::corrupt:
        skip_record(event, "corrupt_record");
        continue;
      case FileSetReader::Event::Type::too_large:
        skip_record(event, "record_too_large");
        continue;
      case FileSetReader::Event::Type::truncated:
        read_errors_->add();
        context().drop("truncated_input");
        if (event.size > 0)
          context().log().warn("{}: cut short at byte offset {} ({}); the incomplete record there ({} bytes: \"{}\") "
                               "is dropped, the records before it were read",
                               event.path, event.offset, event.detail, event.size, event.preview);
        else
          context().log().warn("{}: cut short at byte offset {} ({}); the records before it were read", event.path,
                               event.offset, event.detail);
        continue;
      case FileSetReader::Event::Type::damaged:
        read_errors_->add();
        context().drop("corrupt_input");
        context().log().warn("{}: the gzip data after byte offset {} cannot be decompressed ({}); the rest of "
                             "the file is skipped, the records before it were read",
                             event.path, event.offset, event.detail);
        continue;
      case FileSetReader::Event::Type::read_error:
        read_errors_->add();
        emit_batch();  // what was read before goes on
        throw std::runtime_error(event.path + ": read error at byte offset " + std::to_string(event.offset) + ": " +
                                 event.detail);
      case FileSetReader::Event::Type::message:
        break;
    }
    Message& message = *event.message;
    if (!config_.kinds.contains(message.kind)) {
      context().drop("kind_not_selected");
      continue;
    }
    if (message.kind == Kind::request) {
      std::uint64_t disorder_before = schedule.out_of_order();
      // The clock starts at the first request: probing and opening files does not eat into its gap.
      if (due == Clock::time_point{}) due = Clock::now();
      due += schedule.gap_before(message.timestamp_ns);
      if (schedule.out_of_order() != disorder_before) out_of_order_->add();
      if (!config_.timing.max_speed) {
        if (Clock::now() < due && !wait_until(due, stop)) return Outcome::stopped;
        auto lag = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - due);
        lag_ms_->set(std::max<std::int64_t>(0, lag.count()));
      }
    }
    ++emitted;
    if (config_.timing.max_speed) {
      batch.push_back(share(std::move(message)));
      if (batch.size() >= kBatch && !emit_batch()) return Outcome::stopped;
      continue;
    }
    if (!context().emit(share(std::move(message)))) return Outcome::stopped;  // shutting down
  }
  publish_progress();
  if (!emit_batch()) return Outcome::stopped;
  if (stopping(stop)) return Outcome::stopped;
  if (!any_readable)
    throw std::runtime_error(file_count == 1 ? "the file matching \"" + config_.pattern + "\" could not be read"
                                             : "none of the " + std::to_string(file_count) + " files matching \"" +
                                                   config_.pattern + "\" could be read");
  return Outcome::finished;
}

void FileInput::run(std::stop_token stop) {
  ReplaySchedule schedule(config_.timing);
  Clock::time_point due{};  // set by the first request
  for (std::uint64_t pass = 1;; ++pass) {
    std::uint64_t emitted = 0;
    if (read_files(stop, schedule, due, emitted) == Outcome::stopped) break;
    if (!config_.loop) break;
    if (emitted == 0) {
      // Looping over files that yield nothing would spin forever.
      context().log().error("loop: pass {} over \"{}\" emitted no message; stopping", pass, config_.pattern);
      break;
    }
    schedule.restart();
    due = std::max(due, Clock::now());
  }
  lag_ms_->set(0);
}

bool FileInput::dry_run(std::ostream& out) {
  std::vector<std::string> files;
  try {
    files = gor::expand_glob(config_.pattern);
  } catch (const std::exception& e) {
    out << "file input: " << e.what() << "\n";
    return true;
  }
  ReplaySchedule schedule(config_.timing);
  std::uint64_t per_kind[8] = {};
  std::uint64_t records = 0, bytes = 0, corrupt = 0, unselected = 0;
  std::int64_t first_request = 0, last_request = 0;
  bool any_request = false;
  nanoseconds total{0}, max_gap{0}, min_gap{nanoseconds::max()}, first_gap{0};
  std::uint64_t gaps = 0;
  std::vector<std::string> problems;

  std::uint64_t skipped_files = 0, empty_files = 0;
  FileSetReader reader(files, config_.order, config_.max_payload_size);
  FileSetReader::Event event;
  auto problem = [&](const std::string& what) {
    problems.push_back(event.path + " at byte offset " + std::to_string(event.offset) + ": " + what);
  };
  while (reader.next(event)) {
    switch (event.type) {
      case FileSetReader::Event::Type::opened:
        continue;
      case FileSetReader::Event::Type::empty:
        ++empty_files;
        continue;
      case FileSetReader::Event::Type::unreadable:
        ++skipped_files;
        problems.push_back("file skipped: " + event.detail);
        continue;
      case FileSetReader::Event::Type::corrupt:
      case FileSetReader::Event::Type::too_large:
        ++corrupt;
        problem(event.detail + ", " + std::to_string(event.size) + " bytes");
        continue;
      case FileSetReader::Event::Type::truncated:
        ++corrupt;
        problem("cut short: " + event.detail);
        continue;
      case FileSetReader::Event::Type::damaged:
        problem("the rest cannot be decompressed: " + event.detail);
        continue;
      case FileSetReader::Event::Type::read_error:
        problem("read error: " + event.detail);
        continue;
      case FileSetReader::Event::Type::message:
        break;
    }
    const Message& message = *event.message;
    if (!config_.kinds.contains(message.kind)) {
      ++unselected;
      continue;
    }
    ++records;
    ++per_kind[static_cast<int>(message.kind) & 7];
    bytes += message.payload.size();
    if (message.kind != Kind::request) continue;
    bool first = !any_request;
    if (first) {
      first_request = last_request = message.timestamp_ns;
      any_request = true;
    }
    first_request = std::min(first_request, message.timestamp_ns);
    last_request = std::max(last_request, message.timestamp_ns);
    nanoseconds gap = schedule.gap_before(message.timestamp_ns);
    if (first) continue;
    if (gaps == 0) first_gap = gap;
    ++gaps;
    total += gap;
    max_gap = std::max(max_gap, gap);
    min_gap = std::min(min_gap, gap);
  }

  out << "file input \"" << config_.pattern << "\": " << files.size() << (files.size() == 1 ? " file" : " files")
      << (files.size() > 1 ? (config_.order == FileOrder::timestamp ? ", merged by timestamp" : ", one after another")
                           : "")
      << "\n";
  out << "  records: " << records << " (" << per_kind[1] << " requests, " << per_kind[2] << " responses, "
      << per_kind[3] << " replays";
  if (per_kind[4] > 0) out << ", " << per_kind[4] << " verdicts";
  out << "), payloads " << megabytes(bytes) << "\n";
  if (unselected > 0) out << "  not selected by `kinds`: " << unselected << "\n";
  if (empty_files > 0) out << "  empty files (no records): " << empty_files << "\n";
  if (skipped_files > 0) out << "  files skipped (unreadable, or not .gor files): " << skipped_files << "\n";
  out << "  records skipped (corrupt, too large or cut off): " << corrupt << "\n";
  for (std::size_t i = 0; i < problems.size() && i < 10; ++i) out << "    " << problems[i] << "\n";
  if (problems.size() > 10) out << "    ... " << problems.size() - 10 << " more\n";
  if (any_request) {
    out << "  requests recorded over " << format_duration(nanoseconds(last_request - first_request)) << " ("
        << utc_time(first_request) << " .. " << utc_time(last_request) << ")\n";
    if (gaps > 0)
      out << "  gaps at this speed: first " << format_duration(first_gap) << ", min " << format_duration(min_gap)
          << ", max " << format_duration(max_gap) << "\n";
  }
  out << "  out-of-order requests (no wait): " << schedule.out_of_order() << "\n";
  if (schedule.capped() > 0)
    out << "  waits capped by max_wait " << format_duration(config_.timing.max_wait) << ": " << schedule.capped()
        << "\n";
  out << "  expected duration at " << speed_text(config_.timing) << ": " << format_duration(total)
      << (config_.timing.max_speed ? " of waiting (as fast as the pipeline goes)" : "")
      << (config_.loop ? " per pass (loop = true: repeats until stopped)" : "") << "\n";
  return true;
}

}  // namespace doppel::plugins
