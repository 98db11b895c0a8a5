"""The rules engine: deterministic, no network. The embedded default, the engine the tests script, and the fallback
whenever the LLM errs. It reads the patient's texts with ``conversation.parsing`` and acts only through the tools.

The order of what it looks at is the order of what matters: an urgent symptom, a question about someone else, a
request for a person, then cancellations, a name it asked for, a pick among the times it offered, the service and
the time wanted, prices, and finally the clinic's knowledge for any other question.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from functools import cached_property

from knowledge.services import question_coverage
from knowledge.text import terms
from medspa.models import format_cents
from medspa.timetext import time_label, when_label, zone_label

from . import i18n, intent, parsing
from .engines import Engine, EngineContext, EngineReply
from .models import Conversation
from .tools import ToolRefused

URGENT = re.compile(
    r"\b(can'?t breathe|cannot breathe|trouble breathing|hard to breathe|(hard|difficult|trouble|difficulty) "
    r"(to )?swallow\w*|can'?t swallow|breathing (feels |is |seems )?(weird|strange|off|funny|hard|difficult|labored)|"
    r"short(ness)? of breath|throat (is |feels )?"
    r"(getting )?(tight|closing|swelling|swollen)|chest pain|faint(ed|ing)?|pass(ed|ing) out|"
    r"severe (pain|swelling|headache)|"
    r"vision (loss|problems?|changes?)|can'?t see|blurr?y vision|vision\b.{0,25}\b(blurr?y|blurred|fuzzy|dim|dark|"
    r"gone|worse)|(eye|eyes)\b.{0,15}\b(blurr?y|blurred)|(skin|lip|area) (is )?(turning )?(white|gr[ae]y|"
    r"blue|dusky)|blanch(ed|ing)|droop(y|ing)?|allergic reaction|hives|anaphyla\w*|infect(ed|ion)|pus|fever|"
    r"bleeding (a lot|heavily|won'?t stop)|emergency|dusky|gr[ae]yish|bluish|mottled|"
    r"(pain|swelling|redness) (is |keeps )?(getting |gets )?worse|worse and worse|worsening|white (patch|spot|area|"
    r"mark)|(patch|spot|area) (is )?(turning |going )?white|(redness|rash|patch|bruise|swelling) (is |keeps )?"
    r"spreading|spreading (redness|rash|patch)|(patch|spot|area|skin)\b[\w' ]{0,30}\b(white|gr[ae]y|bluish|dusky|"
    r"blotchy|mottled)\b|ptosis|diplopia|double vision|(eyelid|eye lid|brow) (is )?(droop\w*|drop\w*|heavy|hanging)|"
    r"(turning|going|gone|went|turned) (white|gr[ae]y|blue|purple|pale|dusky)|"
    r"(redness|rash|swelling|bruis\w*|hives|red|swollen)\b.{0,40}\bspreading|spreading (down|up|to|onto|across)\b|"
    r"chills|hot to the touch|warm to the touch|feels (hot|warm) (and|to)|oozing|"
    r"(pain|swelling|redness|burning|bruis\w*|rash|spreading)\b.{0,30}\b(getting|gets|got|keeps getting) worse|"
    r"(cheek|cheeks|lip|lips|face|nose|chin|forehead|jaw)\b[\w' ]{0,30}\b(white|gr[ae]y|bluish|blue|purple|purplish|"
    r"dusky|blotchy|mottled)\b|it (really|still) hurts|hurts (so|really) bad|"
    r"(have|got|getting|with|there are) (some )?blisters|blistering)\b"
)
OTHER_PATIENT = re.compile(
    r"\b(my (friend|sister|brother|mom|mother|dad|husband|wife|partner|daughter|son|coworker)'?s? "
    r"(appointment|booking|results?|records?|visit)|(did|has|when is|is) (?!(that|i|it|this)\b)(\w+ )?(?!i\b)(\w+ )?"
    r"(come|came|been|booked)"
    r" (in|there)|who else|other (patients?|clients?)|patient list|(is|was) (my )?[a-z]+( [a-z]+){0,2} (a|one of your) "
    r"(patient|client|customer)s?|(everyone|everybody|anyone|who'?s|who is) (else )?(booked|coming|scheduled)|"
    r"(last|previous|other) (person|people|patient|caller)|(put|book|schedule|sign) (her|him) (in|up)\b|"
    r"(put|book|schedule|sign|switch) my (friend|sister|brother|mom|mother|dad|husband|wife|partner|daughter|son|"
    r"coworker|cousin|girlfriend|boyfriend|gf|bf)( [a-z]+)? (in|up|into)\b|"
    r"(this|it) is for my (wife|husband|partner|girlfriend|boyfriend|mom|mother|dad|father|sister|brother|friend)|"
    r"(book|appointment|schedule|reserve)( an?| the| some)?( \w+)? for my (wife|husband|partner|girlfriend|boyfriend|"
    r"mom|mother|dad|father|sister|brother|friend|daughter|son|cousin|mother in law)\b(?! and me)|"
    r"my (friend|sister|brother|mom|mother|dad|husband|wife|partner|daughter|son|coworker) (has|had|booked) (an? )?"
    r"(appointment|appt|booking|visit)|"
    r"(her|his) name is)\b"
)
POSSESSIVE = re.compile(
    r"\b([a-z]+)['\u2019]s (appointment|booking|visit|records?|results?|phone|number|email|address)\b"
)
NOT_SOMEONE = {"today", "tomorrow", "yesterday", "tonight", "week", "month", "clinic", "spa", "office", "doctor"} | {
    f"{day}day" for day in ("mon", "tues", "wednes", "thurs", "fri", "satur", "sun")
}
MOVE = re.compile(r"\b(move|moving|reschedule|switch|swap|change it|instead)\b")
ANOTHER = re.compile(
    r"\b(another|second|2nd|additional|extra|both|keep (it|both|the other|my other)|new appointment|as well|also)\b"
)
PASS = re.compile(r"\b(pass|not interested|no thanks|cant make it|can't make it|dont want it|don't want it)\b")
YES_WORDS = re.compile(r"^\s*(yes|yeah|yep|yup|sure|ok|okay|please|1)\b[\s,.!:-]*", re.IGNORECASE)
MY_APPOINTMENT = re.compile(r"\b(my|our) (appointment|booking|visit|botox|filler|treatment)\b")
# A question about a treatment the patient had or has booked: no "find you a time?" after its answer.
OWN_TREATMENT = re.compile(
    r"\b(after|since|from) my\b|\bmy (\w+ )?(last|next|appointment|booking|visit|treatment|session)\b"
)
PAYING = re.compile(r"\b(pay|paid|paying|payment|link|deposit|card|checkout)\b")
NAME_PHRASE = re.compile(
    r"\b(?:my name is|my name's|name is|name's|i am|i'm|this is|it's|under)\s+([a-z][a-z'\-]+(?:\s+[a-z][a-z'\-]+)?)",
    re.IGNORECASE,
)
PHOTO_NOTE = re.compile(r"\b(photos?|fotos?|pics?|pictures?|images?|imagen(es)?|screenshots?|selfies?)\b")
# "do i get my deposit back tho", "will i be charged": the deposit asked about while a cancellation awaits its YES.
DEPOSIT_ASKED = re.compile(
    r"\b(deposit|refund\w*|money back|\$?\d+ back|charged?|fee|lose (it|that|this|my|the|\$?\d+))\b|"
    r"\bget (it|that) back\b"
)
# "next week same time": the hour of the appointment being moved.
SAME_TIME = re.compile(r"\b(same|usual) (time|hour)\b")
WEEKDAY_NAMED = re.compile(r"\b(mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(day)?\b")
# "make it dysport", "switch to the peel", "i'll do dysport instead": another service wanted, not only its price.
SWITCH_TO = re.compile(
    r"\b(make it|switch (it |me )?to|change (it |me )?to|instead|rather|go with|scratch (the|that)|"
    r"forget (the|that)|never ?mind|nvm|"
    r"(i ?ll|i will|lets) (do|take|try|get))\b"
)
PART_OF_DAY = re.compile(
    r"\b(mornings?|afternoons?|evenings?|nights?|tonight|after (school|work|lunch)|before (work|lunch)|"
    r"lunch ?time|later in the day)\b"
)
CARRIES_OVER = re.compile(
    r"\b(carr(y|ies|ied) over|transferr?\w*|mov(e|es|ed) (over|with|to)|still (count|appl(y|ies))|same deposit|"
    r"(to|for) (the|my) (new|other) (time|appointment|day|date))\b"
)
# "what do you recommend for sun spots?", "what can i do for my double chin": a concern, a treatment for it.
RECOMMEND = re.compile(
    r"\b(what (do|would) you (recommend|suggest|have)|what (can|could|should) (i|you) (get|do|have|use|try)|"
    r"(do you have|anything) (for|to (help|fix|treat|get rid of)))\b"
)
OKAY = re.compile(
    r"(ok+|okay|k+|cool|great|got it|sounds good|perfect|will do|alright|all right|yes|yep|yup|sure|awesome|"
    r"ok (cool|great|thanks|thank you)|thumbs up|noted|understood|vale|bueno|listo|dale)"
)
# "send me those times again", "what were the times?", "i deleted the message": the offer again.
OFFER_AGAIN = re.compile(
    r"\b((send|text|give|show|tell) (me )?(those|the|them|your) (times|options|slots|openings)( \w+)? again|"
    r"(resend|repeat) (those|the|them)?|what were (those|the) (times|options)( again)?|"
    r"(deleted|lost|cant find) (the|your|that) (message|text)|(times|options) again)\b"
)
# "do you have tuesday?", "tienen pa el martes?": a day's open times asked for.
HAVE_YOU_GOT = re.compile(
    r"^(so |and |ok |okay |hi |hey |hmm )*((do|does) (you|u|she|he|dr \w+) (guys )?(have|got)|"
    r"(you|u) (guys )?(got|have)|have you (guys )?got|tienen|tiene|hay)\b"
)
# "a severe allergy to lidocaine": the clinician answers too, beside the documents.
ALLERGY_TO = re.compile(r"\b(allergic (reaction )?to|allerg(y|ies) to|anaphyla\w*|severe allerg\w*)\b")
CLINICIAN_ONLY = re.compile(
    r"\b(fitzpatrick|(which|what) (laser|device|machine|brand of laser)( do you| is| does)?|"
    r"(burned|burnt|scarred) me)\b"
)
# "my daughter wants lip filler but she is 17": an age under 18 said beside a price question.
AGE_STATED = re.compile(
    r"\b(s?he|she s|he s|shes|hes|is|im|i am|i m) (only |just )?(1[0-7])( years old| yrs old| yo)?\b|"
    r"\b1[0-7] years old\b"
)
# "Sincerely, Jordan Lee", "Best, Pat", "- Maria": a letter's sign-off at the end of a text.
SIGN_OFF = re.compile(
    r"(?:[\s.!?,]+(?:sincerely|regards|best regards|kind regards|warm regards|best|warmly|respectfully|cheers|"
    r"many thanks|thank you|thanks)[,.!]?|\s+[-\u2013\u2014]+)\s*(?:[A-Z][\w'.-]*\s*){1,3}[.!]?\s*$"
)
# "Thank you kindly. Jordan Lee": thanks signed with a name, nothing to search for.
SIGNED_THANKS = re.compile(
    r"^\W*(?i:(ok(ay)?|great|perfect|wonderful|lovely)?[\s,!.]*(many )?(thanks|thank you|thankyou|thx|ty)"
    r"( (so|very) much| kindly| again| a lot| for (your|the|all the) help)?[\s,.!-]*"
    r"((i )?(look(ing)? forward to (it|seeing you|that|my (appointment|visit))|see you (then|soon|there|thursday)|"
    r"have a (good|great|nice|lovely|wonderful) (day|one|weekend|evening))[\s,.!]*)?)"
    r"[\s,.!-]*([A-Z][\w'-]*\.?\s*){0,3}[\s.!]*$"
)
# "Who is this?": the clinic says who it is (like HELP), without handing the patient to anyone.
WHO_IS_THIS = re.compile(
    r"^(hi |hello |hey |um |sorry |ok )?(who is this|whos this|who this|who dis|who are you|who is texting( me)?|"
    r"who texted me|who am i (talking|texting) (to|with)|what is this( number)?|quien es|quien eres|quien habla|"
    r"(please )?identify (yourself|the (party|sender))|who (is )?sending (these|this|me)|"
    r"quien me (esta )?(escribe|escribiendo|mandando|enviando|textea|texteando)|quien me escribio|"
    r"no (conozco|conosco|reconozco) (este|el|su) (numero|telefono)|"
    r"con quien hablo|quienes son)\b"
)
# "Is this Serenity Skin Bar?", "esta es la clinica de la doctora Ramirez?": which clinic this is, asked.
IS_THIS_PLACE = re.compile(
    r"^(hi |hello |hey |um |sorry |wait |hola |buenas |perdon )*(is this|am i (texting|talking to)|did i (text|reach)|"
    r"esta es|es esta|este es|es este|hablo con) (the |la |el )?(place|clinic|spa|med ?spa|office|location|salon|"
    r"clinica|oficina|consultorio|doctora?|dr)\b"
)
NAMED_PLACE = re.compile(r"^\W*(?i:hi|hello|hey)?[\s,!]*(?i:is this|am i texting|did i reach) (?P<name>[A-Z][\w'&-]*)")
# What only a person at the clinic can do or decide: jobs, documents sent from the patient's file, complaints.
STAFF_ONLY = re.compile(
    r"\b(hyperhidrosis|(armpits?|underarms?|palms?)\b.{0,30}\bsweat\w*|sweat\w*\b.{0,30}\b(armpits?|underarms?|palms?)|"
    r"hiring|job (opening|opportunit\w*|posting)s?|are you hiring|looking for work|employment|resume|my cv|"
    r"apply (for|to) (a|the) (job|position)|positions? (open|available)|"
    r"(itemi[sz]ed )?(receipt|invoice|statement)s? (for|from)|"
    r"(send|email|fax) me (a |an |my |the )?(itemi[sz]ed |copy of )?(receipt|invoice|statement|records?|chart|"
    r"before and after|photos?)|medical records|my records|my chart|(treatment|patient) records|"
    r"copy of my (chart|records?|file)|complain\w*|lawyer|attorney|chargeback|"
    r"partnership|collab(oration)?|(im|i am) an? influencer|influencer (collab\w*|partnership|marketing|rates?)|"
    r"vendor|sales rep|charged\b.{0,30}\b(twice|double|two times|again)|"
    r"double (charged|charge)|overcharged|billing (issue|problem|error|question)|send (my|the|our) (\w+ ){0,2}"
    r"(records?|chart|receipt|invoice|photos)|(can|could) (someone|somebody|anyone|a person) (check|look|fix|call|"
    r"help)|never got (a |any |my |the )?(confirmation|text|receipt|link|email)|money back|refund me|"
    r"(?<!if )i hate (it|my|"
    r"the|how)|(not|un)happy with (my|the|it|how)|(?<!if im )(?<!if i am )(?<!if youre )not happy|"
    r"(?<!if )(im|i am|i was|i feel|were|we are)( \w+){0,2} unhappy|disappointed|botched|"
    r"billing discrepanc\w*|"
    r"(two|2|three|multiple|duplicate|separate) (separate )?(\$\d+ )?charges|i want (it fixed or )?(a|my) refund|"
    r"(still )?(no|not got|never got|never received|havent (got|gotten|received)) (my |the |a |any )?(deposit )?"
    r"refund|where is my refund|(someone|somebody|you) (from \w+ \w+ )?(to )?"
    r"get back to me|second (pending )?charge|pending charge|(pls|please) check|charged (my card |me )?\$?\d+|"
    r"(want|need) the (extra|difference|rest) back|(like|want|need) (the |a |my )?(difference|overcharge|extra|"
    r"money|amount|\$?\d+)( \w+)? (refunded|back|returned)|dissolv\w*|hyaluronidase|vascular occlusion|"
    r"(film|record|video)\w* (my|the|it)\b|(post|film|record|put|share)\w* .{0,20}\b(tiktok|instagram|my page)|"
    r"my followers|(asl|sign language|spanish|medical) interpreters?|"
    r"interpreter)\b"
)
# "ok thanks see you thursday": a goodbye that names the day of the appointment, not a wish for times.
SEE_YOU = re.compile(r"\b(see (you|ya|u)|c u|looking forward|until then|talk soon|have a (good|great|nice))\b")
# A question about where an appointment stands ("when is my appointment", "is my appt still on").
STATUS_QUESTION = re.compile(
    r"\b(when|what time|what day|which day|is (my|our) \w+ (still|on|confirmed)|still (on|good|happening|confirmed)|"
    r"do i (still )?have|am i (still )?(booked|scheduled|confirmed)|confirm(ed)?|remind me|"
    r"(is|will) (dr \w+|\w+) (the one )?(doing|seeing|treating|injecting)|who (is|will be|s) (doing|seeing|treating))\b"
)
# "and i get my 50 bucks back right?", "when do i get my refund": a cancelled deposit's refund asked about.
REFUND_ASKED = re.compile(
    r"\b(refund\w*|money back|deposit back|(deposit|money|it|dollars|bucks|\$?\d+) (be |get |been )?returned|"
    r"(\$?\d+|50) ?(bucks|dollars)? back|"
    r"get (it|that|this|my \w+( \w+)?) back)\b"
)
# "how long will it take", "how long is the appointment": the service's duration, from the catalog.
DURATION = re.compile(
    r"\bhow long (will|does|would|do|is|are|'?s)( \w+){0,5} (take|be|run|appointments?|visits?|sessions?|treatments?)\b"
    r"(?! to (heal|recover|see|work|kick|show)| (red|sore|swollen|bruised|peeling|numb|pink))|"
    r"\bhow long is (it|the (appointment|visit|treatment|session))$|"
    r"\bhow long (is|are) (a|an|the|my|your) (?!.*\b(downtime|recovery|healing|peeling|wait|results?|redness|"
    r"swelling)\b)[a-z ]{3,30}$|"
    r"\bhow (much time|many minutes|many hours)\b(?!.*\b(stay|stays|last|"
    r"lasts|wear off|go away|results?)\b)"
)
# "My 16 yr old wants a hydrafacial, can she come in?": a question about the age policy, not a booking for her.
MINOR_QUESTION = re.compile(
    r"\b(1[0-7]|1[0-7] ?(yr|year)s?( old)?|my (daughter|son|teen|teenager|kid|child))\b.{0,60}\b(can|may|could|is) "
    r"(she|he|they) (come|get|have|do|be|receive|book)\b|"
    r"\b(can|may|could) (my )?(daughter|son|teen|teenager|kid|child) (come|get|have|do|be treated|receive|book)\b|"
    r"\b(can|may|could) i (come|get|have|do|be treated|book)\b.{0,30}\b(if|since|as|when) (im|i am|i m) (1[0-7])\b|"
    r"\b(im|i am|i m) (only |just )?(1[0-7])\b.{0,40}\b(can|may|could|am) i\b"
)
# "After isotretinoin, can I do a peel now?": whether it is safe yet, not a request for times.
CAN_I_YET = re.compile(
    r"\b(can|could|may|should) i (still |safely )?(do|get|have|book) .{0,30}\b(now|yet|already|so soon)\b|"
    r"\b(can|could|may|should) i still (do|get|have|go|keep)\b|"
    r"\bis it (ok|okay|safe|too soon)\b"
)
# A question about the treatment itself with no name in it ("how long does it last?", "when will i see results"):
# about the one booked or being booked.
# "is this covered by insurance?" while Botox times are on offer: the treatment, by a pronoun.
THIS_TREATMENT = re.compile(
    r"\b(is|are|does|will|would) (this|that|these)\b(?! (place|clinic|number|line|you))|"
    r"\b(this|that) (treatment|procedure)\b"
)
ABOUT_IT = re.compile(
    r"\b(it|they|results?|effects?)\b.{0,30}\b(last|lasts|wear off|kick in|show|see|work|take effect)\b|"
    r"\b(last|lasts|wear off|kick in|take effect)\b.{0,15}\b(it|they|results?|effects?)\b|"
    r"\bhow long (till|until|before) (i|you) (see|notice)|\b(see|notice) (the )?(results?|a difference)\b"
)
# A symptom the patient had before ("hx ptosis after tox elsewhere in 2025"), not one they have now: no urgent script.
_ONLY_HISTORY = re.compile(
    r"^(?!.*\b(now|today|tonight|since|currently|right now|this morning|yesterday|days? ago)\b).*"
    r"\b(hx|history of|in 20\d\d|years ago|last year)\b"
)
# Treatments med spas are asked about that a clinic may not offer: named anywhere in a text, and in neither the
# clinic's catalog nor its documents, they are not offered ("do u do tattoo removal w the laser??").
OTHER_TREATMENTS = re.compile(
    r"\b(tattoo remov\w*|remove (a |my |the |an )?(old )?tattoos?|sculptra|prp|platelet rich plasma|cool ?sculpt\w*|"
    r"hair transplant\w*|thread lifts?|pdo threads?|morpheus ?8|ultherapy|fraxel|co2 laser|laser resurfacing|ipl|"
    r"photofacial|emsculpt|microblading|lash extensions?|eyelash extensions?|lash lifts?|"
    r"lash tint\w*|brow lamination|waxing|massages?|spray tans?|"
    r"iv (vitamin )?(therapy|drips?|infusions?)|vitamin (iv|drips?|infusions?)|gel nails|manicures?|pedicures?|"
    r"nail salon|teeth whitening|whiten\w* (my )?teeth|semaglutide|ozempic|wegovy|tirzepatide|body contouring|"
    r"cellulite|sclerotherapy|spider veins?|"
    r"hair restoration|dermaplaning|vampire facial|radiesse|kybella for (the )?(neck|arms))\b"
)
# Who treats: "who does the injections", "is it a real doctor", "MD or NP", "a dude or lady doc"
# "is my thursday appointment with dr smith or the np?", "who is my appt with": who the booking is with.
BOOKED_WITH = re.compile(
    r"\b(is|s) my (\w+ ){0,2}(appointment|booking|visit|treatment|consult\w*) with\b(?! you\b)|"
    r"\bwho (is|s) my (\w+ ){0,2}(appointment|booking|visit|treatment|consult\w*) with\b|"
    r"\bwho am i (seeing|booked with|with)\b"
)
WHO_DOES = re.compile(
    r"\bwho (actually |really |exactly )?(does|do|will do|is doing|injects|will be doing|will be injecting|"
    r"is injecting|would be doing|(will|would|is going to) (perform|administer|give|do)|"
    r"(would|will|is going to) (actually |really )?be (doing|injecting|performing|treating)|"
    r"performs?|treats?|will treat|would treat)\b|\b(actual|real|licensed) (doctors?|nurses?|md)\b|"
    r"\b(is it|are they|is that|are you) (a |an )?(doctor|doc|nurse|np|md)\b|\b(md|doctor) or (an? )?(np|nurse)\b|"
    r"\b(np|nurse) or (an? )?(md|doctor)\b|\b(dude|guy|man|male) or (a )?(lady|woman|female|girl)\b|"
    r"\bthe doc (doing|do) it\b|"
    r"\bwho (is|s|are) (your|the|ur) (medical director|np|nps|nurse( practitioner)?s?|injectors?|doctors?|providers?|"
    r"mds?|staff)\b"
)
# "do you do botox treatments?": words that name no treatment of their own
GENERIC_TREATMENT_WORDS = frozenset(terms("treatment treatments injection injections session sessions service"))
# "do you take walk-ins?", "do you accept apple pay": asked of the clinic's ways, which its documents state or not.
DO_YOU_ACCEPT = re.compile(
    r"^(hi |hey |hello )?(do|does|can|will) (you|y'?all|your (clinic|spa|office)|the (clinic|spa))( guys)? (take|"
    r"accept|allow|do)( any)? (?P<what>[a-z][a-z '\-]{2,40}?)\??$"
)
# "do you do coolsculpting?": the treatment asked about, when the clinic's catalog does not have it.
DO_YOU_OFFER = re.compile(
    r"^(hi |hey |hello )?(do|does) (you|y'?all|your (clinic|spa|office)|the (clinic|spa))( guys)? (do|offer|have|"
    r"provide|carry|perform|sell)( any)? (?P<what>[a-z][a-z '\-]{2,40}?)"
    r"( or (is it|do i|do you|should i|can i|would i|will i|is there|are there)\b.*)?\??$"  # "...or is it upfront"
)
# What a question is about when its words are not the documents' own: "can i work out after?" is aftercare, "what
# should i do before thursday?" is how to prepare, "what's the latest appointment?" is the clinic's hours.
SEARCH_HINTS = (
    (re.compile(r"\bprep\b"), "prepare before first visit"),
    (
        re.compile(
            r"\b(the doc|a doctor|actual doctors?|real doctors?|who (does|do|will do|is doing|injects|will be doing)|"
            r"somebody else|someone else doing)\b"
        ),
        "provider",
    ),
    (re.compile(r"\b(were|im|we are|i am) expecting\b|\bbaby on the way\b"), "pregnant pregnancy"),
    (
        re.compile(
            r"\bafter(wards)?\b(?! \d| (work|school|hours|lunch|noon|that|i (book|pick|choose)))|\bpost[- ]"
            r"(treatment|care|procedure)"
        ),
        "aftercare",
    ),
    (
        re.compile(
            r"\bbefore (my|the|your|a|an) (appointment|visit|treatment|session)|\bbefore (\w+day|tomorrow)\b|"
            r"\b(beforehand|prep|prepare)\b"
        ),
        "before your treatment prepare",
    ),
    (re.compile(r"\b(latest|earliest|what time do you|how late|open on|closed on)\b"), "hours open"),
    (
        re.compile(r"\b(reschedul\w*|cancel\w*|move (it|my|things|the appointment)|push (it|my)|last minute)\b"),
        "cancellation rescheduling policy notice",
    ),
    (
        re.compile(
            r"\b(bring (anything|something|with me|along)|what (should|do|to|must) (i )?bring|identification|"
            r"photo id|(an|my|any) id|drivers? licen[cs]e)\b"
        ),
        "first visit bring photo ID",
    ),
    (re.compile(r"\bconsult\w* (first|before)|\b(need|have) (a|to) consult"), "free consultations"),
    (re.compile(r"\b(hurt|hurts|painful|pain|numb\w*|needles?|scared)\b(?! (my|your) credit)"), "does it hurt numbing"),
    (
        re.compile(r"\b(uneven|higher than|lower than|lopsided|still moves?|still (there|see)|fix it|touch ?-?up)\b"),
        "touch-up policy",
    ),
    (re.compile(r"\b(swollen|swelling|puffy|bigger on|lumpy|lumps?|bruis\w*)\b"), "swelling bruising normal"),
    (
        re.compile(
            r"\b(daughter|son|kid|kids|teen|teenager|minor|child|children|(1[0-7]) (years? old|yo|yr old)|turns? "
            r"1[0-7]|is 1[0-7]|age limit|how old)\b"
        ),
        "age requirements minors consent",
    ),
)
# Money questions about no one treatment: the clinic's documents answer them (loyalty, financing, payment methods).
DEALS = re.compile(
    r"\b(discounts?|deals?|specials?|promos?|promotions?|coupons?|financ\w*|payment plans?|monthly|hsa|fsa|spread\w*|"
    r"insurance|gift cards?|loyalty|rewards?|membership|packages?)\b"
)
PRICE_WORDS = set(terms("how much cost costs price prices pricing charge charges get rid fix treat treatment do"))
# "can i bring my 2 yr old?": whether a child may come along is the clinic's call, not in its documents.
BRING_A_CHILD = re.compile(
    r"\bbring (my |a |our |the )?(kid|kids|child|children|daughter|son|baby|babies|twins|toddlers?|infant|newborn|"
    r"little ones?|\d+ ?(yr|year|yo)s?( old)?)"
    r"\b(?!.{0,40}\b(for|to get|to have) (a |her |his |their )?(treatment|botox|filler|facial|peel|appointment)\b)"
    r"(?!.{0,40}\b(s?he'?s|s?he is|turns?|who is) (1[0-7])\b)"  # a teenager who is the patient: the age policy
)
# "running 15 min late": the front desk must know (and may need to shorten or move the treatment).
RUNNING_LATE = re.compile(
    r"\b(running|gonna be|going to be|will be|ill be|i'?m|be) (\w+ ){0,3}late\b|\bstuck in traffic\b|\bon my way\b"
)
# Another time of day asked for while times are on offer: its numbers are hours, not picks.
LATER_OR_EARLIER = re.compile(
    r"\b(later|earlier|latest|after \d|before \d|past \d|like \d+ or \d+|(around|about) \d+ ?(pm|am)?\b)"
)
ORDINAL = re.compile(
    r"\b(first|second|third|1st|2nd|3rd|last|earliest|latest|earlier|later) (one|time|option|slot)\b"
    r"|^\s*#?\d\s*[.!]?\s*$"
)
HOURS_CUE = re.compile(r"\b(open|opens|close|closes|closed|closing|hours|latest|earliest|how late|weekend)\b")
DAY_WORDS = re.compile(
    r"\b(on |this |next |for |by )?((mon|tues|wednes|thurs|fri|satur|sun)day|(mon|tue|tues|wed|thu|thur|thurs|fri)\b)"
    r"|\b(today|tonight|tomorrow|tmrw)\b",
    re.IGNORECASE,
)
# "is the deposit refundable if i have to move it?": a question about the policy, not a wish to pay.
POLICY_QUESTION = re.compile(r"\b(refund\w*|cancel\w*|move|moving|reschedul\w*|policy|back|lose|forfeit\w*|transfer)\b")
# "i have a party 12/19", "the wedding is on the 19th": a day the patient is getting ready for, not one wanted.
EVENT_DAY = re.compile(
    r"\b(i have|i ve got|ive got|theres|there is|got|its|my) (a |my |the )?(party|wedding|event|trip|vacation|birthday|"
    r"show|game|graduation|prom|gala|photo ?shoot|reunion)\b|\b(party|wedding|event|trip|vacation|birthday|graduation|"
    r"prom|gala|reunion|bachelorette) (is|on|that)\b|\b(getting|get|got|being) married\b"
)
# "i was going to ask about filler but i just want botox": the treatment named after it is the one wanted.
WANT_THIS = re.compile(r"\b(just|really|actually|rather|think i) want\b|\b(go|stick|going) with\b")
# "remind me what time thursday?", "when is my appt again": the booking asked about, not times wanted.
REMIND = re.compile(
    r"\b(remind me|what time (is|was|s) (my|it|the|our)|when (is|was|s) (my|it|our)|what day (is|was|s) (my|it|our)|"
    r"(forgot|forget) (what time|when|the time|which day))\b"
)
AFTER_IT = re.compile(r"\b(after (that|it|then)|later than that|after (my|the|this) (appointment|one))\b")
SAME_DAY = re.compile(r"\b(same day|that day|the same date)\b")
URGENT_SCRIPT = (
    "If this is an emergency or you have trouble breathing, call 911 now. For anything else after your treatment, "
    "please call us right away{phone}. I've alerted our team and someone will reach out to you."
)

PASSED_ON = "Thanks for reaching out! I've passed this to our front desk, and someone will text you back shortly."
STAFF_HAVE_IT = "Thanks! Our team has your message and will text you back here shortly."
FIND_A_TIME = ("Would you like me to find you a time?", "Quiere que le busque un horario?")
WITH_PROVIDER = re.compile(r"(?:find you a time with|busque un horario con) (.+)\?\Z")  # "...with Dr. Johnson?"


@dataclass
class _Turn:
    """One turn as the steps of ``RulesEngine._respond`` read it: the conversation, the patient's texts joined, the
    tools, the text read once (normalised, its intents, the catalog), and what ``_read_service_and_time`` notes."""

    c: Conversation
    text: str
    tools: object
    tz: tzinfo
    lowered: str
    wants: set[str]
    catalog: list[parsing.ServiceName]
    mentioned: list[int] = field(default_factory=list)
    when: parsing.TimeWindow | None = None
    provider: object = None  # the provider the text names
    said: str = ""  # the patient's own words (before any Spanish is read into the parser's words)
    asked: bool = False  # the second reading says this is a question: answered, no times offered

    @property
    def clinic(self):
        return self.c.clinic

    @cached_property
    def last_reply(self) -> str:
        """The assistant's last text in this conversation ("" before its first turn), read once."""
        if not self.c.turns_count:
            return ""
        rows = self.c.messages.filter(direction="outbound").order_by("-pk").values_list("body", flat=True)
        return rows.first() or ""

    @classmethod
    def read(cls, c, text, tools, said="") -> "_Turn":
        # "... Kind regards, Eleanor Price": the sign-off's name says nothing of what is wanted
        tz, lowered, wants = c.clinic.tz, parsing.normalise(text), parsing.intents(SIGN_OFF.sub("", text) or text)
        catalog = _catalog_names(tools)
        turn = cls(c, text, tools, tz, lowered, wants, catalog, said=said or text)
        words = set(lowered.split())
        named = any(
            w in words for name in tools.provider_names() for w in parsing.normalise(name).split() if len(w) > 2
        )
        turn.provider = parsing.find_provider(text, tools.providers()) if named else None
        tools.prefer_provider(turn.provider)  # "with Dr. Johnson": the times found this turn are hers (if she does it)
        return turn


class RulesEngine(Engine):
    name = "rules"
    guarded = False  # it has its own safety answers and cannot fail

    def respond(self, *, conversation, texts, tools, context: EngineContext | None = None) -> EngineReply:
        """Reads only the new texts and the conversation's state: ``context`` is not used."""
        text = parsing.emoji_words(" ".join(t.strip() for t in texts if t and t.strip())).strip()
        if tools.follow_language(text) == i18n.ES:
            return EngineReply(text=self._respond_es(conversation, text, tools), engine=self.name)
        reply = self._respond(conversation, text, tools)
        return EngineReply(text=reply, engine=self.name)

    # --- Spanish (conversation.i18n): the same steps, read and said in Spanish -------------------------------------

    def _respond_es(self, c, text, tools):
        """A Spanish text: read in the words the steps know, answered by the same steps, the reply said in
        Spanish (the clinic's documents quoted as they are)."""
        reply = self._respond(c, i18n.to_parser_text(text), tools, said=text)
        return i18n.reply_es(reply, tz=c.clinic.tz, now=tools.now)

    def _respond(self, c, text, tools, said=""):  # a dialogue is a sequence of checks, in order
        """Runs ``STEPS`` in order; the first that returns a reply (not None) answers. A refusal by a tool is the
        reply."""
        turn = _Turn.read(c, text, tools, said=said)
        try:
            return self._run(turn, self.STEPS)
        except ToolRefused as refused:
            return str(refused)

    def _run(self, turn, steps):
        for step in steps:
            reply = getattr(self, step)(turn)
            if reply is not None:
                return reply
        return None  # never reached: the last step always answers

    STEPS = (  # the priority order: what matters most first
        "_safety",
        "_who_is_this",
        "_staff_only",
        "_running_late",
        "_bring_a_child",
        "_photo",
        "_second_reading",
        "_hold_lapsed_or_link_again",
        "_waitlist_offer_reply",
        "_pick_while_booked",
        "_cancel_confirmation",
        "_waitlist_question",
        "_cancel",
        "_move_the_hold",
        "_reschedule",
        "_booking_status",
        "_repick_while_holding",
        "_name_for_hold",
        "_pick_offered_time",
        "_offer_again",
        "_read_service_and_time",
        "_service_for_booking",
        "_health_question",
        "_duration",
        "_provider_question",
        "_who_does",
        "_deposit_on_the_move",
        "_prices",
        "_not_offered",
        "_unstated_way",
        "_other_provider",
        "_deposit_status",
        "_refund_status",
        "_question",
        "_see_you",
        "_booking_talk",
        "_other_days",
        "_just_a_name",
        "_long_text",
        "_thanks",
        "_greeting",
        "_which_time",
        "_which_day",
        "_okay",
        "_anything_else",
    )

    # The steps that answer a question, in the order of STEPS: what ``_second_reading`` runs for a text it reads as
    # one. From the reading of the text to the answer from the documents, without the two that book or offer times
    # (the treatment named taken for a booking, another provider's times); then the clinic's knowledge.
    ANSWER_STEPS = (
        *(
            step
            for step in STEPS[STEPS.index("_read_service_and_time") : STEPS.index("_question") + 1]
            if step not in {"_service_for_booking", "_other_provider"}
        ),
        "_anything_else",
    )

    # --- The steps, in the order of STEPS: each returns a reply, or None to pass ---------------------------------

    def _safety(self, t):
        """Urgent symptoms, a question about someone else, a request for a person (``safety_reply``)."""
        return self.safety_reply(t.c, t.text, t.tools) or None

    def _who_is_this(self, t):
        """ "Who is this?": the clinic's name and what the line is for."""
        named = NAMED_PLACE.search(t.text)
        named = (
            named is not None
            and named["name"].lower() not in {"it", "this", "that", "botox", "dr", "the", "a"}
            and not t.wants - {"greeting", "question", "thanks"}  # "is this glow? i want botox": a booking
        )
        place = (IS_THIS_PLACE.search(t.lowered) or named) and len(t.lowered.split()) <= 16
        if not WHO_IS_THIS.search(t.lowered) and not place:
            return None
        # "is this serenity skin bar?", "is this the place on boylston st?": who and where the clinic is
        return _who_we_are(t.clinic, where=bool(place))

    def _second_reading(self, t):
        """What the intent model (conversation.intent) reads in the text, acted on when it is confident and the
        conversation is where the model was taught to read (a new patient, times on offer, a booked appointment;
        nothing pending an answer): an urgent symptom, "who is this?", a wish for a person, a wish to cancel; and,
        when surer still, a question the rules would take for a request (answered, no times offered) when nothing
        in it asks for a time, or a wish for times or to move the appointment (passed on as that intent to the
        steps after). A pick, a STOP and the rest are left to the rules, which act on them more precisely
        (docs/DECISIONS.md, session 13)."""
        context = self._intent_context(t) if intent.enabled() else None  # (its queries only when on)
        guess = intent.guess(t.said, context) if context else None
        if guess is None:
            return None
        c, tools = t.c, t.tools
        if guess.action == "urgent" and guess.probability >= intent.ALERT:
            return self._urgent_reply(c, tools)
        if not guess.confident:
            return None
        if guess.action == "help":
            return _who_we_are(t.clinic)
        if guess.action == "handoff" and not ("?" in t.text and DEPOSIT_ASKED.search(t.lowered)):
            # (a question about the deposit or a refund: the rules say where it stands, or hand it off themselves)
            tools.hand_off("the patient asks for what only the clinic's staff can do")
            return PASSED_ON
        if guess.action == "cancel_confirm" and context == "booked_botox":
            conditional = parsing.is_what_if(t.text) or re.search(r"\b(if|in case)\b", t.lowered)
            if not conditional:  # "if i cancel, is my deposit back?" is a question
                return self._ask_cancel(c, tools, t.tz)
        if guess.probability < intent.SURE:
            return None
        if guess.action == "answer" and self._only_asks(t):
            t.asked = True
            t.wants = (t.wants - {"book", "cancel", "reschedule", "yes", "no"}) | {"question"}
            return self._run(t, self.ANSWER_STEPS)
        # Times wanted ("whats ur latest slot? like after 5" while times are on offer), or a booked appointment
        # moved: read as such by the steps after, which find the times. Not times while booked: the model reads
        # "do i need to bring anything thursday?" as a wish for times there (or a move), and a wrong move costs the
        # patient most.
        if guess.action == "offer_times" and context != "booked_botox":
            t.wants = (t.wants - {"question"}) | {"book"}
        elif guess.action == "reschedule" and context == "booked_botox" and not parsing.is_info_question(t.text):
            t.wants = (t.wants - {"question"}) | {"reschedule"}
        return None

    def _only_asks(self, t) -> bool:
        """A text shaped as a question that names no time, asks for none and picks nothing: one the model may take
        out of the rules' booking steps."""
        if "?" not in t.text and not parsing.is_info_question(t.text):
            return False
        if parsing.asks_for_times(t.text):
            return False
        if parsing.parse_when(t.text, now=t.tools.now, tz=t.tz) is not None:
            return False
        offered = [o.start for o in t.tools.offered()] if t.c.offered_slots else []
        return not offered or parsing.parse_choice(t.text, offered, tz=t.tz) is None

    def _intent_context(self, t) -> str | None:
        """The context the intent model knows that this conversation is in, or None when it is in another (a time
        held, a cancellation or a move under way, a question of the assistant's awaiting its answer)."""
        c, tools = t.c, t.tools
        if tools.photo or c.confirming_cancel_id or c.pending_pick or c.rescheduling_id:
            return None
        if c.state in (Conversation.State.HOLDING, Conversation.State.AWAITING_DEPOSIT):
            return None
        if tools.waitlist_question() is not None:
            return None
        if c.state == Conversation.State.OFFERING:
            return "offering_botox" if c.offered_slots else None
        if tools.upcoming_booking() is not None:
            return "booked_botox"
        return "new" if c.state in (Conversation.State.NEW, Conversation.State.ENGAGED) else None

    def _staff_only(self, t):
        """What only a person at the clinic can do (a job enquiry, a receipt or records sent from the patient's
        file, a complaint): handed to the front desk, not answered from the documents."""
        if not STAFF_ONLY.search(t.lowered):
            return None
        t.tools.hand_off("a request only the clinic's staff can handle")
        return PASSED_ON

    def _bring_a_child(self, t):
        """ "Can I bring my daughter along?": the front desk answers (the documents do not say)."""
        if not BRING_A_CHILD.search(t.lowered):
            return None
        t.tools.hand_off("the patient asks whether a child may come along")
        return "Good question! I've asked our front desk, and someone will text you back shortly."

    def _running_late(self, t):
        """A patient running late today: the front desk is told; the patient hears that they know."""
        if not RUNNING_LATE.search(t.lowered) or ("question" in t.wants and parsing.is_info_question(t.text)):
            return None
        t.tools.hand_off("the patient is running late")
        return "Thanks for letting us know! I've told our front desk you're on your way."

    def _photo(self, t):
        """A photo (or an empty text), or a photo with a word or two ("this!!", "oops"): a person looks at it; the
        assistant stays on."""
        quiet = not t.wants - {"greeting", "thanks", "yes", "question"}
        words = len(t.lowered.split())
        # "this!!", "oops", "here's the photo", "aquí le envío la foto": a photo with a word about it
        few_words = t.tools.photo and quiet and (words <= 3 or (words <= 8 and PHOTO_NOTE.search(t.lowered)))
        if t.text.strip() and not few_words:
            return None
        t.tools.flag_for_staff("the patient sent a photo without text")
        phone = f" at {t.clinic.front_desk_phone}" if t.clinic.front_desk_phone else ""
        return (
            "Thanks for the photo! I've shared it with our team and someone will text you back. If it's about a "
            f"reaction after a treatment and it's urgent, please call us{phone}."
        )

    def _hold_lapsed_or_link_again(self, t):
        """A held time whose deposit link ran out (offer times again), or a request for the deposit link again."""
        c = t.c
        if c.state not in (Conversation.State.HOLDING, Conversation.State.AWAITING_DEPOSIT) or not c.booking_id:
            return None
        held = c.booking
        if t.tools.hold_lapsed():
            if PAYING.search(t.lowered) or t.wants & {"book", "yes"}:
                return self._lapsed(c, t.tools, held, t.tz)
        elif c.state == Conversation.State.AWAITING_DEPOSIT and PAYING.search(t.lowered):
            if POLICY_QUESTION.search(t.lowered) and ("question" in t.wants or parsing.is_info_question(t.text)):
                return None  # "is the deposit refundable if i move it?": the policy answers
            return self._deposit(t.tools, t.tz)  # the same link again
        return None

    def _waitlist_offer_reply(self, t):
        """The answer to a freed time the waitlist holds for the patient: yes (or "1") books it through the usual
        name and deposit steps, no releases it for the next patient; anything else goes on as usual."""
        c, tools = t.c, t.tools
        if c.state not in (Conversation.State.HOLDING, Conversation.State.AWAITING_DEPOSIT) or not c.booking_id:
            return None
        if tools.waitlist_offer() is None:
            return None
        picked = parsing.parse_choice(t.text, [o.start for o in tools.offered()], tz=t.tz) is not None
        yes = bool(t.wants & {"yes", "book"}) or picked
        if ("no" in t.wants or "cancel" in t.wants or PASS.search(t.lowered)) and not yes:
            tools.decline_waitlist_offer()
            return "No problem, I've let that time go. I'll keep you on the list in case another one opens."
        if not yes:
            return None
        if not c.patient_name:
            name = _name_in(t.text) or parsing.parse_name(YES_WORDS.sub("", t.text).strip(" ,.!"))
            if name is None:
                return "Great! What name should I put the appointment under?"
            tools.set_name(*name)
        return self._deposit(tools, t.tz)

    def _waitlist_question(self, t):
        """The answer to "Want me to text you if something opens?": yes joins the waitlist, no drops it; anything
        else lets the question lapse and goes on."""
        tools = t.tools
        entry = tools.waitlist_question()
        if entry is None:
            return None
        yes, no = "yes" in t.wants and "no" not in t.wants, "no" in t.wants
        if yes or "waitlist" in t.lowered:
            entry = tools.answer_waitlist(entry, join=True)
            label = _with_zone(entry.label, t.tz, tools.now)
            return (
                f"Done! I'll text you if a {entry.service.name} time opens {label}, and hold it for you for a few "
                "minutes. Or tell me another day that works."
            )
        tools.answer_waitlist(entry, join=False)
        if no:
            return "No problem. What day or time would work better for you?"
        return None

    def _pick_while_booked(self, t):
        """A pick of an offered time while already booked for the same treatment: move it, or book another."""
        if t.c.pending_pick and t.c.state == Conversation.State.OFFERING:
            return self._already_booked(t.c, t.tools, t.lowered, t.wants, t.tz) or None
        return None

    def _cancel_confirmation(self, t):
        """The answer to "Reply YES to cancel": cancel, keep, or (anything else) go on."""
        if t.c.confirming_cancel_id:
            return self._confirm_cancel(t.c, t.tools, t.lowered, t.wants, t.tz) or None
        return None

    def _cancel(self, t):
        """A cancellation, from any state (offering times included): ask once, then cancel."""
        return self._ask_cancel(t.c, t.tools, t.tz) if "cancel" in t.wants else None

    def _move_the_hold(self, t):
        """Another time or day for a time held but not yet paid ("can i move it to another day?"): the hold is let
        go and times offered again (the soonest after the held day when no day is named)."""
        c, tools = t.c, t.tools
        held = c.booking if c.state in (Conversation.State.HOLDING, Conversation.State.AWAITING_DEPOSIT) else None
        if held is None or held.status not in ("held", "awaiting_deposit") or "reschedule" not in t.wants:
            return None
        if c.offered_slots and parsing.parse_choice(t.text, [o.start for o in tools.offered()], tz=t.tz) is not None:
            return None  # "can i do 3 instead": another of the times offered
        if tools.upcoming_booking() is not None:
            return None
        tools.release_hold()
        when = parsing.parse_when(t.text, now=tools.now, tz=t.tz)
        if when is None:
            day_after = held.start.astimezone(t.tz).replace(hour=0, minute=0) + timedelta(days=1)
            when = parsing.TimeWindow(start=day_after, end=day_after + timedelta(days=7), label="other days", asap=True)
        return self._offer(c, tools, when, t.tz)

    def _reschedule(self, t):
        """A request to move an upcoming appointment (unless already picking its new time)."""
        c, tools = t.c, t.tools
        picking_new_time = c.rescheduling_id and c.state == Conversation.State.OFFERING and c.offered_slots
        if "reschedule" not in t.wants or picking_new_time or tools.upcoming_booking() is None:
            return None
        booking = tools.start_reschedule()
        when = parsing.parse_when(t.text, now=tools.now, tz=t.tz)
        own = booking.start.astimezone(t.tz).strftime("%A").lower()
        days = {m[0] for m in WEEKDAY_NAMED.finditer(t.lowered)}
        if own in t.lowered and len(days) > 1 and not SAME_DAY.search(t.lowered):
            # "work thing came up thursday, can i move it to friday": the day it is on is not a day wanted
            others = parsing.parse_when(re.sub(rf"\b{own}\b", " ", t.lowered), now=tools.now, tz=t.tz)
            when = others or when
        if SAME_DAY.search(t.lowered):  # "same day is fine but later": the appointment's own day
            when = parsing.parse_when(
                f"{when_label(booking.start, t.tz).split(',')[0]} {t.lowered}", now=tools.now, tz=t.tz
            )
        elif SAME_TIME.search(t.lowered) and when is not None and when.day_start is None:
            # "next week same time": the appointment's own hour (and weekday, when none is said) in that window
            local = booking.start.astimezone(t.tz)
            clock = local.strftime("%I:%M%p").lstrip("0").lower()
            day = "" if WEEKDAY_NAMED.search(t.lowered) else local.strftime("%A").lower()
            same = parsing.parse_when(f"{SAME_TIME.sub(' ', t.lowered)} {day} at {clock}", now=tools.now, tz=t.tz)
            when = same if same is not None and same.start >= when.start else when
        own_day = when is not None and when.day_start is None and when.end - when.start <= timedelta(days=1)
        if own_day and when.start.date() == booking.start.astimezone(t.tz).date() and not SAME_DAY.search(t.lowered):
            # "i need to move my thursday appointment": the day it is on, not the day wanted; the soonest times
            # ("earliest after that?": the soonest after that day)
            after = booking.start.astimezone(t.tz) if AFTER_IT.search(t.lowered) else None
            return self._offer(c, tools, _next_days(tools.now, t.tz, after=after), t.tz)
        if when is None:
            return (
                f"Sure! Your {booking.service.name} is on {when_label(booking.start, t.tz)}. "
                "What day and time would work better?"
            )
        return self._offer(c, tools, when, t.tz)

    def _booking_status(self, t):
        """ "Remind me what time thursday?", "when is my appt again": where the upcoming appointment stands."""
        if not REMIND.search(t.lowered) or t.wants & {"cancel", "reschedule"} or t.c.rescheduling_id:
            return None
        upcoming = t.tools.upcoming_booking()
        if upcoming is None:
            return None
        day = upcoming.start.astimezone(t.tz).strftime("%A").lower()
        if not (re.search(r"\b(my|our|it)\b", t.lowered) or day in t.lowered):
            return None
        return f"Your {_booked(upcoming, t.tz)}"

    def _repick_while_holding(self, t):
        """Another of the offered times while one is held ("actually can i do 3 instead")."""
        c, tools = t.c, t.tools
        if c.state != Conversation.State.HOLDING or not c.offered_slots or c.rescheduling_id:
            return None
        offered = tools.offered()
        repick = parsing.parse_choice(t.text, [o.start for o in offered], tz=t.tz)
        if repick is None or offered[repick].start == c.booking.start:
            return None
        tools.hold_time(repick + 1)
        if not c.patient_name:
            return "No problem, I've switched it. What name should I put the appointment under?"
        return self._deposit(tools, t.tz)

    def _name_for_hold(self, t):
        """The name asked for once a time is held; then the deposit."""
        if t.c.state != Conversation.State.HOLDING or t.c.patient_name:
            return None
        name = parsing.parse_name(t.text)
        if not name:
            return None
        t.tools.set_name(*name)
        return self._deposit(t.tools, t.tz)

    def _pick_offered_time(self, t):
        """A pick among the times offered: hold it (or move the appointment there), then the name or the deposit."""
        c, tools = t.c, t.tools
        if c.state != Conversation.State.OFFERING or not c.offered_slots:
            return None
        alone = re.fullmatch(
            r"(the )?(earliest|soonest|latest|last|first)( one| please| pls)?", t.lowered.strip(" .!?")
        )
        if LATER_OR_EARLIER.search(t.lowered) and not ORDINAL.search(t.lowered) and not alone:
            return None  # "any of those later in the day? like 3 or 4": hours of the day asked for, not a pick
        if re.search(r"\b(after|past) \d{1,2}\b(?! (days?|weeks?|months?))", t.lowered) and not any(
            o.start.astimezone(t.tz).hour >= 12 for o in t.tools.offered()
        ):
            return None  # "whats ur latest slot? like after 5" when only mornings are offered: later times asked for
        if HAVE_YOU_GOT.search(t.lowered) and not ORDINAL.search(t.lowered) and not re.search(r"\d", t.lowered):
            return None  # "do you have tuesday?", "tienen pa el martes?": that day's times asked for, not a pick
        named = parsing.find_services(t.text, t.catalog)
        if named and c.service_id not in named:
            return None  # "ok lets do the filler instead. thursday works": another treatment's times, not a pick
        offered = tools.offered()
        choice, rest = self._pick_and_rest(t, offered)
        if choice is None and parsing.is_health_question(t.text):
            return None  # a health question first ("is it ok while breastfeeding? if yes the first one")
        if choice is None:
            choice = parsing.parse_choice(t.text, [o.start for o in offered], tz=t.tz)
        if choice is None and t.lowered.isdigit() and int(t.lowered) > len(offered):  # "6" of three
            prompt = _pick_prompt(offered)
            return f"I offered {len(offered)} times: r{prompt[1:]}, or tell me another day."
        if choice is None:
            return None
        short = len(parsing.sentences(t.text)) == 1 and len(t.lowered.split()) <= 15
        if (
            short
            and PART_OF_DAY.search(t.lowered)
            and not _within_hours(offered[choice].start, parsing.parse_when(t.text, now=tools.now, tz=t.tz), t.tz)
        ):
            return None  # "could i book one next tuesday after school?" when only the morning is offered
        answer = self._rest_answer(t, rest)
        if c.rescheduling_id:
            return f"{self._moved(tools.reschedule_to(choice + 1), t.tz)}{answer}"
        tools.hold_time(choice + 1)
        if not c.patient_name:
            name = _name_in(t.text)
            if name is None:
                return f"{self._ask_name(c)}{answer}"
            tools.set_name(*name)
        return f"{self._deposit(tools, t.tz)}{answer}"

    def _offer_again(self, t):
        """ "Could you send me those times again? I deleted the message": the same times, as offered."""
        c = t.c
        if c.state != Conversation.State.OFFERING or not c.offered_slots or not c.service_id:
            return None
        if not OFFER_AGAIN.search(t.lowered):
            return None
        return _offer_text(c.service.name, t.tools.offered(), t.tz)

    def _pick_and_rest(self, t, offered):
        """In a text of several sentences, the one that picks a time plainly (no "if") and the others ("Thursday
        works. can I still teach my class that morning?", "sorry wrong chat!! the 2nd one works"); (None, "")
        when no sentence does."""
        parts = parsing.sentences(t.text)
        if len(parts) < 2 or parsing.CHANGED_MIND.search(parsing.normalise(t.text)):
            return None, ""  # "thursday... scratch that, friday": the whole text says which
        for i, part in reversed(list(enumerate(parts))):  # the last plain pick said
            low = parsing.normalise(part)
            if re.search(r"\b(if|next|another|other|instead|else|what about|how about)\b", low) or _ASKS.match(low):
                continue  # a condition, a question, or another time asked for: not a plain pick
            if parsing.is_health_question(part):
                continue
            choice = parsing.parse_choice(part, [o.start for o in offered], tz=t.tz)
            if choice is not None:
                return choice, ". ".join(parts[:i] + parts[i + 1 :])
        return None, ""

    def _rest_answer(self, t, rest: str) -> str:
        """The answer to the question asked beside a pick, after the pick's reply; empty when none is asked."""
        asks = rest and ("?" in t.text or parsing.is_info_question(rest) or parsing.is_what_if(rest))
        if not asks or not ("question" in parsing.intents(rest + "?") or parsing.is_what_if(rest)):
            return ""
        answer = _first_document_answer(t.tools, f"{rest} {t.c.service.name}")
        return f"\n\n{answer}" if answer else ""  # a paragraph of its own: i18n says each in Spanish on its own

    def _read_service_and_time(self, t):
        """No reply: notes the service named (choosing it) and the time wanted, for the steps after."""
        c, tools = t.c, t.tools
        t.mentioned = parsing.find_services(t.text, t.catalog)
        consult = [s.key for s in t.catalog if "consult" in s.name.lower() and s.key in t.mentioned]
        if consult and len(t.mentioned) > 1 and parsing.asks_for_times(t.text):  # "filler or botox? a consult tmrw"
            t.mentioned = consult + [m for m in t.mentioned if m not in consult]
        elif len(t.mentioned) > 1:  # "acne scars on my cheeks ... could i come in for microneedling next week?"
            asking = [p for p in parsing.sentences(t.text) if parsing.asks_for_times(p)]
            wanted = [m for p in asking for m in parsing.find_services(p, t.catalog)]
            chosen = WANT_THIS.search(t.lowered)  # "was going to ask about filler but i just want botox"
            if chosen:
                wanted = parsing.find_services(t.lowered[chosen.start() :], t.catalog)[:1] + wanted
            if wanted:
                t.mentioned = list(dict.fromkeys(wanted + t.mentioned))
        offering, earlier = c.state == Conversation.State.OFFERING, c.service_id
        # "how much is dysport?" while Botox times are on offer: a price asked, the Botox times stay on the table
        price_only = "price" in t.wants and "book" not in t.wants and not parsing.asks_for_times(t.text)
        price_only = price_only and not SWITCH_TO.search(t.lowered)  # "actually make it dysport. heard its cheaper"
        if t.mentioned and not (offering and price_only and c.offered_slots):
            tools.choose_service(t.mentioned[0])
        t.when = parsing.parse_when(t.text, now=tools.now, tz=t.tz)
        if t.when is None and offering and earlier != c.service_id and c.time_preference:
            t.when = parsing.parse_when(c.time_preference, now=tools.now, tz=t.tz)  # another service, same time
        return None

    def _service_for_booking(self, t):
        """No reply: the treatment named in answer to "Which treatment are you interested in?" ("hmm a hydrafacial i
        think?") goes on as the booking it answers, not as a question about it."""
        c = t.c
        if not t.mentioned or "book" in t.wants or len(t.lowered.split()) > 6 or parsing.is_info_question(t.text):
            return None
        if c.state not in (Conversation.State.NEW, Conversation.State.ENGAGED) or c.offered_slots:
            return None
        if t.last_reply.startswith(("I'd love to get you booked!", i18n.BOOK_WHICH_ES)):
            t.wants = (t.wants - {"question", "price"}) | {"book"}
        return None

    def _health_question(self, t):
        """A health or safety question (pregnancy, medicines, a cold sore...), in any state: answered from the
        clinic's documents (or handed to staff), never with an offer of times."""
        minor = MINOR_QUESTION.search(t.lowered)
        if not parsing.is_health_question(t.text) and not minor:
            return None
        asked = "?" in t.text or parsing.is_info_question(t.text)
        if parsing.asks_for_times(t.text) and not CAN_I_YET.search(t.lowered) and not minor and not asked:
            return None  # "pregnant but book me a facial friday": a request ("can i do a peel now?" is a question)
        if parsing.PRESCRIPTION.search(t.lowered):  # a prescribed medicine: the clinician answers too
            t.tools.flag_for_staff("a question about a prescribed medicine")
        elif ALLERGY_TO.search(t.lowered):  # "a severe allergy to lidocaine": the clinician answers too
            t.tools.flag_for_staff("a question about an allergy")
        elif CLINICIAN_ONLY.search(t.lowered):  # "I'm Fitzpatrick V and another place burned me": the clinician too
            t.tools.flag_for_staff("a question only the clinician can answer")
        return self._answer(t.c, t.tools, self._about(t), steer=False, said=t.text)

    def _duration(self, t):
        """ "How long will it take?": the duration of the service named, chosen or booked, from the catalog."""
        if not DURATION.search(t.lowered) or re.search(r"\b(kick|kicks) in|take effect|to work\b", t.lowered):
            return None  # "how long does it take botox to kick in?" is about the results
        if len(t.mentioned) > 1:  # "a hydrafacial or a peel: the price on each and how long do they take"
            names = [t.tools.lookup_service(key) for key in t.mentioned[:3]]
            prices = " ".join(f"{n['name']} is {n['price']}." for n in names) if "price" in t.wants else ""
            takes = "; ".join(
                f"{n['name']} about {n['duration_minutes']} minutes" for n in names if n["duration_minutes"]
            )
            return f"{prices} Appointments: {takes}.".strip() if takes else None
        upcoming = t.tools.upcoming_booking()
        service_id = (t.mentioned or [None])[0] or t.c.service_id or (upcoming.service_id if upcoming else None)
        if service_id is None:
            return None
        info = t.tools.lookup_service(service_id)
        if not info["duration_minutes"]:
            return None
        yours = ""
        if upcoming is not None and upcoming.service_id == service_id:
            yours = f" Yours is on {when_label(upcoming.start, t.tz)} with {upcoming.provider.name}."
        reply = f"A {info['name']} appointment takes about {info['duration_minutes']} minutes.{yours}"
        other = self._other_question(
            t, skip=lambda clause: bool(DURATION.search(clause)), budget=MAX_ANSWERS_CHARS - len(reply) - 1
        )
        return f"{reply} {other}" if other else reply

    def _provider_question(self, t):
        """ "Can Emily Johnson do my HydraFacial?": whether that provider does the treatment, and who does."""
        if t.provider is None or "question" not in t.wants or not t.mentioned or parsing.asks_for_times(t.text):
            return None
        if t.when is not None:  # "tox w emily thurs after 5?": her times that day
            return None
        service = t.tools.choose_service(t.mentioned[0])
        upcoming = t.tools.upcoming_booking()
        if upcoming is not None and upcoming.service_id == service.pk and re.search(r"\b(my|me)\b", t.lowered):
            if upcoming.provider_id == t.provider.pk:  # "is dr smith the one seeing me for my botox?": the booking
                return f"Yes: your {_booked(upcoming, t.tz)}"
            return _with_whom(upcoming, t.tz)
        doers = _doers(t.tools, service.pk)
        if t.provider in doers:
            name = t.provider.name
            return f"Yes, {name} does {service.name}. Would you like me to find you a time with {name}?"
        others = " and ".join(p.name for p in doers) or "our team"
        return f"{t.provider.name} doesn't do {service.name}; {others} does. Would you like me to find you a time?"

    def _who_does(self, t):
        """ "Who does the injections?", "is it a real doctor?", "MD or NP?": the providers who do the treatment asked
        about (or booked, or chosen; all of them for none), by name and title from the clinic's records; "who is
        doing mine?" from the booking."""
        if parsing.asks_for_times(t.text):
            return None
        c, tools = t.c, t.tools
        if BOOKED_WITH.search(t.lowered) and (upcoming := tools.upcoming_booking()) is not None:
            return _with_whom(upcoming, t.tz)  # "is my thursday appointment with dr smith or the np?"
        if t.provider is not None or not WHO_DOES.search(t.lowered):
            return None
        if "question" not in t.wants and "?" not in t.text:
            return None
        upcoming = tools.upcoming_booking()
        mine = upcoming is not None and (not t.mentioned or upcoming.service_id in t.mentioned)
        if mine and re.search(r"\b(my|mine|me)\b", t.lowered):
            return _with_whom(upcoming, t.tz)
        service_id = t.mentioned[0] if t.mentioned else c.service_id
        doers = _doers(tools, service_id)
        if not doers:
            return None
        names = [f"{p.name} ({p.title})" if p.title else p.name for p in doers]
        said = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
        if service_id is None:
            reply = f"Our providers are {said}."
        else:
            name = tools.lookup_service(service_id)["name"]
            reply = f"{said} {'does' if len(doers) == 1 else 'do'} {name} here."
        if c.state == Conversation.State.OFFERING and c.offered_slots:
            return f"{reply} {_pick_prompt(tools.offered())} for one of the times above."
        if service_id is not None and c.state in (Conversation.State.NEW, Conversation.State.ENGAGED) and not upcoming:
            return f"{reply} Would you like me to find you a time?"
        return reply

    def _prices(self, t):
        """A question about prices; with open times too when the same text asks for them ("how much is botox and do
        you have anything friday"), and the answer to another question it asks ("...and where do i park")."""
        if "price" not in t.wants:
            return None
        c, tools = t.c, t.tools
        # The text without the treatments the clinic may not offer ("laser" in "laser tattoo removal" with them)
        rest = OTHER_TREATMENTS.sub(" ", t.lowered.replace("laser tattoo", "tattoo"))
        if OTHER_TREATMENTS.search(t.lowered) and not parsing.find_services(rest, t.catalog):
            not_offered = self._not_offered(t)  # "how much is laser tattoo removal": not the laser hair removal price
            if not_offered:
                return not_offered
        if not t.mentioned and DEALS.search(t.lowered):
            # "student discounts?", "any discount if i post u on my ig?": the clinic's documents, even while a
            # treatment is being talked about
            return self._answer(c, tools, t.text)
        if not t.mentioned and c.service_id is None:
            t.mentioned = self._service_for_concern(t)
            if t.mentioned:
                tools.choose_service(t.mentioned[0])
        reply = self._price(c, tools, t.mentioned, t.catalog)
        if not t.mentioned and c.service_id is None:
            return reply
        asked = "book" in t.wants or parsing.asks_for_times(t.text)
        wants_times = not t.asked and (
            asked
            or (
                t.when is not None
                and not parsing.is_what_if(t.text)
                and not EVENT_DAY.search(t.lowered)  # "how many days do u peel? i have a party 12/19": not a wish
                and tools.upcoming_booking() is None
            )
        )
        if c.state in (Conversation.State.HOLDING, Conversation.State.AWAITING_DEPOSIT):
            wants_times = False  # a time is held: the price is the answer, the hold stays
        if wants_times and len(t.mentioned) <= 1:
            prices = reply.removesuffix(" Would you like me to find you a time?")
            self._moving_unless_another(c, tools, t.lowered)
            offer = self._offer(c, tools, t.when, t.tz) if t.when else self._soonest_times(c, tools, t.tz)
            if offer and "open times" in offer:  # "i want laser on my legs, how many sessions?": that answer too
                other = self._other_question(t, budget=200)
                prices = f"{prices} {other}" if other else prices
            return f"{prices} {offer}" if offer else reply
        other = self._other_question(t, budget=MAX_ANSWERS_CHARS - len(reply) - 1)
        if not other and AGE_STATED.search(t.lowered):  # "...but she's 17": the age rules beside the price
            found = [r for r in tools.search_knowledge(f"age minors {t.text}") if r.get("kind") == "document"]
            room = MAX_ANSWERS_CHARS - len(reply) - 1
            other = _sentences_within(found[0].get("passage") or found[0]["snippet"], room) if found else ""
        if not other:
            return reply
        pick = re.search(r" Reply [^.]* for one of the ([\w ]+ )?times above\.$", reply) if c.offered_slots else None
        if pick:  # the other answer, then the pick prompt last
            return f"{reply.removesuffix(pick[0])} {other}{pick[0]}"
        return f"{reply.removesuffix(' Would you like me to find you a time?')} {other}"

    def _not_offered(self, t):
        """ "Do you do coolsculpting?": a treatment the catalog does not have, and no document about it."""
        other = OTHER_TREATMENTS.search(t.lowered)
        if other and not parsing.find_services(other[0], t.catalog) and not parsing.asks_for_times(t.text):
            results = [r for r in t.tools.search_knowledge(other[0]) if r.get("kind") == "document"]
            if not _documents_speak_of(results[:3], set(terms(other[0]))):
                return self._not_offered_reply(t)
        match = DO_YOU_OFFER.search(t.lowered)
        if match is None or parsing.asks_for_times(t.text):
            return None
        if t.mentioned:
            return self._offered(t, match["what"])
        asked = set(terms(match["what"]))
        if not asked:
            return None
        results = [r for r in t.tools.search_knowledge(t.text) if r.get("snippet")]
        if _documents_speak_of(results[:2], asked):
            return None  # the clinic's documents speak of all it asks: the usual answer
        return self._not_offered_reply(t)

    def _unstated_way(self, t):
        """ "Do you take walk-ins?": a question about the clinic's ways that none of its documents speaks of goes to
        the team (an answer about something else would be a guess)."""
        match = DO_YOU_ACCEPT.search(t.lowered)
        if match is None or parsing.asks_for_times(t.text):
            return None
        asked = set(terms(match["what"])) - GENERIC_TREATMENT_WORDS
        for service in (s for s in t.catalog if s.key in t.mentioned):  # "do you do botox for sweating": sweating
            asked -= _named_by(service)
        if not asked:
            return None
        if not asked <= t.tools.unknown_terms(match["what"]):  # "over zoom": no document speaks of zoom
            results = [r for r in t.tools.search_knowledge(t.text) if r.get("snippet")]
            if any(asked & set(terms(f"{r['title']} {r.get('passage') or r['snippet']}")) for r in results[:3]):
                return None  # the documents speak of it: the usual answer
        return self._not_known(t.tools)

    def _offered(self, t, what):
        """ "Do you do microneedling?": yes, and its price from the catalog, when that is all the text asks (not
        "do you do botox for sweating", which the clinic's documents answer, or not)."""
        c = t.c
        if len(t.mentioned) != 1 or c.state not in (Conversation.State.NEW, Conversation.State.ENGAGED):
            return None
        service = next(s for s in t.catalog if s.key == t.mentioned[0])
        if set(terms(what)) - _named_by(service) - GENERIC_TREATMENT_WORDS:
            return None
        return f"Yes, we do! {self._price(c, t.tools, t.mentioned, t.catalog)}"

    def _not_offered_reply(self, t):
        names = ", ".join(s.name for s in t.catalog[:12])  # a clinic's whole menu fits one text
        return f"That isn't a treatment we offer, sorry. Our treatments are {names}. Would any of these interest you?"

    def _other_provider(self, t):
        """ "Do any of those work with Dr. Johnson instead?": the same window, that provider's times."""
        c = t.c
        if t.provider is None or c.state != Conversation.State.OFFERING or not c.offered_slots or not c.service_id:
            return None
        if all(o.provider_id == t.provider.pk for o in t.tools.offered()):
            return None
        when = parsing.parse_when(c.time_preference, now=t.tools.now, tz=t.tz) if c.time_preference else None
        if t.when is not None:
            when = t.when
        if when is None:
            return self._offer_soonest(c, t.tools, t.tz)
        return self._offer(c, t.tools, when, t.tz)

    def _question(self, t):
        """A question (not a booking request): answered first, whatever day or service it names. While times are
        on offer, a text that turns them down or names another time ("none of those work, anything after 4 on
        wed?") asks for other times."""
        if "question" not in t.wants or not re.search(r"[a-z0-9]", t.lowered):
            return None
        if parsing.is_request(t.text) and not t.asked:
            return None
        other_times = "no" in t.wants or re.search(
            r"\b(any|anything|something|later|earlier|latest|earliest|instead|what about|how about)\b", t.lowered
        )
        offering = t.c.state == Conversation.State.OFFERING and t.c.offered_slots
        if offering and t.when is not None and other_times and not parsing.is_info_question(t.text) and not t.asked:
            return None
        status = MY_APPOINTMENT.search(t.lowered) and STATUS_QUESTION.search(t.lowered)
        upcoming = t.tools.upcoming_booking() if status and not parsing.is_info_question(t.text) else None
        if upcoming is not None:  # "what time is my appointment?", "is my appt still on?"
            return f"Yes: your {_booked(upcoming, t.tz)}"
        answer = self._answer(t.c, t.tools, self._about(t), said=t.text)
        if RECOMMEND.search(t.lowered) and not t.mentioned and t.c.service_id is None and not t.c.needs_staff:
            # "what do you have for sun spots?" -> the peel: the treatment a "how much is it?" next is about
            concern = self._service_for_concern(t)
            if concern:
                t.tools.choose_service(concern[0])
        then = self._then_book(t)  # "do i need a consult first? if so can i book one wed"
        return f"{answer} {then}" if then and not t.c.needs_staff else answer

    def _then_book(self, t) -> str:
        """The times a question's last sentence asks for, after its answer; empty when it asks for none."""
        parts = parsing.sentences(t.text)
        if len(parts) < 2 or not parsing.asks_for_times(parts[-1]):
            return ""
        consult = [s.key for s in t.catalog if "consult" in s.name.lower() and s.key in t.mentioned]
        chosen = consult or parsing.find_services(parts[-1], t.catalog) or t.mentioned
        if not chosen:
            return ""
        t.tools.choose_service(chosen[0])
        when = parsing.parse_when(parts[-1], now=t.tools.now, tz=t.tz)
        return self._offer(t.c, t.tools, when, t.tz) if when else self._soonest_times(t.c, t.tools, t.tz)

    def _deposit_on_the_move(self, t):
        """ "Does my deposit carry over?" while moving a paid appointment: it does."""
        c = t.c
        if not re.search(r"\b(deposit|pay (again|twice|more)|charged again)\b", t.lowered):
            return None
        upcoming = t.tools.upcoming_booking() if not c.rescheduling_id else None
        if upcoming is not None and upcoming.rescheduled_from_id and CARRIES_OVER.search(t.lowered):
            # "the deposit carries over to the new time, right?" once the move is done
            paid = _deposit_cents(upcoming)
            if paid:
                return (
                    f"Yes: your {format_cents(paid)} deposit carried over to your {upcoming.service.name} on "
                    f"{when_label(upcoming.start, t.tz)}: nothing more to pay until your visit."
                )
        if not c.rescheduling_id:
            return None
        paid = _deposit_cents(c.rescheduling) if c.rescheduling else 0
        amount = f"{format_cents(paid)} " if paid else ""
        pick = f" {_pick_prompt(t.tools.offered())} to pick a new time." if c.offered_slots else ""
        return f"Your {amount}deposit carries over to the new time: nothing more to pay now.{pick}"

    def _deposit_status(self, t):
        """ "Do I still need to pay the deposit?" from a patient whose appointment is booked: where it stands."""
        if not re.search(r"\b(deposit|link)\b|\b(still|again|already) (need to |have to )?pay\b", t.lowered):
            return None
        if re.search(r"\b(cancel\w*|refund\w*|back|lose|forfeit\w*|no ?show|late)\b", t.lowered):
            return None  # "if i cancel do i get my deposit back?": the policy answers
        if parsing.asks_for_times(t.text):
            return None
        if "question" not in t.wants and not parsing.is_info_question(t.text):
            return None
        upcoming = t.tools.upcoming_booking()
        if upcoming is None or t.c.rescheduling_id:
            return None
        paid = _deposit_cents(upcoming)
        when = when_label(upcoming.start, t.tz)
        if paid:
            return (
                f"Your {format_cents(paid)} deposit for your {upcoming.service.name} on {when} is paid: there's "
                "nothing more to pay until your visit."
            )
        return (
            f"Your {upcoming.service.name} on {when} is booked, with no deposit to pay: the balance is due at your "
            "visit."
        )

    def _refund_status(self, t):
        """ "And I get my 50 bucks back right?" after a cancellation: where that deposit's refund stands."""
        if "question" not in t.wants or not REFUND_ASKED.search(t.lowered) or t.tools.upcoming_booking():
            return None
        payment = t.tools.recent_refund()
        if payment is None:
            return None
        booking = payment.booking
        done = "was refunded" if payment.status == "refunded" else "is being refunded"
        return (
            f"Yes: the {format_cents(payment.paid_cents)} deposit for your cancelled {booking.service.name} on "
            f"{when_label(booking.start, t.tz)} {done} to the card you paid with."
        )

    def _see_you(self, t):
        """ "ok thanks see you thursday": a goodbye, not a wish for times."""
        if not SEE_YOU.search(t.lowered) or "book" in t.wants or parsing.asks_for_times(t.text):
            return None
        return "You're welcome! See you then." if t.tools.upcoming_booking() else self._thanks_reply()

    def _booking_talk(self, t):
        """A wish to book, a time, or a service named: offer times (moving an appointment unless another)."""
        c = t.c
        booking_talk = "book" in t.wants or t.when is not None or (t.mentioned and c.state == Conversation.State.NEW)
        booking_talk = booking_talk or bool(t.mentioned and parsing.asks_for_times(t.text))
        # "what times do you have for that" after a question about a treatment: that treatment's times
        booking_talk = booking_talk or bool(c.service_id and not t.mentioned and parsing.asks_for_times(t.text))
        if c.state == Conversation.State.OFFERING and ("no" in t.wants or t.when is not None):
            booking_talk = True
        booking_talk = booking_talk or self._yes_to_finding_a_time(t)
        if not (booking_talk or (t.mentioned and "question" not in t.wants)):
            return None
        self._moving_unless_another(c, t.tools, t.lowered)
        first = self._first_question_answer(t)  # "does dysport hurt? if not can i come in friday"
        offer = self._book(c, t.tools, t.when, t.wants, t.tz)
        return f"{first} {offer}" if first and "open times" in offer else offer

    def _yes_to_finding_a_time(self, t) -> bool:
        """ "Yes please" to "Would you like me to find you a time?": the soonest open times, not "what day?"; to
        "...a time with Dr. Johnson?", hers."""
        c = t.c
        if "yes" not in t.wants or "no" in t.wants or not c.service_id or c.offered_slots:
            return False
        if c.state != Conversation.State.ENGAGED:
            return False
        with_provider = WITH_PROVIDER.search(t.last_reply)
        if with_provider and t.provider is None:
            t.tools.prefer_provider(next((p for p in t.tools.providers() if p.name == with_provider[1]), None))
        return bool(with_provider) or t.last_reply.endswith(FIND_A_TIME)

    def _first_question_answer(self, t) -> str:
        """The answer to the question a text asks in one sentence while another asks for times ("does dysport hurt?
        if not can i come in friday", "book me a peel friday. also is it ok for sensitive skin?"); empty otherwise."""
        parts = parsing.sentences(t.text)
        if len(parts) < 2 or not any(parsing.asks_for_times(p) for p in parts):
            return ""
        for part in parts:
            if parsing.asks_for_times(part) or "price" in parsing.intents(part):
                continue
            asked = parsing.is_info_question(part) or _ASKS.match(parsing.normalise(part))
            if not asked or "question" not in parsing.intents(part + "?") or len(part.split()) < 3:
                continue
            query = part if parsing.find_services(part, t.catalog) else f"{part} {self._about(t)}"
            answer = _first_document_answer(t.tools, query)
            if answer:
                return answer
        return ""

    def _other_days(self, t):
        """ "Yes" to "want me to check other days?": the next two weeks."""
        c = t.c
        if "yes" in t.wants and c.service_id and not c.offered_slots and c.time_preference:
            return self._offer(c, t.tools, _next_days(t.tools.now, t.tz), t.tz)
        return None

    def _just_a_name(self, t):
        """A name sent when none was asked for ("Jordan Lee" after a move is done): thanked, not searched for."""
        if t.wants - {"greeting", "thanks"} or len(t.text.split()) > 4:
            return None
        name = parsing.parse_name(t.text)
        if name is None or not t.text.strip()[:1].isupper():
            return None
        return f"Thanks, {name.first}! Anything else I can help with?"

    def _long_text(self, t):
        """Any other question, or a text of more than three words: the clinic's knowledge."""
        if not re.search(r"[a-z0-9]", t.lowered):  # "?", an emoji: nothing to search for
            return None
        if t.wants == {"thanks"} and SIGNED_THANKS.match(t.text):
            return None  # thanks, signed: the thanks answers
        if "question" in t.wants or len(t.lowered.split()) > 3:
            return self._answer(t.c, t.tools, t.text)
        return None

    def _thanks(self, t):
        """Thanks."""
        return self._thanks_reply() if "thanks" in t.wants else None

    def _thanks_reply(self):
        return "You're welcome! Anything else I can help with?"

    def _greeting(self, t):
        """A greeting (or a text of no words at all: "?", an emoji)."""
        bare = not re.search(r"[a-z0-9]", t.lowered)
        if "greeting" not in t.wants and not (bare and t.c.state != Conversation.State.OFFERING):
            return None
        return f"Hi! This is {t.clinic.name}. I can answer questions, share prices or book you in. What can I do?"

    def _which_time(self, t):
        """Times offered and none picked ("?", "👍", "hmm"): the times again, and how to pick."""
        if t.c.state == Conversation.State.OFFERING and t.c.offered_slots:
            offer = _offer_text(t.c.service.name, t.tools.offered(), t.tz)[:-1]
            return f"Sorry, which time works? {offer}, or tell me another day."
        return None

    def _which_day(self, t):
        """A service chosen and no time yet: ask for a day and time."""
        if t.c.service_id and t.c.state == Conversation.State.ENGAGED:
            return f'What day and time work best for your {t.c.service.name}? (e.g. "Thursday afternoon")'
        return None

    def _okay(self, t):
        """ "ok", "cool", "got it" after the deposit link or an answer: acknowledged, not searched for."""
        if not OKAY.fullmatch(t.lowered.strip(" .!")):
            return None
        c = t.c
        held = c.booking if c.state in (Conversation.State.HOLDING, Conversation.State.AWAITING_DEPOSIT) else None
        if held is not None and held.status in ("held", "awaiting_deposit") and held.deposit_cents and c.patient_name:
            return (
                f"Great! Your {held.service.name} on {when_label(held.start, t.tz)} is confirmed once the deposit is "
                "paid with the link above."
            )
        return "Great! Anything else I can help with?"

    def _anything_else(self, t):
        """Anything else: the clinic's knowledge (or a hand-off when it has no answer)."""
        return self._answer(t.c, t.tools, t.text)

    def safety_reply(self, c, text, tools) -> str:
        """The answers no engine improvises: urgent symptoms (the urgent script and an urgent alert), questions
        about someone else (nothing), a request for a person (a hand-off). Empty when none applies."""
        lowered = parsing.normalise(text)
        if _urgent(lowered):
            return self._urgent_reply(c, tools)
        if OTHER_PATIENT.search(lowered) or _someone_elses(text):
            return "I'm sorry, I can only help with your own appointments and questions. How can I help you today?"
        if "human" in parsing.intents(text):
            tools.hand_off("the patient asked for a person")
            return "Of course! I've let our front desk know, and someone will text you back shortly."
        return ""

    def while_staff_own(self, c, text, tools) -> str:
        """A text while staff own the conversation. Urgent symptoms still get the urgent script and an urgent alert
        (whoever owns the thread); the first text after the assistant's own hand-off, while no one has taken it or
        answered, gets one acknowledgement, so the patient is not left wondering; anything else, nothing: staff
        answer it."""
        if _urgent(parsing.normalise(text)):
            return self._urgent_reply(c, tools)
        if c.owned_by_id is not None or tools.answered_since_hand_off():
            return ""
        return STAFF_HAVE_IT

    def _urgent_reply(self, c, tools) -> str:
        """The urgent script, with an urgent alert to staff (the conversation is theirs)."""
        tools.hand_off("possible urgent symptoms", urgent=True)
        phone = f" at {c.clinic.front_desk_phone}" if c.clinic.front_desk_phone else ""
        return URGENT_SCRIPT.format(phone=phone)

    # --- Pieces of the dialogue -----------------------------------------------------------------------------------

    def _moving_unless_another(self, c, tools, lowered):
        """A patient with an upcoming appointment who asks for a time for the same treatment is moving it, unless
        they say they want another one (then the next pick may be a second appointment)."""
        if c.rescheduling_id:
            return
        upcoming = tools.upcoming_booking()
        if upcoming is None or (c.service_id and c.service_id != upcoming.service_id):
            return
        if ANOTHER.search(lowered):
            tools.allow_another_booking()
            return
        tools.start_reschedule()

    def _already_booked(self, c, tools, lowered, wants, tz):
        """The patient picked a time while already booked for the same treatment: MOVE moves the appointment
        there, ANOTHER books it as a second one. Anything else goes on as usual."""
        index = c.pending_pick
        if MOVE.search(lowered) or wants & {"reschedule", "yes"}:
            tools.start_reschedule(keep_offered=True)
            return self._moved(tools.reschedule_to(index), tz)
        if ANOTHER.search(lowered):
            tools.allow_another_booking()
            tools.hold_time(index)
            if not c.patient_name:
                return self._ask_name(c)
            return self._deposit(tools, tz)
        return ""

    def _ask_cancel(self, c, tools, tz):
        if tools.upcoming_booking() is None:
            held = c.booking if c.booking is not None and c.booking.status in ("held", "awaiting_deposit") else None
            if held is not None:  # nothing is booked yet: "cancel" lets go of the time held for the deposit
                tools.release_hold()
                tools.forget_offer()
                return (
                    f"No problem: I've let go of the {held.service.name} time on {when_label(held.start, tz)}. "
                    "Nothing is booked and the deposit link no longer works. Text me any time to find another time."
                )
            if c.state == Conversation.State.OFFERING:
                tools.release_hold()
                tools.forget_offer()
                return "No problem, I won't book anything. Text me any time you'd like to find a time."
        booking = tools.ask_cancel()
        deposit = _deposit_cents(booking)
        refund = f"; your {format_cents(deposit)} deposit will be refunded" if deposit else ""
        return (
            f"Reply YES to cancel your {booking.service.name} on {when_label(booking.start, tz)}{refund}. "
            "Or reply NO to keep it."
        )

    def _confirm_cancel(self, c, tools, lowered, wants, tz):
        """The answer to "Reply YES to cancel": YES cancels, NO (or "don't cancel") keeps it, anything else goes on
        as a new text (the question lapses)."""
        if ("yes" in wants or "cancel" in wants) and not re.search(r"\b(dont|do not|no|not)\b", lowered):
            return self._cancelled(tools.cancel_booking(), tz)
        booking = c.confirming_cancel
        if "reschedule" not in wants and "no" not in wants and DEPOSIT_ASKED.search(lowered):
            # "wait do i get my deposit back tho": answered, and the question to cancel still stands
            deposit = _deposit_cents(booking)
            notice = tools.clinic.cancellation_notice_hours
            said = (
                f"Yes: you're cancelling more than {notice} hours ahead, so your {format_cents(deposit)} deposit will "
                "be refunded to the card you paid with."
                if deposit
                else "There's no deposit on this appointment, so cancelling costs nothing."
            )
            return (
                f"{said} Reply YES to cancel your {booking.service.name} on {when_label(booking.start, tz)}, or NO to "
                "keep it."
            )
        tools.keep_booking()
        if "reschedule" in wants:
            return ""  # "no wait, don't cancel, can i move it to next week instead?": the move goes on
        if "no" in wants or re.search(r"\b(dont|do not) cancel|keep (it|my)\b", lowered):
            return f"No problem: your {booking.service.name} on {when_label(booking.start, tz)} stays booked."
        return ""

    def _cancelled(self, booking, tz):
        deposit = _deposit_cents(booking)
        refund = f" Your {format_cents(deposit)} deposit will be refunded." if deposit else ""
        return (
            f"Done: your {booking.service.name} on {when_label(booking.start, tz)} is cancelled.{refund} "
            "Want to pick another time?"
        )

    def _price(self, c, tools, mentioned, catalog):
        upcoming = tools.upcoming_booking() if not mentioned and c.service_id is None else None
        if upcoming is not None:  # "how much will the rest be on thursday?": the booked treatment's price
            mentioned = [upcoming.service_id]
        if not mentioned and c.service_id is None:
            names = ", ".join(s.name for s in catalog[:6])
            return f"Happy to help with prices! Which treatment? We offer {names}, and more."
        ids = mentioned or [c.service_id]
        lines = []
        for service_id in ids[:3]:
            info = tools.lookup_service(service_id)
            lines.append(f"{info['name']} is {info['price']}.")
        if c.state == Conversation.State.OFFERING and c.offered_slots:
            which = f"{c.service.name} " if any(i != c.service_id for i in ids[:3]) else ""
            return " ".join(lines) + f" {_pick_prompt(tools.offered())} for one of the {which}times above."
        if c.state not in (Conversation.State.NEW, Conversation.State.ENGAGED) or upcoming is not None:
            return " ".join(lines)
        return " ".join(lines) + " Would you like me to find you a time?"

    def _book(self, c, tools, when, wants, tz):
        if c.service_id is None:
            names = ", ".join(s.name for s in tools.catalog()[:6])
            return f"I'd love to get you booked! Which treatment are you interested in? For example: {names}."
        if when is None:
            if c.state == Conversation.State.OFFERING and "no" in wants:
                return "No problem. What day or time would work better for you?"
            return self._offer_soonest(c, tools, tz)
        offer = self._offer(c, tools, when, tz)
        offered = offer.startswith("Here are open times") or "The nearest open times:" in offer
        return f"{self._price_unless_said(c, tools)}{offer}" if offered else offer

    def _offer_soonest(self, c, tools, tz):
        """ "I want Botox": its price (unless already given) and the soonest open times, in one reply."""
        offer = self._soonest_times(c, tools, tz)
        if not offer:
            return f'Great, {c.service.name}! What day and time work best for you? (e.g. "Thursday afternoon")'
        return f"{self._price_unless_said(c, tools)}{offer}"

    def _price_unless_said(self, c, tools) -> str:
        """ "Botox is $12 per unit. ": the price of the service being booked, before the first times offered for
        it, unless our last text said it, and no other service's (or the patient is moving an appointment, whose
        price is settled). A price said earlier in the conversation, or beside others ("Botox is $12 per unit.
        Dysport is $4.50 per unit."), is said again with the times of the one chosen: it confirms what is booked."""
        if c.rescheduling_id:
            return ""
        price = tools.lookup_service(c.service_id)["price"]
        last = c.messages.filter(direction="outbound").order_by("-pk").values_list("body", flat=True).first() or ""
        said = [p for p in (price, i18n.gsm7(i18n.price_es(price))) if p in last]  # as an English or Spanish reply
        others = [s.price_text() for s in tools.catalog() if s.pk != c.service_id]
        if said and not any(o in last.replace(said[0], "") for o in others):
            return ""
        return f"{c.service.name} is {price}. "

    def _soonest_times(self, c, tools, tz) -> str:
        """The soonest open times of the next week, as offered ("..., or tell me a day"); empty when none."""
        window = parsing.TimeWindow(start=tools.now, end=tools.now + timedelta(days=7), label="soonest", asap=True)
        offered = tools.find_open_times(start=window.start, end=window.end, label=window.label)
        if not offered:
            return ""
        return f"{_offer_text(c.service.name, offered, tz)[:-1]}, or tell me a day that suits you."

    def _about(self, t) -> str:
        """The question as searched: with the treatment the patient has booked (or chose) when it names none, so
        "can i work out after?" from a patient booked for Botox finds Botox's aftercare."""
        text = t.text
        for cue, words in SEARCH_HINTS:
            if cue.search(t.lowered):
                text = f"{text} {words}"
        if parsing.had_treatment(t.text) and "aftercare" not in text:
            text = f"{text} aftercare after"  # "had a chemical peel tuesday": the aftercare, not the peel's page
        if parsing.is_health_question(t.text) and t.tools.upcoming_booking() is not None:
            text = f"{text} after booking reschedule"  # "just found out i'm pregnant, what about thursday?"
        about_treatment = text != t.text or parsing.is_info_question(t.text) or parsing.is_health_question(t.text)
        about_treatment = about_treatment or bool(ABOUT_IT.search(t.lowered) or THIS_TREATMENT.search(t.lowered))
        if t.mentioned or not about_treatment:  # "where do i park?" is about no treatment
            return text
        upcoming = t.tools.upcoming_booking()
        service = upcoming.service if upcoming is not None else t.c.service
        return f"{text} {service.name}" if service is not None else text

    def _service_for_concern(self, t) -> list[int]:
        """ "How much to get rid of acne scars?": the service whose document the question finds first (its title
        names it), when the text names none."""
        results = [r for r in t.tools.search_knowledge(t.text) if r.get("kind") == "document"]
        if not results:
            return []
        asked = set(terms(t.text)) - PRICE_WORDS
        if not asked & set(terms(f"{results[0]['title']} {results[0].get('passage') or ''}")):
            return []  # "how much is a tummy tuck": the first document found is not about it
        title = parsing.normalise(results[0]["title"])
        return [s.key for s in t.catalog if parsing.normalise(s.name) in title][:1]

    def _other_question(self, t, *, skip=None, budget: int = 300) -> str:
        """The answers to the other questions a text asks beside the one a step answers ("how much is a
        hydrafacial and where do i park", "do you take apple pay? is there parking? how long does a facial
        take"): each clause that asks something ``skip`` does not take (by default: one that asks a price),
        searched with the treatment the text names when the clause names none, answered from the documents
        when they answer it, up to two answers within ``budget`` characters; empty otherwise."""
        skip = skip or (lambda clause: "price" in parsing.intents(clause))
        name_of = {s.key: s.name for s in t.catalog}
        names = [name_of[key] for key in t.mentioned[:1]]
        found, seen = [], set()
        for clause in re.split(r"[?.!;]|\b(?:and|n|also|plus)\b", t.lowered):  # "n": texting's "and"
            clause = _CLAUSE_LEAD.sub("", (clause or "").strip())
            if len(clause.split()) < 3 or skip(clause):
                continue
            if not (parsing.is_info_question(clause) or _ASKS.match(clause)):
                continue
            results = [r for r in t.tools.search_knowledge(clause) if r.get("kind") == "document"]
            if names and results and not parsing.find_services(clause, t.catalog):
                about = parsing.find_services(results[0]["title"], t.catalog)
                if about and names[0] not in [name_of[key] for key in about]:
                    # "how many sessions would i need" beside a microneedling price found the laser's sessions
                    results = [
                        r for r in t.tools.search_knowledge(f"{clause} {names[0]}") if r.get("kind") == "document"
                    ]
            if results and results[0]["document_id"] not in seen:
                seen.add(results[0]["document_id"])
                found.append(results[0].get("answer") or results[0]["snippet"])
            if len(found) == 2:
                break
        answers = []
        for n, passage in enumerate(found):  # an equal share of the room each, the first sentence at least
            room = budget - sum(len(a) + 1 for a in answers)
            answer = _sentences_within(passage, room // (len(found) - n)) or _sentences_within(passage, room)
            if len(answer) >= 40:  # else no room for a whole answer
                answers.append(answer)
        return " ".join(answers)

    def _offer(self, c, tools, when, tz):
        offered = tools.find_open_times(
            start=when.start,
            end=when.end,
            label=when.label,
            day_start=getattr(when, "day_start", None),
            day_end=getattr(when, "day_end", None),
        )
        if not offered:
            if not c.rescheduling_id and tools.waitlist_worth_offering(start=when.start, end=when.end):
                tools.propose_waitlist(
                    start=when.start,
                    end=when.end,
                    label=when.label,
                    day_start=getattr(when, "day_start", None),
                    day_end=getattr(when, "day_end", None),
                )
                return (
                    f"I don't see any {c.service.name} openings {when.label}. Want me to text you if something opens "
                    f"{_with_zone(when.label, tz, tools.now)}? Reply YES, or tell me another day."
                )
            nearest = self._nearest_after(c, tools, when, tz)
            if nearest:
                return f"I don't see any {c.service.name} openings {when.label}. The nearest open times: {nearest}"
            return f"I don't see any {c.service.name} openings {when.label}. Want me to check other days?"
        return _offer_text(c.service.name, offered, tz)

    def _nearest_after(self, c, tools, when, tz) -> str:
        """The soonest times in the two weeks after a window that had none ("saturday": the clinic does not treat
        then), offered at once rather than asked about; empty when there are none."""
        start = max(when.start, tools.now)
        hours = (getattr(when, "day_start", None), getattr(when, "day_end", None))
        offered = []
        for day_start, day_end in dict.fromkeys([hours, (None, None)]):  # "after 5:15" today: after 5:15 first
            label = "in the next two weeks"
            offered = tools.find_open_times(
                start=start, end=start + timedelta(days=14), label=label, day_start=day_start, day_end=day_end
            )
            if offered:
                break
        if not offered:
            return ""
        text = _offer_text(c.service.name, offered, tz)
        return text.split(":\n", 1)[1]

    def _lapsed(self, c, tools, held, tz):
        """The deposit link ran out before it was paid: say so, and offer times again for the same wish."""
        sorry = f"Sorry, the hold on {when_label(held.start, tz)} has expired."
        when = parsing.parse_when(c.time_preference, now=tools.now, tz=tz) if c.time_preference else None
        if when is None:
            return f"{sorry} What day and time would work for you?"
        offered = tools.find_open_times(
            start=when.start, end=when.end, label=when.label, day_start=when.day_start, day_end=when.day_end
        )
        if not offered:
            return f"{sorry} I don't see other {c.service.name} openings {when.label}. Want me to check other days?"
        return f"{sorry} {_offer_text(c.service.name, offered, tz)}"

    def _moved(self, booking, tz):
        deposit = " Your deposit carries over." if booking.deposit_cents else ""
        if booking.status != "confirmed":
            return (
                f"Thanks! I've sent the move to {when_label(booking.start, tz)} to our front desk to confirm; "
                f"they'll text you shortly.{deposit}"
            )
        return (
            f"Done! Your {booking.service.name} is now {when_label(booking.start, tz)} with "
            f"{booking.provider.name}.{deposit} See you then!"
        )

    def state_reply(self, c, tools) -> str:
        """Where the conversation stands, said plainly: the answer when another engine acted through the tools
        and then failed to say so (the times it offered, the deposit link, the confirmation). Empty when there is
        nothing in progress to report."""
        tz = c.clinic.tz
        try:
            if c.state == Conversation.State.OFFERING and c.offered_slots:
                return _offer_text(c.service.name, tools.offered(), tz)
            if c.state == Conversation.State.HOLDING and not c.patient_name:
                return self._ask_name(c)
            if c.state in (Conversation.State.HOLDING, Conversation.State.AWAITING_DEPOSIT) and c.booking_id:
                return self._deposit(tools, tz)
            if c.state == Conversation.State.CONFIRMED and c.booking_id:
                return self._moved(c.booking, tz) if c.booking.rescheduled_from_id else self._booked(c.booking, tz)
            if c.state == Conversation.State.HANDED_OFF:
                return "Thanks! One of our team will text you shortly."
        except ToolRefused as refused:
            return str(refused)
        return ""

    def _ask_name(self, c):
        """The pick said back (the time now held, so a slip shows at once), then the name asked for."""
        booking = c.booking
        if booking is None:
            return "Great choice! What name should I put the appointment under?"
        when = when_label(booking.start, c.clinic.tz)
        return f"Great choice: {when} with {booking.provider.name}. What name should I put the appointment under?"

    def _booked(self, booking, tz):
        return (
            f"You're all set: {booking.service.name} on {when_label(booking.start, tz)} with "
            f"{booking.provider.name}. See you then!"
        )

    def _deposit(self, tools, tz):
        result = tools.request_deposit()
        booking = tools.conversation.booking
        when = when_label(booking.start, tz)
        if result["status"] == "confirmed":
            return self._booked(booking, tz)
        if result["status"] != "link":
            return (
                f"Thanks! I've sent your {booking.service.name} on {when} to our front desk to confirm; "
                "they'll text you shortly."
            )
        held = f" until {time_label(result['held_until'], tz)}" if result.get("held_until") else ""
        return (
            f"Thanks, {tools.conversation.patient_name.split()[0]}! I'm holding {booking.service.name} on {when} with "
            f"{booking.provider.name}{held}. To confirm, please pay the {result['amount']} deposit here: "
            f"{result['url']}"
        )

    def _answer(self, c, tools, text, *, steer=True, said=None):
        """The clinic's knowledge on ``text`` (the question as searched); ``said``: the patient's own words, when
        the search adds to them (``_about``)."""
        text = SIGN_OFF.sub("", text).strip() or text  # "... Sincerely, Jordan Lee": the name is not searched for
        said = (SIGN_OFF.sub("", said).strip() or said) if said else said
        if not HOURS_CUE.search(parsing.normalise(text)):  # "where should i park on thursday": the day is not the topic
            text = DAY_WORDS.sub(" ", text)
            said = DAY_WORDS.sub(" ", said) if said else said
        results = [r for r in tools.search_knowledge(text) if r.get("snippet")]
        if not results:
            return self._not_known(tools)
        parts = _question_parts(said or text)
        body = self._answers(tools, text, results, said or text, parts)
        catalog = _catalog_names(tools)
        named = parsing.find_services(text, catalog)
        if len(named) == 1 and results[0]["kind"] == "document":
            name = tools.lookup_service(named[0])["name"]
            about_it = parsing.find_services(f"{said or text} {results[0]['title']}", catalog)
            # the treatment a question asks about, not one only its context names ("a gift card for one of your
            # facials... do you sell gift cards?" is not "HydraFacial: Gift cards...")
            if parts and not any(named[0] in parsing.find_services(q, catalog) for _, q in parts):
                about_it = []
            if THIS_TREATMENT.search(parsing.normalise(said or text)):  # "before I pick, is this covered by..."
                about_it.append(named[0])
            if name.lower() not in body.lower() and named[0] in about_it:
                # "do i stop aspirin before filler?": say which treatment it is for (not "Botox: Parking: ...")
                body = f"{name}: {body}"
        if not steer:
            return body
        steer = ""
        if c.state == Conversation.State.OFFERING and c.offered_slots and not parsing.is_health_question(text):
            steer = f" {_pick_prompt(tools.offered())} for one of the times above."
        elif self._offer_fits(c, tools, text, results):
            steer = " Would you like me to find you a time?"
        return body + steer

    def _not_known(self, tools) -> str:
        """A question the clinic's information does not answer: to staff, and the patient told so."""
        tools.hand_off("a question the clinic's information does not answer")
        return "Good question! I don't have that information, so I've asked our team to get back to you shortly."

    def _answers(self, tools, text, results, said, parts) -> str:
        """The sentences of the best passage that answer the question, whole, within two SMS segments (knowledge).
        A text that asks several questions ("do you take HSA? also do you do payment plans"; ``parts``, its
        ``_question_parts``) gets the answer to each, one passage per question, within MAX_ANSWERS_CHARS."""
        first = results[0].get("answer") or results[0]["snippet"]
        clauses = [f"{context} {question}".strip() for context, question in parts]
        if len(clauses) < 2:
            return self._focused(tools, said, results, first) or first
        catalog = _catalog_names(tools)
        treatment = []  # the treatment the conversation is about, when the patient's words name none
        if not parsing.find_services(said, catalog):
            treatment = [tools.lookup_service(key)["name"] for key in parsing.find_services(text, catalog)[:1]]
        price, amount = "", ""  # "...and roughly how much will it cost?" among other questions: the catalog's price
        named_all = parsing.find_services(said, catalog) or parsing.find_services(text, catalog)
        asks_price = "price" in parsing.intents(said) or any("price" in parsing.intents(cl) for cl in clauses)
        if len(named_all) == 1 and asks_price:
            info = tools.lookup_service(named_all[0])
            price, amount = f"{info['name']} is {info['price']}.", info["price"]
        answers, seen = [], set()
        room = MAX_ANSWERS_CHARS - (len(price) + 1 if price else 0)
        asked = [
            (cl, q) for cl, (_, q) in zip(clauses, parts, strict=True) if not (price and "price" in parsing.intents(cl))
        ]
        subject = ""  # the title of the document that answered the question before, when it named no treatment
        for clause, question in asked[:3]:
            # each question searched with the hints its own words call for, and that treatment ("how long till it
            # wears off" while Botox times are on offer); the treatment a question itself names is the next ones'
            # "it" (not one its context names: "a gift card for one of your facials... do you sell gift cards")
            hints = [words for cue, words in SEARCH_HINTS if cue.search(clause)]
            named_here = parsing.find_services(question, catalog)
            if named_here:  # "does botox hurt? ... how long does it last": the next questions' "it"
                treatment = [tools.lookup_service(named_here[0])["name"]]
            elif treatment:
                hints += treatment
            elif subject and re.search(r"\b(it|its|they|them|that|one)\b", question):
                hints.append(subject)  # "do you sell gift cards, and how long would she have to use it?"
            query = " ".join([clause, *hints])
            found = [r for r in tools.search_knowledge(query) if r.get("snippet") and r["kind"] == "document"]
            if not found:
                continue
            subject = found[0]["title"]
            # the first in full, the next ones the run chosen at the short length, so that they fit whole (all at the
            # short length when three questions are asked: "financing? 0%? does applying hurt my credit")
            short = answers or len(clauses) > 2
            best = (short and found[0].get("short_answer")) or found[0].get("answer") or found[0]["snippet"]
            if found[0]["document_id"] in seen:  # the same document: what it says of this question, if not yet said
                quoted = " ".join(answers)  # the sentences chosen for this question, else the rest of the passage
                unsaid = [
                    " ".join(s for s in _sentences(text) if s.split(": ", 1)[-1] not in quoted)
                    for text in (found[0].get("answer") or best, found[0].get("passage") or best)
                ]
                best = next((text for text in unsaid if text), "")
                if not best:
                    continue
            seen.add(found[0]["document_id"])
            answer = _sentences_within(best, room - sum(len(a) + 1 for a in answers), about=clause)
            if len(answer) < 40:  # no room for a whole answer
                break
            answers.append(answer)
        body = " ".join(answers) if len(answers) > 1 else first
        if price and amount not in body:  # the price first, then the answers (the one answer, not the whole first)
            body = f"{price} {' '.join(answers) or body}"
        return body

    def _focused(self, tools, text, results, answer) -> str:
        """One question among statements ("Actually wait, is the consultation free? I want someone to look at my face
        first"): the sentences that answer the question itself, from the document the whole text found, when they
        say more of what it asks than ``answer`` does ("" otherwise: "I'm on accutane. Could I do a peel friday?" is
        answered with what the document says of accutane)."""
        parts, asked = parsing.sentences(text), [q.strip() for q in re.findall(r"[^.!?\n]+\?", text)]
        if len(parts) < 2 or len(asked) != 1 or len(asked[0].split()) < 3:
            return ""
        found = [r for r in tools.search_knowledge(asked[0]) if r.get("snippet") and r["kind"] == "document"]
        if not found or results[0].get("document_id") != found[0]["document_id"]:
            return ""
        focused, question = found[0].get("answer") or found[0]["snippet"], set(terms(asked[0]))
        return focused if len(question & set(terms(focused))) > len(question & set(terms(answer))) else ""

    def _offer_fits(self, c, tools, text, results) -> bool:
        """ "Find you a time?" after an answer only when booking is the natural next step: nothing in progress, a
        treatment the clinic books is what the question is about (search names it from the catalog), and not after
        a health or safety answer (it may well be "not for you right now"), a question about one's own past or
        booked treatment, or for a patient who already has an appointment coming."""
        if c.state not in (Conversation.State.NEW, Conversation.State.ENGAGED) or parsing.is_health_question(text):
            return False
        lowered = parsing.normalise(text)
        if not any(r["kind"] == "catalog" for r in results) or OWN_TREATMENT.search(lowered):
            return False
        if parsing.is_info_question(text) or re.search(r"\bafter\b", lowered):  # aftercare, the day itself
            return False
        return tools.upcoming_booking() is None


MAX_ANSWERS_CHARS = 460  # several answers in one text: about three SMS segments
_CLAUSE_SPLIT = re.compile(
    r"\?+|\(\d\)|\b\d\)\s|\balso\b|\band (?=(?:can|do|does|is|are|will|what|how|where|when|should|would)\b)|"
    r"\band (?=(?:within|in|for|by|after|before|until|till) (?:what|which|how)\b)|"  # "and within what window..."
    r"(?:^|\s)\d[.)]? (?=(?:how|what|whats|is|are|do|does|can|could|where|when|will|should|who|which)\b)"  # "1. how..."
)
_STATEMENT_END = re.compile(r"(?<=[A-Za-z])[.!]+\s+")  # "never done this before. does it hurt"
_CLAUSE_LEAD = re.compile(
    r"^((so|but|for|and|also|plus|or|then|may i ask|can i ask|i wonder|i was wondering|(hey|hi|hello)( there)?|"
    r"ok|okay|um+|uh+|oh|well|lol|omg|hmm+|quick question|before i (choose|pick|book|decide|commit))\s+)+"
)
_EITHER = re.compile(
    r"^(?P<head>(do|does|can|will) (you|i|they|we)( guys| all)? (take|accept|do|offer|have|use|carry|sell)( an?| my)?) "
    r"(?P<a>[a-z]+( [a-z]+)?) or (?P<b>[a-z]+( [a-z]+)?)$"
)
_ASKED_INSIDE = re.compile(r"(?<=\w )(can|could|do|does|is|are|will|should|would) (i|you|we|it|they)\b")
_ASKS = re.compile(
    r"^((within|in|for|by|after|before|until|till|at|on|from) (?=what|which|how|when))?"  # "within what window..."
    r"(what|whats|how|hows|do|does|is|are|can|could|would|will|when|whens|where|wheres|why|which|who|whos|should|"
    r"any)\b"
)


def _question_clauses(text: str) -> list[str]:
    """The questions a text asks, each on its own ("do you take hsa cards", "do u do financing"), each after its
    context (what was said before it); one question (or none) when it asks one."""
    return [f"{context} {question}".strip() for context, question in _question_parts(text)]


def _question_parts(text: str) -> list[tuple[str, str]]:
    """``_question_clauses``, each as (context, question)."""
    clauses, context, standing = [], "", ""
    for sentence in _STATEMENT_END.split(text):  # before normalising, which drops the full stops
        parts = []  # (part, whether a question mark ends it: "parking near u? or whats the closest T stop")
        for piece in re.split(r"(?<=\?)", parsing.normalise(sentence)):
            split = [p for p in _CLAUSE_SPLIT.split(piece) if p and p.strip(" ,.;:!-")]
            parts += [(p, piece.rstrip().endswith("?") and i == len(split) - 1) for i, p in enumerate(split)]
        for part, marked in parts:
            part = _CLAUSE_LEAD.sub("", (part or "").strip(" ,.;:!-"))
            inner = _ASKED_INSIDE.search(part) if marked and not _ASKS.match(part) else None
            if inner and parsing.is_health_question(part[: inner.start()]):
                # "currently 14 wks pregnant can i do dysport...?": the condition before the question is its context
                context, part = f"{context} {part[: inner.start()]}".strip(), part[inner.start() :]
            asked_short = marked and len(part.split()) <= 5  # "parking near u?": a question without a question word
            if len(part.split()) >= (2 if asked_short else 3) and (
                asked_short or _ASKS.match(part) or parsing.is_info_question(part)
            ):
                # what was said before it is its context ("got a gift card last christmas. does it expire")
                either = _EITHER.match(part)  # "do u take insurance or hsa": two questions
                asked = [f"{either['head']} {either['a']}", f"{either['head']} {either['b']}"] if either else [part]
                # a health condition stated first is the context of every question after it ("14 wks pregnant, can
                # i do dysport? could i do a facial instead")
                standing = context if context and parsing.is_health_question(context) else standing
                clauses += [(context or standing, question) for question in asked]
                context = ""
            elif part:
                context = f"{context} {part}".strip()
    return clauses


def _sentences(text: str) -> list[str]:
    """A passage's sentences as the search quoted them, each stripped."""
    return [s.strip() for s in re.findall(r".+?[.!?](?=\s|$)|.+$", text.strip())]


def _sentences_within(text: str, budget: int, about: str = "") -> str:
    """The passage's first whole sentences that fit in ``budget`` characters (empty when not even one does). With
    ``about`` (the question), the run of consecutive sentences that fits and says most of it
    (``knowledge.services.question_coverage``) when not all of them fit: "how long till i can train again" keeps
    "Skip workouts ... for 48 hours" rather than the sentence before it; of equals, the earliest."""
    parts = _sentences(text)
    runs = []
    for first in range(len(parts) if about else 1):
        kept = ""
        for sentence in parts[first:]:
            candidate = f"{kept} {sentence}".strip()
            if len(candidate) > budget:
                break
            kept = candidate
        runs.append(kept)
    if len(runs) == 1 or runs[0] == " ".join(parts):
        return runs[0]
    return max(runs, key=lambda run: question_coverage(run, about))


def _first_document_answer(tools, query: str) -> str:
    """The sentences of the first document the search finds that answer ``query`` (about 220 characters, to go
    beside another reply); empty when no document is found."""
    results = [r for r in tools.search_knowledge(query) if r.get("kind") == "document"]
    if not results:
        return ""
    return _sentences_within(results[0].get("short_answer") or results[0].get("answer") or results[0]["snippet"], 220)


def _documents_speak_of(results, asked: set[str]) -> bool:
    """Whether one of these search results (title and passage) holds every word asked about."""
    return any(asked <= set(terms(f"{r['title']} {r.get('passage') or r['snippet']}")) for r in results)


def _catalog_names(tools) -> list[parsing.ServiceName]:
    """The clinic's catalog as the parser reads it (names and aliases)."""
    return [parsing.ServiceName(s.pk, s.name, tuple(s.aliases or ())) for s in tools.catalog()]


def _with_zone(label: str, tz, now) -> str:
    """A window as said back, with the clinic's zone when it names a clock time ("after 3 (EST)")."""
    if not re.search(r"\d", label):
        return label
    return f"{label} ({zone_label(now, tz)})"


def _who_we_are(clinic, *, where=False) -> str:
    """The clinic's name (and its street, for "is this the place on Boylston?") and what this line is for."""
    place = ", ".join(part for part in (clinic.street, clinic.city) if part) if where else ""
    at = f", at {place}" if place else ""
    return (
        f"This is {clinic.name}{at}. We text about appointments: I can answer questions, share prices or book you in. "
        "Reply STOP to opt out."
    )


def _deposit_cents(booking) -> int:
    """The deposit paid for this booking (refunded on a cancellation within the notice), 0 when none was paid."""
    payment = getattr(booking, "payment", None)  # hasattr/getattr: a reverse one-to-one raises when absent
    return payment.paid_cents if payment is not None and payment.status == "paid" else 0


def _urgent(lowered: str) -> bool:
    """Urgent symptoms now, in a normalised text (a symptom only in the patient's history is not)."""
    return bool(URGENT.search(lowered)) and not _ONLY_HISTORY.search(lowered)


def _with_whom(booking, tz) -> str:
    """ "Who is doing my botox?": the booking's provider."""
    return f"Your {booking.service.name} on {when_label(booking.start, tz)} is with {booking.provider.name}."


def _doers(tools, service_id) -> list:
    """The clinic's active providers who do the service (all of them for None)."""
    return [p for p in tools.providers() if service_id is None or any(s.pk == service_id for s in p.services.all())]


def _named_by(service: parsing.ServiceName) -> set[str]:
    """The search terms of a service's name and aliases."""
    return set(terms(" ".join((service.name, *service.aliases))))


def _booked(booking, tz) -> str:
    """ "Botox is on Thu Dec 10, 2:00 PM ET with Dr. Sarah Smith. See you then!": where a booking stands."""
    return f"{booking.service.name} is on {when_label(booking.start, tz)} with {booking.provider.name}. See you then!"


def _someone_elses(text: str) -> bool:
    """ "sarah's appointment", "my friend's results": a possessive that is not a day or the clinic."""
    return any(m.group(1) not in NOT_SOMEONE for m in POSSESSIVE.finditer(text.lower()))


def _within_hours(start, when, tz) -> bool:
    """Whether a time offered lies within the hours of the day a text asks for ("after school", "after 5"); true
    when it asks for none."""
    day_start, day_end = getattr(when, "day_start", None), getattr(when, "day_end", None)
    if when is None or (day_start is None and day_end is None):
        return True
    local = start.astimezone(tz).time()
    return (day_start is None or local >= day_start) and (day_end is None or local < day_end)


def _pick_prompt(offered) -> str:
    numbers = [str(o.index) for o in offered]
    return "Reply " + (" or ".join([", ".join(numbers[:-1]), numbers[-1]]) if len(numbers) > 1 else "1")


def _offer_text(service: str, offered, tz) -> str:
    lines = [f"{o.index}. {when_label(o.start, tz)} with {o.provider_name}" for o in offered]
    return f"Here are open times for {service}:\n" + "\n".join(lines) + f"\n{_pick_prompt(offered)} to pick one."


def _name_in(text: str):
    """A name stated inside a longer text ("the first one, my name is Maria Garcia")."""
    match = NAME_PHRASE.search(text)
    return parsing.parse_name(match.group(1)) if match else None


def _next_days(now, tz, *, after=None):
    """The next two weeks, as a window ("other days"); after the day of ``after`` when given."""
    if after is not None:
        start = datetime.combine(after.date() + timedelta(days=1), time.min, tzinfo=tz)
        return parsing.TimeWindow(start=start, end=start + timedelta(days=14), label="in the next two weeks", asap=True)
    return parsing.TimeWindow(start=now, end=now + timedelta(days=14), label="in the next two weeks", asap=True)
