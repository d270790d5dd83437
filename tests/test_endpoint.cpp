// The control plane's addresses: parsing "host:port" forms with errors that name the option, and the
// questions an agent asks before hosting the coordinator — can it bind the endpoint (in use when
// another socket listens there), and is a host this machine (without touching the endpoint's port);
// and a port held for rank 0's store, which nothing else may take but that listener.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "common/error.h"
#include "launcher/endpoint.h"

namespace pdsd {
namespace {

TEST(Endpoint, ParsesHostPortHostAloneAndIpv6) {
  Endpoint a = parse_endpoint("10.0.0.5:29400", 1, "--rdzv-endpoint");
  EXPECT_EQ(a.host, "10.0.0.5");
  EXPECT_EQ(a.port, 29400);
  Endpoint b = parse_endpoint("node-0", 29400, "--rdzv-endpoint");
  EXPECT_EQ(b.host, "node-0");
  EXPECT_EQ(b.port, 29400);
  Endpoint c = parse_endpoint("[::1]:1234", 1, "--rdzv-endpoint");
  EXPECT_EQ(c.host, "::1");
  EXPECT_EQ(c.port, 1234);
  EXPECT_EQ(c.str(), "[::1]:1234");
}

TEST(Endpoint, BadPortIsAnInputErrorNamingTheOption) {
  try {
    parse_endpoint("host:99999", 1, "--rdzv-endpoint");
    FAIL() << "port 99999 accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--rdzv-endpoint"), std::string::npos) << e.what();
  }
}

TEST(Endpoint, LoopbackIsLocalAndADocumentationAddressIsNot) {
  EXPECT_TRUE(is_local_host("127.0.0.1"));
  EXPECT_FALSE(is_local_host("192.0.2.1"));  // TEST-NET-1: never assigned to a real machine
  EXPECT_FALSE(is_local_host("no-such-host.invalid"));
}

TEST(Endpoint, APortSomeoneListensOnIsInUseAndAFreeOneIsBindable) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  EXPECT_EQ(probe_bind({"127.0.0.1", port}), BindProbe::in_use);
  EXPECT_TRUE(is_local_host("127.0.0.1"));  // asking about the host leaves the listener alone
  ::close(fd);
  EXPECT_EQ(probe_bind({"127.0.0.1", free_port("127.0.0.1")}), BindProbe::bindable);
  EXPECT_EQ(probe_bind({"192.0.2.1", 29400}), BindProbe::not_local);
}

// Binds 127.0.0.1:port, with SO_REUSEADDR when `reusable` (as c10d's TCPStore does), and listens;
// returns the errno of a failed bind or listen, 0 on success.
int bind_and_listen(int port, bool reusable) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (reusable) {
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int err = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1) != 0) err = errno;
  ::close(fd);
  return err;
}

TEST(ReservedPort, OnlyAReusingListenerMayTakeItWhileHeld) {
  std::optional<ReservedPort> held;
  held.emplace("127.0.0.1");
  const int port = held->port();
  ASSERT_GT(port, 0);
  // Anyone else (a plain bind, as the kernel's own port choice respects) finds it taken...
  EXPECT_EQ(bind_and_listen(port, /*reusable=*/false), EADDRINUSE);
  // ...but rank 0's store, which sets SO_REUSEADDR, binds and listens on it.
  EXPECT_EQ(bind_and_listen(port, /*reusable=*/true), 0);
  ReservedPort moved = std::move(*held);  // the hold travels with the object
  held.reset();
  EXPECT_EQ(moved.port(), port);
  EXPECT_EQ(bind_and_listen(port, /*reusable=*/false), EADDRINUSE);
  { ReservedPort gone = std::move(moved); }
  EXPECT_EQ(bind_and_listen(port, /*reusable=*/false), 0) << "let go when destroyed";
}

}  // namespace
}  // namespace pdsd
