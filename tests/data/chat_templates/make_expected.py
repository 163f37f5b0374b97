#!/usr/bin/env python3
"""Render every template here x every conversation with python jinja2 the way transformers'
apply_chat_template does, and write expected.json for tests/test_chat_template.cpp.

Run from any directory: python3 tests/data/chat_templates/make_expected.py
"""
import json
import pathlib

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = pathlib.Path(__file__).resolve().parent

# Special tokens as the models' tokenizer_config.json name them.
TOKENS = {
    "jetmoe-8b-chat.jinja": ("<s>", "</s>"),
    "zephyr.jinja": ("<s>", "</s>"),
    "llama-2-chat.jinja": ("<s>", "</s>"),
    "chatml.jinja": ("<s>", "<|im_end|>"),
    "mistral-instruct-v0.2.jinja": ("<s>", "</s>"),
    "gemma-it.jinja": ("<bos>", "<eos>"),
    "llama-3-instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "deepseek-coder-instruct.jinja": ("<｜begin▁of▁sentence｜>", "<|EOT|>"),
    "features.jinja": ("<s>", "</s>"),
}

SYS = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "Hello, who are you?"}
A1 = {"role": "assistant", "content": "  I am a bot.  "}
U2 = {"role": "user", "content": "Say \"hi\" in\nFrench, s'il vous plaît. ünïcödé ✓"}

CONVERSATIONS = {
    "single_user": [U1],
    "system_user": [SYS, U1],
    "multi_turn": [SYS, U1, A1, U2],
    "multi_turn_no_system": [U1, A1, U2],
    "ends_with_assistant": [U1, A1],
    "roles_not_alternating": [U1, U2],
    "assistant_first": [A1, U1],
}


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers replaces jinja's html-escaping tojson with plain json.dumps.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def main():
    env = environment()
    cases = []
    for name in sorted(TOKENS):
        template = env.from_string((HERE / name).read_text(encoding="utf-8"))
        bos, eos = TOKENS[name]
        for conv_name, messages in CONVERSATIONS.items():
            for agp in (True, False):
                case = {
                    "template": name,
                    "conversation": conv_name,
                    "messages": messages,
                    "add_generation_prompt": agp,
                    "bos_token": bos,
                    "eos_token": eos,
                }
                try:
                    # transformers passes tools=None and documents=None when not given.
                    case["output"] = template.render(
                        messages=messages, tools=None, documents=None,
                        add_generation_prompt=agp, bos_token=bos, eos_token=eos)
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    out = {"generator": "make_expected.py, jinja2 " + jinja2.__version__, "cases": cases}
    (HERE / "expected.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(cases)} cases, {sum('error' in c for c in cases)} errors")


if __name__ == "__main__":
    main()
