// host:port addresses of the control plane, and the questions the agent asks about them before it
// decides whether it hosts the coordinator: can this machine bind that address, and which port is free.
#pragma once

#include <string>

namespace pdsd {

struct Endpoint {
  std::string host;
  int port = 0;
  std::string str() const;  // "host:port", "[::1]:port" for IPv6 literals
};

// "host:port", "host" (then `default_port`), "[v6addr]:port". Throws InputError naming `origin`.
Endpoint parse_endpoint(const std::string& text, int default_port, const std::string& origin);

enum class BindProbe { bindable, in_use, not_local };
// Tries to bind host:port on this machine (and lets go at once): the coordinator is hosted by the
// agent that can bind the rendezvous address; another agent on the same host finds it in use.
BindProbe probe_bind(const Endpoint& endpoint);

// Whether `host` names an address of this machine, found by binding a socket to it on port 0 (which
// never competes with anyone for the endpoint's port, unlike probe_bind).
bool is_local_host(const std::string& host);

// A TCP port the kernel considers free on `host` right now (as torchrun picks MASTER_PORT).
int free_port(const std::string& host = "127.0.0.1");

// A free TCP port held for a listener that comes later (rank 0's c10d store, MASTER_PORT): a socket
// stays bound to it with SO_REUSEADDR, never listening, until this is destroyed. The kernel then gives
// the port to no one else (no port-0 bind, no outgoing connection's source port), while a listener
// that also sets SO_REUSEADDR, as c10d's TCPStore does, still binds it. A port merely found free can
// be taken in the seconds before the worker binds it: seen as EADDRINUSE in rank 0's store on a host
// running several jobs.
class ReservedPort {
 public:
  explicit ReservedPort(const std::string& host = "127.0.0.1");
  ~ReservedPort();
  ReservedPort(ReservedPort&& other) noexcept;
  ReservedPort& operator=(ReservedPort&& other) noexcept;
  ReservedPort(const ReservedPort&) = delete;
  ReservedPort& operator=(const ReservedPort&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// This machine's host name.
std::string host_name();

}  // namespace pdsd
