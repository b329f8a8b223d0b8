#!/usr/bin/python3
"""An independent reference for kdtrain's Hugging Face tokenizer support: it trains a small
byte-level BPE, writes it as a tokenizer.json, and encodes texts with its own encoder (GPT-2's
classic `bpe()` loop over Hugging Face's byte-to-character spelling, the pre-tokenizer pattern
run by Python's `regex` module), none of it kdtrain's code. Needs Debian's python3-regex.

  make-fixture DIR --style=llama3|gpt2
      llama3: Llama 3's pre-tokenizer (a Split by its pattern, then ByteLevel), ignore_merges,
              <|begin_of_text|> put before every text by a TemplateProcessing post-processor,
              specials as added tokens after the vocab.
      gpt2:   ByteLevel with GPT-2's pattern, <|endoftext|> both in the vocab and an added
              token.
      Vocab ids are shuffled, so that no id means what it would in kdtrain's own layout.
      Writes tokenizer.json, tokenizer_config.json and encodings.json: texts (hex, since some
      are not valid UTF-8) with their ids.
  encode DIR HEX     prints the ids of the bytes HEX under DIR/tokenizer.json.
  check-shard DIR SHARD FILE
      SHARD (kdtrain's token shard format) must hold FILE as one document, encoded by this
      script under DIR/tokenizer.json and framed as tokenizer_config.json says: bos_token
      first when the tokenizer.json's post-processor puts it there, eos_token last.

Text that is not valid UTF-8 (which no Hugging Face tokenizer can take) is cut, as kdtrain
cuts it, at every maximal run of bytes that do not start a valid UTF-8 sequence: each run is
one piece, and the pattern runs on the valid stretches between runs.
"""
import json
import os
import random
import sys

import regex

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

TRAIN_TEXT = """The quick brown fox jumps over the lazy dog. It's 2026, and we're distilling models!
Die Bären schlafen im Wald; über Nacht fällt Schnee. Ça va très bien, merci.
Быстрая коричневая лиса прыгает через ленивую собаку. Ελληνικά γράμματα.
日本語のテキストも少し入れます。中文文本也在这里。한국어 문장도 있습니다.
हिन्दी में कुछ शब्द। العربية نص قصير. Numbers: 12345 678 9 3.14159 and 1,000,000.
Emoji 😀👍🏽 👨‍👩‍👧 🇩🇪 ❤️ and symbols ← → ∑ ≠ ≤ ™ © « » — “quotes”.
    indented code(x) { return x * 2; }\r\n\ttabs\tand   spaces   
I'M SHOUTING, YOU'LL SEE, HE'D SAY. don't won't can't they've
"""

TEST_TEXTS = [
    "The quick brown fox: it's 2026 — we're distilling!".encode(),
    ("Grüße aus Köln 🇩🇪! Привет, мир. こんにちは世界。你好，世界 👋🏽 👨‍👩‍👧‍👦\n"
     "हिन्दी नमस्ते العربية مرحبا 12345678 3.14 I'M YOU'LL\r\n\t  trailing   ").encode(),
    # not valid UTF-8: a stray continuation byte, a truncated sequence, an overlong form,
    # an encoded surrogate, 0xFF, and a sequence cut by the end of the text
    b"bad \x80 bytes\xe2\x82 here \xc0\xaf and \xed\xa0\x80 \xff\xfe ok \xf0\x9f\x98",
    b"",
    " leading space and trailing newline\n\n".encode(),
]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()


def spell(bs):
    return "".join(B2U[b] for b in bs)


def valid_stretches(data):
    """(bytes, is_valid) runs: maximal valid UTF-8 stretches and maximal invalid runs."""
    out, pos = [], 0
    while pos < len(data):
        try:
            data[pos:].decode("utf-8")
            out.append((data[pos:], True))
            break
        except UnicodeDecodeError as e:
            if e.start > 0:
                out.append((data[pos:pos + e.start], True))
            bad_end = pos + e.end
            if out and not out[-1][1]:
                out[-1] = (out[-1][0] + data[pos + e.start:bad_end], False)
            else:
                out.append((data[pos + e.start:bad_end], False))
            pos = bad_end
    return out


def pieces(data, pattern):
    out = []
    for chunk, ok in valid_stretches(data):
        if not ok:
            out.append(chunk)
            continue
        text = chunk.decode("utf-8")
        gap = 0
        for m in regex.finditer(pattern, text):
            if m.start() == m.end():
                continue
            if m.start() > gap:
                out.append(text[gap:m.start()].encode())
            out.append(m.group().encode())
            gap = m.end()
        if gap < len(text):
            out.append(text[gap:].encode())
    return out


def merge_pair(parts, pair):
    """parts with every occurrence of the adjacent pair joined, left to right."""
    merged, i = [], 0
    while i < len(parts):
        if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
            merged.append(parts[i] + parts[i + 1])
            i += 2
        else:
            merged.append(parts[i])
            i += 1
    return merged


def bpe(word, ranks):
    """GPT-2's encoder.py loop: merge the lowest-ranked adjacent pair everywhere, repeat."""
    parts = list(word)
    while len(parts) > 1:
        pairs = {(parts[i], parts[i + 1]) for i in range(len(parts) - 1)}
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        parts = merge_pair(parts, best)
    return parts


def train(pattern, n_merges):
    counts = {}
    for p in pieces(TRAIN_TEXT.encode(), pattern):
        w = tuple(spell(p[i:i + 1]) for i in range(len(p)))
        counts[w] = counts.get(w, 0) + 1
    merges = []
    for _ in range(n_merges):
        pair_counts = {}
        for w, c in counts.items():
            for i in range(len(w) - 1):
                pair_counts[w[i], w[i + 1]] = pair_counts.get((w[i], w[i + 1]), 0) + c
        if not pair_counts:
            break
        best = max(sorted(pair_counts), key=lambda p: pair_counts[p])
        merges.append(best)
        new = {}
        for w, c in counts.items():
            out = tuple(merge_pair(list(w), best))
            new[out] = new.get(out, 0) + c
        counts = new
    return merges


class Reference:
    def __init__(self, tok):
        model = tok["model"]
        self.vocab = model["vocab"]
        self.ranks = {}
        for k, m in enumerate(model["merges"]):
            a, b = m.split(" ") if isinstance(m, str) else m
            self.ranks.setdefault((a, b), k)
        self.ignore_merges = model.get("ignore_merges", False)
        pre = tok["pre_tokenizer"]
        if pre["type"] == "ByteLevel":
            self.pattern = GPT2_PATTERN
        else:
            self.pattern = pre["pretokenizers"][0]["pattern"]["Regex"]

    def encode(self, data):
        ids = []
        for p in pieces(data, self.pattern):
            word = spell(p)
            if self.ignore_merges and word in self.vocab:
                ids.append(self.vocab[word])
                continue
            ids.extend(self.vocab[t] for t in bpe([B2U[b] for b in p], self.ranks))
        return ids


def make_fixture(out, style):
    rng = random.Random(1234 if style == "llama3" else 5678)
    pattern = LLAMA3_PATTERN if style == "llama3" else GPT2_PATTERN
    merges = train(pattern, 300)
    tokens = [B2U[b] for b in range(256)] + [a + b for a, b in merges]
    if style == "llama3":
        # Whole words in the vocab that no merge makes, as Llama 3 has: only ignore_merges
        # reaches them.
        tokens += [spell(w.encode()) for w in (" distilling", "Köln", "世界")]
    tokens = list(dict.fromkeys(tokens))
    ids = list(range(len(tokens)))
    rng.shuffle(ids)
    vocab = dict(zip(tokens, ids))
    n = len(tokens)
    if style == "llama3":
        specials = [("<|begin_of_text|>", n), ("<|end_of_text|>", n + 1), ("<|reserved_special_token_0|>", n + 2)]
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
        bos = {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}
        post = {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}}, bos, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [n],
                                                      "tokens": ["<|begin_of_text|>"]}}}]}
        config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
                  "tokenizer_class": "PreTrainedTokenizerFast"}
    else:
        specials = [("<|endoftext|>", n)]
        vocab["<|endoftext|>"] = n
        pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        post = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
        config = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "tokenizer_class": "GPT2Tokenizer"}
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for c, i in specials],
        "normalizer": None, "pre_tokenizer": pre, "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": style == "llama3", "vocab": vocab,
                  # GPT-2's file spells merges "a b"; newer files (Llama 3's re-saves) as pairs
                  "merges": [f"{a} {b}" if style == "gpt2" else [a, b] for a, b in merges]},
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1)
    ref = Reference(tok)
    cases = [{"hex": t.hex(), "ids": ref.encode(t)} for t in TEST_TEXTS]
    cases.append({"hex": TRAIN_TEXT.encode().hex(), "ids": ref.encode(TRAIN_TEXT.encode())})
    eot = dict(specials)["<|end_of_text|>" if style == "llama3" else "<|endoftext|>"]
    bos = n if style == "llama3" else -1
    with open(os.path.join(out, "encodings.json"), "w") as f:
        json.dump({"style": style, "vocab_size": n + len(specials) if style == "llama3" else n + 1,
                   "eot_id": eot, "bos_id": bos, "cases": cases}, f, indent=1)
    print(f"{out}: {len(merges)} merges, vocab {len(vocab)}, {len(cases)} texts, "
          f"{sum(len(c['ids']) for c in cases)} ids")


def special_id(tok, name):
    if isinstance(name, dict):
        name = name.get("content")
    for a in tok["added_tokens"]:
        if a["content"] == name:
            return a["id"]
    raise SystemExit(f"{name!r} is not an added token")


def adds_bos(post):
    if not post:
        return False
    if post["type"] == "Sequence":
        return any(adds_bos(p) for p in post["processors"])
    return post["type"] == "TemplateProcessing" and "SpecialToken" in post["single"][0]


def check_shard(tok_dir, shard, text_file):
    import struct
    with open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    with open(os.path.join(tok_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    with open(text_file, "rb") as f:
        data = f.read()
    want = Reference(tok).encode(data) + [special_id(tok, cfg["eos_token"])]
    if adds_bos(tok.get("post_processor")):
        want = [special_id(tok, cfg["bos_token"])] + want
    with open(shard, "rb") as f:
        blob = f.read()
    magic, version, width, _ = struct.unpack("<4I", blob[:16])
    (count,) = struct.unpack("<Q", blob[16:24])
    assert magic == 0x4B54444B and version == 1, "not a kdtrain shard"
    got = list(struct.unpack(f"<{count}{'H' if width == 2 else 'I'}", blob[64:64 + count * width]))
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        print(f"MISMATCH: {len(got)} ids in the shard, {len(want)} from the reference; first difference at {first}: "
              f"{got[first:first + 5]} vs {want[first:first + 5]}")
        return 1
    print(f"{len(got)} ids match the reference encoding of {os.path.basename(text_file)}")
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "make-fixture" and argv[3] in ("--style=llama3", "--style=gpt2"):
        make_fixture(argv[2], argv[3].split("=")[1])
        return 0
    if len(argv) == 4 and argv[1] == "encode":
        with open(os.path.join(argv[2], "tokenizer.json"), encoding="utf-8") as f:
            print(json.dumps(Reference(json.load(f)).encode(bytes.fromhex(argv[3]))))
        return 0
    if len(argv) == 5 and argv[1] == "check-shard":
        return check_shard(argv[2], argv[3], argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
