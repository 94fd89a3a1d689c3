#!/usr/bin/env python3
"""reply_stage.py - the agent's brain as a Python pipeline stage: it collects
the user's text tokens until the end of an utterance, asks the spiking
language model for the answer (spiketalk.LanguageModel.reply: the dialogue
runtime with its tools, in C), and sends the answer on as text tokens, one
word each with the space before it, the last one flagged END, like the
model's own tokens. Words (a recognizer's WORDS messages) count as user text
too; everything else passes on with this stage's hop.

    [stage.user]
    type = text_source
    lines = what is seven times six | what time is it
    out = agent
    [stage.agent]
    type = external             ; this script
    out = voice
    [stage.voice]
    type = synthesizer          ; or text_sink

    spiketalk stage agent --config talk.ini --endpoints > agent.ep
    python3 reply_stage.py --endpoints agent.ep --model models/dialogue.stnn

Each answer keeps the sample index and epoch of the utterance it answers,
so the latency from the user's words to the answer reads off the hops.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import spiketalk  # noqa: E402
from spiketalk import wire  # noqa: E402
from spiketalk.stage import Stage  # noqa: E402


class ReplyStage(Stage):
    """Answers each utterance of user text with the language model."""

    def __init__(self, model_path, hour=None, minute=0, **endpoints):
        Stage.__init__(self, **endpoints)
        self.model_path = model_path
        self.lm = None
        self.hour, self.minute = hour, minute
        self.heard = []

    def setup(self):
        # a model that does not load is reported to the supervisor (FAILED)
        self.lm = spiketalk.LanguageModel.load(self.model_path)

    def answer(self, msg):
        text = "".join(self.heard).strip()
        self.heard = []
        if not text:
            return None
        r = self.lm.reply(text, hour=self.hour, minute=self.minute)
        words = r.text.split()
        out = []
        for k, w in enumerate(words):
            last = k == len(words) - 1
            out.append(msg.derive(wire.TEXT, wire.text_payload(
                (" " if k else "") + w, wire.TEXT_END if last else 0)))
        return out

    def on_text(self, msg, text):
        flags = msg.text()[0]
        self.heard.append(text)
        return self.answer(msg) if flags & wire.TEXT_END else None

    def on_words(self, msg, words):
        flags, entries = msg.words()
        if flags & wire.WORDS_FINAL:
            self.heard.append(" ".join(e[3] for e in entries))
            return self.answer(msg)
        return None

    def on_control(self, msg, cmd, arg):
        if cmd == wire.INTERRUPT:
            self.heard = []  # the user barged in: what was heard belongs to an old turn


def main(argv=None):
    ap = ReplyStage.argument_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.environ.get("SPIKETALK_DIALOGUE_MODEL",
                                                      "models/dialogue.stnn"),
                    help="the dialogue model (default models/dialogue.stnn)")
    ap.add_argument("--time", help="HH:MM for the time tool (default: the system clock)")
    args = ap.parse_args(argv)
    hour = minute = None
    if args.time:
        hour, minute = (int(x) for x in args.time.split(":"))
    stage = ReplyStage.from_args(args, model_path=args.model, hour=hour, minute=minute or 0)
    try:
        return stage.run()
    finally:
        if stage.lm is not None:
            stage.lm.close()


if __name__ == "__main__":
    sys.exit(main())
