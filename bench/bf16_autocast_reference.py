#!/usr/bin/python3
"""PyTorch's own bf16 autocast on the PyTorch fixtures (../shared/fixtures/models): how far its
LoRA gradients and loss land from the f32 reference gradients the fixtures hold. hone's test
(tests/lora/test_fixtures.cpp, Bf16GradientsAreNoWorseThanAutocasts) holds hone's bf16
products to the same distance. Written here from the Hugging Face model definitions (llama,
qwen2, qwen3; rotate-half RoPE, llama3 rope scaling) and PEFT's LoRA; checked first in f32
against the fixture's own gradients. Needs Debian's python3-torch; writes
tests/lora/fixtures/bf16_autocast.json:

    /usr/bin/python3 bench/bf16_autocast_reference.py ../shared/fixtures/models tests/lora/fixtures/bf16_autocast.json
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

DT = {"F32": torch.float32, "I32": torch.int32, "I64": torch.int64,
      "BF16": torch.bfloat16, "F16": torch.float16}


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        s, e = v["data_offsets"]
        buf = bytearray(raw[8 + n + s:8 + n + e])
        t = torch.frombuffer(buf, dtype=DT[v["dtype"]]) if e > s else torch.empty(0, dtype=DT[v["dtype"]])
        out[name] = t.reshape(v["shape"]).clone()
    return out


def inv_freq(cfg, hd):
    theta = cfg.get("rope_theta", 10000.0)
    f = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / f
        smooth = (old / wavelen - lo) / (hi - lo)
        scaled = torch.where(wavelen > old / lo, f / factor, f)
        mid = (1 - smooth) * f / factor + smooth * f
        is_mid = (wavelen <= old / lo) & (wavelen >= old / hi)
        f = torch.where(is_mid, mid, scaled)
    return f.float()


def rms(x, w, eps):
    xf = x.float()
    return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def loss_of(cfg, W, lora, scaling, tokens):
    eps = cfg["rms_norm_eps"]
    C, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or C // H
    inputs, targets = tokens[:, :-1].long(), tokens[:, 1:].long()
    B, T = inputs.shape
    pos = torch.arange(T, dtype=torch.float32)
    ang = torch.outer(pos, inv_freq(cfg, hd))
    cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()

    def lin(x, prefix, module):
        name = f"model.{prefix}.{module}"
        y = F.linear(x, W[name + ".weight"], W.get(name + ".bias"))
        la = f"base_model.model.model.{prefix}.{module}.lora_A.weight"
        if la in lora:
            lb = la.replace("lora_A", "lora_B")
            y = y + scaling * F.linear(F.linear(x, lora[la]), lora[lb])
        return y

    x = W["model.embed_tokens.weight"][inputs]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"layers.{i}"
        h = rms(x, W[f"model.{p}.input_layernorm.weight"], eps)
        q = lin(h, p, "self_attn.q_proj").view(B, T, H, hd).transpose(1, 2)
        k = lin(h, p, "self_attn.k_proj").view(B, T, KV, hd).transpose(1, 2)
        v = lin(h, p, "self_attn.v_proj").view(B, T, KV, hd).transpose(1, 2)
        if f"model.{p}.self_attn.q_norm.weight" in W:
            q = rms(q, W[f"model.{p}.self_attn.q_norm.weight"], eps)
            k = rms(k, W[f"model.{p}.self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        att = torch.softmax((q @ k.transpose(-1, -2)).float() / math.sqrt(hd) + mask, dim=-1)
        o = (att.to(v.dtype) @ v).transpose(1, 2).reshape(B, T, H * hd)
        x = x + lin(o, p, "self_attn.o_proj")
        h = rms(x, W[f"model.{p}.post_attention_layernorm.weight"], eps)
        x = x + lin(F.silu(lin(h, p, "mlp.gate_proj")) * lin(h, p, "mlp.up_proj"), p, "mlp.down_proj")
    x = rms(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    logits = F.linear(x, head)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


def grads(cfg, W, init, scaling, tokens, autocast):
    lora = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = loss_of(cfg, W, lora, scaling, tokens)
    loss.backward()
    return loss.item(), {k: v.grad for k, v in lora.items()}


def rel(a, b):
    return (a.float() - b.float()).abs().max().item() / b.float().abs().max().item()


def main(root, out):
    result = {"torch": torch.__version__,
              "metric": "max|g - g_f32| / max|g_f32| per LoRA tensor against lora_grad.safetensors; "
                        "loss: |loss - loss_f32| / loss_f32",
              "fixtures": {}}
    torch.manual_seed(0)
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        cfg = json.load(open(os.path.join(d, "config.json")))
        ref = json.load(open(os.path.join(d, "ref.json")))
        W = read_safetensors(os.path.join(d, "model.safetensors"))
        init = read_safetensors(os.path.join(d, "lora_init.safetensors"))
        want = read_safetensors(os.path.join(d, "lora_grad.safetensors"))
        io = read_safetensors(os.path.join(d, "io.safetensors"))
        scaling = ref["lora"]["scaling"]
        loss32, g32 = grads(cfg, W, init, scaling, io["tokens"], False)
        check = max(rel(g32[k], want[k]) for k in want)
        # This script's own f32 run must reproduce the fixture: else its autocast figure means nothing.
        assert check < 1e-4 and abs(loss32 - io["loss"].item()) < 1e-5 * io["loss"].item(), (name, check)
        loss16, g16 = grads(cfg, W, init, scaling, io["tokens"], True)
        per = {k: rel(g16[k], want[k]) for k in sorted(want)}
        result["fixtures"][name] = {
            "f32_check": check,
            "loss": abs(loss16 - io["loss"].item()) / io["loss"].item(),
            "worst_grad": max(per.values()),
            "grads": per,
        }
        print(f"{name}: f32 check {check:.2e}; autocast loss {result['fixtures'][name]['loss']:.2e}, "
              f"worst gradient {max(per.values()):.3e}")
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
