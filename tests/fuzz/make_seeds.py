#!/usr/bin/env python3
"""Writes the fuzz seed corpora (tests/fuzz/corpus/<target>/) and the known-crash inputs
(tests/fuzz/pending/<target>/) from ../shared and from shapes written here. Run from anywhere:
    python3 tests/fuzz/make_seeds.py [SHARED_DIR]
Not run by the build: its output is committed. Checkpoint seeds are not made here (they come from
hone's own writer, see README.md). Plain Python 3, no packages."""
import json, os, re, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared")


def out(kind, target, name, data):
    d = os.path.join(HERE, kind, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def seed(target, name, data):
    out("corpus", target, name, data)


def pending(target, name, data):
    """A known crash whose fix is on its way: not replayed until moved to regress/."""
    out("pending", target, name, data)


def regress(target, name, data):
    """A hostile input that must fail cleanly (hone::Error) or parse: replayed by ctest."""
    out("regress", target, name, data)


def nested(depth):
    return "[" * depth + "]" * depth


# ---------------------------------------------------------------- safetensors
def safetensors(tensors, metadata=None, pad_to=8):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * ((-len(h)) % pad_to)
    return struct.pack("<Q", len(h)) + h + data


def f32(vals):
    return struct.pack("<%df" % len(vals), *vals)


def f16(vals):
    return struct.pack("<%de" % len(vals), *vals)


def bf16(vals):
    return b"".join(struct.pack("<f", v)[2:] for v in vals)


def make_safetensors():
    t = "safetensors"
    seed(t, "two_f32.safetensors", safetensors(
        [("a", "F32", [2, 3], f32([0.5 * i for i in range(6)])), ("b", "F32", [4], f32([1, 2, 3, 4]))],
        {"format": "pt"}))
    seed(t, "dtypes.safetensors", safetensors([
        ("h", "F16", [2, 2], f16([1, -2, 0.5, 65504])),
        ("bf", "BF16", [3], bf16([1, -1, 3.5])),
        ("d", "F64", [2], struct.pack("<2d", 1e-300, -2.5)),
        ("i", "I32", [1, 2], struct.pack("<2i", -7, 7)),
        ("l", "I64", [2], struct.pack("<2q", 1 << 40, -1)),
        ("scalar", "F32", [], f32([3.0])),
        ("empty", "F32", [0, 4], b""),
    ]))
    seed(t, "peft_names.safetensors", safetensors([
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "F32", [2, 4], f32([0.1] * 8)),
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", "F32", [4, 2], f32([0.0] * 8)),
    ], {"format": "pt"}))
    seed(t, "empty.safetensors", safetensors([]))
    real = os.path.join(SHARED, "fixtures/models/tiny-llama/trajectory.safetensors")
    seed(t, "tiny_llama_trajectory.safetensors", open(real, "rb").read())
    pending(t, "nested_200000.safetensors", (lambda h: struct.pack("<Q", len(h)) + h)(
        ('{"a":' + nested(200000) + "}").encode()))


# ---------------------------------------------------------------- GGUF
GT = dict(U8=0, I8=1, U16=2, I16=3, U32=4, I32=5, F32=6, BOOL=7, STRING=8, ARRAY=9, U64=10, I64=11, F64=12)
SCALAR_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gval(t, v):
    if t == GT["STRING"]:
        return gstr(v)
    if t == GT["ARRAY"]:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gval(et, x) for x in items)
    return struct.pack(SCALAR_FMT[t], v)


def read_gguf_metadata(path):
    """The key/value pairs of a GGUF v2/v3 file, as (key, type, value)."""
    b = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, b, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def rstr():
        nonlocal pos
        n = take("<Q")
        s = b[pos:pos + n]
        pos += n
        return s.decode()

    def rval(t):
        if t == GT["STRING"]:
            return rstr()
        if t == GT["ARRAY"]:
            et, n = take("<I"), take("<Q")
            return (et, [rval(et) for _ in range(n)])
        return take(SCALAR_FMT[t])

    assert b[:4] == b"GGUF"
    pos = 4
    take("<I")
    take("<Q")
    n_kv = take("<Q")
    kv = []
    for _ in range(n_kv):
        k = rstr()
        t = take("<I")
        kv.append((k, t, rval(t)))
    return kv


def q8_0(vals):
    out = b""
    for i in range(0, len(vals), 32):
        blk = vals[i:i + 32]
        amax = max(abs(x) for x in blk)
        d = amax / 127 if amax else 0.0
        qs = [int(round(x / d)) if d else 0 for x in blk]
        out += struct.pack("<e", d) + struct.pack("<32b", *qs)
    return out


GGML = dict(F32=0, F16=1, Q8_0=8, BF16=30)


def tensor_bytes(kind, vals):
    return {"F32": f32, "F16": f16, "BF16": bf16, "Q8_0": q8_0}[kind](vals)


def gguf(kv, tensors, align=32):
    """kv: (key, type, value); tensors: (name, kind, ne list (ggml order), values)."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for k, t, v in kv:
        head += gstr(k) + struct.pack("<I", t) + gval(t, v)
    data, infos = b"", b""
    for name, kind, ne, vals in tensors:
        data += b"\0" * ((-len(data)) % align)
        infos += gstr(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        infos += struct.pack("<IQ", GGML[kind], len(data))
        data += tensor_bytes(kind, vals)
    body = head + infos
    body += b"\0" * ((-len(body)) % align)
    return body + data


def model_tensors(arch, hidden, heads, kv_heads, ff, vocab, kind2d, head_dim=None, tied=False):
    head_dim = head_dim or hidden // heads
    vals = lambda n: [((i * 37) % 17 - 8) / 16 for i in range(n)]
    ts = [("token_embd.weight", kind2d, [hidden, vocab], vals(hidden * vocab))]
    b = "blk.0."
    ts += [(b + "attn_norm.weight", "F32", [hidden], [1.0] * hidden),
           (b + "attn_q.weight", kind2d, [hidden, heads * head_dim], vals(hidden * heads * head_dim)),
           (b + "attn_k.weight", kind2d, [hidden, kv_heads * head_dim], vals(hidden * kv_heads * head_dim)),
           (b + "attn_v.weight", kind2d, [hidden, kv_heads * head_dim], vals(hidden * kv_heads * head_dim)),
           (b + "attn_output.weight", kind2d, [heads * head_dim, hidden], vals(hidden * heads * head_dim))]
    if arch == "qwen2":
        ts += [(b + "attn_q.bias", "F32", [heads * head_dim], [0.0] * heads * head_dim),
               (b + "attn_k.bias", "F32", [kv_heads * head_dim], [0.0] * kv_heads * head_dim),
               (b + "attn_v.bias", "F32", [kv_heads * head_dim], [0.0] * kv_heads * head_dim)]
    if arch == "qwen3":
        ts += [(b + "attn_q_norm.weight", "F32", [head_dim], [1.0] * head_dim),
               (b + "attn_k_norm.weight", "F32", [head_dim], [1.0] * head_dim)]
    ts += [(b + "ffn_norm.weight", "F32", [hidden], [1.0] * hidden),
           (b + "ffn_gate.weight", kind2d, [hidden, ff], vals(hidden * ff)),
           (b + "ffn_up.weight", kind2d, [hidden, ff], vals(hidden * ff)),
           (b + "ffn_down.weight", kind2d, [ff, hidden], vals(hidden * ff)),
           ("output_norm.weight", "F32", [hidden], [1.0] * hidden)]
    if not tied:
        ts.append(("output.weight", kind2d, [hidden, vocab], vals(hidden * vocab)))
    return ts


def model_kv(arch, hidden, heads, kv_heads, ff, head_dim=None):
    p = arch + "."
    kv = [("general.architecture", GT["STRING"], arch), ("general.name", GT["STRING"], "fuzz-seed"),
          (p + "context_length", GT["U32"], 64), (p + "embedding_length", GT["U32"], hidden),
          (p + "block_count", GT["U32"], 1), (p + "feed_forward_length", GT["U32"], ff),
          (p + "attention.head_count", GT["U32"], heads), (p + "attention.head_count_kv", GT["U32"], kv_heads),
          (p + "rope.freq_base", GT["F32"], 10000.0), (p + "attention.layer_norm_rms_epsilon", GT["F32"], 1e-5)]
    if head_dim:
        kv += [(p + "attention.key_length", GT["U32"], head_dim), (p + "attention.value_length", GT["U32"], head_dim)]
    return kv


def gpt2_vocab():
    byte_alphabet = sorted(tiny_tokenizer()[0]["model"]["vocab"].items(), key=lambda kv: kv[1])[:256]
    tokens = [k for k, _ in byte_alphabet] + ["Ġa", "ab", "Ġab", "<|im_start|>", "<|im_end|>"]
    merges = ["Ġ a", "a b", "Ġa b"]
    types = [1] * 259 + [3, 3]
    return [("tokenizer.ggml.model", GT["STRING"], "gpt2"), ("tokenizer.ggml.pre", GT["STRING"], "qwen2"),
            ("tokenizer.ggml.tokens", GT["ARRAY"], (GT["STRING"], tokens)),
            ("tokenizer.ggml.token_type", GT["ARRAY"], (GT["I32"], types)),
            ("tokenizer.ggml.merges", GT["ARRAY"], (GT["STRING"], merges)),
            ("tokenizer.ggml.eos_token_id", GT["U32"], 260), ("tokenizer.ggml.padding_token_id", GT["U32"], 260),
            ("tokenizer.ggml.add_bos_token", GT["BOOL"], False),
            ("tokenizer.chat_template", GT["STRING"],
             "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")]


def make_gguf():
    t = "gguf"
    real = os.path.join(SHARED, "models/stories260K/stories260K.gguf")
    # stories260K's own SentencePiece vocabulary (512 tokens, MIT) on a one-layer model.
    tok = [x for x in read_gguf_metadata(real) if x[0].startswith("tokenizer.")]
    seed(t, "llama_q8_0_spm512.gguf",
         gguf(model_kv("llama", 32, 2, 1, 32) + tok, model_tensors("llama", 32, 2, 1, 32, 512, "Q8_0", tied=True)))
    seed(t, "qwen2_f16_gpt2.gguf",
         gguf(model_kv("qwen2", 32, 2, 1, 32) + gpt2_vocab(), model_tensors("qwen2", 32, 2, 1, 32, 261, "F16")))
    seed(t, "qwen3_bf16_notok.gguf",
         gguf(model_kv("qwen3", 32, 2, 1, 32, head_dim=16) + [("general.alignment", GT["U32"], 64)],
              model_tensors("qwen3", 32, 2, 1, 32, 16, "BF16", head_dim=16), align=64))
    seed(t, "llama_f32_tiny.gguf",
         gguf(model_kv("llama", 8, 2, 2, 8) + gpt2_vocab()[:3], model_tensors("llama", 8, 2, 2, 8, 261, "F32")))
    seed(t, "metadata_types.gguf", gguf(
        [("general.architecture", GT["STRING"], "llama")] +
        [("k.%s" % n, GT[n], v) for n, v in
         [("U8", 1), ("I8", -1), ("U16", 2), ("I16", -2), ("U32", 3), ("I32", -3), ("F32", 1.5),
          ("BOOL", True), ("U64", 1 << 40), ("I64", -(1 << 40)), ("F64", 2.5)]] +
        [("k.nested", GT["ARRAY"], (GT["ARRAY"], [(GT["U8"], [1, 2]), (GT["STRING"], ["x"])]))], []))


# ---------------------------------------------------------------- config.json
def make_config():
    t = "config"
    for m in ["tiny-llama", "tiny-llama3", "tiny-qwen2", "tiny-qwen3", "stories260K"]:
        seed(t, m + ".json", open(os.path.join(SHARED, "fixtures/models", m, "config.json"), "rb").read())
    c = json.load(open(os.path.join(SHARED, "fixtures/models/tiny-llama/config.json")))
    c.update({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
              "eos_token_id": [2, 3], "head_dim": 16, "torch_dtype": "bfloat16"})
    seed(t, "llama3_rope_scaling.json", json.dumps(c, indent=1))
    tiny = open(os.path.join(SHARED, "fixtures/models/tiny-llama/config.json")).read()
    pending(t, "nested_200000_hidden_size.json", tiny.replace('"hidden_size": 64', '"hidden_size": ' + nested(200000)))


# ---------------------------------------------------------------- tokenizer.json + tokenizer_config.json
SEP = "\n--- tokenizer_config.json ---\n"


def trim_bpe(tj, keep, n_added, merges_as_strings=None):
    """A copy of a real tokenizer.json with the vocabulary cut to ids < keep, the merges that
    only make kept tokens, and the first n_added added tokens renumbered from keep."""
    tj = json.loads(json.dumps(tj))
    m = tj["model"]
    m["vocab"] = {k: v for k, v in m["vocab"].items() if v < keep}
    split = lambda x: x if isinstance(x, list) else x.split(" ", 1)
    merges = [x for x in m["merges"]
              if all(p in m["vocab"] for p in split(x)) and "".join(split(x)) in m["vocab"]]
    if merges_as_strings is not None:
        merges = [" ".join(split(x)) if merges_as_strings else split(x) for x in merges]
    m["merges"] = merges
    remap = {}
    added = []
    for i, a in enumerate([a for a in tj["added_tokens"] if a["id"] >= keep][:n_added]):
        remap[a["id"]] = keep + i
        a["id"] = keep + i
        added.append(a)
    tj["added_tokens"] = [a for a in tj["added_tokens"] if a["id"] < keep and a not in added] + added
    return tj, remap


def make_tokenizer():
    t = "tokenizer"
    tk = os.path.join(SHARED, "tokenizers")
    # Qwen3 (Apache-2.0): byte-level BPE, NFC, merges as pairs, chat template with tools/thinking.
    q, remap = trim_bpe(json.load(open(os.path.join(tk, "qwen3/tokenizer.json"))), 400, 6)
    qc = json.load(open(os.path.join(tk, "qwen3/tokenizer_config.json")))
    qc["added_tokens_decoder"] = {str(remap[int(k)]): v for k, v in qc["added_tokens_decoder"].items()
                                  if int(k) in remap}
    seed(t, "qwen3_trimmed.txt", json.dumps(q, ensure_ascii=False) + SEP + json.dumps(qc, ensure_ascii=False))
    seed(t, "qwen3_trimmed_noconfig.json", json.dumps(q, ensure_ascii=False))
    # Mistral (Apache-2.0): SentencePiece-style BPE with byte fallback, Prepend/Replace
    # normalizer, TemplateProcessing adding <s>.
    m, _ = trim_bpe(json.load(open(os.path.join(tk, "mistral/tokenizer.json"))), 600, 0)
    mc = open(os.path.join(tk, "mistral/tokenizer_config.json")).read()
    seed(t, "mistral_trimmed.txt", json.dumps(m, ensure_ascii=False) + SEP + mc)
    # Llama 3's layout (merges as strings, ignore_merges, TemplateProcessing with
    # <|begin_of_text|>) on the trimmed Qwen3 byte-level vocabulary.
    l3 = json.load(open(os.path.join(tk, "llama3/tokenizer.json")))
    ll, _ = trim_bpe(json.load(open(os.path.join(tk, "qwen3/tokenizer.json"))), 400, 0, merges_as_strings=True)
    ll["model"]["ignore_merges"] = True
    ll["pre_tokenizer"] = l3["pre_tokenizer"]
    ll["normalizer"] = None
    ll["decoder"] = l3["decoder"]
    ll["added_tokens"] = [{"id": 400 + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                           "normalized": False, "special": True}
                          for i, c in enumerate(["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
                                                 "<|start_header_id|>", "<|end_header_id|>"])]
    ll["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [], "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [400],
                                                               "tokens": ["<|begin_of_text|>"]}}}]}
    lc = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "clean_up_tokenization_spaces": True,
          "chat_template": "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                           "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
                           "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"}
    seed(t, "llama3_layout.txt", json.dumps(ll, ensure_ascii=False) + SEP + json.dumps(lc))
    # A minimal byte-level tokenizer, also the JSONL target's tokenizer.
    tiny = tiny_tokenizer()
    seed(t, "tiny_bytelevel.txt", json.dumps(tiny[0], ensure_ascii=False) + SEP + json.dumps(tiny[1]))
    jt = os.path.join(HERE, "jsonl_tokenizer")
    os.makedirs(jt, exist_ok=True)
    json.dump(tiny[0], open(os.path.join(jt, "tokenizer.json"), "w"), ensure_ascii=False, indent=1)
    json.dump(tiny[1], open(os.path.join(jt, "tokenizer_config.json"), "w"), indent=1)
    # Known crashes (issue 15): negative and duplicate ids; a JSON nested 200,000 deep.
    neg = json.loads(json.dumps(m))
    neg["added_tokens"].append({"id": -1, "content": "<neg>", "single_word": False, "lstrip": False,
                                "rstrip": False, "normalized": False, "special": True})
    pending(t, "negative_added_token_id.txt", json.dumps(neg, ensure_ascii=False) + SEP + mc)
    neg = json.loads(json.dumps(m))
    neg["model"]["vocab"]["\u2581neg"] = -5
    pending(t, "negative_vocab_id.txt", json.dumps(neg, ensure_ascii=False) + SEP + mc)
    dup = json.loads(json.dumps(m))
    dup["model"]["vocab"]["\u2581dup"] = 300
    regress(t, "duplicate_vocab_id.txt", json.dumps(dup, ensure_ascii=False) + SEP + mc)
    regress(t, "nested_200000_config.txt", json.dumps(m, ensure_ascii=False) + SEP +
            '{"bos_token":' + nested(200000) + "}")


def tiny_tokenizer():
    # GPT-2's byte alphabet: printable bytes as themselves, the rest from U+0100.
    keep = [b for b in range(256) if (33 <= b <= 126) or (0xA1 <= b <= 0xAC) or b >= 0xAE]
    table, n = {}, 0
    for b in range(256):
        table[b] = chr(b) if b in keep else chr(256 + n)
        n += b not in keep
    vocab = {table[b]: i for i, b in enumerate(range(256))}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    added = [{"id": len(vocab) + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, c in enumerate(specials)]
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
          "normalizer": {"type": "NFC"},
          "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
          "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
          "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
          "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                    "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                    "vocab": vocab, "merges": [list(x) for x in merges]}}
    cfg = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "add_bos_token": False,
           "clean_up_tokenization_spaces": False,
           "chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                            "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
                            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"}
    return tj, cfg


# ---------------------------------------------------------------- chat templates (raw Jinja)
def make_chat_template():
    t = "chat_template"
    tk = os.path.join(SHARED, "tokenizers")
    seed(t, "qwen3.jinja", json.load(open(os.path.join(tk, "qwen3/tokenizer_config.json")))["chat_template"])
    mc = json.load(open(os.path.join(tk, "mistral/tokenizer_config.json"))).get("chat_template")
    if isinstance(mc, str):
        seed(t, "mistral.jinja", mc)
    src = open(os.path.join(ROOT, "data/chat_template.cpp")).read()
    for name, body in re.findall(r'const char\* k(\w+) = R"\((.*?)\)";', src, re.S):
        seed(t, "builtin_%s.jinja" % name.lower(), body)
    seed(t, "features.jinja", """{%- macro fmt(x, sep=', ') -%}{{ x | join(sep) }}{%- endmacro -%}
{%- set ns = namespace(n=0, seen=[]) -%}
{%- for m in messages if m.role != 'system' -%}
{%- set ns.n = ns.n + 1 -%}
{{ loop.index }}/{{ loop.length }} {{ m.role | upper }}: {{ m.content[:20] | replace('2', 'two') | trim }}
{%- if m.reasoning_content is defined %} <think>{{ m.reasoning_content }}</think>{% endif %}
{%- if not loop.last %}{{ '\\n' }}{% endif -%}
{%- endfor %}
{{ fmt(['a', 'b'] + [ns.n | string]) }} {{ messages | length }} {{ (3 * 4) // 5 }} {{ 7 % 3 }} {{ 2 ** 3 }}
{{ {'k': [1, 2.5, none, true]} | tojson }} {{ messages[-1]['content'].split('+') }} {{ 'x' ~ 1 ~ none }}
{%- if tools is defined and tools | length > 0 %}tools{% elif enable_thinking is false %} no-think{% else %}?{% endif %}
{{ "%s-%d" | format('a', 3) if false else 'b' }} {{ range(3) | list }} {{ messages | map(attribute='role') | unique | list }}
{%- raw %}{{ not parsed }}{% endraw %}""")


# ---------------------------------------------------------------- JSONL instruction data
def make_jsonl():
    t = "jsonl"
    gsm = [json.loads(l) for l in open(os.path.join(SHARED, "corpora/gsm8k/train.jsonl")).readlines()[:2]]
    seed(t, "completion.jsonl", "".join(json.dumps({"prompt": r["question"], "completion": r["answer"]}) + "\n"
                                        for r in gsm))
    alp = open(os.path.join(SHARED, "corpora/gsm8k/train_alpaca.jsonl")).readlines()[:2]
    seed(t, "alpaca.jsonl", "".join(alp) + json.dumps({"instruction": "Add.", "input": "2 and 3", "output": "5"}) + "\n")
    conv = json.load(open(os.path.join(SHARED, "fixtures/chat/conversations.json")))
    conv = conv[1:] + conv[:1]  # the user-only conversation (no target: an error) last
    seed(t, "chat.jsonl", "".join(json.dumps({"messages": c["messages"]}, ensure_ascii=False) + "\n" for c in conv))
    seed(t, "mixed_lines.jsonl", '\r\n  \n{"prompt": "a\\u00e9\\ud83e\\udd99", "completion": "b"}\r\n'
                                 '{"messages": [{"role": "tool", "content": "x"}]}\n[1, 2]\n{"prompt": 3}\n')
    pending(t, "nested_200000.jsonl", '{"prompt": ' + nested(200000) + ', "completion": "x"}\n')


# ---------------------------------------------------------------- PEFT adapter_config.json
def make_peft():
    t = "peft"
    base = {"base_model_name_or_path": "fixtures/tiny-llama", "bias": "none", "fan_in_fan_out": False,
            "inference_mode": True, "init_lora_weights": True, "lora_alpha": 16, "lora_dropout": 0.05,
            "modules_to_save": None, "peft_type": "LORA", "r": 8, "rank_pattern": {}, "alpha_pattern": {},
            "revision": None, "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM",
            "use_dora": False, "use_rslora": False}
    seed(t, "peft_q_v.json", json.dumps(base, indent=2))
    seed(t, "all_linear.json", json.dumps(dict(base, target_modules="all-linear", r=4, lora_alpha=8.5,
                                               use_rslora=True), indent=2))
    seed(t, "seven.json", json.dumps(dict(base, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                "gate_proj", "up_proj", "down_proj"],
                                          layers_to_transform=None), indent=2))
    seed(t, "minimal.json", '{"r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}')
    regress(t, "nested_200000_targets.json", '{"r": 2, "lora_alpha": 4, "target_modules": ' + nested(200000) + "}")
    pending(t, "nested_200000_bias.json", '{"bias": ' + nested(200000) + ', "r": 2}')


# ---------------------------------------------------------------- recipes
def make_recipe():
    t = "recipe"
    d = os.path.join(ROOT, "recipes/configs")
    for f in sorted(os.listdir(d)):
        if f.endswith(".yaml"):
            seed(t, f, open(os.path.join(d, f), "rb").read())
    regress(t, "nested_200000.yaml", "model:\n  path: " + nested(200000) + "\n")


def main():
    # Rewrites what it makes; the checkpoint seeds and any regress/pending input added by hand
    # (e.g. a crash the fuzzer found) are left alone.
    make_safetensors()
    make_gguf()
    make_config()
    make_tokenizer()
    make_chat_template()
    make_jsonl()
    make_peft()
    make_recipe()


if __name__ == "__main__":
    main()
