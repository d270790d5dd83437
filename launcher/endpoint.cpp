#include "launcher/endpoint.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "common/error.h"

namespace pdsd {

std::string Endpoint::str() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Endpoint parse_endpoint(const std::string& text, int default_port, const std::string& origin) {
  Endpoint e;
  std::string port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos) throw InputError(pdsd::str(origin, " '", text, "': unclosed '['"));
    e.host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') throw InputError(pdsd::str(origin, " '", text, "' must be [addr]:port"));
      port_text = text.substr(close + 2);
    }
  } else {
    auto colon = text.rfind(':');
    e.host = text.substr(0, colon);
    if (colon != std::string::npos) port_text = text.substr(colon + 1);
  }
  e.port = default_port;
  if (!port_text.empty() || text.find(':') != std::string::npos) {
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), e.port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || e.port < 1 || e.port > 65535) {
      throw InputError(pdsd::str(origin, " '", text, "' must be host:port with a port in 1..65535"));
    }
  }
  if (e.host.empty()) throw InputError(pdsd::str(origin, " '", text, "' has no host"));
  return e;
}

BindProbe probe_bind(const Endpoint& endpoint) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(endpoint.host.c_str(), std::to_string(endpoint.port).c_str(), &hints, &found) != 0) {
    return BindProbe::not_local;
  }
  BindProbe result = BindProbe::not_local;
  for (addrinfo* a = found; a != nullptr && result == BindProbe::not_local; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as gRPC binds: TIME_WAIT is no conflict
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 1) == 0) result = BindProbe::bindable;
    else if (errno == EADDRINUSE) result = BindProbe::in_use;
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return result;
}

bool is_local_host(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), "0", &hints, &found) != 0) return false;
  bool local = false;
  for (addrinfo* a = found; a != nullptr && !local; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    local = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0;
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return local;
}

namespace {

// A TCP socket bound to a port the kernel picks on `host` (loopback for 127.0.0.1 / localhost, else
// every address); SO_REUSEADDR when `reusable`. Returns the fd; the port goes to *port.
int bind_any_port(const std::string& host, bool reusable, int* port) {
  int fd = PDSD_SYSCALL(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int on = 1;
  if (reusable && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(pdsd::str("cannot set SO_REUSEADDR on a socket for a port on ", host, ": ", std::strerror(err)));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (host != "127.0.0.1" && host != "localhost") addr.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw Error(pdsd::str("cannot find a free port on ", host));
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

int free_port(const std::string& host) {
  int port = 0;
  ::close(bind_any_port(host, /*reusable=*/false, &port));
  return port;
}

ReservedPort::ReservedPort(const std::string& host) { fd_ = bind_any_port(host, /*reusable=*/true, &port_); }

ReservedPort::~ReservedPort() {
  if (fd_ >= 0) ::close(fd_);
}

ReservedPort::ReservedPort(ReservedPort&& other) noexcept : fd_(std::exchange(other.fd_, -1)), port_(other.port_) {}

ReservedPort& ReservedPort::operator=(ReservedPort&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    port_ = other.port_;
  }
  return *this;
}

std::string host_name() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

}  // namespace pdsd
