#!/usr/bin/env python3
"""rewrite_stage.py - a spiketalk pipeline stage written in Python: it
rewrites the agent's text on its way to the synthesizer, with
spiketalk.stage.Stage (python3-zmq, docs/PROTOCOL.md) doing the protocol.

It makes whole-word replacements ("--replace 'hello->goodbye,you->they'")
and, with --upper, capital letters. Every other message passes on unchanged
but for the hop it appends, as the protocol asks of every stage.

In a configuration, the stage is `type = external`:

    [pipeline]
    transport = tcp
    base_port = 5600
    key = talk.key              ; `spiketalk keygen talk.key`: CurveZMQ on tcp
    [stage.agent]
    type = text_source
    lines = hello there | how are you
    out = polish
    [stage.polish]
    type = external             ; this script
    out = voice
    [stage.voice]
    type = text_sink

Start the pipeline (`spiketalk run --config talk.ini`): it waits for this
stage to join before it starts. Then, with the endpoints the configuration
gives the stage:

    spiketalk stage polish --config talk.ini --endpoints > polish.ep
    python3 rewrite_stage.py --endpoints polish.ep --replace 'hello->goodbye'

(the endpoints file carries the stage's keys too; on a trusted loopback
`insecure = yes` in [pipeline] runs plain tcp instead, with a warning).

or name them yourself (--name, --id, --listen, --out, --control, --report).
Run from a checkout it uses the package beside it (bindings/python); once
`pip install bindings/python` is done, from anywhere.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from spiketalk import wire  # noqa: E402
from spiketalk.stage import Stage  # noqa: E402


def parse_rules(spec):
    rules = {}
    for rule in filter(None, (r.strip() for r in spec.split(","))):
        if "->" not in rule:
            sys.exit("rewrite_stage: --replace: '%s' is not WORD->WORD" % rule)
        a, b = (x.strip() for x in rule.split("->", 1))
        rules[a.lower()] = b
    return rules


def rewrite(text, rules, upper):
    out = re.sub(r"[A-Za-z0-9']+", lambda m: rules.get(m.group(0).lower(), m.group(0)), text)
    return out.upper() if upper else out


class RewriteStage(Stage):
    """Rewrites TEXT tokens; passes everything else on."""

    def __init__(self, rules=None, upper=False, **endpoints):
        Stage.__init__(self, **endpoints)
        self.rules = rules or {}
        self.upper = upper

    def on_text(self, msg, text):
        flags = msg.text()[0]
        return msg.derive(payload=wire.text_payload(rewrite(text, self.rules, self.upper), flags))


def main(argv=None):
    ap = RewriteStage.argument_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--replace", default="", help="whole words: 'a->b,c->d'")
    ap.add_argument("--upper", action="store_true", help="capital letters")
    args = ap.parse_args(argv)
    stage = RewriteStage.from_args(args, rules=parse_rules(args.replace), upper=args.upper)
    return stage.run()


if __name__ == "__main__":
    sys.exit(main())
