#include "common/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <memory>
#include <vector>

namespace pdsd::log {

namespace {

std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = std::make_shared<spdlog::logger>("pdsd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
    return l;
  }();
  return instance;
}

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::debug: return spdlog::level::debug;
    case Level::info: return spdlog::level::info;
    case Level::warn: return spdlog::level::warn;
    case Level::error: return spdlog::level::err;
    case Level::off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

}  // namespace

Level parse_level(std::string_view text, std::string_view origin) {
  if (text == "debug") return Level::debug;
  if (text == "info") return Level::info;
  if (text == "warn" || text == "warning") return Level::warn;
  if (text == "error") return Level::error;
  if (text == "off") return Level::off;
  throw InputError(str(origin, ": log level '", text, "' is not one of debug, info, warn, error, off"));
}

std::optional<Level> level_from_env() {
  const char* value = std::getenv("PDSD_LOG_LEVEL");
  if (value == nullptr || *value == '\0') return std::nullopt;
  return parse_level(value, "PDSD_LOG_LEVEL");
}

void init(const Options& options) {
  std::vector<spdlog::sink_ptr> sinks{std::make_shared<spdlog::sinks::stderr_sink_mt>()};
  if (!options.file.empty()) sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file));
  auto l = std::make_shared<spdlog::logger>("pdsd", sinks.begin(), sinks.end());
  std::string prefix = options.prefix.empty() ? "" : "[" + options.prefix + "] ";
  l->set_pattern("[%Y-%m-%d %H:%M:%S.%e] " + prefix + "[%l] %v");
  l->set_level(to_spdlog(options.level));
  l->flush_on(spdlog::level::info);
  logger() = l;
}

bool enabled(Level level) { return logger()->should_log(to_spdlog(level)); }

void write(Level level, std::string_view message) { logger()->log(to_spdlog(level), "{}", message); }

}  // namespace pdsd::log
