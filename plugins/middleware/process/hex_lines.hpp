#pragma once
// GoReplay's middleware wire format: one line per message, the hex of the .gor record
// ("TYPE ID TIMESTAMP LATENCY\n" + payload), lowercase, ended by '\n'.
#include <optional>
#include <string>
#include <string_view>

#include "doppel/message.hpp"

namespace doppel::plugins {

// Appends the hex line of `message` (newline included) to `out`.
void append_hex_line(std::string& out, const Message& message);
// Decodes one line (without its newline; a trailing '\r' is ignored). nullopt when it is not
// hex or not a valid record; `error` says which.
std::optional<Message> decode_hex_line(std::string_view line, std::string& error);

}  // namespace doppel::plugins
