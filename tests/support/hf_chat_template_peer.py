"""The reference peer for tests/test_chat_template_matches_hf.cpp: renders conversations with
transformers' apply_chat_template and each model's official jinja chat template.

    hf_chat_template_peer.py TEMPLATES_DIR TOKENIZER_DIR OUT_JSON

TEMPLATES_DIR holds peers.json ({pdsd template name: {jinja, bos_token, eos_token}}), the .jinja
files and conversations.json ([{name, messages}]). The jinja is loaded through a real tokenizer object
(the shipped tiny Qwen2 one) by setting its chat_template; bos/eos texts are the model's own, passed
as template variables as its tokenizer would. Writes {template: {conversation name: text}}.
"""
import json
import pathlib
import sys

import transformers
from transformers import AutoTokenizer


def main() -> None:
    templates_dir, tokenizer_dir, out_path = (pathlib.Path(a) for a in sys.argv[1:4])
    peers = json.loads((templates_dir / "peers.json").read_text())
    conversations = json.loads((templates_dir / "conversations.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rendered = {"transformers": transformers.__version__, "templates": {}}
    for name, peer in peers.items():
        tokenizer.chat_template = (templates_dir / peer["jinja"]).read_text()
        special = {k: peer[k] for k in ("bos_token", "eos_token") if peer.get(k) is not None}
        rendered["templates"][name] = {
            c["name"]: tokenizer.apply_chat_template(c["messages"], tokenize=False, **special)
            for c in conversations
        }
    out_path.write_text(json.dumps(rendered, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
