#!/usr/bin/env python3
"""PyTorch peer of bench/train_step.cpp: the same LoRA training step, written plainly in PyTorch.

A minimal Llama-family decoder (embedding, RMSNorm, q/k/v/o with rotate-half RoPE, GQA causal
attention, SwiGLU MLP, tied or untied LM head, mean cross-entropy), LoRA r=16 alpha=32 on all seven
projections (frozen base: requires_grad False; A and B trainable, f32), torch.optim.AdamW, random
tokens. Prints one JSON line like bench_train_step.

    peer_pytorch.py --model smollm2-135m [--seq 512] [--batch 1] [--rank 16] [--steps 3]
                    [--warmup 1] [--threads 2] [--dtype fp32|bf16] [--mode LABEL]

--dtype bf16 stores the frozen base (embedding, projections) in bf16 and runs forward under
torch.autocast("cpu", torch.bfloat16); norms, softmax, loss, adapters and optimizer stay f32.
The tuned/stock distinction is the process environment (OPENBLAS_CORETYPE, OMP_WAIT_POLICY,
LD_PRELOAD of tcmalloc), set by bench/compare.sh; --mode only labels the output line.
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

SHAPES = {
    # hidden, intermediate, layers, heads, kv heads, vocab, tied, qkv bias, rope theta, eps
    "smollm2-135m": dict(C=576, I=1536, L=30, H=9, KV=3, V=49152, tied=True, bias=False,
                         theta=100000.0, eps=1e-5),
    "qwen2.5-0.5b": dict(C=896, I=4864, L=24, H=14, KV=2, V=151936, tied=True, bias=True,
                         theta=1000000.0, eps=1e-6),
    "llama3.2-1b": dict(C=2048, I=8192, L=16, H=32, KV=8, V=128256, tied=True, bias=False,
                        theta=500000.0, eps=1e-5),
}


def load_llama2c(path):
    """llama2.c .bin (legacy v0): header of 7 int32, then f32 tensors. Returns (shape, weights)
    with q/k rows permuted from interleaved pairs to Hugging Face's rotate-half order."""
    with open(path, "rb") as f:
        dim, hidden, layers, heads, kv_heads, vocab, max_seq = struct.unpack("7i", f.read(28))
        data = np.frombuffer(f.read(), dtype=np.float32)
    tied = vocab > 0
    vocab = abs(vocab)
    hd = dim // heads
    kv_dim = kv_heads * hd
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        t = torch.from_numpy(data[off:off + n].copy()).reshape(shape)
        off += n
        return t

    def unpermute(w, h):  # rows [h, hd/2, 2] -> [h, 2, hd/2]
        out, inp = w.shape
        return w.reshape(h, hd // 2, 2, inp).transpose(1, 2).reshape(out, inp)

    w = {"embed": take(vocab, dim)}
    rms_att = take(layers, dim)
    wq = take(layers, dim, dim)
    wk = take(layers, kv_dim, dim)
    wv = take(layers, kv_dim, dim)
    wo = take(layers, dim, dim)
    rms_ffn = take(layers, dim)
    w1 = take(layers, hidden, dim)
    w2 = take(layers, dim, hidden)
    w3 = take(layers, hidden, dim)
    w["norm"] = take(dim)
    take(max_seq, hd // 2)  # freq_cis_real
    take(max_seq, hd // 2)  # freq_cis_imag
    if not tied:
        w["lm_head"] = take(vocab, dim)
    w["layers"] = [dict(in_norm=rms_att[l], post_norm=rms_ffn[l], q=unpermute(wq[l], heads),
                        k=unpermute(wk[l], kv_heads), v=wv[l], o=wo[l], gate=w1[l], down=w2[l],
                        up=w3[l]) for l in range(layers)]
    shape = dict(C=dim, I=hidden, L=layers, H=heads, KV=kv_heads, V=vocab, tied=tied, bias=False,
                 theta=10000.0, eps=1e-5)
    return shape, w


def random_model(s, seed):
    g = torch.Generator().manual_seed(seed)
    C, I, H, KV = s["C"], s["I"], s["H"], s["KV"]
    hd = C // H

    def lin(out, inp):
        b = 1.0 / math.sqrt(inp)
        return torch.empty(out, inp).uniform_(-b, b, generator=g)

    def norm(n):
        return 1.0 + 0.1 * (torch.rand(n, generator=g) * 2 - 1)

    w = {"embed": torch.randn(s["V"], C, generator=g) * 0.02, "norm": norm(C), "layers": []}
    if not s["tied"]:
        w["lm_head"] = lin(s["V"], C)
    for _ in range(s["L"]):
        layer = dict(in_norm=norm(C), post_norm=norm(C), q=lin(H * hd, C), k=lin(KV * hd, C),
                     v=lin(KV * hd, C), o=lin(C, H * hd), gate=lin(I, C), up=lin(I, C),
                     down=lin(C, I))
        if s["bias"]:
            for p, n in (("q", H * hd), ("k", KV * hd), ("v", KV * hd)):
                layer[p + "_bias"] = torch.randn(n, generator=g) * 0.02
        w["layers"].append(layer)
    return w


class LoraLinear(torch.nn.Module):
    """y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ; W, b frozen; A (r, in) Kaiming-uniform, B (out, r) zero (PEFT)."""

    def __init__(self, weight, bias, rank, alpha, wdtype):
        super().__init__()
        out, inp = weight.shape
        self.weight = torch.nn.Parameter(weight.to(wdtype), requires_grad=False)
        self.bias = None if bias is None else torch.nn.Parameter(bias, requires_grad=False)
        self.lora_A = torch.nn.Parameter(torch.empty(rank, inp))
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = torch.nn.Parameter(torch.zeros(out, rank))
        self.scaling = alpha / rank

    def forward(self, x):
        return F.linear(x, self.weight, self.bias) + \
            F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling


class RMSNorm(torch.nn.Module):
    def __init__(self, weight, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight * x).to(dt)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


HAS_SDPA = hasattr(F, "scaled_dot_product_attention")  # PyTorch >= 2.0; Debian 12 has 1.13


def causal_attention(q, k, v, mask):
    """q (B, H, T, D), k/v (B, H, T, D) already repeated for GQA."""
    if HAS_SDPA:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    scores = scores.masked_fill(mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs, v)


class Block(torch.nn.Module):
    def __init__(self, w, s, rank, alpha, wdtype):
        super().__init__()
        self.H, self.KV, self.hd = s["H"], s["KV"], s["C"] // s["H"]
        self.in_norm = RMSNorm(w["in_norm"], s["eps"])
        self.post_norm = RMSNorm(w["post_norm"], s["eps"])
        mk = lambda n: LoraLinear(w[n], w.get(n + "_bias"), rank, alpha, wdtype)  # noqa: E731
        self.q, self.k, self.v, self.o = mk("q"), mk("k"), mk("v"), mk("o")
        self.gate, self.up, self.down = mk("gate"), mk("up"), mk("down")

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        h = self.in_norm(x)
        q = self.q(h).view(B, T, self.H, self.hd).transpose(1, 2)
        k = self.k(h).view(B, T, self.KV, self.hd).transpose(1, 2)
        v = self.v(h).view(B, T, self.KV, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.H // self.KV
        if rep > 1:  # GQA: each KV head serves `rep` query heads (HF's repeat_kv)
            k = k[:, :, None].expand(B, self.KV, rep, T, self.hd).reshape(B, self.H, T, self.hd)
            v = v[:, :, None].expand(B, self.KV, rep, T, self.hd).reshape(B, self.H, T, self.hd)
        a = causal_attention(q, k.to(q.dtype), v.to(q.dtype), mask)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, self.H * self.hd))
        h = self.post_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self, w, s, rank, alpha, wdtype):
        super().__init__()
        self.s = s
        self.embed = torch.nn.Parameter(w["embed"].to(wdtype), requires_grad=False)
        self.lm_head = self.embed if s["tied"] else \
            torch.nn.Parameter(w["lm_head"].to(wdtype), requires_grad=False)
        self.blocks = torch.nn.ModuleList(Block(l, s, rank, alpha, wdtype) for l in w["layers"])
        self.norm = RMSNorm(w["norm"], s["eps"])
        hd = s["C"] // s["H"]
        self.inv_freq = 1.0 / (s["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))

    def loss(self, ids, targets):
        B, T = ids.shape
        x = F.embedding(ids, self.embed)
        if x.dtype != torch.float32:
            x = x.float()  # residual stream in f32 (autocast casts at each linear)
        freqs = torch.outer(torch.arange(T, dtype=torch.float32), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        for blk in self.blocks:
            x = blk(x, cos, sin, mask)
        logits = F.linear(self.norm(x), self.lm_head)
        return F.cross_entropy(logits.float().view(B * T, -1), targets.reshape(B * T))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--model-path", default="data/samples/stories260K/stories260K.bin")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--mode", default="")
    a = ap.parse_args()

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.model == "stories260K":
        s, w = load_llama2c(a.model_path)
    elif a.model in SHAPES:
        s = SHAPES[a.model]
        w = random_model(s, 1234)
    else:
        sys.exit(f"peer_pytorch: unknown model {a.model}")
    bf16 = a.dtype == "bf16"
    model = Model(w, s, a.rank, 2.0 * a.rank, torch.bfloat16 if bf16 else torch.float32)
    del w
    params = [p for p in model.parameters() if p.requires_grad]
    base = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, foreach=True)

    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, s["V"], (a.batch, a.seq), generator=g)
    targets = torch.randint(0, s["V"], (a.batch, a.seq), generator=g)

    total, loss, times = 0.0, float("nan"), []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            l = model.loss(ids, targets)
        l.backward()
        opt.step()
        dt = time.perf_counter() - t0
        loss = l.item()
        if step >= a.warmup:
            total += dt
            times.append(round(dt, 3))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "impl": "torch", "mode": a.mode, "dtype": a.dtype, "model": a.model, "params": base,
        "lora_params": sum(p.numel() for p in params), "batch": a.batch, "seq": a.seq,
        "rank": a.rank, "threads": torch.get_num_threads(), "steps": a.steps,
        "sec_per_step": round(total / a.steps, 4), "step_seconds": times,
        "tokens_per_s": round(a.batch * a.seq * a.steps / total, 1), "loss": round(loss, 4),
        "peak_rss_kib": rss, "torch": torch.__version__, "sdpa": HAS_SDPA,
        "env": {k: os.environ.get(k, "") for k in
                ("OPENBLAS_CORETYPE", "OMP_WAIT_POLICY", "LD_PRELOAD")},
    }), flush=True)


if __name__ == "__main__":
    main()
