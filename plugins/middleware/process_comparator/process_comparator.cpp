#include "process_comparator.hpp"

#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>
#include <spdlog/spdlog.h>
#include <stdexcept>

#include "doppel/json_writer.hpp"
#include "doppel/units.hpp"

namespace doppel::plugins {
namespace {

constexpr std::size_t kReadChunk = 1 << 20;

// Set on the threads a process comparator owns. A judgement's verdict may be written on one
// of them, and writing it may start another judgement (escalation): such a thread must not
// wait for room in a program's window, since it may be the one that makes room.
thread_local bool t_comparator_thread = false;

// Where the helpers (doppel_compare.py, doppel-compare.js) are: share/doppel/helpers beside
// the executable's bin/ directory, in a build tree and in an installed package alike.
std::string helpers_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  auto dir = exe.parent_path().parent_path() / "share" / "doppel" / "helpers";
  return std::filesystem::is_directory(dir, ec) ? dir.string() : "";
}

std::string prepend_path(const std::string& dir, const char* variable) {
  const char* old = std::getenv(variable);
  return old && *old ? dir + ":" + old : dir;
}

}  // namespace

ProcessComparator::ProcessComparator(ProcessComparatorConfig config)
    : config_(std::move(config)), command_text_(command_text(config_.argv)) {}

ProcessComparator::~ProcessComparator() {
  if (context_) stop();
}

std::vector<std::pair<std::string, std::string>> ProcessComparator::environment() const {
  std::vector<std::pair<std::string, std::string>> env{{"DOPPEL_COMPARATOR", context_->comparator_name()}};
  std::string helpers = helpers_dir();
  if (!helpers.empty()) {
    env.emplace_back("DOPPEL_HELPERS", helpers);
    env.emplace_back("PYTHONPATH", prepend_path(helpers, "PYTHONPATH"));
    env.emplace_back("NODE_PATH", prepend_path(helpers, "NODE_PATH"));
  }
  return env;
}

ChildProcess ProcessComparator::spawn() const {
  try {
    return spawn_child(config_.argv, environment());
  } catch (const std::exception& e) {
    throw std::runtime_error("comparator `" + context_->comparator_name() + "`: cannot start `" + command_text_ +
                             "`: " + e.what());
  }
}

void ProcessComparator::start(ComparatorContext& context) {
  context_ = &context;
  judgements_ = &context.counter("judgements");
  answers_ = &context.counter("answers");
  timeouts_ = &context.counter("timeouts");
  restarts_ = &context.counter("restarts");
  owed_on_exit_ = &context.counter("owed_on_exit");
  garbage_lines_ = &context.counter("garbage_lines");
  bad_answers_ = &context.counter("bad_answers");
  unknown_ids_ = &context.counter("unknown_ids");
  bodies_spilled_ = &context.counter("bodies_spilled");
  encode_errors_ = &context.counter("encode_errors");

  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/doppel-compare-XXXXXX";
  if (!::mkdtemp(pattern.data()))
    throw std::runtime_error("comparator `" + context.comparator_name() + "`: cannot create a directory for large " +
                             "bodies (" + pattern + "): " + std::strerror(errno));
  spill_dir_ = pattern;

  for (std::size_t i = 0; i < config_.processes; ++i) {
    auto program = std::make_unique<Program>();
    program->index = i;
    try {
      program->child = spawn();
    } catch (...) {
      stop();
      throw;
    }
    program->alive = true;
    program->last_answer = std::chrono::steady_clock::now();
    context.log().info("comparator `{}`: started `{}` (pid {})", context.comparator_name(), command_text_,
                       program->child.pid);
    Program& p = *program;
    programs_.push_back(std::move(program));
    p.supervisor = std::thread([this, &p] { supervise(p); });
    p.writer = std::thread([this, &p] { write_lines(p); });
  }
  reaper_ = std::thread([this] { reap_timeouts(); });
}

void ProcessComparator::compare_async(const Exchange& exchange, std::function<void(Judgement)> done) const {
  if (!context_ || stopping_) {
    done({{}, "the comparator is not running"});
    return;
  }
  Program& p = *programs_[next_program_.fetch_add(1, std::memory_order_relaxed) % programs_.size()];
  std::uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
  BodyEncoding encoding{p.base64.load(), p.json.load()};
  std::string line;
  std::vector<std::string> spilled;
  try {
    append_judgement(line, {id, context_->comparator_name(), &exchange, encoding, config_.body_limit, spill_dir_},
                     spilled);
  } catch (const std::exception& e) {
    encode_errors_->add();
    for (const auto& f : spilled) ::unlink(f.c_str());
    done({{}, e.what()});
    return;
  }
  if (!spilled.empty()) bodies_spilled_->add(spilled.size());
  std::unique_lock lock(p.mutex);
  if (!t_comparator_thread)
    p.changed.wait(lock, [&] { return p.in_flight.size() < config_.concurrency || stopping_; });
  if (stopping_ || (!p.alive && !p.down.empty())) {
    std::string why = stopping_ ? "doppel is stopping" : p.down;
    lock.unlock();
    for (const auto& f : spilled) ::unlink(f.c_str());
    done({{}, why});
    return;
  }
  // Until it is written, a judgement may also wait for the program to be started again.
  auto deadline = std::chrono::steady_clock::now() + config_.timeout + config_.backoff_max;
  p.in_flight.emplace(id, Pending{std::move(done), deadline, std::move(spilled)});
  p.outbox += line;
  p.outbox_ids.push_back(id);
  judgements_->add();
  lock.unlock();
  p.changed.notify_all();
}

std::vector<Difference> ProcessComparator::compare(const Exchange& exchange) const {
  std::promise<Judgement> promise;
  auto answer = promise.get_future();
  compare_async(exchange, [&promise](Judgement j) { promise.set_value(std::move(j)); });
  Judgement j = answer.get();
  if (!j.error.empty()) throw std::runtime_error(j.error);
  return std::move(j.differences);
}

void ProcessComparator::write_lines(Program& p) {
  t_comparator_thread = true;
  std::string batch;
  std::vector<std::uint64_t> ids;
  for (;;) {
    int fd = -1;
    {
      std::unique_lock lock(p.mutex);
      p.changed.wait(lock, [&] { return (p.alive && !p.outbox.empty()) || stopping_; });
      if (stopping_) return;
      batch.clear();
      batch.swap(p.outbox);
      ids.clear();
      ids.swap(p.outbox_ids);
      // The timeout counts from here: waiting for a program to be started again is not its delay.
      auto deadline = std::chrono::steady_clock::now() + config_.timeout;
      for (auto id : ids) {
        if (auto it = p.in_flight.find(id); it != p.in_flight.end()) {
          it->second.sent = true;
          it->second.deadline = deadline;
        }
      }
      fd = p.child.stdin_fd;
    }
    // Several judgements per write: the program reads them in one go and answers in one go.
    std::lock_guard write_lock(p.write_mutex);
    send_all(fd, batch);  // when the program is gone, the supervisor answers what it owed
  }
}

void ProcessComparator::supervise(Program& p) {
  t_comparator_thread = true;
  const std::string& name = context_->comparator_name();
  auto backoff = config_.backoff;
  for (;;) {
    ChildProcess child;
    {
      std::lock_guard lock(p.mutex);
      child = p.child;
    }
    auto started = std::chrono::steady_clock::now();
    std::thread stderr_reader([this, fd = child.stderr_fd, pid = child.pid, &name] {
      read_lines(fd, [&](std::string_view line) { context_->log().info("[{} {}] {}", name, pid, line); });
    });
    read_answers(p, child.stdout_fd);  // until the program closes its stdout (usually: exits)
    int status = wait_child(child.pid);
    stderr_reader.join();
    ::close(child.stdout_fd);
    ::close(child.stderr_fd);
    std::size_t owed;
    {
      std::lock_guard write_lock(p.write_mutex);
      std::lock_guard lock(p.mutex);
      ::close(p.child.stdin_fd);
      p.child.stdin_fd = -1;
      p.alive = false;
      owed = static_cast<std::size_t>(
          std::count_if(p.in_flight.begin(), p.in_flight.end(), [](const auto& e) { return e.second.sent; }));
    }
    if (stopping_) {
      context_->log().info("comparator `{}`: `{}` (pid {}) {}", name, command_text_, child.pid, describe_exit(status));
      break;
    }
    std::string ended = "`" + command_text_ + "` (pid " + std::to_string(child.pid) + ") " + describe_exit(status);
    owed_on_exit_->add(owed);  // counted before the errors are handed out: whoever gets one sees it
    fail_all(p, ended + " before answering", true);
    if (std::chrono::steady_clock::now() - started > std::chrono::seconds(10)) backoff = config_.backoff;
    context_->log().warn("comparator `{}`: {}; {} judgement(s) it owed are errors; restarting in {}", name, ended,
                         owed, format_duration(backoff));
    if (!restart(p, backoff)) break;
  }
  std::lock_guard lock(p.mutex);
  p.supervisor_done = true;
  p.changed.notify_all();
}

bool ProcessComparator::restart(Program& p, std::chrono::nanoseconds& backoff) {
  for (;;) {
    {
      std::unique_lock lock(p.mutex);
      if (p.changed.wait_for(lock, backoff, [&] { return stopping_.load(); })) return false;
    }
    backoff = std::min(backoff * 2, config_.backoff_max);
    try {
      ChildProcess next = spawn();
      {
        std::lock_guard lock(p.mutex);
        p.child = next;
        p.alive = true;
        p.down.clear();
        p.last_answer = std::chrono::steady_clock::now();
      }
      p.changed.notify_all();
      restarts_->add();
      context_->log().info("comparator `{}`: restarted `{}` (pid {})", context_->comparator_name(), command_text_,
                           next.pid);
      return true;
    } catch (const std::exception& e) {
      {
        std::lock_guard lock(p.mutex);
        p.down = e.what();
      }
      p.changed.notify_all();
      fail_all(p, e.what());
      context_->log().error("{}; trying again in {}", e.what(), format_duration(backoff));
    }
  }
}

void ProcessComparator::read_answers(Program& p, int fd) {
  LineSplitter lines(config_.max_line);
  std::vector<char> chunk(kReadChunk);
  for (;;) {
    ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    lines.feed(
        std::string_view(chunk.data(), static_cast<std::size_t>(n)), [&](std::string_view line) { handle_line(p, line); },
        [&] {
          garbage_lines_->add();
          context_->log().warn("comparator `{}`: the program wrote a line longer than max_line ({} bytes); skipped",
                               context_->comparator_name(), config_.max_line);
        });
  }
  if (!lines.rest().empty()) handle_line(p, lines.rest());
}

void ProcessComparator::handle_line(Program& p, std::string_view text) {
  ProgramLine line = parse_program_line(text);
  const std::string& name = context_->comparator_name();
  auto logged = [&] {
    // The first ten, then one in a thousand: a program printing garbage must not flood the log.
    std::uint64_t n = garbage_logged_.fetch_add(1);
    return n < 10 || n % 1000 == 0;
  };
  switch (line.type) {
    case ProgramLine::Type::hello:
      p.base64 = line.encoding.base64;
      p.json = line.encoding.json;
      context_->log().debug("comparator `{}`: program {} asks for bodies as {}{}", name, p.index,
                            line.encoding.base64 ? "base64" : "text", line.encoding.json ? " and parsed JSON" : "");
      return;
    case ProgramLine::Type::garbage:
      garbage_lines_->add();
      if (logged())
        context_->log().warn("comparator `{}`: the program wrote a line that is not an answer ({}): {}", name,
                             line.problem, truncate_for_display(text, 200));
      return;
    case ProgramLine::Type::answer: break;
  }
  Pending pending;
  {
    std::lock_guard lock(p.mutex);
    p.last_answer = std::chrono::steady_clock::now();
    auto it = p.in_flight.find(line.id);
    if (it == p.in_flight.end()) {
      unknown_ids_->add();
      if (logged())
        context_->log().warn("comparator `{}`: an answer for id {}, which is not waiting for one (never asked, "
                             "already answered, or timed out)",
                             name, line.id);
      return;
    }
    pending = std::move(it->second);
    p.in_flight.erase(it);
  }
  p.changed.notify_all();
  answers_->add();
  if (!line.problem.empty()) {
    bad_answers_->add();
    if (logged()) context_->log().warn("comparator `{}`: answer for id {}: {}", name, line.id, line.problem);
  }
  finish(pending, std::move(line.judgement));
}

void ProcessComparator::finish(Pending& pending, Judgement judgement) const {
  for (const auto& f : pending.spilled) ::unlink(f.c_str());
  try {
    pending.done(std::move(judgement));
  } catch (const std::exception& e) {
    context_->log().error("comparator `{}`: handing over a judgement failed: {}", context_->comparator_name(), e.what());
  }
}

void ProcessComparator::fail_all(Program& p, const std::string& why, bool only_sent) {
  std::vector<Pending> owed;
  {
    std::lock_guard lock(p.mutex);
    for (auto it = p.in_flight.begin(); it != p.in_flight.end();) {
      if (only_sent && !it->second.sent) {
        ++it;
        continue;
      }
      owed.push_back(std::move(it->second));
      it = p.in_flight.erase(it);
    }
    if (!only_sent) {
      p.outbox.clear();
      p.outbox_ids.clear();
    }
  }
  p.changed.notify_all();
  for (auto& pending : owed) finish(pending, {{}, why});
}

void ProcessComparator::reap_timeouts() {
  t_comparator_thread = true;
  auto period = std::clamp<std::chrono::nanoseconds>(config_.timeout / 20, std::chrono::milliseconds(10),
                                                      std::chrono::milliseconds(200));
  std::string why = "no answer within " + format_duration(config_.timeout);
  for (;;) {
    {
      std::unique_lock lock(reaper_mutex_);
      if (reaper_wake_.wait_for(lock, period, [&] { return stopping_.load(); })) return;
    }
    auto now = std::chrono::steady_clock::now();
    for (auto& program : programs_) {
      Program& p = *program;
      std::vector<Pending> expired;
      {
        std::lock_guard lock(p.mutex);
        for (auto it = p.in_flight.begin(); it != p.in_flight.end();) {
          if (it->second.deadline > now) {
            ++it;
            continue;
          }
          expired.push_back(std::move(it->second));
          it = p.in_flight.erase(it);
        }
        // Owing answers past the timeout and silent all that time: it hangs. Killing it makes
        // the supervisor answer the rest and start it again.
        if (!expired.empty() && p.alive && now - p.last_answer > config_.timeout) {
          context_->log().warn("comparator `{}`: `{}` (pid {}) answered nothing for {}; killing it", 
                               context_->comparator_name(), command_text_, p.child.pid, format_duration(config_.timeout));
          ::kill(p.child.pid, SIGKILL);
          p.alive = false;  // what comes now waits for the next one
          p.last_answer = now;
        }
      }
      if (expired.empty()) continue;
      p.changed.notify_all();
      timeouts_->add(expired.size());
      for (auto& pending : expired) finish(pending, {{}, why});
    }
  }
}

void ProcessComparator::stop() {
  if (!context_) return;
  stopping_ = true;
  {
    // Taken once so that the reaper, between testing stopping_ and waiting, cannot miss the wake.
    std::lock_guard lock(reaper_mutex_);
  }
  reaper_wake_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  for (auto& program : programs_) {
    Program& p = *program;
    {
      // End of input: a program that reads to its end exits by itself.
      std::lock_guard lock(p.mutex);
      if (p.child.stdin_fd >= 0) ::shutdown(p.child.stdin_fd, SHUT_WR);
    }
    p.changed.notify_all();
    if (p.writer.joinable()) p.writer.join();
  }
  for (auto& program : programs_) {
    Program& p = *program;
    std::unique_lock lock(p.mutex);
    if (!p.changed.wait_for(lock, std::chrono::seconds(2), [&] { return p.supervisor_done; }) && p.alive) {
      ::kill(p.child.pid, SIGTERM);
      if (!p.changed.wait_for(lock, std::chrono::seconds(2), [&] { return p.supervisor_done; }) && p.alive)
        ::kill(p.child.pid, SIGKILL);
    }
    lock.unlock();
    if (p.supervisor.joinable()) p.supervisor.join();
    fail_all(p, "doppel stopped before the program answered");
  }
  programs_.clear();
  if (!spill_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(spill_dir_, ec);
    spill_dir_.clear();
  }
  context_ = nullptr;
}

}  // namespace doppel::plugins
