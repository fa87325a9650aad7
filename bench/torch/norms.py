"""PyTorch peers of bench/norms.cpp: F.rms_norm, residual add + F.rms_norm, F.layer_norm."""
import torch
import torch.nn.functional as F


def run(timer):
    rows, hidden = 16384, 4096
    out = []
    for dt, tag in ((torch.bfloat16, "bf16"), (torch.float32, "f32")):
        x = torch.randn(rows, hidden, device="cuda", dtype=dt)
        r = torch.randn_like(x)
        w = torch.randn(hidden, device="cuda", dtype=dt)
        b = torch.randn(hidden, device="cuda", dtype=dt)
        shape = f"{rows}x{hidden}"

        def add_rms():
            s = x + r
            return s, F.rms_norm(s, (hidden,), w, 1e-6)

        out.append({"op": "rms_norm", "shape": shape, "dtype": tag, "ms": timer(lambda: F.rms_norm(x, (hidden,), w, 1e-6))})
        out.append({"op": "add_rms_norm", "shape": shape, "dtype": tag, "ms": timer(add_rms)})
        out.append({"op": "layer_norm", "shape": shape, "dtype": tag,
                    "ms": timer(lambda: F.layer_norm(x, (hidden,), w, b, 1e-5))})
        del x, r
        torch.cuda.empty_cache()
    return out
