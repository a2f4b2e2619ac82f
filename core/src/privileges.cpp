#include "privileges.hpp"

#include <cap-ng.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <system_error>

namespace doppel::core {
namespace {

[[noreturn]] void fail(const std::string& what, int error) {
  throw std::system_error(error, std::generic_category(), "dropping privileges: " + what);
}

}  // namespace

std::optional<RunAs> lookup_user(const std::string& name, std::string& error) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(size > 0 ? static_cast<std::size_t>(size) : 16384);
  passwd entry{};
  passwd* found = nullptr;
  int rc = getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (found == nullptr && rc == 0) {
    // A numeric uid, as `chown` and systemd take it.
    uid_t uid = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), uid);
    if (ec == std::errc() && end == name.data() + name.size())
      rc = getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
  }
  if (found == nullptr) {
    error = rc != 0 ? "cannot look up user \"" + name + "\": " + std::generic_category().message(rc)
                    : "no user \"" + name + "\" on this machine";
    return std::nullopt;
  }
  RunAs user{found->pw_name, found->pw_uid, found->pw_gid, {}};
  int count = 32;
  for (int attempt = 0; attempt < 4; ++attempt) {
    user.groups.resize(static_cast<std::size_t>(count));
    int n = count;
    if (getgrouplist(found->pw_name, found->pw_gid, user.groups.data(), &n) >= 0) {
      user.groups.resize(static_cast<std::size_t>(n));
      return user;
    }
    count = n > count ? n : count * 4;
  }
  user.groups = {found->pw_gid};  // more groups than the attempts allowed: the primary one only
  return user;
}

std::string capability_summary() {
  std::ifstream in("/proc/thread-self/status");
  std::string line, out;
  while (std::getline(in, line))
    if (line.rfind("Cap", 0) == 0) out += (out.empty() ? "" : ", ") + line;
  return out;
}

void PrivilegeDrop::empty_bounding_set() {
  capng_clear(CAPNG_SELECT_BOUNDS);
  if (capng_apply(CAPNG_SELECT_BOUNDS) != 0) fail("clearing the capability bounding set", EPERM);
}

void PrivilegeDrop::begin(const RunAs& target) {
  // Groups first: once the uid is not root, they cannot change.
  if (setgroups(target.groups.size(), target.groups.data()) != 0) fail("setgroups", errno);
  if (setresgid(target.gid, target.gid, target.gid) != 0) fail("setresgid", errno);

  // The capabilities kept through the start: opening a capture (CAP_NET_RAW; CAP_NET_ADMIN for
  // interfaces that need their settings changed) and listening on a port below 1024.
  capng_clear(CAPNG_SELECT_BOTH);
  capng_updatev(CAPNG_ADD, static_cast<capng_type_t>(CAPNG_EFFECTIVE | CAPNG_PERMITTED), CAP_NET_RAW, CAP_NET_ADMIN,
                CAP_NET_BIND_SERVICE, -1);
  // Emptied again in case empty_bounding_set() was not called first, while CAP_SETPCAP is
  // still effective; it is inherited by the threads started from here and the programs they run.
  if (capng_apply(CAPNG_SELECT_BOUNDS) != 0) fail("clearing the capability bounding set", EPERM);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    fail("clearing the ambient capabilities", errno);
  // Real and effective uid now, saved uid root until finish(): the kernel empties the effective
  // set (euid 0 -> not 0) and keeps the permitted one (a saved uid is still 0).
  if (setresuid(target.uid, target.uid, 0) != 0) fail("setresuid", errno);
  target_ = target;
  if (capng_apply(CAPNG_SELECT_CAPS) != 0) fail("keeping the capture capabilities", EPERM);
}

void PrivilegeDrop::finish() {
  if (!target_ || finished_) return;
  finished_ = true;
  // Every id is now the user's: the kernel clears the permitted, effective and ambient sets of
  // each thread as glibc applies the call to it.
  if (setresuid(target_->uid, target_->uid, target_->uid) != 0) fail("setresuid", errno);
  uid_t r = 0, e = 0, s = 0;
  if (getresuid(&r, &e, &s) != 0 || r == 0 || e == 0 || s == 0) fail("root is still one of the uids", EPERM);
}

}  // namespace doppel::core
