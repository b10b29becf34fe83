"""render_ref.py renders chat templates with Python's Jinja2 configured as transformers' apply_chat_template
configures it, the second reference of the Go tests (the first is @huggingface/jinja, render_ref.mjs).

Usage: python3 render_ref.py < input.json > results.json
  input.json: {"templates": ["...", ...], "cases": [{"template": index, "context": {...}}, ...]}; a context holds
  the template's variables, JSON key order kept.
  results.json: one entry per case, in order: {"output": "..."} or {"error": "the message"}; a raise_exception
  error's message is the template's own, any other is prefixed with the exception's class name.

The environment: a sandboxed, immutable Jinja2 environment with trim_blocks and lstrip_blocks on and the loop
controls extension; tojson is json.dumps with ensure_ascii=False and keys in order (indent, separators, sort_keys and
ensure_ascii passed through); raise_exception(message) raises a TemplateError; strftime_now(format) formats the local
time now.
"""
import json
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class Raised(Exception):
    pass


def raise_exception(message):
    raise Raised(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

data = json.load(sys.stdin)
compiled = {}
results = []
for case in data["cases"]:
    try:
        if case["template"] not in compiled:
            compiled[case["template"]] = env.from_string(data["templates"][case["template"]])
        results.append({"output": compiled[case["template"]].render(**case["context"])})
    except Raised as e:
        results.append({"error": str(e)})
    except Exception as e:  # a template error other than raise_exception
        results.append({"error": type(e).__name__ + ": " + str(e)})
json.dump(results, sys.stdout, ensure_ascii=False)
