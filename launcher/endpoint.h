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

// This machine's host name.
std::string host_name();

}  // namespace pdsd
