"""The words of the synthetic three-topic text data that tests and smoke runs generate (a task a tiny
model separates in a few steps), and of the tiny WordPiece vocabulary built over them
(:func:`ftrecipes.testing.tiny_wordpiece_tokenizer`). Kept apart from :mod:`ftrecipes.testing` because
it imports neither torch nor transformers."""

TOPIC_WORDS = {
    "sport": "match goal team player coach season league cup score win".split(),
    "tech": "software chip computer phone network data cloud code app robot".split(),
    "money": "bank market stock price profit trade shares economy tax fund".split(),
}

__all__ = ["TOPIC_WORDS"]
