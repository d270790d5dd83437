// The project's error convention (docs/errors-and-logging.md).
//
// Library code throws pdsd::Error (or a subclass) with a message that names what was wrong and where:
// the file, record, key or tensor. Binaries catch at main(), log once, and exit non-zero. gRPC
// handlers turn errors into grpc::Status at the RPC boundary. Nothing calls exit() or abort().
//
//   PDSD_CHECK(n > 0, "cutoff_len must be positive, got ", n);      // throws Error with file:line
//   int fd = PDSD_SYSCALL(::open(path.c_str(), O_RDONLY));          // -1 → Error with errno text
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace pdsd {

// Concatenates any streamable values: str("rank ", r, " of ", n).
template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad user input (config, data, model files): the message alone tells the user what to fix, so
// binaries print it without a stack of context and exit with code 2.
class InputError : public Error {
 public:
  using Error::Error;
};

namespace detail {
[[noreturn]] void throw_check_failure(const char* file, int line, const char* expr, const std::string& msg);
[[noreturn]] void throw_syscall_failure(const char* file, int line, const char* expr, int err);
}  // namespace detail

}  // namespace pdsd

#define PDSD_CHECK(cond, ...)                                                                    \
  do {                                                                                           \
    if (!(cond)) ::pdsd::detail::throw_check_failure(__FILE__, __LINE__, #cond,                  \
                                                     ::pdsd::str(__VA_ARGS__));                  \
  } while (0)

// Evaluates a POSIX call that returns -1 and sets errno on failure; yields its result otherwise.
#define PDSD_SYSCALL(expr)                                                                       \
  ([&]() {                                                                                       \
    auto pdsd_rc_ = (expr);                                                                      \
    if (pdsd_rc_ == -1) ::pdsd::detail::throw_syscall_failure(__FILE__, __LINE__, #expr, errno); \
    return pdsd_rc_;                                                                             \
  }())
