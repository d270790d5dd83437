// Logging: one line per event, "[time] [rank N] [level] message", to stderr and optionally a file.
//
// The interface takes plain strings (compose with pdsd::str) so that it pulls no third-party header
// into translation units that include libtorch (see cmake/Dependencies.cmake). The rank prefix is
// set once per process; the launcher's own lines carry "[agent N]" instead.
//
//   pdsd::log::init({.prefix = "rank 3", .level = pdsd::log::Level::info});
//   pdsd::log::info("loaded ", n, " tensors from ", path);
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace pdsd::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

struct Options {
  std::string prefix;              // e.g. "rank 3"; empty for none
  Level level = Level::info;
  std::string file;                // also append to this file when not empty
};

// Parses "debug|info|warn|warning|error|off"; throws InputError naming `origin` otherwise.
Level parse_level(std::string_view text, std::string_view origin);

// The level from PDSD_LOG_LEVEL, if set.
std::optional<Level> level_from_env();

void init(const Options& options);
bool enabled(Level level);
void write(Level level, std::string_view message);

template <class... A> void debug(const A&... a) { if (enabled(Level::debug)) write(Level::debug, str(a...)); }
template <class... A> void info(const A&... a) { if (enabled(Level::info)) write(Level::info, str(a...)); }
template <class... A> void warn(const A&... a) { if (enabled(Level::warn)) write(Level::warn, str(a...)); }
template <class... A> void error(const A&... a) { if (enabled(Level::error)) write(Level::error, str(a...)); }

}  // namespace pdsd::log
