// C launch API of the CUDA box IoU kernel (no torch headers; bound in csrc/box_iou.cpp).
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// boxes1 [batch, n, 4], boxes2 [batch, m, 4] (float32 xyxy, contiguous, device memory)
// -> out [batch, n, m] float32. Returns a cudaError_t value (0 on success).
int gro_box_iou_launch(const float* boxes1, const float* boxes2, float* out, int64_t batch,
                       int64_t n, int64_t m, int giou, int inclusive, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
