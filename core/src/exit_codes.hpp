#pragma once
// Exit codes of the doppel command, documented in `doppel --help` and docs/user-guide.md.
namespace doppel::core::exit_code {
inline constexpr int ok = 0;
inline constexpr int runtime_error = 1;
inline constexpr int usage = 2;
inline constexpr int goal_missed = 3;     // a fail_if goal was missed
inline constexpr int tests_failed = 4;    // doppel test: a test failed; doppel docs --check: stale
inline constexpr int messages_lost = 5;   // finished, but an output failed to deliver or a queue overflowed
inline constexpr int input_failed = 65;   // an input could not read its source (EX_DATAERR)
inline constexpr int config_invalid = 78; // like Vector (EX_CONFIG)
inline constexpr int interrupted = 130;   // a second SIGINT/SIGTERM
}  // namespace doppel::core::exit_code
