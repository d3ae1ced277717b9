// SPIN_HOST_DEVICE: a function compiled for the host and, under nvcc, for the device too -- the
// arithmetic that CPU and CUDA kernels must share bit for bit (core/philox_rounds.h,
// core/mass_histogram.h).
#pragma once

#if defined(__CUDACC__)
#define SPIN_HOST_DEVICE __host__ __device__
#else
#define SPIN_HOST_DEVICE
#endif
