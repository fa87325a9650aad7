"""PyTorch peers of bench/copy.cpp: Tensor.copy_ of the same sizes."""
import torch


def run(timer):
    out = []
    for rows, cols, dt, tag in ((16384, 4096, torch.bfloat16, "bf16"), (16384, 4096, torch.float32, "f32"),
                                (4096, 4096, torch.bfloat16, "bf16")):
        x = torch.randn(rows, cols, device="cuda", dtype=dt)
        y = torch.empty_like(x)
        out.append({"op": "copy", "shape": f"{rows}x{cols}", "dtype": tag,
                    "ms": timer(lambda: y.copy_(x))})
        del x, y
    return out
