"""A second reading of what a patient wants: a small text classifier trained on the dev half of the outside
authors' corpus (conversation/eval/corpus/), which the rules engine consults beside its own rules.

The rules read intent from phrases; a patient who says the same thing in words the rules have never met gets a
wrong step (a question about a bruise answered with Botox times, a "who is texting me?" in Spanish answered from a
document). The classifier learns from words and parts of words, so it carries over to wordings it has not seen:
each of the corpus's texts is a patient's text, the context it was sent in (a new patient, times on offer, a booked
appointment) and the action a good receptionist takes (answer, offer times, hand off, urgent...).

It is trained when first used, in process, from data the project ships (no weights downloaded or stored): TF-IDF of
words and word pairs and of character n-grams within words, then a logistic model fitted by stochastic gradient
descent (scikit-learn), in about a second. Training is deterministic. Only the dev half is learnt from; the test
half stays unseen, so its figure still measures texts nobody here has read. ``CONVERSATION_INTENT_MODEL = False``
turns the second reading off.

How far to trust it was measured on dev data only (docs/DECISIONS.md, session 13): trained without one round of
authors and asked about that round, its guesses at probability >= CONFIDENT (83% of them) were right 97% of the
time. The rules engine acts only on the readings it would otherwise get wrong most often (rules.py,
``_second_reading``).
"""

import functools
import logging
import threading
from dataclasses import dataclass

from django.conf import settings

from conversation.corpus import corpus

log = logging.getLogger(__name__)

CONFIDENT = 0.8  # the probability from which a guess is acted on (docs/DECISIONS.md, session 13)
SURE = 0.9  # from which a question is taken out of the rules' booking steps
# From which a symptom is urgent: a false alarm costs staff a look, a missed one may cost a patient's skin or sight
# (held out, 98.5% of the urgent readings at >= 0.5 were urgent).
ALERT = 0.5
CONTEXTS = ("new", "offering_botox", "booked_botox")  # the corpus's contexts: what the model knows to read


@dataclass(frozen=True)
class Guess:
    action: str
    probability: float

    @property
    def confident(self) -> bool:
        return self.probability >= CONFIDENT


def features(text: str, context: str) -> str:
    """What the model reads: the context as a word of its own, then the text."""
    return f"__{context}__ {text}"


def training_data(items=None) -> tuple[list[str], list[str]]:
    """(features, action) for each text of the corpus's dev half (or of ``items``) that names an action, sent
    without a photo in a context the model reads."""
    items = corpus("dev") if items is None else items
    chosen = [
        i
        for i in items
        if i["_kind"] == "text"
        and (i.get("expect") or {}).get("action")
        and i.get("context", "new") in CONTEXTS
        and not i.get("media")
    ]
    texts = [features(i.get("text", ""), i.get("context", "new")) for i in chosen]
    return texts, [i["expect"]["action"] for i in chosen]


def train(items=None):
    """A fitted pipeline (scikit-learn imported here: only a process that reads a text pays for it)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline, make_union

    texts, actions = training_data(items)
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    pieces = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
    # A logistic loss fitted by stochastic gradient descent: as accurate as a full logistic regression on this data
    # (held-out rounds 0.93 against 0.92) in a fifth of the time; random_state makes it the same model every time.
    classifier = SGDClassifier(loss="log_loss", alpha=2e-5, max_iter=50, tol=1e-4, random_state=0)
    model = make_pipeline(make_union(words, pieces), classifier)
    model.fit(texts, actions)
    log.info("intent model trained on %d texts, %d actions", len(texts), len(set(actions)))
    return model


_training = threading.Lock()


@functools.cache
def _trained():
    return train()


def _model():
    """The model, trained once per process: the first caller trains it while the others (a worker's threads)
    wait, rather than each training its own."""
    with _training:
        return _trained()


def warm_up(sender=None, **kwargs):
    """Celery's worker_ready: a worker that answers patients (it consumes the ``ai`` queue) trains the model before it
    takes its first task, so that no patient waits the seconds it takes (a worker started again after a crash)."""
    consumer = getattr(sender, "task_consumer", None)
    queues = {queue.name for queue in getattr(consumer, "queues", [])}
    if enabled() and "ai" in queues:
        _model()


def enabled() -> bool:
    """Whether the second reading is on (``CONVERSATION_INTENT_MODEL``)."""
    return settings.CONVERSATION_INTENT_MODEL


def guess(text: str, context: str) -> Guess | None:
    """The most likely action for ``text`` sent in ``context`` (one of CONTEXTS), or None when the second
    reading is off or the context is not one the model knows."""
    if not enabled() or context not in CONTEXTS or not text.strip():
        return None
    model = _model()
    probabilities = model.predict_proba([features(text, context)])[0]
    best = probabilities.argmax()
    return Guess(str(model.classes_[best]), float(probabilities[best]))
