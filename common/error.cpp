#include "common/error.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace pdsd::detail {

namespace {
// Paths relative to the source tree read better in logs than absolute build paths.
std::string short_path(const char* file) {
  return std::filesystem::path(file).filename().string();
}
}  // namespace

void throw_check_failure(const char* file, int line, const char* expr, const std::string& msg) {
  throw Error(str(msg.empty() ? std::string("check failed") : msg, " [", expr, " at ", short_path(file), ":",
                  line, "]"));
}

void throw_syscall_failure(const char* file, int line, const char* expr, int err) {
  throw Error(str(expr, " failed: ", std::strerror(err), " (errno ", err, ") [", short_path(file), ":", line, "]"));
}

}  // namespace pdsd::detail
