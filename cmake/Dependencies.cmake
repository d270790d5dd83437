# Finds every third-party dependency and exposes it as an imported target.
#
# Header hygiene, and why it matters: the torch wheel ships its own copies of protobuf 3.13 and fmt 12
# headers under torch/include. A translation unit that sees both torch and the system's protobuf/fmt
# headers would compile against the wrong one. So the rule is: torch headers only in worker/ (and
# tests of it); protobuf/gRPC headers only in proto/ and the control-plane code; common/ exposes no
# third-party headers in its public interface (log.h takes std::string). Linking both into one
# binary is safe: libtorch_cpu.so keeps its protobuf hidden (tests/test_torch_grpc_link.cpp checks).

find_package(Threads REQUIRED)
find_package(Protobuf 3.21 REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_program(PDSD_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(nlohmann_json 3.11 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(GTest REQUIRED)
find_package(PkgConfig REQUIRED)
# Unicode-class regexes for the tokenizer's pre-tokenizer (\p{L}, \p{N}, lookahead), as HF tokenizers use.
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)

# --- libtorch ------------------------------------------------------------------------------------
# The CMake prefix is the torch wheel's share/cmake (torch.utils.cmake_prefix_path), passed by
# scripts/setup.sh. With PDSD_CUDA we use the wheel's TorchConfig.cmake. Without it we do not:
# TorchConfig probes the CUDA toolkit and even tries to run a GPU-detection program whenever the
# wheel was built with CUDA (PyPI's is), which fails or costs time on a machine with no GPU. The CPU
# build only needs libtorch_cpu + libc10 and the headers, found here inside the same wheel.
if(PDSD_CUDA)
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "9.0")  # Hopper (H100/H200); no GPU probing at configure time
  endif()
  find_package(Torch REQUIRED)
  add_library(pdsd_torch INTERFACE)
  target_include_directories(pdsd_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
  target_link_libraries(pdsd_torch INTERFACE torch c10 torch_cpu torch_cuda c10_cuda)
else()
  find_path(PDSD_TORCH_ROOT share/cmake/Torch/TorchConfig.cmake
            PATHS ${CMAKE_PREFIX_PATH} PATH_SUFFIXES ../.. NO_DEFAULT_PATH REQUIRED)
  get_filename_component(PDSD_TORCH_ROOT "${PDSD_TORCH_ROOT}" ABSOLUTE)
  find_library(PDSD_TORCH_CPU_LIB torch_cpu PATHS ${PDSD_TORCH_ROOT}/lib NO_DEFAULT_PATH REQUIRED)
  find_library(PDSD_C10_LIB c10 PATHS ${PDSD_TORCH_ROOT}/lib NO_DEFAULT_PATH REQUIRED)
  add_library(pdsd_torch INTERFACE)
  target_include_directories(pdsd_torch SYSTEM INTERFACE
    ${PDSD_TORCH_ROOT}/include ${PDSD_TORCH_ROOT}/include/torch/csrc/api/include)
  # The wheel is built with the C++11 ABI (torch.compiled_with_cxx11_abi() is True).
  target_compile_definitions(pdsd_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=1)
  target_link_libraries(pdsd_torch INTERFACE ${PDSD_TORCH_CPU_LIB} ${PDSD_C10_LIB})
  message(STATUS "pdsd: libtorch (CPU) from ${PDSD_TORCH_ROOT}")
endif()
# libtorch's c10d (Gloo/NCCL process groups) lives in torch_cpu / torch_cuda: no extra library.

# libtorch_cpu.so exports thousands of std:: symbols (std::filesystem among them) from the older
# libstdc++ it was built with. If it comes before libstdc++.so.6 in a binary's DT_NEEDED list, the
# dynamic linker binds our calls to those copies, which do not match a newer compiler's headers
# (g++ 13 on the GPU machine: std::filesystem::directory_iterator crashed). Listing libstdc++ first
# makes every binary bind to the system's, as a Python process that imports torch does.
# tests/test_libstdcxx_binding.cpp checks it.
# A compiler that has only a static libstdc++ (e.g. a private GCC build) cannot give that order:
# libtorch's copies would then win outright. Refuse it at configure time with the way out.
execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libstdc++.so
                OUTPUT_VARIABLE PDSD_SHARED_LIBSTDCXX OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT IS_ABSOLUTE "${PDSD_SHARED_LIBSTDCXX}")
  message(FATAL_ERROR "pdsd: ${CMAKE_CXX_COMPILER} has no shared libstdc++ (libstdc++.so); linking it "
          "statically next to libtorch would bind std:: calls to libtorch's older copies and crash. "
          "Use a compiler with a shared libstdc++, e.g. -DCMAKE_CXX_COMPILER=/usr/bin/g++")
endif()
target_link_options(pdsd_torch INTERFACE "SHELL:-Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state")

# --- CUDA + NCCL (optional) ----------------------------------------------------------------------
if(PDSD_CUDA)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  find_path(PDSD_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include REQUIRED)
  find_library(PDSD_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu REQUIRED)
  add_library(pdsd_nccl INTERFACE)
  target_include_directories(pdsd_nccl SYSTEM INTERFACE ${PDSD_NCCL_INCLUDE_DIR})
  target_link_libraries(pdsd_nccl INTERFACE ${PDSD_NCCL_LIBRARY} CUDA::cudart)
  message(STATUS "pdsd: CUDA ${CUDAToolkit_VERSION}, NCCL ${PDSD_NCCL_LIBRARY}")
endif()
