#!/usr/bin/env python3
"""Table of bench/compare.sh's JSON lines: best tokens/s per (config, implementation), ratios,
MFU against the sgemm peak measured in the same run, and peak RSS.

    python3 bench/compare_table.py build/bench/compare.jsonl [--peak GFLOPS]

--peak replaces the sgemm peak measured in the run (e.g. to re-read a run made on a loaded
machine against a quiet-machine peak); the table says which peak it used.

Model FLOPs of one LoRA training step, per token (written out in flops_per_token below):
  base      4·N_matmul            forward 2N + input gradient 2N; the frozen base gets no weight
                                  gradient. N_matmul = L·(C·Hq·D + 2·C·Hkv·D + Hq·D·C + 3·C·I) + V·C
                                  (the LM head counts; the embedding lookup is no product)
  LoRA      6·r·Σ(in+out)         over the 7 adapted projections of every layer: forward x·Aᵀ and
                                  (xAᵀ)·Bᵀ = 2·r·(in+out); backward dB, d(xAᵀ), dA, dx = 4·r·(in+out)
  attention 6·L·T·Hq·D            forward QKᵀ and P·V are 2·(2·T·D) per head per token, halved by the
                                  causal mask (average context T/2) = 2·T·Hq·D per layer; backward
                                  (dP, dV, dQ, dK) is twice the forward
No credit is taken for norms, RoPE, softmax, SwiGLU, cross-entropy or the optimizer (memory-bound).
MFU = tokens/s · flops_per_token / the GEMM peak of the arithmetic the contender ran, 2048³, same
run: the sgemm peak (same BLAS as hone) for f32, the bf16 GEMM peak (oneDNN, hone's split) for bf16
(hone's compute_dtype bf16, PyTorch's bf16 autocast); "–" where the run measured no bf16 peak.
"""
import json
import sys

# hidden C, intermediate I, layers L, heads Hq, kv heads Hkv, vocab V (head dim D = C / Hq)
SHAPES = {
    "stories260K": (64, 172, 5, 8, 4, 512),
    "smollm2-135m": (576, 1536, 30, 9, 3, 49152),
    "qwen2.5-0.5b": (896, 4864, 24, 14, 2, 151936),
    "llama3.2-1b": (2048, 8192, 16, 32, 8, 128256),
    "llama3-8b": (4096, 14336, 32, 32, 8, 128256),
}
IMPLS = ["hone", "hone-f32", "hone-q8_0", "torch-tuned-fp32", "torch-tuned-bf16", "torch-stock-fp32"]
HONES = ["hone", "hone-q8_0"]


def flops_per_token(model, seq, rank):
    C, I, L, H, KV, V = SHAPES[model]
    D = C // H
    n_matmul = L * (C * H * D + 2 * C * KV * D + H * D * C + 3 * C * I) + V * C
    proj = [(C, H * D), (C, KV * D), (C, KV * D), (H * D, C), (C, I), (C, I), (I, C)]
    lora = 6 * rank * L * sum(i + o for i, o in proj)
    attn = 6 * L * seq * H * D
    return 4 * n_matmul + lora + attn, n_matmul


def ran_bf16(r):
    """Whether a run's products were bf16: hone's resolved compute_dtype, PyTorch's autocast."""
    return r.get("compute_dtype") == "bf16" or (r.get("impl") == "torch" and r.get("dtype") == "bf16")


def main(path, peak_override=None):
    peak, peak_n, roof, best, one_thread, order, extra, runs = None, None, None, {}, {}, [], [], {}
    roof16, gemm16, cpu = None, None, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r.get("bench") == "sgemm":
                peak, peak_n, roof = r["gflops"], r.get("n"), r.get("fma_roof_gflops")
                roof16, gemm16, cpu = r.get("bf16_dot_roof_gflops"), r.get("bf16_gemm_gflops"), r.get("cpu")
                continue
            m = r["model"]
            q8 = r["impl"] == "hone" and r.get("weight_dtype") == "q8_0"
            if r["impl"] == "hone" and ((r.get("weight_dtype", "f32") != "f32" and not q8) or
                                        r.get("checkpointing") or m not in SHAPES):
                extra.append(r)  # other storage / checkpointing / shapes: their own table
                continue
            if m not in order:
                order.append(m)
            if r["impl"] == "hone":
                # hone = training.compute_dtype auto (whatever it picked here); hone-f32 = f32 asked
                f32 = r.get("compute_dtype_asked") == "f32"
                impl = "hone-q8_0" if q8 else ("hone-f32" if f32 else "hone")
                if r.get("threads") == 1 and not q8:
                    one_thread[m] = r
                    continue
            else:
                impl = f"torch-{r['mode']}-{r['dtype']}"
            runs.setdefault(m, {}).setdefault(impl, []).append(r)
            if impl not in best.setdefault(m, {}) or r["tokens_per_s"] > best[m][impl]["tokens_per_s"]:
                best[m][impl] = r

    if peak_override:
        print(f"sgemm peak measured in the run: {peak} GFLOP/s; MFU of f32 runs below uses --peak "
              f"{peak_override} GFLOP/s\n")
        peak = peak_override
    else:
        print(f"sgemm peak ({peak_n}³ through hone's OpenBLAS, the better of hone's split and "
              f"OpenBLAS's own threads, same run): {peak} GFLOP/s\n")
    if roof:
        print(f"FMA roof (AVX-512 FMAs on registers, every thread, same run): {roof} GFLOP/s; "
              f"the sgemm peak is {peak / roof * 100:.0f}% of it\n")
    if roof16:
        print(f"bf16 dot roof (vdpbf16ps on registers, every thread, same run): {roof16} GFLOP/s "
              f"= {roof16 / roof:.2f}× the FMA roof; best bf16 GEMM (oneDNN, 2048³, hone's split): "
              f"{gemm16} GFLOP/s = {gemm16 / peak:.2f}× the sgemm peak. CPU: {cpu}\n")
    def mfu_cell(r, fpt):
        """MFU against the same-run GEMM peak of the arithmetic r ran (the sgemm peak would put
        a bf16 run above 100%); bf16 ones are marked."""
        if not r:
            return "–"
        bf = ran_bf16(r)
        denominator = gemm16 if bf else peak
        if not denominator:
            return "–"
        return f"{r['tokens_per_s'] * fpt / 1e9 / denominator * 100:.0f}%" + (" bf16" if bf else "")

    print("MFU columns: against the GEMM peak of each contender's arithmetic (sgemm for f32, the "
          "bf16 GEMM for runs marked bf16).\n")
    print("| config | " + " | ".join(f"{i} tok/s" for i in IMPLS) +
          " | hone / best tuned | hone-q8_0 / best tuned | hone / stock | MFU hone |"
          " MFU hone-q8_0 | MFU torch tuned fp32 | RSS hone | RSS hone-q8_0 |"
          " RSS torch tuned fp32 | RSS ratio hone | RSS ratio hone-q8_0 |"
          " planned / measured RSS hone | hone-q8_0 |")
    print("|---" * (len(IMPLS) + 14) + "|")
    for m in order:
        b = best.get(m, {})
        tps = {i: b[i]["tokens_per_s"] if i in b else None for i in IMPLS}
        r0 = b.get("hone", {})
        fpt, _ = flops_per_token(m, r0.get("seq", 512), r0.get("rank", 16))
        tuned = [tps[i] for i in ("torch-tuned-fp32", "torch-tuned-bf16") if tps[i]]
        cell = lambda v, fmt="{:.1f}": "–" if v is None else fmt.format(v)  # noqa: E731
        ratio = lambda a, c: None if not a or not c else a / c  # noqa: E731
        rss = lambda i: b[i]["peak_rss_kib"] / 1024 if i in b else None  # noqa: E731
        plan = lambda i: ratio(b[i].get("plan_peak_rss_kib"), b[i]["peak_rss_kib"]) if i in b else None  # noqa: E731,E501
        best_tuned = max(tuned) if tuned else None
        cols = [cell(tps[i]) for i in IMPLS]
        cols += [cell(ratio(tps["hone"], best_tuned), "{:.2f}×"),
                 cell(ratio(tps["hone-q8_0"], best_tuned), "{:.2f}×"),
                 cell(ratio(tps["hone"], tps["torch-stock-fp32"]), "{:.2f}×"),
                 mfu_cell(b.get("hone"), fpt), mfu_cell(b.get("hone-q8_0"), fpt),
                 mfu_cell(b.get("torch-tuned-fp32"), fpt),
                 cell(rss("hone"), "{:.0f} MiB"), cell(rss("hone-q8_0"), "{:.0f} MiB"),
                 cell(rss("torch-tuned-fp32"), "{:.0f} MiB"),
                 cell(ratio(rss("hone"), rss("torch-tuned-fp32")), "{:.2f}"),
                 cell(ratio(rss("hone-q8_0"), rss("torch-tuned-fp32")), "{:.2f}"),
                 cell(plan("hone"), "{:.3f}"), cell(plan("hone-q8_0"), "{:.3f}")]
        print(f"| {m} | " + " | ".join(cols) + " |")
    # MFU against the roof of the arithmetic each contender ran (hone: what compute_dtype
    # resolved to; torch-tuned-bf16: autocast bf16; the rest f32), and against the FMA roof.
    if roof:
        print("\nMFU against the roofs of the same run (model FLOPs as above):\n")
        print("| config | contender | arithmetic | tok/s | MFU vs its precision's roof |"
              " MFU vs fp32 FMA roof |")
        print("|---" * 6 + "|")
        for m in order:
            for i in IMPLS:
                r = best.get(m, {}).get(i)
                if not r:
                    continue
                fpt, _ = flops_per_token(m, r.get("seq", 512), r.get("rank", 16))
                bf = ran_bf16(r)
                own = roof16 if bf else roof
                g = r["tokens_per_s"] * fpt / 1e9
                own_cell = f"{g / own * 100:.0f}%" if own else "–"
                print(f"| {m} | {i} | {'bf16' if bf else 'f32'} | {r['tokens_per_s']:.1f} | "
                      f"{own_cell} | {g / roof * 100:.0f}% |")
    # Every repeat, so a best that one lucky (or unlucky) step decided is visible.
    print("\nEach repeat's tokens/s in run order (its measured steps' seconds in brackets):\n")
    for m in order:
        for i in IMPLS:
            rs = runs.get(m, {}).get(i, [])
            if rs:
                cells = [f"{r['tokens_per_s']:.1f}" + (f" [{', '.join(f'{t:.2f}' for t in r['step_seconds'])}]"
                                                      if r.get("step_seconds") else "") for r in rs]
                print(f"- {m} {i}: " + " / ".join(cells))
    if extra:
        print("\nhone in other set-ups (same run):\n")
        print("| config | base | compute | activation checkpointing | fused LM head | s/step | tok/s |"
              " MFU | peak RSS | planned | planned / measured | RSS / torch tuned fp32 |")
        print("|---" * 12 + "|")
        def torch_rss(model, kib):
            t = best.get(model, {}).get("torch-tuned-fp32")
            return f"{kib / t['peak_rss_kib']:.2f}" if t else "–"

        for r in extra:
            fpt, _ = flops_per_token(r["model"], r.get("seq", 512), r.get("rank", 16))
            print(f"| {r['model']} | {r.get('weight_dtype', 'f32')} | "
                  f"{r.get('compute_dtype', 'f32')} | "
                  f"{'on' if r.get('checkpointing') else 'off'} | "
                  f"{'on' if r.get('fused_head') else 'off'} | {r['sec_per_step']:.2f} | "
                  f"{r['tokens_per_s']:.1f} | {mfu_cell(r, fpt)} | {r['peak_rss_kib'] / 1048576:.2f} GiB | "
                  f"{r['plan_peak_rss_kib'] / 1048576:.2f} GiB | "
                  f"{r['plan_peak_rss_kib'] / r['peak_rss_kib']:.3f} | "
                  f"{torch_rss(r['model'], r['peak_rss_kib'])} |")
    print()
    for m in order + sorted({r["model"] for r in extra} - set(order)):
        fpt, n = flops_per_token(m, 512, 16)
        print(f"{m}: N_matmul = {n / 1e6:.1f} M, model FLOPs per token = {fpt / 1e9:.3f} GFLOP "
              f"(seq 512, r 16)")
    # The same set-up in both arithmetics (issue 17: the Llama-3-8B shape's s/step).
    pairs = {}
    for r in extra:
        key = (r["model"], r.get("weight_dtype"), bool(r.get("checkpointing")), bool(r.get("fused_head")))
        pairs.setdefault(key, {})[r.get("compute_dtype", "f32")] = r
    for key, p in pairs.items():
        if "f32" in p and "bf16" in p:
            print(f"\n{key[0]} ({key[1]} base, checkpointing {'on' if key[2] else 'off'}): "
                  f"f32 {p['f32']['sec_per_step']:.2f} s/step, bf16 {p['bf16']['sec_per_step']:.2f} "
                  f"s/step: bf16 {p['f32']['sec_per_step'] / p['bf16']['sec_per_step']:.2f}× faster")
    for m, r in one_thread.items():
        many = best.get(m, {}).get("hone")
        if many:
            print(f"\nhone {m}: 1 thread {r['tokens_per_s']:.1f} tok/s, {many['threads']} threads "
                  f"{many['tokens_per_s']:.1f} tok/s: speed-up "
                  f"{many['tokens_per_s'] / r['tokens_per_s']:.2f}×")


if __name__ == "__main__":
    args = sys.argv[1:]
    override = None
    if "--peak" in args:
        i = args.index("--peak")
        override = float(args[i + 1])
        del args[i:i + 2]
    main(args[0] if args else "build/bench/compare.jsonl", override)
