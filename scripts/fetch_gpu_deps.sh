#!/usr/bin/env bash
# shellcheck disable=SC2016  # '$ORIGIN', '${pcfiledir}', '${CMAKE_CURRENT_LIST_DIR}' are meant literally
# Builds .gpu-deps/: the C++ dependencies that the lent GPU machine lacks, as a relocatable prefix
# that travels there as a carried (git-ignored) path. See docs/gpu-deps.md.
#
#   scripts/fetch_gpu_deps.sh            # on the Debian 12 dev machine: download, unpack, relocate
#   scripts/fetch_gpu_deps.sh --verify   # build + run a tiny gRPC/prometheus program against a
#                                        # *moved* copy of the tree (works offline, e.g. on the GPU
#                                        # machine, since it needs only .gpu-deps/ and a compiler)
#
# Why Debian 12's packages: the GPU machine (Ubuntu 24.04) has no network, but it does have
# Ubuntu's protobuf 3.21.12 (libprotobuf.so.32 / libprotoc.so.32), the same upstream release that
# Debian 12's gRPC 1.51 was built against, and a newer glibc (2.39 >= 2.36) and libstdc++, so
# Debian's binaries load there unchanged. Only what Ubuntu lacks is carried; protobuf, OpenSSL,
# zlib and curl always come from the GPU machine itself.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${PDSD_GPU_DEPS_DIR:-$repo/.gpu-deps}   # what gets carried; keep it git-ignored
root=$dest/root                              # dpkg-deb -x target; the CMake prefix is $root/usr
arch_dir=usr/lib/x86_64-linux-gnu
# .debs are cached outside .gpu-deps so that carrying .gpu-deps carries no archives.
deb_cache=${PDSD_GPU_DEBS_CACHE:-${TMPDIR:-/tmp}/pdsd-gpu-debs}
max_mib=50
say() { printf '[gpu-deps] %s\n' "$*"; }
die() { printf '[gpu-deps] ERROR: %s\n' "$*" >&2; exit 1; }

# Package set. Runtime + -dev of each library the GPU machine lacks, nothing it already has.
pkgs=(
  # gRPC 1.51: headers, CMake config, shared libs, and grpc_cpp_plugin (protobuf-compiler-grpc).
  libgrpc++-dev libgrpc-dev libgrpc++1.51 libgrpc29 protobuf-compiler-grpc
  # gRPC's own dependencies that Ubuntu 24.04 lacks or ships with another soname
  # (Ubuntu has libre2.so.10, Debian's gRPC needs libre2.so.9). absl's headers are included by
  # gRPC's public headers, so libabsl-dev is needed at compile time, not just the runtime.
  libabsl-dev libabsl20220623 libre2-dev libre2-9 libc-ares-dev libc-ares2
  # prometheus-cpp 1.0.1 and civetweb (pull = HTTP exposer). `civetweb` holds only bin/civetweb,
  # but civetweb-targets.cmake checks that every imported file exists, so it must be there.
  prometheus-cpp-dev libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprometheus-cpp-push1.0
  libcivetweb-dev libcivetweb1 civetweb
  # Header-only, with CMake configs.
  nlohmann-json3-dev libcli11-dev
  # SentencePiece (no CMake config in Debian: found by find_library/find_path or pkg-config).
  libsentencepiece-dev libsentencepiece0
  # gloo's headers only, for worker/dist/gloo_process_group.cpp (docs/design/cpu-collectives.md);
  # its libgloo.so link and CMake config are removed in step 3: libtorch has its own gloo.
  libgloo-dev
  # PCRE2 for the tokenizer's pre-tokenizer regexes: headers, pkg-config file and the libraries
  # its .so links point at (the GPU machine has only the 8-bit runtime).
  libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
)

# ------------------------------------------------------------------------------------------------
# --verify: prove the tree is relocatable and usable. It copies the tree to another path (so any
# path baked in at unpack time would break), configures a one-TU CMake project with
# CMAKE_PREFIX_PATH pointing only at the copy, asserts that every imported target resolves inside
# the copy, generates code with the copy's grpc_cpp_plugin, builds with one job, and runs a gRPC
# server + client, a prometheus exposer, nlohmann-json and CLI11.
#   CMAKE=...                         cmake binary to use (default: cmake on PATH)
#   PDSD_GPU_DEPS_SIMULATE_NO_DEV=1   pretend zlib/OpenSSL/curl dev files are absent, to exercise
#                                     the fallbacks the GPU machine may need
verify() {
  local moved=${PDSD_GPU_DEPS_MOVED:-/tmp/moved-deps} chk=${PDSD_GPU_DEPS_CHECK_DIR:-/tmp/gpudeps-check}
  local cmake_bin=${CMAKE:-cmake}
  [ -d "$root/usr" ] || die "no tree at $root: run $0 first"
  say "verify: copying $root -> $moved"
  rm -rf "$moved" "$chk"
  cp -a "$root" "$moved"
  mkdir -p "$chk"
  cat >"$chk/check.proto" <<'EOF'
syntax = "proto3";
package gpudeps;
message Ping { string text = 1; }
service Echo { rpc Say(Ping) returns (Ping); }
EOF
  cat >"$chk/main.cpp" <<'EOF'
// One translation unit on purpose: the generated sources are #included, to keep the compile small.
#include "check.pb.cc"
#include "check.grpc.pb.cc"
#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <chrono>
#include <iostream>

class EchoImpl final : public gpudeps::Echo::Service {
  grpc::Status Say(grpc::ServerContext*, const gpudeps::Ping* in, gpudeps::Ping* out) override {
    out->set_text("echo:" + in->text());
    return grpc::Status::OK;
  }
};

int main(int argc, char** argv) {
  CLI::App app{"gpudeps-check"};
  std::string msg = "hello";
  app.add_option("--msg", msg);
  CLI11_PARSE(app, argc, argv);

  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("gpudeps_checks_total").Help("checks").Register(*registry).Add({}).Increment();
  prometheus::Exposer exposer{"127.0.0.1:0"};
  exposer.RegisterCollectable(registry);
  auto metrics_ports = exposer.GetListeningPorts();

  EchoImpl svc;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&svc);
  auto server = builder.BuildAndStart();
  if (!server || port == 0) { std::cerr << "gRPC server did not start\n"; return 1; }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);  // a proxy variable in the environment must not matter
  auto stub = gpudeps::Echo::NewStub(grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(), args));
  gpudeps::Ping req, resp;
  req.set_text(msg);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status st = stub->Say(&ctx, req, &resp);
  server->Shutdown();

  nlohmann::json j = {{"grpc_version", grpc::Version()}, {"grpc_ok", st.ok()}, {"reply", resp.text()},
                      {"metrics_port", metrics_ports.empty() ? 0 : metrics_ports[0]}};
  std::cout << j.dump() << std::endl;
  return st.ok() && resp.text() == "echo:" + msg && !metrics_ports.empty() ? 0 : 1;
}
EOF
  cat >"$chk/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(gpudeps_check LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 20)  # as the project
# The same find calls, in the same order, as cmake/Dependencies.cmake.
find_package(Threads REQUIRED)
find_package(Protobuf 3.21 REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_program(PDSD_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(nlohmann_json 3.11 REQUIRED)
find_package(CLI11 REQUIRED)

# Relocation proof: everything that comes from the carried tree must resolve inside the moved copy.
set(bad 0)
function(expect_inside what path)
  string(FIND "${path}" "${EXPECT_PREFIX}/" pos)
  if(NOT pos EQUAL 0)
    message(SEND_ERROR "${what} = '${path}' is not inside ${EXPECT_PREFIX}")
  else()
    message(STATUS "ok  ${what} = ${path}")
  endif()
endfunction()
foreach(v gRPC_DIR absl_DIR re2_DIR c-ares_DIR prometheus-cpp_DIR civetweb_DIR nlohmann_json_DIR CLI11_DIR
          PDSD_GRPC_CPP_PLUGIN)
  expect_inside(${v} "${${v}}")
endforeach()
foreach(t gRPC::grpc++ gRPC::grpc gRPC::gpr gRPC::upb gRPC::address_sorting gRPC::grpc_cpp_plugin
          absl::base absl::strings absl::synchronization absl::status re2::re2 c-ares::cares
          prometheus-cpp::core prometheus-cpp::pull prometheus-cpp::push civetweb::civetweb)
  get_target_property(loc ${t} IMPORTED_LOCATION_NONE)
  if(NOT loc)
    get_target_property(loc ${t} IMPORTED_LOCATION)
  endif()
  expect_inside("${t} location" "${loc}")
endforeach()
foreach(t gRPC::grpc++ absl::base re2::re2 c-ares::cares prometheus-cpp::core civetweb::civetweb
          nlohmann_json::nlohmann_json CLI11::CLI11)
  get_target_property(inc ${t} INTERFACE_INCLUDE_DIRECTORIES)
  foreach(d IN LISTS inc)
    expect_inside("${t} include" "${d}")
  endforeach()
endforeach()
foreach(t ZLIB::ZLIB OpenSSL::SSL OpenSSL::Crypto)
  get_target_property(loc ${t} IMPORTED_LOCATION)
  message(STATUS "sys ${t} = ${loc}")
endforeach()
message(STATUS "sys protobuf ${Protobuf_VERSION}: ${Protobuf_LIBRARY} / ${Protobuf_PROTOC_EXECUTABLE}")

set(gen ${CMAKE_CURRENT_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${gen})
set(outs ${gen}/check.pb.cc ${gen}/check.pb.h ${gen}/check.grpc.pb.cc ${gen}/check.grpc.pb.h)
add_custom_command(OUTPUT ${outs}
  COMMAND protobuf::protoc --proto_path=${CMAKE_CURRENT_SOURCE_DIR} --cpp_out=${gen} --grpc_out=${gen}
          --plugin=protoc-gen-grpc=${PDSD_GRPC_CPP_PLUGIN} ${CMAKE_CURRENT_SOURCE_DIR}/check.proto
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/check.proto)
add_custom_target(gen_check DEPENDS ${outs})
add_executable(gpudeps_check main.cpp)
add_dependencies(gpudeps_check gen_check)
target_include_directories(gpudeps_check PRIVATE ${gen})
target_compile_options(gpudeps_check PRIVATE -w)
target_link_libraries(gpudeps_check PRIVATE gRPC::grpc++ protobuf::libprotobuf prometheus-cpp::pull
                      nlohmann_json::nlohmann_json CLI11::CLI11)
EOF
  local extra=()
  if [ "${PDSD_GPU_DEPS_SIMULATE_NO_DEV:-0}" = 1 ]; then
    extra=(-DCMAKE_DISABLE_FIND_PACKAGE_ZLIB=ON -DCMAKE_DISABLE_FIND_PACKAGE_OpenSSL=ON
           -DCMAKE_DISABLE_FIND_PACKAGE_CURL=ON)
  fi
  # LD_LIBRARY_PATH is unset on purpose: the plugin (run by protoc during the build) and the
  # program must find the carried libraries through their RUNPATHs alone.
  say "verify: configure ($("$cmake_bin" --version | head -1))"
  env -u LD_LIBRARY_PATH "$cmake_bin" -S "$chk" -B "$chk/build" -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_PREFIX_PATH=$moved/usr" "-DEXPECT_PREFIX=$moved" "${extra[@]}"
  say "verify: build (-j1)"
  env -u LD_LIBRARY_PATH "$cmake_bin" --build "$chk/build" -j1
  # The compiler's dependency file shows which headers were used: gRPC/absl ones from the copy.
  local depf
  depf=$(find "$chk/build" -name 'main.cpp.o.d' | head -1)
  if [ -n "$depf" ]; then
    grep -q "$moved/usr/include/grpcpp/" "$depf" || die "grpcpp headers were not taken from $moved"
    grep -q "$moved/usr/include/absl/" "$depf" || die "absl headers were not taken from $moved"
    if grep -Eq '(^| )/usr/include/(grpcpp|grpc|absl|prometheus|nlohmann|CLI)/' "$depf"; then
      die "some gRPC/absl/prometheus/json/CLI11 headers came from /usr/include, not from $moved"
    fi
    say "verify: headers come from $moved (checked $depf)"
  fi
  # Every carried library the program loads must resolve inside the copy, without LD_LIBRARY_PATH.
  local exe=$chk/build/gpudeps_check
  local libs='libgrpc|libgpr|libupb|libaddress_sorting|libabsl|libre2|libcares|libcivetweb|libprometheus'
  local ld_out
  ld_out=$(env -u LD_LIBRARY_PATH ldd "$exe")
  echo "$ld_out" | grep -E "$libs" | grep -v "=> $moved/" && die "libraries above resolve outside $moved"
  say "verify: $(echo "$ld_out" | grep -cE "$libs") carried libraries resolve inside $moved (RUNPATH, no LD_LIBRARY_PATH)"
  env -u LD_LIBRARY_PATH ldd "$moved/usr/bin/grpc_cpp_plugin" | grep -E "$libs" | grep -v "=> $moved/" \
    && die "grpc_cpp_plugin's libraries resolve outside $moved"
  say "verify: run without LD_LIBRARY_PATH"
  env -u LD_LIBRARY_PATH "$exe" --msg relocated
  say "verify: run with LD_LIBRARY_PATH=$moved/$arch_dir"
  LD_LIBRARY_PATH="$moved/$arch_dir" "$exe" --msg relocated
  say "verify: OK"
}

if [ "${1:-}" = --verify ]; then verify; exit 0; fi
[ $# -eq 0 ] || die "usage: $0 [--verify]"

# ------------------------------------------------------------------------------------------------
# 1. Download. `apt-get download` puts .debs in the current directory without installing them, so
# the dev machine's own system is left alone.
. /etc/os-release
[ "${ID:-}:${VERSION_ID:-}" = debian:12 ] || say "warning: expected Debian 12, this is ${PRETTY_NAME:-unknown}"
[ "$(dpkg --print-architecture)" = amd64 ] || die "the GPU machine is x86-64: run this on amd64"
mkdir -p "$deb_cache"
apt_opts=()
# As root, apt drops to the _apt user for downloads and warns when it cannot write here.
[ "$(id -u)" = 0 ] && apt_opts+=(-o APT::Sandbox::User=root)
fetch() { (cd "$deb_cache" && apt-get "${apt_opts[@]}" -q download "$@"); }
rm -f "$deb_cache"/*.deb  # no stale versions next to the new ones
# patchelf is only a tool for step 4: it is unpacked to a temp dir, never installed or carried.
if ! fetch "${pkgs[@]}" patchelf; then
  say "apt-get download failed; refreshing the package lists (apt-get update) and retrying"
  apt-get -q update
  fetch "${pkgs[@]}" patchelf
fi

# 2. Unpack into a fresh tree.
rm -rf "$root"
mkdir -p "$root"
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
manifest=()
for p in "${pkgs[@]}"; do
  deb=$(ls "$deb_cache/${p}"_*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || die "no .deb for $p in $deb_cache"
  dpkg-deb -x "$deb" "$root"
  manifest+=("$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)")
done
dpkg-deb -x "$(ls "$deb_cache"/patchelf_*.deb | head -1)" "$tools"
patchelf=$tools/usr/bin/patchelf

# Compatibility guard: the carried gRPC must be 1.51 against protobuf's soname 32 (3.21.x), which
# is what Ubuntu 24.04's libprotobuf32t64 / libprotoc32t64 3.21.12 provide on the GPU machine.
dep=$(dpkg-deb -f "$(ls "$deb_cache"/libgrpc++1.51_*.deb)" Depends)
[[ $dep == *"libprotobuf32 (>= 3.21"* ]] || die "libgrpc++1.51 no longer depends on libprotobuf32 3.21: $dep"

# 3. Prune what neither a build nor a run needs. Static archives go (every one has a shared
# sibling, and CMake's imported targets name the .so files); docs go except the copyright files,
# which hold the licences. absl's headers all stay: gRPC's public headers include many of them.
find "$root/usr/share/doc" -type f ! -name copyright -delete
find "$root/usr/share/doc" -type l -delete
rm -rf "$root/usr/share/man" "$root/usr/share/lintian" "$root/usr/share/doc-base"
while IFS= read -r a; do
  if [ -e "${a%.a}.so" ]; then rm -f "$a"; else say "keeping $a (no shared sibling)"; fi
done < <(find "$root" -name '*.a')
# libgloo-dev is carried for its headers alone: drop its libgloo.so link (to libgloo0, not carried)
# and its CMake config (which would link it), so nothing can link a second gloo next to libtorch's.
rm -f "$root"/usr/lib/libgloo.so*
rm -rf "$root/usr/share/cmake/Gloo"
find "$root" -depth -type d -empty -delete

# 4. Make the tree relocatable.
# 4a. Symlinks: dpkg-deb -x keeps them (libfoo.so -> libfoo.so.N -> libfoo.so.N.M). A relative
# one keeps working wherever the tree goes; an absolute one would point back into the system, so
# rewrite any such link relative to the tree, then require that every link resolves inside it.
while IFS= read -r l; do
  t=$(readlink "$l")
  if [[ $t == /* ]]; then
    ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$root$t")" "$l"
  fi
  [ -e "$l" ] || die "dangling symlink $l -> $(readlink "$l")"
done < <(find "$root" -type l)

# 4b. CMake configs. Debian's exported configs already compute everything from their own location
# (_IMPORT_PREFIX / PACKAGE_PREFIX_DIR = the config dir, 3-4 levels up), so the tree works from
# any path with CMAKE_PREFIX_PATH=<tree>/usr and no path rewriting is needed. The only literal
# /usr paths are CMake's "/usr move" guard (`if(_realCurr STREQUAL _realOrig)`), which is taken
# only when the config really lives at /usr/lib/...; anything else is a baked-in path: fail.
cm=$root/$arch_dir/cmake
stray=$(grep -rn '/usr' "$cm" "$root/usr/share/cmake" --include='*.cmake' \
        | grep -vE ':[0-9]+:[[:space:]]*#|_realOrig "/usr/|PACKAGE_PREFIX_DIR "/usr"\)|_IMPORT_PREFIX "/usr/' \
        || true)
[ -z "$stray" ] || die "absolute paths in CMake configs:"$'\n'"$stray"

# 4c. re2 and c-ares have no CMake config in Debian 12. gRPC's Findre2 then falls back to
# pkg-config (needs pkg-config on the GPU machine, and yields a bare -lre2 that would pick Ubuntu's
# libre2.so.10 or nothing) and Findc-ares to find_library. Both modules first try
# find_package(<name> CONFIG), so a small config next to the others gives exact, relocatable
# targets pointing at the carried libre2.so.9 / libcares.so.2.
write_lib_config() {  # name target soname version
  mkdir -p "$cm/$1"
  cat >"$cm/$1/$1-config.cmake" <<EOF
# Written by scripts/fetch_gpu_deps.sh: Debian 12 ships no CMake config for $1.
# Paths are relative to this file, so the tree can live anywhere.
get_filename_component(_pdsd_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)
set($1_VERSION "$4")
if(NOT TARGET $2)
  add_library($2 SHARED IMPORTED)
  set_target_properties($2 PROPERTIES
    IMPORTED_LOCATION "\${_pdsd_prefix}/lib/x86_64-linux-gnu/$3"
    IMPORTED_SONAME "$3"
    INTERFACE_INCLUDE_DIRECTORIES "\${_pdsd_prefix}/include")
endif()
unset(_pdsd_prefix)
EOF
  [ -e "$root/$arch_dir/$3" ] || die "$3 is missing from the tree"
}
ver() { dpkg-deb -f "$(ls "$deb_cache/$1"_*.deb)" Version | sed 's/^[0-9]*://; s/[+~-].*//'; }
write_lib_config re2 re2::re2 libre2.so.9 "$(ver libre2-9)"
write_lib_config c-ares c-ares::cares libcares.so.2 "$(ver libc-ares2)"

# 4d. System libraries. gRPC::grpc's link interface names ZLIB::ZLIB and OpenSSL::SSL/Crypto, but
# gRPCConfig.cmake looks for them without REQUIRED; on a machine without zlib1g-dev/libssl-dev
# the targets would not exist and generation would fail. gRPC's public headers include neither
# zlib.h nor OpenSSL headers, so the runtime libraries libgrpc.so.29 already needs are enough:
# define the missing targets on them. Same for Threads::Threads, which gRPC's targets use but its
# config never finds.
mkdir -p "$cm/pdsd"
cat >"$cm/pdsd/pdsd-sysdeps.cmake" <<'EOF'
# Written by scripts/fetch_gpu_deps.sh; included by the carried gRPCConfig.cmake after its own
# find_package() calls. Defines, only where missing, the system targets gRPC links to.
if(NOT TARGET Threads::Threads)
  find_package(Threads REQUIRED)
endif()
function(_pdsd_runtime_target target)
  if(TARGET ${target})
    return()
  endif()
  string(MAKE_C_IDENTIFIER "PDSD_RUNTIME_${target}" var)
  find_library(${var} NAMES ${ARGN})
  if(NOT ${var})
    message(WARNING "pdsd-gpu-deps: ${target} not found (no dev package and no ${ARGN})")
    return()
  endif()
  add_library(${target} SHARED IMPORTED)
  set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${${var}}")
  message(STATUS "pdsd-gpu-deps: no dev files for ${target}; linking the runtime ${${var}}")
endfunction()
_pdsd_runtime_target(ZLIB::ZLIB libz.so.1 z)
_pdsd_runtime_target(OpenSSL::Crypto libcrypto.so.3 crypto)
_pdsd_runtime_target(OpenSSL::SSL libssl.so.3 ssl)
EOF
gc=$cm/grpc/gRPCConfig.cmake
grep -q '^include(${CMAKE_CURRENT_LIST_DIR}/gRPCTargets.cmake)$' "$gc" || die "unexpected $gc"
sed -i 's|^include(${CMAKE_CURRENT_LIST_DIR}/gRPCTargets.cmake)$|include(${CMAKE_CURRENT_LIST_DIR}/../pdsd/pdsd-sysdeps.cmake)  # added by fetch_gpu_deps.sh\n&|' "$gc"
# prometheus-cpp-config.cmake insists on CURL and ZLIB (find_dependency fails the whole package),
# yet its imported targets do not link to them: libprometheus-cpp-push.so/-pull.so carry their own
# NEEDED entries (libcurl.so.4, libz.so.1, present at run time). So ask for them softly, to keep
# a machine without libcurl-dev/zlib1g-dev able to use prometheus-cpp.
pc=$cm/prometheus-cpp/prometheus-cpp-config.cmake
if grep -qE 'CURL::|ZLIB::' "$cm"/prometheus-cpp/prometheus-cpp-targets*.cmake; then
  die "prometheus-cpp targets link CURL/ZLIB targets: the soft-find patch would be wrong"
fi
grep -q 'find_dependency(CURL)' "$pc" && grep -q 'find_dependency(ZLIB)' "$pc" || die "unexpected $pc"
sed -i 's|find_dependency(CURL)|find_package(CURL QUIET)  # was find_dependency (fetch_gpu_deps.sh)|;
        s|find_dependency(ZLIB)|find_package(ZLIB QUIET)  # was find_dependency (fetch_gpu_deps.sh)|' "$pc"

# 4e. pkg-config files (for sentencepiece, or anyone using pkg_check_modules): make them relative
# to their own location with pkgconf's ${pcfiledir}. Some have no prefix= line (nlohmann_json.pc
# says -I/usr/include), and gRPC's say libdir=${exec_prefix}/lib although the libraries are in
# lib/x86_64-linux-gnu (harmless in /usr, wrong in the tree): fix both.
for f in "$root/$arch_dir"/pkgconfig/*.pc "$root"/usr/share/pkgconfig/*.pc; do
  [ -e "$f" ] || continue
  case $f in */$arch_dir/pkgconfig/*) up='${pcfiledir}/../../..' ;; *) up='${pcfiledir}/../..' ;; esac
  grep -q '^prefix=' "$f" || sed -i "1i prefix=/usr" "$f"
  sed -i "s|^prefix=/usr\$|prefix=$up|; s|/usr/lib/x86_64-linux-gnu|\${prefix}/lib/x86_64-linux-gnu|g;
          s|/usr/include|\${prefix}/include|g; s|^libdir=\${exec_prefix}/lib\$|&/x86_64-linux-gnu|" "$f"
  ! grep -q '/usr' "$f" || die "absolute path left in $f"
done

# 4f. RUNPATH. Debian's libraries have none: they rely on /usr/lib being searched. In the tree,
# libgrpc++.so needs libgrpc.so.29, which needs libabsl_*.so, libre2.so.9, libcares.so.2...; and
# grpc_cpp_plugin (run by protoc in the middle of the build) needs libgrpc_plugin_support.so.
# Setting RUNPATH=$ORIGIN (libs) and $ORIGIN/../lib/x86_64-linux-gnu (programs) lets the loader
# find each carried library next to the one that needs it, from any location, with no
# LD_LIBRARY_PATH. System libraries (libprotobuf.so.32, libssl.so.3, ...) still come from the
# default search that follows RUNPATH.
is_elf() { [ "$(head -c4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }
n=0
while IFS= read -r f; do
  is_elf "$f" || continue
  "$patchelf" --set-rpath '$ORIGIN' "$f"; n=$((n + 1))
done < <(find "$root/$arch_dir" -maxdepth 1 -type f -name '*.so*')
for f in "$root"/usr/bin/*; do
  [ -f "$f" ] && ! [ -L "$f" ] && is_elf "$f" || continue
  "$patchelf" --set-rpath '$ORIGIN/../lib/x86_64-linux-gnu' "$f"; n=$((n + 1))
done
say "RUNPATH set on $n ELF files"

# 5. Helper for the GPU side, and a record of what is inside.
cat >"$dest/env.sh" <<'EOF'
# Source this (bash) to use the carried GPU deps; written by scripts/fetch_gpu_deps.sh.
# CMake reads CMAKE_PREFIX_PATH from the environment too, after the -DCMAKE_PREFIX_PATH cache entry.
PDSD_GPU_DEPS_PREFIX=$(cd "$(dirname "${BASH_SOURCE[0]}")/root/usr" && pwd)
export PDSD_GPU_DEPS_PREFIX
export CMAKE_PREFIX_PATH="$PDSD_GPU_DEPS_PREFIX${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PKG_CONFIG_PATH="$PDSD_GPU_DEPS_PREFIX/lib/x86_64-linux-gnu/pkgconfig:$PDSD_GPU_DEPS_PREFIX/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PDSD_GRPC_CPP_PLUGIN="$PDSD_GPU_DEPS_PREFIX/bin/grpc_cpp_plugin"
# Not needed (every carried ELF has a RUNPATH; CMake's build RPATH covers our binaries), but
# harmless for running pdsd programs:  export LD_LIBRARY_PATH="$PDSD_GPU_DEPS_PREFIX/lib/x86_64-linux-gnu"
EOF
printf '%s\n' "${manifest[@]}" >"$dest/MANIFEST"

size_kib=$(du -sk "$dest" | cut -f1)
say "packages (Debian 12):"
sed 's/^/  /' "$dest/MANIFEST"
say "size: $(du -sh "$dest" | cut -f1) ($dest)"
[ "$size_kib" -lt $((max_mib * 1024)) ] || die "$dest is over ${max_mib} MiB"
say "CMake prefix: $root/usr   (or: source $dest/env.sh)"
