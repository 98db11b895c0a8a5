"""The second reading of intent (conversation/intent.py) and what the rules engine does with it (rules.py,
``_second_reading``). The model is the real one, trained in process on the corpus's dev half; each path of the
engine is also pinned with a model taught here on made-up words, so that the test says which reading leads where
whatever the corpus learns. The clock is pinned (Monday 10:15 in Boston), the demo clinic on its built-in calendar."""

import threading
import time

import pytest
from celery import signals

from conversation import intent, rules
from conversation.corpus import corpus, half_of
from conversation.models import Conversation
from medspa.models import StaffAlert
from tests import test_outside_classes as _outside
from tests.test_assistant import booked
from tests.test_double_booking import book_botox

patient = _outside.patient  # the demo clinic, the clock pinned


@pytest.fixture
def taught(monkeypatch):
    """``taught([(text, action), ...], context=...)``: the engine reads with a model taught only these."""

    def teach(pairs, context="new"):
        items = [
            {"id": f"taught-{n}", "_kind": "text", "text": text, "context": context, "expect": {"action": action}}
            for n, (text, action) in enumerate(pairs)
        ]
        model = intent.train(items * 5)
        monkeypatch.setattr(intent, "_model", lambda: model)
        return model

    return teach


@pytest.fixture
def contexts(monkeypatch):
    """The contexts the engine asked the model about, in order."""
    asked, real = [], intent.guess

    def recording(text, context):
        asked.append(context)
        return real(text, context)

    monkeypatch.setattr(intent, "guess", recording)
    return asked


NONSENSE = [
    ("my zorblax is wobbling", "urgent"),
    ("quintuple flapdoodle", "answer"),
    ("grimble grumble", "help"),
    ("snorkel the wombat", "handoff"),
    ("vanish the thursday thing", "cancel_confirm"),
    ("hold the blue one", "hold"),
    ("is there botox wibble?", "offer_times"),
    ("shuffle my thing", "reschedule"),
]


# --- The model ---------------------------------------------------------------------------------------------------


def test_it_learns_only_from_the_dev_half():
    texts, actions = intent.training_data()
    assert len(texts) == len(actions) > 1000
    assert (texts, actions) == intent.training_data(corpus("dev"))
    assert all(half_of(i["id"]) == "dev" for i in corpus("dev"))
    assert len(texts) < len(intent.training_data(corpus("all"))[0])  # the test half is left out


def test_training_is_the_same_model_every_time():
    texts = ["is it safe to get botox while breastfeeding", "cancel my appt pls", "my lip is white and throbbing"]
    first, second = intent.train(), intent.train()
    a = first.predict_proba([intent.features(t, "new") for t in texts])
    b = second.predict_proba([intent.features(t, "new") for t in texts])
    assert (a == b).all()


@pytest.mark.parametrize(
    ("text", "context", "action"),
    [
        ("whats ur cancelation policy again??", "booked_botox", "answer"),
        ("pls cancel my appt, something came up", "booked_botox", "cancel_confirm"),
        ("my top lip went white after filler and it hurts", "new", "urgent"),
        ("can i talk to a real person", "new", "handoff"),
        ("the second one works", "offering_botox", "hold"),
    ],
)
def test_the_real_model_reads_words_written_here(text, context, action):
    guess = intent.guess(text, context)
    assert guess.action == action, guess


def test_no_reading_when_off_or_outside_what_it_knows(settings):
    assert intent.guess("", "new") is None
    assert intent.guess("how much is botox", "holding") is None
    settings.CONVERSATION_INTENT_MODEL = False
    assert intent.guess("how much is botox", "new") is None


# --- What the engine does with a confident reading ------------------------------------------------------------------


def test_an_urgent_reading_gets_the_urgent_script_and_alert(patient, taught):
    taught(NONSENSE)
    reply = patient.reply("my zorblax is wobbling")
    assert "call 911" in reply
    assert StaffAlert.objects.filter(kind=StaffAlert.Kind.URGENT).exists()
    assert patient.conversation.owner == Conversation.Owner.STAFF


def test_a_question_reading_is_answered_from_the_documents(patient, taught):
    taught([("can i cancel?", "answer"), *NONSENSE])
    reply = patient.reply("can i cancel?")
    assert "24 hours" in reply  # the cancellation policy
    assert patient.conversation.state != Conversation.State.OFFERING and not booked().exists()


def test_without_the_second_reading_the_same_text_is_a_cancellation(patient, settings):
    settings.CONVERSATION_INTENT_MODEL = False
    reply = patient.reply("can i cancel?")
    assert "24 hours" not in reply


def test_a_question_that_asks_for_a_time_is_left_to_the_rules(patient, taught):
    taught([("any botox times thursday?", "answer"), *NONSENSE])
    reply = patient.reply("any botox times thursday?")
    assert "1." in reply and patient.conversation.state == Conversation.State.OFFERING


def test_a_conditional_cancellation_is_not_taken_for_one(patient, taught):
    book_botox(patient)
    taught([("if i cancel thursday is my deposit back?", "cancel_confirm"), *NONSENSE], context="booked_botox")
    reply = patient.reply("if i cancel thursday is my deposit back?")
    assert not reply.startswith("Reply YES to cancel")


def test_a_help_reading_says_who_the_clinic_is(patient, taught):
    taught(NONSENSE)
    reply = patient.reply("grimble grumble")
    assert reply.startswith(f"This is {patient.conversation.clinic.name}.")
    assert patient.conversation.owner == Conversation.Owner.ASSISTANT


def test_a_handoff_reading_goes_to_the_front_desk(patient, taught):
    taught(NONSENSE)
    reply = patient.reply("snorkel the wombat")
    assert "front desk" in reply
    assert patient.conversation.owner == Conversation.Owner.STAFF
    assert StaffAlert.objects.filter(kind=StaffAlert.Kind.HANDOFF).exists()


def test_a_cancel_reading_asks_to_confirm_only_with_a_booking(patient, taught):
    appointment = book_botox(patient)
    taught(NONSENSE, context="booked_botox")
    reply = patient.reply("vanish the thursday thing")
    assert reply.startswith("Reply YES to cancel your Botox")
    appointment.refresh_from_db()
    assert appointment.status == "confirmed"  # only asked: YES cancels


def test_a_cancel_reading_without_a_booking_is_left_to_the_rules(patient, taught):
    taught(NONSENSE)
    reply = patient.reply("vanish the thursday thing")
    assert not reply.startswith("Reply YES to cancel")


def test_a_reading_of_times_wanted_gets_times(patient, taught):
    taught(NONSENSE)
    reply = patient.reply("is there botox wibble?")
    assert "Here are open times for Botox" in reply
    assert patient.conversation.state == Conversation.State.OFFERING


def test_without_the_second_reading_the_same_text_is_answered(patient, settings):
    settings.CONVERSATION_INTENT_MODEL = False
    reply = patient.reply("is there botox wibble?")
    assert "open times" not in reply and patient.conversation.state != Conversation.State.OFFERING


def test_a_reading_of_a_move_moves_the_booked_appointment(patient, taught):
    first = book_botox(patient)
    taught(NONSENSE, context="booked_botox")
    reply = patient.reply("shuffle my thing?")
    assert patient.conversation.rescheduling_id == first.pk  # without the reading: "I don't have that information"
    assert "Botox" in reply


def test_other_readings_are_left_to_the_rules(patient, taught):
    taught(NONSENSE)
    reply = patient.reply("hold the blue one")  # "hold": the rules pick times more precisely than any guess
    assert not booked().exists() and "call 911" not in reply


def test_a_doubtful_reading_is_left_to_the_rules(patient, taught, monkeypatch):
    taught(NONSENSE)
    monkeypatch.setattr(intent, "CONFIDENT", 1.01)  # no reading is confident enough
    reply = patient.reply("snorkel the wombat")
    assert reply != rules.PASSED_ON  # the rules' own answer, not the reading's hand-off


@pytest.mark.parametrize(
    ("guess", "urgent"),
    [(intent.Guess("urgent", 0.55), True), (intent.Guess("urgent", 0.45), False)],
)
def test_a_symptom_is_urgent_from_even_odds(patient, monkeypatch, guess, urgent):
    monkeypatch.setattr(intent, "guess", lambda text, context: guess)
    reply = patient.reply("my chin feels kind of weird")
    assert ("call 911" in reply) is urgent
    assert StaffAlert.objects.filter(kind=StaffAlert.Kind.URGENT).exists() is urgent


def test_a_question_needs_the_surer_reading(patient, monkeypatch):
    monkeypatch.setattr(intent, "guess", lambda text, context: intent.Guess("answer", 0.85))
    reply = patient.reply("can i cancel?")  # confident, not sure: the rules read it (a cancellation)
    assert "24 hours" not in reply


def test_the_model_is_asked_in_the_context_the_conversation_is_in(patient, contexts):
    patient.reply("do you do botox")
    patient.reply("any times thursday?")
    assert contexts == ["new", "new"]  # read in the state the conversation was in when the text came
    patient.reply("1")
    assert contexts[-1] == "offering_botox"
    patient.reply("Jordan Lee")  # a time held, its name asked: the rules answer, the model is not asked
    assert len(contexts) == 3


def test_a_booked_patient_is_read_in_the_booked_context(patient, contexts):
    book_botox(patient)
    patient.reply("do i need to do anything before?")
    assert contexts[-1] == "booked_botox"


class _Queue:
    def __init__(self, name):
        self.name = name


class _Consumer:
    def __init__(self, *names):
        self.task_consumer = type("TaskConsumer", (), {"queues": [_Queue(n) for n in names]})()


@pytest.mark.parametrize(("queues", "trains"), [(("default", "ai", "emr"), True), (("sms",), False)])
def test_a_worker_that_answers_patients_trains_the_model_before_its_first_task(monkeypatch, settings, queues, trains):
    settings.CONVERSATION_INTENT_MODEL = True
    trained = []
    monkeypatch.setattr(intent, "train", lambda items=None: trained.append(items) or "model")
    intent._trained.cache_clear()
    try:
        intent.warm_up(sender=_Consumer(*queues))
        assert trained == ([None] if trains else [])
        intent.warm_up(sender=_Consumer(*queues))  # once per process
        assert len(trained) == (1 if trains else 0)
    finally:
        intent._trained.cache_clear()


def test_threads_asking_at_once_train_one_model(monkeypatch):
    trained = []

    def slow_train(items=None):
        trained.append(items)
        time.sleep(0.2)
        return "model"

    monkeypatch.setattr(intent, "train", slow_train)
    intent._trained.cache_clear()
    try:
        threads = [threading.Thread(target=intent._model) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert trained == [None]
    finally:
        intent._trained.cache_clear()


def test_the_worker_ready_signal_warms_the_model():
    assert intent.warm_up in [receiver for _, receiver in signals.worker_ready.receivers]  # connected, not weakly
