#pragma once
// Least privilege for `doppel run` started as root (docs/operations.md "Privileges").
//
// Capture needs CAP_NET_RAW (and CAP_NET_ADMIN for some interfaces) only while a capture
// handle is opened; everything else doppel does needs no privilege at all. So, started as root:
//   1. before any stage starts, the process takes the identity of [pipeline] user (its groups,
//      its gid, its uid as real and effective ids) and keeps, in the starting thread, only the
//      capabilities that opening a capture or a low port needs; the root saved uid is what lets
//      it keep them across the change. Every file a stage opens is opened as that user.
//   2. once every stage has started, the saved uid goes too: the kernel then clears every
//      capability of every thread (glibc applies set*id calls to all threads), and nothing can
//      bring root back.
// The bounding set is emptied in step 1, so no program doppel starts (middleware, a check
// written in Python) can gain a capability from a file either.
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace doppel::core {

// A user doppel can run as, from the user database.
struct RunAs {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, the primary one included
};

// `name` looked up in the user database (a name or a numeric uid); nullopt with `error` set
// when there is no such user.
std::optional<RunAs> lookup_user(const std::string& name, std::string& error);

// The capability sets of the calling thread as /proc/self/task/TID/status shows them
// ("CapEff: 0000000000000000" ...), for logs and tests.
std::string capability_summary();

class PrivilegeDrop {
 public:
  // Whether a process with effective uid `euid` drops to `target`: only root does, and only to
  // a user that is not root itself.
  static bool applies(uid_t euid, const RunAs& target) { return euid == 0 && target.uid != 0; }

  // Empties the calling thread's capability bounding set (root keeps what it has; only what an
  // executed program could gain is limited). The set is per thread and inherited: call it
  // before the process starts any thread, so that every thread has it empty.
  static void empty_bounding_set();
  // Step 1. Call from the thread that then starts the stages, before it starts them. Throws
  // std::system_error naming the call that failed (the process is then left as it was only
  // if the failure came before the uid change).
  void begin(const RunAs& target);
  // Step 2. After every stage started; nothing when begin() was not called.
  void finish();
  // Whether begin() changed the identity, so that a failure to open a file can say as whom.
  bool active() const { return target_.has_value(); }
  const RunAs* target() const { return target_ ? &*target_ : nullptr; }

 private:
  std::optional<RunAs> target_;
  bool finished_ = false;
};

}  // namespace doppel::core
