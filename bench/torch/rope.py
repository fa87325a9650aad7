"""PyTorch peers of bench/rope.cpp on x [B, S, H, D] bf16: Hugging Face's rotate_half form with cos/sin
tables (neox pairing), and the complex-multiply form of Meta's Llama (interleaved pairing)."""
import torch


def run(timer):
    b, s, h, d = 8, 2048, 32, 128
    x = torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16)
    inv = 1.0 / (10000 ** (torch.arange(0, d, 2, device="cuda").float() / d))
    freqs = torch.outer(torch.arange(s, device="cuda").float(), inv)  # [S, D/2]
    emb = torch.cat([freqs, freqs], -1)
    cos = emb.cos().to(x.dtype)[None, :, None, :]
    sin = emb.sin().to(x.dtype)[None, :, None, :]

    def rotate_half(t):
        return torch.cat((-t[..., d // 2:], t[..., : d // 2]), -1)

    cis = torch.polar(torch.ones_like(freqs), freqs)[None, :, None, :]  # complex64 [1, S, 1, D/2]

    def interleaved():
        xc = torch.view_as_complex(x.float().reshape(b, s, h, d // 2, 2))
        return torch.view_as_real(xc * cis).flatten(3).to(x.dtype)

    shape = f"B{b}S{s}H{h}D{d}"
    return [
        {"op": "rope_neox", "shape": shape, "dtype": "bf16", "ms": timer(lambda: x * cos + rotate_half(x) * sin)},
        {"op": "rope_interleaved", "shape": shape, "dtype": "bf16", "ms": timer(interleaved)},
    ]
