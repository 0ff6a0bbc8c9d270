// Argument checks shared by the IoU host files of gro_fast._C.
//
// Every check names the argument it inspects. Value problems raise Python ValueError
// (std::invalid_argument), dtype/device problems TypeError (pybind11::type_error), so
// callers get the same exception classes as from the Python-side checks.
#pragma once

#include <torch/extension.h>

#include <sstream>
#include <stdexcept>
#include <string>

namespace gro_fast {

// Largest mask side and pixel count that decoding / rasterising accepts (2^31 pixels: a
// 46,000 x 46,000 mask, 2 GiB of uint8); larger requests are refused before allocating.
constexpr int64_t kMaxMaskSide = 2147483647;
constexpr int64_t kMaxMaskPixels = int64_t{1} << 31;

template <typename... Args>
std::string concat_message(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

}  // namespace gro_fast

#define GRO_CHECK_VALUE(cond, ...)                                                   \
  do {                                                                               \
    if (!(cond)) throw std::invalid_argument(::gro_fast::concat_message(__VA_ARGS__)); \
  } while (0)

#define GRO_CHECK_TYPE(cond, ...)                                                     \
  do {                                                                                \
    if (!(cond)) throw pybind11::type_error(::gro_fast::concat_message(__VA_ARGS__)); \
  } while (0)

#define GRO_CHECK_CPU(t) GRO_CHECK_TYPE((t).device().is_cpu(), #t " must be a CPU tensor, got ", (t).device())
#define GRO_CHECK_CUDA(t) GRO_CHECK_TYPE((t).device().is_cuda(), #t " must be a CUDA tensor, got ", (t).device())
#define GRO_CHECK_CONTIGUOUS(t) GRO_CHECK_VALUE((t).is_contiguous(), #t " must be contiguous")
#define GRO_CHECK_DTYPE(t, dt) \
  GRO_CHECK_TYPE((t).scalar_type() == (dt), #t " must have dtype ", (dt), ", got ", (t).scalar_type())
#define GRO_CHECK_DIM(t, d) \
  GRO_CHECK_VALUE((t).dim() == (d), #t " must have ", (d), " dimensions, got shape ", (t).sizes())
