#include "doppel/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace doppel {

std::vector<std::string> split_command(std::vector<std::string> command) {
  if (command.size() != 1) return command;
  std::istringstream words(command[0]);
  std::vector<std::string> argv;
  std::string word;
  while (words >> word) argv.push_back(word);
  return argv;
}

std::string command_text(const std::vector<std::string>& argv) {
  std::string text;
  for (const auto& arg : argv) text += (text.empty() ? "" : " ") + arg;
  return text;
}

namespace {
bool executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}
}  // namespace

std::string program_problem(const std::string& program) {
  if (program.empty()) return "no program named";
  if (program.find('/') != std::string::npos) {
    if (executable_file(program)) return "";
    if (::access(program.c_str(), F_OK) != 0) return "\"" + program + "\" does not exist";
    return "\"" + program + "\" is not an executable file";
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  for (;;) {
    std::size_t end = dirs.find(':', start);
    std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (executable_file((dir.empty() ? "." : dir) + "/" + program)) return "";
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return "\"" + program + "\" is not found on PATH";
}

ChildProcess spawn_child(const std::vector<std::string>& argv,
                         const std::vector<std::pair<std::string, std::string>>& environment) {
  if (argv.empty()) throw std::runtime_error("no program to start");
  int in[2], out[2], err[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0)
    throw std::runtime_error(std::string("socketpair: ") + std::strerror(errno));
  // Room for many messages in flight: the program reads them in large batches (the kernel caps
  // this at net.core.wmem_max; a smaller buffer only means smaller batches).
  int buffer = 1 << 20;
  ::setsockopt(in[0], SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  if (::pipe2(out, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(in[0]);
    ::close(in[1]);
    throw std::runtime_error(std::string("pipe: ") + std::strerror(e));
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
    throw std::runtime_error(std::string("pipe: ") + std::strerror(e));
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[1], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // doppel's environment with `environment` in place of what it names.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    bool replaced = false;
    for (const auto& [name, value] : environment)
      replaced = replaced || (entry.size() > name.size() && entry.substr(0, name.size()) == name &&
                              entry[name.size()] == '=');
    if (!replaced) env_strings.emplace_back(entry);
  }
  for (const auto& [name, value] : environment) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(in[1]);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(in[0]);
    ::close(out[0]);
    ::close(err[0]);
    throw std::runtime_error("cannot start `" + command_text(argv) + "`: " + std::strerror(rc));
  }
  return ChildProcess{pid, in[0], out[0], err[0]};
}

int wait_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "stopped";
}

bool send_all(int fd, std::string_view bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

void read_lines(int fd, const std::function<void(std::string_view)>& line) {
  constexpr std::size_t kPiece = 64 * 1024;
  std::string buffer;
  char chunk[4096];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buffer.append(chunk, static_cast<std::size_t>(n));
    std::size_t begin = 0, nl;
    while ((nl = buffer.find('\n', begin)) != std::string::npos) {
      line(std::string_view(buffer).substr(begin, nl - begin));
      begin = nl + 1;
    }
    buffer.erase(0, begin);
    if (buffer.size() > kPiece) {
      line(buffer);
      buffer.clear();
    }
  }
  if (!buffer.empty()) line(buffer);
}

}  // namespace doppel
