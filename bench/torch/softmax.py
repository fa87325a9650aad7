"""PyTorch peers of bench/softmax.cpp: F.softmax, F.log_softmax, and scale + additive causal mask + softmax."""
import torch
import torch.nn.functional as F


def run(timer):
    rows, cols = 16384, 4096
    out = []
    for dt, tag in ((torch.bfloat16, "bf16"), (torch.float32, "f32")):
        x = torch.randn(rows, cols, device="cuda", dtype=dt)
        shape = f"{rows}x{cols}"
        out.append({"op": "softmax", "shape": shape, "dtype": tag, "ms": timer(lambda: F.softmax(x, dim=-1))})
        out.append({"op": "log_softmax", "shape": shape, "dtype": tag, "ms": timer(lambda: F.log_softmax(x, dim=-1))})
        del x
        torch.cuda.empty_cache()
    s = 2048
    sc = torch.randn(32, s, s, device="cuda", dtype=torch.float32)
    mask = torch.full((s, s), float("-inf"), device="cuda").triu(1)
    out.append({"op": "softmax_causal", "shape": f"32x{s}x{s}", "dtype": "f32",
                "ms": timer(lambda: F.softmax(sc * 0.088 + mask, dim=-1))})
    return out
