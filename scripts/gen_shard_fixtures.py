#!/usr/bin/python3
"""Writes the token-shard fixtures that tests/test_shards.cpp reads back.

Usage: /usr/bin/python3 scripts/gen_shard_fixtures.py tests/fixtures/shards

The files are laid out exactly as the tools that own the formats write them:
  nanogpt_u16.bin  nanoGPT's prepare.py: np.array(ids, dtype=np.uint16).tofile(path)
  llmc_u16.bin     llm.c dev/data/data_common.py write_datafile, "gpt-2" (magic 20240520, version 1)
  llmc_u32.bin     the same, "llama-3" (magic 20240801, version 7, uint32 ids)
  expected_u16.txt / expected_u32.txt  the ids, one line, space-separated
Only numpy is needed. The outputs are deterministic (fixed seed), so rerunning the script
leaves the committed files unchanged.
"""
import os
import sys

import numpy as np


def write_llmc(path, ids, magic, version, dtype):
    header = np.zeros(256, dtype=np.int32)
    header[0] = magic
    header[1] = version
    header[2] = len(ids)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.array(ids, dtype=dtype).tobytes())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/shards"
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240520)
    # edges of each width first, then random ids
    u16 = [0, 1, 2, 255, 256, 1000, 50256, 65534, 65535] + [int(x) for x in rng.integers(0, 65536, 55)]
    u32 = [0, 1, 65535, 65536, 128000, 128255, 2**31 - 1] + [int(x) for x in rng.integers(0, 2**31, 57)]

    np.array(u16, dtype="<u2").tofile(os.path.join(out, "nanogpt_u16.bin"))
    write_llmc(os.path.join(out, "llmc_u16.bin"), u16, 20240520, 1, "<u2")
    write_llmc(os.path.join(out, "llmc_u32.bin"), u32, 20240801, 7, "<u4")
    for name, ids in (("expected_u16.txt", u16), ("expected_u32.txt", u32)):
        with open(os.path.join(out, name), "w") as f:
            f.write(" ".join(str(t) for t in ids) + "\n")


if __name__ == "__main__":
    main()
