// CUDA and NCCL calls go through these checks, which throw pdsd::Error naming the call, the error
// string and file:line (docs/errors-and-logging.md). Only in CUDA builds (PDSD_HAVE_CUDA).
//
//   PDSD_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, stream));
//   PDSD_NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, comm, stream));
#pragma once

#ifdef PDSD_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "common/error.h"

#define PDSD_CUDA_CHECK(expr)                                                                            \
  do {                                                                                                   \
    cudaError_t pdsd_err_ = (expr);                                                                      \
    if (pdsd_err_ != cudaSuccess)                                                                        \
      ::pdsd::detail::throw_check_failure(__FILE__, __LINE__, #expr,                                     \
                                          ::pdsd::str("CUDA error ", cudaGetErrorName(pdsd_err_), ": ",  \
                                                      cudaGetErrorString(pdsd_err_)));                   \
  } while (0)

#define PDSD_NCCL_CHECK(expr)                                                                            \
  do {                                                                                                   \
    ncclResult_t pdsd_res_ = (expr);                                                                     \
    if (pdsd_res_ != ncclSuccess)                                                                        \
      ::pdsd::detail::throw_check_failure(__FILE__, __LINE__, #expr,                                     \
                                          ::pdsd::str("NCCL error: ", ncclGetErrorString(pdsd_res_),     \
                                                      " (set NCCL_DEBUG=WARN for details)"));            \
  } while (0)
#endif
