#!/usr/bin/env python3
"""A GGUF of a Qwen GGUF's tokenizer fields alone, for make_random_gguf.py's --vocab-from.

The speed machine has no fixture models (scripts/dev/device_tree.sh hides them from the device tool),
and make_random_gguf.py copies its tokenizer from an existing Qwen GGUF; the fields alone are 6 MB
(1.3 MB as xz) where the smallest fixture model is 16 MB. Needs numpy and llama.cpp's gguf-py:

  PYTHONPATH=../shared/peer/conv/gguf-py python3 scripts/dev/vocab_gguf.py \\
      tests/data/gguf/qwen2-tiny-Q4_K_M.gguf vocab.gguf
"""
import sys

import gguf


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} FROM.gguf OUT.gguf")
    reader = gguf.GGUFReader(sys.argv[1])
    writer = gguf.GGUFWriter(sys.argv[2], reader.fields["general.architecture"].contents())
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), field.types[0], sub_type=sub)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()


if __name__ == "__main__":
    main()
